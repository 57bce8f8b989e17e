/*
 * spool_body.c - the message data streamed into and out of the spool.
 *
 * Owns the spool's body sink (store/body_sink.h): a session's message goes
 * into incoming/<qid> as it arrives. begin opens the file and writes the
 * envelope on the pool's "spool-file" class; write() calls go straight
 * from the loop into the page cache (bounded: one input buffer's worth at
 * a time, no open, fsync, rename or unlink on the loop); commit hands the
 * open file to the group commit (spool.c), which patches the data length
 * in, writes the tail and makes it durable; abort closes and unlinks it on
 * the pool. A write error is kept and reported by the commit, after the
 * session read the data to its end.
 *
 * Also owns reading the data back for delivery (spool_msg_stream,
 * spool_msg_copy): through a bounded buffer, checking the data's CRC32C
 * as it goes.
 */
#include "spool_private.h"

#include "crc32c.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "body_sink.h"

#define SPOOL_COPY_BUF (64 * 1024)

enum sink_state {
	SINK_NEW,
	SINK_OPENING,		/* the open job runs */
	SINK_OPEN,		/* writes go to fd */
	SINK_FAILED,		/* begin failed: only abort is left */
};

struct spool_sink {
	struct body_sink base;		/* first */
	struct workpool_job wj;		/* the open or remove job */
	struct spool *sp;		/* borrowed */
	char qid[SPOOL_QID_SIZE];
	char name[9 + SPOOL_QID_SIZE];	/* "incoming/<qid>", resolved afresh as
					 * the commit round does */
	struct buf head;		/* the envelope as written */
	int head_err;			/* the envelope did not encode */
	int fd;
	uint64_t len;			/* data bytes written */
	uint32_t crc;			/* their CRC32C */
	int werr;			/* the first write error */
	enum sink_state state;
	int abandoned;			/* aborted while opening */
	/* begin's completion */
	body_sink_done_fn done;
	void *arg;
	int status;
	enum cond_id cond;
};

#define SINK_OF(wjp) ((struct spool_sink *)((char *)(wjp) - offsetof(struct spool_sink, wj)))

static void
sink_free(struct spool_sink *k)
{
	buf_fini(&k->head);
	free(k);
}

/* ---- removal (abort) -------------------------------------------------- */

/* Worker: closes and unlinks the file; nothing of it stays. */
static void
sink_remove_run(struct workpool_job *wj)
{
	struct spool_sink *k = SINK_OF(wj);

	if (k->fd >= 0) {
		close(k->fd);
		k->fd = -1;
		(void)unlinkat(k->sp->dirfd, k->name, 0);
	}
}

/* Worker, right after run (submitted with loop NULL). */
static void
sink_remove_done(struct loop *loop, struct workpool_job *wj)
{
	(void)loop;
	sink_free(SINK_OF(wj));
}

static void
sink_remove_cancel(struct workpool_job *wj)
{
	struct spool_sink *k = SINK_OF(wj);

	sink_remove_run(wj);
	sink_free(k);
}

/* Removes what the sink wrote, on the pool; frees the sink. */
static void
sink_discard(struct spool_sink *k)
{
	if (k->fd < 0) {
		sink_free(k);
		return;
	}
	workpool_job_init(&k->wj, sink_remove_run, sink_remove_done, sink_remove_cancel);
	if (workpool_submit(k->sp->wp, k->sp->file_cls, &k->wj, NULL) < 0) {
		/* Shutting down: incoming/ is emptied at the next start. */
		close(k->fd);
		sink_free(k);
	}
}

/* ---- begin ------------------------------------------------------------ */

