/*
 * spool.c - the durable message spool: file format, group commit, recovery.
 *
 * Owns the spool folders (incoming/, queue/, corrupt/), the commit jobs
 * (the worker pool's "commit" class, core/workpool.h), and the on-disk
 * format below. Hands
 * committed messages to the sink (delivery) and never looks at them again;
 * removal is asked for by delivery through spool_remove().
 *
 * Invariant: a file appears in queue/ only complete (written, flushed,
 * renamed), and a completion with status 0 is posted only after the
 * queue/ directory itself was flushed. Every failure path unlinks what it
 * wrote, so nothing half-written is ever visible in queue/.
 *
 * File format (version 1). A sequence of records, each
 *
 *     KEY SP LEN ":" VALUE LF
 *
 * where KEY is a lower-case word, LEN the decimal byte count of VALUE (no
 * sign, no leading zeros) and VALUE any bytes (so nothing needs escaping).
 * The first line is the magic "POSTERN-SPOOL 1" LF. Then, in this order:
 *
 *     qid      16 characters [0-9A-Z]
 *     from     reverse-path mailbox, empty for <>
 *     rcpts    decimal count N (1..SPOOL_MAX_RCPTS), then N times:
 *       rcpt     the mailbox as accepted
 *       orcpt    ORCPT= value (only when given)
 *       notify   decimal NOTIFY bits
 *     ret      decimal SMTP_RET_* value
 *     envid    ENVID= value (only when given)
 *     body8    0 or 1
 *     utf8     0 or 1
 *     client   client address text
 *     helo     HELO/EHLO argument
 *     received decimal unix seconds (may carry a '-')
 *     data     the message bytes, exactly LEN of them
 *     end      8 lower-case hex digits: CRC32C (Castagnoli) of every byte
 *              of the file before the "end" record
 *
 * Nothing may follow the end record. String values may not contain NUL.
 * A reader that finds anything else (truncation, garbage, a wrong count or
 * checksum) rejects the whole file with a reason; it never guesses.
 */
#include "spool.h"

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
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "workpool.h"

#define SPOOL_MAGIC "POSTERN-SPOOL 1\n"
#define SPOOL_QID_LEN 16
#define SPOOL_MAX_HEAD ((size_t)1 << 30)	/* encoded envelope */
#define SPOOL_END_LEN 15		/* "end 8:" + 8 hex + LF */
/* Derived, so that a file within the bounds of spool.h is never refused:
 * the envelope, the data record's "data LEN:" and the rest. */
#define SPOOL_MAX_FILE ((uint64_t)SPOOL_MAX_HEAD + SPOOL_MAX_DATA + 64)

/* The largest envelope: every field at SPOOL_MAX_FIELD, each record with
 * its key and a 20-digit length, fits SPOOL_MAX_HEAD. */
#define SPOOL_REC_MAX(field) ((uint64_t)(field) + 32)
_Static_assert((uint64_t)SPOOL_MAX_RCPTS * (2 * SPOOL_REC_MAX(SPOOL_MAX_FIELD) +
					    SPOOL_REC_MAX(20)) +
		       8 * SPOOL_REC_MAX(SPOOL_MAX_FIELD) + 64 <= SPOOL_MAX_HEAD,
	       "SPOOL_MAX_HEAD must hold the largest envelope");

/* ---- small helpers ---------------------------------------------------- */

/* The symbolic errno name ("EFBIG"), or "E<number>" in buf. */
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

static int
qid_valid(const char *qid)
{
	size_t i;

	for (i = 0; i < SPOOL_QID_LEN; i++) {
		char c = qid[i];

		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z')))
			return 0;
	}
	return qid[SPOOL_QID_LEN] == '\0';
}

/* ---- CRC32C ----------------------------------------------------------- */

static uint32_t crc32c_table[256];
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

static void
crc32c_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		crc32c_table[i] = c;
	}
}

