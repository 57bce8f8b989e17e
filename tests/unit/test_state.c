/*
 * test_state.c - the asynchronous state store (store/state.h) on its
 * SQLite back end, driven by a loop of the test's own: every operation,
 * several requests in one batch, TTLs (through the clock hook), a
 * malformed request refused, a reopen; and the failed-login store over it
 * (store/authfail.c): counting, the lockout, a success clearing the count,
 * one counter per address for both protocols, a lockout surviving a
 * restart and ending, and no store failing open.
 */
#include "state.h"
#include "authfail.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testing.h"

static char dir[256];
static struct loop *loop;
static struct workpool *wp;
static struct state *st;
static int pending;

/* Steps the loop until every request of the test came back (bounded). */
static void
drain(void)
{
	for (int i = 0; pending > 0 && i < 200000; i++) {
		if (loop_step(loop) == 0)
			usleep(100);
	}
	CHECK_INT(pending, 0);
}

static void
req_done(struct state_req *req)
{
	(void)req;
	pending--;
}

static void
run(struct state_op *ops, size_t n, struct state_req *req)
{
	memset(req, 0, sizeof(*req));
	req->ops = ops;
	req->nops = n;
	req->done = req_done;
	CHECK_INT(state_submit(st, loop, req), 0);
	pending++;
	drain();
}

static void
open_store(void)
{
	struct state_params p = { .backend = "sqlite", .dir = dir, .workers = 1 };
	const char *err = "";

	st = state_open(&p, wp, &err);
	CHECK(st != NULL);
	if (st == NULL) {
		fprintf(stderr, "state_open: %s\n", err);
		exit(TEST_DONE());
	}
	CHECK_STR(state_backend_name(st), "sqlite");
}

