/*
 * test_policy.c - the policy chain driven by fake checks on a real loop
 * (a fresh one per case that runs it: a stopped loop stays stopped):
 * checks that answer at once, late, out of order, never (the deadline),
 * runs cancelled while a check is pending, tags and the score limit, and
 * the chain's configuration errors.
 */
#include "policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testing.h"

static struct loop *loop;

/* ---- fake checks ------------------------------------------------------ */

/* What a late check of one session does. */
struct fake_session {
	uint64_t delay_ms;
	enum policy_action action;
	int asked;
};

static int asked_pass, asked_reject, asked_accept, cancels;

static void
ask_pass(struct policy_query *q)
{
	struct policy_verdict v;

	asked_pass++;
	policy_verdict_set(&v, POLICY_CONTINUE, COND__COUNT);
	policy_answer(q, &v);
}

static void
ask_reject(struct policy_query *q)
{
	struct policy_verdict v;

	asked_reject++;
	policy_verdict_set(&v, POLICY_REJECT, COND_POLICY_CONCURRENCY_LIMIT);
	CHECK_INT(policy_verdict_param(&v, "client", "192.0.2.1", 9), 0);
	policy_answer(q, &v);
	/* a second answer is ignored */
	policy_verdict_set(&v, POLICY_ACCEPT, COND__COUNT);
	policy_answer(q, &v);
}

static void
ask_accept(struct policy_query *q)
{
	struct policy_verdict v;

	asked_accept++;
	policy_verdict_set(&v, POLICY_ACCEPT, COND__COUNT);
	policy_answer(q, &v);
}

static void
ask_tag(struct policy_query *q)
{
	struct policy_verdict v;

	policy_verdict_set(&v, POLICY_CONTINUE, COND__COUNT);
	v.score = 3;
	CHECK_INT(policy_verdict_tag(&v, "X-Test: tagged"), 0);
	policy_answer(q, &v);
}

struct late_job {
	struct loop_timer t;
	struct policy_query *q;
	enum policy_action action;
};

static void
late_fire(struct loop *l, void *arg)
{
	struct late_job *j = arg;
	struct policy_verdict v;

	(void)l;
	policy_verdict_set(&v, j->action, j->action == POLICY_CONTINUE ? COND__COUNT
							       : COND_POLICY_CONCURRENCY_LIMIT);
	j->q->check_data = NULL;
	policy_answer(j->q, &v);
	free(j);
}

static void
ask_late(struct policy_query *q)
{
	struct fake_session *fs = q->session;
	struct late_job *j = xcalloc(1, sizeof(*j));

	fs->asked++;
	j->q = q;
	j->action = fs->action;
	loop_timer_init(&j->t, late_fire, j);
	loop_timer_set(loop, &j->t, fs->delay_ms);
	q->check_data = j;
}

static void
cancel_late(struct policy_query *q)
{
	struct late_job *j = q->check_data;

	cancels++;
	if (j != NULL) {
		loop_timer_cancel(loop, &j->t);
		free(j);
	}
}

static void
ask_never(struct policy_query *q)
{
	(void)q;
}

static void
cancel_never(struct policy_query *q)
{
	(void)q;
	cancels++;
}

static int accepted_rcpt, accepted_msg;

static void
on_accepted(struct policy_txn *txn, enum policy_event ev, struct loop *l)
{
	(void)txn;
	(void)l;
	if (ev == POLICY_EVENT_RCPT_ACCEPTED)
		accepted_rcpt++;
	else
		accepted_msg++;
}

static const struct policy_check check_pass = {
	.name = "pass",
	.ask = { [POLICY_STAGE_CONNECT] = ask_pass, [POLICY_STAGE_RCPT] = ask_pass },
	.accepted = on_accepted,
};
static const struct policy_check check_reject = {
	.name = "reject", .ask = { [POLICY_STAGE_RCPT] = ask_reject },
};
static const struct policy_check check_accept = {
	.name = "accept", .ask = { [POLICY_STAGE_RCPT] = ask_accept },
};
static const struct policy_check check_tag = {
	.name = "tag", .ask = { [POLICY_STAGE_RCPT] = ask_tag },
};
static const struct policy_check check_tag2 = {
	.name = "tag2", .ask = { [POLICY_STAGE_RCPT] = ask_tag },
};
static const struct policy_check check_late = {
	.name = "late", .ask = { [POLICY_STAGE_RCPT] = ask_late }, .cancel = cancel_late,
};
static const struct policy_check check_never = {
	.name = "never", .ask = { [POLICY_STAGE_RCPT] = ask_never },
	.cancel = cancel_never,
};
static const struct policy_check check_never_open = {
	.name = "never_open", .ask = { [POLICY_STAGE_RCPT] = ask_never },
	.cancel = cancel_never, .fail_open = 1,
};

