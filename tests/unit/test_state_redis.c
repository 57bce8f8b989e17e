/*
 * test_state_redis.c - the Redis back end's mapping of state operations
 * to commands and of replies back to results (store/state_redis_ops.c),
 * without a server: the argv of each kind, with and without a TTL, and
 * each reply type (value, nil, integer, status, error, unexpected).
 */
#include "state_redis.h"

#include <stdio.h>
#include <string.h>

#include "testing.h"

/* The command as one string, arguments joined by spaces. */
static const char *
joined(const struct redis_cmd *c)
{
	static char out[512];
	size_t n = 0;

	out[0] = '\0';
	for (int i = 0; i < c->argc; i++) {
		int w = snprintf(out + n, sizeof(out) - n, "%s%.*s", i > 0 ? " " : "",
				 (int)c->len[i], c->argv[i]);
		if (w < 0 || (size_t)w >= sizeof(out) - n)
			break;
		n += (size_t)w;
	}
	return out;
}

static void
test_cmds(void)
{
	struct state_op op;
	struct redis_cmd c[REDIS_OP_CMDS];

	TEST_CASE("get");
	state_op_set(&op, STATE_GET, "grey:k", NULL, 0, 0, 0);
	CHECK_INT(redis_op_cmds(&op, c), 2);
	CHECK_STR(joined(&c[0]), "GET grey:k");
	CHECK_STR(joined(&c[1]), "PTTL grey:k");

	TEST_CASE("put");
	state_op_set(&op, STATE_PUT, "k", "p", 1, 0, 3024000);
	CHECK_INT(redis_op_cmds(&op, c), 1);
	CHECK_STR(joined(&c[0]), "SET k p EX 3024000");
	state_op_set(&op, STATE_PUT, "k", "", 0, 0, 0);
	CHECK_INT(redis_op_cmds(&op, c), 1);
	CHECK_INT(c[0].argc, 3);
	CHECK_INT(c[0].len[2], 0);

	TEST_CASE("add");
	state_op_set(&op, STATE_ADD, "k", "w:17", 4, 0, 600);
	CHECK_INT(redis_op_cmds(&op, c), 1);
	CHECK_STR(joined(&c[0]), "SET k w:17 NX EX 600");
	state_op_set(&op, STATE_ADD, "k", "w:17", 4, 0, 0);
	redis_op_cmds(&op, c);
	CHECK_STR(joined(&c[0]), "SET k w:17 NX");

	TEST_CASE("incr");
	state_op_set(&op, STATE_INCR, "n", NULL, 0, -3, 60);
	CHECK_INT(redis_op_cmds(&op, c), 2);
	CHECK_STR(joined(&c[0]), "INCRBY n -3");
	CHECK_STR(joined(&c[1]), "EXPIRE n 60 NX");
	state_op_set(&op, STATE_INCR, "n", NULL, 0, 1, 0);
	CHECK_INT(redis_op_cmds(&op, c), 1);

	TEST_CASE("del");
	state_op_set(&op, STATE_DEL, "n", NULL, 0, 0, 0);
	CHECK_INT(redis_op_cmds(&op, c), 1);
	CHECK_STR(joined(&c[0]), "DEL n");
}

static redisReply
reply(int type, const char *str, long long integer)
{
	redisReply r;

	memset(&r, 0, sizeof(r));
	r.type = type;
	r.integer = integer;
	r.str = (char *)str;
	r.len = str != NULL ? strlen(str) : 0;
	return r;
}

static void
test_replies(void)
{
	struct state_op op;
	redisReply r;
	char err[128];

	TEST_CASE("get value and ttl");
	state_op_set(&op, STATE_GET, "k", NULL, 0, 0, 0);
	r = reply(REDIS_REPLY_STRING, "-42", 0);
	CHECK_INT(redis_op_reply(&op, 0, &r, err, sizeof(err)), 0);
	CHECK_INT(op.found, 1);
	CHECK_STR(op.out, "-42");
	CHECK_INT(op.num, -42);
	r = reply(REDIS_REPLY_INTEGER, NULL, 1001);
	CHECK_INT(redis_op_reply(&op, 1, &r, err, sizeof(err)), 0);
	CHECK_INT(op.ttl_left, 2);
	r = reply(REDIS_REPLY_INTEGER, NULL, -1);
	CHECK_INT(redis_op_reply(&op, 1, &r, err, sizeof(err)), 0);
	CHECK_INT(op.ttl_left, 0);

	TEST_CASE("get nil");
	state_op_set(&op, STATE_GET, "k", NULL, 0, 0, 0);
	r = reply(REDIS_REPLY_NIL, NULL, 0);
	CHECK_INT(redis_op_reply(&op, 0, &r, err, sizeof(err)), 0);
	CHECK_INT(op.found, 0);

	TEST_CASE("add: written, or there");
	state_op_set(&op, STATE_ADD, "k", "v", 1, 0, 5);
	r = reply(REDIS_REPLY_STATUS, "OK", 0);
	CHECK_INT(redis_op_reply(&op, 0, &r, err, sizeof(err)), 0);
	CHECK_INT(op.found, 0);
	r = reply(REDIS_REPLY_NIL, NULL, 0);
	CHECK_INT(redis_op_reply(&op, 0, &r, err, sizeof(err)), 0);
	CHECK_INT(op.found, 1);

	TEST_CASE("incr and del");
	state_op_set(&op, STATE_INCR, "n", NULL, 0, 1, 5);
	r = reply(REDIS_REPLY_INTEGER, NULL, 7);
	CHECK_INT(redis_op_reply(&op, 0, &r, err, sizeof(err)), 0);
	r = reply(REDIS_REPLY_INTEGER, NULL, 0);	/* EXPIRE NX: kept */
	CHECK_INT(redis_op_reply(&op, 1, &r, err, sizeof(err)), 0);
	CHECK_INT(op.num, 7);
	state_op_set(&op, STATE_DEL, "n", NULL, 0, 0, 0);
	r = reply(REDIS_REPLY_INTEGER, NULL, 1);
	CHECK_INT(redis_op_reply(&op, 0, &r, err, sizeof(err)), 0);
	CHECK_INT(op.found, 1);

	TEST_CASE("errors");
	state_op_set(&op, STATE_INCR, "n", NULL, 0, 1, 5);
	r = reply(REDIS_REPLY_ERROR, "ERR value is not an integer or out of range", 0);
	CHECK_INT(redis_op_reply(&op, 0, &r, err, sizeof(err)), -1);
	CHECK_STR(err, "ERR value is not an integer or out of range");
	state_op_set(&op, STATE_PUT, "k", "v", 1, 0, 0);
	r = reply(REDIS_REPLY_INTEGER, NULL, 1);
	CHECK_INT(redis_op_reply(&op, 0, &r, err, sizeof(err)), -1);
	CHECK(strncmp(err, "unexpected reply", 16) == 0);
}

int
main(void)
{
	test_cmds();
	test_replies();
	return TEST_DONE();
}
