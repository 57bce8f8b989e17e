/*
 * spool_compose.c - a new message written by Postern itself (a DSN) on a
 * worker thread, into the spool like any received one.
 *
 * Owns the composing file: begin creates incoming/<qid> and writes the
 * envelope (spool_enc_head, the format's one encoder), writes and copies
 * add data (an original message is streamed from its own spool file
 * through spool_msg_stream's bounded buffer, never read whole), commit
 * patches the length in, writes the tail (spool_enc_tail) and any state
 * records (the "origin" mark), renames the file into queue/ and makes it
 * durable with one shared syncfs (store/flush.h), as a commit round does;
 * only then is the message handed to the spool's sink (delivery). Any
 * failure unlinks what was written: nothing half-written is in queue/.
 */
#include "spool_private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"
#include "flush.h"
#include "log.h"

struct spool_compose {
	struct spool *sp;		/* borrowed */
	struct spool_msg *msg;		/* owned until the commit */
	char name[9 + SPOOL_QID_SIZE];	/* "incoming/<qid>" */
	struct buf head;		/* the envelope as written */
	int fd;
	uint64_t len;			/* data bytes written */
	uint32_t crc;
	int werr;			/* the first write error, 0 if none */
	const char *wop;		/* and its operation */
};

/* Logs op's failure on incoming/<qid> (QUEUE-WRITE-FAILED, ...). */
static void
compose_fail(struct spool_compose *c, const char *op, int err, int creating)
{
	(void)spool_log_fail(c->sp, c->msg->qid, "incoming", op, err, creating);
}

struct spool_compose *
spool_compose_begin(struct spool *sp, struct spool_msg *msg)
{
	struct spool_compose *c = xcalloc(1, sizeof(*c));

	c->sp = sp;
	c->msg = msg;
	c->fd = -1;
	if (!spool_qid_valid(msg->qid))
		spool_new_qid(sp, msg->qid);
	if (snprintf(c->name, sizeof(c->name), "incoming/%s", msg->qid) < 0)
		c->name[0] = '\0';
	buf_init(&c->head, SPOOL_MAX_HEAD);
	if (spool_enc_head(msg, 0, &c->head) < 0) {
		compose_fail(c, "write", EFBIG, 0);
		goto fail;
	}
	c->fd = openat(sp->dirfd, c->name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	if (c->fd < 0) {
		compose_fail(c, "open", errno, 1);
		goto fail;
	}
	if (spool_write_all(c->fd, c->head.data, c->head.len) < 0) {
		compose_fail(c, "write", errno, 0);
		goto fail;
	}
	return c;
fail:
	spool_compose_abort(&c);
	return NULL;
}

int
spool_compose_write(struct spool_compose *c, const void *p, size_t n)
{
	if (c->werr != 0)
		return -1;
	if (n > SPOOL_MAX_DATA - c->len) {
		c->werr = EFBIG;
		c->wop = "write";
		return -1;
	}
	if (spool_write_all(c->fd, p, n) < 0) {
		c->werr = errno != 0 ? errno : EIO;
		c->wop = "write";
		return -1;
	}
	c->crc = crc32c_update(c->crc, p, n);
	c->len += n;
	return 0;
}

/* The header section only: up to and including the empty line. */
struct hdr_copy {
	struct spool_compose *c;
	int state;	/* bytes of CR LF CR LF (or LF LF) seen */
};

static int
copy_all(void *arg, const void *p, size_t n)
{
	return spool_compose_write(arg, p, n);
}

static int
copy_headers(void *arg, const void *p, size_t n)
{
	struct hdr_copy *h = arg;
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++) {
		if (b[i] == '\n') {
			if (h->state == 1) {	/* LF, then (CR) LF: the empty line */
				if (spool_compose_write(h->c, b, i + 1) < 0)
					return -1;
				return 1;
			}
			h->state = 1;
		} else if (b[i] != '\r') {
			h->state = 0;
		}
	}
	return spool_compose_write(h->c, b, n);
}

