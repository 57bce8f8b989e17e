/*
 * deliver_quota.c - mailbox quotas and the usage cache (see
 * deliver_quota.h).
 *
 * Owns a hash table of entries, one per Maildir folder that has been asked
 * about, and the scan jobs that fill them (the worker pool's "scan"
 * class, core/workpool.h; each entry is its own job, queued at most once). One mutex guards the
 * table and every entry; nothing slow runs under it (scans read the
 * folders unlocked).
 *
 * Usage of an entry = base + inflight. base is the last scan plus every
 * change reported since (deliveries, POP3 deletions); inflight is what
 * deliveries have reserved but not yet finished, so two delivery threads
 * cannot both squeeze into the last free bytes. A scan that overlapped a
 * change (the entry's change counter moved) may have missed it and is
 * done again (at most QUOTA_SCAN_TRIES times; after that the next
 * periodic rescan puts it right).
 */
#include "deliver_quota.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "buf.h"
#include "workpool.h"
#include "deliver_maildir.h"

#define QUOTA_RESCAN_MS 60000u	/* a known entry is rescanned after this */
#define QUOTA_SCAN_TRIES 3
#define QUOTA_BUCKETS_MIN 256u

struct quota_entry {
	struct workpool_job wj;		/* first: its scan job */
	struct quota_entry *next;	/* hash chain */
	char *dir;			/* owned: the Maildir folder (key) */
	uint64_t hash;
	int known;			/* base_* hold a scan's result */
	int scanning;			/* a thread is scanning it now */
	int queued;			/* its scan job is in the pool */
	uint64_t base_bytes, base_msgs;
	uint64_t inflight_bytes, inflight_msgs;
	uint64_t changes;		/* bumped by every change of base */
	uint64_t scanned_ms;		/* when the last scan finished */
};

static struct {
	pthread_once_t once;
	pthread_mutex_t mu;
	pthread_cond_t scanned;		/* some scan finished */
	struct quota_entry **buckets;
	size_t nbuckets, count;
	struct workpool *wp;		/* borrowed; NULL: no scan class */
	int cls;
} q = { .once = PTHREAD_ONCE_INIT, .mu = PTHREAD_MUTEX_INITIALIZER,
	.scanned = PTHREAD_COND_INITIALIZER };

static uint64_t
quota_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* FNV-1a, 64 bits. */
static uint64_t
quota_hash(const char *s)
{
	uint64_t h = 14695981039346656037u;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211u;
	}
	return h;
}

/* ---- scanning ----------------------------------------------------------- */

