/*
 * spool_recover.c - reading the queue back at start, and removal.
 *
 * Owns recovery: every queue/ file's envelope and tail (never its data)
 * are read with pread (the head exactly, its length in its first bytes,
 * the tail exactly from the end of the data on), the state log applied to the recipients, a torn
 * last state record truncated away, a damaged file moved to corrupt/
 * (QUEUE-SPOOL-CORRUPT), a version-1 file upgraded to version 2 once, and
 * each message handed to the sink (delivery) with recovered=1 (delivery
 * keeps only a small index entry and reads the message back with
 * spool_reload when its attempt comes due). At start it
 * runs on the pool's "recover" class (spool_recover_start), so the
 * listeners serve new sessions meanwhile; files newer than the start (a
 * session's commit) are left to their commit.
 */
#include "spool_private.h"

#include "crc32c.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "workpool.h"

/* Derived, so that a file within the bounds of spool.h is never refused:
 * the envelope, the data, the tags and the fixed records; the state log
 * has its own bound (SPOOL_MAX_LOG). */
#define SPOOL_MAX_FILE ((uint64_t)SPOOL_MAX_HEAD + SPOOL_MAX_DATA + SPOOL_MAX_TAGS + 256 + \
			SPOOL_MAX_LOG)

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
spool_log_read_fail(const struct spool *sp, const char *name, const char *op,
		    int err)
{
	char *path = spool_path(sp, "queue", name);
	struct log_ctx ctx = { .qid = spool_qid_valid(name) ? name : NULL };
	struct kv kvs[] = { KV("path", path), KV("op", op),
			    KV("errno", log_errno_name(err)),
			    KV("err", strerror(err)) };

	catalog_log(COND_QUEUE_SPOOL_READ_FAILED, &ctx, kvs, ARRAY_LEN(kvs));
	free(path);
}

/* Moves queue/<name> into corrupt/ and says why. */
static void
spool_set_aside(struct spool *sp, const char *name, const char *reason)
{
	char *path = spool_path(sp, "corrupt", name);
	struct log_ctx ctx = { .qid = spool_qid_valid(name) ? name : NULL };
	struct kv kvs[] = { KV("path", path), KV("reason", reason) };

	catalog_log(COND_QUEUE_SPOOL_CORRUPT, &ctx, kvs, ARRAY_LEN(kvs));
	if (renameat(sp->qfd, name, sp->cfd, name) < 0 ||
	    fsync(sp->cfd) < 0 || fsync(sp->qfd) < 0)
		spool_log_read_fail(sp, name, "rename", errno);
	free(path);
}

