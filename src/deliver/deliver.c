/*
 * deliver.c - the delivery queue: worker threads, routing, retries (see
 * deliver.h).
 *
 * Owns the messages handed over by the spool sink until every recipient is
 * done (then spool_remove() and free) or deliver_free() (then they stay in
 * the spool for the next start). Decides local vs non-local from the
 * current configuration snapshot; the Maildir file protocol is
 * deliver_maildir.c.
 *
 * Queue: a FIFO of ready messages and an unordered list of deferred ones,
 * each with the monotonic time it is due; one mutex and condition variable
 * (on CLOCK_MONOTONIC) guard both. Back-off doubles from 1 s to 5 min.
 * Non-local recipients have no transport yet (outbound delivery is a later
 * issue): they stay queued, retried at the maximum interval, and
 * DELIVERY-DEFERRED is logged once per recipient.
 */
#include "deliver/deliver.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "catalog/catalog.h"
#include "core/log.h"
#include "deliver/deliver_maildir.h"

#define DELIVER_RETRY_MIN_S 1u
#define DELIVER_RETRY_MAX_S 300u

struct deliver_item {
	struct deliver_item *next;
	struct spool_msg *msg;		/* owned */
	uint64_t due_ms;		/* monotonic */
	unsigned backoff_s;		/* last interval, 0 before the first */
	unsigned char *noted;		/* per recipient: no-route logged */
};

struct deliver {
	struct spool *sp;		/* borrowed */
	pthread_mutex_t cfg_mu;		/* guards cfg */
	struct config *cfg;		/* a reference */
	pthread_mutex_t mu;		/* guards everything below */
	pthread_cond_t cv;
	struct deliver_item *ready, **ready_tail;
	struct deliver_item *waiting;
	unsigned long pending;		/* ready + waiting + in progress */
	int stop;
	pthread_t *threads;
	unsigned nthreads;
};

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const char *
errno_name(int err, char *buf, size_t size)
{
	const char *name = strerrorname_np(err);
	int n;

	if (name != NULL)
		return name;
	n = snprintf(buf, size, "E%d", err);
	if (n < 0 || (size_t)n >= size)
		return "E?";
	return buf;
}

static void
item_free(struct deliver_item **ip)
{
	struct deliver_item *it = *ip;

	if (it == NULL)
		return;
	spool_msg_free(&it->msg);
	free(it->noted);
	free(it);
	*ip = NULL;
}

static struct config *
deliver_config(struct deliver *d)
{
	struct config *cfg;

	pthread_mutex_lock(&d->cfg_mu);
	cfg = d->cfg != NULL ? config_ref(d->cfg) : NULL;
	pthread_mutex_unlock(&d->cfg_mu);
	return cfg;
}

/* ---- one message ------------------------------------------------------ */

/* Tries recipient i locally. 0 done, -1 failed (logged). */
static int
deliver_local(const struct config *cfg, struct spool_msg *msg, size_t i,
	      const char *local, size_t local_len, const char *domain,
	      size_t domain_len)
{
	const struct spool_rcpt *r = &msg->rcpts[i];
	struct log_ctx ctx = { .qid = msg->qid };
	struct deliver_maildir_result res;
	char hostbuf[256];
	const char *host = cfg->hostname;
	char *dir;
	int rc;

	if (host == NULL || *host == '\0') {
		if (gethostname(hostbuf, sizeof(hostbuf)) < 0)
			hostbuf[0] = '\0';
		hostbuf[sizeof(hostbuf) - 1] = '\0';
		host = hostbuf[0] != '\0' ? hostbuf : "localhost";
	}
	dir = deliver_maildir_dir(cfg->server_mail_root, local, local_len,
				  domain, domain_len);
	if (dir == NULL) {
		memset(&res, 0, sizeof(res));
		res.op = "path";
		res.err = EINVAL;
		res.path = xstrdup(cfg->server_mail_root);
		rc = -1;
	} else {
		rc = deliver_maildir_write(dir, host, msg, i, &res);
	}
	if (rc == 0) {
		struct kv kvs[] = {
			KVA("rcpt", r->addr, strlen(r->addr)),
			KV("path", res.path), KVU("size", res.size),
		};

		catalog_log(COND_DELIVERY_SUCCESS, &ctx, kvs, ARRAY_LEN(kvs));
	} else {
		char ebuf[24];
		struct kv kvs[] = {
			KVA("rcpt", r->addr, strlen(r->addr)),
			KV("path", res.path), KV("op", res.op),
			KV("errno", errno_name(res.err, ebuf, sizeof(ebuf))),
			KV("err", strerror(res.err)),
		};

		catalog_log(COND_DELIVERY_LOCAL_WRITE_FAILED, &ctx, kvs,
			    ARRAY_LEN(kvs));
	}
	deliver_maildir_result_fini(&res);
	free(dir);
	return rc;
}

