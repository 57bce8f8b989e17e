/*
 * loop.c - the epoll event loop (see loop.h).
 *
 * Owns one epoll fd, one eventfd for cross-thread posts, a table of fd
 * watchers indexed by fd, a heap of timers (core/heap.h) and a
 * deferred-call list.
 * Each epoll registration carries (fd, generation), so an event for an fd
 * that was closed and reused within one dispatch round is dropped instead
 * of reaching the wrong owner.
 */
#include "loop.h"

#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "metrics.h"

#define LOOP_MAX_EVENTS 256

struct watch {
	loop_io_fn fn;
	void *arg;
	uint32_t gen;
	int active;
	unsigned events;		/* the interest epoll has now */
};

struct call {
	loop_fn fn;
	void *arg;
};

struct callq {
	struct call *v;
	size_t n, cap;
};

struct loop {
	int epfd;
	int wakefd;
	int stop;			/* atomic */
	uint64_t now_ms;
	struct watch *watches;		/* indexed by fd */
	size_t nwatches;
	struct heap timers;		/* of struct loop_timer, by deadline */
	pthread_mutex_t post_lock;
	struct callq posted;		/* guarded by post_lock */
	struct callq deferred;		/* loop thread only */
	void *data;
};

static uint64_t clock_pinned;	/* atomic; 0: the real clock */

void
loop_clock_pin(uint64_t ms)
{
	__atomic_store_n(&clock_pinned, ms, __ATOMIC_RELAXED);
}

uint64_t
loop_clock_ms(void)
{
	struct timespec ts;
	uint64_t pinned = __atomic_load_n(&clock_pinned, __ATOMIC_RELAXED);

	if (pinned != 0)
		return pinned;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void
callq_push(struct callq *q, loop_fn fn, void *arg)
{
	if (q->n == q->cap) {
		q->cap = q->cap ? q->cap * 2 : 16;
		q->v = xrealloc(q->v, q->cap * sizeof(*q->v));
	}
	q->v[q->n].fn = fn;
	q->v[q->n].arg = arg;
	q->n++;
}

struct loop *
loop_new(void)
{
	struct loop *loop = xcalloc(1, sizeof(*loop));
	struct epoll_event ev = { .events = EPOLLIN };

	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	loop->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (loop->epfd < 0 || loop->wakefd < 0) {
		if (loop->epfd >= 0)
			close(loop->epfd);
		if (loop->wakefd >= 0)
			close(loop->wakefd);
		free(loop);
		return NULL;
	}
	ev.data.u64 = UINT64_MAX;	/* marks the wake fd */
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->wakefd, &ev) < 0) {
		close(loop->epfd);
		close(loop->wakefd);
		free(loop);
		return NULL;
	}
	pthread_mutex_init(&loop->post_lock, NULL);
	loop->now_ms = loop_clock_ms();
	return loop;
}

void
loop_free(struct loop **loopp)
{
	struct loop *loop = *loopp;

	if (loop == NULL)
		return;
	close(loop->epfd);
	close(loop->wakefd);
	pthread_mutex_destroy(&loop->post_lock);
	free(loop->watches);
	heap_fini(&loop->timers);
	free(loop->posted.v);
	free(loop->deferred.v);
	free(loop);
	*loopp = NULL;
}

static uint32_t
to_epoll(unsigned events)
{
	uint32_t e = 0;

	if (events & LOOP_READ)
		e |= EPOLLIN | EPOLLRDHUP;
	if (events & LOOP_WRITE)
		e |= EPOLLOUT;
	return e;
}

int
loop_add_fd(struct loop *loop, int fd, unsigned events, loop_io_fn fn, void *arg)
{
	struct epoll_event ev;

	if (fd < 0)
		return -1;
	if ((size_t)fd >= loop->nwatches) {
		size_t n = loop->nwatches ? loop->nwatches : 64;
		while (n <= (size_t)fd)
			n *= 2;
		loop->watches = xrealloc(loop->watches, n * sizeof(*loop->watches));
		memset(loop->watches + loop->nwatches, 0,
		       (n - loop->nwatches) * sizeof(*loop->watches));
		loop->nwatches = n;
	}
	struct watch *w = &loop->watches[fd];
	w->gen++;
	w->fn = fn;
	w->arg = arg;
	w->active = 1;
	w->events = events;
	ev.events = to_epoll(events);
	ev.data.u64 = ((uint64_t)w->gen << 32) | (uint32_t)fd;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		w->active = 0;
		return -1;
	}
	return 0;
}

int
loop_mod_fd(struct loop *loop, int fd, unsigned events)
{
	struct epoll_event ev;

	if (fd < 0 || (size_t)fd >= loop->nwatches || !loop->watches[fd].active)
		return -1;
	struct watch *w = &loop->watches[fd];
	if (w->events == events)
		return 0;	/* already so: no system call */
	ev.events = to_epoll(events);
	ev.data.u64 = ((uint64_t)w->gen << 32) | (uint32_t)fd;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -1;
	w->events = events;
	return 0;
}

void
loop_del_fd(struct loop *loop, int fd)
{
	if (fd < 0 || (size_t)fd >= loop->nwatches || !loop->watches[fd].active)
		return;
	(void)epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
	loop->watches[fd].active = 0;
	loop->watches[fd].fn = NULL;
	loop->watches[fd].gen++;
}

/* ---- timers: binary min-heap on when_ms ---------------------------- */

