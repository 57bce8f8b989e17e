/*
 * policy_spf.c - check "spf" (RFC 7208) at RCPT, as Postfix's
 * policyd-spf: the MAIL FROM identity (postmaster@<HELO> for <>), and
 * first the HELO identity when spf.helo is yes, evaluated by spf.c on the
 * session loop's resolver; each result logged as its own event
 * (SPF-PASS ... SPF-PERMERROR) and acted on as [spf] says: reject,
 * tempfail, tag or accept, a taken message getting one Received-SPF
 * field (RFC 7208 9.1). Clients in server.trusted_networks and
 * authenticated clients skip it; postmaster@ and abuse@ of our domains
 * (and <postmaster>) are never refused by it (RFC 5321 4.5.1), which is
 * why it runs at RCPT and not at MAIL.
 */
#include "policy_checks.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "log.h"
#include "spf.h"

enum spf_action { ACT_REJECT, ACT_TEMPFAIL, ACT_TAG, ACT_ACCEPT };

static const enum cond_id result_cond[SPF_RESULT__COUNT] = {
	[SPF_NONE] = COND_SPF_NONE, [SPF_NEUTRAL] = COND_SPF_NEUTRAL,
	[SPF_PASS] = COND_SPF_PASS, [SPF_FAIL] = COND_SPF_FAIL,
	[SPF_SOFTFAIL] = COND_SPF_SOFTFAIL, [SPF_TEMPERROR] = COND_SPF_TEMPERROR,
	[SPF_PERMERROR] = COND_SPF_PERMERROR,
};

static const char *
action_text(const struct config *cfg, enum spf_result r)
{
	switch (r) {
	case SPF_NONE: return cfg->spf_none;
	case SPF_NEUTRAL: return cfg->spf_neutral;
	case SPF_PASS: return cfg->spf_pass;
	case SPF_FAIL: return cfg->spf_fail;
	case SPF_SOFTFAIL: return cfg->spf_softfail;
	case SPF_TEMPERROR: return cfg->spf_temperror;
	case SPF_PERMERROR: return cfg->spf_permerror;
	case SPF_RESULT__COUNT: break;
	}
	return "accept";
}

static int
action_parse(const char *s, enum spf_action *out)
{
	static const char *const names[] = { "reject", "tempfail", "tag", "accept" };

	for (size_t i = 0; i < ARRAY_LEN(names); i++)
		if (s != NULL && strcasecmp(s, names[i]) == 0) {
			*out = (enum spf_action)i;
			return 0;
		}
	return -1;
}

static enum spf_action
action_of(const struct config *cfg, enum spf_result r)
{
	enum spf_action a = ACT_ACCEPT;

	if (action_parse(action_text(cfg, r), &a) < 0)
		a = ACT_ACCEPT;	/* refused at load (spf_config_check) */
	return a;
}

void
spf_config_check(struct config *cfg, struct config_load *ld, struct diag *diags)
{
	static const char *const opts[SPF_RESULT__COUNT] = {
		"spf.none", "spf.neutral", "spf.pass", "spf.fail", "spf.softfail",
		"spf.temperror", "spf.permerror",
	};

	(void)diags;
	for (int r = 0; r < SPF_RESULT__COUNT; r++) {
		enum spf_action a;

		if (action_parse(action_text(cfg, (enum spf_result)r), &a) < 0)
			config_option_diag(ld, opts[r], "must be reject, tempfail, tag or accept");
		else if (a == ACT_TEMPFAIL && r != SPF_TEMPERROR)
			config_option_diag(ld, opts[r],
					   "tempfail is for temperror only (use reject or tag)");
	}
}

/* One query's evaluation(s). */
struct spf_state {
	struct policy_query *q;
	struct spf_eval *e;
	struct spf_request req;
	int phase;		/* 0: HELO identity, 1: MAIL FROM */
	int in_start, sync_done;
	struct spf_outcome last;
};