/* Running CRC: start with crc = 0, feed pieces in order. */
static uint32_t
crc32c_update(uint32_t crc, const void *data, size_t n)
{
	const uint8_t *p = data;

	pthread_once(&crc32c_once, crc32c_init);
	crc = ~crc;
	while (n-- > 0)
		crc = crc32c_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* ---- encoding --------------------------------------------------------- */

static int
enc_rec(struct buf *b, const char *key, const void *p, size_t n)
{
	if (buf_appendf(b, "%s %zu:", key, n) < 0 || buf_append(b, p, n) < 0 ||
	    buf_append_byte(b, '\n') < 0)
		return -1;
	return 0;
}

static int
enc_str(struct buf *b, const char *key, const char *s)
{
	if (s == NULL)
		s = "";
	return enc_rec(b, key, s, strlen(s));
}

static int
enc_num(struct buf *b, const char *key, int64_t v)
{
	char tmp[32];
	int n = snprintf(tmp, sizeof(tmp), "%" PRId64, v);

	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -1;
	return enc_rec(b, key, tmp, (size_t)n);
}

static int
enc_field_ok(const char *s)
{
	return s == NULL || strlen(s) <= SPOOL_MAX_FIELD;
}

/* Everything up to and including "data LEN:". Refuses (-1) a message past
 * the bounds of spool.h, which the decoder would refuse at recovery. */
static int
enc_head(const struct spool_msg *msg, struct buf *b)
{
	if (msg->nrcpts < 1 || msg->nrcpts > SPOOL_MAX_RCPTS ||
	    (uint64_t)msg->data.len > SPOOL_MAX_DATA || !enc_field_ok(msg->from) ||
	    !enc_field_ok(msg->envid) || !enc_field_ok(msg->client) || !enc_field_ok(msg->helo))
		return -1;
	for (size_t i = 0; i < msg->nrcpts; i++)
		if (!enc_field_ok(msg->rcpts[i].addr) || !enc_field_ok(msg->rcpts[i].orcpt))
			return -1;
	if (buf_append_str(b, SPOOL_MAGIC) < 0 ||
	    enc_str(b, "qid", msg->qid) < 0 ||
	    enc_str(b, "from", msg->from) < 0 ||
	    enc_num(b, "rcpts", (int64_t)msg->nrcpts) < 0)
		return -1;
	for (size_t i = 0; i < msg->nrcpts; i++) {
		const struct spool_rcpt *r = &msg->rcpts[i];

		if (enc_str(b, "rcpt", r->addr) < 0)
			return -1;
		if (r->orcpt != NULL && enc_str(b, "orcpt", r->orcpt) < 0)
			return -1;
		if (enc_num(b, "notify", r->notify) < 0)
			return -1;
	}
	if (enc_num(b, "ret", msg->ret) < 0)
		return -1;
	if (msg->envid != NULL && enc_str(b, "envid", msg->envid) < 0)
		return -1;
	if (enc_num(b, "body8", msg->body_8bit ? 1 : 0) < 0 ||
	    enc_num(b, "utf8", msg->smtputf8 ? 1 : 0) < 0 ||
	    enc_str(b, "client", msg->client) < 0 ||
	    enc_str(b, "helo", msg->helo) < 0 ||
	    enc_num(b, "received", msg->received_at) < 0 ||
	    buf_appendf(b, "data %zu:", msg->data.len) < 0)
		return -1;
	return 0;
}

/* "\nend 8:xxxxxxxx\n" for a file whose head and data are given. */
static void
enc_trailer(const struct buf *head, const struct spool_msg *msg,
	    char out[SPOOL_END_LEN + 2])
{
	uint32_t crc = crc32c_update(0, head->data, head->len);
	static const char hex[] = "0123456789abcdef";

	crc = crc32c_update(crc, msg->data.data, msg->data.len);
	crc = crc32c_update(crc, "\n", 1);
	memcpy(out, "\nend 8:", 7);
	for (int i = 0; i < 8; i++)
		out[7 + i] = hex[(crc >> (28 - 4 * i)) & 0xf];
	out[15] = '\n';
	out[16] = '\0';
}

int
spool_encode(const struct spool_msg *msg, struct buf *out)
{
	struct buf head;
	char trailer[SPOOL_END_LEN + 2];
	int rc = -1;

	buf_init(&head, SPOOL_MAX_HEAD);
	if (enc_head(msg, &head) < 0)
		goto done;
	enc_trailer(&head, msg, trailer);
	if (buf_append(out, head.data, head.len) < 0 ||
	    buf_append(out, msg->data.data, msg->data.len) < 0 ||
	    buf_append(out, trailer, SPOOL_END_LEN + 1) < 0)
		goto done;
	rc = 0;
done:
	buf_fini(&head);
	return rc;
}

/* ---- decoding --------------------------------------------------------- */

struct dec {
	const uint8_t *p;
	size_t n, off;
	const char *reason;
};

/* 1 if the next record's key is key. */
static int
dec_peek(const struct dec *d, const char *key)
{
	size_t k = strlen(key);

	return d->n - d->off > k && memcmp(d->p + d->off, key, k) == 0 &&
	       d->p[d->off + k] == ' ';
}

/* Reads record key into (*val, *len); len must be <= max. */
static int
dec_rec(struct dec *d, const char *key, uint64_t max, const uint8_t **val,
	uint64_t *len)
{
	size_t k = strlen(key), digits = 0;
	uint64_t v = 0;

	if (!dec_peek(d, key)) {
		d->reason = d->off >= d->n ? "truncated" : "unexpected record";
		return -1;
	}
	d->off += k + 1;
	while (d->off < d->n && d->p[d->off] >= '0' && d->p[d->off] <= '9') {
		unsigned c = d->p[d->off] - '0';

		if (digits > 0 && v == 0) {
			d->reason = "length with leading zero";
			return -1;
		}
		if (v > (UINT64_MAX - c) / 10) {
			d->reason = "length overflows";
			return -1;
		}
		v = v * 10 + c;
		digits++;
		d->off++;
	}
	if (d->off >= d->n) {
		d->reason = "truncated";
		return -1;
	}
	if (digits == 0 || d->p[d->off] != ':') {
		d->reason = "bad record length";
		return -1;
	}
	d->off++;
	if (v > max) {
		d->reason = "record too long";
		return -1;
	}
	if (v >= d->n - d->off) {	/* the value and its LF */
		d->reason = "truncated";
		return -1;
	}
	*val = d->p + d->off;
	*len = v;
	d->off += (size_t)v;
	if (d->p[d->off] != '\n') {
		d->reason = "record not ended by LF";
		return -1;
	}
	d->off++;
	return 0;
}

/* A string record, copied with NUL; NUL bytes inside are refused. */
static int
dec_str(struct dec *d, const char *key, char **out)
{
	const uint8_t *v;
	uint64_t len;

	if (dec_rec(d, key, SPOOL_MAX_FIELD, &v, &len) < 0)
		return -1;
	if (memchr(v, '\0', (size_t)len) != NULL) {
		d->reason = "NUL in a string record";
		return -1;
	}
	*out = xstrndup((const char *)v, (size_t)len);
	return 0;
}

/* A decimal record in [min, max]; an optional '-' only if min < 0. */
static int
dec_num(struct dec *d, const char *key, int64_t min, int64_t max, int64_t *out)
{
	const uint8_t *v;
	uint64_t len, mag = 0, i = 0, limit;
	int neg = 0;

	if (dec_rec(d, key, 20, &v, &len) < 0)
		return -1;
	if (len > 0 && v[0] == '-') {
		neg = 1;
		i = 1;
	}
	if (i == len || (v[i] == '0' && len - i > 1) ||
	    (neg && (min >= 0 || v[i] == '0'))) {
		d->reason = "bad number";
		return -1;
	}
	limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; i < len; i++) {
		unsigned c;

		if (v[i] < '0' || v[i] > '9') {
			d->reason = "bad number";
			return -1;
		}
		c = v[i] - '0';
		if (mag > (limit - c) / 10) {
			d->reason = "number out of range";
			return -1;
		}
		mag = mag * 10 + c;
	}
	if (neg)
		*out = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
	else
		*out = (int64_t)mag;
	if (*out < min || *out > max) {
		d->reason = "number out of range";
		return -1;
	}
	return 0;
}

