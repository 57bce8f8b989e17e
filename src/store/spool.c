/*
 * spool.c - the durable message spool: folders, group commit, recovery.
 *
 * Owns the spool folders (incoming/, queue/, corrupt/) and the commit jobs
 * (the worker pool's "commit" class, core/workpool.h). The file format is
 * spool_format.c's, the streaming writer (the body sink), the reader and
 * the state log's appends spool_body.c's, recovery spool_recover.c's. Hands committed messages to the sink (delivery) and
 * never looks at them again; removal is asked for by delivery through
 * spool_remove().
 *
 * Invariant: a file appears in queue/ only complete (written, flushed,
 * renamed), and a completion with status 0 is posted only after the
 * queue/ directory itself was flushed. Every failure path unlinks what it
 * wrote, so nothing half-written is ever visible in queue/.
 */
#include "spool_private.h"

#include "crc32c.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "workpool.h"
#include "flush.h"
#include "metrics.h"

/* ---- messages --------------------------------------------------------- */

struct spool_msg *
spool_msg_new(size_t max_data)
{
	struct spool_msg *msg = xcalloc(1, sizeof(*msg));

	msg->from = xstrdup("");
	buf_init(&msg->data, max_data);
	buf_init(&msg->tags, SPOOL_MAX_TAGS);
	return msg;
}

void
spool_msg_free(struct spool_msg **msgp)
{
	struct spool_msg *msg = *msgp;

	if (msg == NULL)
		return;
	for (size_t i = 0; i < msg->nrcpts; i++) {
		free(msg->rcpts[i].addr);
		free(msg->rcpts[i].orcpt);
		free(msg->rcpts[i].last);
	}
	free(msg->rcpts);
	free(msg->from);
	free(msg->envid);
	free(msg->client);
	free(msg->helo);
	buf_fini(&msg->data);
	buf_fini(&msg->tags);
	free(msg->file);
	free(msg);
	*msgp = NULL;
}

size_t
spool_msg_drop_rcpts(struct spool_msg *msg, const unsigned char *drop)
{
	size_t kept = 0;

	for (size_t i = 0; i < msg->nrcpts; i++) {
		if (drop[i]) {
			free(msg->rcpts[i].addr);
			free(msg->rcpts[i].orcpt);
			free(msg->rcpts[i].last);
			continue;
		}
		if (kept != i)
			msg->rcpts[kept] = msg->rcpts[i];
		kept++;
	}
	msg->nrcpts = kept;	/* capacity stays a power of two >= kept */
	return kept;
}

void
spool_msg_add_rcpt(struct spool_msg *msg, const char *addr, size_t len,
		   const char *orcpt, size_t orcpt_len, unsigned notify)
{
	size_t n = msg->nrcpts;
	struct spool_rcpt *r;

	/* Capacity is the next power of two >= n: grow when n is one. */
	if ((n & (n - 1)) == 0) {
		if (n > SIZE_MAX / 2 / sizeof(*msg->rcpts))
			PANIC("too many recipients");
		msg->rcpts = xrealloc(msg->rcpts,
				      (n ? 2 * n : 1) * sizeof(*msg->rcpts));
	}
	r = &msg->rcpts[n];
	r->addr = xstrndup(addr, len);
	r->orcpt = orcpt != NULL ? xstrndup(orcpt, orcpt_len) : NULL;
	r->notify = notify;
	r->done = 0;
	r->failed = 0;
	r->attempts = 0;
	r->next_try = 0;
	r->dsn_sent = 0;
	r->last = NULL;
	msg->nrcpts = n + 1;
}

/* ---- the spool -------------------------------------------------------- */

struct spool_job {
	struct workpool_job wj;	/* first; wj.next links a round */
	struct spool *sp;
	struct spool_msg *msg;
	spool_done_fn done;
	void *arg;
	int status;		/* 0 so far good, -1 failed */
	enum cond_id cond;
	int renamed;		/* now in queue/ */
	int fd;			/* streamed: open on incoming/<qid>; else -1 */
	struct buf head;	/* the encoded envelope, up to "data LEN:" */
	uint64_t data_len;	/* streamed: data bytes written */
	uint32_t crc;		/* their CRC32C */
	int werr;		/* streamed: the first write error, 0 if none */
};


/* Hands msg to the sink, or frees it when there is none. */
void
spool_to_sink(struct spool *sp, struct spool_msg *msg)
{
	pthread_rwlock_rdlock(&sp->sink_lock);
	if (sp->sink != NULL)
		sp->sink(msg, sp->sink_arg);
	else
		spool_msg_free(&msg);
	pthread_rwlock_unlock(&sp->sink_lock);
}

