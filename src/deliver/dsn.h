/*
 * dsn.h - delivery status notifications (RFC 3464, RFC 3461, RFC 6522):
 * one multipart/report message for one message and a set of its
 * recipients, from <> to the envelope sender, committed to the spool as a
 * new message (store/spool.h, spool_compose_*) and so delivered like any.
 *
 * Parts: a human-readable text/plain (which recipients, what happened,
 * what the peer said, the catalog ID, what the sender can do), a
 * message/delivery-status (Reporting-MTA, Original-Envelope-Id from
 * ENVID, Arrival-Date; per recipient Original-Recipient from ORCPT,
 * Final-Recipient, Action, Status, Remote-MTA, Diagnostic-Code,
 * Last-Attempt-Date, Will-Retry-Until), then the original: whole as
 * message/rfc822 for failures unless RET=HDRS, else its header section as
 * text/rfc822-headers; streamed from its spool file, never held whole.
 *
 * Who gets one: NOTIFY per recipient (NEVER: none; absent: failures and
 * delays, as Postfix; else the listed ones; relayed, delivered and
 * expanded need SUCCESS). A message from <> gets none, except a DSN of
 * ours (spool origin) that failed: it goes once to the postmaster
 * (outbound.double_bounce_recipient), marked so that its own failure is
 * only logged (DELIVERY-DOUBLE-BOUNCE-DROPPED).
 */
#ifndef POSTERN_DSN_H
#define POSTERN_DSN_H

#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "config.h"
#include "spool.h"

enum dsn_action { DSN_FAILED, DSN_DELAYED, DSN_DELIVERED, DSN_RELAYED, DSN_EXPANDED };

struct dsn_report {
	size_t idx;			/* the recipient, msg->rcpts[idx] */
	enum dsn_action action;
	const char *status;		/* "5.1.1"; NULL: cond's row, else
					 * 5.0.0 / 4.0.0 / 2.0.0 by action */
	const char *remote_mta;		/* the peer's host name, or NULL */
	const char *diagnostic;		/* the peer's reply ("550 5.1.1 ..."),
					 * or NULL: cond's reply rendered */
	enum cond_id cond;		/* why (its ID is in the text part);
					 * COND__COUNT: none */
	int64_t last_attempt;		/* unix seconds; 0: now */
	int64_t retry_until;		/* delayed: when it gives up */
};

/* "failed", "delayed", "delivered", "relayed", "expanded". */
const char *dsn_action_name(enum dsn_action a);
/* The SPOOL_DSN_* bit that records a DSN of action a for a recipient. */
unsigned dsn_action_bit(enum dsn_action a);
/* 1 if NOTIFY bits (0: not given) ask for a DSN of action a. */
int dsn_notify_wants(unsigned notify, enum dsn_action a);

/* Renders cond's reply for recipient idx into out ({rcpt}, {age_s}: the
 * time since arrival): the Diagnostic-Code when no peer spoke. 0, or -1
 * (the row has no reply; out empty). */
int dsn_render(struct buf *out, const struct config *cfg, const struct spool_msg *msg,
	       size_t idx, enum cond_id cond);

/* One DSN for msg covering those of the n reports that NOTIFY asks for
 * (the others, and a message from <>, are logged as
 * DELIVERY-BOUNCE-SKIPPED; a DSN is logged as DELIVERY-BOUNCE-SENT).
 * Worker thread (it writes and flushes the spool). 0: sent, or none
 * needed: every report is settled (record its dsn bit); -1: it could not
 * be written (logged: DELIVERY-BOUNCE-FAILED): try again later. dsn_qid
 * (or NULL) gets the DSN's queue ID, "" when none was sent. */
int dsn_send(struct spool *sp, const struct config *cfg, const struct spool_msg *msg,
	     const struct dsn_report *r, size_t n, char *dsn_qid);

#endif
