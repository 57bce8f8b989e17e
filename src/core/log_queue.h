/*
 * log_queue.h - the bounded queue between the threads that log and the one
 * log thread (see log.c).
 *
 * Producers push finished lines; the consumer takes every waiting line in
 * batches. The queue is bounded by a line count and a byte count. On a
 * full queue a droppable line (debug and trace) is freed and counted; any
 * other line makes its producer wait for room, so it is never lost. The
 * consumer is signalled only when it sleeps (once per batch, not per line).
 */
#ifndef POSTERN_LOG_QUEUE_H
#define POSTERN_LOG_QUEUE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct log_item {
	char *line;	/* owned (malloc); ends with '\n' */
	size_t len;	/* bytes, including the '\n' */
	int sev;
};

struct log_queue {
	pthread_mutex_t lock;
	pthread_cond_t ready;	/* the consumer waits for lines */
	pthread_cond_t room;	/* producers and flushers wait for progress */
	struct log_item *items;	/* ring of cap slots */
	size_t cap, head, count;
	size_t bytes, max_bytes;
	size_t in_flight;	/* taken, not yet written (log_queue_done) */
	uint64_t dropped;	/* droppable lines refused on a full queue */
	uint64_t wakeups;	/* signals sent to the consumer */
	unsigned waiters;	/* producers waiting for room */
	int sleeping;		/* the consumer waits on ready */
	int stopping;
};

void log_queue_init(struct log_queue *q, size_t lines, size_t max_bytes);
/* Frees lines left in the queue (after the consumer stopped). */
void log_queue_fini(struct log_queue *q);

/* Queues a line and takes ownership of it: 0 when queued, 1 when it was
 * droppable and the queue full (the line is freed and counted). A line
 * that is not droppable waits for room. -1 when the queue is stopping:
 * the line stays the caller's. */
int log_queue_push(struct log_queue *q, char *line, size_t len, int sev, int droppable);

/* Waits for lines (or stop), then moves up to max of them to out in
 * arrival order. 0 only when stopping and empty. The caller writes them,
 * frees each line and calls log_queue_done(). */
size_t log_queue_take(struct log_queue *q, struct log_item *out, size_t max);
void log_queue_done(struct log_queue *q);

/* Waits until every line pushed before the call has been written. */
void log_queue_flush(struct log_queue *q);
/* Wakes the consumer for the last drain; further pushes return -1. */
void log_queue_stop(struct log_queue *q);
uint64_t log_queue_dropped(struct log_queue *q);

#endif
