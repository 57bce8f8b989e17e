/*
 * loop.h - a small epoll event loop: fds, timers, posts from other threads.
 *
 * One loop per thread; everything registered on a loop is touched only by
 * that loop's thread, except loop_post(), which any thread may call (it
 * queues a call and wakes the loop through an eventfd). Timers live in a
 * binary heap keyed by a monotonic millisecond clock.
 */
#ifndef POSTERN_LOOP_H
#define POSTERN_LOOP_H

#include <stddef.h>
#include <stdint.h>

#include "compat.h"
#include "heap.h"

struct loop;

#define LOOP_READ 1u
#define LOOP_WRITE 2u

typedef void (*loop_io_fn)(struct loop *loop, int fd, unsigned events, void *arg);
typedef void (*loop_fn)(struct loop *loop, void *arg);

struct loop_timer {
	struct heap_node node;	/* key: absolute ms, loop_now_ms() clock;
				 * index SIZE_MAX when not armed */
	loop_fn fn;
	void *arg;
};

struct loop *loop_new(void);
void loop_free(struct loop **loopp);

/* Watches fd for LOOP_READ/LOOP_WRITE (0 = registered but paused). */
int loop_add_fd(struct loop *loop, int fd, unsigned events, loop_io_fn fn, void *arg) WARN_UNUSED;
/* Changes the interest; no system call when it is already events. */
int loop_mod_fd(struct loop *loop, int fd, unsigned events) WARN_UNUSED;
void loop_del_fd(struct loop *loop, int fd);

void loop_timer_init(struct loop_timer *t, loop_fn fn, void *arg);
/* (Re)arms t to fire once after delay_ms. */
void loop_timer_set(struct loop *loop, struct loop_timer *t, uint64_t delay_ms);
void loop_timer_cancel(struct loop *loop, struct loop_timer *t);
int loop_timer_armed(const struct loop_timer *t);

/* Thread-safe: runs fn(loop, arg) on the loop's thread soon. */
void loop_post(struct loop *loop, loop_fn fn, void *arg);
/* Loop thread only: runs fn after the current dispatch round. */
void loop_defer(struct loop *loop, loop_fn fn, void *arg);

uint64_t loop_now_ms(struct loop *loop);	/* cached per round */
uint64_t loop_clock_ms(void);			/* CLOCK_MONOTONIC now */
/* Tests only (the session fuzz target): pins the clock loop_clock_ms()
 * returns, for every thread, at ms (0: back to CLOCK_MONOTONIC), so
 * deadlines expire when the test moves the clock, not with real time. */
void loop_clock_pin(uint64_t ms);

/* Runs until loop_stop(); returns 0, or -1 on a fatal epoll error. */
int loop_run(struct loop *loop);
void loop_stop(struct loop *loop);		/* thread-safe */
/* One round of loop_run() that does not wait: deferred calls, ready fds,
 * posts, due timers. Returns 1 if anything ran, 0 when the loop is idle,
 * -1 on a fatal epoll error. For tests that drive a loop step by step. */
int loop_step(struct loop *loop);

/* Per-loop user pointer (the server's per-thread context). */
void loop_set_data(struct loop *loop, void *data);
void *loop_get_data(struct loop *loop);

#endif