/* Copies s into a quoted-string's or comment's inside: printable ASCII,
 * '"', '\\', '(' and ')' turned into '?'. */
static void
clean_copy(char *out, size_t size, const char *s)
{
	size_t n = 0;

	for (; *s != '\0' && n + 1 < size; s++) {
		unsigned char c = (unsigned char)*s;
		out[n++] = (c < 0x20 || c >= 0x7F || c == '"' || c == '\\' || c == '(' ||
			    c == ')') ? '?' : (char)c;
	}
	out[n] = '\0';
}

/* The Received-SPF field (RFC 7208 9.1) into out. */
static void
received_spf(const struct policy_txn *t, const struct spf_outcome *o, char *out, size_t size)
{
	char who[260], helo[260], client[64], host[260];

	clean_copy(who, sizeof(who), o->sender);
	clean_copy(helo, sizeof(helo), t->helo);
	clean_copy(client, sizeof(client), t->client);
	clean_copy(host, sizeof(host), t->cfg->hostname != NULL ? t->cfg->hostname : "localhost");
	char text[700];
	switch (o->result) {
	case SPF_PASS:
		snprintf(text, sizeof(text), "domain of %s designates %s as permitted sender",
			 who, client);
		break;
	case SPF_FAIL:
		snprintf(text, sizeof(text),
			 "domain of %s does not designate %s as permitted sender", who, client);
		break;
	case SPF_SOFTFAIL:
		snprintf(text, sizeof(text), "transitioning domain of %s does not designate %s"
			 " as permitted sender", who, client);
		break;
	case SPF_NEUTRAL:
		snprintf(text, sizeof(text), "%s is neither permitted nor denied by domain of %s",
			 client, who);
		break;
	case SPF_NONE:
		snprintf(text, sizeof(text),
			 "domain of %s does not designate permitted sender hosts", who);
		break;
	case SPF_TEMPERROR:
		snprintf(text, sizeof(text), "error in processing during lookup of %s", who);
		break;
	default:
		snprintf(text, sizeof(text), "permanent error in processing domain of %s", who);
		break;
	}
	int n = snprintf(out, size, "Received-SPF: %s (%.255s: %s) client-ip=%s; "
			 "envelope-from=\"%s\"; helo=\"%s\"; receiver=%.255s; identity=%s;",
			 spf_result_name(o->result), host, text, client, who, helo, host, o->identity);
	if (n < 0 || (size_t)n >= size)
		out[0] = '\0';
}

/* Acts on the result in st->last. 1 when q was answered (st freed), 0 to
 * go on with the MAIL FROM identity. */
static int
spf_handle(struct spf_state *st)
{
	struct policy_query *q = st->q;
	struct policy_txn *t = q->txn;
	struct spf_outcome last = st->last;
	const struct spf_outcome *o = &last;
	enum spf_action a = action_of(t->cfg, o->result);
	enum cond_id cond = result_cond[o->result];
	const char *from = t->sender.mailbox != NULL ? t->sender.mailbox : "";
	char expl[SPF_EXPLAIN_MAX];
	if (o->explanation[0] != '\0')
		snprintf(expl, sizeof(expl), "%s", o->explanation);
	else
		snprintf(expl, sizeof(expl), "%.200s does not designate %.64s as permitted sender",
			 o->domain, t->client);
	struct kv kv[] = { KV("client", t->client), KV("identity", o->identity),
			   KVA("from", from, strlen(from)), KV("domain", o->domain),
			   KV("reason", o->reason), KV("explanation", expl) };
	int refuse = a == ACT_REJECT || a == ACT_TEMPFAIL;

	struct log_ctx ctx = { NULL, NULL, NULL };

	if (!refuse)
		catalog_log(cond, &ctx, kv, ARRAY_LEN(kv));
	if (st->phase == 0 && !refuse)
		return 0;	/* the HELO name passed: on to MAIL FROM */
	t->spf_pass = st->phase == 1 && o->result == SPF_PASS;
	q->check_data = NULL;
	free(st);
	if (refuse) {
		policy_refuse(q, cond, kv, ARRAY_LEN(kv));
		return 1;
	}
	struct policy_verdict v;
	policy_verdict_set(&v, POLICY_CONTINUE, COND__COUNT);
	if (a == ACT_TAG || t->cfg->spf_header) {
		char field[POLICY_HEADER_MAX + 1];
		received_spf(t, o, field, sizeof(field));
		if (field[0] != '\0' && policy_verdict_tag(&v, field) < 0) {
			/* too long for one line: taken without it */
		}
	}
	policy_answer(q, &v);
	return 1;
}