/* Reads n bytes at off. 0, -1 (errno), or -2 (the file is shorter). */
static int
read_at(int fd, uint8_t *p, size_t n, uint64_t off)
{
	while (n > 0) {
		ssize_t r = pread(fd, p, n, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			return -2;
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/* Writes a version-1 message (its data in memory) as version 2 over its
 * queue/ file: incoming/<qid> written and flushed, renamed over the old
 * one, queue/ flushed. From then on delivery reads the data from the file
 * like any other. */
static int
spool_upgrade(struct spool *sp, struct spool_msg *msg)
{
	struct buf head, tail;
	const char *op = "write";
	int fd = -1, rc = -1, err = 0;

	buf_init(&head, SPOOL_MAX_HEAD);
	buf_init(&tail, SPOOL_MAX_TAGS + SPOOL_TAIL_FIXED);
	uint32_t crc = crc32c_update(0, msg->data.data, msg->data.len);
	if (spool_enc_head(msg, msg->data.len, &head) < 0 ||
	    spool_enc_tail(&head, crc, &msg->tags, &tail) < 0) {
		err = EFBIG;
		goto out;
	}
	fd = openat(sp->infd, msg->qid, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0) {
		op = "open";
		err = errno;
		goto out;
	}
	if (spool_write_all(fd, head.data, head.len) < 0 ||
	    spool_write_all(fd, msg->data.data, msg->data.len) < 0 ||
	    spool_write_all(fd, tail.data, tail.len) < 0 || fdatasync(fd) < 0) {
		err = errno;
		goto out;
	}
	op = "rename";
	if (renameat(sp->infd, msg->qid, sp->qfd, msg->qid) < 0 || fsync(sp->qfd) < 0) {
		err = errno;
		goto out;
	}
	msg->file = spool_path(sp, "queue", msg->qid);
	msg->body_off = head.len;
	msg->body_len = msg->data.len;
	msg->body_crc = crc;
	buf_fini(&msg->data);
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (rc < 0) {
		(void)unlinkat(sp->infd, msg->qid, 0);
		(void)spool_log_fail(sp, msg->qid, "incoming", op, err, 0);
	}
	buf_fini(&head);
	buf_fini(&tail);
	return rc;
}

/* Reads queue/<name>'s envelope and tail. The message, or NULL with
 * *reason (a damaged file: set it aside) or *reason NULL (a read error,
 * logged). repair: a torn last state record is cut off (never for a
 * reader beside a running daemon: postern queue list). */
struct spool_msg *
spool_load(struct spool *sp, const char *name, const char **reason, int repair)
{
	struct stat st;
	struct spool_msg *msg = NULL;
	uint8_t *head = NULL, *tail = NULL;
	size_t hn = 0;
	int fd = openat(sp->qfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), v, r;
	const char *op = "open";

	*reason = NULL;
	if (fd < 0)
		goto read_fail;
	op = "stat";
	if (fstat(fd, &st) < 0)
		goto read_fail;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		op = "open";
		goto read_fail;
	}
	if ((uint64_t)st.st_size > SPOOL_MAX_FILE) {
		*reason = "file larger than 2 GiB";
		goto out;
	}
	if (st.st_size == 0) {
		*reason = "empty file";
		goto out;
	}
	/* The magic and the head record say how long the head is: it is
	 * read exactly, and no byte of the data. */
	op = "read";
	uint8_t prefix[SPOOL_HEAD_PREFIX];
	size_t pn = (uint64_t)st.st_size < sizeof(prefix) ? (size_t)st.st_size : sizeof(prefix);
	if (read_at(fd, prefix, pn, 0) == -1)
		goto read_fail;
	msg = spool_msg_new(0);
	int64_t hl = spool_head_len(prefix, pn);
	if (hl < 0 && !(pn >= 16 && memcmp(prefix, "POSTERN-SPOOL 1\n", 16) == 0)) {
		if (spool_decode_head(prefix, pn, msg, reason) >= 0 || *reason == NULL)
			*reason = "bad head record";
		goto bad;
	}
	if (hl < 0) {
		/* Version 1: read whole (once), then written as version 2. */
		spool_msg_free(&msg);
		head = xmalloc((size_t)st.st_size);
		if ((r = read_at(fd, head, (size_t)st.st_size, 0)) == -1)
			goto read_fail;
		msg = r == 0 ? spool_decode_ex(head, (size_t)st.st_size, 1, reason) : NULL;
		if (r == -2)
			*reason = "truncated";
		goto out;
	}
	if ((uint64_t)hl >= (uint64_t)st.st_size) {
		*reason = "truncated";
		goto bad;
	}
	hn = (size_t)hl;
	head = xmalloc(hn);
	if ((r = read_at(fd, head, hn, 0)) == -1)
		goto read_fail;
	v = r == -2 ? -1 : spool_decode_head(head, hn, msg, reason);
	if (r == -2)
		*reason = "truncated";
	if (v < 0)
		goto bad;
	/* Version 2: the tail, from the LF after the data to the end. */
	uint64_t tail_at = msg->body_off + msg->body_len;
	if (tail_at >= (uint64_t)st.st_size) {
		*reason = "truncated";
		goto bad;
	}
	size_t tn = (size_t)((uint64_t)st.st_size - tail_at);
	tail = xmalloc(tn);
	if ((r = read_at(fd, tail, tn, tail_at)) == -1)
		goto read_fail;
	if (r == -2 || spool_decode_tail(head, (size_t)msg->body_off, tail, tn, msg, reason) < 0) {
		if (r == -2)
			*reason = "truncated";
		goto bad;
	}
	if (msg->log_torn && repair) {
		/* A crash in the middle of an append: the torn record goes, so
		 * the next append follows the last good one. If it cannot go,
		 * later records are lost at the next start: at worst a
		 * recipient is tried again. */
		int wfd = openat(sp->qfd, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);

		if (wfd < 0 || ftruncate(wfd, (off_t)msg->log_end) < 0 || fdatasync(wfd) < 0)
			spool_log_read_fail(sp, name, "truncate", errno);
		if (wfd >= 0)
			close(wfd);
		msg->log_torn = 0;
	}
	msg->file = spool_path(sp, "queue", name);
	goto out;
read_fail:
	spool_log_read_fail(sp, name, op, errno);
bad:
	spool_msg_free(&msg);
out:
	if (fd >= 0)
		close(fd);
	free(head);
	free(tail);
	return msg;
}

/* spool_load, then the name checked against the queue ID and a version-1
 * file written as version 2 (NULL with *reason NULL when that fails:
 * logged, it stays version 1). */
static struct spool_msg *
spool_load_checked(struct spool *sp, const char *name, const char **reason)
{
	struct spool_msg *msg = spool_load(sp, name, reason, 1);

	if (msg != NULL && strcmp(msg->qid, name) != 0) {
		spool_msg_free(&msg);
		*reason = "queue ID does not match the file name";
	}
	if (msg != NULL && msg->file == NULL && spool_upgrade(sp, msg) < 0)
		spool_msg_free(&msg);
	return msg;
}

int
spool_reload(struct spool *sp, const char *qid, struct spool_msg **msgp)
{
	const char *reason = NULL;

	*msgp = NULL;
	if (!spool_qid_valid(qid))
		return -2;
	if (faccessat(sp->qfd, qid, F_OK, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
		return -2;	/* removed meanwhile: nothing left to deliver */
	*msgp = spool_load_checked(sp, qid, &reason);
	if (*msgp != NULL && (*msgp)->held) {
		spool_msg_free(msgp);	/* on hold: nothing to deliver now */
		return -2;
	}
	if (*msgp != NULL)
		return 0;
	if (reason == NULL)
		return -1;	/* a read error, logged: try again later */
	spool_set_aside(sp, qid, reason);
	return -2;
}

/* Recovers queue/ entries older than below (all when NULL). */
static long
spool_recover_below(struct spool *sp, const char *below)
{
	/* A fresh open: a dup() would share (and move) the read offset. */
	int fd = openat(sp->qfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	long count = 0;

	if (fd < 0 || (dir = fdopendir(fd)) == NULL) {
		spool_log_read_fail(sp, "", "open", errno);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (below != NULL && spool_qid_valid(de->d_name) && strcmp(de->d_name, below) >= 0)
			continue;	/* committed by this run: delivery has it */
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			names = xrealloc(names, cap * sizeof(*names));
		}
		names[n++] = xstrdup(de->d_name);
	}
	closedir(dir);
	if (n > 0)
		qsort(names, n, sizeof(*names), name_cmp);	/* oldest first */

	for (size_t i = 0; i < n; i++) {
		const char *reason = NULL;
		struct spool_msg *msg = NULL;

		if (!atomic_load(&sp->stopping))
			msg = spool_load_checked(sp, names[i], &reason);
		if (msg == NULL && reason != NULL) {
			spool_set_aside(sp, names[i], reason);
		} else if (msg != NULL && msg->held) {
			struct log_ctx ctx = { .qid = msg->qid };

			catalog_log(COND_QUEUE_HELD_SKIPPED, &ctx, NULL, 0);
			spool_msg_free(&msg);
		} else if (msg != NULL) {
			msg->recovered = 1;
			count++;
			spool_to_sink(sp, msg);
		}
		free(names[i]);
	}
	free(names);
	{
		struct kv kvs[] = { KVI("count", count) };

		catalog_log(COND_QUEUE_RECOVERED, NULL, kvs, ARRAY_LEN(kvs));
	}
	return count;
}

long
spool_recover(struct spool *sp)
{
	return spool_recover_below(sp, NULL);
}

struct recover_job {
	struct workpool_job wj;	/* first */
	struct spool *sp;
	char below[SPOOL_QID_SIZE];
};

static void
recover_run(struct workpool_job *wj)
{
	struct recover_job *j = (struct recover_job *)wj;

	(void)spool_recover_below(j->sp, j->below);
}

static void
recover_free(struct loop *loop, struct workpool_job *wj)
{
	(void)loop;
	free(wj);
}

static void
recover_cancel(struct workpool_job *wj)
{
	free(wj);
}

int
spool_recover_start(struct spool *sp)
{
	struct recover_job *j;

	sp->recover_cls = workpool_class_new(sp->wp, "recover", 1, 0);
	if (sp->recover_cls < 0)
		return -1;
	j = xcalloc(1, sizeof(*j));
	workpool_job_init(&j->wj, recover_run, recover_free, recover_cancel);
	j->sp = sp;
	/* Every queue ID a session takes from now on sorts after this one. */
	spool_new_qid(sp, j->below);
	if (workpool_submit(sp->wp, sp->recover_cls, &j->wj, NULL) < 0) {
		free(j);
		return -1;
	}
	return 0;
}

int
spool_remove(struct spool *sp, const char *qid)
{
	int err;

	if (spool_qid_valid(qid) && unlinkat(sp->qfd, qid, 0) == 0)
		return 0;
	err = spool_qid_valid(qid) ? errno : EINVAL;
	{
		char *path = spool_path(sp, "queue", spool_qid_valid(qid) ? qid : NULL);
		struct log_ctx ctx = { .qid = spool_qid_valid(qid) ? qid : NULL };
		struct kv kvs[] = { KV("path", path),
				    KV("errno", log_errno_name(err)),
				    KV("err", strerror(err)) };

		catalog_log(COND_QUEUE_SPOOL_DELETE_FAILED, &ctx, kvs,
			    ARRAY_LEN(kvs));
		free(path);
	}
	return -1;
}

void
spool_quarantine(struct spool *sp, const char *qid, const char *reason)
{
	if (spool_qid_valid(qid))
		spool_set_aside(sp, qid, reason);
}

