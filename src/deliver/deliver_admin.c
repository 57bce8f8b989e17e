/*
 * deliver_admin.c - the delivery queue's index by queue ID and the
 * operator's actions on its entries (see deliver_admin.h): one hash table
 * (core/hash.h, with hash_remove) from queue ID to a slot of entries,
 * under one mutex; a condition variable tells the control thread when an
 * action it asked for is done.
 */
#include "deliver_admin.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "deliver.h"
#include "hash.h"
#include "log.h"
#include "metrics.h"
#include "spool_admin.h"

#define DA_INDEX_MAX ((size_t)1 << 24)
/* The oldest entry left: the next is looked for at most this often. */
#define DA_WALK_US 100000u
/* How long the control thread waits for an entry's action (an entry
 * whose outbound jobs are out waits for them, up to their timeouts). */
#define DA_WAIT_MS 10000

struct deliver_admin {
	struct deliver *d;		/* borrowed: for deliver_enqueue */
	struct spool *sp;		/* borrowed */
	struct workpool *wp;		/* borrowed */
	int cls;			/* the "deliver" class */
	pthread_mutex_t mu;		/* guards all below and entries' flags */
	pthread_cond_t acted;		/* an action was done, or an entry left */
	struct hash index;		/* queue ID -> slot */
	struct deliver_admin_ent **slots;
	uint32_t nslots, cap;
	uint32_t *free_slots;		/* slots to reuse */
	uint32_t nfree;
	/* the snapshot published for /metrics (queue_publish) */
	uint32_t live;			/* indexed entries */
	uint64_t oldest_us;		/* the oldest one's queue ID time */
	int oldest_stale;		/* that one left: walk for the next */
	uint64_t walked_us;		/* the last walk (monotonic) */
};

/* Publishes the queue manager's snapshot for /metrics (a->mu held): how
 * many entries, and the oldest queue ID's time. When the oldest leaves,
 * the index is walked for the next one at most every DA_WALK_US; until
 * then (or the next change) the figure stays on the one that left. */
static void
queue_publish(struct deliver_admin *a)
{
	if (a->live == 0) {
		a->oldest_us = 0;
		a->oldest_stale = 0;
	} else if (a->oldest_stale) {
		uint64_t now = metrics_now_us();

		if (now - a->walked_us >= DA_WALK_US) {
			uint64_t min = 0;

			for (uint32_t i = 0; i < a->nslots; i++) {
				uint64_t t = a->slots[i] != NULL ? spool_qid_time_us(a->slots[i]->qid) : 0;

				if (t != 0 && (min == 0 || t < min))
					min = t;
			}
			a->oldest_us = min;
			a->oldest_stale = 0;
			a->walked_us = now;
		}
	}
	metrics_value_set(METRICS_QUEUE_SIZE, a->live);
	metrics_value_set(METRICS_QUEUE_OLDEST_US, a->oldest_us);
}

static int
slot_eq(const void *ctx, uint32_t val, const void *key)
{
	const struct deliver_admin *a = ctx;

	return val < a->nslots && a->slots[val] != NULL &&
	       strcmp(a->slots[val]->qid, key) == 0;
}

static uint64_t
qid_hash(const char *qid)
{
	return hash_bytes(qid, strlen(qid));
}

struct deliver_admin *
deliver_admin_new(struct deliver *d, struct spool *sp, struct workpool *wp, int cls)
{
	struct deliver_admin *a = xcalloc(1, sizeof(*a));

	a->d = d;
	a->sp = sp;
	a->wp = wp;
	a->cls = cls;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->acted, NULL);
	hash_init(&a->index, DA_INDEX_MAX, slot_eq);
	return a;
}

void
deliver_admin_free(struct deliver_admin **ap)
{
	struct deliver_admin *a = *ap;

	if (a == NULL)
		return;
	hash_fini(&a->index);
	free(a->slots);
	free(a->free_slots);
	pthread_cond_destroy(&a->acted);
	pthread_mutex_destroy(&a->mu);
	free(a);
	*ap = NULL;
}

