/*
 * policy_greylist.c - check "greylist" at RCPT: a triplet (greylist.key:
 * the client's network, sender, recipient, HELO) seen for the first time,
 * or less than greylist.delay ago, is refused with 451 4.7.1 and the time
 * left; a retry after the delay and within greylist.retry_window passes,
 * and the passed triplet is remembered for greylist.expire. A client
 * network with greylist.auto_allow passed triplets passes outright.
 *
 * The triplets live in the state store (store/kv_store.h), which blocks:
 * the lookup runs on the "greylist" class of the worker pool and answers
 * on the session's loop. A failing store fails open (logged). Exempt:
 * trusted networks, authenticated clients, DNSWL hits, access-map OKs,
 * postmaster@ and abuse@ of local domains.
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

#include "kv_store.h"
#include "log.h"
#include "workpool.h"

#define GREY_PART_MAX 256

enum grey_outcome { GREY_WAIT, GREY_RETRIED, GREY_KNOWN, GREY_AUTO, GREY_ERROR };

struct grey_job {
	struct workpool_job wj;		/* first: the pool hands it back */
	struct policy_query *q;		/* NULL once cancelled */
	/* inputs, copied */
	char sid[17];
	char client[64];
	char network[64];		/* "192.0.2.0/24" */
	char from[GREY_PART_MAX];
	char to[GREY_PART_MAX];
	char key[KV_KEY_MAX];		/* the triplet's key */
	char allow_key[KV_KEY_MAX];	/* the network's auto-allow counter */
	unsigned delay, window, expire, auto_allow;
	/* results */
	enum grey_outcome out;
	uint64_t wait_s;
	const char *op;			/* GREY_ERROR: what failed */
	const char *err_key;
	char err[128];
};

struct grey_service {
	struct workpool *wp;	/* borrowed */
	int cls;
	struct kv_store *kv;	/* borrowed */
};

/* Set by policy_greylist_init() before the loops run; NULL: the check
 * passes everything (no store). */
static struct grey_service *svc;

/* ---- worker side --------------------------------------------------------- */

static int
grey_failed(struct grey_job *j, const char *op, const char *key)
{
	j->out = GREY_ERROR;
	j->op = op;
	j->err_key = key;
	if (slice_copy(slice_from_cstr(kv_error()), j->err, sizeof(j->err)) < 0)
		j->err[0] = '\0';
	return -1;
}

/* A triplet that passed: remembered for expire, and counted for its
 * network's auto-allow. */
static void
grey_remember(struct grey_job *j, struct kv_store *kv)
{
	int64_t n;

	if (kv_put(kv, j->key, "p", 1, j->expire) < 0) {
		(void)grey_failed(j, "put", j->key);
		return;
	}
	if (j->auto_allow > 0 && j->out == GREY_RETRIED &&
	    kv_incr(kv, j->allow_key, 1, j->expire, &n) < 0)
		(void)grey_failed(j, "incr", j->allow_key);
}

static void
grey_run(struct workpool_job *wj)
{
	struct grey_job *j = (struct grey_job *)wj;
	struct kv_store *kv = svc->kv;
	struct buf v;
	uint64_t now = (uint64_t)time(NULL), first;
	int64_t allowed = 0;
	int r;

	buf_init(&v, 64);
	if (j->auto_allow > 0) {
		r = kv_get_int(kv, j->allow_key, &allowed, NULL);
		if (r < 0) {
			(void)grey_failed(j, "get", j->allow_key);
			return;
		}
		if (r == 1 && allowed >= (int64_t)j->auto_allow) {
			j->out = GREY_AUTO;
			return;
		}
	}
	r = kv_get(kv, j->key, &v, NULL);
	if (r < 0) {
		buf_fini(&v);
		(void)grey_failed(j, "get", j->key);
		return;
	}
	if (r == 1 && v.len == 1 && v.data[0] == 'p') {
		j->out = GREY_KNOWN;
		grey_remember(j, kv);	/* expire starts again */
	} else if (r == 1 && v.len > 2 && v.data[0] == 'w' && v.data[1] == ':' &&
		   slice_to_u64((struct slice){ v.data + 2, v.len - 2 }, now, &first) == 0) {
		if (now - first >= j->delay) {
			j->out = GREY_RETRIED;
			grey_remember(j, kv);
		} else {
			j->out = GREY_WAIT;
			j->wait_s = j->delay - (now - first);
		}
	} else {
		/* new (or unreadable): the first attempt */
		char w[32];
		int n = snprintf(w, sizeof(w), "w:%lu", (unsigned long)now);

		j->out = GREY_WAIT;
		j->wait_s = j->delay;
		if (n < 0 || (size_t)n >= sizeof(w) ||
		    kv_put(kv, j->key, w, (size_t)n, j->window) < 0)
			(void)grey_failed(j, "put", j->key);
	}
	buf_fini(&v);
}

