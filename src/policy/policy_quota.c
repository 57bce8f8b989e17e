/*
 * policy_quota.c - check "quota": a RCPT whose local mailbox is already
 * full, and a message that would take any of the transaction's mailboxes
 * past its quota at the end of data, get 452/552 from deliver_quota's
 * cache (never blocks). Delivery reserves again, so nothing accepted is
 * ever dropped.
 */
#include "policy_checks.h"

#include <string.h>

#include "deliver_quota.h"

static void
quota_rcpt(struct policy_query *q)
{
	const struct policy_txn *t = q->txn;
	const struct resolve_result *e = &t->expansion;

	for (size_t i = 0; i < e->ntargets; i++) {
		const struct resolve_target *tg = &e->targets[i];
		struct quota_report qr;
		enum cond_id c;

		if (!tg->local)
			continue;
		c = quota_check_rcpt(t->cfg->server_mail_root, tg->acct, tg->addr, &qr);
		if (c != COND__COUNT) {
			struct kv kv[] = { KVA("rcpt", t->rcpt.mailbox, strlen(t->rcpt.mailbox)),
					   KV("kind", qr.kind), KVU("used", qr.used),
					   KVU("quota", qr.quota) };

			policy_refuse(q, c, kv, ARRAY_LEN(kv));
			return;
		}
	}
	policy_answer_continue(q);
}

static void
quota_end_of_data(struct policy_query *q)
{
	const struct policy_txn *t = q->txn;
	struct quota_report qr;
	enum cond_id c = quota_check_message(t->cfg->server_mail_root, t->local_accts,
					     (const char *const *)t->local_boxes, t->nlocal,
					     t->content.size, &qr);

	if (c != COND__COUNT) {
		const char *box = t->local_boxes[qr.index];
		struct kv kv[] = { KVA("rcpt", box, strlen(box)), KV("kind", qr.kind),
				   KVU("used", qr.used), KVU("quota", qr.quota),
				   KVU("size", qr.size) };

		policy_refuse(q, c, kv, ARRAY_LEN(kv));
		return;
	}
	policy_answer_continue(q);
}

const struct policy_check policy_check_quota = {
	.name = "quota",
	.ask = { [POLICY_STAGE_RCPT] = quota_rcpt,
		 [POLICY_STAGE_END_OF_DATA] = quota_end_of_data },
};
