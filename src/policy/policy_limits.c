/*
 * policy_limits.c - check "limits": counts that bound one transaction
 * (limits.recipients: further RCPTs get 452 4.5.3, RFC 5321 4.5.3.1.10).
 */
#include "policy_checks.h"

static void
limits_rcpt(struct policy_query *q)
{
	const struct policy_txn *t = q->txn;

	if (t->nrcpt_ok >= t->cfg->limits_recipients) {
		struct kv kv[] = { KVU("nrcpt", t->nrcpt_ok), KVU("limit", t->cfg->limits_recipients) };

		policy_refuse(q, COND_RCPT_TOO_MANY, kv, ARRAY_LEN(kv));
		return;
	}
	policy_answer_continue(q);
}

const struct policy_check policy_check_limits = {
	.name = "limits",
	.ask = { [POLICY_STAGE_RCPT] = limits_rcpt },
};