static const struct policy_check *const registry[] = {
	&check_pass, &check_reject, &check_accept, &check_tag, &check_tag2,
	&check_late, &check_never, &check_never_open,
};

/* ---- running ---------------------------------------------------------- */

static int dones, dones_wanted, in_start;
static int done_in_start;

static void
on_done(struct policy_run *run, void *arg)
{
	int *order = arg;

	(void)run;
	dones++;
	if (in_start)
		done_in_start++;
	if (order != NULL)
		*order = dones;
	if (dones_wanted > 0 && dones >= dones_wanted)
		loop_stop(loop);
}

static void
watchdog(struct loop *l, void *arg)
{
	(void)arg;
	loop_stop(l);
}

/* Runs the loop until dones_wanted done calls, or 3 s. */
static void
run_loop(int wanted)
{
	struct loop_timer t;

	dones_wanted = wanted;
	if (dones >= wanted)
		return;
	loop_timer_init(&t, watchdog, NULL);
	loop_timer_set(loop, &t, 3000);
	CHECK_INT(loop_run(loop), 0);
	loop_timer_cancel(loop, &t);
}

static struct policy_chain *
chain_of(enum policy_stage stage, const char *const *names, size_t n, uint64_t deadline_ms)
{
	struct policy_chain *c = policy_chain_new(registry, ARRAY_LEN(registry), deadline_ms,
						  COND_POLICY_CONCURRENCY_LIMIT);
	const char *err = NULL;
	size_t bad = 0;

	CHECK_INT(policy_chain_set(c, stage, names, n, &err, &bad), 0);
	return c;
}

static void
start(struct policy_run *run, const struct policy_chain *c, enum policy_stage stage,
      struct policy_txn *txn, void *session, int *order)
{
	in_start = 1;
	policy_run_start(run, loop, c, stage, txn, session, on_done, order);
	in_start = 0;
}

static void
reset_counts(void)
{
	dones = dones_wanted = done_in_start = 0;
	asked_pass = asked_reject = asked_accept = cancels = 0;
}

/* ---- cases ------------------------------------------------------------ */

static void
test_sync(void)
{
	static const char *const names[] = { "pass", "reject", "accept" };
	static const char *const names2[] = { "pass", "accept", "reject" };
	struct policy_chain *c = chain_of(POLICY_STAGE_RCPT, names, 3, 1000);
	struct policy_chain *c2 = chain_of(POLICY_STAGE_RCPT, names2, 3, 1000);
	struct policy_txn txn;
	struct policy_run run;
	struct kv kvs[POLICY_PARAMS_MAX];

	TEST_CASE("sync: the first deciding verdict ends the stage");
	reset_counts();
	policy_txn_init(&txn);
	policy_run_init(&run);
	start(&run, c, POLICY_STAGE_RCPT, &txn, NULL, NULL);
	CHECK_INT(dones, 1);
	CHECK_INT(done_in_start, 1);
	CHECK_INT(run.action, POLICY_REJECT);
	CHECK_INT(run.verdict.cond, COND_POLICY_CONCURRENCY_LIMIT);
	CHECK_STR(run.decided_by, "reject");
	CHECK_INT(asked_accept, 0);
	CHECK_INT(policy_verdict_kvs(&run.verdict, kvs), 1);
	CHECK_STR(kvs[0].key, "client");
	CHECK_STR(kvs[0].s, "192.0.2.1");
	CHECK_INT(policy_run_running(&run), 0);

	TEST_CASE("sync: accept skips the rest of the stage");
	reset_counts();
	start(&run, c2, POLICY_STAGE_RCPT, &txn, NULL, NULL);
	CHECK_INT(run.action, POLICY_ACCEPT);
	CHECK_STR(run.decided_by, "accept");
	CHECK_INT(asked_reject, 0);

	TEST_CASE("sync: an empty stage continues");
	reset_counts();
	start(&run, c, POLICY_STAGE_MAIL, &txn, NULL, NULL);
	CHECK_INT(dones, 1);
	CHECK_INT(run.action, POLICY_CONTINUE);
	CHECK(run.decided_by == NULL);

	policy_txn_fini(&txn);
	policy_chain_free(&c);
	policy_chain_free(&c2);
	CHECK(c == NULL);
}