static int
hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int
dec_body(struct dec *d, struct spool_msg *msg)
{
	const uint8_t *v;
	uint64_t len;
	int64_t num, nrcpts;
	char *s;

	if (d->n == 0) {
		d->reason = "empty file";
		return -1;
	}
	if (d->n < sizeof(SPOOL_MAGIC) - 1 ||
	    memcmp(d->p, SPOOL_MAGIC, sizeof(SPOOL_MAGIC) - 1) != 0) {
		d->reason = d->n < sizeof(SPOOL_MAGIC) - 1 &&
				    memcmp(d->p, SPOOL_MAGIC, d->n) == 0
			    ? "truncated" : "bad magic or version";
		return -1;
	}
	d->off = sizeof(SPOOL_MAGIC) - 1;

	if (dec_rec(d, "qid", SPOOL_QID_LEN, &v, &len) < 0)
		return -1;
	if (len != SPOOL_QID_LEN) {
		d->reason = "bad queue ID";
		return -1;
	}
	memcpy(msg->qid, v, SPOOL_QID_LEN);
	msg->qid[SPOOL_QID_LEN] = '\0';
	if (!qid_valid(msg->qid)) {
		d->reason = "bad queue ID";
		return -1;
	}
	free(msg->from);
	msg->from = NULL;
	if (dec_str(d, "from", &msg->from) < 0 ||
	    dec_num(d, "rcpts", 1, SPOOL_MAX_RCPTS, &nrcpts) < 0)
		return -1;
	for (int64_t i = 0; i < nrcpts; i++) {
		const uint8_t *orcpt = NULL;
		uint64_t orcpt_len = 0;

		if (dec_rec(d, "rcpt", SPOOL_MAX_FIELD, &v, &len) < 0)
			return -1;
		if (memchr(v, '\0', (size_t)len) != NULL) {
			d->reason = "NUL in a string record";
			return -1;
		}
		if (dec_peek(d, "orcpt")) {
			if (dec_rec(d, "orcpt", SPOOL_MAX_FIELD, &orcpt,
				    &orcpt_len) < 0)
				return -1;
			if (memchr(orcpt, '\0', (size_t)orcpt_len) != NULL) {
				d->reason = "NUL in a string record";
				return -1;
			}
		}
		if (dec_num(d, "notify", 0, 0xff, &num) < 0)
			return -1;
		spool_msg_add_rcpt(msg, (const char *)v, (size_t)len,
				   (const char *)orcpt, (size_t)orcpt_len,
				   (unsigned)num);
	}
	if (dec_num(d, "ret", 0, 0xff, &num) < 0)
		return -1;
	msg->ret = (int)num;
	if (dec_peek(d, "envid") && dec_str(d, "envid", &msg->envid) < 0)
		return -1;
	if (dec_num(d, "body8", 0, 1, &num) < 0)
		return -1;
	msg->body_8bit = (int)num;
	if (dec_num(d, "utf8", 0, 1, &num) < 0)
		return -1;
	msg->smtputf8 = (int)num;
	if (dec_str(d, "client", &s) < 0)
		return -1;
	msg->client = s;
	if (dec_str(d, "helo", &s) < 0)
		return -1;
	msg->helo = s;
	if (dec_num(d, "received", INT64_MIN, INT64_MAX, &msg->received_at) < 0)
		return -1;
	if (dec_rec(d, "data", SPOOL_MAX_DATA, &v, &len) < 0)
		return -1;
	buf_init(&msg->data, (size_t)len);
	if (buf_append(&msg->data, v, (size_t)len) < 0) {
		d->reason = "data too large";
		return -1;
	}
	return 0;
}

