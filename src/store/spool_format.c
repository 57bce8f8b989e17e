/*
 * spool_format.c - the spool file format: encoding and decoding.
 *
 * Owns the bytes of a spool file; spool.c owns the folders and the
 * commit, spool_body.c the streaming writer and reader.
 *
 * File format (version 2). A sequence of records, each
 *
 *     KEY SP LEN ":" VALUE LF
 *
 * where KEY is a lower-case word, LEN the decimal byte count of VALUE (no
 * sign, no leading zeros, except in the data record) and VALUE any bytes
 * (so nothing needs escaping). The first line is the magic
 * "POSTERN-SPOOL 2" LF. Then, in this order:
 *
 *     head     exactly 10 digits: the length of everything up to and
 *              including "data LEN:" (where the data begins), so a
 *              reader takes the head in one read and no data byte
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
 *     data     the message bytes (our Received field first); LEN is
 *              exactly 20 digits, leading zeros included, so the writer
 *              streams the data and patches the length in at the end
 *     body     8 lower-case hex digits: CRC32C of the data bytes alone
 *     tags     header fields the policy checks added at the end of data
 *              (delivery puts them on top of the data); may be empty
 *     end      8 lower-case hex digits: CRC32C (Castagnoli) of every byte
 *              of the file before it except the data bytes (the "head",
 *              up to "data LEN:", then the LF after the data up to "end")
 *
 * After the end record comes the state log, appended by delivery (the
 * only part of a file that changes after its commit), records of the form
 *
 *     state LEN:<crc> SP <kind> SP <rcpt> [SP <fields>]
 *
 * where <crc> is 8 lower-case hex digits, the CRC32C of the rest of the
 * value, and <rcpt> the recipient's index (0-based, in file order):
 *
 *     done R [DETAIL]                 delivered (a Maildir copy in new/,
 *                                     or a peer's 250: DETAIL names it);
 *                                     never retried
 *     deferred R ATTEMPTS NEXT REPLY  ATTEMPTS made, the next one due at
 *                                     NEXT (unix seconds), the last reply
 *     failed R REPLY                  failed for good, the reply
 *     dsn R BIT                       a DSN was sent for R (BIT: one
 *                                     SPOOL_DSN_* value: failed, delayed,
 *                                     delivered, relayed, expanded)
 *     origin 0 O                      the message is a DSN of ours (O 1)
 *                                     or one sent on to the postmaster
 *                                     (O 2): written at its composition
 *     hold 0 ON                       an operator's hold (ON 1) or
 *                                     release (ON 0) of the whole
 *                                     message (postern queue hold)
 *
 * REPLY of failed and deferred records is, since DSNs, the detail
 * "STATUS COND MTA DIAG" (spool_detail_format: enhanced status, catalog
 * ID, remote MTA, each one word or "-", then the diagnostic text); an
 * older free-form reply is read as the diagnostic.
 *
 * Later records apply over earlier ones. A kind this version does not
 * know is skipped (room for hold, tags, ...). A record
 * that is torn (a crash in the middle of an append) or fails its CRC ends
 * the log: recovery truncates the file there, so at worst an attempt is
 * made again (at least once).
 *
 * So recovery checks a file's envelope and tail without reading its data;
 * delivery checks the body record as it streams the data out.
 * Nothing but state records may follow the end record. String values may not contain NUL.
 * A reader that finds anything else (truncation, garbage, a wrong count or
 * checksum) rejects the whole file with a reason; it never guesses.
 *
 * Version 1 ("POSTERN-SPOOL 1", written before streaming) is still read:
 * the same records with a plain data record, no body or tags record, and
 * an end record covering every byte before it; its data is read into
 * memory at recovery (delivery takes it from there).
 */
#include "spool_private.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "log.h"

#define SPOOL_MAGIC1 "POSTERN-SPOOL 1\n"
#define SPOOL_MAGIC2 "POSTERN-SPOOL 2\n"
_Static_assert(sizeof(SPOOL_MAGIC1) == sizeof(SPOOL_MAGIC2), "one magic length");

