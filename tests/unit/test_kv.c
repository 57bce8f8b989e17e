/*
 * test_kv.c - the SQLite state store (store/kv_sqlite.c): put/get, incr,
 * TTL expiry (through the clock offset hook), delete, persistence across
 * a reopen, a broken path, and increments from several threads at once.
 * (The asynchronous store over it, and the failed-login store, are in
 * test_state.c.)
 */
#include "kv_store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testing.h"

#define THREADS 4
#define PER_THREAD 500

static char dir[256];

static void
rm_dir(void)
{
	const char *files[] = { "state.db", "state.db-wal", "state.db-shm" };
	char p[512];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (snprintf(p, sizeof(p), "%s/%s", dir, files[i]) > 0)
			unlink(p);
	}
	rmdir(dir);
}

static void
test_basic(struct kv_store *kv)
{
	struct buf b;
	uint64_t ttl = 99;
	int64_t v = 0;

	buf_init(&b, 1024);
	TEST_CASE("get absent");
	CHECK_INT(kv_get(kv, "nope", &b, &ttl), 0);
	CHECK_INT(kv_get_int(kv, "nope", &v, NULL), 0);

	TEST_CASE("put/get without ttl");
	CHECK_INT(kv_put(kv, "a", "hello", 5, 0), 0);
	CHECK_INT(kv_get(kv, "a", &b, &ttl), 1);
	CHECK_MEM(b.data, b.len, "hello");
	CHECK_INT(ttl, 0);

	TEST_CASE("put replaces");
	buf_reset(&b);
	CHECK_INT(kv_put(kv, "a", "bye", 3, 60), 0);
	CHECK_INT(kv_get(kv, "a", &b, &ttl), 1);
	CHECK_MEM(b.data, b.len, "bye");
	CHECK(ttl >= 59 && ttl <= 60);

	TEST_CASE("binary value");
	buf_reset(&b);
	CHECK_INT(kv_put(kv, "bin", "x\0y", 3, 0), 0);
	CHECK_INT(kv_get(kv, "bin", &b, NULL), 1);
	CHECK_INT(b.len, 3);
	CHECK(memcmp(b.data, "x\0y", 3) == 0);

	TEST_CASE("empty value");
	buf_reset(&b);
	CHECK_INT(kv_put(kv, "empty", NULL, 0, 0), 0);
	CHECK_INT(kv_get(kv, "empty", &b, NULL), 1);
	CHECK_INT(b.len, 0);

	TEST_CASE("value too big for the buffer");
	struct buf small;
	buf_init(&small, 2);
	CHECK_INT(kv_get(kv, "a", &small, NULL), -1);
	CHECK(kv_error()[0] != '\0');
	buf_fini(&small);

	TEST_CASE("bad keys");
	char longkey[KV_KEY_MAX + 2];
	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	CHECK_INT(kv_put(kv, "", "x", 1, 0), -1);
	CHECK_INT(kv_put(kv, longkey, "x", 1, 0), -1);
	CHECK_INT(kv_incr(kv, longkey, 1, 0, &v), -1);
	TEST_CASE("value too large");
	char *huge = calloc(1, KV_VALUE_MAX + 1);
	CHECK_INT(kv_put(kv, "huge", huge, KV_VALUE_MAX + 1, 0), -1);
	free(huge);

	TEST_CASE("incr creates, adds, returns");
	CHECK_INT(kv_incr(kv, "c", 1, 100, &v), 0);
	CHECK_INT(v, 1);
	CHECK_INT(kv_incr(kv, "c", 1, 100, &v), 0);
	CHECK_INT(v, 2);
	CHECK_INT(kv_incr(kv, "c", -5, 100, &v), 0);
	CHECK_INT(v, -3);
	CHECK_INT(kv_get_int(kv, "c", &v, &ttl), 1);
	CHECK_INT(v, -3);
	CHECK(ttl >= 99 && ttl <= 100);

	TEST_CASE("incr keeps the first expiry");
	kv_set_clock_offset(kv, 50);
	CHECK_INT(kv_incr(kv, "c", 10, 100, &v), 0);
	CHECK_INT(v, 7);
	CHECK_INT(kv_get_int(kv, "c", &v, &ttl), 1);
	CHECK(ttl >= 49 && ttl <= 50);

	TEST_CASE("expired entries are gone");
	kv_set_clock_offset(kv, 101);
	CHECK_INT(kv_get_int(kv, "c", &v, NULL), 0);
	buf_reset(&b);
	CHECK_INT(kv_get(kv, "a", &b, NULL), 0);	/* ttl 60 */
	CHECK_INT(kv_get(kv, "bin", &b, NULL), 1);	/* no ttl */
	TEST_CASE("incr after expiry starts again with a new ttl");
	CHECK_INT(kv_incr(kv, "c", 1, 10, &v), 0);
	CHECK_INT(v, 1);
	CHECK_INT(kv_get_int(kv, "c", &v, &ttl), 1);
	CHECK(ttl >= 9 && ttl <= 10);

	TEST_CASE("expire purges");
	CHECK_INT(kv_put(kv, "short", "x", 1, 1), 0);
	kv_set_clock_offset(kv, 200);
	CHECK(kv_expire(kv) >= 2);	/* "short" and "c" */
	CHECK_INT(kv_expire(kv), 0);

	TEST_CASE("delete");
	CHECK_INT(kv_delete(kv, "bin"), 1);
	CHECK_INT(kv_delete(kv, "bin"), 0);
	CHECK_INT(kv_get(kv, "bin", &b, NULL), 0);
	CHECK_INT(kv_put(kv, "gone", "x", 1, 5), 0);
	kv_set_clock_offset(kv, 300);
	CHECK_INT(kv_delete(kv, "gone"), 0);	/* expired: not live */
	kv_set_clock_offset(kv, 0);
	buf_fini(&b);
}