static void
log_deferred(const struct spool_msg *msg, size_t i, unsigned retry_s,
	     const char *cause)
{
	struct log_ctx ctx = { .qid = msg->qid };
	const char *addr = msg->rcpts[i].addr;
	struct kv kvs[] = {
		KVA("rcpt", addr, strlen(addr)), KVU("retry_s", retry_s),
		KV("cause", cause),
	};

	catalog_log(COND_DELIVERY_DEFERRED, &ctx, kvs, ARRAY_LEN(kvs));
}

enum { KIND_DONE, KIND_FAILED, KIND_NO_ROUTE };

/* Delivers what it can. 1 when every recipient is done; else 0 with the
 * retry time set. */
static int
deliver_item_run(struct deliver *d, struct deliver_item *it)
{
	struct spool_msg *msg = it->msg;
	struct config *cfg = deliver_config(d);
	unsigned char *kind = xcalloc(msg->nrcpts ? msg->nrcpts : 1, 1);
	int failed = 0, left = 0;
	unsigned retry;

	if (it->noted == NULL)
		it->noted = xcalloc(msg->nrcpts ? msg->nrcpts : 1, 1);
	for (size_t i = 0; i < msg->nrcpts; i++) {
		struct spool_rcpt *r = &msg->rcpts[i];
		const char *at;

		if (r->done)
			continue;
		at = strrchr(r->addr, '@');
		if (at != NULL && cfg != NULL &&
		    config_is_local_domain(cfg, at + 1, strlen(at + 1))) {
			if (deliver_local(cfg, msg, i, r->addr,
					  (size_t)(at - r->addr), at + 1,
					  strlen(at + 1)) == 0) {
				r->done = 1;
				continue;
			}
			kind[i] = KIND_FAILED;
			failed = 1;
		} else {
			kind[i] = KIND_NO_ROUTE;
		}
		left++;
	}
	if (cfg != NULL)
		config_unref(&cfg);
	if (left == 0) {
		free(kind);
		return 1;
	}
	/* A local failure backs off from 1 s, doubling; with only non-local
	 * recipients left, wait the longest (a reload may make them local). */
	if (failed) {
		retry = it->backoff_s == 0 ? DELIVER_RETRY_MIN_S
					   : it->backoff_s * 2;
		if (retry > DELIVER_RETRY_MAX_S)
			retry = DELIVER_RETRY_MAX_S;
	} else {
		retry = DELIVER_RETRY_MAX_S;
	}
	it->backoff_s = failed ? retry : 0;
	it->due_ms = mono_ms() + (uint64_t)retry * 1000u;
	for (size_t i = 0; i < msg->nrcpts; i++) {
		if (msg->rcpts[i].done)
			continue;
		if (kind[i] == KIND_FAILED) {
			log_deferred(msg, i, retry, "DELIVERY-LOCAL-WRITE-FAILED");
		} else if (!it->noted[i]) {
			it->noted[i] = 1;	/* no transport yet: say it once */
			log_deferred(msg, i, retry, "DELIVERY-DEFERRED");
		}
	}
	free(kind);
	return 0;
}

/* ---- workers ---------------------------------------------------------- */

