/*
 * deliver.c - the delivery queue: jobs on the worker pool, routing,
 * retries (see deliver.h).
 *
 * Owns the messages handed over by the spool sink until every recipient is
 * done (then spool_remove() and free) or deliver_free() (then they stay in
 * the spool for the next start). Decides local vs non-local from the
 * current configuration snapshot; the Maildir file protocol is
 * deliver_maildir.c.
 *
 * Queue: each message is one job of the worker pool's "deliver" class
 * (core/workpool.h); a deferred message is resubmitted with its back-off
 * as the delay, so the pool's heap of delayed jobs orders the retries
 * (O(log N)). A waiting message is only a small index entry (struct
 * deliver_item: queue ID, back-off, passes, flags; its next attempt is
 * its heap key): its envelope and per-recipient state are read back from
 * its spool file (spool_reload: head and tail, never the data) on the
 * worker when its attempt comes due, and freed after the pass. A
 * recovered message becomes such an entry at once; a new commit keeps
 * its envelope until its first pass. A batch is delivered in passes of
 * at most DELIVER_PASS_MAX messages, so no more are in memory at once.
 * Back-off doubles from 1 s to 5 min.
 * Non-local recipients go to the outbound engine as jobs, one per next hop
 * (deliver_remote.c, outbound.h); the item then waits off the heap until
 * every job is back, and the next pass records their results. Outbound
 * deferrals wait for their own next attempt (outbound.retry_schedule),
 * across restarts too.
 *
 * Local recipients are deliver_local.c's: an earlier copy looked for, the
 * free-space floor (retried every DELIVER_RETRY_SPACE_S at most), the
 * quota (DELIVERY-LOCAL-QUOTA and back-off), the copy. No outcome drops a
 * recipient: a message leaves the spool only when every recipient is done
 * or failed for good with its DSN sent (item_report, deliver_report.c).
 * A reload makes every waiting message due at once, outbound deferrals
 * included.
 */
#include "deliver_private.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "catalog.h"
#include "log.h"
#include "workpool.h"
#include "deliver_maildir.h"
#include "deliver_quota.h"
#include "deliver_space.h"
#include "deliver_remote.h"
#include "deliver_report.h"
#include "flush.h"
#include "outbound.h"


void
item_free(struct deliver_item **ip)
{
	struct deliver_item *it = *ip;

	if (it == NULL)
		return;
	deliver_admin_remove(it->d->admin, &it->adm);
	spool_msg_free(&it->msg);
	remote_jobs_free(&it->jobs);
	remote_jobs_free(&it->results);
	free(it);
	*ip = NULL;
}

struct config *
deliver_config(struct deliver *d)
{
	struct config *cfg;

	pthread_mutex_lock(&d->cfg_mu);
	cfg = d->cfg != NULL ? config_ref(d->cfg) : NULL;
	pthread_mutex_unlock(&d->cfg_mu);
	return cfg;
}

/* ---- flushing a batch ------------------------------------------------- */

void
sync_add(struct sync_set *ss, const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		if (!ss->failed) {
			ss->failed = 1;
			ss->err = errno;
		}
		return;
	}
	for (size_t i = 0; i < ss->n; i++)
		if (ss->dev[i] == st.st_dev)
			return;
	if (ss->n == SYNC_SET_MAX) {
		/* More filesystems than that in one batch: flush this one now. */
		if (store_flush_path(path, 0) < 0) {
			ss->failed = 1;
			ss->err = errno;
		}
		return;
	}
	ss->dev[ss->n] = st.st_dev;
	ss->path[ss->n] = xstrdup(path);
	ss->n++;
}

/* One syncfs per filesystem; 0, or -1 (ss->err, ss->fail_path). */
static int
sync_run(struct sync_set *ss)
{
	for (size_t i = 0; i < ss->n && !ss->failed; i++) {
		if (store_flush_path(ss->path[i], DELIVER_FLUSH_WAIT_MS) < 0) {
			ss->failed = 1;
			ss->err = errno;
			ss->fail_path = ss->path[i];
		}
	}
	return ss->failed ? -1 : 0;
}

