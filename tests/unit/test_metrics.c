/*
 * test_metrics.c - unit tests for core/metrics.c: counters and gauges
 * added from many threads sum exactly over the shards, histogram buckets
 * are cumulative with _count equal to +Inf, set values read back, and the
 * rendering has a HELP and TYPE before each family's samples.
 */
#include "metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "testing.h"

#define THREADS 24	/* more than METRICS_SHARDS: shards are shared */
#define ADDS 10000

static void *
adder(void *arg)
{
	(void)arg;
	for (int i = 0; i < ADDS; i++) {
		metrics_inc(METRICS_HANDOFF_POST);
		metrics_gauge_add(METRICS_OPEN_SMTP, 1);
		metrics_gauge_add(METRICS_OPEN_SMTP, -1);
	}
	metrics_gauge_add(METRICS_OPEN_SMTP, 1);
	CHECK(metrics_shard() < METRICS_SHARDS);
	return NULL;
}

static void
test_threads(void)
{
	pthread_t t[THREADS];

	TEST_CASE("adds from many threads sum exactly");
	for (int i = 0; i < THREADS; i++)
		CHECK_INT(pthread_create(&t[i], NULL, adder, NULL), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	CHECK_INT(metrics_counter_get(METRICS_HANDOFF_POST), (uint64_t)THREADS * ADDS);
	CHECK_INT(metrics_gauge_get(METRICS_OPEN_SMTP), THREADS);
	CHECK_INT(metrics_counter_get(METRICS_HANDOFF_SUBMIT), 0);
}

static void
test_render(void)
{
	struct buf b;
	const char *s;

	TEST_CASE("histograms are cumulative; values read back; HELP and TYPE first");
	metrics_observe(METRICS_H_COMMIT_BATCH, 1);
	metrics_observe(METRICS_H_COMMIT_BATCH, 3);
	metrics_observe(METRICS_H_COMMIT_BATCH, 3);
	metrics_observe(METRICS_H_COMMIT_BATCH, 100000);
	metrics_observe(METRICS_H_REPLY_US, 200);
	metrics_value_set(METRICS_QUEUE_SIZE, 7);
	CHECK_INT(metrics_value_get(METRICS_QUEUE_SIZE), 7);
	buf_init(&b, 1 << 20);
	CHECK_INT(metrics_render(&b), 0);
	s = buf_cstr(&b);
	CHECK(strstr(s, "postern_commit_batch_size_bucket{le=\"1\"} 1\n") != NULL);
	CHECK(strstr(s, "postern_commit_batch_size_bucket{le=\"2\"} 1\n") != NULL);
	CHECK(strstr(s, "postern_commit_batch_size_bucket{le=\"4\"} 3\n") != NULL);
	CHECK(strstr(s, "postern_commit_batch_size_bucket{le=\"512\"} 3\n") != NULL);
	CHECK(strstr(s, "postern_commit_batch_size_bucket{le=\"+Inf\"} 4\n") != NULL);
	CHECK(strstr(s, "postern_commit_batch_size_sum 100007\n") != NULL);
	CHECK(strstr(s, "postern_commit_batch_size_count 4\n") != NULL);
	CHECK(strstr(s, "postern_smtp_reply_latency_seconds_bucket{le=\"0.0001\"} 0\n") != NULL);
	CHECK(strstr(s, "postern_smtp_reply_latency_seconds_bucket{le=\"0.00025\"} 1\n") != NULL);
	CHECK(strstr(s, "postern_smtp_reply_latency_seconds_sum 0.0002\n") != NULL);
	CHECK(strstr(s, "postern_queue_messages 7\n") != NULL);
	CHECK(strstr(s, "postern_sessions_open{protocol=\"smtp\"} 24\n") != NULL);
	CHECK(strstr(s, "postern_thread_handoffs_total{kind=\"loop_post\"} 240000\n") != NULL);
	const char *h = strstr(s, "# HELP postern_commit_batch_size ");
	const char *ty = strstr(s, "# TYPE postern_commit_batch_size histogram\n");
	CHECK(h != NULL && ty != NULL && h < ty && ty < strstr(s, "postern_commit_batch_size_bucket"));

	TEST_CASE("a full buffer is -1");
	buf_fini(&b);
	buf_init(&b, 100);
	CHECK_INT(metrics_render(&b), -1);
	buf_fini(&b);
}

int
main(void)
{
	test_threads();
	test_render();
	return TEST_DONE();
}
