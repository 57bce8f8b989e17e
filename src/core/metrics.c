/*
 * metrics.c - the registry of counters, gauges and histograms (see
 * metrics.h): the sharded tables, recording with relaxed atomics, and the
 * text rendering of the core registry for /metrics.
 */
#include "metrics.h"

#include <stddef.h>
#include <time.h>

struct metrics_shard_data {
	uint64_t counters[METRICS_COUNTERS];
	int64_t gauges[METRICS_GAUGES];
	uint64_t buckets[METRICS_HISTS][METRICS_BUCKETS_MAX + 1];	/* last: +Inf */
	uint64_t sum[METRICS_HISTS];
} __attribute__((aligned(64)));

static struct metrics_shard_data shards[METRICS_SHARDS];
static uint64_t values[METRICS_VALUES];
static unsigned next_shard;
static __thread unsigned my_shard;	/* shard + 1; 0: not picked yet */

struct hist_def {
	const char *name;
	const char *help;
	uint64_t div;			/* rendered value = raw / div */
	size_t nb;
	uint64_t bounds[METRICS_BUCKETS_MAX];
};

static const struct hist_def hists[METRICS_HISTS] = {
	[METRICS_H_REPLY_US] = { "postern_smtp_reply_latency_seconds",
		"Time from a complete SMTP command line to its reply being queued.", 1000000, 15,
		{ 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,
		  500000, 1000000, 5000000 } },
	[METRICS_H_DELIVERY_US] = { "postern_delivery_latency_seconds",
		"Time from a message's queue ID (its DATA) to the delivery of one recipient.",
		1000000, 13,
		{ 1000, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 5000000,
		  30000000, 300000000, 3600000000u } },
	[METRICS_H_COMMIT_BATCH] = { "postern_commit_batch_size",
		"Messages made durable together by one group-commit round.", 1, 10,
		{ 1, 2, 4, 8, 16, 32, 64, 128, 256, 512 } },
};

unsigned
metrics_shard(void)
{
	if (my_shard == 0)
		my_shard = __atomic_fetch_add(&next_shard, 1, __ATOMIC_RELAXED) % METRICS_SHARDS + 1;
	return my_shard - 1;
}

void
metrics_add(enum metrics_counter c, uint64_t n)
{
	if ((unsigned)c < METRICS_COUNTERS)
		__atomic_fetch_add(&shards[metrics_shard()].counters[c], n, __ATOMIC_RELAXED);
}

void
metrics_gauge_add(enum metrics_gauge g, int64_t d)
{
	if ((unsigned)g < METRICS_GAUGES)
		__atomic_fetch_add(&shards[metrics_shard()].gauges[g], d, __ATOMIC_RELAXED);
}

void
metrics_value_set(enum metrics_value v, uint64_t x)
{
	if ((unsigned)v < METRICS_VALUES)
		__atomic_store_n(&values[v], x, __ATOMIC_RELAXED);
}

void
metrics_observe(enum metrics_hist h, uint64_t x)
{
	if ((unsigned)h >= METRICS_HISTS)
		return;
	const struct hist_def *d = &hists[h];
	struct metrics_shard_data *s = &shards[metrics_shard()];
	size_t b = 0;

	while (b < d->nb && x > d->bounds[b])
		b++;
	__atomic_fetch_add(&s->buckets[h][b], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&s->sum[h], x, __ATOMIC_RELAXED);
}

/* The sum over the shards of the 64-bit field at offset (a gauge's
 * signed sum comes out right from the wrapping unsigned one). */
static uint64_t
shards_sum(size_t offset)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < METRICS_SHARDS; i++)
		n += __atomic_load_n((const uint64_t *)(const void *)((const char *)&shards[i] + offset),
				     __ATOMIC_RELAXED);
	return n;
}

uint64_t
metrics_counter_get(enum metrics_counter c)
{
	if ((unsigned)c >= METRICS_COUNTERS)
		return 0;
	return shards_sum(offsetof(struct metrics_shard_data, counters) + c * sizeof(uint64_t));
}

int64_t
metrics_gauge_get(enum metrics_gauge g)
{
	if ((unsigned)g >= METRICS_GAUGES)
		return 0;
	return (int64_t)shards_sum(offsetof(struct metrics_shard_data, gauges) +
				   g * sizeof(int64_t));
}

uint64_t
metrics_value_get(enum metrics_value v)
{
	return (unsigned)v < METRICS_VALUES ? __atomic_load_n(&values[v], __ATOMIC_RELAXED) : 0;
}

