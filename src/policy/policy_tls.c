/*
 * policy_tls.c - check "tls_required": a listener with require_tls takes
 * no MAIL before STARTTLS (RFC 3207 4: 530 5.7.0).
 */
#include "policy_checks.h"

static void
tls_required_mail(struct policy_query *q)
{
	const struct policy_txn *t = q->txn;

	if (t->lst != NULL && t->lst->require_tls && !t->tls) {
		struct kv kv[] = { KV("client", t->client), KV("cmd", "MAIL") };

		policy_refuse(q, COND_TLS_REQUIRED, kv, ARRAY_LEN(kv));
		return;
	}
	policy_answer_continue(q);
}

const struct policy_check policy_check_tls_required = {
	.name = "tls_required",
	.ask = { [POLICY_STAGE_MAIL] = tls_required_mail },
};
