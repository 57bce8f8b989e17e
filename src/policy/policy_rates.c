/*
 * policy_rates.c - check "rates": messages and recipients accepted per
 * client address, per sender and per authenticated user over a sliding
 * window (rates.window), counted in the shared state store so that every
 * node on one Redis counts the same. At MAIL the message counts are read
 * and one at its limit refuses the command with 451 4.7.1
 * POLICY-RATE-MESSAGES (before any data is sent); at RCPT the recipient
 * counts, POLICY-RATE-RECIPIENTS.
 *
 * Only what the session accepted counts: it tells the chain after its
 * 250 (policy_chain_accepted), and this check queues one INCR per count
 * then; a refused recipient or message never counts. Nothing is written
 * in a simulation. The window is two fixed buckets of rates.window
 * seconds, the previous one weighted by the part of it still inside the
 * window (rounded up, so a count never drops early at a bucket's edge).
 *
 * Who is counted: the client address unless it is in the trusted networks
 * or authenticated (an authenticated client is counted as its user); the
 * sender unless the client is trusted and not authenticated, never <>;
 * the user when authenticated, from anywhere. A limit of 0 neither
 * refuses nor counts. A failing store fails open by default (logged).
 */
#include "policy_checks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "state.h"

#define RATE_DIMS 3		/* client, sender, user */
#define RATE_WHO_MAX 256

enum rate_by { RATE_CLIENT, RATE_SENDER, RATE_USER };
static const char *const rate_by_name[RATE_DIMS] = { "client", "sender", "user" };

/* One read (two buckets per dimension) or one count (one INCR each). */
struct rate_job {
	struct state_req req;
	struct state_op ops[RATE_DIMS * 2];
	char keys[RATE_DIMS * 2][KV_KEY_MAX];
	struct policy_query *q;		/* NULL once answered or cancelled */
	size_t ndims;
	enum rate_by by[RATE_DIMS];
	unsigned limit[RATE_DIMS];
	char who[RATE_DIMS][RATE_WHO_MAX];
	int recipients;			/* counting recipients, not messages */
	unsigned window;
	uint64_t now;
	char sid[17];
	char client[64];
};

/* ---- keys -------------------------------------------------------------- */

/* "rate:<m|r><c|s|u>:<who>:<bucket>"; who lower-cased, octets outside
 * printable ASCII (and '%') as %XX. -1 if it does not fit. */
static int
rate_key(char *out, size_t outsz, int recipients, enum rate_by by, const char *who,
	 uint64_t bucket)
{
	static const char hex[] = "0123456789abcdef";
	size_t n;
	int w = snprintf(out, outsz, "rate:%c%c:", recipients ? 'r' : 'm', "csu"[by]);

	if (w < 0 || (size_t)w >= outsz)
		return -1;
	n = (size_t)w;
	for (const unsigned char *p = (const unsigned char *)who; *p != '\0'; p++) {
		unsigned char c = *p >= 'A' && *p <= 'Z' ? (unsigned char)(*p + 32) : *p;

		if (c > 0x20 && c < 0x7f && c != '%') {
			if (n + 1 >= outsz)
				return -1;
			out[n++] = (char)c;
		} else {
			if (n + 3 >= outsz)
				return -1;
			out[n++] = '%';
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 15];
		}
	}
	w = snprintf(out + n, outsz - n, ":%lu", (unsigned long)bucket);
	return w < 0 || (size_t)w >= outsz - n ? -1 : 0;
}

/* The limit of one dimension for this session (the listener's own value
 * or the [rates] one). */
static unsigned
rate_limit(const struct policy_txn *t, int recipients, enum rate_by by)
{
	static const enum config_override over[2][RATE_DIMS] = {
		{ CONFIG_OVER_RATES_CLIENT_MESSAGES, CONFIG_OVER_RATES_SENDER_MESSAGES,
		  CONFIG_OVER_RATES_USER_MESSAGES },
		{ CONFIG_OVER_RATES_CLIENT_RECIPIENTS, CONFIG_OVER_RATES_SENDER_RECIPIENTS,
		  CONFIG_OVER_RATES_USER_RECIPIENTS },
	};

	return config_listener_uint(t->cfg, t->lst, over[recipients ? 1 : 0][by]);
}