/* The largest envelope: every field at SPOOL_MAX_FIELD, each record with
 * its key and a 20-digit length, fits SPOOL_MAX_HEAD. */
#define SPOOL_REC_MAX(field) ((uint64_t)(field) + 32)
_Static_assert((uint64_t)SPOOL_MAX_RCPTS * (2 * SPOOL_REC_MAX(SPOOL_MAX_FIELD) +
					    SPOOL_REC_MAX(20)) +
		       8 * SPOOL_REC_MAX(SPOOL_MAX_FIELD) + 64 <= SPOOL_MAX_HEAD,
	       "SPOOL_MAX_HEAD must hold the largest envelope");

/* ---- small helpers ---------------------------------------------------- */

int
spool_qid_valid(const char *qid)
{
	size_t i;

	for (i = 0; i < SPOOL_QID_LEN; i++) {
		char c = qid[i];

		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z')))
			return 0;
	}
	return qid[SPOOL_QID_LEN] == '\0';
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

/* Everything up to and including "data <20 digits>:". Refuses (-1) a
 * message past the bounds of spool.h, which the decoder would refuse at
 * recovery. */
int
spool_enc_head(const struct spool_msg *msg, uint64_t data_len, struct buf *b)
{
	if (msg->nrcpts < 1 || msg->nrcpts > SPOOL_MAX_RCPTS ||
	    data_len > SPOOL_MAX_DATA || !enc_field_ok(msg->from) ||
	    !enc_field_ok(msg->envid) || !enc_field_ok(msg->client) || !enc_field_ok(msg->helo))
		return -1;
	for (size_t i = 0; i < msg->nrcpts; i++)
		if (!enc_field_ok(msg->rcpts[i].addr) || !enc_field_ok(msg->rcpts[i].orcpt))
			return -1;
	size_t start = b->len;

	if (buf_append_str(b, SPOOL_MAGIC2) < 0 ||
	    buf_append_str(b, "head 10:0000000000\n") < 0 ||
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
	    buf_appendf(b, "data %0*" PRIu64 ":", SPOOL_DATA_DIGITS, data_len) < 0)
		return -1;
	/* The head record: where the data begins, so recovery reads exactly
	 * the head (SPOOL_MAX_HEAD < 10^10). */
	char digits[11];
	if (snprintf(digits, sizeof(digits), "%010zu", b->len - start) != 10)
		return -1;
	memcpy(b->data + start + sizeof(SPOOL_MAGIC2) - 1 + 8, digits, 10);
	return 0;
}

int64_t
spool_head_len(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	if (n < SPOOL_HEAD_PREFIX || memcmp(p, SPOOL_MAGIC2, sizeof(SPOOL_MAGIC2) - 1) != 0 ||
	    memcmp(p + sizeof(SPOOL_MAGIC2) - 1, "head 10:", 8) != 0 ||
	    p[SPOOL_HEAD_PREFIX - 1] != '\n')
		return -1;
	for (size_t i = sizeof(SPOOL_MAGIC2) - 1 + 8; i < SPOOL_HEAD_PREFIX - 1; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	return v >= SPOOL_HEAD_PREFIX && v <= SPOOL_MAX_HEAD ? (int64_t)v : -1;
}

void
spool_head_set_len(struct buf *head, uint64_t data_len)
{
	char digits[SPOOL_DATA_DIGITS + 1];

	if (head->len < SPOOL_DATA_DIGITS + 1)
		PANIC("spool head without its data record");
	if (snprintf(digits, sizeof(digits), "%0*" PRIu64, SPOOL_DATA_DIGITS, data_len) !=
	    SPOOL_DATA_DIGITS)
		PANIC("data length does not fit its record");
	memcpy(head->data + head->len - SPOOL_DATA_DIGITS - 1, digits, SPOOL_DATA_DIGITS);
}

static void
hex8(char out[8], uint32_t v)
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 0; i < 8; i++)
		out[i] = hex[(v >> (28 - 4 * i)) & 0xf];
}

