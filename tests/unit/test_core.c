/*
 * test_core.c - unit tests for core/: buffers, slices, logfmt values, the
 * event loop's timers, posts and fd dispatch, the hash table, input read
 * through an offset.
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <stdio.h>
#include <unistd.h>

#include "buf.h"
#include "crc32c.h"
#include "hash.h"
#include "heap.h"
#include "kv.h"
#include "log.h"
#include "loop.h"
#include "testing.h"

static void
test_buf(void)
{
	struct buf b;

	TEST_CASE("buf bounded append");
	buf_init(&b, 8);
	CHECK_INT(buf_append(&b, "abcd", 4), 0);
	CHECK_INT(buf_append(&b, "efgh", 4), 0);
	CHECK_INT(buf_append(&b, "i", 1), -1);	/* past max: refused */
	CHECK_MEM(b.data, b.len, "abcdefgh");	/* and unchanged */
	CHECK_STR(buf_cstr(&b), "abcdefgh");
	buf_consume(&b, 3);
	CHECK_MEM(b.data, b.len, "defgh");
	CHECK_INT(buf_appendf(&b, "%d", 123), 0);
	CHECK_MEM(b.data, b.len, "defgh123");
	CHECK_INT(buf_appendf(&b, "%s", "x"), -1);
	buf_consume(&b, 100);
	CHECK_INT((long long)b.len, 0);
	buf_fini(&b);

	TEST_CASE("buf large appendf");
	buf_init(&b, 100000);
	CHECK_INT(buf_appendf(&b, "%0500d", 7), 0);
	CHECK_INT((long long)b.len, 500);
	buf_fini(&b);

	TEST_CASE("buf empty cstr");
	buf_init(&b, 0);
	CHECK_STR(buf_cstr(&b), "");
	CHECK_INT(buf_append(&b, "", 0), 0);
	buf_fini(&b);
}

static void
test_slice(void)
{
	uint64_t v = 0;
	char small[4];

	TEST_CASE("slice numbers");
	CHECK_INT(slice_to_u64(SLICE_LIT("12345"), UINT64_MAX, &v), 0);
	CHECK_INT((long long)v, 12345);
	CHECK_INT(slice_to_u64(SLICE_LIT("18446744073709551615"), UINT64_MAX, &v), 0);
	CHECK_INT(slice_to_u64(SLICE_LIT("18446744073709551616"), UINT64_MAX, &v), -1);
	CHECK_INT(slice_to_u64(SLICE_LIT("12a"), UINT64_MAX, &v), -1);
	CHECK_INT(slice_to_u64(SLICE_LIT(""), UINT64_MAX, &v), -1);
	CHECK_INT(slice_to_u64(SLICE_LIT("101"), 100, &v), -1);
	TEST_CASE("slice compare and copy");
	CHECK(slice_eq_nocase(SLICE_LIT("MaIl"), "mail"));
	CHECK(!slice_eq_nocase(SLICE_LIT("mails"), "mail"));
	CHECK(slice_starts_nocase(SLICE_LIT("RCPT TO:"), "rcpt"));
	CHECK_INT(slice_copy(SLICE_LIT("abc"), small, sizeof(small)), 0);
	CHECK_STR(small, "abc");
	CHECK_INT(slice_copy(SLICE_LIT("abcd"), small, sizeof(small)), -1);
	CHECK_STR(small, "");
}

static void
check_value(const char *name, struct kv kv, const char *want)
{
	struct buf b;

	TEST_CASE(name);
	buf_init(&b, 4096);
	CHECK(log_format_value(&b, &kv) >= 0);
	CHECK_STR(buf_cstr(&b), want);
	buf_fini(&b);
}

