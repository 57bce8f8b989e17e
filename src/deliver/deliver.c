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
 * Non-local recipients have no transport yet (outbound delivery is a later
 * issue): they stay queued, retried at the maximum interval, and
 * DELIVERY-DEFERRED is logged once per recipient.
 *
 * Before each local write: an earlier copy is looked for (after a crash or
 * a failed attempt), then the mail filesystem's free-space floor
 * (deliver_space.c; under it, retried every DELIVER_RETRY_SPACE_S at most),
 * then the account's quota is reserved (deliver_quota.c; over it,
 * DELIVERY-LOCAL-QUOTA and back-off). No outcome drops a recipient: a
 * message leaves the spool only when every recipient is in its Maildir
 * or failed for good with its DSN sent (item_report, deliver_report.c).
 * A reload makes every waiting message due at once.
 */
#include "deliver.h"

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

#define DELIVER_RETRY_MIN_S 1u
#define DELIVER_RETRY_MAX_S 300u
#define DELIVER_RETRY_SPACE_S 15u	/* under the space floor */
/* A delivery batch waits this long for a commit round's flush to cover its
 * copies before it flushes on its own (store_flush_lazy). */
#define DELIVER_FLUSH_WAIT_MS 50u
/* Messages read back and delivered together: the bound on envelopes in
 * memory per worker (one syncfs per pass). */
#define DELIVER_PASS_MAX 256u

/* The filesystems a batch of deliveries wrote to: one syncfs each makes
 * the whole batch durable (Maildir copies, links, state records). */
#define SYNC_SET_MAX 8
struct sync_set {
	dev_t dev[SYNC_SET_MAX];
	char *path[SYNC_SET_MAX];	/* owned: a folder on that filesystem */
	size_t n;
	int failed;			/* a syncfs (or a stat) failed */
	int err;
	char *fail_path;		/* borrowed from path[] */
};

/* Per message, kept while it waits (struct deliver_item.flags). */
#define IF_RECOVERED 0x01u	/* read back at start: look for earlier copies */
#define IF_TRIED 0x02u		/* a write was tried in an earlier pass */
#define IF_PERM 0x08u		/* permanent failures logged */
#define IF_SPACE 0x10u		/* QUEUE-DISK-FULL logged */
#define IF_FINISHED 0x20u	/* after a pass: it leaves the queue */

/* Per recipient, during a pass only. */
#define RF_RECORDED 0x01u	/* done is in the state log */
#define RF_PASS_DONE 0x02u	/* done in this pass */
#define RF_KIND_SHIFT 4		/* enum outcome of this pass (< 16) */
#define RF_KIND(f) ((f) >> RF_KIND_SHIFT)

/* What a pass needs besides the message; gone after it. */
struct deliver_pass {
	unsigned char *rf;		/* per recipient: RF_* flags */
	struct sync_set *ss;		/* what to flush */
	struct buf recs;		/* state records to append after the flush */
	int newly_done;			/* recipients done in this pass */
	int reported;			/* failed or dsn records to flush */
	int corrupt;			/* the data failed its checksum */
	int unread;			/* the spool file could not be read now */
	unsigned flags;			/* IF_* learnt, merged at the end */
};

/* The queue's index entry: all a waiting message holds in memory. Its
 * next attempt is the key of wj's place in the pool's heap. */
struct deliver_item {
	struct workpool_job wj;		/* first: the pool hands it back */
	struct deliver *d;
	struct spool_msg *msg;		/* owned: during a pass (and from a
					 * commit to its first pass), else NULL */
	struct deliver_pass *pass;	/* during a pass, else NULL */
	char qid[SPOOL_QID_SIZE];
	uint16_t backoff_s;		/* last interval, 0 before the first */
	uint16_t retry_s;		/* after a deferral: the delay */
	uint16_t passes;		/* attempts in this run (saturating) */
	uint8_t flags;			/* IF_* */
	uint16_t inflight;		/* outbound jobs not back yet (d->mu) */
	unsigned wake_gen;		/* d->wake_gen at its last pass */
	struct outbound_job *jobs;	/* planned by the pass, sent by item_done */
	struct outbound_job *results;	/* back from the engine (d->mu) */
};

struct deliver {
	struct spool *sp;		/* borrowed */
	pthread_mutex_t cfg_mu;		/* guards cfg */
	struct config *cfg;		/* a reference */
	struct workpool *wp;		/* borrowed */
	int cls;			/* the "deliver" class */
	atomic_ulong pending;		/* queued + waiting + in progress */
	pthread_mutex_t mu;		/* guards ob and items' inflight, results */
	struct outbound *ob;		/* NULL: no outbound delivery (yet) */
	atomic_uint wake_gen;		/* +1 per reload: every deferral due */
};

