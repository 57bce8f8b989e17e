/*
 * test_workpool.c - the worker pool: per-class caps, a slow class does not
 * hold another, batch classes, completions on the submitting loop and in
 * batches, delayed jobs and wake, and the shutdown rule.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"
#include "workpool.h"
#include "testing.h"

struct tjob {
	struct workpool_job job;	/* first: casts */
	int *gate;			/* run waits while *gate == 0 */
	struct loop *want_loop;
	int batch;			/* size of the batch it ran in */
};

static _Atomic int running, max_running, ran, done_count, cancelled, wrong_loop;
static _Atomic int batch_runs;

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000u, (long)(ms % 1000u) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Polls cond for at most 5 s. */
#define WAIT_FOR(cond)                                                   \
	do {                                                             \
		for (int w_ = 0; w_ < 5000 && !(cond); w_++)            \
			sleep_ms(1);                                     \
	} while (0)

static void
t_run(struct workpool_job *job)
{
	struct tjob *t = (struct tjob *)job;
	int n = 0;

	int now = ++running;
	int m = max_running;
	while (now > m && !atomic_compare_exchange_weak(&max_running, &m, now))
		;
	for (struct workpool_job *j = job; j != NULL; j = j->next)
		n++;
	if (n > 1)
		batch_runs++;
	for (struct workpool_job *j = job; j != NULL; j = j->next)
		((struct tjob *)j)->batch = n;
	while (t->gate != NULL && !__atomic_load_n(t->gate, __ATOMIC_ACQUIRE))
		sleep_ms(1);
	sleep_ms(2);
	running--;
	ran += n;
}

static void
t_done(struct loop *loop, struct workpool_job *job)
{
	struct tjob *t = (struct tjob *)job;

	if (loop != t->want_loop)
		wrong_loop++;
	done_count++;
}

static void
t_cancel(struct workpool_job *job)
{
	(void)job;
	cancelled++;
}

static void
reset(void)
{
	running = max_running = ran = done_count = cancelled = wrong_loop = 0;
	batch_runs = 0;
}

static void
tjob_init(struct tjob *t, int *gate, struct loop *want)
{
	workpool_job_init(&t->job, t_run, t_done, t_cancel);
	t->gate = gate;
	t->want_loop = want;
	t->batch = 0;
}

/* ---- loops on threads ------------------------------------------------- */

struct tloop {
	struct loop *loop;
	pthread_t thread;
};

static void *
tloop_main(void *arg)
{
	struct tloop *tl = arg;

	(void)loop_run(tl->loop);
	return NULL;
}

static void
tloop_start(struct tloop *tl)
{
	tl->loop = loop_new();
	if (tl->loop == NULL || pthread_create(&tl->thread, NULL, tloop_main, tl) != 0)
		abort();
}

static void
tloop_stop(struct tloop *tl)
{
	loop_stop(tl->loop);
	pthread_join(tl->thread, NULL);
	loop_free(&tl->loop);
}

static int loop_gate;
static int loop_blocked;	/* block_loop is running */

static void
block_loop(struct loop *loop, void *arg)
{
	(void)loop;
	(void)arg;
	__atomic_store_n(&loop_blocked, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&loop_gate, __ATOMIC_ACQUIRE))
		sleep_ms(1);
}

/* Submits held (waiting on *gate) to class c and waits until it runs. */
static void
submit_held(struct workpool *wp, int c, struct tjob *held, int *gate)
{
	*gate = 0;
	tjob_init(held, gate, NULL);
	CHECK_INT(workpool_submit(wp, c, &held->job, NULL), 0);
	WAIT_FOR(running == 1);
	CHECK_INT(running, 1);
}

/* Submits n jobs to class c, their completions for loop. */
static void
submit_n(struct workpool *wp, int c, struct tjob *jobs, size_t n, struct loop *loop)
{
	for (size_t i = 0; i < n; i++) {
		tjob_init(&jobs[i], NULL, loop);
		CHECK_INT(workpool_submit(wp, c, &jobs[i].job, loop), 0);
	}
}

/* ---- cases ------------------------------------------------------------ */

static void
test_caps(void)
{
	struct workpool *wp = workpool_new();
	struct tjob jobs[12];
	int c;

	TEST_CASE("cap holds");
	reset();
	c = workpool_class_new(wp, "a", 3, 0);
	CHECK(c >= 0);
	submit_n(wp, c, jobs, 12, NULL);
	WAIT_FOR(done_count == 12);
	CHECK_INT(done_count, 12);
	CHECK_INT(ran, 12);
	CHECK(max_running <= 3);
	CHECK(max_running >= 2);	/* it did run in parallel */
	CHECK_INT(wrong_loop, 0);	/* loop NULL: done on the worker */
	CHECK_INT(workpool_class_load(wp, c), 0);
	workpool_free(&wp);
	CHECK(wp == NULL);
}