/* ",S=<digits>" in a Maildir name (before any ":2," flags). */
static int
quota_name_size(const char *name, uint64_t *out)
{
	const char *p = strstr(name, ",S=");
	uint64_t v = 0;
	int digits = 0;

	if (p == NULL)
		return -1;
	for (p += 3; *p >= '0' && *p <= '9'; p++, digits++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (digits == 0 || (*p != '\0' && *p != ',' && *p != ':'))
		return -1;
	*out = v;
	return 0;
}

static int
quota_scan_sub(const char *maildir, const char *sub, uint64_t *bytes,
	       uint64_t *msgs)
{
	char *path = xasprintf("%s/%s", maildir, sub);
	DIR *d = opendir(path);
	struct dirent *de;

	if (d == NULL) {
		free(path);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		uint64_t size;

		if (de->d_name[0] == '.')
			continue;
		if (quota_name_size(de->d_name, &size) < 0) {
			struct stat st;
			char *f = xasprintf("%s/%s", path, de->d_name);
			int rc = stat(f, &st);

			free(f);
			if (rc < 0 || !S_ISREG(st.st_mode))
				continue;	/* gone meanwhile, or not mail */
			size = (uint64_t)st.st_size;
		}
		*bytes += size;
		*msgs += 1;
	}
	closedir(d);
	free(path);
	return 0;
}

int
quota_scan_dir(const char *maildir, uint64_t *bytes_out, uint64_t *messages_out)
{
	uint64_t bytes = 0, msgs = 0;
	int ok = 0;

	if (quota_scan_sub(maildir, "new", &bytes, &msgs) == 0)
		ok = 1;
	if (quota_scan_sub(maildir, "cur", &bytes, &msgs) == 0)
		ok = 1;
	*bytes_out = bytes;
	*messages_out = msgs;
	return ok ? 0 : -1;
}

/* Scans e's folder (called with q.mu held and e not being scanned;
 * returns with q.mu held and the entry known). Meanwhile the old values
 * stay in use. A folder that does not exist yet is an empty mailbox. */
static void
quota_scan_locked(struct quota_entry *e)
{
	uint64_t started = quota_now_ms();

	e->scanning = 1;
	for (int tries = 0;; tries++) {
		uint64_t before = e->changes, bytes, msgs;
		char *dir = xstrdup(e->dir);

		pthread_mutex_unlock(&q.mu);
		if (quota_scan_dir(dir, &bytes, &msgs) < 0)
			bytes = msgs = 0;	/* no Maildir yet: empty */
		free(dir);
		pthread_mutex_lock(&q.mu);
		if (e->changes == before || tries + 1 >= QUOTA_SCAN_TRIES) {
			e->base_bytes = bytes;
			e->base_msgs = msgs;
			break;
		}
	}
	e->known = 1;
	e->scanning = 0;
	uint64_t now = quota_now_ms();
	struct log_ctx ctx = { 0 };
	struct kv kv[] = { KV("maildir", e->dir), KVU("bytes", e->base_bytes),
			   KVU("messages", e->base_msgs), KVU("elapsed_ms", now - started) };
	catalog_log(COND_QUOTA_SCANNED, &ctx, kv, ARRAY_LEN(kv));	/* queued, never blocks */
	e->scanned_ms = now;
	pthread_cond_broadcast(&q.scanned);
}

/* The scan job of an entry, on the pool. */
static void
quota_scan_run(struct workpool_job *wj)
{
	struct quota_entry *e = (struct quota_entry *)wj;

	pthread_mutex_lock(&q.mu);
	e->queued = 0;
	if (!e->scanning)	/* else a delivery is on it */
		quota_scan_locked(e);
	pthread_mutex_unlock(&q.mu);
}

/* quota_fini stopped the class before the scan ran. */
static void
quota_scan_cancel(struct workpool_job *wj)
{
	struct quota_entry *e = (struct quota_entry *)wj;

	pthread_mutex_lock(&q.mu);
	e->queued = 0;
	pthread_mutex_unlock(&q.mu);
}

/* Queues e's scan on the pool (q.mu held; the pool's lock nests inside). */
static void
quota_schedule(struct quota_entry *e)
{
	if (e->queued || e->scanning || q.wp == NULL)
		return;
	workpool_job_init(&e->wj, quota_scan_run, NULL, quota_scan_cancel);
	if (workpool_submit(q.wp, q.cls, &e->wj, NULL) == 0)
		e->queued = 1;
}

/* ---- the table ---------------------------------------------------------- */

static void
quota_once(void)
{
	q.nbuckets = QUOTA_BUCKETS_MIN;
	q.buckets = xcalloc(q.nbuckets, sizeof(*q.buckets));
	q.cls = -1;
	/* Until quota_start, scans happen on delivery threads only. */
}

void
quota_init(void)
{
	(void)pthread_once(&q.once, quota_once);
}

int
quota_start(struct workpool *wp)
{
	int cls;

	quota_init();
	pthread_mutex_lock(&q.mu);
	if (q.wp != NULL) {
		pthread_mutex_unlock(&q.mu);
		return 0;
	}
	pthread_mutex_unlock(&q.mu);
	cls = workpool_class_new(wp, "scan", 1, 0);
	if (cls < 0)
		return -1;
	pthread_mutex_lock(&q.mu);
	q.wp = wp;
	q.cls = cls;
	pthread_mutex_unlock(&q.mu);
	return 0;
}

void
quota_fini(void)
{
	struct workpool *wp;
	int cls;

	quota_init();
	pthread_mutex_lock(&q.mu);
	wp = q.wp;
	cls = q.cls;
	q.wp = NULL;		/* no new scan job from here on */
	q.cls = -1;
	pthread_mutex_unlock(&q.mu);
	/* Queued scans are cancelled, a running one finishes. */
	if (wp != NULL)
		workpool_class_stop(wp, cls);
	pthread_mutex_lock(&q.mu);
	for (size_t i = 0; i < q.nbuckets; i++) {
		struct quota_entry *e = q.buckets[i], *n;

		for (; e != NULL; e = n) {
			n = e->next;
			free(e->dir);
			free(e);
		}
		q.buckets[i] = NULL;
	}
	q.count = 0;
	/* Still usable (tests): scans then run on delivery threads only. */
	pthread_mutex_unlock(&q.mu);
}

static void
quota_grow(void)
{
	size_t n = q.nbuckets * 2;
	struct quota_entry **b = xcalloc(n, sizeof(*b));

	for (size_t i = 0; i < q.nbuckets; i++) {
		struct quota_entry *e = q.buckets[i], *next;

		for (; e != NULL; e = next) {
			next = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	}
	free(q.buckets);
	q.buckets = b;
	q.nbuckets = n;
}

/* The entry of dir (q.mu held); created unknown if create. */
static struct quota_entry *
quota_lookup(const char *dir, int create)
{
	uint64_t h = quota_hash(dir);
	struct quota_entry *e;

	for (e = q.buckets[h & (q.nbuckets - 1)]; e != NULL; e = e->next)
		if (e->hash == h && strcmp(e->dir, dir) == 0)
			return e;
	if (!create)
		return NULL;
	if (q.count >= q.nbuckets * 2)
		quota_grow();
	e = xcalloc(1, sizeof(*e));
	e->dir = xstrdup(dir);
	e->hash = h;
	e->next = q.buckets[h & (q.nbuckets - 1)];
	q.buckets[h & (q.nbuckets - 1)] = e;
	q.count++;
	return e;
}

/* The Maildir folder of "local@domain", or NULL. Malloc'ed. */
static char *
quota_dir(const char *mail_root, const char *mailbox)
{
	const char *at = mailbox != NULL ? strrchr(mailbox, '@') : NULL;

	if (mail_root == NULL || at == NULL)
		return NULL;
	return deliver_maildir_dir(mail_root, mailbox, (size_t)(at - mailbox),
				   at + 1, strlen(at + 1));
}

static int
quota_has_limits(const struct account *acct)
{
	return acct != NULL && (acct->quota_bytes != 0 || acct->quota_messages != 0);
}

/* Does adding size bytes and msgs messages to e stay within acct's
 * limits? 1 yes; 0 no, with out filled. At RCPT (msgs == 0, size == 0)
 * "within" means strictly under each limit. */
static int
quota_fits(const struct quota_entry *e, const struct account *acct,
	   uint64_t size, uint64_t msgs, struct quota_report *out)
{
	uint64_t ub = e->base_bytes + e->inflight_bytes;
	uint64_t um = e->base_msgs + e->inflight_msgs;
	const char *kind = NULL;
	uint64_t used = 0, limit = 0;

	if (acct->quota_bytes != 0 &&
	    (size == 0 ? ub >= acct->quota_bytes
		       : ub + size > acct->quota_bytes || ub + size < ub)) {
		kind = "bytes";
		used = ub;
		limit = acct->quota_bytes;
	} else if (acct->quota_messages != 0 &&
		   (msgs == 0 ? um >= acct->quota_messages
			      : um + msgs > acct->quota_messages)) {
		kind = "messages";
		used = um;
		limit = acct->quota_messages;
	}
	if (kind == NULL)
		return 1;
	if (out != NULL) {
		out->kind = kind;
		out->used = used;
		out->quota = limit;
		out->size = size;
	}
	return 0;
}

/* ---- the event-loop checks ---------------------------------------------- */

/* One mailbox (q.mu held): 1 fits, 0 not (out filled). */
static int
quota_check_one(const char *mail_root, const struct account *acct,
		const char *mailbox, uint64_t size, uint64_t msgs,
		struct quota_report *out)
{
	struct quota_entry *e;
	char *dir;
	int fits = 1;

	if (!quota_has_limits(acct))
		return 1;
	dir = quota_dir(mail_root, mailbox);
	if (dir == NULL)
		return 1;	/* delivery will report the bad name */
	e = quota_lookup(dir, 1);
	free(dir);
	if (e->known) {
		fits = quota_fits(e, acct, size, msgs, out);
		if (quota_now_ms() - e->scanned_ms >= QUOTA_RESCAN_MS)
			quota_schedule(e);
	} else {
		quota_schedule(e);	/* unknown: fine for now */
	}
	return fits;
}

enum cond_id
quota_check_rcpt(const char *mail_root, const struct account *acct,
		 const char *mailbox, struct quota_report *out)
{
	int fits;

	if (!quota_has_limits(acct))
		return COND__COUNT;
	quota_init();
	pthread_mutex_lock(&q.mu);
	fits = quota_check_one(mail_root, acct, mailbox, 0, 0, out);
	pthread_mutex_unlock(&q.mu);
	if (fits)
		return COND__COUNT;
	if (out != NULL)
		out->index = 0;
	return COND_RCPT_MAILBOX_FULL;
}

enum cond_id
quota_check_message(const char *mail_root, const struct account *const *accts,
		    const char *const *mailboxes, size_t n, uint64_t size,
		    struct quota_report *out)
{
	enum cond_id res = COND__COUNT;

	quota_init();
	pthread_mutex_lock(&q.mu);
	for (size_t i = 0; i < n; i++) {
		uint64_t need;

		if (!quota_has_limits(accts[i]) || mailboxes[i] == NULL)
			continue;
		need = size + QUOTA_HEADER_ALLOWANCE + strlen(mailboxes[i]);
		if (!quota_check_one(mail_root, accts[i], mailboxes[i], need, 1,
				     out)) {
			if (out != NULL)
				out->index = i;
			res = COND_RCPT_MESSAGE_OVER_QUOTA;
			break;
		}
	}
	pthread_mutex_unlock(&q.mu);
	return res;
}

static void
sub_clamped(uint64_t *v, uint64_t d)
{
	*v = *v >= d ? *v - d : 0;
}

void
quota_add(const char *mail_root, const char *mailbox, int64_t bytes,
	  int64_t messages)
{
	char *dir = quota_dir(mail_root, mailbox);
	struct quota_entry *e;

	if (dir == NULL)
		return;
	quota_init();
	pthread_mutex_lock(&q.mu);
	e = quota_lookup(dir, 0);
	if (e != NULL) {
		if (bytes >= 0)
			e->base_bytes += (uint64_t)bytes;
		else
			sub_clamped(&e->base_bytes, (uint64_t)0 - (uint64_t)bytes);
		if (messages >= 0)
			e->base_msgs += (uint64_t)messages;
		else
			sub_clamped(&e->base_msgs, (uint64_t)0 - (uint64_t)messages);
		e->changes++;
	}
	pthread_mutex_unlock(&q.mu);
	free(dir);
}

/* ---- delivery ----------------------------------------------------------- */

enum cond_id
quota_reserve(const char *mail_root, const struct account *acct,
	      const char *mailbox, uint64_t size, struct quota_report *out)
{
	char *dir = quota_dir(mail_root, mailbox);
	struct quota_entry *e;
	enum cond_id res = COND__COUNT;

	if (dir == NULL)
		return COND__COUNT;
	quota_init();
	pthread_mutex_lock(&q.mu);
	e = quota_lookup(dir, quota_has_limits(acct));
	free(dir);
	if (e == NULL) {
		pthread_mutex_unlock(&q.mu);
		return COND__COUNT;	/* untracked, no quota */
	}
	/* Know the usage first: scan here, or wait for the scanner. */
	while (!e->known) {
		if (e->scanning)
			pthread_cond_wait(&q.scanned, &q.mu);
		else
			quota_scan_locked(e);
	}
	if (quota_has_limits(acct) && !quota_fits(e, acct, size, 1, out)) {
		if (out != NULL)
			out->index = 0;
		res = COND_DELIVERY_LOCAL_QUOTA;
	} else {
		e->inflight_bytes += size;
		e->inflight_msgs += 1;
	}
	pthread_mutex_unlock(&q.mu);
	return res;
}

void
quota_finish(const char *mail_root, const char *mailbox, uint64_t size,
	     int delivered)
{
	char *dir = quota_dir(mail_root, mailbox);
	struct quota_entry *e;

	if (dir == NULL)
		return;
	quota_init();
	pthread_mutex_lock(&q.mu);
	e = quota_lookup(dir, 0);
	free(dir);
	if (e != NULL) {
		sub_clamped(&e->inflight_bytes, size);
		sub_clamped(&e->inflight_msgs, 1);
		if (delivered) {
			e->base_bytes += size;
			e->base_msgs += 1;
			e->changes++;
		}
	}
	pthread_mutex_unlock(&q.mu);
}

int
quota_usage(const char *mail_root, const char *mailbox, uint64_t *bytes_out,
	    uint64_t *messages_out)
{
	char *dir = quota_dir(mail_root, mailbox);
	struct quota_entry *e;
	int known = 0;

	if (dir == NULL)
		return 0;
	quota_init();
	pthread_mutex_lock(&q.mu);
	e = quota_lookup(dir, 0);
	free(dir);
	if (e != NULL && e->known) {
		*bytes_out = e->base_bytes + e->inflight_bytes;
		*messages_out = e->base_msgs + e->inflight_msgs;
		known = 1;
	}
	pthread_mutex_unlock(&q.mu);
	return known;
}