struct spool_msg *
spool_decode(const uint8_t *p, size_t n, const char **reason)
{
	struct dec d = { .p = p, .n = n, .off = 0, .reason = NULL };
	struct spool_msg *msg = spool_msg_new(0);
	uint32_t want = 0, got;

	if (dec_body(&d, msg) < 0)
		goto fail;
	/* The end record: exactly SPOOL_END_LEN bytes, then nothing. */
	if (n - d.off < SPOOL_END_LEN) {
		d.reason = memcmp(p + d.off, "end 8:", n - d.off < 6 ? n - d.off : 6) == 0
			   ? "truncated" : "missing end record";
		goto fail;
	}
	if (memcmp(p + d.off, "end 8:", 6) != 0) {
		d.reason = "missing end record";
		goto fail;
	}
	for (int i = 0; i < 8; i++) {
		int h = hexval(p[d.off + 6 + i]);

		if (h < 0) {
			d.reason = "bad checksum text";
			goto fail;
		}
		want = (want << 4) | (uint32_t)h;
	}
	if (p[d.off + 14] != '\n') {
		d.reason = "bad end record";
		goto fail;
	}
	if (n - d.off > SPOOL_END_LEN) {
		d.reason = "trailing garbage after end record";
		goto fail;
	}
	got = crc32c_update(0, p, d.off);
	if (got != want) {
		d.reason = "checksum mismatch";
		goto fail;
	}
	return msg;
fail:
	if (reason != NULL)
		*reason = d.reason != NULL ? d.reason : "invalid";
	spool_msg_free(&msg);
	return NULL;
}