/* Worker: creates incoming/<qid> and writes the envelope. */
static void
sink_open_run(struct workpool_job *wj)
{
	struct spool_sink *k = SINK_OF(wj);
	const char *op = "open";
	int err;

	k->status = -1;
	if (k->head_err) {
		k->cond = spool_log_fail(k->sp, k->qid, "incoming", "write", EFBIG, 0);
		return;
	}
	k->fd = openat(k->sp->dirfd, k->name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	if (k->fd < 0) {
		k->cond = spool_log_fail(k->sp, k->qid, "incoming", op, errno, 1);
		return;
	}
	op = "write";
	if (spool_write_all(k->fd, k->head.data, k->head.len) < 0) {
		err = errno;
		close(k->fd);
		k->fd = -1;
		(void)unlinkat(k->sp->dirfd, k->name, 0);
		k->cond = spool_log_fail(k->sp, k->qid, "incoming", op, err, 0);
		return;
	}
	k->status = 0;
	k->cond = COND__COUNT;
}

/* On the session's loop. */
static void
sink_open_done(struct loop *loop, struct workpool_job *wj)
{
	struct spool_sink *k = SINK_OF(wj);

	if (k->abandoned) {
		sink_discard(k);
		return;
	}
	k->state = k->status == 0 ? SINK_OPEN : SINK_FAILED;
	k->done(loop, k->arg, k->status, k->cond);
}

/* The loop stopped first (shutdown): nobody waits any more. */
static void
sink_open_cancel(struct workpool_job *wj)
{
	sink_remove_cancel(wj);
}

static void
sink_begin(struct body_sink *sk, struct loop *loop, body_sink_done_fn done, void *arg)
{
	struct spool_sink *k = (struct spool_sink *)sk;

	k->done = done;
	k->arg = arg;
	k->state = SINK_OPENING;
	workpool_job_init(&k->wj, sink_open_run, sink_open_done, sink_open_cancel);
	if (workpool_submit(k->sp->wp, k->sp->file_cls, &k->wj, loop) < 0) {
		k->state = SINK_FAILED;
		k->cond = spool_log_fail(k->sp, k->qid, "incoming", "open", ESHUTDOWN, 1);
		done(loop, arg, -1, k->cond);
	}
}

/* ---- write, commit, abort --------------------------------------------- */

static int
sink_write(struct body_sink *sk, const void *p, size_t n)
{
	struct spool_sink *k = (struct spool_sink *)sk;

	if (k->state != SINK_OPEN || k->werr != 0)
		return -1;
	if (n > SPOOL_MAX_DATA - k->len) {
		k->werr = EFBIG;
		return -1;
	}
	if (spool_write_all(k->fd, p, n) < 0) {
		k->werr = errno != 0 ? errno : EIO;
		return -1;
	}
	k->crc = crc32c_update(k->crc, p, n);
	k->len += n;
	return 0;
}

static void
sink_commit(struct body_sink *sk, struct spool_msg *msg, struct loop *loop,
	    body_sink_done_fn done, void *arg)
{
	struct spool_sink *k = (struct spool_sink *)sk;
	int fd = k->fd;

	if (k->state != SINK_OPEN)
		PANIC("body sink committed before it was open");
	k->fd = -1;
	spool_commit_streamed(k->sp, msg, fd, &k->head, k->len, k->crc, k->werr, loop,
			      done, arg);
	sink_free(k);
}

static void
sink_abort(struct body_sink *sk)
{
	struct spool_sink *k = (struct spool_sink *)sk;

	if (k->state == SINK_OPENING) {
		k->abandoned = 1;	/* sink_open_done removes it */
		return;
	}
	sink_discard(k);
}

static const struct body_sink_ops spool_sink_ops = {
	.begin = sink_begin,
	.write = sink_write,
	.commit = sink_commit,
	.abort = sink_abort,
};

struct body_sink *
spool_body_sink(struct spool *sp, const struct spool_msg *msg)
{
	struct spool_sink *k = xcalloc(1, sizeof(*k));

	k->base.ops = &spool_sink_ops;
	k->sp = sp;
	k->fd = -1;
	k->state = SINK_NEW;
	memcpy(k->qid, msg->qid, sizeof(k->qid));
	k->qid[SPOOL_QID_SIZE - 1] = '\0';
	if (snprintf(k->name, sizeof(k->name), "incoming/%s", k->qid) < 0)
		k->name[0] = '\0';
	buf_init(&k->head, SPOOL_MAX_HEAD);
	if (spool_enc_head(msg, 0, &k->head) < 0)
		k->head_err = 1;
	return &k->base;
}

/* ---- reading back ----------------------------------------------------- */

uint64_t
spool_msg_size(const struct spool_msg *msg)
{
	return msg->tags.len + (msg->file != NULL ? msg->body_len : msg->data.len);
}

int
spool_msg_stream(const struct spool_msg *msg, spool_emit_fn fn, void *arg, const char **op)
{
	uint8_t *buf;
	uint64_t off, left;
	uint32_t crc = 0;
	int in, err, rc;

	*op = "write";
	if ((rc = fn(arg, msg->tags.data, msg->tags.len)) != 0)
		return rc < 0 ? -1 : 0;
	if (msg->file == NULL)
		return fn(arg, msg->data.data, msg->data.len) < 0 ? -1 : 0;
	*op = "open";
	in = open(msg->file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (in < 0)
		return -1;
	buf = xmalloc(SPOOL_COPY_BUF);
	off = msg->body_off;
	left = msg->body_len;
	while (left > 0) {
		size_t want = left < SPOOL_COPY_BUF ? (size_t)left : SPOOL_COPY_BUF;
		ssize_t r = pread(in, buf, want, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			*op = "read";
			if (r == 0)
				errno = EBADMSG;	/* shorter than its record */
			goto fail;
		}
		crc = crc32c_update(crc, buf, (size_t)r);
		*op = "write";
		rc = fn(arg, buf, (size_t)r);
		if (rc < 0)
			goto fail;
		if (rc > 0)
			goto out;	/* the caller has what it wanted */
		off += (uint64_t)r;
		left -= (uint64_t)r;
	}
	if (crc != msg->body_crc) {
		*op = "read";
		errno = EBADMSG;
		goto fail;
	}
out:
	free(buf);
	close(in);
	return 0;
fail:
	err = errno;
	free(buf);
	close(in);
	errno = err;
	return -1;
}

static int
copy_to_fd(void *arg, const void *p, size_t n)
{
	return spool_write_all(*(int *)arg, p, n);
}

int
spool_msg_copy(const struct spool_msg *msg, int fd, const char **op)
{
	return spool_msg_stream(msg, copy_to_fd, &fd, op);
}

/* ---- the state log ---------------------------------------------------- */

int
spool_state_done(struct buf *out, size_t idx)
{
	return spool_enc_state(out, "done", idx, 0, 0, NULL);
}

int
spool_state_done_detail(struct buf *out, size_t idx, const char *detail)
{
	return spool_enc_state(out, "done", idx, 0, 0, detail);
}

int
spool_state_deferred(struct buf *out, size_t idx, unsigned attempts, int64_t next,
		     const char *reply)
{
	return spool_enc_state(out, "deferred", idx, attempts, next, reply);
}

int
spool_append_state(const struct spool_msg *msg, const struct buf *recs, int sync)
{
	const char *op = "open";
	int fd, err;

	if (recs->len == 0)
		return 0;
	if (msg->file == NULL) {
		errno = ENOENT;
		goto fail_noclose;
	}
	/* O_APPEND: one write() of whole records after the last good one
	 * (recovery truncated any torn one). */
	fd = open(msg->file, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		goto fail_noclose;
	op = "write";
	if (spool_write_all(fd, recs->data, recs->len) < 0)
		goto fail;
	op = "fsync";
	if (sync && fdatasync(fd) < 0)
		goto fail;
	op = "close";
	if (close(fd) < 0)
		goto fail_noclose;
	return 0;
fail:
	err = errno;
	close(fd);
	errno = err;
fail_noclose:
	err = errno;
	{
		struct log_ctx ctx = { .qid = msg->qid };
		struct kv kvs[] = { KV("path", msg->file != NULL ? msg->file : "-"),
				    KV("op", op),
				    KV("errno", log_errno_name(err)),
				    KV("err", strerror(err)) };

		catalog_log(COND_QUEUE_WRITE_FAILED, &ctx, kvs, ARRAY_LEN(kvs));
	}
	return -1;
}