static void
test_many_sync(void)
{
	const char *names[2] = { "pass", "tag" };
	struct policy_chain *c = chain_of(POLICY_STAGE_RCPT, names, 1, 1000);
	struct policy_txn txn;
	struct policy_run run;

	TEST_CASE("sync: thousands of runs, each done once, no recursion");
	reset_counts();
	policy_txn_init(&txn);
	policy_run_init(&run);
	for (int i = 0; i < 5000; i++)
		start(&run, c, POLICY_STAGE_RCPT, &txn, NULL, NULL);
	CHECK_INT(dones, 5000);
	CHECK_INT(asked_pass, 5000);
	policy_txn_fini(&txn);
	policy_chain_free(&c);
}

static void
test_late_out_of_order(void)
{
	static const char *const names[] = { "pass", "late", "accept" };
	struct policy_chain *c = chain_of(POLICY_STAGE_RCPT, names, 3, 2000);
	struct fake_session s1 = { .delay_ms = 80, .action = POLICY_REJECT };
	struct fake_session s2 = { .delay_ms = 10, .action = POLICY_CONTINUE };
	struct policy_txn t1, t2;
	struct policy_run r1, r2;
	int o1 = 0, o2 = 0;

	TEST_CASE("late: answers arrive out of order, each run gets its own");
	reset_counts();
	policy_txn_init(&t1);
	policy_txn_init(&t2);
	policy_run_init(&r1);
	policy_run_init(&r2);
	start(&r1, c, POLICY_STAGE_RCPT, &t1, &s1, &o1);
	start(&r2, c, POLICY_STAGE_RCPT, &t2, &s2, &o2);
	CHECK_INT(dones, 0);
	CHECK(policy_run_running(&r1));
	CHECK(policy_run_running(&r2));
	run_loop(2);
	CHECK_INT(dones, 2);
	CHECK_INT(o2, 1);	/* the later start answered first */
	CHECK_INT(o1, 2);
	CHECK_INT(r1.action, POLICY_REJECT);
	CHECK_STR(r1.decided_by, "late");
	CHECK_INT(r2.action, POLICY_ACCEPT);	/* late said continue */
	CHECK_STR(r2.decided_by, "accept");
	CHECK_INT(s1.asked, 1);
	CHECK_INT(s2.asked, 1);
	CHECK_INT(cancels, 0);
	policy_txn_fini(&t1);
	policy_txn_fini(&t2);
	policy_chain_free(&c);
}

static void
test_deadline(void)
{
	static const char *const names[] = { "never", "pass" };
	struct policy_chain *c = chain_of(POLICY_STAGE_RCPT, names, 2, 30);
	struct policy_txn txn;
	struct policy_run run;
	struct kv kvs[POLICY_PARAMS_MAX];
	uint64_t t0;

	TEST_CASE("never: the deadline tempfails and cancels the check");
	reset_counts();
	policy_txn_init(&txn);
	policy_run_init(&run);
	t0 = loop_clock_ms();
	start(&run, c, POLICY_STAGE_RCPT, &txn, NULL, NULL);
	CHECK_INT(dones, 0);
	run_loop(1);
	CHECK_INT(dones, 1);
	CHECK(loop_clock_ms() - t0 >= 30);
	CHECK_INT(cancels, 1);
	CHECK_INT(asked_pass, 0);
	CHECK_INT(run.action, POLICY_TEMPFAIL);
	CHECK_STR(run.decided_by, "never");
	CHECK_INT(policy_verdict_kvs(&run.verdict, kvs), 2);
	CHECK_STR(kvs[0].s, "never");
	CHECK_STR(kvs[1].s, "rcpt");
	policy_txn_fini(&txn);
	policy_chain_free(&c);
}

static void
test_deadline_fail_open(void)
{
	static const char *const open_names[] = { "never_open", "pass" };
	struct policy_chain *co = chain_of(POLICY_STAGE_RCPT, open_names, 2, 30);
	struct policy_txn txn;
	struct policy_run run;

	TEST_CASE("never: a fail-open check's deadline goes on to the next check");
	reset_counts();
	policy_txn_init(&txn);
	policy_run_init(&run);
	start(&run, co, POLICY_STAGE_RCPT, &txn, NULL, NULL);
	run_loop(1);
	CHECK_INT(dones, 1);
	CHECK_INT(cancels, 1);
	CHECK_INT(asked_pass, 1);
	CHECK_INT(run.action, POLICY_CONTINUE);
	policy_txn_fini(&txn);
	policy_chain_free(&co);
}