void
loop_timer_init(struct loop_timer *t, loop_fn fn, void *arg)
{
	t->node = (struct heap_node)HEAP_NODE_INIT;
	t->fn = fn;
	t->arg = arg;
}

int
loop_timer_armed(const struct loop_timer *t)
{
	return t->node.index != SIZE_MAX;
}

static struct loop_timer *
timer_of(struct heap_node *n)
{
	return (struct loop_timer *)((char *)n - offsetof(struct loop_timer, node));
}

void
loop_timer_cancel(struct loop *loop, struct loop_timer *t)
{
	if (t->node.index == SIZE_MAX)
		return;
	heap_remove(&loop->timers, &t->node);
}

void
loop_timer_set(struct loop *loop, struct loop_timer *t, uint64_t delay_ms)
{
	loop_timer_cancel(loop, t);
	t->node.key = loop_clock_ms() + delay_ms;
	heap_push(&loop->timers, &t->node);
}

/* ---- posts and deferred calls -------------------------------------- */

void
loop_post(struct loop *loop, loop_fn fn, void *arg)
{
	uint64_t one = 1;

	metrics_inc(METRICS_HANDOFF_POST);
	pthread_mutex_lock(&loop->post_lock);
	callq_push(&loop->posted, fn, arg);
	pthread_mutex_unlock(&loop->post_lock);
	/* EAGAIN means the counter is already non-zero: the loop will wake. */
	if (write(loop->wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		PANIC("eventfd write failed");
}

void
loop_defer(struct loop *loop, loop_fn fn, void *arg)
{
	callq_push(&loop->deferred, fn, arg);
}

static void
run_posted(struct loop *loop)
{
	struct callq q;
	uint64_t v;

	if (read(loop->wakefd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		PANIC("eventfd read failed");
	pthread_mutex_lock(&loop->post_lock);
	q = loop->posted;
	loop->posted = (struct callq){ 0 };
	pthread_mutex_unlock(&loop->post_lock);
	for (size_t i = 0; i < q.n; i++)
		q.v[i].fn(loop, q.v[i].arg);
	free(q.v);
}

static int
run_deferred(struct loop *loop)
{
	int ran = loop->deferred.n > 0;

	/* Deferred calls may defer more; run until none is left. */
	while (loop->deferred.n > 0) {
		struct callq q = loop->deferred;
		loop->deferred = (struct callq){ 0 };
		for (size_t i = 0; i < q.n; i++)
			q.v[i].fn(loop, q.v[i].arg);
		free(q.v);
	}
	return ran;
}

static int
run_timers(struct loop *loop)
{
	uint64_t now = loop_clock_ms();
	struct heap_node *n;
	int ran = 0;

	loop->now_ms = now;
	while ((n = heap_top(&loop->timers)) != NULL && n->key <= now) {
		struct loop_timer *t = timer_of(n);
		loop_timer_cancel(loop, t);
		t->fn(loop, t->arg);
		ran = 1;
	}
	return ran;
}

uint64_t
loop_now_ms(struct loop *loop)
{
	return loop->now_ms;
}

/* One round: waits up to timeout ms (-1: until a timer is due) for
 * events, dispatches them, then the due timers. Returns 1 if anything
 * ran, 0 if not, -1 on a fatal epoll error. */
static int
loop_round(struct loop *loop, int timeout)
{
	struct epoll_event evs[LOOP_MAX_EVENTS];
	int ran = run_deferred(loop);

	if (timeout < 0 && heap_top(&loop->timers) != NULL) {
		uint64_t now = loop_clock_ms();
		uint64_t when = heap_top(&loop->timers)->key;
		timeout = when <= now ? 0 : (when - now > 60000 ? 60000 : (int)(when - now));
	}
	int n = epoll_wait(loop->epfd, evs, LOOP_MAX_EVENTS, timeout);
	if (n < 0)
		return errno == EINTR ? ran : -1;
	loop->now_ms = loop_clock_ms();
	for (int i = 0; i < n; i++) {
		uint64_t key = evs[i].data.u64;
		ran = 1;
		if (key == UINT64_MAX) {
			run_posted(loop);
			continue;
		}
		int fd = (int)(uint32_t)key;
		uint32_t gen = (uint32_t)(key >> 32);
		if ((size_t)fd >= loop->nwatches)
			continue;
		struct watch *w = &loop->watches[fd];
		if (!w->active || w->gen != gen || w->fn == NULL)
			continue;
		unsigned ev = 0;
		if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			ev |= LOOP_READ;
		if (evs[i].events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
			ev |= LOOP_WRITE;
		w->fn(loop, fd, ev, w->arg);
	}
	if (run_timers(loop))
		ran = 1;
	return ran;
}

int
loop_run(struct loop *loop)
{
	while (!__atomic_load_n(&loop->stop, __ATOMIC_ACQUIRE)) {
		if (loop_round(loop, -1) < 0)
			return -1;
	}
	run_deferred(loop);
	return 0;
}

int
loop_step(struct loop *loop)
{
	int r = loop_round(loop, 0);

	if (r > 0)
		(void)run_deferred(loop);
	return r;
}

void
loop_stop(struct loop *loop)
{
	uint64_t one = 1;

	__atomic_store_n(&loop->stop, 1, __ATOMIC_RELEASE);
	if (write(loop->wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		PANIC("eventfd write failed");
}

void
loop_set_data(struct loop *loop, void *data)
{
	loop->data = data;
}

void *
loop_get_data(struct loop *loop)
{
	return loop->data;
}