void
deliver_admin_add(struct deliver_admin *a, struct deliver_admin_ent *e)
{
	uint32_t slot;

	e->slot = 0;
	e->flags = 0;
	pthread_mutex_lock(&a->mu);
	if (a->nfree > 0) {
		slot = a->free_slots[--a->nfree];
	} else {
		if (a->nslots == a->cap) {
			if (a->cap >= DA_INDEX_MAX)
				goto out;	/* not indexed: no operator action */
			a->cap = a->cap ? 2 * a->cap : 64;
			a->slots = xrealloc(a->slots, a->cap * sizeof(*a->slots));
			a->free_slots = xrealloc(a->free_slots, a->cap * sizeof(*a->free_slots));
		}
		slot = a->nslots++;
	}
	a->slots[slot] = e;
	if (hash_insert(&a->index, qid_hash(e->qid), a, e->qid, slot, NULL) != 0) {
		a->slots[slot] = NULL;	/* a second entry of one ID: unindexed */
		a->free_slots[a->nfree++] = slot;
		goto out;
	}
	e->slot = slot + 1;
	a->live++;
	uint64_t t = spool_qid_time_us(e->qid);
	if (t != 0 && (a->oldest_us == 0 || t < a->oldest_us))
		a->oldest_us = t;
	queue_publish(a);
out:
	pthread_mutex_unlock(&a->mu);
}

void
deliver_admin_remove(struct deliver_admin *a, struct deliver_admin_ent *e)
{
	if (e->slot == 0)
		return;
	pthread_mutex_lock(&a->mu);
	(void)hash_remove(&a->index, qid_hash(e->qid), a, e->qid, NULL);
	a->slots[e->slot - 1] = NULL;
	a->free_slots[a->nfree++] = e->slot - 1;
	e->slot = 0;
	a->live--;
	if (spool_qid_time_us(e->qid) == a->oldest_us)
		a->oldest_stale = 1;
	queue_publish(a);
	pthread_cond_broadcast(&a->acted);
	pthread_mutex_unlock(&a->mu);
}

/* The indexed entry of qid, or NULL (a->mu held). */
static struct deliver_admin_ent *
find(struct deliver_admin *a, const char *qid)
{
	uint32_t slot;

	if (!hash_find(&a->index, qid_hash(qid), a, qid, &slot))
		return NULL;
	return a->slots[slot];
}

int
deliver_admin_skip(struct deliver_admin *a, struct deliver_admin_ent *e, int results)
{
	int skip;

	pthread_mutex_lock(&a->mu);
	skip = e->flags != 0 && !results;
	pthread_mutex_unlock(&a->mu);
	return skip;
}

static void
log_action(enum cond_id id, const char *qid, const struct kv *kvs, size_t n)
{
	struct log_ctx ctx = { .qid = qid };

	catalog_log(id, &ctx, kvs, n);
}

int
deliver_admin_done(struct deliver_admin *a, struct deliver_admin_ent *e)
{
	unsigned flags;
	int rc = 0;

	pthread_mutex_lock(&a->mu);
	flags = e->flags;
	pthread_mutex_unlock(&a->mu);
	if (flags == 0)
		return 0;
	if (flags & DA_DELETE) {
		size_t left = 0;

		if (spool_admin_delete(a->sp, e->qid, &left) == 0) {
			struct kv kvs[] = { KV("by", "control"), KVU("rcpts_left", left) };

			log_action(COND_QUEUE_DELETED, e->qid, kvs, ARRAY_LEN(kvs));
		}
		rc = 1;
	} else if (flags & DA_BOUNCE) {
		size_t n = 0;

		if (spool_admin_bounce(a->sp, e->qid, &n) == 0) {
			struct kv kvs[] = { KV("by", "control"), KVU("rcpts", n) };

			log_action(COND_QUEUE_BOUNCED_BY_ADMIN, e->qid, kvs, ARRAY_LEN(kvs));
		}
		rc = 2;
	} else if (flags & DA_HOLD) {
		struct kv kvs[] = { KV("by", "control") };

		if (spool_admin_hold(a->sp, e->qid, 1) == 0) {
			log_action(COND_QUEUE_HELD, e->qid, kvs, 1);
			rc = 1;
		}
	}
	pthread_mutex_lock(&a->mu);
	e->flags &= ~flags;
	pthread_cond_broadcast(&a->acted);
	pthread_mutex_unlock(&a->mu);
	return rc;
}