static void
test_slow_class(void)
{
	struct workpool *wp = workpool_new();
	struct tjob slow[4], fast[3];
	int gate = 0;

	TEST_CASE("slow class does not block another");
	reset();
	int cs = workpool_class_new(wp, "scan", 1, 0);
	int cf = workpool_class_new(wp, "commit", 2, 0);
	CHECK(cs >= 0 && cf >= 0 && cs != cf);
	for (size_t i = 0; i < 4; i++) {
		tjob_init(&slow[i], &gate, NULL);
		CHECK_INT(workpool_submit(wp, cs, &slow[i].job, NULL), 0);
	}
	WAIT_FOR(running == 1);
	submit_n(wp, cf, fast, 3, NULL);
	WAIT_FOR(done_count == 3);
	CHECK_INT(done_count, 3);		/* the fast ones, scans held */
	CHECK_INT(workpool_class_load(wp, cs), 4);
	__atomic_store_n(&gate, 1, __ATOMIC_RELEASE);
	WAIT_FOR(done_count == 7);
	CHECK_INT(done_count, 7);
	workpool_free(&wp);
}

static void
test_batch_and_loops(void)
{
	struct workpool *wp = workpool_new();
	struct tloop a, b;
	struct tjob first, jobs[20];
	int gate = 0;

	TEST_CASE("batch class and completions on the right loop");
	reset();
	tloop_start(&a);
	tloop_start(&b);
	int c = workpool_class_new(wp, "commit", 1, WORKPOOL_BATCH);
	CHECK(c >= 0);
	tjob_init(&first, &gate, a.loop);
	CHECK_INT(workpool_submit(wp, c, &first.job, a.loop), 0);
	WAIT_FOR(running == 1);
	for (size_t i = 0; i < 20; i++) {
		struct loop *l = i % 2 ? b.loop : a.loop;
		tjob_init(&jobs[i], NULL, l);
		CHECK_INT(workpool_submit(wp, c, &jobs[i].job, l), 0);
	}
	__atomic_store_n(&gate, 1, __ATOMIC_RELEASE);
	WAIT_FOR(done_count == 21);
	CHECK_INT(done_count, 21);
	CHECK_INT(wrong_loop, 0);
	CHECK_INT(first.batch, 1);
	CHECK_INT(jobs[0].batch, 20);		/* every waiting job: one round */
	CHECK_INT(jobs[19].batch, 20);
	CHECK_INT(batch_runs, 1);

	TEST_CASE("completions drained in one loop wake-up");
	reset();
	uint64_t drains = workpool_drains(wp);
	__atomic_store_n(&loop_gate, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&loop_blocked, 0, __ATOMIC_RELEASE);
	loop_post(a.loop, block_loop, NULL);
	WAIT_FOR(__atomic_load_n(&loop_blocked, __ATOMIC_ACQUIRE));
	int c2 = workpool_class_new(wp, "auth", 4, 0);
	CHECK(c2 >= 0);
	submit_n(wp, c2, jobs, 20, a.loop);
	WAIT_FOR(workpool_class_load(wp, c2) == 0);
	CHECK_INT(ran, 20);
	CHECK_INT(done_count, 0);		/* the loop is held */
	__atomic_store_n(&loop_gate, 1, __ATOMIC_RELEASE);
	WAIT_FOR(done_count == 20);
	CHECK_INT(done_count, 20);
	CHECK_INT(workpool_drains(wp) - drains, 1);
	CHECK_INT(wrong_loop, 0);

	tloop_stop(&a);
	tloop_stop(&b);
	workpool_free(&wp);
}

static void
test_delayed(void)
{
	struct workpool *wp = workpool_new();
	struct tjob soon, late;

	TEST_CASE("delayed jobs and wake");
	reset();
	int c = workpool_class_new(wp, "deliver", 1, 0);
	uint64_t t0 = loop_clock_ms();
	tjob_init(&soon, NULL, NULL);
	tjob_init(&late, NULL, NULL);
	CHECK_INT(workpool_submit_after(wp, c, &soon.job, NULL, 60), 0);
	CHECK_INT(workpool_submit_after(wp, c, &late.job, NULL, 600000), 0);
	WAIT_FOR(done_count == 1);
	CHECK_INT(done_count, 1);
	CHECK(loop_clock_ms() - t0 >= 60);
	CHECK_INT(workpool_class_load(wp, c), 1);
	workpool_class_wake(wp, c);
	WAIT_FOR(done_count == 2);
	CHECK_INT(done_count, 2);
	CHECK(loop_clock_ms() - t0 < 60000);
	workpool_free(&wp);
}