int
spool_compose_copy(struct spool_compose *c, const struct spool_msg *orig, int headers_only)
{
	struct hdr_copy h = { .c = c, .state = 1 };	/* an empty first line ends it */
	const char *op;
	int rc;

	if (c->werr != 0)
		return -1;
	rc = headers_only ? spool_msg_stream(orig, copy_headers, &h, &op)
			  : spool_msg_stream(orig, copy_all, c, &op);
	if (rc < 0 && c->werr == 0)
		return -2;	/* the original could not be read; ours is fine */
	return rc;
}

int
spool_compose_commit(struct spool_compose **cp, const struct buf *state)
{
	struct spool_compose *c = *cp;
	struct spool *sp = c->sp;
	struct spool_msg *msg = c->msg;
	struct buf tail;
	const char *op = "write";
	int infd = -1, qfd = -1, err = 0, renamed = 0;

	*cp = NULL;
	buf_init(&tail, SPOOL_MAX_TAGS + SPOOL_TAIL_FIXED);
	if (c->werr != 0) {
		err = c->werr;
		op = c->wop != NULL ? c->wop : "write";
		goto fail;
	}
	spool_head_set_len(&c->head, c->len);
	ssize_t w = pwrite(c->fd, c->head.data + c->head.len - SPOOL_DATA_DIGITS - 1,
			   SPOOL_DATA_DIGITS, (off_t)(c->head.len - SPOOL_DATA_DIGITS - 1));
	if (w != SPOOL_DATA_DIGITS) {
		err = w < 0 ? errno : EIO;
		goto fail;
	}
	if (spool_enc_tail(&c->head, c->crc, &msg->tags, &tail) < 0 ||
	    (state != NULL && buf_append(&tail, state->data, state->len) < 0)) {
		err = EFBIG;
		goto fail;
	}
	if (spool_write_all(c->fd, tail.data, tail.len) < 0) {
		err = errno;
		goto fail;
	}
	op = "close";
	int fd = c->fd;
	c->fd = -1;
	if (close(fd) < 0) {
		err = errno;
		goto fail;
	}
	op = "rename";
	infd = openat(sp->dirfd, "incoming", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	qfd = openat(sp->dirfd, "queue", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (infd < 0 || qfd < 0 || spool_rename(infd, qfd, msg->qid) < 0) {
		err = errno;
		goto fail;
	}
	renamed = 1;
	/* One syncfs: the file's data and its rename (shared with whoever
	 * flushes the same filesystem meanwhile). */
	op = "syncfs";
	if (store_flush(qfd) < 0) {
		err = errno;
		(void)unlinkat(qfd, msg->qid, 0);
		goto fail;
	}
	close(infd);
	close(qfd);
	buf_fini(&tail);
	free(msg->file);
	msg->file = spool_path(sp, "queue", msg->qid);
	msg->body_off = c->head.len;
	msg->body_len = c->len;
	msg->body_crc = c->crc;
	c->msg = NULL;
	spool_compose_abort(&c);
	spool_to_sink(sp, msg);		/* delivered like any message */
	return 0;
fail:
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	if (!renamed)
		(void)unlinkat(sp->dirfd, c->name, 0);
	if (infd >= 0)
		close(infd);
	if (qfd >= 0)
		close(qfd);
	buf_fini(&tail);
	(void)spool_log_fail(sp, msg->qid, renamed ? "queue" : "incoming", op,
			     err != 0 ? err : EIO, 0);
	spool_compose_abort(&c);
	return -1;
}

void
spool_compose_abort(struct spool_compose **cp)
{
	struct spool_compose *c = *cp;

	if (c == NULL)
		return;
	if (c->fd >= 0) {
		close(c->fd);
		(void)unlinkat(c->sp->dirfd, c->name, 0);
	}
	spool_msg_free(&c->msg);
	buf_fini(&c->head);
	free(c);
	*cp = NULL;
}
