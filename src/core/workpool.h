/*
 * workpool.h - the one worker pool: blocking work (disk, password hashes,
 * SQLite, scans) runs here, never on a loop thread.
 *
 * Work is sorted into classes (commits, deliveries, AUTH, POP3, scans: the
 * users create them; the pool knows no mail). Each class has its own FIFO
 * queue and a concurrency cap, and the pool runs exactly the sum of the
 * caps in threads, so a class under its cap always finds an idle thread:
 * a commit never waits behind a password hash or a scan.
 *
 * A job is a struct workpool_job embedded in the caller's own job:
 *   run(job)          on a worker thread;
 *   done(loop, job)   then on the submitting loop's thread, or, when the
 *                     job was submitted with loop NULL, on the worker right
 *                     after run; from done on the job is the owner's again
 *                     (it may free or resubmit it);
 *   cancel(job)       instead of run or done, when the job's class stops
 *                     (the owner frees it; any thread). NULL: nothing.
 * Completions are posted to their loop in batches: the first completion
 * waiting for a loop posts one drain call (loop_post); every completion
 * that arrives before the loop runs it is drained by that same call.
 *
 * Classes with WORKPOOL_BATCH hand a worker every ready job of the class
 * at once (group commit): run() gets the first, the rest follow through
 * job->next; each job still gets its own done.
 *
 * Shutdown rule: workpool_class_stop() refuses new jobs of the class
 * (submit returns -1, the caller keeps the job), cancels its delayed jobs,
 * runs (WORKPOOL_DRAIN) or cancels (default) its queued jobs, waits for
 * its running ones, and cancels its completions no loop has run yet; so
 * call it after the loops stopped. After it returns the pool holds no job
 * of that class. workpool_free() stops every class, then the threads.
 */
#ifndef POSTERN_WORKPOOL_H
#define POSTERN_WORKPOOL_H

#include <stdint.h>

#include "compat.h"
#include "heap.h"
#include "loop.h"

#define WORKPOOL_CLASSES_MAX 16
#define WORKPOOL_CAP_MAX 64		/* threads per class */

#define WORKPOOL_BATCH 1u	/* a worker takes every ready job at once */
#define WORKPOOL_DRAIN 2u	/* stop runs queued jobs instead of cancelling */

struct workpool;
struct workpool_job;

typedef void (*workpool_fn)(struct workpool_job *job);
typedef void (*workpool_done_fn)(struct loop *loop, struct workpool_job *job);

struct workpool_job {
	struct workpool_job *next;	/* pool's; in a BATCH run: the batch */
	workpool_fn run;
	workpool_done_fn done;		/* NULL: no completion */
	workpool_fn cancel;		/* NULL: nothing to free */
	/* pool-private below */
	struct loop *loop;
	struct heap_node delay;		/* delayed jobs: key = due, monotonic ms */
	unsigned cls;
};

void workpool_job_init(struct workpool_job *job, workpool_fn run,
		       workpool_done_fn done, workpool_fn cancel);

struct workpool *workpool_new(void);
void workpool_free(struct workpool **wpp);

/* A new class of cap (1..WORKPOOL_CAP_MAX) concurrent jobs, starting cap
 * more threads; flags WORKPOOL_*. The class id, or -1 (too many classes,
 * or no thread could start; logged by the caller). name is borrowed. */
int workpool_class_new(struct workpool *wp, const char *name, unsigned cap,
		       unsigned flags) WARN_UNUSED;

/* Queues job; done later runs on loop (NULL: on the worker). 0, or -1
 * when the class is stopped (the job was not taken). Thread-safe. */
int workpool_submit(struct workpool *wp, int cls, struct workpool_job *job,
		    struct loop *loop) WARN_UNUSED;
/* The same, ready only after delay_ms. */
int workpool_submit_after(struct workpool *wp, int cls, struct workpool_job *job,
			  struct loop *loop, uint64_t delay_ms) WARN_UNUSED;
/* Every delayed job of the class becomes ready now (after a reload). */
void workpool_class_wake(struct workpool *wp, int cls);
/* The one delayed job of class cls becomes ready now (an operator's
 * flush): 1, or 0 when it is not waiting in the delay heap (queued,
 * running, done: nothing to do). The caller keeps job alive meanwhile
 * (it owns it until its done). Thread-safe. */
int workpool_job_wake(struct workpool *wp, int cls, struct workpool_job *job);
/* See the shutdown rule above. Idempotent. */
void workpool_class_stop(struct workpool *wp, int cls);

/* Statistics (tests): drain calls run on loops so far; jobs of cls queued,
 * delayed or running now. */
uint64_t workpool_drains(struct workpool *wp);
unsigned long workpool_class_load(struct workpool *wp, int cls);

#endif
