/*
 * policy_greylist.c - check "greylist" at RCPT: a triplet (greylist.key:
 * the client's network, sender, recipient, HELO) seen for the first time,
 * or less than greylist.delay ago, is refused with 451 4.7.1 and the time
 * left; a retry after the delay and within greylist.retry_window passes,
 * and the passed triplet is remembered for greylist.expire. A client
 * network with greylist.auto_allow passed triplets passes outright.
 *
 * The triplets live in the state store (store/state.h): one read per
 * recipient, answered on the session's loop; the record of what happened
 * (a first attempt, a pass) is written after the answer went out, and not
 * at all in a simulation. A failing store fails open (logged). Exempt:
 * trusted networks, authenticated clients, DNSWL hits, access-map OKs, an
 * SPF pass for a domain of greylist.spf_pass_domains, postmaster@ and
 * abuse@ of local domains.
 */
#include "policy_checks.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "log.h"
#include "state.h"

#define GREY_PART_MAX 256

enum grey_outcome { GREY_WAIT, GREY_RETRIED, GREY_KNOWN, GREY_AUTO, GREY_ERROR };

/* One recipient's greylisting: a read of the triplet (and of its
 * network's auto-allow count), then, once the answer is given, the write
 * that records what happened. */
struct grey_job {
	struct state_req req;
	struct state_op ops[2];
	struct policy_query *q;		/* NULL once answered or cancelled */
	int writing;			/* the second request (the record) is out */
	/* inputs, copied */
	char sid[17];
	char client[64];
	char network[64];		/* "192.0.2.0/24" */
	char from[GREY_PART_MAX];
	char to[GREY_PART_MAX];
	char key[KV_KEY_MAX];		/* the triplet's key */
	char allow_key[KV_KEY_MAX];	/* the network's auto-allow counter */
	char first[32];			/* "w:<first attempt>" */
	unsigned delay, window, expire, auto_allow;
	int simulate;			/* read only */
	uint64_t now;
};

static void
grey_log_error(const struct grey_job *j, const char *op, const char *key)
{
	struct log_ctx ctx = { .sid = j->sid[0] != '\0' ? j->sid : NULL };
	struct kv kv[] = { KV("client", j->client), KV("op", op), KV("key", key),
			   KV("err", j->req.err) };

	catalog_log(COND_POLICY_GREYLIST_ERROR, &ctx, kv, ARRAY_LEN(kv));
}

static void
grey_written(struct state_req *req)
{
	struct grey_job *j = req->arg;

	if (req->failed)
		grey_log_error(j, "put", j->key);
	free(j);
}

/* Records the outcome (after the answer went out): a new triplet's first
 * attempt, or a passed one remembered for expire (and counted for its
 * network's auto-allow). Frees j when done. */
static void
grey_record(struct grey_job *j, enum grey_outcome out)
{
	size_t n = 0;

	if (j->simulate || out == GREY_AUTO || out == GREY_ERROR || (out == GREY_WAIT && j->first[0] == '\0')) {
		free(j);
		return;
	}
	if (out == GREY_WAIT) {
		state_op_set(&j->ops[n++], STATE_ADD, j->key, j->first, strlen(j->first), 0, j->window);
	} else {
		state_op_set(&j->ops[n++], STATE_PUT, j->key, "p", 1, 0, j->expire);
		if (j->auto_allow > 0 && out == GREY_RETRIED)
			state_op_set(&j->ops[n++], STATE_INCR, j->allow_key, NULL, 0, 1, j->expire);
	}
	j->req.ops = j->ops;
	j->req.nops = n;
	j->req.done = grey_written;
	j->req.cancel = policy_state_drop;
	j->req.arg = j;
	j->writing = 1;
	if (state_submit(policy_state(), j->req.loop, &j->req) < 0)
		free(j);
}

/* What the read says. */
static enum grey_outcome
grey_judge(struct grey_job *j, uint64_t *wait_out)
{
	const struct state_op *allow = j->auto_allow > 0 ? &j->ops[0] : NULL;
	const struct state_op *trip = &j->ops[j->auto_allow > 0 ? 1 : 0];
	uint64_t first;

	if (j->req.failed)
		return GREY_ERROR;
	if (allow != NULL && allow->found && allow->num >= (int64_t)j->auto_allow)
		return GREY_AUTO;
	if (trip->found && trip->out_len == 1 && trip->out[0] == 'p')
		return GREY_KNOWN;
	if (trip->found && trip->out_len > 2 && trip->out[0] == 'w' && trip->out[1] == ':' &&
	    slice_to_u64((struct slice){ (const uint8_t *)trip->out + 2, trip->out_len - 2 }, j->now, &first) == 0) {
		if (j->now - first >= j->delay)
			return GREY_RETRIED;
		*wait_out = j->delay - (j->now - first);
		return GREY_WAIT;
	}
	/* new (or unreadable): the first attempt */
	*wait_out = j->delay;
	if (snprintf(j->first, sizeof(j->first), "w:%lu", (unsigned long)j->now) < 0)
		j->first[0] = '\0';
	return GREY_WAIT;
}