static uint64_t
clock_us(clockid_t id)
{
	struct timespec ts;

	if (clock_gettime(id, &ts) < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t
metrics_now_us(void)
{
	return clock_us(CLOCK_MONOTONIC);
}

uint64_t
metrics_wall_us(void)
{
	return clock_us(CLOCK_REALTIME);
}

/* ---- rendering -------------------------------------------------------- */

static int
render_head(struct buf *out, const char *name, const char *type, const char *help)
{
	return buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *const protocols[] = { "smtp", "pop3", "http" };

static int
render_sessions(struct buf *out)
{
	if (render_head(out, "postern_sessions_total", "counter",
			"Sessions started since the daemon started, per protocol.") < 0)
		return -1;
	for (unsigned i = 0; i < 3; i++)
		if (buf_appendf(out, "postern_sessions_total{protocol=\"%s\"} %llu\n", protocols[i],
				(unsigned long long)metrics_counter_get(METRICS_SESSIONS_SMTP + i)) < 0)
			return -1;
	if (render_head(out, "postern_sessions_open", "gauge", "Sessions open now, per protocol.") < 0)
		return -1;
	for (unsigned i = 0; i < 3; i++) {
		int64_t v = metrics_gauge_get(METRICS_OPEN_SMTP + i);

		if (buf_appendf(out, "postern_sessions_open{protocol=\"%s\"} %lld\n", protocols[i],
				(long long)(v < 0 ? 0 : v)) < 0)
			return -1;
	}
	return 0;
}

static int
render_messages(struct buf *out)
{
	static const char *const results[] = { "accepted", "refused", "deferred", "delivered",
					       "bounced" };

	if (render_head(out, "postern_messages_total", "counter",
			"Messages accepted (250 after DATA) and refused (DATA or end of data "
			"refused); recipient deliveries deferred, delivered and bounced.") < 0)
		return -1;
	for (unsigned i = 0; i < 5; i++)
		if (buf_appendf(out, "postern_messages_total{result=\"%s\"} %llu\n", results[i],
				(unsigned long long)metrics_counter_get(METRICS_MSG_ACCEPTED + i)) < 0)
			return -1;
	if (render_head(out, "postern_thread_handoffs_total", "counter",
			"Calls handed from one thread to another: posts to a loop thread "
			"(completions, wake-ups) and jobs submitted to the worker pool.") < 0)
		return -1;
	if (buf_appendf(out, "postern_thread_handoffs_total{kind=\"loop_post\"} %llu\n"
			     "postern_thread_handoffs_total{kind=\"workpool_submit\"} %llu\n",
			(unsigned long long)metrics_counter_get(METRICS_HANDOFF_POST),
			(unsigned long long)metrics_counter_get(METRICS_HANDOFF_SUBMIT)) < 0)
		return -1;
	return 0;
}

static int
render_queue(struct buf *out)
{
	uint64_t oldest = metrics_value_get(METRICS_QUEUE_OLDEST_US), now = metrics_wall_us();
	double age = oldest != 0 && now > oldest ? (double)(now - oldest) / 1e6 : 0.0;

	if (render_head(out, "postern_queue_messages", "gauge",
			"Messages in the delivery queue (waiting, deferred, held or in delivery).") < 0 ||
	    buf_appendf(out, "postern_queue_messages %llu\n",
			(unsigned long long)metrics_value_get(METRICS_QUEUE_SIZE)) < 0 ||
	    render_head(out, "postern_queue_oldest_age_seconds", "gauge",
			"Age of the oldest message in the delivery queue (0 when empty).") < 0 ||
	    buf_appendf(out, "postern_queue_oldest_age_seconds %.3f\n", age) < 0)
		return -1;
	return 0;
}

/* A bound or a sum in the histogram's unit: "0.00025", "16". */
static int
render_number(struct buf *out, uint64_t raw, uint64_t div)
{
	if (div == 1)
		return buf_appendf(out, "%llu", (unsigned long long)raw);
	return buf_appendf(out, "%.6g", (double)raw / (double)div);
}

static int
render_hist(struct buf *out, enum metrics_hist h)
{
	const struct hist_def *d = &hists[h];
	uint64_t b[METRICS_BUCKETS_MAX + 1] = { 0 }, sum = 0, cum = 0;

	for (unsigned i = 0; i < METRICS_SHARDS; i++) {
		for (size_t k = 0; k <= d->nb; k++)
			b[k] += __atomic_load_n(&shards[i].buckets[h][k], __ATOMIC_RELAXED);
		sum += __atomic_load_n(&shards[i].sum[h], __ATOMIC_RELAXED);
	}
	if (render_head(out, d->name, "histogram", d->help) < 0)
		return -1;
	for (size_t k = 0; k < d->nb; k++) {
		cum += b[k];
		if (buf_appendf(out, "%s_bucket{le=\"", d->name) < 0 ||
		    render_number(out, d->bounds[k], d->div) < 0 ||
		    buf_appendf(out, "\"} %llu\n", (unsigned long long)cum) < 0)
			return -1;
	}
	cum += b[d->nb];
	/* _count is the +Inf bucket: equal even while others add */
	if (buf_appendf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum ", d->name,
			(unsigned long long)cum, d->name) < 0 ||
	    render_number(out, sum, d->div) < 0 ||
	    buf_appendf(out, "\n%s_count %llu\n", d->name, (unsigned long long)cum) < 0)
		return -1;
	return 0;
}

int
metrics_render(struct buf *out)
{
	if (render_sessions(out) < 0 || render_messages(out) < 0 || render_queue(out) < 0)
		return -1;
	for (unsigned h = 0; h < METRICS_HISTS; h++)
		if (render_hist(out, (enum metrics_hist)h) < 0)
			return -1;
	return 0;
}
