/*
 * policy_recipient.c - check "recipient": a RCPT in one of our domains
 * (or <postmaster>, RFC 5321 4.5.1) is resolved through accounts,
 * aliases, lists, catch-all and forwards (directory_resolve) and either
 * refused with the resolution's condition or routed: its final mailboxes
 * fill the transaction's expansion slot. An SRS address at srs.domain (a
 * bounce to mail a forward of ours sent on) is checked and routed to the
 * address it stands for, or refused (RCPT-SRS-INVALID). Other domains are
 * left to the next check ("relay").
 */
#include "policy_checks.h"

#include <string.h>
#include <time.h>

#include "directory_srs.h"

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

/* Resolves local@domain (a local domain) into the expansion slot, or
 * refuses the RCPT with the resolution's condition. */
static void
recipient_route(struct policy_query *q, const char *local, size_t llen, const char *domain,
		size_t dlen)
{
	struct policy_txn *t = q->txn;
	const struct config *cfg = t->cfg;
	const char *from = t->sender.mailbox != NULL ? t->sender.mailbox : "";
	struct resolve_ctx rc = {
		.sender = from,
		.sender_len = strlen(from),
		.plus_addressing = cfg->local_plus_addressing,
		.plus_sep = cfg->local_plus_separator[0] ? cfg->local_plus_separator[0] : '+',
		.max_depth = cfg->local_alias_max_depth,
	};
	struct resolve_result res;

	if (directory_resolve(cfg->accounts, &rc, local, llen, domain, dlen, &res) < 0) {
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

/* An RCPT to SRS0=.../SRS1=...@srs.domain: checked (hash, age) and
 * routed to the address it stands for, in a local domain through the
 * directory, elsewhere as one remote target (it leaves: a bounce going
 * home). 1 if answered, 0 if the RCPT is no SRS address of ours. */
static int
recipient_srs(struct policy_query *q)
{
	struct policy_txn *t = q->txn;
	const struct srs *srs = directory_srs(t->cfg);
	const char *local = t->rcpt.local, *domain = t->rcpt.domain, *at;
	char orig[SRS_ADDR_MAX];
	enum srs_status st;

	if (srs == NULL || t->rcpt.is_postmaster || !srs_is_domain(srs, domain, strlen(domain)) ||
	    !srs_is_srs(local, strlen(local)))
		return 0;
	st = srs_reverse(srs, local, strlen(local), time(NULL), orig, sizeof(orig));
	at = st == SRS_VALID ? strrchr(orig, '@') : NULL;
	if (at == NULL || at == orig || at[1] == '\0') {
		struct kv kv[] = { KV("client", t->client),
				   KVA("rcpt", t->rcpt.mailbox, strlen(t->rcpt.mailbox)),
				   KV("reason", srs_status_name(st != SRS_VALID ? st : SRS_MALFORMED)) };

		policy_refuse(q, COND_RCPT_SRS_INVALID, kv, ARRAY_LEN(kv));
		return 1;
	}
	if (config_is_local_domain(t->cfg, at + 1, strlen(at + 1))) {
		recipient_route(q, orig, (size_t)(at - orig), at + 1, strlen(at + 1));
		return 1;
	}
	policy_txn_rcpt_reset(t);
	t->expansion.targets = xcalloc(1, sizeof(*t->expansion.targets));
	t->expansion.targets[0].addr = xstrdup(orig);
	t->expansion.ntargets = 1;
	t->routed = 1;
	memcpy(t->route, "srs", sizeof("srs"));
	policy_answer_continue(q);
	return 1;
}

static void
recipient_rcpt(struct policy_query *q)
{
	struct policy_txn *t = q->txn;
	const struct config *cfg = t->cfg;
	const char *local = t->rcpt.local, *domain = t->rcpt.domain;

	if (t->rcpt.is_postmaster) {
		if (cfg->local_domains.n == 0) {
			struct kv kv[] = { KV("client", t->client),
					   KVA("rcpt", t->rcpt.mailbox, strlen(t->rcpt.mailbox)) };

			policy_refuse(q, COND_RCPT_UNKNOWN_USER, kv, ARRAY_LEN(kv));
			return;
		}
		domain = cfg->local_domains.v[0];
		local = "postmaster";
	} else if (recipient_srs(q)) {
		return;
	} else if (!config_is_local_domain(cfg, domain, strlen(domain))) {
		policy_answer_continue(q);
		return;
	}
	recipient_route(q, local, strlen(local), domain, strlen(domain));
}

const struct policy_check policy_check_recipient = {
	.name = "recipient",
	.ask = { [POLICY_STAGE_RCPT] = recipient_rcpt },
};
