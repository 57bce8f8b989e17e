/*
 * state.h - the shared state store, asynchronous: greylist triplets, rate
 * counters, failed-login counters, seen Message-IDs, the greeting-pause
 * pass cache. One interface, two back ends (ARCHITECTURE decision 7):
 *   sqlite  <server.state>/state.db in WAL mode (kv_store.h), the embedded
 *           default; the calls run on the worker pool's "state" class,
 *           many requests to a transaction (state_sqlite.c);
 *   redis   a Redis or Valkey server shared by several nodes, spoken to
 *           without blocking on the loops themselves (state_redis.c).
 *
 * A request is a short list of operations on keys, run in order; its done
 * function is called once, later, on the loop thread that submitted it
 * (never inside state_submit). A request that the back end cannot serve
 * (Redis down or slow past its timeout, a SQLite error) ends with failed
 * set and err saying why; what a failure means (fail open or closed) is
 * the caller's to decide (state.on_error).
 *
 * The caller owns the request, its operations and the keys and values they
 * point to, and keeps them alive and untouched until done runs. A caller
 * cannot withdraw a request: one whose session went away marks its own
 * job orphaned and frees it in done. When the store closes (after the
 * loops stopped) with requests still pending, their cancel function runs
 * instead of done, on the closing thread, so the owner can free them.
 *
 * Keys are NUL-terminated, at most KV_KEY_MAX octets, printable, with no
 * space (they travel as Redis arguments and SQLite text alike). Integers
 * are stored as decimal text, so STATE_GET reads a counter too. Times are
 * wall-clock seconds on the store's side (they survive a restart and are
 * shared by nodes); a TTL of 0 means no expiry.
 *
 * Writes are not made durable one by one: SQLite runs synchronous=NORMAL
 * and batches; Redis pipelines. Neither adds a sync call per message.
 */
#ifndef POSTERN_STORE_STATE_H
#define POSTERN_STORE_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "compat.h"
#include "kv_store.h"
#include "loop.h"
#include "workpool.h"

#define STATE_OPS_MAX 16
#define STATE_VALUE_MAX 256

enum state_op_kind {
	STATE_GET,	/* found, out (value), num (when decimal), ttl_left */
	STATE_PUT,	/* value with ttl_s, replacing value and TTL */
	STATE_ADD,	/* value with ttl_s only when key is absent or expired;
			 * found = 1 when it was there (then nothing written) */
	STATE_INCR,	/* adds delta; an absent key starts at 0 and gets ttl_s,
			 * an existing one keeps its expiry; num = the result */
	STATE_DEL,	/* found = 1 when there was a live entry */
};

struct state_op {
	enum state_op_kind kind;
	const char *key;		/* borrowed until done */
	const char *value;		/* PUT, ADD: borrowed, len octets */
	size_t len;			/* <= STATE_VALUE_MAX */
	int64_t delta;			/* INCR */
	unsigned ttl_s;			/* PUT, ADD, INCR */
	/* results, set before done */
	int found;
	int64_t num;
	uint64_t ttl_left;		/* GET: seconds left, rounded up; 0: none */
	size_t out_len;
	char out[STATE_VALUE_MAX + 1];	/* GET: the value, NUL-ended */
};

struct state_req;
typedef void (*state_done_fn)(struct state_req *req);

struct state_req {
	struct state_op *ops;		/* caller's array of nops */
	size_t nops;			/* 1..STATE_OPS_MAX */
	state_done_fn done;
	state_done_fn cancel;		/* the store closed first; NULL: nothing */
	void *arg;			/* the caller's */
	/* outcome */
	int failed;			/* results are not to be used */
	char err[128];			/* why, for the log */
	/* back end's */
	struct workpool_job wj;
	struct loop *loop;
	struct state_req *next;
	void *backend;
};

/* How a store is opened (server.state, state.*). */
struct state_params {
	const char *backend;		/* "sqlite" (or NULL) or "redis" */
	const char *dir;		/* sqlite: the state folder */
	const char *redis;		/* redis: "host:port" */
	unsigned timeout_ms;		/* redis: per command */
	unsigned workers;		/* sqlite: threads of the "state" class */
};

struct state;

/* Opens the store. For sqlite a database that cannot be opened is logged
 * (STORE-STATE-OPEN-FAILED) and replaced by one in memory; for redis
 * nothing is connected yet (each loop connects on its first request and
 * again after a failure). NULL with *error_out for bad parameters or when
 * no worker class can be made. Main thread, before the loops run. */
struct state *state_open(const struct state_params *p, struct workpool *wp,
			 const char **error_out) WARN_UNUSED;
/* After the loops stopped: ends pending requests as failed, frees all. */
void state_close(struct state **stp);
/* "sqlite", "sqlite-memory" or "redis". */
const char *state_backend_name(const struct state *st);

/* Queues req; its done runs later on loop (the caller's loop thread).
 * -1 (done will not run) for a malformed request or a closed store. */
int state_submit(struct state *st, struct loop *loop, struct state_req *req) WARN_UNUSED;

/* Sets one operation (the results cleared). */
void state_op_set(struct state_op *op, enum state_op_kind kind, const char *key,
		  const char *value, size_t len, int64_t delta, unsigned ttl_s);

/* Test hook (sqlite): a clock offset in seconds, as kv_set_clock_offset. */
void state_set_clock_offset(struct state *st, int64_t offset_s);

#endif