int
spool_enc_tail(const struct buf *head, uint32_t body_crc, const struct buf *tags,
	       struct buf *out)
{
	char h[8];
	uint32_t crc;
	size_t start = out->len;

	hex8(h, body_crc);
	if (buf_append_str(out, "\nbody 8:") < 0 || buf_append(out, h, 8) < 0 ||
	    buf_append_byte(out, '\n') < 0 ||
	    enc_rec(out, "tags", tags != NULL ? tags->data : (const uint8_t *)"",
		    tags != NULL ? tags->len : 0) < 0)
		return -1;
	crc = crc32c_update(0, head->data, head->len);
	crc = crc32c_update(crc, out->data + start, out->len - start);
	hex8(h, crc);
	if (buf_append_str(out, "end 8:") < 0 || buf_append(out, h, 8) < 0 ||
	    buf_append_byte(out, '\n') < 0)
		return -1;
	return 0;
}

int
spool_encode(const struct spool_msg *msg, struct buf *out)
{
	struct buf head, tail;
	int rc = -1;

	buf_init(&head, SPOOL_MAX_HEAD);
	buf_init(&tail, SPOOL_MAX_TRACE + SPOOL_TAIL_FIXED + msg->tags.len);
	if (spool_enc_head(msg, msg->data.len, &head) < 0 ||
	    spool_enc_tail(&head, crc32c_update(0, msg->data.data, msg->data.len), &msg->tags,
			   &tail) < 0)
		goto done;
	if (buf_append(out, head.data, head.len) < 0 ||
	    buf_append(out, msg->data.data, msg->data.len) < 0 ||
	    buf_append(out, tail.data, tail.len) < 0)
		goto done;
	rc = 0;
done:
	buf_fini(&head);
	buf_fini(&tail);
	return rc;
}

/* ---- decoding --------------------------------------------------------- */

struct dec {
	const uint8_t *p;
	size_t n, off;
	const char *reason;
	int version;		/* 1 or 2, from the magic */
	int copy_body;		/* see spool_decode_ex */
	uint64_t head_len;	/* version 2: the head record's value */
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

static int dec_data2(struct dec *d, struct spool_msg *msg);

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
	if (d->n >= sizeof(SPOOL_MAGIC2) - 1 &&
	    memcmp(d->p, SPOOL_MAGIC2, sizeof(SPOOL_MAGIC2) - 1) == 0) {
		d->version = 2;
	} else if (d->n >= sizeof(SPOOL_MAGIC1) - 1 &&
		   memcmp(d->p, SPOOL_MAGIC1, sizeof(SPOOL_MAGIC1) - 1) == 0) {
		d->version = 1;
	} else {
		d->reason = d->n < sizeof(SPOOL_MAGIC2) - 1 &&
				    (memcmp(d->p, SPOOL_MAGIC2, d->n) == 0 ||
				     memcmp(d->p, SPOOL_MAGIC1, d->n) == 0)
			    ? "truncated" : "bad magic or version";
		return -1;
	}
	d->off = sizeof(SPOOL_MAGIC2) - 1;	/* both magics have one length */
	if (d->version == 2) {
		int64_t hl = spool_head_len(d->p, d->n);

		if (hl < 0) {
			d->reason = d->n < SPOOL_HEAD_PREFIX ? "truncated" : "bad head record";
			return -1;
		}
		d->head_len = (uint64_t)hl;
		d->off = SPOOL_HEAD_PREFIX;
	}