static void
grey_read(struct state_req *req)
{
	struct grey_job *j = req->arg;
	struct policy_query *q = j->q;
	struct log_ctx ctx = { .sid = j->sid[0] != '\0' ? j->sid : NULL };
	static const char *const reasons[] = { [GREY_RETRIED] = "retried",
					       [GREY_KNOWN] = "known",
					       [GREY_AUTO] = "auto_allow" };
	uint64_t wait_s = 0;
	enum grey_outcome out = grey_judge(j, &wait_s);

	if (q == NULL) {
		free(j);	/* the chain gave up on it meanwhile */
		return;
	}
	j->q = NULL;
	q->check_data = NULL;
	if (out == GREY_ERROR) {
		grey_log_error(j, "get", j->key);
		if (!policy_state_fail(q, "greylist", q->txn->cfg->greylist_on_state_error,
				       j->req.err))
			policy_answer_continue(q);	/* fail open */
		free(j);
		return;
	}
	if (out == GREY_WAIT) {
		struct kv kv[] = { KV("client", j->client), KV("network", j->network),
				   KVA("from", j->from, strlen(j->from)), KVA("to", j->to, strlen(j->to)),
				   KVU("wait_s", wait_s) };
		struct policy_verdict vd;
		policy_verdict_set(&vd, POLICY_TEMPFAIL, COND_POLICY_GREYLISTED);
		if (policy_verdict_kvs_add(&vd, kv, ARRAY_LEN(kv)) < 0)
			vd.nparams = 0;
		grey_record(j, out);
		policy_answer(q, &vd);
		return;
	}
	{
		struct kv kv[] = { KV("client", j->client), KV("network", j->network),
				   KVA("from", j->from, strlen(j->from)), KVA("to", j->to, strlen(j->to)),
				   KV("reason", reasons[out]) };
		catalog_log(COND_POLICY_GREYLIST_PASSED, &ctx, kv, ARRAY_LEN(kv));
	}
	grey_record(j, out);
	policy_answer_continue(q);
}

/* ---- loop side ------------------------------------------------------------ */

/* The client's network as text ("192.0.2.0/24"); -1 if peer is not IP. */
static int
grey_network(const struct sockaddr_storage *peer, unsigned p4, unsigned p6, char *out,
	     size_t outsz)
{
	unsigned char a[16];
	char text[INET6_ADDRSTRLEN];
	size_t len;
	unsigned prefix;
	int af;

	if (peer == NULL)
		return -1;
	if (peer->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)peer;
		memcpy(a, &s4->sin_addr, 4);
		len = 4, prefix = p4 > 32 ? 32 : p4, af = AF_INET;
	} else if (peer->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)peer;
		memcpy(a, &s6->sin6_addr, 16);
		len = 16, prefix = p6 > 128 ? 128 : p6, af = AF_INET6;
	} else {
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned bits = prefix > i * 8 ? prefix - (unsigned)i * 8 : 0;
		if (bits < 8)
			a[i] &= (unsigned char)(0xffu << (8 - bits));
	}
	if (inet_ntop(af, a, text, sizeof(text)) == NULL)
		return -1;
	int n = snprintf(out, outsz, "%s/%u", text, prefix);
	return n < 0 || (size_t)n >= outsz ? -1 : 0;
}

static int
grey_key_has(const struct config *cfg, const char *word)
{
	for (size_t i = 0; i < cfg->greylist_key.n; i++)
		if (strcasecmp(cfg->greylist_key.v[i], word) == 0)
			return 1;
	return 0;
}

/* The triplet's key, per greylist.key; -1 if it does not fit. */
static int
grey_key(const struct policy_txn *t, const struct grey_job *j, char *out, size_t outsz)
{
	const struct config *cfg = t->cfg;
	int n = snprintf(out, outsz, "grey:%s|%s|%s|%s",
			 grey_key_has(cfg, "client") ? j->network : "",
			 grey_key_has(cfg, "sender") ? j->from : "",
			 grey_key_has(cfg, "recipient") ? j->to : "",
			 grey_key_has(cfg, "helo") && t->helo != NULL ? t->helo : "");
	return n < 0 || (size_t)n >= outsz ? -1 : 0;
}

