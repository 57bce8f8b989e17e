/*
 * deliver_report.h - a delivery pass's bookkeeping of outcomes that the
 * sender hears about: permanent failures (a "failed" record and a DSN),
 * the queue lifetime (outbound.max_queue_lifetime: DELIVERY-EXPIRED), one
 * delay warning per recipient (outbound.delay_warning), success DSNs for
 * NOTIFY=SUCCESS. The DSNs themselves are dsn.c's.
 *
 * Order (at least once): a DSN is committed to the spool (flushed) before
 * the "dsn" record that says it was sent is appended; a crash between the
 * two sends it again at the next start, never loses it. A message leaves
 * the spool only when every recipient is done or failed and every DSN
 * due is sent.
 */
#ifndef POSTERN_DELIVER_REPORT_H
#define POSTERN_DELIVER_REPORT_H

#include <stdint.h>

#include "catalog.h"
#include "config.h"
#include "spool.h"

/* Recipient idx failed for good: why (cond, with the DSN status of its
 * row unless status is given), the remote MTA and its reply (or NULL).
 * Sets its failed flag and detail, appends the failed record to recs,
 * logs DELIVERY-FAILED. The DSN follows in deliver_report(). */
void deliver_report_fail(const struct config *cfg, struct spool_msg *msg, size_t idx,
			 enum cond_id cond, const char *status, const char *mta,
			 const char *diag, struct buf *recs);

/* Recipient idx waits: appends its deferred record (attempts, next try,
 * and the detail: status, or cond's row's when NULL; cond; mta; diag) to
 * recs and keeps the detail for a delay warning or the expiry's DSN. -1
 * if recs is full. */
int deliver_report_defer(struct spool_msg *msg, size_t idx, unsigned attempts, int64_t next,
			 enum cond_id cond, const char *status, const char *mta,
			 const char *diag, struct buf *recs);

/* Recipient idx was taken by a peer (its 250): mta and its reply are kept
 * (the caller sets done and its done record carries them, deliver.c).
 * When the peer offered DSN (NOTIFY and ORCPT went on with the message)
 * any success DSN is the peer's duty: a dsn record says none is owed;
 * else a NOTIFY=SUCCESS sender gets "relayed" after the pass. */
void deliver_report_relayed(struct spool_msg *msg, size_t idx, const char *mta,
			    const char *reply, int peer_offers_dsn, struct buf *recs);

/* After a pass (its copies flushed): expires recipients deferred past the
 * queue lifetime, sends the DSNs due (failed, delayed, delivered) and
 * appends their "dsn" records to recs. Returns 1 when the message is
 * settled (every recipient done or failed, no DSN left to send), else 0
 * with *retry_s capped so that the next pass comes when a delay warning
 * or the expiry is due (a DSN that could not be written is retried).
 * *reported is set when records were added that should be flushed.
 * Worker thread. */
int deliver_report(struct spool *sp, const struct config *cfg, struct spool_msg *msg,
		   struct buf *recs, unsigned *retry_s, int *reported);

#endif
