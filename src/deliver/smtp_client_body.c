/*
 * smtp_client_body.c - streams a message's spooled data to the peer:
 * the tags first, then the data read 64 KiB at a time from the spool
 * file, dot-stuffed for DATA or cut into BDAT chunks, bare LF sent as
 * CRLF, CRC32C checked on the way, the end of data in the same write as
 * the last block.
 *
 * Never blocks the loop: a chunk is read with preadv2(RWF_NOWAIT), which
 * fails with EAGAIN when the pages are not cached; that chunk is then
 * read by a job of the "spool-read" pool class, which posts back. The job
 * owns the chunk buffer while it runs and frees it if the client went.
 * Memory: one chunk and the output buffer (a transformed chunk is at
 * most twice its size).
 */
#include "smtp_client_private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "crc32c.h"

#define SC_TAGS_PIECE (32 * 1024)

struct sc_read {
	struct workpool_job wj;		/* first */
	struct net_table *table;
	uintptr_t handle;
	int fd;				/* a dup, closed by the job */
	uint64_t off;
	size_t want;
	uint8_t *buf;
	ssize_t r;
	int err;
};

int
smtp_client_class_new(struct workpool *wp)
{
	return workpool_class_new(wp, "spool-read", 2, 0);
}

void
sc_body_start(struct smtp_client *c, int bdat)
{
	struct sc_body *b = &c->body;

	sc_body_fini(b);
	memset(b, 0, sizeof(*b));
	b->off = c->m.off;
	b->left = c->m.len;
	b->bol = 1;
	b->bdat = bdat;
}

void
sc_body_fini(struct sc_body *b)
{
	free(b->chunk);
	b->chunk = NULL;
}

/* Octets the transform adds for n octets of p: one CR per bare LF. */
static size_t
bare_lfs(const struct sc_body *b, const uint8_t *p, size_t n)
{
	size_t k = 0;
	int prev_cr = b->prev_cr;

	for (const uint8_t *q = p, *end = p + n; q < end;) {
		const uint8_t *lf = memchr(q, '\n', (size_t)(end - q));
		if (lf == NULL)
			break;
		if (!(lf == q ? prev_cr : lf[-1] == '\r'))
			k++;
		prev_cr = 0;
		q = lf + 1;
	}
	return k;
}

/* Appends p transformed: bare LF as CRLF; for DATA a '.' at a line
 * start doubled (RFC 5321 4.5.2). out has room (reserved by the caller). */
static int
transform(struct sc_body *b, const uint8_t *p, size_t n, struct buf *out)
{
	const uint8_t *end = p + n;

	while (p < end) {
		if (b->bol && !b->bdat && *p == '.' && buf_append_byte(out, '.') < 0)
			return -1;
		const uint8_t *lf = memchr(p, '\n', (size_t)(end - p));
		size_t run = lf == NULL ? (size_t)(end - p) : (size_t)(lf - p);
		if (run > 0) {
			if (buf_append(out, p, run) < 0)
				return -1;
			b->prev_cr = p[run - 1] == '\r';
			b->bol = 0;
			p += run;
		}
		if (lf == NULL)
			break;
		if (!b->prev_cr && buf_append_byte(out, '\r') < 0)
			return -1;
		if (buf_append_byte(out, '\n') < 0)
			return -1;
		b->prev_cr = 0;
		b->bol = 1;
		p++;
	}
	return 0;
}

/* One piece of the stream (tags or data) into out, with the end when
 * last. */
static int
emit(struct smtp_client *c, const uint8_t *p, size_t n, int last)
{
	struct sc_body *b = &c->body;
	struct buf *out = &c->cn->out;

	if (b->bdat) {
		size_t size = n + bare_lfs(b, p, n);
		if (size == 0 && !last)
			return 0;
		if (buf_appendf(out, "BDAT %zu%s\r\n", size, last ? " LAST" : "") < 0 ||
		    transform(b, p, n, out) < 0)
			return -1;
		b->pending++;
		if (last)
			b->ended = 1;
		return 0;
	}
	if (transform(b, p, n, out) < 0)
		return -1;
	if (last) {
		if (!b->bol && buf_append(out, "\r\n", 2) < 0)
			return -1;
		if (buf_append(out, ".\r\n", 3) < 0)
			return -1;
		b->ended = 1;
	}
	return 0;
}

static enum sc_pump
fail(struct smtp_client *c, enum cond_id cond, int err)
{
	c->res.cond = cond;
	c->res.err = err;
	return SC_PUMP_ERROR;
}

/* A chunk of r octets was read into b->chunk. */
static enum sc_pump
take(struct smtp_client *c, size_t r)
{
	struct sc_body *b = &c->body;

	b->crc = crc32c_update(b->crc, b->chunk, r);
	b->off += r;
	b->left -= r;
	int last = b->left == 0;
	if (last && b->crc != c->m.crc)
		return fail(c, COND_QUEUE_SPOOL_CORRUPT, EBADMSG);	/* no end of data */
	if (emit(c, b->chunk, r, last) < 0)
		return fail(c, COND_DELIVERY_PROTOCOL_ERROR, ENOBUFS);
	return last ? SC_PUMP_END : SC_PUMP_MORE;
}

