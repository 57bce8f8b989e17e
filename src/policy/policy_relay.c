/*
 * policy_relay.c - check "relay": a RCPT no earlier check routed (not one
 * of our domains) is relayed only for clients in server.trusted_networks
 * and authenticated clients; anyone else gets 550 5.7.1. A relayed
 * recipient is routed as itself, one remote target.
 */
#include "policy_checks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
relay_rcpt(struct policy_query *q)
{
	struct policy_txn *t = q->txn;
	const char *from = t->sender.mailbox != NULL ? t->sender.mailbox : "";

	if (t->routed || t->rcpt.is_postmaster ||
	    config_is_local_domain(t->cfg, t->rcpt.domain, strlen(t->rcpt.domain))) {
		policy_answer_continue(q);
		return;
	}
	if (!t->trusted && t->auth_user[0] == '\0') {
		struct kv kv[] = { KV("client", t->client), KVA("from", from, strlen(from)),
				   KVA("rcpt", t->rcpt.mailbox, strlen(t->rcpt.mailbox)) };

		policy_refuse(q, COND_ACCESS_RELAY_DENIED, kv, ARRAY_LEN(kv));
		return;
	}
	policy_txn_rcpt_reset(t);
	t->expansion.targets = xcalloc(1, sizeof(*t->expansion.targets));
	t->expansion.targets[0].addr = xstrdup(t->rcpt.mailbox);
	t->expansion.ntargets = 1;
	t->routed = 1;
	memcpy(t->route, "relay", sizeof("relay"));
	policy_answer_continue(q);
}

const struct policy_check policy_check_relay = {
	.name = "relay",
	.ask = { [POLICY_STAGE_RCPT] = relay_rcpt },
};
