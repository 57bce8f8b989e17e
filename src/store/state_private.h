/*
 * state_private.h - what the state store's front (state.c) shares with its
 * back ends (state_sqlite.c, state_redis.c): one table of entry points.
 */
#ifndef POSTERN_STORE_STATE_PRIVATE_H
#define POSTERN_STORE_STATE_PRIVATE_H

#include "state.h"

struct state_backend {
	const char *name;
	/* Takes req (already checked) and calls req->done on req->loop later. */
	int (*submit)(struct state *st, struct state_req *req);
	/* Ends what is pending as failed and frees the back end's part. */
	void (*close)(struct state *st);
};

struct state {
	const struct state_backend *be;
	void *priv;			/* the back end's */
	int64_t offset_s;		/* test clock offset */
};

/* A GET's result: the value (cut at STATE_VALUE_MAX), found, and num when
 * the value is a decimal integer. */
void state_op_take_value(struct state_op *op, const void *data, size_t len);
/* Sets req->failed and req->err ("what: detail"). */
void state_req_fail(struct state_req *req, const char *what, const char *detail);

int state_sqlite_open(struct state *st, const struct state_params *p, struct workpool *wp,
		      const char **error_out);
void state_sqlite_set_clock_offset(struct state *st, int64_t offset_s);
int state_redis_open(struct state *st, const struct state_params *p, const char **error_out);

#endif