/* ---- the control thread's side ---------------------------------------- */

/* Asks for action on qid's entry: 1 and the entry made due (then waits,
 * bounded, until it is done: *done 1), or 0 when qid is not indexed. */
static int
ask(struct deliver_admin *a, const char *qid, unsigned action, int *done)
{
	struct deliver_admin_ent *e;
	struct timespec until;

	*done = 0;
	pthread_mutex_lock(&a->mu);
	e = find(a, qid);
	if (e == NULL) {
		pthread_mutex_unlock(&a->mu);
		return 0;
	}
	e->flags |= action;
	(void)workpool_job_wake(a->wp, a->cls, e->wj);
	(void)clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += DA_WAIT_MS / 1000;
	for (;;) {
		e = find(a, qid);
		if (e == NULL || !(e->flags & action)) {
			*done = 1;
			break;
		}
		if (pthread_cond_timedwait(&a->acted, &a->mu, &until) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&a->mu);
	return 1;
}

/* A message on disk that delivery does not hold (held, or between its
 * commit and the queue) goes to delivery: read back as at a start. */
static void
requeue(struct deliver_admin *a, const char *qid)
{
	struct spool_msg *msg = NULL;

	if (spool_reload(a->sp, qid, &msg) == 0) {
		msg->recovered = 1;
		deliver_enqueue(msg, a->d);
	}
}

static int
is_indexed(struct deliver_admin *a, const char *qid)
{
	int in;

	pthread_mutex_lock(&a->mu);
	in = find(a, qid) != NULL;
	pthread_mutex_unlock(&a->mu);
	return in;
}

/* 1 when a waiting recipient of qid's message is in domain. */
static int
has_domain(struct deliver_admin *a, const char *qid, const char *domain)
{
	struct spool_view v;
	const char *reason;
	int match = 0;

	if (spool_view_read(a->sp, qid, 0, &v, &reason) < 0)
		return 0;
	for (size_t i = 0; i < v.msg->nrcpts && !match; i++) {
		const struct spool_rcpt *r = &v.msg->rcpts[i];
		const char *at = strrchr(r->addr, '@');

		match = !r->done && !r->failed && at != NULL && strcasecmp(at + 1, domain) == 0;
	}
	spool_view_fini(&v);
	return match;
}

enum cond_id
deliver_admin_flush(void *arg, const char *qid, const char *domain, long *count)
{
	struct deliver_admin *a = arg;
	char **names = NULL;
	size_t n = 0;

	*count = 0;
	if (qid != NULL) {
		names = xcalloc(1, sizeof(*names));
		names[0] = xstrdup(qid);
		n = 1;
	} else if (spool_admin_names(a->sp, &names, &n) < 0) {
		return COND_QUEUE_SPOOL_READ_FAILED;
	}
	for (size_t i = 0; i < n; i++) {
		int one = 0;

		/* The next attempt cleared in the state log (an outbound
		 * deferral is due only then), then the entry made due. */
		if ((domain == NULL || has_domain(a, names[i], domain)) &&
		    spool_admin_flush(a->sp, names[i], &one) == 0 && one) {
			struct deliver_admin_ent *e;

			pthread_mutex_lock(&a->mu);
			e = find(a, names[i]);
			if (e != NULL)
				(void)workpool_job_wake(a->wp, a->cls, e->wj);
			pthread_mutex_unlock(&a->mu);
			(*count)++;
		}
		free(names[i]);
	}
	free(names);
	if (qid != NULL && *count == 0 && !is_indexed(a, qid)) {
		struct spool_view v;
		const char *reason;

		if (spool_view_read(a->sp, qid, 0, &v, &reason) == -2)
			return COND_QUEUE_NOT_FOUND;
		if (v.msg != NULL)
			spool_view_fini(&v);
	}
	{
		struct kv kvs[] = { KV("by", "control"),
				    KV("scope", qid != NULL ? qid : domain != NULL ? domain : "all"),
				    KVI("count", *count) };

		log_action(COND_QUEUE_FLUSHED, qid, kvs, ARRAY_LEN(kvs));
	}
	return COND__COUNT;
}

enum cond_id
deliver_admin_hold(void *arg, const char *qid, int on, long *count)
{
	struct deliver_admin *a = arg;
	struct kv kvs[] = { KV("by", "control") };
	int done = 0, r;

	*count = 0;
	if (on) {
		if (ask(a, qid, DA_HOLD, &done)) {
			*count = 1;	/* held now, or when its attempt ends */
			return COND__COUNT;
		}
		r = spool_admin_hold(a->sp, qid, 1);	/* delivery does not hold it */
		if (r == 0)
			log_action(COND_QUEUE_HELD, qid, kvs, 1);
	} else {
		pthread_mutex_lock(&a->mu);
		struct deliver_admin_ent *e = find(a, qid);
		if (e != NULL && (e->flags & DA_HOLD)) {
			e->flags &= ~DA_HOLD;	/* a hold not done yet: cancelled */
			pthread_mutex_unlock(&a->mu);
			log_action(COND_QUEUE_RELEASED, qid, kvs, 1);
			*count = 1;
			return COND__COUNT;
		}
		pthread_mutex_unlock(&a->mu);
		r = spool_admin_hold(a->sp, qid, 0);
		if (r == 0) {
			int one = 0;

			log_action(COND_QUEUE_RELEASED, qid, kvs, 1);
			/* due now, as Postfix's release: its next attempt cleared */
			if (!is_indexed(a, qid) && spool_admin_flush(a->sp, qid, &one) == 0)
				requeue(a, qid);
		}
	}
	if (r == 0)
		*count = 1;
	return r == -2 ? COND_QUEUE_NOT_FOUND : r < 0 ? COND_QUEUE_WRITE_FAILED : COND__COUNT;
}

/* delete or bounce: through the entry when delivery holds the message;
 * else on the file (a held message: a bounce also releases and requeues
 * it, so a pass sends the DSN). */
static enum cond_id
act(struct deliver_admin *a, const char *qid, unsigned action, long *count)
{
	size_t n = 0;
	int done = 0, r;

	*count = 0;
	if (ask(a, qid, action, &done)) {
		*count = 1;
		return COND__COUNT;
	}
	r = action == DA_DELETE ? spool_admin_delete(a->sp, qid, &n)
				: spool_admin_bounce(a->sp, qid, &n);
	if (r == 0) {
		struct kv kvs[] = { KV("by", "control"),
				    KVU(action == DA_DELETE ? "rcpts_left" : "rcpts", n) };

		log_action(action == DA_DELETE ? COND_QUEUE_DELETED : COND_QUEUE_BOUNCED_BY_ADMIN,
			   qid, kvs, ARRAY_LEN(kvs));
		if (action == DA_BOUNCE && spool_admin_hold(a->sp, qid, 0) == 0)
			requeue(a, qid);
		*count = 1;
	}
	return r == -2 ? COND_QUEUE_NOT_FOUND : r < 0 ? COND_QUEUE_WRITE_FAILED : COND__COUNT;
}

enum cond_id
deliver_admin_delete(void *arg, const char *qid, long *count)
{
	return act(arg, qid, DA_DELETE, count);
}

enum cond_id
deliver_admin_bounce(void *arg, const char *qid, long *count)
{
	return act(arg, qid, DA_BOUNCE, count);
}
