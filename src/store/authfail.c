/*
 * authfail.c - the one failed-login store (see authfail.h): the keys and
 * rules over the shared state store, for SMTP AUTH and POP3 alike.
 */
#include "authfail.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "log.h"

static void
store_failed(const struct authfail_req *r, const char *op, const char *key)
{
	struct log_ctx ctx = { .sid = r->sid[0] != '\0' ? r->sid : NULL };
	struct kv kv[] = { KV("op", op), KV("key", key), KV("err", r->req.err) };

	catalog_log(COND_STORE_STATE_OP_FAILED, &ctx, kv, ARRAY_LEN(kv));
}

/* Fills r's keys and sid; -1 if they do not fit (never: addresses are
 * short). */
static int
prepare(struct authfail_req *r, struct state *st, const char *client, const char *sid,
	authfail_done_fn done, void *arg)
{
	int a = snprintf(r->kfail, sizeof(r->kfail), "authfail:%s", client);
	int b = snprintf(r->kban, sizeof(r->kban), "authban:%s", client);

	r->banned = 0;
	r->count = 0;
	r->remaining_s = 0;
	r->done = done;
	r->arg = arg;
	r->st = st;
	r->phase = 0;
	if (slice_copy(slice_from_cstr(sid != NULL ? sid : ""), r->sid, sizeof(r->sid)) < 0)
		r->sid[0] = '\0';
	return a < 0 || (size_t)a >= sizeof(r->kfail) || b < 0 || (size_t)b >= sizeof(r->kban) ?
		       -1 : 0;
}

static void
answer_later(struct loop *loop, void *arg)
{
	struct authfail_req *r = arg;

	(void)loop;
	r->done(r);
}

static void
cancelled(struct state_req *req)
{
	struct authfail_req *r = req->arg;

	if (r->cancel != NULL)
		r->cancel(r);
}

/* Queues r's request, or (no store, a request refused) answers "nothing
 * known" on the loop's next round. */
static void
submit(struct authfail_req *r, struct loop *loop, size_t nops, state_done_fn fn)
{
	r->req.ops = r->ops;
	r->req.nops = nops;
	r->req.done = fn;
	r->req.cancel = cancelled;
	r->req.arg = r;
	if (r->st == NULL || state_submit(r->st, loop, &r->req) < 0)
		loop_defer(loop, answer_later, r);
}

static void
checked(struct state_req *req)
{
	struct authfail_req *r = req->arg;
	const struct state_op *op = &r->ops[0];

	if (req->failed) {
		store_failed(r, "get", r->kban);	/* fail open */
	} else if (op->found) {
		r->banned = 1;
		r->count = op->num;
		r->remaining_s = op->ttl_left;
	}
	r->done(r);
}

void
authfail_check(struct state *st, struct loop *loop, struct authfail_req *r, const char *client,
	       const char *sid, authfail_done_fn done, void *arg)
{
	if (prepare(r, st, client, sid, done, arg) < 0) {
		r->st = NULL;
		submit(r, loop, 0, checked);
		return;
	}
	state_op_set(&r->ops[0], STATE_GET, r->kban, NULL, 0, 0, 0);
	submit(r, loop, 1, checked);
}

static void
recorded(struct state_req *req)
{
	struct authfail_req *r = req->arg;

	if (r->phase == 0) {
		if (req->failed) {
			store_failed(r, "incr", r->kfail);
			r->done(r);
			return;
		}
		r->count = r->ops[0].num;
		if (r->pol.max_failures == 0 || r->count < (int64_t)r->pol.max_failures) {
			r->done(r);
			return;
		}
		/* the lockout starts: the ban written, the counter dropped */
		int n = snprintf(r->value, sizeof(r->value), "%lld", (long long)r->count);
		if (n < 0 || (size_t)n >= sizeof(r->value)) {
			r->done(r);
			return;
		}
		r->phase = 1;
		state_op_set(&r->ops[0], STATE_PUT, r->kban, r->value, (size_t)n, 0,
			     r->pol.lockout_s);
		state_op_set(&r->ops[1], STATE_DEL, r->kfail, NULL, 0, 0, 0);
		submit(r, req->loop, 2, recorded);
		return;
	}
	if (req->failed)
		store_failed(r, "put", r->kban);
	else
		r->banned = 1;
	r->done(r);
}

void
authfail_record(struct state *st, struct loop *loop, struct authfail_req *r, const char *client,
		const char *sid, const struct authfail_policy *pol, authfail_done_fn done, void *arg)
{
	if (prepare(r, st, client, sid, done, arg) < 0) {
		r->st = NULL;
		submit(r, loop, 0, recorded);
		return;
	}
	r->pol = *pol;
	state_op_set(&r->ops[0], STATE_INCR, r->kfail, NULL, 0, 1, pol->window_s);
	submit(r, loop, 1, recorded);
}

static void
cleared(struct state_req *req)
{
	struct authfail_req *r = req->arg;

	if (req->failed)
		store_failed(r, "delete", r->kfail);
	free(r);
}

static void
clear_free(struct authfail_req *r)
{
	free(r);
}

void
authfail_clear(struct state *st, struct loop *loop, const char *client, const char *sid)
{
	struct authfail_req *r;

	if (st == NULL)
		return;
	r = xcalloc(1, sizeof(*r));
	if (prepare(r, st, client, sid, clear_free, NULL) < 0) {
		free(r);
		return;
	}
	state_op_set(&r->ops[0], STATE_DEL, r->kfail, NULL, 0, 0, 0);
	r->req.ops = r->ops;
	r->req.nops = 1;
	r->req.done = cleared;
	r->req.cancel = cancelled;
	r->cancel = clear_free;
	r->req.arg = r;
	if (state_submit(st, loop, &r->req) < 0)
		free(r);
}
