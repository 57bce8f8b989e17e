/*
 * workpool.c - the one worker pool (see workpool.h).
 *
 * Owns the worker threads, one FIFO per class, one binary heap of delayed
 * jobs (all classes, keyed by due time) and one outbox per loop holding
 * the completions that loop has not run yet. One mutex guards all of it;
 * a condition variable per idle worker (CLOCK_MONOTONIC) wakes it for new,
 * due or stopped work, another wakes a class_stop waiting for running jobs.
 * Any worker runs any class, so a new job wakes one idle worker, not all
 * of them (waking all cost ~100 futex calls per message): each idle worker
 * waits on a condition variable of its own, in a list, and a wake pops one
 * (one waiter per variable: no reliance on pthread_cond_signal's choice,
 * which glibc < 2.41 can lose, bug 25847). A worker that takes work while
 * more is ready passes the wake on.
 */
#include "workpool.h"

#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "heap.h"
#include "metrics.h"

#define WORKPOOL_LOOPS_MAX 1024		/* outboxes: one per loop */

struct wp_class {
	const char *name;
	unsigned cap, flags;
	unsigned running;
	unsigned long load;		/* queued + delayed + running */
	struct workpool_job *head, **tail;
	int used, stopped;
};

struct wp_outbox {
	struct workpool *wp;
	struct loop *loop;
	struct workpool_job *head, **tail;
	int posted;			/* a drain call is on its way */
};

/* An idle worker: on its stack while it waits. */
struct wp_idle {
	pthread_cond_t cv;		/* CLOCK_MONOTONIC */
	struct wp_idle *next, **pprev;	/* in workpool.idlers while listed */
};

struct workpool {
	pthread_mutex_t mu;
	struct wp_idle *idlers;		/* waiting workers, last idle first */
	pthread_cond_t idle;		/* class_stop: a job finished */
	struct wp_class cls[WORKPOOL_CLASSES_MAX];
	unsigned ncls, rr;
	struct heap delayed;		/* of jobs, by due time */
	struct wp_outbox *out[WORKPOOL_LOOPS_MAX];
	size_t nout;
	pthread_t *threads;
	size_t nthreads;
	uint64_t drains;
	int stop;
};

void
workpool_job_init(struct workpool_job *job, workpool_fn run,
		  workpool_done_fn done, workpool_fn cancel)
{
	memset(job, 0, sizeof(*job));
	job->run = run;
	job->done = done;
	job->cancel = cancel;
	job->delay = (struct heap_node)HEAP_NODE_INIT;
}

/* ---- delayed jobs: the heap (core/heap.h) keyed by due time --------- */

static struct workpool_job *
job_of(struct heap_node *n)
{
	return (struct workpool_job *)((char *)n - offsetof(struct workpool_job, delay));
}

/* ---- queues ----------------------------------------------------------- */

static void
class_push(struct wp_class *c, struct workpool_job *job)
{
	job->next = NULL;
	*c->tail = job;
	c->tail = &job->next;
}

/* Due delayed jobs join their class's queue. Under mu. */
static void
promote_due(struct workpool *wp, uint64_t now)
{
	struct heap_node *n;

	while ((n = heap_top(&wp->delayed)) != NULL && n->key <= now) {
		struct workpool_job *job = job_of(n);

		heap_remove(&wp->delayed, n);
		class_push(&wp->cls[job->cls], job);
	}
}

static struct wp_outbox *
outbox_for(struct workpool *wp, struct loop *loop)
{
	for (size_t i = 0; i < wp->nout; i++)
		if (wp->out[i]->loop == loop)
			return wp->out[i];
	if (wp->nout == WORKPOOL_LOOPS_MAX)
		PANIC("workpool: too many loops");
	struct wp_outbox *o = xcalloc(1, sizeof(*o));
	o->wp = wp;
	o->loop = loop;
	o->tail = &o->head;
	wp->out[wp->nout++] = o;
	return o;
}

/* Loop thread: runs every completion waiting for this loop. */
static void
outbox_drain(struct loop *loop, void *arg)
{
	struct wp_outbox *o = arg;
	struct workpool *wp = o->wp;
	struct workpool_job *list, *job;

	pthread_mutex_lock(&wp->mu);
	list = o->head;
	o->head = NULL;
	o->tail = &o->head;
	o->posted = 0;
	wp->drains++;
	pthread_mutex_unlock(&wp->mu);
	while ((job = list) != NULL) {
		list = job->next;
		job->next = NULL;
		job->done(loop, job);
	}
}