static void
test_logfmt(void)
{
	char longv[400];

	check_value("bare value", KV("k", "abc"), "abc");
	check_value("space quoted", KV("k", "a b"), "\"a b\"");
	check_value("quote escaped", KV("k", "a\"b\\c"), "\"a\\\"b\\\\c\"");
	check_value("controls escaped", KVM("k", "a\r\n\x01", 4), "\"a\\r\\n\\x01\"");
	check_value("empty quoted", KV("k", ""), "\"\"");
	check_value("utf8 kept", KV("k", "j\xc3\xb6rg"), "\"j\xc3\xb6rg\"");
	check_value("bad utf8 escaped", KVM("k", "a\xff", 2), "\"a\\xff\"");
	check_value("number", KVU("k", 42), "42");
	check_value("negative", KVI("k", -3), "-3");
	check_value("address", KVA("k", "a@b", 3), "<a@b>");
	check_value("null sender", KVA("k", "", 0), "<>");
	check_value("address with space", KVA("k", "a b@c", 5), "\"<a b@c>\"");
	memset(longv, 'x', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = '\0';
	struct buf b;
	TEST_CASE("long value cut");
	buf_init(&b, 4096);
	struct kv kv = KV("k", longv);
	CHECK(log_format_value(&b, &kv) > 0);
	CHECK_INT((long long)b.len, 256 + 5);	/* quotes and ... */
	CHECK(memcmp(b.data + b.len - 4, "...\"", 4) == 0);
	buf_fini(&b);
}

/* ---- loop ---- */

static int fired[4];
static int order_pos;

static void
on_timer(struct loop *loop, void *arg)
{
	(void)loop;
	fired[order_pos++ % 4] = (int)(intptr_t)arg;
	if (order_pos == 3)
		loop_stop(loop);
}

static int posted;

static void
on_post(struct loop *loop, void *arg)
{
	(void)arg;
	if (++posted == 100)
		loop_stop(loop);
}

static void *
poster(void *arg)
{
	for (int i = 0; i < 50; i++)
		loop_post(arg, on_post, NULL);
	return NULL;
}

static char got_byte;

static void
on_read(struct loop *loop, int fd, unsigned events, void *arg)
{
	(void)arg;
	if ((events & LOOP_READ) && read(fd, &got_byte, 1) == 1)
		loop_stop(loop);
}

static void
test_loop(void)
{
	struct loop *loop = loop_new();
	struct loop_timer t1, t2, t3, t4;

	TEST_CASE("timers fire in order; cancelled one does not");
	loop_timer_init(&t1, on_timer, (void *)1);
	loop_timer_init(&t2, on_timer, (void *)2);
	loop_timer_init(&t3, on_timer, (void *)3);
	loop_timer_init(&t4, on_timer, (void *)4);
	loop_timer_set(loop, &t3, 30);
	loop_timer_set(loop, &t1, 10);
	loop_timer_set(loop, &t4, 15);
	loop_timer_set(loop, &t2, 20);
	loop_timer_cancel(loop, &t4);
	CHECK(!loop_timer_armed(&t4));
	CHECK(loop_timer_armed(&t1));
	CHECK_INT(loop_run(loop), 0);
	CHECK_INT(fired[0], 1);
	CHECK_INT(fired[1], 2);
	CHECK_INT(fired[2], 3);
	loop_free(&loop);

	TEST_CASE("posts from two threads all run");
	loop = loop_new();
	pthread_t a, b;
	pthread_create(&a, NULL, poster, loop);
	pthread_create(&b, NULL, poster, loop);
	CHECK_INT(loop_run(loop), 0);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	CHECK_INT(posted, 100);
	loop_free(&loop);

	TEST_CASE("fd readable dispatch");
	loop = loop_new();
	int p[2];
	CHECK_INT(pipe(p), 0);
	CHECK_INT(loop_add_fd(loop, p[0], LOOP_READ, on_read, NULL), 0);
	CHECK_INT((int)write(p[1], "z", 1), 1);
	CHECK_INT(loop_run(loop), 0);
	CHECK_INT(got_byte, 'z');
	loop_del_fd(loop, p[0]);
	close(p[0]);
	close(p[1]);
	loop_free(&loop);
}

static void
test_buf_offset(void)
{
	struct buf b;
	size_t off = 0;
	struct slice u;

	TEST_CASE("buf read offset: lines taken without moving");
	buf_init(&b, 64);
	CHECK_INT(buf_append(&b, "NOOP\r\nRSET\r\nQU", 14), 0);
	const uint8_t *start = b.data;
	u = buf_unread(&b, off);
	CHECK_MEM(u.p, u.len, "NOOP\r\nRSET\r\nQU");
	off += 6;	/* one line taken */
	u = buf_unread(&b, off);
	CHECK_MEM(u.p, u.len, "RSET\r\nQU");
	CHECK(u.p == start + 6);	/* no byte moved */
	off += 6;
	u = buf_unread(&b, off);
	CHECK_MEM(u.p, u.len, "QU");
	CHECK(b.data == start && b.len == 14);

	TEST_CASE("buf read offset: compact before a read");
	buf_compact(&b, &off);
	CHECK_INT(off, 0);
	CHECK_MEM(b.data, b.len, "QU");
	CHECK_INT(buf_append(&b, "IT\r\n", 4), 0);
	u = buf_unread(&b, off);
	CHECK_MEM(u.p, u.len, "QUIT\r\n");
	off = b.len;
	u = buf_unread(&b, off);
	CHECK_INT(u.len, 0);
	buf_compact(&b, &off);
	CHECK_INT(b.len, 0);
	CHECK_INT(off, 0);
	buf_compact(&b, &off);	/* nothing consumed: no-op */
	CHECK_INT(b.len, 0);
	buf_fini(&b);

	TEST_CASE("buf read offset: empty buffer");
	buf_init(&b, 16);
	u = buf_unread(&b, 0);
	CHECK_INT(u.len, 0);
	buf_fini(&b);

	TEST_CASE("buf read offset: many commands, one move per read");
	/* 10,000 pipelined lines in one read are taken by advancing the
	 * offset; the memory is not touched until the compaction. */
	buf_init(&b, 200000);
	for (int i = 0; i < 10000; i++)
		CHECK(buf_append(&b, "NOOP\r\n", 6) == 0);
	start = b.data;
	off = 0;
	size_t lines = 0;
	for (;;) {
		u = buf_unread(&b, off);
		const uint8_t *lf = memchr(u.p, '\n', u.len);
		if (lf == NULL)
			break;
		off += (size_t)(lf - u.p) + 1;
		lines++;
	}
	CHECK_INT(lines, 10000);
	CHECK(b.data == start && b.len == 60000);
	buf_compact(&b, &off);
	CHECK_INT(b.len, 0);
	buf_fini(&b);
}

struct hkeys {
	char k[300][16];
};

static int
hkeys_eq(const void *ctx, uint32_t val, const void *key)
{
	const struct hkeys *ks = ctx;

	return strcmp(ks->k[val], key) == 0;
}

static int
hkeys_eq_nocase(const void *ctx, uint32_t val, const void *key)
{
	const struct hkeys *ks = ctx;

	return strcasecmp(ks->k[val], key) == 0;
}

static void
test_hash(void)
{
	static struct hkeys ks;
	struct hash t;
	uint32_t v = 0, ex = 0;

	TEST_CASE("hash insert and find");
	hash_init(&t, 1000, hkeys_eq);
	for (uint32_t i = 0; i < 300; i++) {
		snprintf(ks.k[i], sizeof(ks.k[i]), "key%u", i);
		CHECK_INT(hash_insert(&t, hash_bytes(ks.k[i], strlen(ks.k[i])), &ks, ks.k[i], i, NULL), 0);
	}
	CHECK_INT(t.n, 300);
	CHECK(t.nslots >= 600 && (t.nslots & (t.nslots - 1)) == 0);
	int all = 1;
	for (uint32_t i = 0; i < 300; i++)
		if (!hash_find(&t, hash_bytes(ks.k[i], strlen(ks.k[i])), &ks, ks.k[i], &v) || v != i)
			all = 0;
	CHECK(all);
	CHECK_INT(hash_find(&t, hash_bytes("key300", 6), &ks, "key300", &v), 0);
	CHECK_INT(hash_find(&t, hash_bytes("KEY1", 4), &ks, "KEY1", &v), 0);

	TEST_CASE("hash duplicate insert");
	CHECK_INT(hash_insert(&t, hash_bytes("key7", 4), &ks, "key7", 999, &ex), 1);
	CHECK_INT(ex, 7);
	CHECK_INT(t.n, 300);

	TEST_CASE("hash clear");
	hash_clear(&t);
	CHECK_INT(t.n, 0);
	CHECK_INT(hash_find(&t, hash_bytes("key7", 4), &ks, "key7", &v), 0);
	CHECK_INT(hash_insert(&t, hash_bytes("key7", 4), &ks, "key7", 7, NULL), 0);
	hash_fini(&t);

	TEST_CASE("hash bound");
	hash_init(&t, 3, hkeys_eq);
	for (uint32_t i = 0; i < 3; i++)
		CHECK_INT(hash_insert(&t, hash_bytes(ks.k[i], strlen(ks.k[i])), &ks, ks.k[i], i, NULL), 0);
	CHECK_INT(hash_insert(&t, hash_bytes(ks.k[3], strlen(ks.k[3])), &ks, ks.k[3], 3, NULL), -1);
	CHECK_INT(t.n, 3);
	/* a key already there is still found when full */
	CHECK_INT(hash_insert(&t, hash_bytes(ks.k[1], strlen(ks.k[1])), &ks, ks.k[1], 1, &ex), 1);
	hash_fini(&t);

	TEST_CASE("hash remove (backward shift)");
	hash_init(&t, 1000, hkeys_eq);
	for (uint32_t i = 0; i < 300; i++)
		CHECK_INT(hash_insert(&t, hash_bytes(ks.k[i], strlen(ks.k[i])), &ks, ks.k[i], i, NULL), 0);
	/* every other key out, then the rest must still be found */
	int rm_ok = 1;
	for (uint32_t i = 0; i < 300; i += 2) {
		v = UINT32_MAX;
		if (hash_remove(&t, hash_bytes(ks.k[i], strlen(ks.k[i])), &ks, ks.k[i], &v) != 1 ||
		    v != i)
			rm_ok = 0;
	}
	CHECK(rm_ok);
	CHECK_INT(t.n, 150);
	CHECK_INT(hash_remove(&t, hash_bytes(ks.k[0], strlen(ks.k[0])), &ks, ks.k[0], NULL), 0);
	all = 1;
	for (uint32_t i = 0; i < 300; i++) {
		int found = hash_find(&t, hash_bytes(ks.k[i], strlen(ks.k[i])), &ks, ks.k[i], &v);
		if (found != (int)(i % 2) || (found && v != i))
			all = 0;
	}
	CHECK(all);
	/* no slot left marked: the count of used slots is n */
	size_t used = 0;
	for (size_t k = 0; k < t.nslots; k++)
		used += t.slots[k].val1 != 0;
	CHECK_INT(used, 150);
	/* removed keys go back in */
	for (uint32_t i = 0; i < 300; i += 2)
		CHECK_INT(hash_insert(&t, hash_bytes(ks.k[i], strlen(ks.k[i])), &ks, ks.k[i], i, NULL), 0);
	CHECK_INT(t.n, 300);
	hash_fini(&t);

	TEST_CASE("hash remove in a wrapped run of colliding keys");
	/* one hash for all: a run that wraps past the last slot */
	hash_init(&t, 1000, hkeys_eq);
	for (uint32_t i = 0; i < 6; i++)
		CHECK_INT(hash_insert(&t, 15, &ks, ks.k[i], i, NULL), 0);	/* slots 15, 0..4 of 16 */
	CHECK_INT(hash_insert(&t, 1, &ks, ks.k[6], 6, NULL), 0);	/* home 1, lands in 5 */
	CHECK_INT(hash_remove(&t, 15, &ks, ks.k[0], NULL), 1);
	CHECK_INT(hash_remove(&t, 15, &ks, ks.k[3], NULL), 1);
	all = 1;
	for (uint32_t i = 1; i < 6; i++)
		if (i != 3 && (!hash_find(&t, 15, &ks, ks.k[i], &v) || v != i))
			all = 0;
	CHECK(all);
	CHECK(hash_find(&t, 1, &ks, ks.k[6], &v) && v == 6);
	CHECK_INT(hash_find(&t, 15, &ks, ks.k[3], &v), 0);
	hash_fini(&t);

	TEST_CASE("hash empty table");
	hash_init(&t, 10, hkeys_eq);
	CHECK_INT(hash_find(&t, hash_bytes("x", 1), &ks, "x", &v), 0);
	hash_fini(&t);

	TEST_CASE("hash colliding values: eq decides");
	/* Every key under the same hash: linear probing still finds each. */
	hash_init(&t, 100, hkeys_eq);
	for (uint32_t i = 0; i < 50; i++)
		CHECK_INT(hash_insert(&t, 42, &ks, ks.k[i], i, NULL), 0);
	all = 1;
	for (uint32_t i = 0; i < 50; i++)
		if (!hash_find(&t, 42, &ks, ks.k[i], &v) || v != i)
			all = 0;
	CHECK(all);
	CHECK_INT(hash_find(&t, 42, &ks, "nokey", &v), 0);
	hash_fini(&t);

	TEST_CASE("hash folding case");
	CHECK(hash_end(hash_feed(hash_start(), "MiXeD@Ex.ORG", 12, 1)) ==
	      hash_end(hash_feed(hash_start(), "mixed@ex.org", 12, 0)));
	CHECK(hash_end(hash_feed(hash_feed(hash_start(), "ab", 2, 0), "cd", 2, 0)) ==
	      hash_bytes("abcd", 4));
	CHECK(hash_bytes("abcd", 4) != hash_bytes("abce", 4));
	hash_init(&t, 10, hkeys_eq_nocase);
	CHECK_INT(hash_insert(&t, hash_end(hash_feed(hash_start(), "Key5", 4, 1)), &ks, "Key5", 5,
			      NULL), 0);
	CHECK_INT(hash_find(&t, hash_end(hash_feed(hash_start(), "KEY5", 4, 1)), &ks, "KEY5", &v), 1);
	CHECK_INT(v, 5);
	hash_fini(&t);
}

/* The one heap (core/heap.c): pops in key order through pushes and
 * removals from the middle, duplicate keys, and a rebuild. */
static void
test_heap(void)
{
	struct heap h = { 0 };
	struct heap_node nodes[200];
	uint64_t last = 0, seed = 12345;
	size_t popped = 0;
	int ordered = 1;

	TEST_CASE("heap order");
	for (size_t i = 0; i < 200; i++) {
		seed = seed * 6364136223846793005u + 1442695040888963407u;
		nodes[i] = (struct heap_node)HEAP_NODE_INIT;
		nodes[i].key = (seed >> 33) % 1000;	/* duplicates too */
		heap_push(&h, &nodes[i]);
	}
	for (size_t i = 0; i < 200; i += 3)
		heap_remove(&h, &nodes[i]);
	CHECK(nodes[0].index == SIZE_MAX);
	nodes[1].key = 0;
	nodes[2].key = 5000;
	heap_rebuild(&h);
	CHECK(heap_top(&h) != NULL && heap_top(&h)->key == 0);
	while (heap_top(&h) != NULL) {
		struct heap_node *n = heap_top(&h);
		if (n->key < last)
			ordered = 0;
		last = n->key;
		heap_remove(&h, n);
		popped++;
	}
	CHECK(ordered);
	CHECK_INT(popped, 200 - 67);
	CHECK_INT(last, 5000);
	heap_fini(&h);
	CHECK(h.v == NULL && h.n == 0);
}

/* Bit by bit, straight from the definition: the reference. */
static uint32_t
crc32c_bitwise(uint32_t crc, const uint8_t *p, size_t n)
{
	crc = ~crc;
	while (n-- > 0) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
	}
	return ~crc;
}