static void
sync_fini(struct sync_set *ss)
{
	for (size_t i = 0; i < ss->n; i++)
		free(ss->path[i]);
	ss->n = 0;
}

/* ---- one message ------------------------------------------------------ */

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
	metrics_inc(METRICS_MSG_DEFERRED);
}

void
deliver_metrics_delivered(const char *qid)
{
	uint64_t t0 = spool_qid_time_us(qid), now = metrics_wall_us();

	metrics_inc(METRICS_MSG_DELIVERED);
	if (t0 != 0)
		metrics_observe(METRICS_H_DELIVERY_US, now > t0 ? now - t0 : 0);
}

/* The next back-off interval: from 1 s, doubling to 5 min. */
unsigned
item_backoff(struct deliver_item *it)
{
	unsigned retry = it->backoff_s == 0 ? DELIVER_RETRY_MIN_S : it->backoff_s * 2u;

	if (retry > DELIVER_RETRY_MAX_S)
		retry = DELIVER_RETRY_MAX_S;
	it->backoff_s = (uint16_t)retry;
	return retry;
}

/* Delivers what it can. 1 when every recipient is done; else 0 with the
 * retry time set. Nothing is ever dropped: a recipient not done keeps the
 * message (and its spool file) until it is. */
static int
deliver_item_run(struct deliver *d, struct deliver_item *it)
{
	struct spool_msg *msg = it->msg;
	struct deliver_pass *p = it->pass;
	struct config *cfg = deliver_config(d);
	size_t n = msg->nrcpts ? msg->nrcpts : 1;
	unsigned char *kind = xcalloc(n, 1);
	unsigned char *want = NULL;	/* recipients for outbound jobs */
	int backoff = 0, space = 0, left = 0, nwant = 0;
	int64_t now = (int64_t)time(NULL), remote_next = 0;
	unsigned retry, gen = atomic_load(&d->wake_gen);
	/* after a reload, outbound deferrals are due too (a route may have
	 * changed); otherwise each waits for its own next attempt */
	int force = it->wake_gen != gen;

	/* done in the file already: recorded */
	p->rf = xcalloc(n, 1);
	for (size_t i = 0; i < msg->nrcpts; i++)
		p->rf[i] = msg->rcpts[i].done ? RF_RECORDED : 0;
	buf_init(&p->recs, (size_t)1 << 24);
	p->newly_done = 0;
	/* What outbound jobs brought back: recorded in this pass. */
	if (it->results != NULL)
		remote_results(it, cfg, kind, now);
	for (size_t i = 0; i < msg->nrcpts; i++) {
		struct spool_rcpt *r = &msg->rcpts[i];
		const char *at;
		enum outcome o;

		if (r->done || r->failed)
			continue;
		at = strrchr(r->addr, '@');
		if (at != NULL && cfg != NULL &&
		    config_is_local_domain(cfg, at + 1, strlen(at + 1))) {
			o = deliver_local(cfg, it, i, r->addr,
					  (size_t)(at - r->addr), at + 1,
					  strlen(at + 1));
		} else if (kind[i] == OUT_REMOTE || cfg == NULL || !remote_enabled(d)) {
			/* recorded from a job in this pass, or no engine yet
			 * (start-up: it wakes the queue when it is there) */
			o = OUT_REMOTE;
		} else {
			/* Non-local: a job, unless its deferral is not due. */
			o = OUT_REMOTE;
			if (r->attempts == 0 || r->next_try <= now || force) {
				if (want == NULL)
					want = xcalloc(n, 1);
				want[i] = 1;
				nwant++;
			}
		}
		if (o == OUT_REMOTE) {
			kind[i] = OUT_REMOTE;
			if (!(want != NULL && want[i]) &&
			    (remote_next == 0 || r->next_try < remote_next))
				remote_next = r->next_try;
			left++;
			continue;
		}
		if (o == OUT_CORRUPT) {
			p->corrupt = 1;	/* set aside whole (item_pass) */
			break;
		}
		if (o == OUT_DONE) {
			r->done = 1;
			p->rf[i] |= RF_PASS_DONE;
			p->newly_done++;
			continue;
		}
		if (o == OUT_PERMANENT || o == OUT_GONE) {	/* bounced after the pass */
			deliver_report_fail(cfg, msg, i, outcome_cond(o), NULL, NULL, NULL,
					    &p->recs);
			continue;
		}
		kind[i] = (unsigned char)o;
		if (o == OUT_FAILED || o == OUT_QUOTA)
			backoff = 1;
		else if (o == OUT_SPACE)
			space = 1;
		left++;
	}
	it->wake_gen = gen;
	if (nwant > 0 && !p->corrupt) {
		const char *why = NULL;

		it->jobs = remote_plan(cfg, msg, want, &why);
		if (it->jobs == NULL) {
			/* the spool file cannot be opened now: soon again */
			backoff = 1;
			for (size_t i = 0; i < n; i++)
				if (want[i])
					kind[i] = OUT_FAILED;
		}
	}
	free(want);
	if (cfg != NULL)
		config_unref(&cfg);
	if (left == 0 || p->corrupt) {
		free(kind);
		return 1;
	}
	/* Local failures back off from 1 s, doubling to 5 min; below the
	 * space floor at most DELIVER_RETRY_SPACE_S, so delivery resumes soon
	 * after space returns; with only non-local or permanently failing
	 * recipients left, wait the longest (a reload may change that, and
	 * wakes every waiting message). */
	if (backoff || space) {
		retry = item_backoff(it);
		if (space && retry > DELIVER_RETRY_SPACE_S)
			retry = DELIVER_RETRY_SPACE_S;
	} else {
		retry = DELIVER_RETRY_MAX_S;
		it->backoff_s = 0;
	}
	/* Outbound deferrals wait for their own schedule: the earliest. */
	if (remote_next > 0) {
		int64_t wait = remote_next > now ? remote_next - now : 1;

		if (!(backoff || space) || (uint64_t)wait < retry)
			retry = wait > UINT16_MAX ? UINT16_MAX : (unsigned)wait;
	}
	/* The state log: who is done (flushed, so no restart tries them
	 * again), who waits, how often tried, until when. A message whose
	 * every recipient is done needs none: its file goes. The records are
	 * appended once the batch's copies are flushed (item_pass). */
	int64_t next = (int64_t)time(NULL) + (int64_t)retry;
	for (size_t i = 0; i < msg->nrcpts; i++) {
		struct spool_rcpt *r = &msg->rcpts[i];
		int rc = 0;

		if (r->done && !(p->rf[i] & RF_RECORDED)) {
			rc = r->last != NULL ? spool_state_done_detail(&p->recs, i, r->last)
					     : spool_state_done(&p->recs, i);
		} else if (!r->done && !r->failed && kind[i] != OUT_REMOTE) {
			r->attempts++;
			r->next_try = next;
			rc = deliver_report_defer(msg, i, r->attempts, next,
						  outcome_cond(kind[i]), NULL, NULL, NULL,
						  &p->recs);
		}
		if (rc < 0)
			break;	/* past 16 MiB of records: the rest next time */
	}
	for (size_t i = 0; i < n; i++)
		p->rf[i] |= (unsigned char)(kind[i] << RF_KIND_SHIFT);
	it->retry_s = (uint16_t)retry;
	free(kind);
	return 0;
}