static void *
deliver_worker(void *arg)
{
	struct deliver *d = arg;

	pthread_mutex_lock(&d->mu);
	while (!d->stop) {
		uint64_t now = mono_ms(), next_due = UINT64_MAX;
		struct deliver_item **pp, *it;

		/* Due deferred messages join the ready queue. */
		for (pp = &d->waiting; (it = *pp) != NULL;) {
			if (it->due_ms <= now) {
				*pp = it->next;
				it->next = NULL;
				*d->ready_tail = it;
				d->ready_tail = &it->next;
			} else {
				if (it->due_ms < next_due)
					next_due = it->due_ms;
				pp = &it->next;
			}
		}
		if (d->ready == NULL) {
			if (next_due == UINT64_MAX) {
				pthread_cond_wait(&d->cv, &d->mu);
			} else {
				struct timespec ts;

				clock_gettime(CLOCK_MONOTONIC, &ts);
				next_due -= now;
				ts.tv_sec += (time_t)(next_due / 1000u);
				ts.tv_nsec += (long)(next_due % 1000u) * 1000000L;
				if (ts.tv_nsec >= 1000000000L) {
					ts.tv_sec++;
					ts.tv_nsec -= 1000000000L;
				}
				pthread_cond_timedwait(&d->cv, &d->mu, &ts);
			}
			continue;
		}
		it = d->ready;
		d->ready = it->next;
		if (d->ready == NULL)
			d->ready_tail = &d->ready;
		it->next = NULL;
		pthread_mutex_unlock(&d->mu);

		if (deliver_item_run(d, it)) {
			(void)spool_remove(d->sp, it->msg->qid);
			item_free(&it);
			pthread_mutex_lock(&d->mu);
			d->pending--;
		} else {
			pthread_mutex_lock(&d->mu);
			it->next = d->waiting;
			d->waiting = it;
		}
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

struct deliver *
deliver_new(struct spool *sp, struct config *cfg, unsigned threads)
{
	struct deliver *d = xcalloc(1, sizeof(*d));
	pthread_condattr_t ca;

	d->sp = sp;
	d->cfg = cfg != NULL ? config_ref(cfg) : NULL;
	d->ready_tail = &d->ready;
	pthread_mutex_init(&d->cfg_mu, NULL);
	pthread_mutex_init(&d->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->cv, &ca);
	pthread_condattr_destroy(&ca);
	d->nthreads = threads > 0 ? threads : 1;
	d->threads = xcalloc(d->nthreads, sizeof(*d->threads));
	for (unsigned i = 0; i < d->nthreads; i++) {
		int rc = pthread_create(&d->threads[i], NULL, deliver_worker, d);

		if (rc != 0) {
			char ebuf[24];
			struct kv kvs[] = {
				KV("subsystem", "deliver"), KV("path", "-"),
				KV("errno", errno_name(rc, ebuf, sizeof(ebuf))),
				KV("err", strerror(rc)),
			};

			catalog_log(COND_STARTUP_INIT_FAILED, NULL, kvs,
				    ARRAY_LEN(kvs));
			d->nthreads = i;
			deliver_free(&d);
			return NULL;
		}
	}
	return d;
}

void
deliver_free(struct deliver **dp)
{
	struct deliver *d = *dp;
	struct deliver_item *it;

	if (d == NULL)
		return;
	pthread_mutex_lock(&d->mu);
	d->stop = 1;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
	for (unsigned i = 0; i < d->nthreads; i++)
		pthread_join(d->threads[i], NULL);
	/* What is left stays in the spool for the next start. */
	while ((it = d->ready) != NULL) {
		d->ready = it->next;
		item_free(&it);
	}
	while ((it = d->waiting) != NULL) {
		d->waiting = it->next;
		item_free(&it);
	}
	if (d->cfg != NULL)
		config_unref(&d->cfg);
	pthread_mutex_destroy(&d->cfg_mu);
	pthread_mutex_destroy(&d->mu);
	pthread_cond_destroy(&d->cv);
	free(d->threads);
	free(d);
	*dp = NULL;
}

void
deliver_set_config(struct deliver *d, struct config *cfg)
{
	struct config *old;

	pthread_mutex_lock(&d->cfg_mu);
	old = d->cfg;
	d->cfg = cfg != NULL ? config_ref(cfg) : NULL;
	pthread_mutex_unlock(&d->cfg_mu);
	if (old != NULL)
		config_unref(&old);
}

void
deliver_enqueue(struct spool_msg *msg, void *arg)
{
	struct deliver *d = arg;
	struct deliver_item *it = xcalloc(1, sizeof(*it));

	it->msg = msg;
	pthread_mutex_lock(&d->mu);
	*d->ready_tail = it;
	d->ready_tail = &it->next;
	d->pending++;
	pthread_cond_signal(&d->cv);
	pthread_mutex_unlock(&d->mu);
}

unsigned long
deliver_pending(struct deliver *d)
{
	unsigned long n;

	pthread_mutex_lock(&d->mu);
	n = d->pending;
	pthread_mutex_unlock(&d->mu);
	return n;
}