static void
test_cancel(void)
{
	static const char *const names[] = { "late" };
	static const char *const names2[] = { "pass" };
	struct policy_chain *c = chain_of(POLICY_STAGE_RCPT, names, 1, 1000);
	struct policy_chain *cp = chain_of(POLICY_STAGE_RCPT, names2, 1, 1000);
	struct fake_session s = { .delay_ms = 20, .action = POLICY_REJECT };
	struct fake_session s2 = { .delay_ms = 60, .action = POLICY_REJECT };
	struct policy_txn txn, txn2;
	struct policy_run run, run2;

	TEST_CASE("cancel: a pending check is cancelled and done never runs");
	reset_counts();
	policy_txn_init(&txn);
	policy_txn_init(&txn2);
	policy_run_init(&run);
	policy_run_init(&run2);
	start(&run, c, POLICY_STAGE_RCPT, &txn, &s, NULL);
	policy_run_cancel(&run);
	CHECK_INT(cancels, 1);
	CHECK_INT(policy_run_running(&run), 0);
	/* a second run whose answer comes after the cancelled one's would
	 * have: when it is done, the cancelled one has had its chance */
	start(&run2, c, POLICY_STAGE_RCPT, &txn2, &s2, NULL);
	run_loop(1);
	CHECK_INT(dones, 1);
	CHECK_INT(run2.action, POLICY_REJECT);
	policy_run_cancel(&run2);	/* not running: no-op */
	CHECK_INT(cancels, 1);

	TEST_CASE("cancel: the run can start again");
	start(&run, cp, POLICY_STAGE_RCPT, &txn, &s, NULL);
	CHECK_INT(dones, 2);
	CHECK_INT(run.action, POLICY_CONTINUE);

	policy_txn_fini(&txn);
	policy_txn_fini(&txn2);
	policy_chain_free(&c);
	policy_chain_free(&cp);
}

static void
test_tags_and_score(void)
{
	static const char *const names[] = { "tag", "tag2", "pass" };
	struct policy_chain *c = chain_of(POLICY_STAGE_RCPT, names, 3, 1000);
	struct policy_txn txn;
	struct policy_run run;
	struct kv kvs[POLICY_PARAMS_MAX];
	struct policy_verdict v;
	char long_field[POLICY_HEADER_MAX + 10];

	TEST_CASE("tags: headers and scores add up in the transaction");
	reset_counts();
	policy_txn_init(&txn);
	policy_run_init(&run);
	start(&run, c, POLICY_STAGE_RCPT, &txn, NULL, NULL);
	CHECK_INT(run.action, POLICY_CONTINUE);
	CHECK_INT(txn.score, 6);
	CHECK_MEM(txn.headers.data, txn.headers.len, "X-Test: tagged\r\nX-Test: tagged\r\n");

	TEST_CASE("score: reaching the limit rejects at that check");
	reset_counts();
	policy_txn_reset(&txn);
	CHECK_INT(txn.score, 0);
	CHECK_INT(txn.headers.len, 0);
	policy_chain_set_score_limit(c, 5, COND_POLICY_CONCURRENCY_LIMIT);
	start(&run, c, POLICY_STAGE_RCPT, &txn, NULL, NULL);
	CHECK_INT(run.action, POLICY_REJECT);
	CHECK_STR(run.decided_by, "tag2");
	CHECK_INT(asked_pass, 0);
	CHECK_INT(policy_verdict_kvs(&run.verdict, kvs), 2);
	CHECK_STR(kvs[0].s, "6");
	CHECK_STR(kvs[1].s, "5");

	TEST_CASE("verdicts: bounded params and header fields");
	policy_verdict_set(&v, POLICY_REJECT, COND__COUNT);
	for (int i = 0; i < POLICY_PARAMS_MAX; i++)
		CHECK_INT(policy_verdict_param_u64(&v, "n", (uint64_t)i), 0);
	CHECK_INT(policy_verdict_param(&v, "x", "y", 1), -1);
	memset(long_field, 'a', sizeof(long_field) - 1);
	long_field[sizeof(long_field) - 1] = '\0';
	long_field[1] = ':';
	CHECK_INT(policy_verdict_tag(&v, long_field), -1);
	CHECK_INT(policy_verdict_tag(&v, "X-A: b\r\nX-Evil: c"), -1);
	CHECK_INT(policy_verdict_tag(&v, "no colon"), -1);
	CHECK_INT(policy_verdict_tag(&v, "X-A: b"), 0);
	CHECK_STR(policy_verdict_header(&v), "X-A: b");
	{
		char big[600];

		memset(big, 'b', sizeof(big));
		policy_verdict_set(&v, POLICY_REJECT, COND__COUNT);
		CHECK(policy_verdict_header(&v) == NULL);
		for (int i = 0; i < POLICY_PARAMS_MAX; i++)
			CHECK_INT(policy_verdict_param(&v, "big", big, sizeof(big)), 0);
		CHECK_INT(strlen(policy_verdict_value(&v, 0)), 256);
		/* the text area runs out: later values are cut, never overrun */
		CHECK(strlen(policy_verdict_value(&v, 5)) < 256);
		CHECK(v.used <= sizeof(v.text));
		CHECK_INT(policy_verdict_tag(&v, "X-Late: no room"), -1);
	}

	policy_txn_fini(&txn);
	policy_chain_free(&c);
}

