/*
 * policy_antispoof.c - check "antispoof" (smtp.anti_spoof): on an mx
 * listener, a sender in one of our own domains from a client that neither
 * authenticated nor sends from server.trusted_networks is refused; our
 * users authenticate on submission. The null sender is never refused.
 */
#include "policy_checks.h"

#include <string.h>

static void
antispoof_mail(struct policy_query *q)
{
	const struct policy_txn *t = q->txn;
	const struct policy_path *p = &t->sender;

	if (!p->is_null && p->domain[0] != '\0' && t->cfg->smtp_anti_spoof &&
	    t->auth_user[0] == '\0' && !t->trusted &&
	    (t->lst == NULL || t->lst->role == CONFIG_ROLE_MX) &&
	    config_is_local_domain(t->cfg, p->domain, strlen(p->domain))) {
		struct kv kv[] = { KV("client", t->client),
				   KVA("from", p->mailbox, strlen(p->mailbox)) };

		policy_refuse(q, COND_ACCESS_SPOOF_LOCAL_SENDER, kv, ARRAY_LEN(kv));
		return;
	}
	policy_answer_continue(q);
}

const struct policy_check policy_check_antispoof = {
	.name = "antispoof",
	.ask = { [POLICY_STAGE_MAIL] = antispoof_mail },
};
