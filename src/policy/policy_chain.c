/*
 * policy_chain.c - the policy chain and its runs (see policy.h).
 *
 * Owns struct policy_chain (per stage, an ordered array of borrowed check
 * descriptors) and the run state machine: ask the check at `next`; an
 * answer given inside the entry point is taken in the same loop (no
 * recursion however many checks answer at once); otherwise a deadline is
 * armed and the answer, the deadline or a cancel ends the wait.
 * Invariant: at most one query of a run is pending, and done runs exactly
 * once per start unless the run is cancelled.
 */
#include "policy.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLICY_CHAIN_MAX 64	/* checks in one stage */

static const char *const stage_names[POLICY_STAGE__COUNT] = {
	"connect", "helo", "mail", "rcpt", "data", "end_of_data",
};

const char *
policy_stage_name(enum policy_stage stage)
{
	return (unsigned)stage < POLICY_STAGE__COUNT ? stage_names[stage] : "?";
}

const char *
policy_action_name(enum policy_action action)
{
	switch (action) {
	case POLICY_CONTINUE: return "continue";
	case POLICY_ACCEPT: return "accept";
	case POLICY_TEMPFAIL: return "tempfail";
	case POLICY_REJECT: return "reject";
	case POLICY_DISCARD: return "discard";
	}
	return "?";
}

/* ---- verdicts --------------------------------------------------------- */

void
policy_verdict_set(struct policy_verdict *v, enum policy_action action, enum cond_id cond)
{
	v->action = action;
	v->cond = cond;
	v->score = 0;
	v->nparams = 0;
	v->header = 0;
	v->text[0] = '\0';
	v->used = 1;		/* offset 0 is the empty string */
}

/* Copies len octets of p into text; the offset, or 0 when nothing fits. */
static uint16_t
verdict_store(struct policy_verdict *v, const char *p, size_t len)
{
	size_t room = sizeof(v->text) - v->used;
	uint16_t at = v->used;

	if (room < 2)
		return 0;
	if (len > room - 1)
		len = room - 1;
	memcpy(v->text + at, p, len);
	v->text[at + len] = '\0';
	v->used = (uint16_t)(at + len + 1);
	return at;
}

static int
verdict_param_kind(struct policy_verdict *v, const char *key, const char *value, size_t len,
		   uint8_t kind)
{
	uint16_t at;

	if (v->nparams >= POLICY_PARAMS_MAX)
		return -1;
	if (len > 256)
		len = 256;
	at = verdict_store(v, value, len);
	v->keys[v->nparams] = key;
	v->values[v->nparams] = at;
	v->lens[v->nparams] = at != 0 ? (uint16_t)strlen(v->text + at) : 0;
	v->kinds[v->nparams] = kind;
	v->nparams++;
	return 0;
}

int
policy_verdict_param(struct policy_verdict *v, const char *key, const char *value, size_t len)
{
	return verdict_param_kind(v, key, value, len, POLICY_PARAM_TEXT);
}

int
policy_verdict_kvs_add(struct policy_verdict *v, const struct kv *kvs, size_t n)
{
	char tmp[24];
	int r = 0;

	for (size_t i = 0; i < n && r == 0; i++) {
		const struct kv *kv = &kvs[i];

		switch (kv->type) {
		case KV_STR:
			r = kv->s != NULL
			    ? verdict_param_kind(v, kv->key, kv->s, strlen(kv->s), POLICY_PARAM_TEXT)
			    : verdict_param_kind(v, kv->key, "", 0, POLICY_PARAM_NONE);
			break;
		case KV_MEM:
			r = verdict_param_kind(v, kv->key, kv->s, kv->len, POLICY_PARAM_TEXT);
			break;
		case KV_ADDR:
			r = verdict_param_kind(v, kv->key, kv->s, kv->len, POLICY_PARAM_ADDR);
			break;
		case KV_U64:
			r = policy_verdict_param_u64(v, kv->key, kv->u);
			break;
		case KV_I64:
			snprintf(tmp, sizeof(tmp), "%" PRId64, kv->i);
			r = policy_verdict_param(v, kv->key, tmp, strlen(tmp));
			break;
		}
	}
	return r;
}