static void
test_config_errors(void)
{
	struct policy_chain *c = policy_chain_new(registry, ARRAY_LEN(registry), 1000,
						  COND_POLICY_CONCURRENCY_LIMIT);
	static const char *const unknown[] = { "pass", "nosuch" };
	static const char *const wrong_stage[] = { "reject" };
	static const char *const twice[] = { "pass", "pass" };
	static const char *const good[] = { "pass" };
	const char *err = NULL;
	size_t bad = 0;

	TEST_CASE("chain: configuration errors leave the stage unchanged");
	CHECK_INT(policy_chain_set(c, POLICY_STAGE_CONNECT, good, 1, &err, &bad), 0);
	CHECK_INT(policy_chain_set(c, POLICY_STAGE_CONNECT, unknown, 2, &err, &bad), -1);
	CHECK_STR(err, "unknown check");
	CHECK_INT(bad, 1);
	CHECK_INT(policy_chain_set(c, POLICY_STAGE_CONNECT, wrong_stage, 1, &err, &bad), -1);
	CHECK_STR(err, "check has nothing to say at this stage");
	CHECK_INT(policy_chain_set(c, POLICY_STAGE_CONNECT, twice, 2, &err, &bad), -1);
	CHECK_STR(err, "check named twice");
	CHECK_INT(policy_chain_count(c, POLICY_STAGE_CONNECT), 1);
	CHECK_STR(policy_stage_name(POLICY_STAGE_END_OF_DATA), "end_of_data");
	CHECK_STR(policy_action_name(POLICY_DISCARD), "discard");
	policy_chain_free(&c);
}

static void
test_trace(void)
{
	static const char *const names[] = { "pass", "tag", "reject" };
	struct policy_chain *c = chain_of(POLICY_STAGE_RCPT, names, 3, 1000);
	struct policy_txn txn;
	struct policy_run run;
	char out[POLICY_TRACE_TEXT_MAX];
	char tiny[64];
	size_t n;

	TEST_CASE("trace: every check asked, in order, with its verdict and time");
	loop_clock_pin(1000000);	/* "0ms" must not depend on a ms boundary */
	reset_counts();
	policy_txn_init(&txn);
	policy_run_init(&run);
	start(&run, c, POLICY_STAGE_RCPT, &txn, NULL, NULL);
	CHECK_INT(txn.ntrace, 3);
	n = policy_txn_trace_format(&txn, out, sizeof(out));
	CHECK_INT(n, strlen(out));
	CHECK_STR(out, "rcpt:pass=continue/0ms,rcpt:tag=continue+tag+score3/0ms,"
		  "rcpt:reject=reject/0ms");

	TEST_CASE("trace: bounded at POLICY_TRACE_MAX, the rest counted");
	for (int i = 0; i < 20; i++)
		start(&run, c, POLICY_STAGE_RCPT, &txn, NULL, NULL);
	CHECK_INT(txn.ntrace, POLICY_TRACE_MAX);
	CHECK_INT(txn.trace_dropped, 3 * 21 - POLICY_TRACE_MAX);
	n = policy_txn_trace_format(&txn, out, sizeof(out));
	CHECK(n < sizeof(out));
	CHECK(strstr(out, ",dropped:31") != NULL);
	CHECK_INT(strlen(out), n);

	TEST_CASE("trace: a small buffer cuts whole entries and counts them");
	n = policy_txn_trace_format(&txn, tiny, sizeof(tiny));
	CHECK(n < sizeof(tiny));
	CHECK_STR(tiny, "rcpt:pass=continue/0ms,dropped:62");
	CHECK_INT(policy_txn_trace_format(&txn, tiny, 0), 0);

	TEST_CASE("trace: a new transaction starts empty");
	policy_txn_reset(&txn);
	CHECK_INT(txn.ntrace, 0);
	CHECK_INT(policy_txn_trace_format(&txn, out, sizeof(out)), 0);
	CHECK_STR(out, "");

	loop_clock_pin(0);
	policy_txn_fini(&txn);
	policy_chain_free(&c);
}

