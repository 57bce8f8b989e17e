/*
 * log_queue.c - the bounded, batching queue of log lines (log_queue.h).
 *
 * A ring of slots under one mutex. Nothing here formats or writes: log.c
 * owns the lines' shape and the target.
 */
#include "log_queue.h"

#include <stdlib.h>

#include "buf.h"

void
log_queue_init(struct log_queue *q, size_t lines, size_t max_bytes)
{
	*q = (struct log_queue){ 0 };
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->ready, NULL);
	pthread_cond_init(&q->room, NULL);
	q->cap = lines > 0 ? lines : 1;
	q->max_bytes = max_bytes;
	q->items = xcalloc(q->cap, sizeof(*q->items));
}

void
log_queue_fini(struct log_queue *q)
{
	for (size_t i = 0; i < q->count; i++)
		free(q->items[(q->head + i) % q->cap].line);
	free(q->items);
	q->items = NULL;
	q->count = 0;
	pthread_cond_destroy(&q->room);
	pthread_cond_destroy(&q->ready);
	pthread_mutex_destroy(&q->lock);
}

static int
queue_full(const struct log_queue *q, size_t len)
{
	/* One line always fits in an empty queue, whatever its size. */
	return q->count >= q->cap || (q->count > 0 && q->bytes + len > q->max_bytes);
}

int
log_queue_push(struct log_queue *q, char *line, size_t len, int sev, int droppable)
{
	pthread_mutex_lock(&q->lock);
	while (!q->stopping && queue_full(q, len)) {
		if (droppable) {
			q->dropped++;
			pthread_mutex_unlock(&q->lock);
			free(line);
			return 1;
		}
		q->waiters++;
		pthread_cond_wait(&q->room, &q->lock);
		q->waiters--;
	}
	if (q->stopping) {
		pthread_mutex_unlock(&q->lock);
		return -1;
	}
	q->items[(q->head + q->count) % q->cap] = (struct log_item){ line, len, sev };
	q->count++;
	q->bytes += len;
	if (q->sleeping) {
		q->sleeping = 0;	/* one signal per batch */
		q->wakeups++;
		pthread_cond_signal(&q->ready);
	}
	pthread_mutex_unlock(&q->lock);
	return 0;
}

size_t
log_queue_take(struct log_queue *q, struct log_item *out, size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&q->lock);
	while (q->count == 0 && !q->stopping) {
		q->sleeping = 1;
		pthread_cond_wait(&q->ready, &q->lock);
	}
	q->sleeping = 0;
	while (n < max && q->count > 0) {
		out[n] = q->items[q->head];
		q->items[q->head] = (struct log_item){ 0 };
		q->head = (q->head + 1) % q->cap;
		q->count--;
		q->bytes -= out[n].len;
		n++;
	}
	q->in_flight += n;
	pthread_mutex_unlock(&q->lock);
	return n;
}

void
log_queue_done(struct log_queue *q)
{
	pthread_mutex_lock(&q->lock);
	q->in_flight = 0;
	pthread_cond_broadcast(&q->room);
	pthread_mutex_unlock(&q->lock);
}

void
log_queue_flush(struct log_queue *q)
{
	pthread_mutex_lock(&q->lock);
	while ((q->count > 0 || q->in_flight > 0) && !q->stopping)
		pthread_cond_wait(&q->room, &q->lock);
	pthread_mutex_unlock(&q->lock);
}

void
log_queue_stop(struct log_queue *q)
{
	pthread_mutex_lock(&q->lock);
	q->stopping = 1;
	pthread_cond_broadcast(&q->ready);
	pthread_cond_broadcast(&q->room);
	pthread_mutex_unlock(&q->lock);
}

uint64_t
log_queue_dropped(struct log_queue *q)
{
	pthread_mutex_lock(&q->lock);
	uint64_t n = q->dropped;
	pthread_mutex_unlock(&q->lock);
	return n;
}