char *
spool_path(const struct spool *sp, const char *sub, const char *name)
{
	return xasprintf("%s/%s%s%s", sp->dir, sub, name ? "/" : "",
			 name ? name : "");
}

/* Logs a commit failure and returns its condition. */
enum cond_id
spool_log_fail(const struct spool *sp, const char *qid, const char *sub,
	       const char *op, int err, int creating)
{
	struct log_ctx ctx = { .qid = spool_qid_valid(qid) ? qid : NULL };
	char *path = spool_path(sp, sub, ctx.qid);
	const char *ename = log_errno_name(err);
	enum cond_id cond;

	if (err == ENOSPC || err == EDQUOT) {
		struct kv kvs[] = { KV("path", path), KV("op", op),
				    KV("errno", ename) };

		cond = COND_QUEUE_DISK_FULL;
		catalog_log(cond, &ctx, kvs, ARRAY_LEN(kvs));
	} else if (creating) {
		struct kv kvs[] = { KV("path", path), KV("errno", ename),
				    KV("err", strerror(err)) };

		cond = COND_QUEUE_SPOOL_CREATE_FAILED;
		catalog_log(cond, &ctx, kvs, ARRAY_LEN(kvs));
	} else {
		struct kv kvs[] = { KV("path", path), KV("op", op),
				    KV("errno", ename), KV("err", strerror(err)) };

		cond = COND_QUEUE_WRITE_FAILED;
		catalog_log(cond, &ctx, kvs, ARRAY_LEN(kvs));
	}
	free(path);
	return cond;
}

static void
spool_log_init_fail(const char *path, int err)
{
	struct kv kvs[] = { KV("subsystem", "spool"), KV("path", path),
			    KV("errno", log_errno_name(err)),
			    KV("err", strerror(err)) };

	catalog_log(COND_STARTUP_INIT_FAILED, NULL, kvs, ARRAY_LEN(kvs));
}