int
policy_verdict_param_u64(struct policy_verdict *v, const char *key, uint64_t value)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof(tmp), "%" PRIu64, value);

	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -1;
	return policy_verdict_param(v, key, tmp, (size_t)n);
}

int
policy_verdict_tag(struct policy_verdict *v, const char *field)
{
	size_t n = strlen(field);

	if (n == 0 || n > POLICY_HEADER_MAX || strpbrk(field, "\r\n") != NULL ||
	    strchr(field, ':') == NULL || sizeof(v->text) - v->used < n + 1)
		return -1;
	v->header = verdict_store(v, field, n);
	return 0;
}

const char *
policy_verdict_value(const struct policy_verdict *v, size_t i)
{
	return i < v->nparams ? v->text + v->values[i] : NULL;
}

const char *
policy_verdict_header(const struct policy_verdict *v)
{
	return v->header != 0 ? v->text + v->header : NULL;
}

size_t
policy_verdict_kvs(const struct policy_verdict *v, struct kv out[POLICY_PARAMS_MAX])
{
	for (size_t i = 0; i < v->nparams; i++) {
		const char *val = v->text + v->values[i];

		switch (v->kinds[i]) {
		case POLICY_PARAM_ADDR:
			out[i] = KVA(v->keys[i], val, v->lens[i]);
			break;
		case POLICY_PARAM_NONE:
			out[i] = KV(v->keys[i], NULL);
			break;
		default:
			out[i] = KV(v->keys[i], val);
			break;
		}
	}
	return v->nparams;
}

/* ---- chains ----------------------------------------------------------- */

struct policy_chain {
	const struct policy_check *const *registry;
	size_t nregistry;
	uint64_t deadline_ms;
	enum cond_id deadline_cond;
	int score_limit;
	enum cond_id score_cond;
	const struct policy_check **stage[POLICY_STAGE__COUNT];	/* owned arrays */
	size_t nstage[POLICY_STAGE__COUNT];
};

struct policy_chain *
policy_chain_new(const struct policy_check *const *registry, size_t nregistry,
		 uint64_t deadline_ms, enum cond_id deadline_cond)
{
	struct policy_chain *chain = xcalloc(1, sizeof(*chain));

	chain->registry = registry;
	chain->nregistry = nregistry;
	chain->deadline_ms = deadline_ms;
	chain->deadline_cond = deadline_cond;
	chain->score_cond = COND__COUNT;
	return chain;
}

void
policy_chain_free(struct policy_chain **chainp)
{
	struct policy_chain *chain = *chainp;

	if (chain == NULL)
		return;
	for (size_t i = 0; i < POLICY_STAGE__COUNT; i++)
		free(chain->stage[i]);
	free(chain);
	*chainp = NULL;
}

static const struct policy_check *
chain_find(const struct policy_chain *chain, const char *name)
{
	for (size_t i = 0; i < chain->nregistry; i++)
		if (strcmp(chain->registry[i]->name, name) == 0)
			return chain->registry[i];
	return NULL;
}

int
policy_chain_set(struct policy_chain *chain, enum policy_stage stage,
		 const char *const *names, size_t n, const char **error_out, size_t *bad_out)
{
	const struct policy_check **v;

	if (n > POLICY_CHAIN_MAX) {
		*error_out = "too many checks in one stage";
		*bad_out = POLICY_CHAIN_MAX;
		return -1;
	}
	v = n > 0 ? xcalloc(n, sizeof(*v)) : NULL;
	for (size_t i = 0; i < n; i++) {
		const struct policy_check *c = chain_find(chain, names[i]);

		*error_out = c == NULL ? "unknown check"
			   : c->ask[stage] == NULL ? "check has nothing to say at this stage"
			   : NULL;
		for (size_t j = 0; j < i && *error_out == NULL; j++)
			if (v[j] == c)
				*error_out = "check named twice";
		if (*error_out != NULL) {
			*bad_out = i;
			free(v);
			return -1;
		}
		v[i] = c;
	}
	free(chain->stage[stage]);
	chain->stage[stage] = v;
	chain->nstage[stage] = n;
	return 0;
}

size_t
policy_chain_count(const struct policy_chain *chain, enum policy_stage stage)
{
	return chain->nstage[stage];
}