/* Worker: the completion of one job that has run. Not under mu. */
static void
job_complete(struct workpool *wp, struct workpool_job *job)
{
	struct loop *loop = job->loop;

	if (job->done == NULL)
		return;
	if (loop == NULL) {
		job->done(NULL, job);
		return;
	}
	pthread_mutex_lock(&wp->mu);
	struct wp_outbox *o = outbox_for(wp, loop);
	int post = !o->posted;
	job->next = NULL;
	*o->tail = job;
	o->tail = &job->next;
	o->posted = 1;
	pthread_mutex_unlock(&wp->mu);
	if (post)
		loop_post(loop, outbox_drain, o);
}

/* ---- workers ---------------------------------------------------------- */

/* A class with ready work under its cap, round robin. Under mu. */
static struct wp_class *
class_pick(struct workpool *wp)
{
	for (unsigned k = 0; k < wp->ncls; k++) {
		unsigned i = (wp->rr + k) % wp->ncls;
		struct wp_class *c = &wp->cls[i];

		if (c->head != NULL && c->running < c->cap) {
			wp->rr = (i + 1) % wp->ncls;
			return c;
		}
	}
	return NULL;
}

/* Whether class_pick would find work now. Under mu. */
static int
class_pick_peek(const struct workpool *wp)
{
	for (unsigned i = 0; i < wp->ncls; i++)
		if (wp->cls[i].head != NULL && wp->cls[i].running < wp->cls[i].cap)
			return 1;
	return 0;
}

/* Wakes one idle worker, if any. Under mu. */
static void
wake_one(struct workpool *wp)
{
	struct wp_idle *w = wp->idlers;

	if (w == NULL)
		return;
	wp->idlers = w->next;
	if (w->next != NULL)
		w->next->pprev = &wp->idlers;
	w->next = NULL;
	w->pprev = NULL;
	pthread_cond_signal(&w->cv);
}

/* Wakes every idle worker. Under mu. */
static void
wake_all(struct workpool *wp)
{
	while (wp->idlers != NULL)
		wake_one(wp);
}

/* The worker waits, listed as idle, until woken or (timed) until due_ms.
 * Under mu. */
static void
idle_wait(struct workpool *wp, struct wp_idle *me, int timed, uint64_t due_ms)
{
	me->next = wp->idlers;
	if (me->next != NULL)
		me->next->pprev = &me->next;
	me->pprev = &wp->idlers;
	wp->idlers = me;
	if (!timed) {
		(void)pthread_cond_wait(&me->cv, &wp->mu);
	} else {
		uint64_t now = loop_clock_ms();
		struct timespec ts;

		if (due_ms > now) {
			clock_gettime(CLOCK_MONOTONIC, &ts);
			due_ms -= now;
			if (due_ms > 60000)
				due_ms = 60000;
			ts.tv_sec += (time_t)(due_ms / 1000u);
			ts.tv_nsec += (long)(due_ms % 1000u) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			(void)pthread_cond_timedwait(&me->cv, &wp->mu, &ts);
		}
	}
	/* Timed out or spurious: still listed. */
	if (me->pprev != NULL) {
		*me->pprev = me->next;
		if (me->next != NULL)
			me->next->pprev = me->pprev;
		me->next = NULL;
		me->pprev = NULL;
	}
}