/* What the observer saw (postern simulate's view of a run). */
static const char *seen_check[8];
static enum policy_action seen_action[8];
static enum cond_id seen_cond[8];
static int seen_score[8], seen_tagged[8];
static size_t nseen;

static void
observe(void *arg, enum policy_stage stage, const char *check, const struct policy_verdict *v,
	uint64_t ms)
{
	(void)ms;
	CHECK(arg == &nseen);
	CHECK_INT(stage, POLICY_STAGE_RCPT);
	if (nseen >= ARRAY_LEN(seen_check))
		return;
	seen_check[nseen] = check;
	seen_action[nseen] = v->action;
	seen_cond[nseen] = v->cond;
	seen_score[nseen] = v->score;
	seen_tagged[nseen] = policy_verdict_header(v) != NULL;
	nseen++;
}

static void
test_observe(void)
{
	static const char *const names[] = { "pass", "tag", "reject", "accept" };
	struct policy_chain *c = chain_of(POLICY_STAGE_RCPT, names, 4, 1000);
	struct policy_txn txn;
	struct policy_run run;
	struct kv kvs[POLICY_PARAMS_MAX];
	size_t n = 0;

	TEST_CASE("observe: every answer in order, with its verdict");
	reset_counts();
	nseen = 0;
	policy_txn_init(&txn);
	policy_run_init(&run);
	policy_run_observe(&run, observe, &nseen);
	start(&run, c, POLICY_STAGE_RCPT, &txn, NULL, NULL);
	CHECK_INT(dones, 1);
	CHECK_INT(nseen, 3);	/* accept, after the reject, is not asked */
	CHECK_STR(seen_check[0], "pass");
	CHECK_INT(seen_action[0], POLICY_CONTINUE);
	CHECK_INT(seen_cond[0], COND__COUNT);
	CHECK_STR(seen_check[1], "tag");
	CHECK_INT(seen_score[1], 3);
	CHECK_INT(seen_tagged[1], 1);
	CHECK_STR(seen_check[2], "reject");
	CHECK_INT(seen_action[2], POLICY_REJECT);
	CHECK_INT(seen_cond[2], COND_POLICY_CONCURRENCY_LIMIT);

	TEST_CASE("observe: the refusal's condition and params");
	CHECK_INT(policy_run_refused(&run), 1);
	CHECK_INT(policy_run_cond(&run, kvs, &n), COND_POLICY_CONCURRENCY_LIMIT);
	CHECK_INT(n, 1);
	CHECK_STR(kvs[0].s, "192.0.2.1");
	run.verdict.cond = COND__COUNT;	/* a check that refused without naming one */
	CHECK_INT(policy_run_cond(&run, kvs, &n), COND_INTERNAL_ERROR);
	CHECK_INT(n, 2);
	CHECK_STR(kvs[0].s, "reject");

	TEST_CASE("observe: off again");
	nseen = 0;
	policy_run_observe(&run, NULL, NULL);
	start(&run, c, POLICY_STAGE_RCPT, &txn, NULL, NULL);
	CHECK_INT(nseen, 0);
	CHECK_INT(txn.ntrace, 6);	/* the trace still records every answer */
	policy_txn_fini(&txn);
	policy_chain_free(&c);
}

/* ---- destinations and work after the commit ------------------------------ */

static int after_runs[3];	/* per arg: 0 not run, 1 committed, 2 not */