/* After the pass's records are appended: who waits, and why. */
static void
item_log_deferred(struct deliver_item *it)
{
	struct spool_msg *msg = it->msg;
	const unsigned char *rf = it->pass->rf;

	for (size_t i = 0; i < msg->nrcpts; i++) {
		if (msg->rcpts[i].done || msg->rcpts[i].failed || RF_KIND(rf[i]) == OUT_REMOTE)
			continue;
		log_deferred(msg, i, it->retry_s, outcome_cause(RF_KIND(rf[i])));
	}
}

/* ---- jobs on the pool ------------------------------------------------ */

#define ITEM_NEXT(it) ((struct deliver_item *)(it)->wj.next)

/* A flush failed: nothing the batch wrote counts; tried again soon. */
static void
item_unflushed(struct deliver_item *it, const struct sync_set *ss)
{
	struct deliver_pass *p = it->pass;
	struct deliver_maildir_result res = {
		.path = ss->fail_path != NULL ? ss->fail_path : (char *)"-",
		.op = "syncfs", .err = ss->err,
	};

	for (size_t i = 0; i < it->msg->nrcpts; i++) {
		if (!(p->rf[i] & RF_PASS_DONE))
			continue;
		it->msg->rcpts[i].done = 0;
		p->rf[i] = (unsigned char)((p->rf[i] & ~((0xfu << RF_KIND_SHIFT) | RF_PASS_DONE)) |
					   (OUT_FAILED << RF_KIND_SHIFT));
		log_write_failed(it->msg, i, &res);
	}
	it->flags &= (uint8_t)~IF_FINISHED;
	p->newly_done = 0;
	it->retry_s = DELIVER_RETRY_MIN_S;
	buf_fini(&p->recs);
}

