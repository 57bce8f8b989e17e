/*
 * outbound_result.c - what a peer's replies mean for each recipient of a
 * job (see outbound_private.h): sent, deferred or failed, with the
 * enhanced status, the reply as the log and the DSN show it, and the
 * relay; which failure is whose follows issue 8 (a 5xx to RCPT fails
 * that recipient, a 4xx defers it, a refused end of data or MAIL decides
 * for every recipient the peer took, a 452 4.5.3 sends the rest again).
 */
#include "outbound_private.h"

#include <stdio.h>
#include <string.h>

void
outbound_result_set(struct outbound_result *r, enum outbound_kind kind, enum cond_id cond,
		    const char *status, const char *reply, const char *relay)
{
	r->kind = kind;
	r->cond = cond;
	snprintf(r->status, sizeof(r->status), "%s", status != NULL ? status : "");
	snprintf(r->reply, sizeof(r->reply), "%s", reply != NULL ? reply : "");
	snprintf(r->relay, sizeof(r->relay), "%s", relay != NULL ? relay : "none");
}

/* The status of a reply: its enhanced code, or one made from its class. */
const char *
outbound_reply_status(const struct smtp_client_reply *r, char *buf, size_t len)
{
	if (r->enh[0] != '\0')
		return r->enh;
	snprintf(buf, len, "%d.0.0", r->code >= 500 ? 5 : r->code >= 400 ? 4 : 2);
	return buf;
}

void
outbound_reply_text(const struct smtp_client_reply *r, char *buf, size_t len)
{
	if (r->code == 0 && r->text[0] == '\0') {
		snprintf(buf, len, "no reply");
		return;
	}
	if (r->code > 0 && r->enh[0] != '\0')
		snprintf(buf, len, "%d %s %s", r->code, r->enh, r->text);
	else if (r->code > 0)
		snprintf(buf, len, "%d %s", r->code, r->text);
	else
		snprintf(buf, len, "%s", r->text[0] != '\0' ? r->text : "no reply");
}

size_t
outbound_results_map(struct outbound_job *job, const struct smtp_client_result *res,
		     const char *relay, int dsn_offered, char *ttext, size_t ttext_len)
{
	char status[16], text[OUTBOUND_REPLY_MAX];
	const struct smtp_client_reply *tr = &res->reply;	/* the transaction's */
	int txn_ok = res->cond == COND__COUNT && tr->code >= 200 && tr->code < 300;
	size_t again = 0;

	outbound_reply_text(tr, ttext, ttext_len);
	for (size_t k = 0; k < job->nsending; k++) {
		size_t i = job->pend[k];
		const struct smtp_client_reply *rr = &res->rcpt[k];
		struct outbound_result *out = &job->res[i];

		outbound_reply_text(rr, text, sizeof(text));
		out->dsn_offered = dsn_offered;
		if (rr->code == 452 && strcmp(rr->enh, "4.5.3") == 0 && !job->corrupt) {
			job->pend[again++] = i;		/* the rest, at once */
			continue;
		}
		if (rr->code >= 200 && rr->code < 300) {
			if (txn_ok)
				outbound_result_set(out, OUTBOUND_DONE, COND_DELIVERY_REMOTE_SENT,
					   outbound_reply_status(tr, status, sizeof(status)), ttext, relay);
			else if (tr->code >= 500)
				outbound_result_set(out, OUTBOUND_FAILED, COND_DELIVERY_REMOTE_REJECTED,
					   outbound_reply_status(tr, status, sizeof(status)), ttext, relay);
			else
				outbound_result_set(out, OUTBOUND_DEFERRED,
					   res->cond != COND__COUNT ? res->cond
								   : COND_DELIVERY_REMOTE_TEMPFAIL,
					   tr->code >= 400 ? outbound_reply_status(tr, status, sizeof(status))
							   : "4.4.2",
					   ttext, relay);
		} else if (rr->code >= 500) {
			outbound_result_set(out, OUTBOUND_FAILED,
				   res->cond != COND__COUNT ? res->cond : COND_DELIVERY_REMOTE_REJECTED,
				   outbound_reply_status(rr, status, sizeof(status)), text, relay);
		} else if (rr->code >= 400) {
			outbound_result_set(out, OUTBOUND_DEFERRED, COND_DELIVERY_REMOTE_TEMPFAIL,
				   outbound_reply_status(rr, status, sizeof(status)), text, relay);
		} else {
			/* no answer to this RCPT: the transaction ended before */
			outbound_result_set(out, tr->code >= 500 ? OUTBOUND_FAILED : OUTBOUND_DEFERRED,
				   tr->code >= 500 ? COND_DELIVERY_REMOTE_REJECTED
						   : (res->cond != COND__COUNT ? res->cond
									      : COND_DELIVERY_REMOTE_TEMPFAIL),
				   tr->code >= 400 ? outbound_reply_status(tr, status, sizeof(status)) : "4.4.2",
				   ttext, relay);
		}
	}
	return again;
}
