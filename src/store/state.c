/*
 * state.c - the state store's front: checks requests, picks the back end
 * (state.h), and the helpers every back end shares.
 */
#include "state_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
state_op_set(struct state_op *op, enum state_op_kind kind, const char *key, const char *value,
	     size_t len, int64_t delta, unsigned ttl_s)
{
	memset(op, 0, sizeof(*op));
	op->kind = kind;
	op->key = key;
	op->value = value;
	op->len = len;
	op->delta = delta;
	op->ttl_s = ttl_s;
}

void
state_op_take_value(struct state_op *op, const void *data, size_t len)
{
	size_t n = len > STATE_VALUE_MAX ? STATE_VALUE_MAX : len;
	uint64_t u;

	if (n > 0)
		memcpy(op->out, data, n);
	op->out[n] = '\0';
	op->out_len = n;
	op->found = 1;
	if (n > 0 && op->out[0] == '-' &&
	    slice_to_u64((struct slice){ (const uint8_t *)op->out + 1, n - 1 }, UINT64_MAX / 2, &u) == 0)
		op->num = -(int64_t)u;
	else if (slice_to_u64((struct slice){ (const uint8_t *)op->out, n }, UINT64_MAX / 2, &u) == 0)
		op->num = (int64_t)u;
}

void
state_req_fail(struct state_req *req, const char *what, const char *detail)
{
	req->failed = 1;
	if (snprintf(req->err, sizeof(req->err), "%s: %s", what,
		     detail != NULL ? detail : "unknown") < 0)
		req->err[0] = '\0';
}

/* A key travels as one Redis argument and one SQLite text: printable
 * ASCII without space, 1..KV_KEY_MAX octets. */
static int
key_ok(const char *key)
{
	size_t n;

	if (key == NULL)
		return 0;
	n = strnlen(key, KV_KEY_MAX + 1);
	if (n == 0 || n > KV_KEY_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)key[i] <= ' ' || (unsigned char)key[i] >= 0x7f)
			return 0;
	return 1;
}

static int
req_ok(const struct state_req *req)
{
	if (req->done == NULL || req->ops == NULL || req->nops == 0 ||
	    req->nops > STATE_OPS_MAX)
		return 0;
	for (size_t i = 0; i < req->nops; i++) {
		const struct state_op *op = &req->ops[i];

		if (!key_ok(op->key) || op->kind > STATE_DEL)
			return 0;
		if ((op->kind == STATE_PUT || op->kind == STATE_ADD) &&
		    (op->len > STATE_VALUE_MAX || (op->len > 0 && op->value == NULL)))
			return 0;
	}
	return 1;
}

struct state *
state_open(const struct state_params *p, struct workpool *wp, const char **error_out)
{
	struct state *st = xcalloc(1, sizeof(*st));
	int r;

	if (p->backend == NULL || strcmp(p->backend, "sqlite") == 0) {
		r = state_sqlite_open(st, p, wp, error_out);
	} else if (strcmp(p->backend, "redis") == 0) {
		r = state_redis_open(st, p, error_out);
	} else {
		*error_out = "unknown state back end";
		r = -1;
	}
	if (r < 0) {
		free(st);
		return NULL;
	}
	return st;
}

void
state_close(struct state **stp)
{
	struct state *st = *stp;

	if (st == NULL)
		return;
	st->be->close(st);
	free(st);
	*stp = NULL;
}

const char *
state_backend_name(const struct state *st)
{
	return st->be->name;
}

int
state_submit(struct state *st, struct loop *loop, struct state_req *req)
{
	if (st == NULL || loop == NULL || !req_ok(req))
		return -1;
	req->failed = 0;
	req->err[0] = '\0';
	req->loop = loop;
	req->next = NULL;
	for (size_t i = 0; i < req->nops; i++) {
		struct state_op *op = &req->ops[i];

		op->found = 0;
		op->num = 0;
		op->ttl_left = 0;
		op->out_len = 0;
		op->out[0] = '\0';
	}
	return st->be->submit(st, req);
}

void
state_set_clock_offset(struct state *st, int64_t offset_s)
{
	st->offset_s = offset_s;
	if (strncmp(st->be->name, "sqlite", 6) == 0)
		state_sqlite_set_clock_offset(st, offset_s);
}