/* The message of a waiting entry, read back from its spool file (head and
 * tail). 0; -1: unreadable now, retried with back-off; -2: gone (removed,
 * or set aside as damaged), the entry leaves the queue. */
static int
item_load(struct deliver_item *it)
{
	int rc = 0;

	if (it->msg == NULL)
		rc = spool_reload(it->d->sp, it->qid, &it->msg);
	if (rc == 0)	/* look for a copy an earlier attempt may have left */
		it->msg->recovered = (it->flags & (IF_RECOVERED | IF_TRIED)) != 0;
	return rc;
}

/* After a pass: the entry goes back to its few bytes. */
static void
item_unload(struct deliver_item *it)
{
	struct deliver_pass *p = it->pass;

	it->flags |= (uint8_t)p->flags;
	remote_jobs_free(&it->results);	/* recorded */
	free(p->rf);
	buf_fini(&p->recs);
	it->pass = NULL;
	spool_msg_free(&it->msg);
}

/* After a flushed pass: failures, expiry, delay warnings and success
 * DSNs (deliver_report.c); whether the message may leave the spool. */
static void
item_report(struct deliver_item *it)
{
	struct config *cfg = deliver_config(it->d);
	unsigned retry = it->retry_s;

	if (cfg == NULL)
		return;
	if (deliver_report(it->d->sp, cfg, it->msg, &it->pass->recs, &retry,
			   &it->pass->reported))
		it->flags |= IF_FINISHED;
	else
		it->flags &= (uint8_t)~IF_FINISHED;
	it->retry_s = (uint16_t)retry;
	config_unref(&cfg);
}

/* One pass over the items from first to end (at most DELIVER_PASS_MAX):
 * each is read back and delivered, the Maildir copies written unflushed;
 * one syncfs per filesystem makes them all durable; only then are
 * finished spool files removed and the state records of the others
 * appended (and flushed the same way). */
static void
item_pass(struct deliver_item *first, struct deliver_item *end, struct deliver_pass *passes)
{
	struct sync_set ss = { 0 }, ss2 = { 0 };
	struct deliver_item *it;
	size_t k = 0;
	int ok;

	for (it = first; it != end; it = ITEM_NEXT(it)) {
		int rc;

		it->pass = &passes[k++];
		it->pass->ss = &ss;
		it->flags &= (uint8_t)~IF_FINISHED;
		if (it->passes < UINT16_MAX)
			it->passes++;
		/* an operator's action waits: item_done does it */
		rc = deliver_admin_skip(it->d->admin, &it->adm, it->results != NULL) ? -3
			: item_load(it);
		if (rc == -3) {
			it->pass->unread = 1;
		} else if (rc == -2) {
			it->flags |= IF_FINISHED;	/* nothing left to deliver */
			it->pass->unread = 1;
		} else if (rc < 0) {
			it->pass->unread = 1;
			it->retry_s = (uint16_t)item_backoff(it);
		} else if (deliver_item_run(it->d, it)) {
			it->flags |= IF_FINISHED;
		}
	}
	ok = sync_run(&ss) == 0;
	for (it = first; it != end; it = ITEM_NEXT(it)) {
		struct deliver_pass *p = it->pass;

		if (p->unread)
			continue;
		if (!ok && p->newly_done > 0)
			item_unflushed(it, &ss);
		if ((it->flags & IF_FINISHED) && p->corrupt) {
			spool_quarantine(it->d->sp, it->qid, "data checksum mismatch");
			continue;
		}
		item_report(it);
		if (it->flags & IF_FINISHED) {
			(void)spool_remove(it->d->sp, it->qid);
			continue;
		}
		if (spool_append_state(it->msg, &p->recs, 0) == 0 &&
		    (p->newly_done > 0 || p->reported) && it->msg->file != NULL) {
			sync_add(&ss2, it->msg->file);
			for (size_t i = 0; i < it->msg->nrcpts; i++)
				if (p->rf[i] & RF_PASS_DONE)
					p->rf[i] |= RF_RECORDED;
		}
		buf_fini(&p->recs);
	}
	/* A lost done record only means a repeat that finds its copy. */
	(void)sync_run(&ss2);
	for (it = first; it != end; it = ITEM_NEXT(it)) {
		if (!(it->flags & IF_FINISHED) && !it->pass->unread)
			item_log_deferred(it);
		item_unload(it);
	}
	sync_fini(&ss);
	sync_fini(&ss2);
}

