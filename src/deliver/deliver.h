/*
 * deliver.h - the delivery queue and local Maildir delivery.
 *
 * Committed messages arrive from the spool (spool_set_sink). Jobs on the
 * worker pool deliver each recipient: local domains into
 * <mail_root>/<domain>/<local>/ (Maildir: tmp/, fsync, link into new/,
 * fsync new/), with Return-Path and Delivered-To prepended. When every
 * recipient is done the spool entry is removed. A temporary failure keeps
 * the message queued and retries it with back-off (DELIVERY-DEFERRED), as
 * do a mailbox over quota (DELIVERY-LOCAL-QUOTA, deliver_quota.h) and a
 * mail filesystem under limits.min_free_space (QUEUE-DISK-FULL,
 * deliver_space.h); a permanent failure (DELIVERY-LOCAL-GONE,
 * DELIVERY-LOCAL-PERMANENT) fails the recipient and bounces, as does a
 * recipient still deferred past outbound.max_queue_lifetime
 * (deliver_report.h, dsn.h).
 *
 * A waiting message is a small index entry in memory; its envelope and
 * state are read back from its spool file when its attempt comes due.
 *
 * Progress is on disk: after each pass that leaves the message queued,
 * its spool file's state log gets a "done" record for every recipient
 * delivered in the pass (flushed: a restart never tries them again) and a
 * "deferred" record (attempts, next try, cause) for each one waiting.
 * At least once per mailbox: a restart between a Maildir link and its
 * done record (or the removal of a finished message) repeats that
 * delivery; the Maildir file name is derived from the queue ID and the
 * recipient's index, so the repeat finds the earlier file in new/ or cur/
 * and writes no second copy unless the reader deleted, moved or renamed it
 * in that window (docs/design.md, Durability).
 */
#ifndef POSTERN_DELIVER_H
#define POSTERN_DELIVER_H

#include "config.h"
#include "spool.h"

struct deliver;

struct workpool;
/* Adds the "deliver" class (threads concurrent deliveries) to wp. */
struct deliver *deliver_new(struct spool *sp, struct config *cfg, struct workpool *wp,
			    unsigned threads);
/* Stops the workers; messages still queued stay in the spool. Shutdown
 * order: spool_set_sink(sp, NULL, NULL), deliver_free(), spool_close(). */
void deliver_free(struct deliver **dp);
/* New configuration (mail_root, domains) for later deliveries; every
 * deferred message is retried at once. */
void deliver_set_config(struct deliver *d, struct config *cfg);
/* The spool sink: takes ownership of msg. Thread-safe. */
void deliver_enqueue(struct spool_msg *msg, void *deliver);
struct outbound;
/* The outbound engine non-local recipients go to (outbound.h), or NULL:
 * they wait (at shutdown, before outbound_free: jobs that come back then
 * are dropped unrecorded, their messages stay in the spool). */
void deliver_set_outbound(struct deliver *d, struct outbound *ob);
/* Messages waiting or in progress (for tests and the SESSION logs). */
unsigned long deliver_pending(struct deliver *d);

#endif