struct worker_arg {
	struct kv_store *kv;
	int failures;
};

static void *
incr_worker(void *p)
{
	struct worker_arg *a = p;
	int64_t v;

	for (int i = 0; i < PER_THREAD; i++) {
		if (kv_incr(a->kv, "shared", 1, 3600, &v) < 0)
			a->failures++;
		if (kv_incr(a->kv, i % 2 ? "odd" : "even", 1, 0, &v) < 0)
			a->failures++;
	}
	return NULL;
}

static void
test_threads(struct kv_store *kv)
{
	pthread_t t[THREADS];
	struct worker_arg a[THREADS];
	int64_t v = 0;

	TEST_CASE("concurrent incr from threads");
	for (int i = 0; i < THREADS; i++) {
		a[i].kv = kv;
		a[i].failures = 0;
		CHECK_INT(pthread_create(&t[i], NULL, incr_worker, &a[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		CHECK_INT(a[i].failures, 0);
	}
	CHECK_INT(kv_get_int(kv, "shared", &v, NULL), 1);
	CHECK_INT(v, THREADS * PER_THREAD);
	CHECK_INT(kv_get_int(kv, "odd", &v, NULL), 1);
	CHECK_INT(v, THREADS * PER_THREAD / 2);
}
int
main(void)
{
	const char *err = NULL;
	struct kv_store *kv;
	int64_t v = 0;
	char path[512];

	if (snprintf(dir, sizeof(dir), "/tmp/postern-test-kv.%ld", (long)getpid()) < 0)
		return 1;
	rm_dir();
	CHECK_INT(mkdir(dir, 0700), 0);

	TEST_CASE("open");
	kv = kv_open(dir, &err);
	CHECK(kv != NULL);
	if (kv == NULL) {
		fprintf(stderr, "open: %s\n", err);
		return TEST_DONE();
	}
	CHECK_INT(kv_is_memory(kv), 0);
	test_basic(kv);
	test_threads(kv);
	CHECK_INT(kv_put(kv, "persist", "yes", 3, 3600), 0);
	kv_close(&kv);
	CHECK(kv == NULL);
	kv_close(&kv);	/* NULL is a no-op */

	TEST_CASE("WAL mode and file");
	if (snprintf(path, sizeof(path), "%s/state.db", dir) > 0)
		CHECK_INT(access(path, F_OK), 0);

	TEST_CASE("reopen keeps entries and counters");
	kv = kv_open(dir, &err);
	CHECK(kv != NULL);
	if (kv != NULL) {
		struct buf b;
		buf_init(&b, 64);
		CHECK_INT(kv_get(kv, "persist", &b, NULL), 1);
		CHECK_MEM(b.data, b.len, "yes");
		CHECK_INT(kv_get_int(kv, "shared", &v, NULL), 1);
		CHECK_INT(v, THREADS * PER_THREAD);
		buf_fini(&b);
		kv_close(&kv);
	}

	TEST_CASE("two handles on one file");
	struct kv_store *k1 = kv_open(dir, &err), *k2 = kv_open(dir, &err);
	CHECK(k1 != NULL && k2 != NULL);
	if (k1 && k2) {
		CHECK_INT(kv_incr(k1, "two", 1, 0, &v), 0);
		CHECK_INT(kv_incr(k2, "two", 1, 0, &v), 0);
		CHECK_INT(v, 2);
	}
	kv_close(&k1);
	kv_close(&k2);

	TEST_CASE("open in a missing folder fails with a reason");
	err = NULL;
	kv = kv_open("/nonexistent/postern/state", &err);
	CHECK(kv == NULL);
	CHECK(err != NULL && err[0] != '\0');

	TEST_CASE("memory store");
	kv = kv_open_memory(&err);
	CHECK(kv != NULL);
	if (kv != NULL) {
		CHECK_INT(kv_is_memory(kv), 1);
		test_basic(kv);
		test_threads(kv);
		kv_close(&kv);
	}
	rm_dir();
	return TEST_DONE();
}