/* A batch: every ready delivery at once (the class is WORKPOOL_BATCH),
 * delivered in passes of at most DELIVER_PASS_MAX messages. */
static void
item_run(struct workpool_job *first)
{
	struct deliver_item *it = (struct deliver_item *)first;
	struct deliver_pass *passes = xcalloc(DELIVER_PASS_MAX, sizeof(*passes));

	while (it != NULL) {
		struct deliver_item *end = it;

		for (size_t k = 0; end != NULL && k < DELIVER_PASS_MAX; k++)
			end = ITEM_NEXT(end);
		memset(passes, 0, DELIVER_PASS_MAX * sizeof(*passes));
		item_pass(it, end, passes);
		it = end;
	}
	free(passes);
}

/* On the worker, after item_run: the item is ours again. */
static void
item_done(struct loop *loop, struct workpool_job *wj)
{
	struct deliver_item *it = (struct deliver_item *)wj;
	struct deliver *d = it->d;

	(void)loop;
	if (it->flags & IF_FINISHED) {	/* every recipient done, or gone */
		item_free(&it);
		d->pending--;
		return;
	}
	int act = deliver_admin_done(d->admin, &it->adm);	/* hold, delete, bounce */
	if (act == 1) {
		item_free(&it);
		d->pending--;
		return;
	}
	if (act == 2) {
		remote_jobs_free(&it->jobs);
		it->retry_s = 0;
	}
	/* Outbound jobs: the item waits for them, off the heap. */
	if (it->jobs != NULL && remote_send(d, it) == 0)
		return;
	remote_jobs_free(&it->jobs);
	/* Deferred: back in the pool, due after its back-off. A stopped
	 * class (shutdown) leaves it in the spool for the next start. */
	/* A reload during the pass found the item off the heap: due now. */
	if (it->wake_gen != atomic_load(&d->wake_gen))
		it->retry_s = 0;
	if (workpool_submit_after(d->wp, d->cls, &it->wj, NULL,
				  (uint64_t)it->retry_s * 1000u) < 0) {
		item_free(&it);
		d->pending--;
	}
}

/* The class stopped (shutdown): the message stays in the spool. */
static void
item_cancel(struct workpool_job *wj)
{
	struct deliver_item *it = (struct deliver_item *)wj;
	struct deliver *d = it->d;

	item_free(&it);
	d->pending--;
}

struct deliver *
deliver_new(struct spool *sp, struct config *cfg, struct workpool *wp, unsigned threads)
{
	struct deliver *d = xcalloc(1, sizeof(*d));

	quota_init();
	d->sp = sp;
	d->cfg = cfg != NULL ? config_ref(cfg) : NULL;
	d->wp = wp;
	pthread_mutex_init(&d->cfg_mu, NULL);
	pthread_mutex_init(&d->mu, NULL);
	/* BATCH: a worker takes every ready delivery, so one syncfs makes a
	 * whole batch durable (item_run). */
	d->cls = workpool_class_new(wp, "deliver", threads > 0 ? threads : 1, WORKPOOL_BATCH);
	if (d->cls < 0) {
		struct kv kvs[] = {
			KV("subsystem", "deliver"), KV("path", "-"),
			KV("errno", "EAGAIN"), KV("err", strerror(EAGAIN)),
		};

		catalog_log(COND_STARTUP_INIT_FAILED, NULL, kvs, ARRAY_LEN(kvs));
		deliver_free(&d);
		return NULL;
	}
	d->admin = deliver_admin_new(d, sp, wp, d->cls);
	return d;
}