int
spool_write_all(int fd, const void *p, size_t n)
{
	const uint8_t *q = p;

	while (n > 0) {
		ssize_t w = write(fd, q, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		q += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Finishes incoming/<qid> and flushes it: a streamed file has its data
 * (the length is patched in, the tail written); a message in memory is
 * written whole. On failure nothing is left. */
static int
spool_write_one(struct spool *sp, int infd, struct spool_job *j)
{
	struct spool_msg *msg = j->msg;
	struct buf tail;
	const char *op = "open";
	int fd = j->fd, err;

	j->fd = -1;
	if (!spool_qid_valid(msg->qid) || infd < 0) {
		if (fd >= 0)
			close(fd);	/* incoming/ is emptied at the next start */
		j->cond = spool_log_fail(sp, msg->qid, "incoming", op,
					 infd < 0 ? -infd : EINVAL, 1);
		return -1;
	}
	buf_init(&tail, SPOOL_MAX_TAGS + SPOOL_TAIL_FIXED);
	if (fd < 0) {
		j->data_len = msg->data.len;
		j->crc = crc32c_update(0, msg->data.data, msg->data.len);
		if (spool_enc_head(msg, j->data_len, &j->head) < 0) {
			buf_fini(&tail);
			j->cond = spool_log_fail(sp, msg->qid, "incoming", "write", EFBIG, 0);
			return -1;
		}
		fd = openat(infd, msg->qid, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
		if (fd < 0) {
			err = errno;
			buf_fini(&tail);
			j->cond = spool_log_fail(sp, msg->qid, "incoming", op, err, 1);
			return -1;
		}
		op = "write";
		if (spool_write_all(fd, j->head.data, j->head.len) < 0 ||
		    spool_write_all(fd, msg->data.data, msg->data.len) < 0)
			goto fail;
	} else {
		op = "write";
		if (j->werr != 0) {
			errno = j->werr;
			goto fail;
		}
		/* The data is complete: its length goes into the head. */
		spool_head_set_len(&j->head, j->data_len);
		ssize_t w = pwrite(fd, j->head.data + j->head.len - SPOOL_DATA_DIGITS - 1,
				   SPOOL_DATA_DIGITS, (off_t)(j->head.len - SPOOL_DATA_DIGITS - 1));
		if (w != SPOOL_DATA_DIGITS) {
			if (w >= 0)
				errno = EIO;
			goto fail;
		}
	}
	if (spool_enc_tail(&j->head, j->crc, &msg->tags, &tail) < 0) {
		errno = EFBIG;
		goto fail;
	}
	if (spool_write_all(fd, tail.data, tail.len) < 0)
		goto fail;
	/* No flush here: one syncfs covers the round (spool_round). */
	op = "close";
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	buf_fini(&tail);
	msg->body_off = j->head.len;
	msg->body_len = j->data_len;
	msg->body_crc = j->crc;
	return 0;
fail:
	err = errno;
	if (fd >= 0)
		close(fd);
	(void)unlinkat(infd, msg->qid, 0);
	buf_fini(&tail);
	j->cond = spool_log_fail(sp, msg->qid, "incoming", op, err, 0);
	return -1;
}

/* rename(2) that refuses to replace an existing queue/ entry. */
int
spool_rename(int infd, int qfd, const char *qid)
{
	if (renameat2(infd, qid, qfd, qid, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* Filesystem without RENAME_NOREPLACE: link() never replaces. */
	if (linkat(infd, qid, qfd, qid, 0) < 0)
		return -1;
	(void)unlinkat(infd, qid, 0);
	return 0;
}

/* Pool completion: on the submitting loop, or on the worker (loop NULL). */
static void
spool_complete(struct loop *loop, struct workpool_job *wj)
{
	struct spool_job *j = (struct spool_job *)wj;

	if (j->done != NULL)
		j->done(loop, j->arg, j->status, j->cond);
	buf_fini(&j->head);
	free(j);
}

/* The pool stopped before the completion ran (its loop stopped first). */
static void
spool_cancel(struct workpool_job *wj)
{
	struct spool_job *j = (struct spool_job *)wj;

	spool_msg_free(&j->msg);
	if (j->fd >= 0)
		close(j->fd);
	buf_fini(&j->head);
	free(j);
}

#define JOB_NEXT(j) ((struct spool_job *)(j)->wj.next)

/* One group-commit round: the pool hands the commit class's worker every
 * waiting job at once (WORKPOOL_BATCH), linked through wj.next. */
static void
spool_round(struct workpool_job *first)
{
	struct spool_job *list = (struct spool_job *)first, *j;
	struct spool *sp = list->sp;
	int renamed = 0;
	uint64_t nbatch = 0;
	/* The folders are opened afresh each round, so a folder an operator
	 * replaced while Postern runs is used, not the deleted one. */
	int infd = openat(sp->dirfd, "incoming", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (infd < 0)
		infd = -errno;	/* spool_write_one reports it */
	int qfd = openat(sp->dirfd, "queue", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	for (j = list; j != NULL; j = JOB_NEXT(j), nbatch++)
		j->status = spool_write_one(sp, infd, j);
	metrics_observe(METRICS_H_COMMIT_BATCH, nbatch);
	for (j = list; j != NULL; j = JOB_NEXT(j)) {
		if (j->status < 0)
			continue;
		if (spool_rename(infd, qfd, j->msg->qid) < 0) {
			int err = errno;

			(void)unlinkat(infd, j->msg->qid, 0);
			j->status = -1;
			j->cond = spool_log_fail(sp, j->msg->qid, "queue",
						 "rename", err, 0);
			continue;
		}
		j->renamed = 1;
		renamed++;
		/* From now on the data is read back from the file. */
		free(j->msg->file);
		j->msg->file = spool_path(sp, "queue", j->msg->qid);
		buf_fini(&j->msg->data);
	}
	/* One syncfs makes the round durable: every file's data and every
	 * rename (a file written in the same round as others costs no flush
	 * of its own). A crash before it may leave a name in queue/ whose data
	 * never reached the disk: recovery checks each file's head, tail and
	 * lengths, and delivery its data's checksum, so such a file (never
	 * acknowledged) is set aside, never delivered half. */
	if (renamed > 0 && store_flush(qfd) < 0) {
		int err = errno;

		for (j = list; j != NULL; j = JOB_NEXT(j)) {
			if (!j->renamed)
				continue;
			(void)unlinkat(qfd, j->msg->qid, 0);
			j->renamed = 0;
			j->status = -1;
			j->cond = spool_log_fail(sp, j->msg->qid, "queue",
						 "syncfs", err, 0);
		}
	}
	/* Completions run after this returns (the pool posts them to each
	 * job's loop in batches); the messages go on now. */
	for (j = list; j != NULL; j = JOB_NEXT(j)) {
		struct spool_msg *msg = j->msg;
		int ok = j->status == 0;

		j->msg = NULL;
		if (ok)
			j->cond = COND__COUNT;
		if (ok)
			spool_to_sink(sp, msg);
		else
			spool_msg_free(&msg);
	}
	if (infd >= 0)
		close(infd);
	if (qfd >= 0)
		close(qfd);
}

static void
spool_submit(struct spool *sp, struct spool_job *j, struct loop *loop)
{
	if (workpool_submit(sp->wp, sp->cls, &j->wj, loop) < 0) {
		/* Only after spool_close began: a failed commit, at once. */
		j->cond = spool_log_fail(sp, j->msg->qid, "incoming", "open", ESHUTDOWN, 1);
		spool_msg_free(&j->msg);
		if (j->fd >= 0)
			close(j->fd);	/* incoming/ is emptied at the next start */
		if (j->done != NULL)
			j->done(loop, j->arg, -1, j->cond);
		buf_fini(&j->head);
		free(j);
	}
}

static struct spool_job *
spool_job_new(struct spool *sp, struct spool_msg *msg, spool_done_fn done, void *arg)
{
	struct spool_job *j = xcalloc(1, sizeof(*j));

	workpool_job_init(&j->wj, spool_round, spool_complete, spool_cancel);
	j->sp = sp;
	j->msg = msg;
	j->done = done;
	j->arg = arg;
	j->fd = -1;
	buf_init(&j->head, SPOOL_MAX_HEAD);
	return j;
}

void
spool_commit(struct spool *sp, struct spool_msg *msg, struct loop *loop,
	     spool_done_fn done, void *arg)
{
	spool_submit(sp, spool_job_new(sp, msg, done, arg), loop);
}

void
spool_commit_streamed(struct spool *sp, struct spool_msg *msg, int fd, struct buf *head,
		      uint64_t data_len, uint32_t crc, int werr, struct loop *loop,
		      spool_done_fn done, void *arg)
{
	struct spool_job *j = spool_job_new(sp, msg, done, arg);

	buf_fini(&j->head);
	j->head = *head;
	buf_init(head, head->max);
	j->fd = fd;
	j->data_len = data_len;
	j->crc = crc;
	j->werr = werr;
	spool_submit(sp, j, loop);
}

void
spool_set_sink(struct spool *sp, spool_sink_fn fn, void *arg)
{
	pthread_rwlock_wrlock(&sp->sink_lock);
	sp->sink = fn;
	sp->sink_arg = arg;
	pthread_rwlock_unlock(&sp->sink_lock);
}

/* ---- queue IDs -------------------------------------------------------- */

static _Atomic uint64_t qid_last_us;
static _Atomic uint32_t qid_counter;

static void
base36(char *out, size_t width, uint64_t v)
{
	static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

	for (size_t i = width; i-- > 0;) {
		out[i] = digits[v % 36];
		v /= 36;
	}
}

uint64_t
spool_qid_time_us(const char *qid)
{
	uint64_t v = 0;

	for (size_t i = 0; i < 11; i++) {
		char c = qid[i];

		if (c >= '0' && c <= '9')
			v = v * 36 + (uint64_t)(c - '0');
		else if (c >= 'A' && c <= 'Z')
			v = v * 36 + (uint64_t)(c - 'A' + 10);
		else
			return 0;
	}
	return v;
}

void
spool_new_qid(struct spool *sp, char out[SPOOL_QID_SIZE])
{
	struct timespec ts;
	uint64_t now, last, next;

	(void)sp;
	clock_gettime(CLOCK_REALTIME, &ts);
	now = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	/* Strictly increasing microseconds, even if the clock steps back or
	 * many threads ask within one microsecond. */
	last = atomic_load(&qid_last_us);
	do {
		next = now > last ? now : last + 1;
	} while (!atomic_compare_exchange_weak(&qid_last_us, &last, next));
	base36(out, 11, next);		/* 36^11 us: good for 4000 years */
	base36(out + 11, 5, atomic_fetch_add(&qid_counter, 1) % 60466176u);
	out[SPOOL_QID_LEN] = '\0';
}

/* ---- open, close ------------------------------------------------------ */

/* mkdir -p with mode for each level created. */
static int
mkdir_p(const char *path, mode_t mode)
{
	char *p = xstrdup(path);
	int rc = 0;

	for (char *s = p + 1; ; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;

			*s = '\0';
			if (mkdir(p, mode) < 0 && errno != EEXIST) {
				rc = -1;
				break;
			}
			*s = c;
			if (c == '\0')
				break;
		}
	}
	if (rc < 0) {
		int err = errno;

		free(p);
		errno = err;
		return -1;
	}
	free(p);
	return 0;
}

static int
open_sub(struct spool *sp, const char *sub)
{
	int fd;

	if (mkdirat(sp->dirfd, sub, 0700) < 0 && errno != EEXIST)
		return -1;
	fd = openat(sp->dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd;
}

/* Removes every entry of incoming/: none of them was acknowledged. */
static int
spool_clean_incoming(struct spool *sp)
{
	/* A fresh open: a dup() would share (and move) the read offset. */
	int fd = openat(sp->infd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir;
	struct dirent *de;

	if (fd < 0)
		return -1;
	dir = fdopendir(fd);
	if (dir == NULL) {
		close(fd);
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(sp->infd, de->d_name, 0) < 0 && errno != ENOENT) {
			int err = errno;

			closedir(dir);
			errno = err;
			return -1;
		}
	}
	closedir(dir);
	return 0;
}

struct spool *
spool_open(const char *dir, struct workpool *wp, unsigned threads)
{
	struct spool *sp = xcalloc(1, sizeof(*sp));
	const char *fail_sub = NULL;
	int err;

	sp->dir = xstrdup(dir);
	sp->dirfd = sp->infd = sp->qfd = sp->cfd = -1;
	sp->wp = wp;
	sp->cls = -1;
	sp->file_cls = -1;
	sp->recover_cls = -1;
	pthread_rwlock_init(&sp->sink_lock, NULL);

	if (mkdir_p(dir, 0700) < 0)
		goto fail;
	sp->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sp->dirfd < 0)
		goto fail;
	fail_sub = "incoming";
	if ((sp->infd = open_sub(sp, "incoming")) < 0)
		goto fail;
	fail_sub = "queue";
	if ((sp->qfd = open_sub(sp, "queue")) < 0)
		goto fail;
	fail_sub = "corrupt";
	if ((sp->cfd = open_sub(sp, "corrupt")) < 0)
		goto fail;
	fail_sub = "incoming";
	if (spool_clean_incoming(sp) < 0)
		goto fail;
	/* New folders must survive a crash before anything is acknowledged. */
	fail_sub = NULL;
	if (fsync(sp->dirfd) < 0)
		goto fail;

	/* Group commit: a worker takes every waiting commit as one round;
	 * at close, what is queued is still committed (DRAIN). */
	sp->cls = workpool_class_new(wp, "commit", threads > 0 ? threads : 1,
				     WORKPOOL_BATCH | WORKPOOL_DRAIN);
	if (sp->cls < 0) {
		errno = EAGAIN;
		goto fail;
	}
	/* Opening a streamed file and removing an abandoned one: their own
	 * class, so a session's DATA never waits behind a commit round. */
	sp->file_cls = workpool_class_new(wp, "spool-file", threads > 0 ? threads : 1,
					  WORKPOOL_DRAIN);
	if (sp->file_cls < 0) {
		errno = EAGAIN;
		goto fail;
	}
	return sp;
fail:
	err = errno;
	{
		char *path = fail_sub ? spool_path(sp, fail_sub, NULL)
				      : xstrdup(dir);

		spool_log_init_fail(path, err);
		free(path);
	}
	spool_close(&sp);
	return NULL;
}

void
spool_close(struct spool **spp)
{
	struct spool *sp = *spp;

	if (sp == NULL)
		return;
	/* Queued commits run, running ones finish; completions no loop ran
	 * are freed (spool_cancel). */
	atomic_store(&sp->stopping, 1);	/* a running recovery stops early */
	if (sp->recover_cls >= 0)
		workpool_class_stop(sp->wp, sp->recover_cls);
	if (sp->file_cls >= 0)
		workpool_class_stop(sp->wp, sp->file_cls);
	if (sp->cls >= 0)
		workpool_class_stop(sp->wp, sp->cls);
	if (sp->dirfd >= 0)
		close(sp->dirfd);
	if (sp->infd >= 0)
		close(sp->infd);
	if (sp->qfd >= 0)
		close(sp->qfd);
	if (sp->cfd >= 0)
		close(sp->cfd);
	pthread_rwlock_destroy(&sp->sink_lock);
	free(sp->dir);
	free(sp);
	*spp = NULL;
}