static void
test_job_wake(void)
{
	struct workpool *wp = workpool_new();
	struct tjob a, b;

	TEST_CASE("one delayed job woken, the other left");
	reset();
	int c = workpool_class_new(wp, "deliver", 1, 0);
	int other = workpool_class_new(wp, "other", 1, 0);
	uint64_t t0 = loop_clock_ms();
	tjob_init(&a, NULL, NULL);
	tjob_init(&b, NULL, NULL);
	CHECK_INT(workpool_submit_after(wp, c, &a.job, NULL, 600000), 0);
	CHECK_INT(workpool_submit_after(wp, c, &b.job, NULL, 600000), 0);
	CHECK_INT(workpool_job_wake(wp, other, &b.job), 0);	/* not its class */
	CHECK_INT(workpool_job_wake(wp, c, &b.job), 1);
	WAIT_FOR(done_count == 1);
	CHECK_INT(done_count, 1);
	CHECK(loop_clock_ms() - t0 < 60000);
	CHECK_INT(workpool_class_load(wp, c), 1);		/* a still waits */
	CHECK_INT(workpool_job_wake(wp, c, &b.job), 0);	/* ran: no-op */
	CHECK_INT(workpool_job_wake(wp, c, &a.job), 1);
	WAIT_FOR(done_count == 2);
	CHECK_INT(done_count, 2);
	workpool_free(&wp);
}

static void
test_shutdown(void)
{
	struct workpool *wp = workpool_new();
	struct tloop a;
	struct tjob held, queued[5], later, drained[5], extra, outbox[3];
	int gate = 0;

	TEST_CASE("stop cancels queued and delayed, waits for running");
	reset();
	int c = workpool_class_new(wp, "pop3", 1, 0);
	submit_held(wp, c, &held, &gate);
	submit_n(wp, c, queued, 5, NULL);
	tjob_init(&later, NULL, NULL);
	CHECK_INT(workpool_submit_after(wp, c, &later.job, NULL, 600000), 0);
	__atomic_store_n(&gate, 1, __ATOMIC_RELEASE);	/* held finishes */
	workpool_class_stop(wp, c);
	CHECK_INT(cancelled + done_count, 7);
	CHECK(cancelled >= 1);			/* later, at least */
	CHECK_INT(ran, done_count);
	CHECK_INT(running, 0);
	CHECK_INT(workpool_class_load(wp, c), 0);
	tjob_init(&extra, NULL, NULL);
	CHECK_INT(workpool_submit(wp, c, &extra.job, NULL), -1);

	TEST_CASE("stop of a DRAIN class runs what is queued");
	reset();
	int d = workpool_class_new(wp, "commit", 1, WORKPOOL_DRAIN);
	submit_held(wp, d, &held, &gate);
	submit_n(wp, d, drained, 5, NULL);
	__atomic_store_n(&gate, 1, __ATOMIC_RELEASE);
	workpool_class_stop(wp, d);
	CHECK_INT(done_count, 6);
	CHECK_INT(cancelled, 0);

	TEST_CASE("completions no loop ran are cancelled at stop");
	reset();
	tloop_start(&a);
	__atomic_store_n(&loop_gate, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&loop_blocked, 0, __ATOMIC_RELEASE);
	loop_post(a.loop, block_loop, NULL);
	/* the loop is inside block_loop before any completion is posted, so
	 * the completions wait for a round the stopped loop never runs */
	WAIT_FOR(__atomic_load_n(&loop_blocked, __ATOMIC_ACQUIRE));
	int e = workpool_class_new(wp, "auth", 2, 0);
	submit_n(wp, e, outbox, 3, a.loop);
	WAIT_FOR(workpool_class_load(wp, e) == 0);
	loop_stop(a.loop);		/* it stops after the held call */
	__atomic_store_n(&loop_gate, 1, __ATOMIC_RELEASE);
	pthread_join(a.thread, NULL);
	workpool_class_stop(wp, e);
	CHECK_INT(ran, 3);
	CHECK_INT(cancelled, 3);		/* the loop stopped first */
	CHECK_INT(done_count, 0);
	workpool_free(&wp);
	loop_free(&a.loop);
}

int
main(void)
{
	test_caps();
	test_slow_class();
	test_batch_and_loops();
	test_delayed();
	test_job_wake();
	test_shutdown();
	return TEST_DONE();
}