void
deliver_free(struct deliver **dp)
{
	struct deliver *d = *dp;

	if (d == NULL)
		return;
	/* Running deliveries finish; queued and deferred ones are cancelled
	 * (item_cancel): what is left stays in the spool for the next start. */
	if (d->cls >= 0)
		workpool_class_stop(d->wp, d->cls);
	if (d->cfg != NULL)
		config_unref(&d->cfg);
	deliver_admin_free(&d->admin);
	pthread_mutex_destroy(&d->cfg_mu);
	pthread_mutex_destroy(&d->mu);
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
	/* A reload may have made room (a lower space floor, a larger quota),
	 * made a domain local or changed a route: every waiting message is
	 * due now, outbound deferrals included. */
	atomic_fetch_add(&d->wake_gen, 1);
	workpool_class_wake(d->wp, d->cls);
}

/* When a recovered message is due. Its local recipients are due at once,
 * whatever next try the state log recorded (a restart, like a reload,
 * may have changed what can be delivered); outbound deferrals keep their
 * retry schedule across restarts (docs/design.md, Durability). */
static uint64_t
recovered_delay(struct deliver *d, const struct spool_msg *msg)
{
	struct config *cfg = deliver_config(d);
	int64_t now = (int64_t)time(NULL), first = 0;

	for (size_t i = 0; i < msg->nrcpts; i++) {
		const struct spool_rcpt *r = &msg->rcpts[i];
		const char *at = strrchr(r->addr, '@');

		if (r->done || r->failed)
			continue;
		if (r->attempts == 0 || r->next_try <= now || cfg == NULL || at == NULL ||
		    config_is_local_domain(cfg, at + 1, strlen(at + 1))) {
			first = now;
			break;
		}
		if (first == 0 || r->next_try < first)
			first = r->next_try;
	}
	if (cfg != NULL)
		config_unref(&cfg);
	return first > now ? (uint64_t)(first - now) * 1000u : 0;
}

void
deliver_enqueue(struct spool_msg *msg, void *arg)
{
	struct deliver *d = arg;
	struct deliver_item *it = xcalloc(1, sizeof(*it));

	workpool_job_init(&it->wj, item_run, item_done, item_cancel);
	it->d = d;
	it->wake_gen = atomic_load(&d->wake_gen);
	memcpy(it->qid, msg->qid, sizeof(it->qid));
	it->qid[sizeof(it->qid) - 1] = '\0';
	it->adm = (struct deliver_admin_ent){ .wj = &it->wj, .qid = it->qid };
	deliver_admin_add(d->admin, &it->adm);
	uint64_t delay_ms = 0;
	if (msg->recovered) {
		/* Recovery read and checked it: the index entry is enough, the
		 * pass reads it back (item_load). */
		it->flags = IF_RECOVERED;
		delay_ms = recovered_delay(d, msg);
		spool_msg_free(&msg);
	} else {
		it->msg = msg;	/* a new commit: due now, no second read */
	}
	d->pending++;
	if (workpool_submit_after(d->wp, d->cls, &it->wj, NULL, delay_ms) < 0) {
		item_free(&it);		/* shutdown: it stays in the spool */
		d->pending--;
	}
}

void
deliver_set_outbound(struct deliver *d, struct outbound *ob)
{
	pthread_mutex_lock(&d->mu);
	d->ob = ob;
	pthread_mutex_unlock(&d->mu);
	if (ob != NULL)	/* what waited for a transport may go now */
		workpool_class_wake(d->wp, d->cls);
}

unsigned long
deliver_pending(struct deliver *d)
{
	return d->pending;
}

struct deliver_admin *
deliver_admin_of(struct deliver *d)
{
	return d->admin;
}