static void
read_run(struct workpool_job *wj)
{
	struct sc_read *j = (struct sc_read *)wj;

	do {
		j->r = pread(j->fd, j->buf, j->want, (off_t)j->off);
	} while (j->r < 0 && errno == EINTR);
	j->err = j->r < 0 ? errno : 0;
	close(j->fd);
	j->fd = -1;
}

static void
read_free(struct sc_read *j)
{
	if (j->fd >= 0)
		close(j->fd);
	free(j->buf);
	free(j);
}

static void
read_cancel(struct workpool_job *wj)
{
	read_free((struct sc_read *)wj);
}

static void
read_done(struct loop *loop, struct workpool_job *wj)
{
	struct sc_read *j = (struct sc_read *)wj;
	struct sc_conn *cn = net_table_find(j->table, j->handle);
	struct smtp_client *c = cn != NULL ? cn->c : NULL;

	(void)loop;
	if (c == NULL || !c->body.reading) {
		read_free(j);
		return;
	}
	struct sc_body *b = &c->body;
	b->reading = 0;
	b->chunk = j->buf;
	j->buf = NULL;
	ssize_t r = j->r;
	int err = j->err;
	read_free(j);
	sc_hold(c);
	if (r <= 0)
		(void)fail(c, COND_QUEUE_SPOOL_READ_FAILED, r == 0 ? EBADMSG : err);
	else
		(void)take(c, (size_t)r);
	sc_body_continue(c);
	sc_unhold(c);
}

enum sc_pump
sc_body_pump(struct smtp_client *c)
{
	struct sc_body *b = &c->body;

	if (b->reading)
		return SC_PUMP_WAIT;
	if (b->ended)
		return SC_PUMP_END;
	size_t ntags = c->m.tags != NULL ? c->m.tags->len : 0;
	if (b->tags_off < ntags) {
		size_t n = ntags - b->tags_off;
		if (n > SC_TAGS_PIECE)
			n = SC_TAGS_PIECE;
		const uint8_t *p = c->m.tags->data + b->tags_off;
		b->tags_off += n;
		int last = b->tags_off == ntags && b->left == 0;
		if (last && c->m.crc != 0)
			return fail(c, COND_QUEUE_SPOOL_CORRUPT, EBADMSG);
		if (emit(c, p, n, last) < 0)
			return fail(c, COND_DELIVERY_PROTOCOL_ERROR, ENOBUFS);
		return last ? SC_PUMP_END : SC_PUMP_MORE;
	}
	if (b->left == 0) {
		if (c->m.crc != 0)	/* the CRC32C of no octets is 0 */
			return fail(c, COND_QUEUE_SPOOL_CORRUPT, EBADMSG);
		if (emit(c, NULL, 0, 1) < 0)
			return fail(c, COND_DELIVERY_PROTOCOL_ERROR, ENOBUFS);
		return SC_PUMP_END;
	}
	if (b->chunk == NULL)
		b->chunk = xmalloc(SC_CHUNK);
	size_t want = b->left < SC_CHUNK ? (size_t)b->left : SC_CHUNK;
	struct iovec iov = { b->chunk, want };
	ssize_t r = preadv2(c->m.fd, &iov, 1, (off_t)b->off, RWF_NOWAIT);
	if (r > 0)
		return take(c, (size_t)r);
	if (r == 0)
		return fail(c, COND_QUEUE_SPOOL_READ_FAILED, EBADMSG);	/* shorter than its record */
	if (errno != EAGAIN && errno != EOPNOTSUPP && errno != EINTR)
		return fail(c, COND_QUEUE_SPOOL_READ_FAILED, errno);
	/* Not in the page cache: a worker reads it. */
	struct sc_read *j = xcalloc(1, sizeof(*j));
	j->table = c->table;
	j->handle = net_session_handle(&c->cn->ns);
	j->fd = fcntl(c->m.fd, F_DUPFD_CLOEXEC, 0);
	j->off = b->off;
	j->want = want;
	j->buf = b->chunk;
	if (j->fd < 0) {
		int e = errno;
		free(j);
		return fail(c, COND_QUEUE_SPOOL_READ_FAILED, e);
	}
	workpool_job_init(&j->wj, read_run, read_done, read_cancel);
	b->chunk = NULL;
	b->reading = 1;
	if (workpool_submit(c->wp, c->p.read_cls, &j->wj, c->loop) < 0) {
		b->reading = 0;
		b->chunk = j->buf;
		j->buf = NULL;
		read_free(j);
		return fail(c, COND_QUEUE_SPOOL_READ_FAILED, ECANCELED);
	}
	return SC_PUMP_WAIT;
}