static void
test_ops(void)
{
	struct state_op ops[4];
	struct state_req req;

	TEST_CASE("put, get with its TTL");
	state_op_set(&ops[0], STATE_PUT, "k:a", "hello", 5, 0, 100);
	state_op_set(&ops[1], STATE_GET, "k:a", NULL, 0, 0, 0);
	state_op_set(&ops[2], STATE_GET, "k:none", NULL, 0, 0, 0);
	run(ops, 3, &req);
	CHECK_INT(req.failed, 0);
	CHECK_INT(ops[1].found, 1);
	CHECK_STR(ops[1].out, "hello");
	CHECK_INT(ops[1].out_len, 5);
	CHECK(ops[1].ttl_left > 0 && ops[1].ttl_left <= 100);
	CHECK_INT(ops[2].found, 0);

	TEST_CASE("add writes only what is absent");
	state_op_set(&ops[0], STATE_ADD, "k:a", "other", 5, 0, 100);
	state_op_set(&ops[1], STATE_ADD, "k:b", "first", 5, 0, 0);
	state_op_set(&ops[2], STATE_GET, "k:a", NULL, 0, 0, 0);
	state_op_set(&ops[3], STATE_GET, "k:b", NULL, 0, 0, 0);
	run(ops, 4, &req);
	CHECK_INT(ops[0].found, 1);
	CHECK_INT(ops[1].found, 0);
	CHECK_STR(ops[2].out, "hello");
	CHECK_STR(ops[3].out, "first");
	CHECK_INT(ops[3].ttl_left, 0);

	TEST_CASE("incr counts, and a get reads the counter");
	state_op_set(&ops[0], STATE_INCR, "k:n", NULL, 0, 5, 60);
	state_op_set(&ops[1], STATE_INCR, "k:n", NULL, 0, -2, 60);
	state_op_set(&ops[2], STATE_GET, "k:n", NULL, 0, 0, 0);
	run(ops, 3, &req);
	CHECK_INT(ops[0].num, 5);
	CHECK_INT(ops[1].num, 3);
	CHECK_INT(ops[2].num, 3);
	CHECK_STR(ops[2].out, "3");

	TEST_CASE("expiry: an expired entry is absent, a counter starts again");
	state_set_clock_offset(st, 61);
	state_op_set(&ops[0], STATE_GET, "k:n", NULL, 0, 0, 0);
	state_op_set(&ops[1], STATE_INCR, "k:n", NULL, 0, 1, 60);
	state_op_set(&ops[2], STATE_GET, "k:a", NULL, 0, 0, 0);
	run(ops, 3, &req);
	CHECK_INT(ops[0].found, 0);
	CHECK_INT(ops[1].num, 1);
	CHECK_INT(ops[2].found, 1);	/* 100 s TTL: 39 s left */
	state_set_clock_offset(st, 0);

	TEST_CASE("del says whether there was an entry");
	state_op_set(&ops[0], STATE_DEL, "k:b", NULL, 0, 0, 0);
	state_op_set(&ops[1], STATE_DEL, "k:b", NULL, 0, 0, 0);
	run(ops, 2, &req);
	CHECK_INT(ops[0].found, 1);
	CHECK_INT(ops[1].found, 0);

	TEST_CASE("several requests at once: each answered, in one batch or more");
	{
		struct state_op many[20];
		struct state_req reqs[20];
		char keys[20][16];

		for (int i = 0; i < 20; i++) {
			snprintf(keys[i], sizeof(keys[i]), "b:%d", i % 4);
			state_op_set(&many[i], STATE_INCR, keys[i], NULL, 0, 1, 60);
			memset(&reqs[i], 0, sizeof(reqs[i]));
			reqs[i].ops = &many[i];
			reqs[i].nops = 1;
			reqs[i].done = req_done;
			CHECK_INT(state_submit(st, loop, &reqs[i]), 0);
			pending++;
		}
		drain();
		int64_t top = 0;
		for (int i = 0; i < 20; i++) {
			CHECK_INT(reqs[i].failed, 0);
			if (many[i].num > top)
				top = many[i].num;
		}
		CHECK_INT(top, 5);
	}

	TEST_CASE("malformed requests are refused at once");
	memset(&req, 0, sizeof(req));
	req.done = req_done;
	req.ops = ops;
	req.nops = 0;
	CHECK_INT(state_submit(st, loop, &req), -1);
	req.nops = STATE_OPS_MAX + 1;
	CHECK_INT(state_submit(st, loop, &req), -1);
	req.nops = 1;
	state_op_set(&ops[0], STATE_GET, "has space", NULL, 0, 0, 0);
	CHECK_INT(state_submit(st, loop, &req), -1);
	state_op_set(&ops[0], STATE_GET, "", NULL, 0, 0, 0);
	CHECK_INT(state_submit(st, loop, &req), -1);
	state_op_set(&ops[0], STATE_PUT, "k", "x", STATE_VALUE_MAX + 1, 0, 0);
	CHECK_INT(state_submit(st, loop, &req), -1);
}

/* ---- the failed-login store ------------------------------------------ */

static void
af_done(struct authfail_req *r)
{
	(void)r;
	pending--;
}

static int64_t
record(struct state *s, const char *client, const struct authfail_policy *pol, int *banned)
{
	struct authfail_req r;

	memset(&r, 0, sizeof(r));
	pending++;
	authfail_record(s, loop, &r, client, "sid", pol, af_done, NULL);
	drain();
	*banned = r.banned;
	return r.count;
}

static int
banned_now(struct state *s, const char *client, int64_t *count, uint64_t *left)
{
	struct authfail_req r;

	memset(&r, 0, sizeof(r));
	pending++;
	authfail_check(s, loop, &r, client, "sid", af_done, NULL);
	drain();
	*count = r.count;
	*left = r.remaining_s;
	return r.banned;
}

/* A clear is not waited for; a get after it, in the same FIFO, is. */
static void
clear(const char *client)
{
	struct state_op op;
	struct state_req req;

	authfail_clear(st, loop, client, "sid");
	state_op_set(&op, STATE_GET, "k:sync", NULL, 0, 0, 0);
	run(&op, 1, &req);
}