/* 1 when an SPF pass for the sender's domain exempts it
 * (greylist.spf_pass_domains: the domain, a parent of it, or "*"). */
static int
grey_spf_exempt(const struct policy_txn *t)
{
	const char *d = t->sender.domain;
	size_t dl;

	if (!t->spf_pass || d == NULL || d[0] == '\0')
		return 0;
	dl = strlen(d);
	for (size_t i = 0; i < t->cfg->greylist_spf_pass_domains.n; i++) {
		const char *w = t->cfg->greylist_spf_pass_domains.v[i];
		size_t wl = strlen(w);

		if (strcmp(w, "*") == 0 || strcasecmp(w, d) == 0 ||
		    (dl > wl && d[dl - wl - 1] == '.' && strcasecmp(d + dl - wl, w) == 0))
			return 1;
	}
	return 0;
}

static void
grey_ask(struct policy_query *q)
{
	struct policy_txn *t = q->txn;
	const struct config *cfg = t->cfg;
	struct grey_job *j;
	const char *from = t->sender.mailbox != NULL ? t->sender.mailbox : "";
	const char *to = t->rcpt.mailbox != NULL ? t->rcpt.mailbox : "";
	size_t n = 0;

	if (policy_state() == NULL || t->trusted ||
	    (t->auth_user != NULL && t->auth_user[0] != '\0') || t->dnswl || t->access_ok ||
	    policy_rcpt_exempt(t) || grey_spf_exempt(t)) {
		policy_answer_continue(q);
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->q = q;
	j->delay = cfg->greylist_delay;
	j->window = cfg->greylist_retry_window > cfg->greylist_delay ?
			    cfg->greylist_retry_window : cfg->greylist_delay + 1;
	j->expire = cfg->greylist_expire;
	j->auto_allow = cfg->greylist_auto_allow;
	j->simulate = t->simulate;
	j->now = (uint64_t)time(NULL);
	if (slice_copy(slice_from_cstr(t->sid != NULL ? t->sid : ""), j->sid, sizeof(j->sid)) < 0 ||
	    slice_copy(slice_from_cstr(t->client != NULL ? t->client : ""), j->client,
		       sizeof(j->client)) < 0 ||
	    slice_copy(slice_from_cstr(from), j->from, sizeof(j->from)) < 0 ||
	    slice_copy(slice_from_cstr(to), j->to, sizeof(j->to)) < 0 ||
	    grey_network(t->peer, cfg->greylist_client_prefix4, cfg->greylist_client_prefix6,
			 j->network, sizeof(j->network)) < 0 ||
	    grey_key(t, j, j->key, sizeof(j->key)) < 0 ||
	    snprintf(j->allow_key, sizeof(j->allow_key), "greyok:%s", j->network) < 0) {
		free(j);	/* not greylistable (too long, not IP): pass */
		policy_answer_continue(q);
		return;
	}
	if (j->auto_allow > 0)
		state_op_set(&j->ops[n++], STATE_GET, j->allow_key, NULL, 0, 0, 0);
	state_op_set(&j->ops[n++], STATE_GET, j->key, NULL, 0, 0, 0);
	if (policy_state_submit(q, &j->req, j->ops, n, grey_read, j) < 0) {
		free(j);
		policy_answer_continue(q);
	}
}

static void
grey_cancel(struct policy_query *q)
{
	struct grey_job *j = q->check_data;

	if (j != NULL)
		j->q = NULL;	/* the store still has it: grey_read frees it */
	q->check_data = NULL;
}

void
greylist_config_check(struct config *cfg, struct config_load *ld, struct diag *diags)
{
	static const char *const words[] = { "client", "sender", "recipient", "helo" };

	(void)diags;
	if (cfg->greylist_key.n == 0)
		config_option_diag(ld, "greylist.key", "must name at least one part");
	for (size_t i = 0; i < cfg->greylist_key.n; i++) {
		size_t w = 0;

		while (w < ARRAY_LEN(words) && strcasecmp(cfg->greylist_key.v[i], words[w]) != 0)
			w++;
		if (w == ARRAY_LEN(words)) {
			config_option_diag(ld, "greylist.key",
					   "parts are client, sender, recipient and helo");
			break;
		}
	}
	if (cfg->greylist_retry_window <= cfg->greylist_delay)
		config_option_diag(ld, "greylist.retry_window",
				   "must be longer than greylist.delay");
}

const struct policy_check policy_check_greylist = {
	.name = "greylist",
	.ask = { [POLICY_STAGE_RCPT] = grey_ask },
	.cancel = grey_cancel,
	.fail_open = 1,
};
