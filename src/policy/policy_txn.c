/*
 * policy_txn.c - the transaction as the checks see it (see policy.h):
 * copies of the envelope, the RCPT output slots, the local mailboxes and
 * final destinations of the accepted recipients, the content counts,
 * score and tags, and the checks' work for after the commit.
 *
 * Owned by the session; every string in it is its own copy.
 */
#include "policy.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void
policy_path_clear(struct policy_path *p)
{
	free(p->mailbox);
	free(p->local);
	free(p->domain);
	memset(p, 0, sizeof(*p));
}

void
policy_path_set(struct policy_path *p, const char *mailbox, size_t mailbox_len,
		const char *local, size_t local_len, const char *domain, size_t domain_len)
{
	policy_path_clear(p);
	p->mailbox = xstrndup(mailbox, mailbox_len);
	p->local = xstrndup(local, local_len);
	p->domain = xstrndup(domain, domain_len);
}

void
policy_txn_init(struct policy_txn *txn)
{
	memset(txn, 0, sizeof(*txn));
	txn->auth_user = "";
	txn->helo = "";
	txn->client = "";
	buf_init(&txn->headers, POLICY_HEADERS_MAX);
	txn->expansion.cond = COND__COUNT;
}

void
policy_txn_rcpt_reset(struct policy_txn *txn)
{
	resolve_result_fini(&txn->expansion);
	memset(&txn->expansion, 0, sizeof(txn->expansion));
	txn->expansion.cond = COND__COUNT;
	txn->routed = 0;
	txn->route[0] = '\0';
	txn->flag = NULL;
}

static void
txn_clear_envelope(struct policy_txn *txn)
{
	policy_path_clear(&txn->sender);
	policy_path_clear(&txn->rcpt);
	policy_txn_rcpt_reset(txn);
	for (size_t i = 0; i < txn->nlocal; i++)
		free(txn->local_boxes[i]);
	free(txn->local_boxes);
	free(txn->local_accts);
	txn->local_boxes = NULL;
	txn->local_accts = NULL;
	txn->nlocal = 0;
	for (size_t i = 0; i < txn->ndests; i++)
		free(txn->dests[i].addr);
	free(txn->dests);
	txn->dests = NULL;
	txn->ndests = 0;
	policy_afters_run(&txn->after, 0);	/* not handed to a commit */
}

void
policy_txn_fini(struct policy_txn *txn)
{
	txn_clear_envelope(txn);
	buf_fini(&txn->headers);
}

void
policy_txn_reset(struct policy_txn *txn)
{
	txn_clear_envelope(txn);
	txn->has_size = 0;
	txn->size = 0;
	txn->smtputf8 = 0;
	txn->nrcpt_ok = 0;
	txn->nrcpt_exempt = 0;
	memset(&txn->content, 0, sizeof(txn->content));
	txn->score = 0;
	txn->ntrace = 0;
	txn->trace_dropped = 0;
	txn->dnsbl_counted = 0;
	txn->spf_pass = 0;
	if (txn->access_ok == 2)
		txn->access_ok = 0;
	buf_reset(&txn->headers);
}

void
policy_txn_trace_add(struct policy_txn *txn, enum policy_stage stage, const char *check,
		     enum policy_action action, uint64_t ms, int score, int tagged)
{
	struct policy_trace *t;

	if (txn->ntrace >= POLICY_TRACE_MAX) {
		if (txn->trace_dropped < UINT_MAX)
			txn->trace_dropped++;
		return;
	}
	t = &txn->trace[txn->ntrace++];
	t->check = check;
	t->ms = ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
	t->score = score;
	t->stage = (uint8_t)stage;
	t->action = (uint8_t)action;
	t->tagged = tagged != 0;
}

static const char *const trace_stages[POLICY_STAGE__COUNT] = {
	"connect", "helo", "mail", "rcpt", "data", "eod",
};

size_t
policy_txn_trace_format(const struct policy_txn *txn, char *out, size_t size)
{
	size_t len = 0;
	unsigned dropped = txn->trace_dropped;

	if (size == 0)
		return 0;
	out[0] = '\0';
	for (size_t i = 0; i < txn->ntrace; i++) {
		const struct policy_trace *t = &txn->trace[i];
		char one[160], score[24] = "";
		int n;

		if (t->score != 0 && snprintf(score, sizeof(score), "+score%d", t->score) < 0)
			score[0] = '\0';
		n = snprintf(one, sizeof(one), "%s%s:%s=%s%s%s/%" PRIu32 "ms", len ? "," : "",
			     t->stage < POLICY_STAGE__COUNT ? trace_stages[t->stage] : "?",
			     t->check ? t->check : "?", policy_action_name(t->action),
			     t->tagged ? "+tag" : "", score, t->ms);
		/* keep room for ",dropped:4294967295" */
		if (n < 0 || (size_t)n >= sizeof(one) || len + (size_t)n + 20 >= size) {
			dropped += (unsigned)(txn->ntrace - i);
			break;
		}
		memcpy(out + len, one, (size_t)n + 1);
		len += (size_t)n;
	}
	if (dropped > 0) {
		int n = snprintf(out + len, size - len, "%sdropped:%u", len ? "," : "", dropped);

		if (n > 0)
			len += (size_t)n < size - len ? (size_t)n : size - len - 1;
	}
	return len;
}

void
policy_txn_add_local(struct policy_txn *txn, const struct account *acct, const char *mailbox)
{
	size_t n = txn->nlocal;

	txn->local_accts = xrealloc(txn->local_accts, (n + 1) * sizeof(*txn->local_accts));
	txn->local_boxes = xrealloc(txn->local_boxes, (n + 1) * sizeof(*txn->local_boxes));
	txn->local_accts[n] = acct;
	txn->local_boxes[n] = xstrdup(mailbox);
	txn->nlocal = n + 1;
}

void
policy_txn_add_dest(struct policy_txn *txn, const char *addr)
{
	size_t n = txn->ndests;

	if ((n & (n - 1)) == 0)	/* capacity: the next power of two >= n */
		txn->dests = xrealloc(txn->dests, (n ? 2 * n : 1) * sizeof(*txn->dests));
	txn->dests[n].addr = xstrdup(addr);
	txn->dests[n].drop = 0;
	txn->ndests = n + 1;
}

int
policy_txn_after(struct policy_txn *txn, policy_after_fn fn, void *arg)
{
	struct policy_afters *a = &txn->after;

	if (a->n >= POLICY_AFTER_MAX)
		return -1;
	a->fn[a->n] = fn;
	a->arg[a->n] = arg;
	a->n++;
	return 0;
}

void
policy_afters_take(struct policy_txn *txn, struct policy_afters *out)
{
	*out = txn->after;
	memset(&txn->after, 0, sizeof(txn->after));
}

void
policy_afters_run(struct policy_afters *a, int committed)
{
	struct policy_afters run = *a;

	memset(a, 0, sizeof(*a));
	for (size_t i = 0; i < run.n && i < POLICY_AFTER_MAX; i++)
		run.fn[i](run.arg[i], committed);
}

int
policy_rcpt_exempt(const struct policy_txn *t)
{
	const char *lp = t->rcpt.local;

	if (t->rcpt.is_postmaster)
		return 1;
	if (lp == NULL || (strcasecmp(lp, "postmaster") != 0 && strcasecmp(lp, "abuse") != 0))
		return 0;
	return config_is_local_domain(t->cfg, t->rcpt.domain, strlen(t->rcpt.domain));
}