/* ---- messages --------------------------------------------------------- */

struct spool_msg *
spool_msg_new(size_t max_data)
{
	struct spool_msg *msg = xcalloc(1, sizeof(*msg));

	msg->from = xstrdup("");
	buf_init(&msg->data, max_data);
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
	}
	free(msg->rcpts);
	free(msg->from);
	free(msg->envid);
	free(msg->client);
	free(msg->helo);
	buf_fini(&msg->data);
	free(msg);
	*msgp = NULL;
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
};

struct spool {
	char *dir;		/* owned, as given */
	int dirfd, infd, qfd, cfd;
	struct workpool *wp;	/* borrowed */
	int cls;		/* the "commit" class, -1 before */
	pthread_rwlock_t sink_lock;	/* read: a sink call; write: a change */
	spool_sink_fn sink;
	void *sink_arg;
};

/* Hands msg to the sink, or frees it when there is none. */
static void
spool_to_sink(struct spool *sp, struct spool_msg *msg)
{
	pthread_rwlock_rdlock(&sp->sink_lock);
	if (sp->sink != NULL)
		sp->sink(msg, sp->sink_arg);
	else
		spool_msg_free(&msg);
	pthread_rwlock_unlock(&sp->sink_lock);
}

static char *
spool_path(const struct spool *sp, const char *sub, const char *name)
{
	return xasprintf("%s/%s%s%s", sp->dir, sub, name ? "/" : "",
			 name ? name : "");
}

/* Logs a commit failure and returns its condition. */
static enum cond_id
spool_log_fail(const struct spool *sp, const char *qid, const char *sub,
	       const char *op, int err, int creating)
{
	struct log_ctx ctx = { .qid = qid_valid(qid) ? qid : NULL };
	char ebuf[24];
	char *path = spool_path(sp, sub, ctx.qid);
	const char *ename = errno_name(err, ebuf, sizeof(ebuf));
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
	char ebuf[24];
	struct kv kvs[] = { KV("subsystem", "spool"), KV("path", path),
			    KV("errno", errno_name(err, ebuf, sizeof(ebuf))),
			    KV("err", strerror(err)) };

	catalog_log(COND_STARTUP_INIT_FAILED, NULL, kvs, ARRAY_LEN(kvs));
}