static void
item_free(struct deliver_item **ip)
{
	struct deliver_item *it = *ip;

	if (it == NULL)
		return;
	spool_msg_free(&it->msg);
	remote_jobs_free(&it->jobs);
	remote_jobs_free(&it->results);
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

/* ---- flushing a batch ------------------------------------------------- */

static void
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

enum outcome {
	OUT_DONE,		/* in the Maildir */
	OUT_FAILED,		/* write failed: retry with back-off */
	OUT_QUOTA,		/* over quota: retry with back-off */
	OUT_SPACE,		/* under the free-space floor: retry soon */
	OUT_PERMANENT,		/* no retry can help: fails, bounces */
	OUT_CORRUPT,		/* the spool file's data failed its checksum */
	OUT_GONE,		/* the local account no longer exists: bounces */
	OUT_REMOTE,		/* outbound: sent in a job, or recorded from one */
};
_Static_assert(OUT_REMOTE < 16, "an outcome fits the top bits of a recipient's flags");

static enum cond_id
outcome_cond(enum outcome o)
{
	switch (o) {
	case OUT_FAILED:
		return COND_DELIVERY_LOCAL_WRITE_FAILED;
	case OUT_QUOTA:
		return COND_DELIVERY_LOCAL_QUOTA;
	case OUT_SPACE:
		return COND_QUEUE_DISK_FULL;
	case OUT_PERMANENT:
		return COND_DELIVERY_LOCAL_PERMANENT;
	case OUT_GONE:
		return COND_DELIVERY_LOCAL_GONE;
	default:
		return COND_DELIVERY_DEFERRED;
	}
}

static const char *
outcome_cause(enum outcome o)
{
	return catalog_get(outcome_cond(o))->id;
}

/* 1 if local@domain was an account when accepted and is no longer one
 * (removed from local.accounts since): the postmaster mailbox, which
 * needs no account, never is; without an accounts file, nobody is. */
static int
local_account_gone(const struct config *cfg, const struct spool_msg *msg, size_t i,
		   const char *local, size_t local_len, const char *domain, size_t domain_len)
{
	if (cfg->accounts == NULL || cfg->local_accounts == NULL || cfg->local_accounts[0] == '\0' ||
	    directory_find(cfg->accounts, local, local_len, domain, domain_len) != NULL ||
	    (local_len == 10 && strncasecmp(local, "postmaster", 10) == 0))
		return 0;
	struct log_ctx ctx = { .qid = msg->qid };
	struct kv kvs[] = { KVA("rcpt", msg->rcpts[i].addr, strlen(msg->rcpts[i].addr)) };

	catalog_log(COND_DELIVERY_LOCAL_GONE, &ctx, kvs, ARRAY_LEN(kvs));
	return 1;
}

static void
log_delivered(const struct spool_msg *msg, size_t i,
	      const struct deliver_maildir_result *res)
{
	struct log_ctx ctx = { .qid = msg->qid };
	const char *addr = msg->rcpts[i].addr;
	struct kv kvs[] = {
		KVA("rcpt", addr, strlen(addr)),
		KV("path", res->path), KVU("size", res->size),
	};

	catalog_log(COND_DELIVERY_SUCCESS, &ctx, kvs, ARRAY_LEN(kvs));
}

static void
log_write_failed(const struct spool_msg *msg, size_t i,
		 const struct deliver_maildir_result *res)
{
	struct log_ctx ctx = { .qid = msg->qid };
	const char *addr = msg->rcpts[i].addr;
	struct kv kvs[] = {
		KVA("rcpt", addr, strlen(addr)),
		KV("path", res->path), KV("op", res->op),
		KV("errno", log_errno_name(res->err)),
		KV("err", strerror(res->err)),
	};

	catalog_log(COND_DELIVERY_LOCAL_WRITE_FAILED, &ctx, kvs, ARRAY_LEN(kvs));
}

/* Tries recipient i locally (msg->recovered says a crash or an earlier
 * attempt may have left the copy in place). Logs what happened. */
static enum outcome
deliver_local(const struct config *cfg, struct deliver_item *it, size_t i,
	      const char *local, size_t local_len, const char *domain,
	      size_t domain_len)
{
	struct spool_msg *msg = it->msg;
	const struct spool_rcpt *r = &msg->rcpts[i];
	struct log_ctx ctx = { .qid = msg->qid };
	struct deliver_maildir_result res;
	struct quota_report qr;
	struct space_report sr;
	const struct account *acct;
	char hostbuf[256];
	const char *host = cfg->hostname;
	uint64_t size;
	char *dir;
	int rc, recovered;

	if (host == NULL || *host == '\0') {
		if (gethostname(hostbuf, sizeof(hostbuf)) < 0)
			hostbuf[0] = '\0';
		hostbuf[sizeof(hostbuf) - 1] = '\0';
		host = hostbuf[0] != '\0' ? hostbuf : "localhost";
	}
	dir = deliver_maildir_dir(cfg->server_mail_root, local, local_len,
				  domain, domain_len);
	size = deliver_maildir_size(msg, i);
	if (dir == NULL || size == 0) {
		if (!(it->flags & IF_PERM)) {
			struct kv kvs[] = {
				KVA("rcpt", r->addr, strlen(r->addr)),
				KV("path", cfg->server_mail_root),
				KV("op", dir == NULL ? "path" : "header"),
				KV("err", dir == NULL
					  ? "the address cannot name a Maildir folder"
					  : "CR or LF in an envelope address"),
			};

			it->pass->flags |= IF_PERM;
			catalog_log(COND_DELIVERY_LOCAL_PERMANENT, &ctx, kvs,
				    ARRAY_LEN(kvs));
		}
		free(dir);
		return OUT_PERMANENT;
	}

	if (local_account_gone(cfg, msg, i, local, local_len, domain, domain_len)) {
		free(dir);
		return OUT_GONE;
	}

	/* 1. Already there (a repeat after a crash, or after a failure that
	 * came after the link): done, and counted by the quota scan. */
	if (msg->recovered) {	/* set by item_load: recovered or tried */
		rc = deliver_maildir_find(dir, host, msg, i, &res);
		if (rc == 1) {
			sync_add(it->pass->ss, dir);	/* found after a crash: maybe unflushed */
			log_delivered(msg, i, &res);
			deliver_maildir_result_fini(&res);
			free(dir);
			return OUT_DONE;
		}
		if (rc < 0) {
			log_write_failed(msg, i, &res);
			deliver_maildir_result_fini(&res);
			free(dir);
			return OUT_FAILED;
		}
		deliver_maildir_result_fini(&res);
	}

	/* 2. The free-space floor of the mail filesystem. */
	if (space_check(NULL, cfg->server_mail_root, cfg->limits_min_free_space,
			size, &sr) != COND__COUNT) {
		if (!(it->flags & IF_SPACE)) {
			struct kv kvs[] = {
				KV("fs", sr.fs), KVU("free_bytes", sr.free_bytes),
				KVU("free_inodes", sr.free_inodes),
				KVU("floor", sr.floor), KVU("need", sr.need),
			};

			it->flags |= IF_SPACE;
			catalog_log(COND_QUEUE_DISK_FULL, &ctx, kvs,
				    ARRAY_LEN(kvs));
		}
		free(dir);
		return OUT_SPACE;
	}

	/* 3. The account's quota: reserve, write, then settle. */
	acct = cfg->accounts != NULL
		       ? directory_find(cfg->accounts, local, local_len, domain,
					domain_len)
		       : NULL;
	if (quota_reserve(cfg->server_mail_root, acct, r->addr, size, &qr) !=
	    COND__COUNT) {
		struct kv kvs[] = {
			KVA("rcpt", r->addr, strlen(r->addr)),
			KV("kind", qr.kind), KVU("used", qr.used),
			KVU("quota", qr.quota), KVU("size", qr.size),
		};

		catalog_log(COND_DELIVERY_LOCAL_QUOTA, &ctx, kvs, ARRAY_LEN(kvs));
		free(dir);
		return OUT_QUOTA;
	}
	/* Step 1 looked already: spare the Maildir writer a second cur/ scan. */
	recovered = msg->recovered;
	msg->recovered = 0;
	it->pass->flags |= IF_TRIED;
	rc = deliver_maildir_write(dir, host, msg, i, &res);
	msg->recovered = recovered;
	quota_finish(cfg->server_mail_root, r->addr, size, rc == 0 && !res.existed);
	if (rc == 0)
		sync_add(it->pass->ss, dir);
	if (rc == 0)
		log_delivered(msg, i, &res);
	else
		log_write_failed(msg, i, &res);
	int res_err = res.err;
	deliver_maildir_result_fini(&res);
	free(dir);
	if (rc < 0 && res_err == EBADMSG)
		return OUT_CORRUPT;	/* no copy was linked: the check comes first */
	return rc == 0 ? OUT_DONE : OUT_FAILED;
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

/* The next back-off interval: from 1 s, doubling to 5 min. */
static unsigned
item_backoff(struct deliver_item *it)
{
	unsigned retry = it->backoff_s == 0 ? DELIVER_RETRY_MIN_S : it->backoff_s * 2u;

	if (retry > DELIVER_RETRY_MAX_S)
		retry = DELIVER_RETRY_MAX_S;
	it->backoff_s = (uint16_t)retry;
	return retry;
}

/* ---- outbound ------------------------------------------------------------ */

static int
remote_enabled(struct deliver *d)
{
	int on;

	pthread_mutex_lock(&d->mu);
	on = d->ob != NULL;
	pthread_mutex_unlock(&d->mu);
	return on;
}

/* The results of the item's outbound jobs, recorded in this pass: done
 * (flushed with the pass's other done records), failed, or deferred
 * until the retry schedule's next interval. */
static void
remote_results(struct deliver_item *it, struct config *cfg, unsigned char *kind, int64_t now)
{
	struct spool_msg *msg = it->msg;
	struct deliver_pass *p = it->pass;

	for (struct outbound_job *job = it->results; job != NULL; job = job->next) {
		if (job->corrupt)
			p->corrupt = 1;
		remote_log_job(job);
		for (size_t k = 0; k < job->n; k++) {
			const struct outbound_result *res = &job->res[k];
			size_t i = job->idx[k];
			struct spool_rcpt *r;
			unsigned retry = 0;

			if (i >= msg->nrcpts)
				continue;
			r = &msg->rcpts[i];
			if (r->done || r->failed)
				continue;	/* recorded already */
			if (res->kind == OUTBOUND_DONE) {
				r->done = 1;
				p->rf[i] |= RF_PASS_DONE;
				p->newly_done++;
				/* "relayed" for NOTIFY=SUCCESS, unless the peer
				 * took the DSN duty over (it offered DSN) */
				deliver_report_relayed(msg, i, res->relay, res->reply, res->dsn_offered,
						       &p->recs);
			} else if (res->kind == OUTBOUND_FAILED) {
				deliver_report_fail(cfg, msg, i, res->cond, res->status, res->relay,
						    res->reply, &p->recs);
			} else {
				r->attempts++;
				retry = cfg != NULL ? remote_retry_delay(cfg, r->attempts) : 300;
				r->next_try = now + (int64_t)retry;
				(void)deliver_report_defer(msg, i, r->attempts, r->next_try, res->cond,
							   res->status, res->relay, res->reply,
							   &p->recs);
				kind[i] = OUT_REMOTE;
			}
			remote_log(job, k, retry, now);
		}
	}
}

/* On the engine's loop: a job is back. The last one sends the item to
 * the pool again, where a pass records the results. */
static void
remote_job_done(struct outbound_job *job)
{
	struct deliver_item *it = job->owner;
	struct deliver *d = it->d;
	int last, on;

	pthread_mutex_lock(&d->mu);
	job->next = it->results;
	it->results = job;
	last = --it->inflight == 0;
	on = d->ob != NULL;
	pthread_mutex_unlock(&d->mu);
	if (!last)
		return;
	/* Stopping: nothing is recorded; the spool keeps the message. */
	if (!on || workpool_submit_after(d->wp, d->cls, &it->wj, NULL, 0) < 0) {
		item_free(&it);
		d->pending--;
	}
}

/* After a pass planned jobs: they go to the engine; the item waits for
 * them (remote_job_done), off the pool's heap. */
static int
remote_send(struct deliver *d, struct deliver_item *it)
{
	struct outbound_job *jobs = it->jobs, *job;
	struct outbound *ob;
	unsigned n = 0;

	pthread_mutex_lock(&d->mu);
	ob = d->ob;
	for (job = jobs; job != NULL; job = job->next)
		n++;
	if (ob != NULL)
		it->inflight = (uint16_t)n;
	pthread_mutex_unlock(&d->mu);
	if (ob == NULL)
		return -1;
	it->jobs = NULL;
	while (jobs != NULL) {
		job = jobs;
		jobs = job->next;
		job->next = NULL;
		job->owner = it;
		job->done = remote_job_done;
		outbound_submit(ob, job);
	}
	return 0;
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
		rc = item_load(it);
		if (rc == -2) {
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
	/* Outbound jobs: the item waits for them, off the heap. */
	if (it->jobs != NULL && remote_send(d, it) == 0)
		return;
	remote_jobs_free(&it->jobs);
	/* Deferred: back in the pool, due after its back-off. A stopped
	 * class (shutdown) leaves it in the spool for the next start. */
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