	if (dec_rec(d, "qid", SPOOL_QID_LEN, &v, &len) < 0)
		return -1;
	if (len != SPOOL_QID_LEN) {
		d->reason = "bad queue ID";
		return -1;
	}
	memcpy(msg->qid, v, SPOOL_QID_LEN);
	msg->qid[SPOOL_QID_LEN] = '\0';
	if (!spool_qid_valid(msg->qid)) {
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
	if (d->version == 2)
		return dec_data2(d, msg);	/* the data and the tail: the caller */
	if (dec_rec(d, "data", SPOOL_MAX_DATA, &v, &len) < 0)
		return -1;
	buf_init(&msg->data, (size_t)len);
	if (buf_append(&msg->data, v, (size_t)len) < 0) {
		d->reason = "data too large";
		return -1;
	}
	return 0;
}

/* "<key> 8:" and 8 lower-case hex digits and LF, at d->off. */
static int
dec_hex8(struct dec *d, const char *key, uint32_t *out)
{
	size_t k = strlen(key);
	uint32_t v = 0;

	if (d->n - d->off < k + 12) {
		d->reason = "truncated";
		return -1;
	}
	if (memcmp(d->p + d->off, key, k) != 0 || memcmp(d->p + d->off + k, " 8:", 3) != 0) {
		d->reason = strcmp(key, "end") == 0 ? "missing end record" : "unexpected record";
		return -1;
	}
	d->off += k + 3;
	for (int i = 0; i < 8; i++) {
		int h = hexval(d->p[d->off + (size_t)i]);

		if (h < 0) {
			d->reason = "bad checksum text";
			return -1;
		}
		v = (v << 4) | (uint32_t)h;
	}
	if (d->p[d->off + 8] != '\n') {
		d->reason = "bad checksum record";
		return -1;
	}
	d->off += 9;
	*out = v;
	return 0;
}

/* Version 2: "data <20 digits>:"; the data itself is not looked at. */
static int
dec_data2(struct dec *d, struct spool_msg *msg)
{
	uint64_t len = 0;

	if (d->n - d->off < SPOOL_DATA_REC_LEN || memcmp(d->p + d->off, "data ", 5) != 0) {
		d->reason = d->n - d->off < SPOOL_DATA_REC_LEN ? "truncated" : "unexpected record";
		return -1;
	}
	for (size_t i = 0; i < SPOOL_DATA_DIGITS; i++) {
		uint8_t c = d->p[d->off + 5 + i];

		if (c < '0' || c > '9') {
			d->reason = "bad record length";
			return -1;
		}
		len = len * 10 + (uint64_t)(c - '0');
		if (len > SPOOL_MAX_DATA) {
			d->reason = "record too long";
			return -1;
		}
	}
	if (d->p[d->off + SPOOL_DATA_REC_LEN - 1] != ':') {
		d->reason = "bad record length";
		return -1;
	}
	d->off += SPOOL_DATA_REC_LEN;
	if (d->off != d->head_len) {
		d->reason = "bad head record";
		return -1;
	}
	msg->body_off = d->off;
	msg->body_len = len;
	return 0;
}

/* The state log: "state LEN:<crc> <kind> <rcpt> ..." records, appended
 * after the end record. A torn or damaged record ends the log (recovery
 * truncates the file there). */
static void
dec_state_log(struct dec *d, struct spool_msg *msg, uint64_t base)
{
	size_t off = d->off;
	const uint8_t *v;
	size_t len;

	msg->log_off = base + d->off;
	msg->log_end = msg->log_off;
	while (off < d->n) {
		if (spool_state_next(d->p, d->n, &off, &v, &len) < 0 ||
		    spool_state_apply(msg, v, len) < 0) {
			msg->log_torn = 1;
			return;
		}
		msg->log_end = base + off;
	}
}

int
spool_state_next(const uint8_t *p, size_t n, size_t *off, const uint8_t **val, size_t *vlen)
{
	struct dec d = { .p = p, .n = n, .off = *off, .reason = NULL, .version = 2 };
	const uint8_t *v;
	uint64_t len;
	uint32_t want = 0;
	int bad = 0;

	if (dec_rec(&d, "state", SPOOL_MAX_STATE_REC, &v, &len) < 0 || len < 10 || v[8] != ' ')
		return -1;
	for (int i = 0; i < 8; i++) {
		int h = hexval(v[i]);

		bad |= h < 0;
		want = (want << 4) | (uint32_t)(h & 0xf);
	}
	if (bad || crc32c_update(0, v + 9, (size_t)len - 9) != want)
		return -1;
	*val = v + 9;
	*vlen = (size_t)len - 9;
	*off = d.off;
	return 0;
}

int
spool_decode_tail(const uint8_t *head, size_t head_n, const uint8_t *tail, size_t tail_n,
		  struct spool_msg *msg, const char **reason)
{
	struct dec t = { .p = tail, .n = tail_n, .off = 0, .reason = NULL, .version = 2 };
	const uint8_t *v;
	uint64_t tlen;
	uint32_t body_crc, want, got;