static void
grey_cancel_job(struct workpool_job *wj)
{
	free(wj);
}

static void
grey_done(struct loop *loop, struct workpool_job *wj)
{
	struct grey_job *j = (struct grey_job *)wj;
	struct policy_query *q = j->q;
	struct log_ctx ctx = { .sid = j->sid[0] != '\0' ? j->sid : NULL };
	static const char *const reasons[] = { [GREY_RETRIED] = "retried",
					       [GREY_KNOWN] = "known",
					       [GREY_AUTO] = "auto_allow" };

	(void)loop;
	if (q == NULL) {
		free(j);	/* the chain gave up on it meanwhile */
		return;
	}
	q->check_data = NULL;
	if (j->out == GREY_ERROR) {
		struct kv kv[] = { KV("client", j->client), KV("op", j->op),
				   KV("key", j->err_key), KV("err", j->err) };
		catalog_log(COND_POLICY_GREYLIST_ERROR, &ctx, kv, ARRAY_LEN(kv));
		free(j);
		policy_answer_continue(q);	/* fail open */
		return;
	}
	if (j->out == GREY_WAIT) {
		struct kv kv[] = { KV("client", j->client), KV("network", j->network),
				   KVA("from", j->from, strlen(j->from)), KVA("to", j->to, strlen(j->to)),
				   KVU("wait_s", j->wait_s) };
		struct policy_verdict vd;
		policy_verdict_set(&vd, POLICY_TEMPFAIL, COND_POLICY_GREYLISTED);
		if (policy_verdict_kvs_add(&vd, kv, ARRAY_LEN(kv)) < 0)
			vd.nparams = 0;
		free(j);
		policy_answer(q, &vd);
		return;
	}
	{
		struct kv kv[] = { KV("client", j->client), KV("network", j->network),
				   KVA("from", j->from, strlen(j->from)), KVA("to", j->to, strlen(j->to)),
				   KV("reason", reasons[j->out]) };
		catalog_log(COND_POLICY_GREYLIST_PASSED, &ctx, kv, ARRAY_LEN(kv));
	}
	free(j);
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

static void
grey_ask(struct policy_query *q)
{
	struct policy_txn *t = q->txn;
	const struct config *cfg = t->cfg;
	struct grey_job *j;
	const char *from = t->sender.mailbox != NULL ? t->sender.mailbox : "";
	const char *to = t->rcpt.mailbox != NULL ? t->rcpt.mailbox : "";

	if (svc == NULL || t->trusted || (t->auth_user != NULL && t->auth_user[0] != '\0') ||
	    t->dnswl || t->access_ok || policy_rcpt_exempt(t)) {
		policy_answer_continue(q);
		return;
	}
	j = xcalloc(1, sizeof(*j));
	workpool_job_init(&j->wj, grey_run, grey_done, grey_cancel_job);
	j->q = q;
	j->delay = cfg->greylist_delay;
	j->window = cfg->greylist_retry_window > cfg->greylist_delay ?
			    cfg->greylist_retry_window : cfg->greylist_delay + 1;
	j->expire = cfg->greylist_expire;
	j->auto_allow = cfg->greylist_auto_allow;
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
	q->check_data = j;
	if (workpool_submit(svc->wp, svc->cls, &j->wj, q->run->loop) < 0) {
		q->check_data = NULL;
		free(j);
		policy_answer_continue(q);
	}
}

static void
grey_cancel(struct policy_query *q)
{
	struct grey_job *j = q->check_data;

	if (j != NULL)
		j->q = NULL;	/* the pool still owns it: grey_done frees it */
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

/* ---- service ---------------------------------------------------------------- */

int
policy_greylist_init(struct kv_store *state, struct workpool *wp, unsigned workers)
{
	struct grey_service *v;

	if (svc != NULL || state == NULL)
		return 0;
	v = xcalloc(1, sizeof(*v));
	v->wp = wp;
	v->kv = state;
	v->cls = workpool_class_new(wp, "greylist", workers > 0 ? workers : 1, 0);
	if (v->cls < 0) {
		free(v);
		return -1;
	}
	svc = v;
	return 0;
}

void
policy_greylist_shutdown(void)
{
	struct grey_service *v = svc;

	if (v == NULL)
		return;
	workpool_class_stop(v->wp, v->cls);
	svc = NULL;
	free(v);
}

const struct policy_check policy_check_greylist = {
	.name = "greylist",
	.ask = { [POLICY_STAGE_RCPT] = grey_ask },
	.cancel = grey_cancel,
	.fail_open = 1,
};
