/*
 * policy_recipient.c - check "recipient": a RCPT in one of our domains
 * (or <postmaster>, RFC 5321 4.5.1) is resolved through accounts,
 * aliases, lists, catch-all and forwards (directory_resolve) and either
 * refused with the resolution's condition or routed: its final mailboxes
 * fill the transaction's expansion slot. Other domains are left to the
 * next check ("relay").
 */
#include "policy_checks.h"

#include <string.h>

static void
recipient_refuse(struct policy_query *q, const struct resolve_result *res)
{
	struct policy_txn *t = q->txn;
	const char *from = t->sender.mailbox != NULL ? t->sender.mailbox : "";
	struct kv kv[6];
	size_t n = 0;

	kv[n++] = KV("client", t->client);
	kv[n++] = KVA("rcpt", t->rcpt.mailbox, strlen(t->rcpt.mailbox));
	if (res->cond == COND_RCPT_LIST_NOT_AUTHORIZED)
		kv[n++] = KVA("from", from, strlen(from));
	if (res->detail_key != NULL)
		kv[n++] = KV(res->detail_key, res->detail);
	if (res->cond == COND_RCPT_ALIAS_LOOP)
		kv[n++] = KVU("depth", res->depth);
	if (res->cond == COND_RCPT_EXPANSION_TOO_LARGE && n < ARRAY_LEN(kv))
		kv[n++] = KVU("limit", RESOLVE_MAX_TARGETS);
	if (res->cond == COND_RCPT_SPAMTRAP)
		t->flag = "spamtrap";
	policy_refuse(q, res->cond, kv, n);
}

static void
recipient_rcpt(struct policy_query *q)
{
	struct policy_txn *t = q->txn;
	const struct config *cfg = t->cfg;
	const char *from = t->sender.mailbox != NULL ? t->sender.mailbox : "";
	const char *local = t->rcpt.local, *domain = t->rcpt.domain;
	struct resolve_ctx rc = {
		.sender = from,
		.sender_len = strlen(from),
		.plus_addressing = cfg->local_plus_addressing,
		.plus_sep = cfg->local_plus_separator[0] ? cfg->local_plus_separator[0] : '+',
		.max_depth = cfg->local_alias_max_depth,
	};
	struct resolve_result res;

	if (t->rcpt.is_postmaster) {
		if (cfg->local_domains.n == 0) {
			struct kv kv[] = { KV("client", t->client),
					   KVA("rcpt", t->rcpt.mailbox, strlen(t->rcpt.mailbox)) };

			policy_refuse(q, COND_RCPT_UNKNOWN_USER, kv, ARRAY_LEN(kv));
			return;
		}
		domain = cfg->local_domains.v[0];
		local = "postmaster";
	} else if (!config_is_local_domain(cfg, domain, strlen(domain))) {
		policy_answer_continue(q);
		return;
	}
	if (directory_resolve(cfg->accounts, &rc, local, strlen(local), domain, strlen(domain),
			      &res) < 0) {
		struct kv kv[] = { KV("where", "rcpt"), KV("detail", "directory_resolve failed") };

		resolve_result_fini(&res);
		policy_refuse(q, COND_INTERNAL_ERROR, kv, ARRAY_LEN(kv));
		return;
	}
	if (res.cond != COND__COUNT) {
		recipient_refuse(q, &res);
		resolve_result_fini(&res);
		return;
	}
	policy_txn_rcpt_reset(t);
	t->expansion = res;	/* the slot owns the targets now */
	t->routed = 1;
	if (snprintf(t->route, sizeof(t->route), "%s", res.detail[0] ? res.detail : "local") < 0)
		t->route[0] = '\0';
	policy_answer_continue(q);
}

const struct policy_check policy_check_recipient = {
	.name = "recipient",
	.ask = { [POLICY_STAGE_RCPT] = recipient_rcpt },
};
