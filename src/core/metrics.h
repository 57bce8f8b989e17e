/*
 * metrics.h - the daemon's in-memory counters, gauges and histograms (the
 * figures /metrics exports, server_metrics.c).
 *
 * Owns a fixed registry: every metric is an enum value here, so recording
 * one is an index, never a lookup or an allocation. Counters, additive
 * gauges and histograms are sharded: each thread adds to its own shard
 * (picked once per thread) with relaxed atomic adds, so the hot path
 * takes no lock and rarely shares a cache line; a reader sums the shards.
 * Set gauges (the queue manager's snapshot) are single relaxed atomics.
 * Any thread may record or read.
 */
#ifndef POSTERN_METRICS_H
#define POSTERN_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define METRICS_SHARDS 16u

enum metrics_counter {
	METRICS_SESSIONS_SMTP,		/* sessions started, per protocol */
	METRICS_SESSIONS_POP3,
	METRICS_SESSIONS_HTTP,
	METRICS_MSG_ACCEPTED,		/* messages acknowledged with 250 */
	METRICS_MSG_REFUSED,		/* transactions refused at DATA/end of data */
	METRICS_MSG_DEFERRED,		/* recipient deliveries deferred */
	METRICS_MSG_DELIVERED,		/* recipient deliveries done */
	METRICS_MSG_BOUNCED,		/* recipients failed for good */
	METRICS_HANDOFF_POST,		/* loop_post: a call handed to a loop thread */
	METRICS_HANDOFF_SUBMIT,		/* workpool_submit*: a job handed to a worker */
	METRICS_COUNTERS
};

/* Gauges moved by +1/-1 (sharded; the sum is the value). */
enum metrics_gauge {
	METRICS_OPEN_SMTP,
	METRICS_OPEN_POP3,
	METRICS_OPEN_HTTP,
	METRICS_GAUGES
};

/* Gauges set to a value by their one owner. */
enum metrics_value {
	METRICS_QUEUE_SIZE,		/* messages in the delivery queue */
	METRICS_QUEUE_OLDEST_US,	/* the oldest one's queue ID time (unix us), 0: none */
	METRICS_VALUES
};

enum metrics_hist {
	METRICS_H_REPLY_US,		/* command line complete -> reply queued */
	METRICS_H_DELIVERY_US,		/* queue ID made -> recipient delivered */
	METRICS_H_COMMIT_BATCH,		/* messages per group-commit round */
	METRICS_HISTS
};

#define METRICS_BUCKETS_MAX 16

void metrics_add(enum metrics_counter c, uint64_t n);
static inline void
metrics_inc(enum metrics_counter c)
{
	metrics_add(c, 1);
}
void metrics_gauge_add(enum metrics_gauge g, int64_t d);
void metrics_value_set(enum metrics_value v, uint64_t x);
void metrics_observe(enum metrics_hist h, uint64_t x);

/* This thread's shard (0..METRICS_SHARDS-1), for other sharded tables
 * (the catalog's per-ID counts). */
unsigned metrics_shard(void);

/* Reading: sums over the shards. */
uint64_t metrics_counter_get(enum metrics_counter c);
int64_t metrics_gauge_get(enum metrics_gauge g);
uint64_t metrics_value_get(enum metrics_value v);

/* CLOCK_MONOTONIC / CLOCK_REALTIME in microseconds. */
uint64_t metrics_now_us(void);
uint64_t metrics_wall_us(void);

/* Appends the core registry in the Prometheus text format (0.0.4):
 * # HELP, # TYPE and samples. -1 when out is full. */
int metrics_render(struct buf *out) WARN_UNUSED;

#endif