/* Fills j's dimensions that apply to t (limit > 0, who known, not
 * exempt). Returns how many. */
static size_t
rate_dims(struct rate_job *j, const struct policy_txn *t, int recipients)
{
	int authed = t->auth_user != NULL && t->auth_user[0] != '\0';
	const char *who[RATE_DIMS] = {
		!t->trusted && !authed ? t->client : NULL,
		(!t->trusted || authed) && !t->sender.is_null ? t->sender.mailbox : NULL,
		authed ? t->auth_user : NULL,
	};

	j->recipients = recipients;
	j->ndims = 0;
	for (int by = 0; by < RATE_DIMS; by++) {
		unsigned limit;

		if (who[by] == NULL || who[by][0] == '\0')
			continue;
		limit = rate_limit(t, recipients, (enum rate_by)by);
		if (limit == 0 ||
		    slice_copy(slice_from_cstr(who[by]), j->who[j->ndims], RATE_WHO_MAX) < 0)
			continue;
		j->by[j->ndims] = (enum rate_by)by;
		j->limit[j->ndims] = limit;
		j->ndims++;
	}
	return j->ndims;
}

static struct rate_job *
rate_job_new(const struct policy_txn *t)
{
	struct rate_job *j = xcalloc(1, sizeof(*j));

	j->window = t->cfg->rates_window > 0 ? t->cfg->rates_window : 1;
	j->now = (uint64_t)time(NULL);
	if (slice_copy(slice_from_cstr(t->sid != NULL ? t->sid : ""), j->sid, sizeof(j->sid)) < 0)
		j->sid[0] = '\0';
	if (slice_copy(slice_from_cstr(t->client != NULL ? t->client : ""), j->client,
		       sizeof(j->client)) < 0)
		j->client[0] = '\0';
	return j;
}

static void
rate_log_error(const struct rate_job *j, const char *op)
{
	struct log_ctx ctx = { .sid = j->sid[0] != '\0' ? j->sid : NULL };
	struct kv kv[] = { KV("client", j->client), KV("op", op), KV("err", j->req.err) };

	catalog_log(COND_POLICY_RATE_ERROR, &ctx, kv, ARRAY_LEN(kv));
}

/* ---- the check: read and judge ----------------------------------------- */

/* The count of dimension d in the last window: the current bucket, and
 * the previous one weighted by what of it is still inside (rounded up). */
static uint64_t
rate_count(const struct rate_job *j, size_t d)
{
	const struct state_op *cur = &j->ops[2 * d], *prev = &j->ops[2 * d + 1];
	uint64_t w = j->window, left = w - j->now % w;
	uint64_t c = cur->found && cur->num > 0 ? (uint64_t)cur->num : 0;
	uint64_t p = prev->found && prev->num > 0 ? (uint64_t)prev->num : 0;

	return c + (p * left + w - 1) / w;
}

static void
rate_read(struct state_req *req)
{
	struct rate_job *j = req->arg;
	struct policy_query *q = j->q;

	if (q == NULL) {
		free(j);	/* the chain gave up on it meanwhile */
		return;
	}
	j->q = NULL;
	q->check_data = NULL;
	if (req->failed) {
		rate_log_error(j, "get");
		if (!policy_state_fail(q, "rates", q->txn->cfg->rates_on_state_error, req->err))
			policy_answer_continue(q);	/* fail open */
		free(j);
		return;
	}
	for (size_t d = 0; d < j->ndims; d++) {
		uint64_t count = rate_count(j, d);

		if (count < j->limit[d])
			continue;
		struct kv kv[] = { KV("client", j->client), KV("by", rate_by_name[j->by[d]]),
				   KV("who", j->who[d]), KVU("count", count),
				   KVU("limit", j->limit[d]), KVU("window_s", j->window) };
		policy_refuse(q, j->recipients ? COND_POLICY_RATE_RECIPIENTS : COND_POLICY_RATE_MESSAGES,
			      kv, ARRAY_LEN(kv));
		free(j);
		return;
	}
	policy_answer_continue(q);
	free(j);
}

