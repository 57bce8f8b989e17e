/*
 * deliver_quota.h - per-account mailbox quotas (bytes and messages) and
 * the process-wide usage cache behind them.
 *
 * A mailbox is "local@domain" as spooled; its Maildir is
 * <mail_root>/<domain>/<local>/ (deliver_maildir_dir()), and the cache is
 * keyed by that folder, so a reload that moves mail_root starts afresh.
 * Usage = messages in new/ and cur/ (dot files and tmp/ ignored), bytes =
 * the sum of their sizes (",S=<n>" in the name when present, else
 * stat()). It is filled by a scan on the worker pool's "scan" class (or
 * on a delivery job, which may block) and kept current by deliveries and by
 * quota_add() (POP3 deletions). An entry older than a minute is scanned
 * again in the background, so deletions by other readers (Dovecot) are
 * seen eventually.
 *
 * Limits come from struct account (quota_bytes, quota_messages; 0 = none).
 * A mailbox is full when used >= limit; a message of size octets would
 * cross the quota when used + size > quota_bytes or messages + 1 >
 * quota_messages. Every function is thread-safe; the _check functions
 * never block (one mutex, O(1) hash lookup) and are fit for the event loop.
 */
#ifndef POSTERN_DELIVER_QUOTA_H
#define POSTERN_DELIVER_QUOTA_H

#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "directory.h"

/* Why a check failed, for the reply's and the log's key/values
 * (rcpt, kind, used, quota, size). */
struct quota_report {
	size_t index;		/* which mailbox of the list (0 for one) */
	const char *kind;	/* "bytes" or "messages" (static) */
	uint64_t used;		/* current usage in that unit */
	uint64_t quota;		/* the limit in that unit */
	uint64_t size;		/* bytes the message would add (0 at RCPT) */
};

/* Sets up the table. Every other function calls it. */
void quota_init(void);
struct workpool;
/* Adds the "scan" class (one scan at a time) to wp: from then on usage is
 * scanned in the background. Once; 0, or -1 (scans then run only on
 * delivery jobs, which may block). */
int quota_start(struct workpool *wp) WARN_UNUSED;
/* Stops the scan class (queued scans are dropped) and forgets every entry
 * (shutdown, tests). The module stays usable; scans then run only on
 * delivery jobs. */
void quota_fini(void);

/* RCPT time, on the event loop: never blocks. COND__COUNT if fine,
 * COND_RCPT_MAILBOX_FULL if the mailbox is known to be at or over a quota
 * (out, if not NULL, then says which). Unknown usage is treated as fine
 * and a scan is scheduled. acct NULL or without quotas: always fine. */
enum cond_id quota_check_rcpt(const char *mail_root, const struct account *acct,
			      const char *mailbox, struct quota_report *out);

/* End of data, on the event loop: would a message of size octets (as
 * spooled) cross a quota of any of these n local mailboxes? accts[i] goes
 * with mailboxes[i] (NULL = no account, no quota). COND__COUNT, or
 * COND_RCPT_MESSAGE_OVER_QUOTA with out->index naming the first mailbox
 * that would cross. The check adds QUOTA_HEADER_ALLOWANCE + the mailbox's
 * length for the Return-Path and Delivered-To fields delivery prepends. */
enum cond_id quota_check_message(const char *mail_root,
				 const struct account *const *accts,
				 const char *const *mailboxes, size_t n,
				 uint64_t size, struct quota_report *out);
#define QUOTA_HEADER_ALLOWANCE 300u	/* "Return-Path: <from>" + CRLFs */

/* Usage changed by bytes and messages (negative for POP3 DELE at QUIT:
 * quota_add(root, "alice@example.test", -size, -1)). Unknown mailboxes
 * are ignored (their first scan will count what is there). */
void quota_add(const char *mail_root, const char *mailbox, int64_t bytes,
	       int64_t messages);

/* ---- for deliver.c ---------------------------------------------------- */

/* Delivery thread (may block to scan): reserves size bytes and one
 * message in mailbox if that stays within acct's quotas. COND__COUNT when
 * reserved (then exactly one quota_finish() must follow), else
 * COND_DELIVERY_LOCAL_QUOTA with out filled. Without quotas it reserves
 * in the cache only if the mailbox is tracked, and always succeeds. */
enum cond_id quota_reserve(const char *mail_root, const struct account *acct,
			   const char *mailbox, uint64_t size,
			   struct quota_report *out);
/* Ends a reservation: delivered (the file is in new/) or not (released). */
void quota_finish(const char *mail_root, const char *mailbox, uint64_t size,
		  int delivered);

/* Usage as cached, for tests: 1 known (values set), 0 unknown. */
int quota_usage(const char *mail_root, const char *mailbox, uint64_t *bytes_out,
		uint64_t *messages_out);
/* Scans the Maildir folder now (blocking): usage in the out values;
 * -1 if neither new/ nor cur/ can be read (0 and 0 then). */
int quota_scan_dir(const char *maildir, uint64_t *bytes_out,
		   uint64_t *messages_out) WARN_UNUSED;

#endif