static void
test_authfail(void)
{
	const struct authfail_policy smtp = { 3, 600, 60 }, pop3 = { 2, 600, 120 };
	const struct authfail_policy off = { 0, 600, 60 };
	int64_t count = 0;
	uint64_t left = 0;
	int banned = -1;

	TEST_CASE("failures count up to the lockout");
	CHECK_INT(record(st, "192.0.2.1", &smtp, &banned), 1);
	CHECK_INT(banned, 0);
	CHECK_INT(banned_now(st, "192.0.2.1", &count, &left), 0);
	CHECK_INT(record(st, "192.0.2.1", &smtp, &banned), 2);
	CHECK_INT(banned, 0);
	CHECK_INT(record(st, "192.0.2.1", &smtp, &banned), 3);
	CHECK_INT(banned, 1);
	CHECK_INT(banned_now(st, "192.0.2.1", &count, &left), 1);
	CHECK_INT(count, 3);
	CHECK(left > 0 && left <= 60);

	TEST_CASE("one counter per address, whichever protocol counts");
	CHECK_INT(record(st, "2001:db8::7", &smtp, &banned), 1);
	CHECK_INT(record(st, "2001:db8::7", &pop3, &banned), 2);
	CHECK_INT(banned, 1);	/* POP3's threshold, on the shared count */
	CHECK_INT(banned_now(st, "2001:db8::7", &count, &left), 1);
	CHECK(left > 60 && left <= 120);
	CHECK_INT(banned_now(st, "192.0.2.2", &count, &left), 0);

	TEST_CASE("a success clears the count, not a lockout");
	CHECK_INT(record(st, "192.0.2.3", &smtp, &banned), 1);
	CHECK_INT(record(st, "192.0.2.3", &smtp, &banned), 2);
	clear("192.0.2.3");
	CHECK_INT(record(st, "192.0.2.3", &smtp, &banned), 1);
	clear("192.0.2.1");
	CHECK_INT(banned_now(st, "192.0.2.1", &count, &left), 1);

	TEST_CASE("max_failures 0 counts but never locks out");
	for (int i = 1; i <= 5; i++) {
		CHECK_INT(record(st, "192.0.2.4", &off, &banned), i);
		CHECK_INT(banned, 0);
	}
	CHECK_INT(banned_now(st, "192.0.2.4", &count, &left), 0);

	TEST_CASE("a lockout survives a reopen (restart)");
	state_close(&st);
	CHECK(st == NULL);
	open_store();
	count = 0;
	CHECK_INT(banned_now(st, "192.0.2.1", &count, &left), 1);
	CHECK_INT(count, 3);

	TEST_CASE("a lockout ends");
	state_set_clock_offset(st, 61);
	CHECK_INT(banned_now(st, "192.0.2.1", &count, &left), 0);
	CHECK_INT(banned_now(st, "2001:db8::7", &count, &left), 1);
	state_set_clock_offset(st, 0);

	TEST_CASE("no store: nothing counted, nobody locked out, answered later");
	CHECK_INT(record(NULL, "192.0.2.1", &smtp, &banned), 0);
	CHECK_INT(banned, 0);
	CHECK_INT(banned_now(NULL, "192.0.2.1", &count, &left), 0);
	authfail_clear(NULL, loop, "192.0.2.1", "sid");
}

int
main(void)
{
	if (snprintf(dir, sizeof(dir), "/tmp/postern-test-state.%ld", (long)getpid()) < 0)
		return 1;
	CHECK_INT(mkdir(dir, 0700), 0);
	loop = loop_new();
	wp = workpool_new();
	CHECK(loop != NULL && wp != NULL);
	if (loop == NULL || wp == NULL)
		return TEST_DONE();

	TEST_CASE("open");
	open_store();
	test_ops();
	test_authfail();

	TEST_CASE("an unknown back end is refused");
	{
		struct state_params p = { .backend = "memcached", .dir = dir };
		const char *err = NULL;
		CHECK(state_open(&p, wp, &err) == NULL);
		CHECK(err != NULL);
	}

	state_close(&st);
	workpool_free(&wp);
	loop_free(&loop);
	testing_remove_dir(dir);
	return TEST_DONE();
}
