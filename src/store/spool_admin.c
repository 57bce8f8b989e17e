/*
 * spool_admin.c - the spool for the operator's queue command (see
 * spool_admin.h): the queue lock, read-only views of queue/ files (through
 * spool_load, the recovery's reader, without repair), the history read
 * from the state log (spool_state_next, the decoder's record reader), and
 * the offline edits, appended as state records like delivery's.
 */
#include "spool_admin.h"

#include "spool_private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

int
spool_lock_take(const char *spool_dir, int wait, int *fdp)
{
	char *path = xasprintf("%s/%s", spool_dir, SPOOL_LOCK_FILE);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600), err;

	free(path);
	*fdp = -1;
	if (fd < 0)
		return -1;
	while (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0) {
		if (errno == EINTR)
			continue;
		err = errno;
		close(fd);
		if (err == EWOULDBLOCK)
			return 1;
		errno = err;
		return -1;
	}
	*fdp = fd;
	return 0;
}

void
spool_lock_release(int *fdp)
{
	if (*fdp >= 0)
		close(*fdp);	/* drops the flock */
	*fdp = -1;
}

struct spool *
spool_admin_open(const char *dir)
{
	struct spool *sp = xcalloc(1, sizeof(*sp));
	int err;

	sp->dir = xstrdup(dir);
	sp->infd = sp->cfd = -1;
	sp->cls = sp->file_cls = sp->recover_cls = -1;
	pthread_rwlock_init(&sp->sink_lock, NULL);
	sp->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	sp->qfd = sp->dirfd < 0 ? -1 : openat(sp->dirfd, "queue",
					      O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (sp->qfd >= 0)
		return sp;
	err = errno;
	spool_admin_close(&sp);
	errno = err;
	return NULL;
}

void
spool_admin_close(struct spool **spp)
{
	struct spool *sp = *spp;

	if (sp == NULL)
		return;
	if (sp->qfd >= 0)
		close(sp->qfd);
	if (sp->dirfd >= 0)
		close(sp->dirfd);
	pthread_rwlock_destroy(&sp->sink_lock);
	free(sp->dir);
	free(sp);
	*spp = NULL;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
spool_admin_names(struct spool *sp, char ***names, size_t *n)
{
	int fd = openat(sp->qfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir;
	struct dirent *de;
	size_t cap = 0;

	*names = NULL;
	*n = 0;
	if (fd < 0)
		return -1;
	if ((dir = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		if (!spool_qid_valid(de->d_name))
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 64;
			*names = xrealloc(*names, cap * sizeof(**names));
		}
		(*names)[(*n)++] = xstrdup(de->d_name);
	}
	closedir(dir);
	if (*n > 0)
		qsort(*names, *n, sizeof(**names), name_cmp);	/* oldest first */
	return 0;
}

/* ---- views ------------------------------------------------------------ */

/* Reads n bytes at off; the count read (short at the end of the file). */
static ssize_t
read_upto(int fd, uint8_t *p, size_t n, uint64_t off)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = pread(fd, p + got, n - got, (off_t)(off + got));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* The state log of the file on fd (log_off to log_end) as history
 * entries (each recipient's last reply is the decoder's: rcpts[].last). */
static int
view_history(int fd, struct spool_view *v, unsigned what)
{
	struct spool_msg *msg = v->msg;
	uint64_t span = msg->log_end - msg->log_off;
	uint8_t *log;
	size_t off = 0;
	ssize_t r;

	if (span == 0 || !(what & SPOOL_VIEW_HISTORY))
		return 0;
	if (span > SPOOL_MAX_LOG)
		span = SPOOL_MAX_LOG;
	log = xmalloc((size_t)span);
	r = read_upto(fd, log, (size_t)span, msg->log_off);
	if (r < 0) {
		free(log);
		return -1;
	}
	/* The last SPOOL_VIEW_HISTORY_MAX records: counted first. */
	size_t total = 0, skip;
	const uint8_t *val;
	size_t len;

	while (off < (size_t)r && spool_state_next(log, (size_t)r, &off, &val, &len) == 0)
		total++;
	skip = total > SPOOL_VIEW_HISTORY_MAX ? total - SPOOL_VIEW_HISTORY_MAX : 0;
	v->hist_dropped = skip;
	v->hist = xcalloc(total - skip + 1, sizeof(*v->hist));
	off = 0;
	for (size_t k = 0; k < total && spool_state_next(log, (size_t)r, &off, &val, &len) == 0;
	     k++) {
		const uint8_t *sp1, *sp2;

		if (k < skip || (sp1 = memchr(val, ' ', len)) == NULL)
			continue;
		sp2 = memchr(sp1 + 1, ' ', len - (size_t)(sp1 + 1 - val));
		char *idx = xstrndup((const char *)sp1 + 1,
				     (size_t)((sp2 != NULL ? sp2 : val + len) - (sp1 + 1)));
		struct spool_history *h = &v->hist[v->nhist++];

		h->kind = xstrndup((const char *)val, (size_t)(sp1 - val));
		h->rcpt = (size_t)strtoul(idx, NULL, 10);
		h->detail = sp2 != NULL ? xstrndup((const char *)sp2 + 1,
						   len - (size_t)(sp2 + 1 - val)) : xstrdup("");
		free(idx);
	}
	free(log);
	return 0;
}

/* The header section: the data's first bytes up to the first empty
 * line, at most SPOOL_VIEW_HEADERS_MAX. */
static int
view_headers(int fd, struct spool_view *v)
{
	struct spool_msg *msg = v->msg;
	size_t want = msg->body_len < SPOOL_VIEW_HEADERS_MAX ? (size_t)msg->body_len
							    : SPOOL_VIEW_HEADERS_MAX;
	uint8_t *p = xmalloc(want + 1);
	ssize_t r;
	size_t end;

	buf_init(&v->headers, SPOOL_MAX_TAGS + SPOOL_VIEW_HEADERS_MAX);
	if (buf_append(&v->headers, msg->tags.data, msg->tags.len) < 0) {
		free(p);
		return -1;
	}
	if (msg->file == NULL) {	/* version 1: the data is in memory */
		r = (ssize_t)(msg->data.len < want ? msg->data.len : want);
		if (r > 0)
			memcpy(p, msg->data.data, (size_t)r);
	} else {
		r = read_upto(fd, p, want, msg->body_off);
	}
	if (r < 0) {
		free(p);
		return -1;
	}
	v->headers_cut = 1;
	end = (size_t)r;
	for (size_t i = 0; i < (size_t)r; i++) {
		if (p[i] != '\n')
			continue;
		if (i + 1 < (size_t)r && p[i + 1] == '\n') {
			end = i + 1;
			v->headers_cut = 0;
			break;
		}
		if (i + 2 < (size_t)r && p[i + 1] == '\r' && p[i + 2] == '\n') {
			end = i + 1;
			v->headers_cut = 0;
			break;
		}
	}
	if ((uint64_t)r == msg->body_len)
		v->headers_cut = 0;	/* no body at all: all of it is header */
	int rc = buf_append(&v->headers, p, end);
	free(p);
	return rc;
}

int
spool_view_read(struct spool *sp, const char *qid, unsigned what, struct spool_view *v,
		const char **reason)
{
	int fd, rc = -1;

	memset(v, 0, sizeof(*v));
	*reason = NULL;
	if (!spool_qid_valid(qid))
		return -2;
	if (faccessat(sp->qfd, qid, F_OK, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
		return -2;
	v->msg = spool_load(sp, qid, reason, 0);
	if (v->msg == NULL) {
		if (*reason == NULL)
			*reason = "cannot be read";
		return -1;
	}
	v->size = spool_msg_size(v->msg);
	fd = openat(sp->qfd, qid, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		*reason = errno == ENOENT ? NULL : "cannot be read";
		rc = errno == ENOENT ? -2 : -1;
		goto out;
	}
	if (v->msg->file != NULL && view_history(fd, v, what) < 0) {
		*reason = "cannot read its state log";
		goto out;
	}
	if ((what & SPOOL_VIEW_HEADERS) && view_headers(fd, v) < 0) {
		*reason = "cannot read its header section";
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (rc < 0)
		spool_view_fini(v);
	return rc;
}

void
spool_view_fini(struct spool_view *v)
{
	for (size_t i = 0; i < v->nhist; i++) {
		free(v->hist[i].kind);
		free(v->hist[i].detail);
	}
	free(v->hist);
	buf_fini(&v->headers);
	spool_msg_free(&v->msg);
	memset(v, 0, sizeof(*v));
}

/* ---- offline edits ---------------------------------------------------- */

/* Appends recs to queue/<qid> (flushed). */
static int
admin_append(struct spool *sp, struct spool_msg *msg, struct buf *recs)
{
	(void)sp;
	if (msg->file == NULL) {	/* version 1: the daemon upgrades it first */
		struct log_ctx ctx = { .qid = msg->qid };
		struct kv kvs[] = { KV("path", "-"), KV("op", "open"),
				    KV("errno", log_errno_name(ENOTSUP)),
				    KV("err", "a version-1 spool file: start the daemon once") };

		catalog_log(COND_QUEUE_WRITE_FAILED, &ctx, kvs, ARRAY_LEN(kvs));
		return -1;
	}
	return spool_append_state(msg, recs, 1);
}

enum admin_edit { EDIT_HOLD, EDIT_RELEASE, EDIT_FLUSH, EDIT_BOUNCE };

/* One edit of queue/<qid> as state records, appended flushed: a hold or
 * release record, or one record per recipient still open (flush: next
 * attempt 0, unless held; bounce: failed with the operator's reason).
 * *n: the recipients (flush: 1 when any) it applied to. */
static int
admin_edit(struct spool *sp, const char *qid, enum admin_edit what, size_t *n)
{
	static const struct spool_detail bounced = {
		.status = "5.0.0", .cond = "QUEUE-BOUNCED-BY-ADMIN", .mta = NULL,
		.diag = "failed by the mail administrator (postern queue bounce)",
	};
	struct spool_view v;
	struct buf recs;
	const char *reason;
	int rc = spool_view_read(sp, qid, 0, &v, &reason);

	*n = 0;
	if (rc < 0)
		return rc;
	buf_init(&recs, SPOOL_MAX_LOG);
	if (what == EDIT_HOLD || what == EDIT_RELEASE)
		rc = spool_state_hold(&recs, what == EDIT_HOLD);
	for (size_t i = 0; i < v.msg->nrcpts && rc == 0 && what >= EDIT_FLUSH; i++) {
		const struct spool_rcpt *r = &v.msg->rcpts[i];

		if (r->done || r->failed || (what == EDIT_FLUSH && v.msg->held))
			continue;
		if (what == EDIT_BOUNCE)
			rc = spool_state_failed(&recs, i, &bounced);
		else if (r->next_try > 0)
			rc = spool_state_deferred(&recs, i, r->attempts, 0, r->last);
		(*n)++;
	}
	if (rc == 0)
		rc = admin_append(sp, v.msg, &recs);
	buf_fini(&recs);
	spool_view_fini(&v);
	return rc;
}

int
spool_admin_hold(struct spool *sp, const char *qid, int on)
{
	size_t n;

	return admin_edit(sp, qid, on ? EDIT_HOLD : EDIT_RELEASE, &n);
}

int
spool_admin_flush(struct spool *sp, const char *qid, int *count)
{
	size_t n;
	int rc = admin_edit(sp, qid, EDIT_FLUSH, &n);

	*count = n > 0;
	return rc;
}

int
spool_admin_bounce(struct spool *sp, const char *qid, size_t *n)
{
	return admin_edit(sp, qid, EDIT_BOUNCE, n);
}

int
spool_admin_delete(struct spool *sp, const char *qid, size_t *left)
{
	struct spool_view v;
	const char *reason;
	int rc = spool_view_read(sp, qid, 0, &v, &reason);

	*left = 0;
	if (rc == -2)
		return rc;
	/* A damaged file goes too: the operator asked for it. */
	for (size_t i = 0; rc == 0 && i < v.msg->nrcpts; i++)
		*left += !v.msg->rcpts[i].done && !v.msg->rcpts[i].failed;
	if (rc == 0)
		spool_view_fini(&v);
	if (unlinkat(sp->qfd, qid, 0) < 0) {
		if (errno == ENOENT)
			return -2;
		(void)spool_remove(sp, qid);	/* logs QUEUE-SPOOL-DELETE-FAILED */
		return -1;
	}
	(void)fsync(sp->qfd);
	return 0;
}
