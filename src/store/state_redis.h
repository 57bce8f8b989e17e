/*
 * state_redis.h - inside the Redis back end of the state store: how one
 * operation (state.h) becomes Redis commands and how their replies fill
 * the operation's results (state_redis_ops.c), used by the connection
 * side (state_redis.c) and the unit test.
 */
#ifndef POSTERN_STORE_STATE_REDIS_H
#define POSTERN_STORE_STATE_REDIS_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "state.h"

#define REDIS_CMD_ARGS 6	/* SET key value NX EX ttl */
#define REDIS_OP_CMDS 2		/* GET + PTTL, INCRBY + EXPIRE */

struct redis_cmd {
	int argc;
	const char *argv[REDIS_CMD_ARGS];
	size_t len[REDIS_CMD_ARGS];
	char num[24];		/* the one number argument's text */
};

/* Fills cmds[] with op's commands (borrowing op's key and value);
 * returns how many (1 or 2):
 *   GET  -> GET key; PTTL key
 *   PUT  -> SET key value [EX ttl]
 *   ADD  -> SET key value NX [EX ttl]
 *   INCR -> INCRBY key delta; EXPIRE key ttl NX (Redis >= 7: only a key
 *           without an expiry, i.e. one INCRBY just made, gets it)
 *   DEL  -> DEL key */
int redis_op_cmds(const struct state_op *op, struct redis_cmd cmds[REDIS_OP_CMDS]);

/* Takes the reply to command `part` of op into op's results. 0, or -1
 * with err set (the server's error text, or what was wrong) for an error reply or one of an unexpected type. */
int redis_op_reply(struct state_op *op, unsigned part, const redisReply *rep,
		   char *err, size_t errsize);

#endif