static void
test_crc32c(void)
{
	uint8_t b[600];

	TEST_CASE("crc32c known vectors (RFC 3720 B.4)");
	{
		uint8_t z[32], ff[32], inc[32], dec[32];

		memset(z, 0, sizeof(z));
		memset(ff, 0xff, sizeof(ff));
		for (int i = 0; i < 32; i++) {
			inc[i] = (uint8_t)i;
			dec[i] = (uint8_t)(31 - i);
		}
		CHECK(crc32c_update(0, "123456789", 9) == 0xE3069283u);
		CHECK(crc32c_update(0, z, 32) == 0x8A9136AAu);
		CHECK(crc32c_update(0, ff, 32) == 0x62A8AB43u);
		CHECK(crc32c_update(0, inc, 32) == 0x46DD794Eu);
		CHECK(crc32c_update(0, dec, 32) == 0x113FDB5Cu);
		CHECK(crc32c_update_portable(0, "123456789", 9) == 0xE3069283u);
		CHECK(crc32c_update_portable(0, inc, 32) == 0x46DD794Eu);
		CHECK(crc32c_update(0, "", 0) == 0);
	}
	TEST_CASE("crc32c every alignment and length, in pieces");
	{
		int bad = 0;

		for (size_t i = 0; i < sizeof(b); i++)
			b[i] = (uint8_t)(i * 131u + 7u);
		for (size_t off = 0; off < 9; off++)
			for (size_t n = 0; n + off <= sizeof(b); n += (n < 40 ? 1 : 37)) {
				uint32_t want = crc32c_bitwise(0, b + off, n);
				size_t half = n / 3;

				if (crc32c_update(0, b + off, n) != want ||
				    crc32c_update_portable(0, b + off, n) != want ||
				    crc32c_update(crc32c_update(0, b + off, half), b + off + half,
						  n - half) != want)
					bad++;
			}
		CHECK_INT(bad, 0);
	}
}

int
main(void)
{
	test_buf();
	test_slice();
	test_buf_offset();
	test_hash();
	test_logfmt();
	test_loop();
	test_heap();
	test_crc32c();
	return TEST_DONE();
}