static void spf_phase(struct spf_state *st);

static void
spf_done(void *arg, const struct spf_outcome *o)
{
	struct spf_state *st = arg;

	st->last = *o;
	st->e = NULL;
	if (st->in_start) {
		st->sync_done = 1;
		return;
	}
	if (!spf_handle(st)) {
		st->phase = 1;
		spf_phase(st);
	}
}

static void
spf_phase(struct spf_state *st)
{
	for (;;) {
		st->req.helo_identity = st->phase == 0;
		st->sync_done = 0;
		st->in_start = 1;
		struct spf_eval *e = spf_start(st->q->txn->dns, &st->req, spf_done, st);
		st->in_start = 0;
		if (!st->sync_done) {
			st->e = e;
			return;
		}
		if (spf_handle(st))
			return;
		st->phase = 1;
	}
}

/* Recipients never refused by this check: <postmaster>, postmaster@ and
 * abuse@ of our domains. */
static int
rcpt_exempt(const struct policy_txn *t)
{
	if (t->rcpt.is_postmaster)
		return 1;
	if (t->rcpt.domain == NULL || t->rcpt.local == NULL ||
	    !config_is_local_domain(t->cfg, t->rcpt.domain, strlen(t->rcpt.domain)))
		return 0;
	return strcasecmp(t->rcpt.local, "postmaster") == 0 ||
	       strcasecmp(t->rcpt.local, "abuse") == 0;
}

static void
spf_rcpt(struct policy_query *q)
{
	struct policy_txn *t = q->txn;

	/* skipped: trusted, authenticated, no resolver or address, exempt
	 * recipient, or an earlier recipient already took the message */
	if (t->trusted || t->auth_user[0] != '\0' || t->dns == NULL || t->peer == NULL ||
	    rcpt_exempt(t) ||
	    (t->headers.len > 0 && memmem(t->headers.data, t->headers.len, "Received-SPF:", 13))) {
		policy_answer_continue(q);
		return;
	}
	struct spf_state *st = xcalloc(1, sizeof(*st));
	st->q = q;
	if (t->peer->ss_family == AF_INET) {
		st->req.family = AF_INET;
		memcpy(st->req.addr, &((const struct sockaddr_in *)t->peer)->sin_addr, 4);
	} else {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)t->peer)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			st->req.family = AF_INET;
			memcpy(st->req.addr, a6->s6_addr + 12, 4);
		} else {
			st->req.family = AF_INET6;
			memcpy(st->req.addr, a6->s6_addr, 16);
		}
	}
	st->req.sender = t->sender.mailbox != NULL ? t->sender.mailbox : "";
	st->req.helo = t->helo;
	st->req.receiver = t->cfg->hostname;
	st->phase = t->cfg->spf_helo && t->helo[0] != '\0' ? 0 : 1;
	q->check_data = st;
	spf_phase(st);
}

static void
spf_cancel_query(struct policy_query *q)
{
	struct spf_state *st = q->check_data;

	if (st == NULL)
		return;
	spf_cancel(st->e);
	free(st);
	q->check_data = NULL;
}

const struct policy_check policy_check_spf = {
	.name = "spf",
	.ask = { [POLICY_STAGE_RCPT] = spf_rcpt },
	.cancel = spf_cancel_query,
};