/* Writes every iov byte, through short writes and EINTR. */
static int
write_all(int fd, struct iovec *iov, int iovcnt)
{
	while (iovcnt > 0) {
		ssize_t w = writev(fd, iov, iovcnt);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		while (iovcnt > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/* Writes incoming/<qid> and flushes it; on failure nothing is left. */
static int
spool_write_one(struct spool *sp, int infd, struct spool_job *j)
{
	struct spool_msg *msg = j->msg;
	struct buf head;
	char trailer[SPOOL_END_LEN + 2];
	struct iovec iov[3];
	const char *op = "open";
	int fd = -1, err;

	if (!qid_valid(msg->qid)) {
		j->cond = spool_log_fail(sp, msg->qid, "incoming", op, EINVAL, 1);
		return -1;
	}
	if (infd < 0) {
		j->cond = spool_log_fail(sp, msg->qid, "incoming", op, -infd, 1);
		return -1;
	}
	buf_init(&head, SPOOL_MAX_HEAD);
	if (enc_head(msg, &head) < 0) {
		buf_fini(&head);
		j->cond = spool_log_fail(sp, msg->qid, "incoming", "write",
					 EFBIG, 0);
		return -1;
	}
	enc_trailer(&head, msg, trailer);

	fd = openat(infd, msg->qid, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC,
		    0600);
	if (fd < 0) {
		err = errno;
		buf_fini(&head);
		j->cond = spool_log_fail(sp, msg->qid, "incoming", op, err, 1);
		return -1;
	}
	iov[0] = (struct iovec){ head.data, head.len };
	iov[1] = (struct iovec){ msg->data.data, msg->data.len };
	iov[2] = (struct iovec){ trailer, SPOOL_END_LEN + 1 };
	op = "write";
	if (write_all(fd, iov, 3) < 0)
		goto fail;
	op = "fsync";
	if (fdatasync(fd) < 0)
		goto fail;
	op = "close";
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	buf_fini(&head);
	return 0;
fail:
	err = errno;
	if (fd >= 0)
		close(fd);
	(void)unlinkat(infd, msg->qid, 0);
	buf_fini(&head);
	j->cond = spool_log_fail(sp, msg->qid, "incoming", op, err, 0);
	return -1;
}

/* rename(2) that refuses to replace an existing queue/ entry. */
static int
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
	free(j);
}

/* The pool stopped before the completion ran (its loop stopped first). */
static void
spool_cancel(struct workpool_job *wj)
{
	struct spool_job *j = (struct spool_job *)wj;

	spool_msg_free(&j->msg);
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
	/* The folders are opened afresh each round, so a folder an operator
	 * replaced while Postern runs is used, not the deleted one. */
	int infd = openat(sp->dirfd, "incoming", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (infd < 0)
		infd = -errno;	/* spool_write_one reports it */
	int qfd = openat(sp->dirfd, "queue", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	for (j = list; j != NULL; j = JOB_NEXT(j))
		j->status = spool_write_one(sp, infd, j);
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
	}
	/* One directory flush covers every rename of the round. */
	if (renamed > 0 && fsync(qfd) < 0) {
		int err = errno;

		for (j = list; j != NULL; j = JOB_NEXT(j)) {
			if (!j->renamed)
				continue;
			(void)unlinkat(qfd, j->msg->qid, 0);
			j->renamed = 0;
			j->status = -1;
			j->cond = spool_log_fail(sp, j->msg->qid, "queue",
						 "fsync", err, 0);
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

void
spool_commit(struct spool *sp, struct spool_msg *msg, struct loop *loop,
	     spool_done_fn done, void *arg)
{
	struct spool_job *j = xcalloc(1, sizeof(*j));

	workpool_job_init(&j->wj, spool_round, spool_complete, spool_cancel);
	j->sp = sp;
	j->msg = msg;
	j->done = done;
	j->arg = arg;
	if (workpool_submit(sp->wp, sp->cls, &j->wj, loop) < 0) {
		/* Only after spool_close began: a failed commit, at once. */
		j->cond = spool_log_fail(sp, msg->qid, "incoming", "open", ESHUTDOWN, 1);
		spool_msg_free(&j->msg);
		if (done != NULL)
			done(loop, arg, -1, j->cond);
		free(j);
	}
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

/* ---- recovery and removal --------------------------------------------- */

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
spool_log_read_fail(const struct spool *sp, const char *name, const char *op,
		    int err)
{
	char ebuf[24];
	char *path = spool_path(sp, "queue", name);
	struct log_ctx ctx = { .qid = qid_valid(name) ? name : NULL };
	struct kv kvs[] = { KV("path", path), KV("op", op),
			    KV("errno", errno_name(err, ebuf, sizeof(ebuf))),
			    KV("err", strerror(err)) };

	catalog_log(COND_QUEUE_SPOOL_READ_FAILED, &ctx, kvs, ARRAY_LEN(kvs));
	free(path);
}

/* Moves queue/<name> into corrupt/ and says why. */
static void
spool_set_aside(struct spool *sp, const char *name, const char *reason)
{
	char *path = spool_path(sp, "corrupt", name);
	struct log_ctx ctx = { .qid = qid_valid(name) ? name : NULL };
	struct kv kvs[] = { KV("path", path), KV("reason", reason) };

	catalog_log(COND_QUEUE_SPOOL_CORRUPT, &ctx, kvs, ARRAY_LEN(kvs));
	if (renameat(sp->qfd, name, sp->cfd, name) < 0 ||
	    fsync(sp->cfd) < 0 || fsync(sp->qfd) < 0)
		spool_log_read_fail(sp, name, "rename", errno);
	free(path);
}

/* Reads queue/<name> whole. 0 ok, -1 read error (logged), -2 too big. */
static int
spool_read_file(struct spool *sp, const char *name, uint8_t **out,
		size_t *outlen)
{
	struct stat st;
	uint8_t *p;
	size_t got = 0;
	int fd = openat(sp->qfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0) {
		spool_log_read_fail(sp, name, "open", errno);
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		spool_log_read_fail(sp, name, "stat", errno);
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		spool_log_read_fail(sp, name, "open", EINVAL);
		close(fd);
		return -1;
	}
	if ((uint64_t)st.st_size > SPOOL_MAX_FILE) {
		close(fd);
		return -2;
	}
	p = xmalloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, p + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			spool_log_read_fail(sp, name, "read", errno);
			free(p);
			close(fd);
			return -1;
		}
		if (r == 0)
			break;	/* shrank under us: decode says truncated */
		got += (size_t)r;
	}
	close(fd);
	*out = p;
	*outlen = got;
	return 0;
}

long
spool_recover(struct spool *sp)
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
		uint8_t *p = NULL;
		size_t len = 0;
		const char *reason = NULL;
		struct spool_msg *msg;
		int rc = spool_read_file(sp, names[i], &p, &len);

		if (rc == -2) {
			spool_set_aside(sp, names[i], "file larger than 2 GiB");
		} else if (rc == 0) {
			msg = spool_decode(p, len, &reason);
			free(p);
			if (msg != NULL && strcmp(msg->qid, names[i]) != 0) {
				spool_msg_free(&msg);
				reason = "queue ID does not match the file name";
			}
			if (msg == NULL) {
				spool_set_aside(sp, names[i], reason);
			} else {
				msg->recovered = 1;
				count++;
				spool_to_sink(sp, msg);
			}
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

int
spool_remove(struct spool *sp, const char *qid)
{
	int err;

	if (qid_valid(qid) && unlinkat(sp->qfd, qid, 0) == 0)
		return 0;
	err = qid_valid(qid) ? errno : EINVAL;
	{
		char ebuf[24];
		char *path = spool_path(sp, "queue", qid_valid(qid) ? qid : NULL);
		struct log_ctx ctx = { .qid = qid_valid(qid) ? qid : NULL };
		struct kv kvs[] = { KV("path", path),
				    KV("errno", errno_name(err, ebuf, sizeof(ebuf))),
				    KV("err", strerror(err)) };

		catalog_log(COND_QUEUE_SPOOL_DELETE_FAILED, &ctx, kvs,
			    ARRAY_LEN(kvs));
		free(path);
	}
	return -1;
}
