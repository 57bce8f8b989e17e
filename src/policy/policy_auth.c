/*
 * policy_auth.c - checks "auth_required" (submission listeners take MAIL
 * only after AUTH, RFC 6409 4.3) and "sender_login" (an authenticated
 * client sends only as its own account, or as an alias or list of ours
 * that delivers to it).
 */
#include "policy_checks.h"

#include <string.h>
#include <strings.h>

static void
auth_required_mail(struct policy_query *q)
{
	const struct policy_txn *t = q->txn;

	if (t->lst != NULL &&
	    (t->lst->role == CONFIG_ROLE_SUBMISSION || t->lst->role == CONFIG_ROLE_SUBMISSIONS) &&
	    t->auth_user[0] == '\0') {
		struct kv kv[] = { KV("client", t->client), KV("cmd", "MAIL") };

		policy_refuse(q, COND_AUTH_REQUIRED, kv, ARRAY_LEN(kv));
		return;
	}
	policy_answer_continue(q);
}

/* 1 if the sender is the authenticated account, or an address of ours
 * (alias, list) that delivers to it. */
static int
sender_owned(const struct policy_txn *t)
{
	const struct policy_path *p = &t->sender;
	struct resolve_ctx rc = { .sender = "", .max_depth = t->cfg->local_alias_max_depth };
	struct resolve_result res;
	int owned = 0;

	if (strcasecmp(p->mailbox, t->auth_user) == 0)
		return 1;
	if (p->domain[0] == '\0' ||
	    !config_is_local_domain(t->cfg, p->domain, strlen(p->domain)))
		return 0;
	if (directory_resolve(t->cfg->accounts, &rc, p->local, strlen(p->local), p->domain,
			      strlen(p->domain), &res) == 0 &&
	    res.cond == COND__COUNT) {
		for (size_t i = 0; i < res.ntargets; i++)
			if (res.targets[i].local && strcasecmp(res.targets[i].addr, t->auth_user) == 0)
				owned = 1;
	}
	resolve_result_fini(&res);
	return owned;
}

static void
sender_login_mail(struct policy_query *q)
{
	const struct policy_txn *t = q->txn;

	if (t->auth_user[0] != '\0' && !t->sender.is_null && !sender_owned(t)) {
		struct kv kv[] = { KV("client", t->client), KV("auth", t->auth_user),
				   KVA("from", t->sender.mailbox, strlen(t->sender.mailbox)) };

		policy_refuse(q, COND_ACCESS_SENDER_LOGIN_MISMATCH, kv, ARRAY_LEN(kv));
		return;
	}
	policy_answer_continue(q);
}

const struct policy_check policy_check_auth_required = {
	.name = "auth_required",
	.ask = { [POLICY_STAGE_MAIL] = auth_required_mail },
};

const struct policy_check policy_check_sender_login = {
	.name = "sender_login",
	.ask = { [POLICY_STAGE_MAIL] = sender_login_mail },
};