void
policy_chain_accepted(const struct policy_chain *chain, struct policy_txn *txn,
		      enum policy_event ev, struct loop *loop)
{
	if (chain == NULL)
		return;
	for (size_t i = 0; i < chain->nregistry; i++) {
		const struct policy_check *c = chain->registry[i];
		int in = 0;

		if (c->accepted == NULL)
			continue;
		for (int st = 0; st < POLICY_STAGE__COUNT && !in; st++)
			for (size_t k = 0; k < chain->nstage[st] && !in; k++)
				in = chain->stage[st][k] == c;
		if (in)
			c->accepted(txn, ev, loop);
	}
}

void
policy_chain_set_score_limit(struct policy_chain *chain, int limit, enum cond_id cond)
{
	chain->score_limit = limit;
	chain->score_cond = cond;
}

/* ---- runs ------------------------------------------------------------- */

static void run_step(struct policy_run *run);
static void run_deadline(struct loop *loop, void *arg);

void
policy_run_init(struct policy_run *run)
{
	memset(run, 0, sizeof(*run));
	run->action = POLICY_CONTINUE;
	run->verdict.cond = COND__COUNT;
	loop_timer_init(&run->deadline, run_deadline, run);
}

int
policy_run_running(const struct policy_run *run)
{
	return run->running;
}

void
policy_run_observe(struct policy_run *run, policy_observe_fn fn, void *arg)
{
	run->observe = fn;
	run->observe_arg = arg;
}

int
policy_run_refused(const struct policy_run *run)
{
	return run->action == POLICY_TEMPFAIL || run->action == POLICY_REJECT;
}

enum cond_id
policy_run_cond(const struct policy_run *run, struct kv kvs[POLICY_PARAMS_MAX], size_t *n)
{
	if (run->verdict.cond >= COND__COUNT) {
		kvs[0] = KV("where", run->decided_by ? run->decided_by : "policy");
		kvs[1] = KV("detail", "check refused without a condition");
		*n = 2;
		return COND_INTERNAL_ERROR;
	}
	*n = policy_verdict_kvs(&run->verdict, kvs);
	return run->verdict.cond;
}

static const struct policy_check *
run_check(const struct policy_run *run)
{
	return run->chain->stage[run->stage][run->next];
}

static void
run_finish(struct policy_run *run, enum policy_action action,
	   const struct policy_verdict *v, const char *by)
{
	run->action = action;
	if (v == NULL)
		policy_verdict_set(&run->verdict, action, COND__COUNT);
	else if (v != &run->verdict)
		run->verdict = *v;
	run->decided_by = by;
	run->running = 0;
	run->done(run, run->arg);
}

/* Takes the current check's verdict: adds its tag and score, then either
 * ends the run or moves on. Returns 1 when the run ended. */
static int
run_take(struct policy_run *run, const struct policy_verdict *v)
{
	const struct policy_check *c = run_check(run);
	struct policy_txn *txn = run->query.txn;

	if (v->header != 0 &&
	    buf_appendf(&txn->headers, "%s\r\n", policy_verdict_header(v)) < 0) {
		/* past POLICY_HEADERS_MAX: later tags are dropped, the
		 * verdict itself still counts */
	}
	txn->score += v->score;
	uint64_t ms = loop_clock_ms() - run->asked_ms;

	policy_txn_trace_add(txn, run->stage, c->name, v->action, ms, v->score, v->header != 0);
	if (run->observe != NULL)
		run->observe(run->observe_arg, run->stage, c->name, v, ms);
	if (v->action != POLICY_CONTINUE) {
		run_finish(run, v->action, v, c->name);
		return 1;
	}
	if (run->chain->score_limit > 0 && txn->score >= run->chain->score_limit) {
		struct policy_verdict sv;

		char score[16];
		int n = snprintf(score, sizeof(score), "%d", txn->score);

		policy_verdict_set(&sv, POLICY_REJECT, run->chain->score_cond);
		if (n < 0 || (size_t)n >= sizeof(score) ||
		    policy_verdict_param(&sv, "score", score, (size_t)n) < 0 ||
		    policy_verdict_param_u64(&sv, "limit", (uint64_t)run->chain->score_limit) < 0) {
			/* cannot happen: two short params of POLICY_PARAMS_MAX */
		}
		run_finish(run, POLICY_REJECT, &sv, c->name);
		return 1;
	}
	run->next++;
	return 0;
}

