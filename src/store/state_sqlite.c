/*
 * state_sqlite.c - the embedded back end of the state store (state.h):
 * requests run on the worker pool's "state" class against the SQLite
 * engine (kv_store.h). The class takes every ready request at once and
 * runs them in one transaction, so a burst of greylist and rate updates
 * costs one commit (WAL, synchronous=NORMAL: no sync call per request).
 * At shutdown the requests still queued run (a write made just before a
 * stop is kept); their answers, which no loop will take, are cancelled.
 */
#include "state_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "log.h"

struct state_sqlite {
	struct kv_store *kv;
	struct workpool *wp;	/* borrowed */
	int cls;
	int memory;
};

static struct state_sqlite *
priv_of(const struct state *st)
{
	return st->priv;
}

/* Back-end state for the job callbacks: the request's backend field. */
static struct state_sqlite *
req_sqlite(const struct state_req *req)
{
	return req->backend;
}

static int
op_run(struct kv_store *kv, struct state_op *op)
{
	struct buf v;
	int r;

	switch (op->kind) {
	case STATE_GET:
		buf_init(&v, 64);
		r = kv_get(kv, op->key, &v, &op->ttl_left);
		if (r == 1)
			state_op_take_value(op, v.data, v.len);
		buf_fini(&v);
		return r < 0 ? -1 : 0;
	case STATE_PUT:
		return kv_put(kv, op->key, op->value, op->len, op->ttl_s);
	case STATE_ADD:
		buf_init(&v, 64);
		r = kv_get(kv, op->key, &v, NULL);
		buf_fini(&v);
		if (r < 0)
			return -1;
		op->found = r;
		return r == 1 ? 0 : kv_put(kv, op->key, op->value, op->len, op->ttl_s);
	case STATE_INCR:
		return kv_incr(kv, op->key, op->delta, op->ttl_s, &op->num);
	case STATE_DEL:
		r = kv_delete(kv, op->key);
		op->found = r == 1;
		return r < 0 ? -1 : 0;
	}
	return -1;
}

static void
req_run(struct kv_store *kv, struct state_req *req)
{
	for (size_t i = 0; i < req->nops; i++) {
		if (op_run(kv, &req->ops[i]) < 0) {
			state_req_fail(req, "sqlite", kv_error());
			return;
		}
	}
}

/* Worker: the first request of the batch and the rest through wj.next. */
static void
sqlite_run(struct workpool_job *wj)
{
	struct state_req *first = (struct state_req *)((char *)wj - offsetof(struct state_req, wj));
	struct kv_store *kv = req_sqlite(first)->kv;
	int in_txn = kv_begin(kv) == 0;

	for (struct workpool_job *j = wj; j != NULL; j = j->next) {
		struct state_req *req = (struct state_req *)((char *)j - offsetof(struct state_req, wj));
		req_run(kv, req);
	}
	if (in_txn && kv_commit(kv) < 0) {
		kv_rollback(kv);
		for (struct workpool_job *j = wj; j != NULL; j = j->next) {
			struct state_req *req =
				(struct state_req *)((char *)j - offsetof(struct state_req, wj));
			state_req_fail(req, "sqlite", kv_error());
		}
	}
}

static void
sqlite_done(struct loop *loop, struct workpool_job *wj)
{
	struct state_req *req = (struct state_req *)((char *)wj - offsetof(struct state_req, wj));

	(void)loop;
	req->done(req);
}

/* The class stopped before the request ran or its done did (shutdown;
 * the loops have stopped): the owner's cancel frees it. */
static void
sqlite_cancel(struct workpool_job *wj)
{
	struct state_req *req = (struct state_req *)((char *)wj - offsetof(struct state_req, wj));

	state_req_fail(req, "sqlite", "the store closed");
	if (req->cancel != NULL)
		req->cancel(req);
}

static int
sqlite_submit(struct state *st, struct state_req *req)
{
	struct state_sqlite *s = priv_of(st);

	req->backend = s;
	workpool_job_init(&req->wj, sqlite_run, sqlite_done, sqlite_cancel);
	return workpool_submit(s->wp, s->cls, &req->wj, req->loop);
}

static void
sqlite_close(struct state *st)
{
	struct state_sqlite *s = priv_of(st);

	workpool_class_stop(s->wp, s->cls);
	kv_close(&s->kv);
	free(s);
	st->priv = NULL;
}

static const struct state_backend backend_sqlite = {
	.name = "sqlite", .submit = sqlite_submit, .close = sqlite_close,
};
static const struct state_backend backend_memory = {
	.name = "sqlite-memory", .submit = sqlite_submit, .close = sqlite_close,
};

/* Opens <dir>/state.db; when it cannot, logs STORE-STATE-OPEN-FAILED and
 * falls back to a store in memory. */
static struct kv_store *
open_or_memory(const char *dir, int *memory_out)
{
	const char *err = "";
	struct kv_store *kv = dir != NULL ? kv_open(dir, &err) : NULL;
	char path[4096], why[256];

	*memory_out = 0;
	if (kv != NULL)
		return kv;
	if (snprintf(path, sizeof(path), "%s/%s", dir != NULL ? dir : "", KV_FILE) < 0)
		path[0] = '\0';
	if (slice_copy(slice_from_cstr(err), why, sizeof(why)) < 0)
		why[0] = '\0';
	kv = kv_open_memory(&err);
	*memory_out = kv != NULL;
	struct kv kvs[] = { KV("path", path), KV("err", why),
			    KV("fallback", kv != NULL ? "memory" : "none") };
	catalog_log(COND_STORE_STATE_OPEN_FAILED, NULL, kvs, ARRAY_LEN(kvs));
	return kv;
}

int
state_sqlite_open(struct state *st, const struct state_params *p, struct workpool *wp,
		  const char **error_out)
{
	struct state_sqlite *s = xcalloc(1, sizeof(*s));

	s->kv = open_or_memory(p->dir, &s->memory);
	if (s->kv == NULL) {
		*error_out = "the state store cannot be opened, not even in memory";
		free(s);
		return -1;
	}
	s->wp = wp;
	s->cls = workpool_class_new(wp, "state", 1, WORKPOOL_BATCH | WORKPOOL_DRAIN);
	if (s->cls < 0) {
		*error_out = "no worker class for the state store";
		kv_close(&s->kv);
		free(s);
		return -1;
	}
	(void)p->workers;	/* one thread: SQLite serialises writers anyway */
	st->priv = s;
	st->be = s->memory ? &backend_memory : &backend_sqlite;
	return 0;
}

void
state_sqlite_set_clock_offset(struct state *st, int64_t offset_s)
{
	kv_set_clock_offset(priv_of(st)->kv, offset_s);
}