static void *
worker_main(void *arg)
{
	struct workpool *wp = arg;
	struct wp_idle me = { .next = NULL, .pprev = NULL };
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&me.cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_lock(&wp->mu);
	while (!wp->stop) {
		struct wp_class *c;
		struct workpool_job *list, *job, *next;
		unsigned n = 0;

		promote_due(wp, loop_clock_ms());
		c = class_pick(wp);
		if (c == NULL) {
			if (heap_top(&wp->delayed) != NULL)
				idle_wait(wp, &me, 1, heap_top(&wp->delayed)->key);
			else
				idle_wait(wp, &me, 0, 0);
			continue;
		}
		list = c->head;
		if (c->flags & WORKPOOL_BATCH) {
			c->head = NULL;
			c->tail = &c->head;
		} else {
			c->head = list->next;
			if (c->head == NULL)
				c->tail = &c->head;
			list->next = NULL;
		}
		c->running++;
		/* More ready work than this worker: wake the next one. */
		if (class_pick_peek(wp))
			wake_one(wp);
		pthread_mutex_unlock(&wp->mu);

		list->run(list);
		/* Read each next before done: done may free or resubmit. */
		for (job = list; job != NULL; job = next) {
			next = job->next;
			n++;
			job_complete(wp, job);
		}

		pthread_mutex_lock(&wp->mu);
		c->running--;
		c->load -= n;
		pthread_cond_broadcast(&wp->idle);
	}
	pthread_mutex_unlock(&wp->mu);
	pthread_cond_destroy(&me.cv);
	return NULL;
}

/* ---- public ----------------------------------------------------------- */

struct workpool *
workpool_new(void)
{
	struct workpool *wp = xcalloc(1, sizeof(*wp));

	pthread_mutex_init(&wp->mu, NULL);
	pthread_cond_init(&wp->idle, NULL);
	return wp;
}

int
workpool_class_new(struct workpool *wp, const char *name, unsigned cap,
		   unsigned flags)
{
	struct wp_class *c;
	unsigned started = 0;

	if (cap == 0 || cap > WORKPOOL_CAP_MAX)
		return -1;
	pthread_mutex_lock(&wp->mu);
	if (wp->ncls == WORKPOOL_CLASSES_MAX || wp->stop) {
		pthread_mutex_unlock(&wp->mu);
		return -1;
	}
	wp->threads = xrealloc(wp->threads, (wp->nthreads + cap) * sizeof(*wp->threads));
	for (unsigned i = 0; i < cap; i++) {
		if (pthread_create(&wp->threads[wp->nthreads], NULL, worker_main, wp) != 0)
			break;
		wp->nthreads++;
		started++;
	}
	if (started == 0) {
		pthread_mutex_unlock(&wp->mu);
		return -1;
	}
	/* The cap is what could start: every class keeps its own threads. */
	c = &wp->cls[wp->ncls];
	c->name = name;
	c->cap = started;
	c->flags = flags;
	c->tail = &c->head;
	c->used = 1;
	int id = (int)wp->ncls++;
	pthread_mutex_unlock(&wp->mu);
	return id;
}

int
workpool_submit_after(struct workpool *wp, int cls, struct workpool_job *job,
		      struct loop *loop, uint64_t delay_ms)
{
	struct wp_class *c;

	ASSERT(cls >= 0 && cls < WORKPOOL_CLASSES_MAX);
	c = &wp->cls[cls];
	metrics_inc(METRICS_HANDOFF_SUBMIT);
	pthread_mutex_lock(&wp->mu);
	if (!c->used || c->stopped) {
		pthread_mutex_unlock(&wp->mu);
		return -1;
	}
	job->loop = loop;
	job->cls = (unsigned)cls;
	job->delay = (struct heap_node)HEAP_NODE_INIT;
	c->load++;
	if (delay_ms == 0) {
		class_push(c, job);
	} else {
		job->delay.key = loop_clock_ms() + delay_ms;
		heap_push(&wp->delayed, &job->delay);
	}
	wake_one(wp);
	pthread_mutex_unlock(&wp->mu);
	return 0;
}

int
workpool_submit(struct workpool *wp, int cls, struct workpool_job *job,
		struct loop *loop)
{
	return workpool_submit_after(wp, cls, job, loop, 0);
}

void
workpool_class_wake(struct workpool *wp, int cls)
{
	ASSERT(cls >= 0 && cls < WORKPOOL_CLASSES_MAX);
	pthread_mutex_lock(&wp->mu);
	for (size_t i = 0; i < wp->delayed.n; i++)
		if (job_of(wp->delayed.v[i])->cls == (unsigned)cls)
			wp->delayed.v[i]->key = 0;
	heap_rebuild(&wp->delayed);
	wake_all(wp);
	pthread_mutex_unlock(&wp->mu);
}