	if (tail_n == 0 || tail[0] != '\n') {
		*reason = tail_n == 0 ? "truncated" : "record not ended by LF";
		return -1;
	}
	t.off = 1;
	if (dec_hex8(&t, "body", &body_crc) < 0 ||
	    dec_rec(&t, "tags", SPOOL_MAX_TAGS, &v, &tlen) < 0)
		goto fail;
	buf_reset(&msg->tags);
	if (buf_append(&msg->tags, v, (size_t)tlen) < 0) {
		t.reason = "tags too large";
		goto fail;
	}
	size_t end_start = t.off;
	if (dec_hex8(&t, "end", &want) < 0)
		goto fail;
	got = crc32c_update(0, head, head_n);
	got = crc32c_update(got, tail, end_start);
	if (got != want) {
		t.reason = "checksum mismatch";
		goto fail;
	}
	msg->body_crc = body_crc;
	dec_state_log(&t, msg, msg->body_off + msg->body_len);
	return 0;
fail:
	*reason = t.reason != NULL ? t.reason : "invalid";
	return -1;
}

int
spool_decode_head(const uint8_t *p, size_t n, struct spool_msg *msg, const char **reason)
{
	struct dec d = { .p = p, .n = n, .off = 0, .reason = NULL };

	if (dec_body(&d, msg) < 0) {
		*reason = d.reason != NULL ? d.reason : "invalid";
		return -1;
	}
	return d.version;
}

/* Version 1: the end record covers every byte before it. */
static int
dec_end1(struct dec *d)
{
	uint32_t want, got;
	size_t end_start = d->off;

	if (dec_hex8(d, "end", &want) < 0)
		return -1;
	if (d->off != d->n) {
		d->reason = "trailing garbage after end record";
		return -1;
	}
	got = crc32c_update(0, d->p, end_start);
	if (got != want) {
		d->reason = "checksum mismatch";
		return -1;
	}
	return 0;
}

struct spool_msg *
spool_decode_ex(const uint8_t *p, size_t n, int copy_body, const char **reason)
{
	struct dec d = { .p = p, .n = n, .off = 0, .reason = NULL, .copy_body = copy_body };
	struct spool_msg *msg = spool_msg_new(0);
	const char *why = NULL;

	if (dec_body(&d, msg) < 0)
		goto fail;
	if (d.version == 1) {
		if (dec_end1(&d) < 0)
			goto fail;
		return msg;
	}
	if (msg->body_len >= n - msg->body_off) {	/* the data and its LF */
		d.reason = "truncated";
		goto fail;
	}
	if (spool_decode_tail(p, (size_t)msg->body_off, p + msg->body_off + msg->body_len,
			      n - (size_t)(msg->body_off + msg->body_len), msg, &why) < 0) {
		d.reason = why;
		goto fail;
	}
	if (msg->log_torn) {
		d.reason = "bad state record";
		goto fail;
	}
	if (copy_body) {
		const uint8_t *body = p + msg->body_off;

		if (crc32c_update(0, body, (size_t)msg->body_len) != msg->body_crc) {
			d.reason = "data checksum mismatch";
			goto fail;
		}
		buf_init(&msg->data, (size_t)msg->body_len);
		if (buf_append(&msg->data, body, (size_t)msg->body_len) < 0) {
			d.reason = "data too large";
			goto fail;
		}
	}
	return msg;
fail:
	if (reason != NULL)
		*reason = d.reason != NULL ? d.reason : "invalid";
	spool_msg_free(&msg);
	return NULL;
}

struct spool_msg *
spool_decode(const uint8_t *p, size_t n, const char **reason)
{
	return spool_decode_ex(p, n, 1, reason);
}