static void
after_fn(void *arg, int committed)
{
	int *slot = arg;

	CHECK_INT(*slot, 0);
	*slot = committed ? 1 : 2;
}

static void
test_dests_and_afters(void)
{
	struct policy_txn txn;
	struct policy_afters taken;

	policy_txn_init(&txn);
	TEST_CASE("dests: kept in order, not dropped, cleared by reset");
	for (int i = 0; i < 5; i++) {
		char a[32];
		CHECK(snprintf(a, sizeof(a), "u%d@example.test", i) > 0);
		policy_txn_add_dest(&txn, a);
	}
	CHECK_INT(txn.ndests, 5);
	CHECK_STR(txn.dests[3].addr, "u3@example.test");
	CHECK_INT(txn.dests[4].drop, 0);

	TEST_CASE("afters: bounded; a reset runs them as not committed");
	memset(after_runs, 0, sizeof(after_runs));
	CHECK_INT(policy_txn_after(&txn, after_fn, &after_runs[0]), 0);
	for (int i = 1; i < POLICY_AFTER_MAX; i++)
		CHECK_INT(policy_txn_after(&txn, after_fn, &after_runs[2]) == 0, 1);
	CHECK_INT(policy_txn_after(&txn, after_fn, &after_runs[1]), -1);
	after_runs[2] = 0;
	policy_afters_take(&txn, &taken);	/* keep them away from the reset */
	CHECK_INT(txn.after.n, 0);
	CHECK_INT(policy_txn_after(&txn, after_fn, &after_runs[1]), 0);
	policy_txn_reset(&txn);
	CHECK_INT(after_runs[1], 2);
	CHECK_INT(txn.ndests, 0);
	CHECK(txn.dests == NULL);

	TEST_CASE("afters: taken ones run once, with the commit's outcome");
	taken.n = 1;	/* the first only: the others share one slot */
	policy_afters_run(&taken, 1);
	CHECK_INT(after_runs[0], 1);
	CHECK_INT(taken.n, 0);
	policy_afters_run(&taken, 1);	/* nothing left: no second run */
	CHECK_INT(after_runs[0], 1);
	policy_txn_fini(&txn);
}

static void
test_accepted(void)
{
	static const char *const both[] = { "pass", "reject" };
	static const char *const other[] = { "reject" };
	struct policy_chain *c = chain_of(POLICY_STAGE_RCPT, both, 2, 1000);
	const char *err = NULL;
	size_t bad = 0;
	struct policy_txn txn;

	policy_txn_init(&txn);
	TEST_CASE("accepted: told once per event to a check of the chain, whatever its stages");
	accepted_rcpt = accepted_msg = 0;
	CHECK_INT(policy_chain_set(c, POLICY_STAGE_CONNECT, both, 1, &err, &bad), 0);
	policy_chain_accepted(c, &txn, POLICY_EVENT_RCPT_ACCEPTED, loop);
	policy_chain_accepted(c, &txn, POLICY_EVENT_MESSAGE_ACCEPTED, loop);
	CHECK_INT(accepted_rcpt, 1);
	CHECK_INT(accepted_msg, 1);
	policy_chain_free(&c);

	TEST_CASE("accepted: a check not in the chain is not told");
	c = chain_of(POLICY_STAGE_RCPT, other, 1, 1000);
	policy_chain_accepted(c, &txn, POLICY_EVENT_RCPT_ACCEPTED, loop);
	policy_chain_accepted(NULL, &txn, POLICY_EVENT_RCPT_ACCEPTED, loop);
	CHECK_INT(accepted_rcpt, 1);
	policy_chain_free(&c);
	policy_txn_fini(&txn);
}

/* Each case gets a fresh loop: a loop stopped once stays stopped. */
static void
with_loop(void (*fn)(void))
{
	loop = loop_new();
	if (loop == NULL) {
		CHECK(loop != NULL);
		return;
	}
	fn();
	loop_free(&loop);
}

int
main(void)
{
	with_loop(test_sync);
	with_loop(test_many_sync);
	with_loop(test_late_out_of_order);
	with_loop(test_deadline);
	with_loop(test_deadline_fail_open);
	with_loop(test_cancel);
	with_loop(test_tags_and_score);
	with_loop(test_config_errors);
	with_loop(test_trace);
	with_loop(test_observe);
	with_loop(test_dests_and_afters);
	with_loop(test_accepted);
	return TEST_DONE();
}
