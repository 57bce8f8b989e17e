/*
 * state_redis_ops.c - the mapping of the state store's operations
 * (state.h) to Redis commands and back (state_redis.h). Pure: no I/O.
 */
#include "state_redis.h"

#include <stdio.h>
#include <string.h>

#include "state_private.h"

static void
arg(struct redis_cmd *c, const char *s, size_t len)
{
	c->argv[c->argc] = s;
	c->len[c->argc] = len;
	c->argc++;
}

static void
arg_str(struct redis_cmd *c, const char *s)
{
	arg(c, s, strlen(s));
}

/* The command's one number (a TTL or a delta) as its last argument. */
static void
arg_num(struct redis_cmd *c, long long v)
{
	int n = snprintf(c->num, sizeof(c->num), "%lld", v);

	arg(c, c->num, n > 0 && (size_t)n < sizeof(c->num) ? (size_t)n : 0);
}

int
redis_op_cmds(const struct state_op *op, struct redis_cmd cmds[REDIS_OP_CMDS])
{
	struct redis_cmd *c = &cmds[0];

	memset(cmds, 0, sizeof(*cmds) * REDIS_OP_CMDS);
	switch (op->kind) {
	case STATE_GET:
		arg_str(c, "GET");
		arg_str(c, op->key);
		arg_str(&cmds[1], "PTTL");
		arg_str(&cmds[1], op->key);
		return 2;
	case STATE_PUT:
	case STATE_ADD:
		arg_str(c, "SET");
		arg_str(c, op->key);
		arg(c, op->len > 0 ? op->value : "", op->len);
		if (op->kind == STATE_ADD)
			arg_str(c, "NX");
		if (op->ttl_s > 0) {
			arg_str(c, "EX");
			arg_num(c, op->ttl_s);
		}
		return 1;
	case STATE_INCR:
		arg_str(c, "INCRBY");
		arg_str(c, op->key);
		arg_num(c, op->delta);
		if (op->ttl_s == 0)
			return 1;
		arg_str(&cmds[1], "EXPIRE");
		arg_str(&cmds[1], op->key);
		arg_num(&cmds[1], op->ttl_s);
		arg_str(&cmds[1], "NX");
		return 2;
	case STATE_DEL:
		arg_str(c, "DEL");
		arg_str(c, op->key);
		return 1;
	}
	return 0;
}

static int
unexpected(const redisReply *rep, char *err, size_t errsize)
{
	int n;

	if (rep->type == REDIS_REPLY_ERROR)
		n = snprintf(err, errsize, "%.*s", (int)(rep->len > 100 ? 100 : rep->len),
			     rep->str != NULL ? rep->str : "");
	else
		n = snprintf(err, errsize, "unexpected reply of type %d", rep->type);
	if (n < 0 && errsize > 0)
		err[0] = '\0';
	return -1;
}

int
redis_op_reply(struct state_op *op, unsigned part, const redisReply *rep, char *err,
	       size_t errsize)
{
	switch (op->kind) {
	case STATE_GET:
		if (part == 0 && rep->type == REDIS_REPLY_NIL)
			return 0;
		if (part == 0 && rep->type == REDIS_REPLY_STRING) {
			state_op_take_value(op, rep->str, rep->len);
			return 0;
		}
		if (part == 1 && rep->type == REDIS_REPLY_INTEGER) {
			/* -2: no key, -1: no expiry; else ms, rounded up */
			op->ttl_left = rep->integer > 0 ? ((uint64_t)rep->integer + 999) / 1000 : 0;
			return 0;
		}
		break;
	case STATE_PUT:
		if (rep->type == REDIS_REPLY_STATUS)
			return 0;
		break;
	case STATE_ADD:
		if (rep->type == REDIS_REPLY_STATUS || rep->type == REDIS_REPLY_NIL) {
			op->found = rep->type == REDIS_REPLY_NIL;
			return 0;
		}
		break;
	case STATE_INCR:
		if (rep->type == REDIS_REPLY_INTEGER) {
			if (part == 0)
				op->num = rep->integer;
			return 0;
		}
		break;
	case STATE_DEL:
		if (rep->type == REDIS_REPLY_INTEGER) {
			op->found = rep->integer > 0;
			return 0;
		}
		break;
	}
	return unexpected(rep, err, errsize);
}