int
workpool_job_wake(struct workpool *wp, int cls, struct workpool_job *job)
{
	int woken = 0;

	ASSERT(cls >= 0 && cls < WORKPOOL_CLASSES_MAX);
	pthread_mutex_lock(&wp->mu);
	if (job->delay.index != SIZE_MAX && job->cls == (unsigned)cls &&
	    job->delay.index < wp->delayed.n && wp->delayed.v[job->delay.index] == &job->delay) {
		heap_remove(&wp->delayed, &job->delay);
		job->delay.key = 0;
		heap_push(&wp->delayed, &job->delay);
		wake_one(wp);
		woken = 1;
	}
	pthread_mutex_unlock(&wp->mu);
	return woken;
}

static void
cancel_list(struct workpool_job *list)
{
	struct workpool_job *job;

	while ((job = list) != NULL) {
		list = job->next;
		job->next = NULL;
		if (job->cancel != NULL)
			job->cancel(job);
	}
}

void
workpool_class_stop(struct workpool *wp, int cls)
{
	struct workpool_job *cancelled = NULL, **ctail = &cancelled;
	struct wp_class *c;

	if (wp == NULL || cls < 0 || cls >= WORKPOOL_CLASSES_MAX)
		return;
	c = &wp->cls[cls];
	pthread_mutex_lock(&wp->mu);
	if (!c->used) {
		pthread_mutex_unlock(&wp->mu);
		return;
	}
	c->stopped = 1;
	/* Delayed jobs: their time has not come; cancelled. The heap is
	 * filtered, then rebuilt. */
	size_t keep = 0;
	for (size_t i = 0; i < wp->delayed.n; i++) {
		struct heap_node *n = wp->delayed.v[i];
		struct workpool_job *job = job_of(n);
		if (job->cls != (unsigned)cls) {
			n->index = keep;
			wp->delayed.v[keep++] = n;
			continue;
		}
		n->index = SIZE_MAX;
		job->next = NULL;
		*ctail = job;
		ctail = &job->next;
		c->load--;
	}
	wp->delayed.n = keep;
	heap_rebuild(&wp->delayed);
	if (!(c->flags & WORKPOOL_DRAIN) && c->head != NULL) {
		*ctail = c->head;
		for (struct workpool_job *j = c->head; j != NULL; j = j->next)
			c->load--;
		ctail = c->tail;
		c->head = NULL;
		c->tail = &c->head;
	}
	wake_all(wp);
	while (c->head != NULL || c->running > 0)
		pthread_cond_wait(&wp->idle, &wp->mu);
	/* Completions no loop ran: the loops have stopped. */
	for (size_t i = 0; i < wp->nout; i++) {
		struct wp_outbox *o = wp->out[i];
		struct workpool_job **pp = &o->head, *job;

		while ((job = *pp) != NULL) {
			if (job->cls != (unsigned)cls) {
				pp = &job->next;
				continue;
			}
			*pp = job->next;
			job->next = NULL;
			*ctail = job;
			ctail = &job->next;
		}
		o->tail = pp;
	}
	pthread_mutex_unlock(&wp->mu);
	cancel_list(cancelled);
}

void
workpool_free(struct workpool **wpp)
{
	struct workpool *wp = *wpp;

	if (wp == NULL)
		return;
	for (unsigned i = 0; i < wp->ncls; i++)
		workpool_class_stop(wp, (int)i);
	pthread_mutex_lock(&wp->mu);
	wp->stop = 1;
	wake_all(wp);
	pthread_mutex_unlock(&wp->mu);
	for (size_t i = 0; i < wp->nthreads; i++)
		pthread_join(wp->threads[i], NULL);
	for (size_t i = 0; i < wp->nout; i++)
		free(wp->out[i]);
	pthread_mutex_destroy(&wp->mu);
	pthread_cond_destroy(&wp->idle);
	heap_fini(&wp->delayed);
	free(wp->threads);
	free(wp);
	*wpp = NULL;
}

uint64_t
workpool_drains(struct workpool *wp)
{
	uint64_t n;

	pthread_mutex_lock(&wp->mu);
	n = wp->drains;
	pthread_mutex_unlock(&wp->mu);
	return n;
}

unsigned long
workpool_class_load(struct workpool *wp, int cls)
{
	unsigned long n;

	ASSERT(cls >= 0 && cls < WORKPOOL_CLASSES_MAX);
	pthread_mutex_lock(&wp->mu);
	n = wp->cls[cls].load;
	pthread_mutex_unlock(&wp->mu);
	return n;
}