static void
rate_ask(struct policy_query *q, int recipients)
{
	const struct policy_txn *t = q->txn;
	struct rate_job *j;
	uint64_t bucket;

	if (policy_state() == NULL || t->access_ok) {
		policy_answer_continue(q);
		return;
	}
	j = rate_job_new(t);
	bucket = j->now / j->window;
	if (rate_dims(j, t, recipients) == 0) {
		free(j);
		policy_answer_continue(q);
		return;
	}
	for (size_t d = 0; d < j->ndims; d++) {
		for (size_t b = 0; b < 2; b++) {
			char *k = j->keys[2 * d + b];

			if (rate_key(k, KV_KEY_MAX, recipients, j->by[d], j->who[d], bucket - b) < 0) {
				free(j);	/* cannot be: who is bounded */
				policy_answer_continue(q);
				return;
			}
			state_op_set(&j->ops[2 * d + b], STATE_GET, k, NULL, 0, 0, 0);
		}
	}
	j->q = q;
	if (policy_state_submit(q, &j->req, j->ops, 2 * j->ndims, rate_read, j) < 0) {
		free(j);
		policy_answer_continue(q);
	}
}

static void
rate_mail(struct policy_query *q)
{
	rate_ask(q, 0);
}

static void
rate_rcpt(struct policy_query *q)
{
	rate_ask(q, 1);
}

static void
rate_cancel(struct policy_query *q)
{
	struct rate_job *j = q->check_data;

	if (j != NULL)
		j->q = NULL;	/* the store still has it: rate_read frees it */
	q->check_data = NULL;
}

/* ---- counting what was accepted ---------------------------------------- */

static void
rate_counted(struct state_req *req)
{
	struct rate_job *j = req->arg;

	if (req->failed)
		rate_log_error(j, "incr");
	free(j);
}

static void
rate_accepted(struct policy_txn *t, enum policy_event ev, struct loop *loop)
{
	int recipients = ev == POLICY_EVENT_RCPT_ACCEPTED;
	struct rate_job *j;
	uint64_t bucket;

	if (t->simulate || policy_state() == NULL || t->access_ok || loop == NULL)
		return;
	j = rate_job_new(t);
	bucket = j->now / j->window;
	if (rate_dims(j, t, recipients) == 0) {
		free(j);
		return;
	}
	for (size_t d = 0; d < j->ndims; d++) {
		if (rate_key(j->keys[d], KV_KEY_MAX, recipients, j->by[d], j->who[d], bucket) < 0) {
			free(j);
			return;
		}
		/* the bucket is read as current, then as previous: two windows */
		state_op_set(&j->ops[d], STATE_INCR, j->keys[d], NULL, 0, 1, 2 * j->window + 60);
	}
	j->req.ops = j->ops;
	j->req.nops = j->ndims;
	j->req.done = rate_counted;
	j->req.cancel = policy_state_drop;
	j->req.arg = j;
	if (state_submit(policy_state(), loop, &j->req) < 0)
		free(j);
}

void
rates_config_check(struct config *cfg, struct config_load *ld, struct diag *diags)
{
	const char *v = cfg->rates_on_state_error;

	(void)diags;
	if (strcmp(v, "open") != 0 && strcmp(v, "closed") != 0 && v[0] != '\0')
		config_option_diag(ld, "rates.on_state_error", "must be open, closed or empty");
}

const struct policy_check policy_check_rates = {
	.name = "rates",
	.ask = { [POLICY_STAGE_MAIL] = rate_mail, [POLICY_STAGE_RCPT] = rate_rcpt },
	.cancel = rate_cancel,
	.fail_open = 1,
	.accepted = rate_accepted,
};