static void
run_deadline(struct loop *loop, void *arg)
{
	struct policy_run *run = arg;
	const struct policy_check *c = run_check(run);
	struct policy_verdict v;

	(void)loop;
	if (!run->query.pending)
		return;
	if (c->cancel != NULL)
		c->cancel(&run->query);
	run->query.pending = 0;
	run->query.check_data = NULL;
	policy_verdict_set(&v, c->fail_open ? POLICY_CONTINUE : POLICY_TEMPFAIL,
			   run->chain->deadline_cond);
	if (policy_verdict_param(&v, "check", c->name, strlen(c->name)) < 0 ||
	    policy_verdict_param(&v, "stage", policy_stage_name(run->stage),
				 strlen(policy_stage_name(run->stage))) < 0) {
		/* cannot happen: two of POLICY_PARAMS_MAX */
	}
	if (!run_take(run, &v))
		run_step(run);
}

/* Asks checks from `next` on until one answers later or the run ends. */
static void
run_step(struct policy_run *run)
{
	while (run->next < run->chain->nstage[run->stage]) {
		const struct policy_check *c = run_check(run);

		run->query.pending = 1;
		run->query.check_data = NULL;
		run->answered = 0;
		run->asked_ms = loop_clock_ms();
		run->asking = 1;
		c->ask[run->stage](&run->query);
		run->asking = 0;
		if (!run->answered) {
			loop_timer_set(run->loop, &run->deadline, run->chain->deadline_ms);
			return;
		}
		if (run_take(run, &run->verdict))
			return;
	}
	run_finish(run, POLICY_CONTINUE, NULL, NULL);
}

void
policy_answer(struct policy_query *q, const struct policy_verdict *v)
{
	struct policy_run *run = q->run;

	if (!q->pending)
		return;
	q->pending = 0;
	q->check_data = NULL;
	if (run->asking) {
		run->verdict = *v;
		run->answered = 1;
		return;
	}
	loop_timer_cancel(run->loop, &run->deadline);
	if (!run_take(run, v))
		run_step(run);
}

void
policy_answer_cond(struct policy_query *q, enum policy_action action, enum cond_id cond,
		   const struct kv *kvs, size_t n)
{
	struct policy_verdict v;

	policy_verdict_set(&v, action, cond);
	if (policy_verdict_kvs_add(&v, kvs, n) < 0) {
		/* more than POLICY_PARAMS_MAX: a check's bug; the reply
		 * still goes out, with the params that fitted */
	}
	policy_answer(q, &v);
}

void
policy_refuse(struct policy_query *q, enum cond_id cond, const struct kv *kvs, size_t n)
{
	policy_answer_cond(q, catalog_get(cond)->code < 500 ? POLICY_TEMPFAIL : POLICY_REJECT,
			   cond, kvs, n);
}

void
policy_answer_continue(struct policy_query *q)
{
	struct policy_verdict v;

	policy_verdict_set(&v, POLICY_CONTINUE, COND__COUNT);
	policy_answer(q, &v);
}

void
policy_run_start(struct policy_run *run, struct loop *loop,
		 const struct policy_chain *chain, enum policy_stage stage,
		 struct policy_txn *txn, void *session, policy_done_fn done, void *arg)
{
	ASSERT(!run->running);
	run->chain = chain;
	run->loop = loop;
	run->stage = stage;
	run->next = 0;
	run->running = 1;
	run->done = done;
	run->arg = arg;
	run->action = POLICY_CONTINUE;
	run->decided_by = NULL;
	run->query.run = run;
	run->query.stage = stage;
	run->query.txn = txn;
	run->query.session = session;
	run->query.pending = 0;
	run_step(run);
}

void
policy_run_cancel(struct policy_run *run)
{
	if (!run->running)
		return;
	if (run->query.pending) {
		const struct policy_check *c = run_check(run);

		loop_timer_cancel(run->loop, &run->deadline);
		if (c->cancel != NULL)
			c->cancel(&run->query);
		run->query.pending = 0;
		run->query.check_data = NULL;
	}
	run->running = 0;
}
