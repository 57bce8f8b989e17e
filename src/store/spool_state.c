/*
 * spool_state.c - the state log's records (the grammar is in
 * spool_format.c's header): encoding one for delivery to append, and
 * applying one that recovery read back to the message's recipients;
 * the detail text ("STATUS COND MTA DIAG") failed and deferred records
 * carry for a DSN.
 */
#include "spool_private.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"

/* A decimal field of a state record: digits up to SP or the end. */
static int
state_num(const uint8_t **p, const uint8_t *end, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	const uint8_t *q = *p;

	if (q == end || *q < '0' || *q > '9')
		return -1;
	while (q < end && *q >= '0' && *q <= '9') {
		v = v * 10 + (uint64_t)(*q - '0');
		if (v > max)
			return -1;
		q++;
	}
	if (q < end && *q++ != ' ')
		return -1;
	*p = q;
	*out = v;
	return 0;
}

/* The reply or detail text at the end of a record, kept for a DSN. */
static void
state_keep_last(struct spool_rcpt *r, const uint8_t *q, const uint8_t *end)
{
	free(r->last);
	r->last = NULL;
	if (q < end && memchr(q, '\0', (size_t)(end - q)) == NULL)
		r->last = xstrndup((const char *)q, (size_t)(end - q));
}

/* "hold 0 ON": an operator's hold (1) or release (0) of the message. */
static int
state_apply_hold(struct spool_msg *msg, const uint8_t *q, const uint8_t *end)
{
	uint64_t on;

	if (state_num(&q, end, 1, &on) < 0)
		return -1;
	msg->held = (int)on;
	return 0;
}

int
spool_state_hold(struct buf *out, int on)
{
	return spool_enc_state(out, "hold", 0, 0, 0, on ? "1" : "0");
}

/* Applies one state record's value (its CRC checked) to msg. 0, or -1 if
 * it makes no sense (then it and what follows are dropped). */
int
spool_state_apply(struct spool_msg *msg, const uint8_t *v, size_t n)
{
	const uint8_t *end = v + n, *sp = memchr(v, ' ', n);
	size_t klen = sp != NULL ? (size_t)(sp - v) : n;
	uint64_t idx, attempts, next;
	const uint8_t *q = sp != NULL ? sp + 1 : end;

	if (state_num(&q, end, SPOOL_MAX_RCPTS, &idx) < 0 || idx >= msg->nrcpts)
		return -1;
	if (klen == 4 && memcmp(v, "hold", 4) == 0)
		return state_apply_hold(msg, q, end);
	struct spool_rcpt *r = &msg->rcpts[idx];
	if (klen == 4 && memcmp(v, "done", 4) == 0) {
		r->done = 1;
		if (q < end)	/* how: spool_state_done_detail */
			state_keep_last(r, q, end);
	} else if (klen == 8 && memcmp(v, "deferred", 8) == 0) {
		if (state_num(&q, end, UINT32_MAX, &attempts) < 0 ||
		    state_num(&q, end, (uint64_t)INT64_MAX, &next) < 0)
			return -1;
		r->attempts = (unsigned)attempts;
		r->next_try = (int64_t)next;
		state_keep_last(r, q, end);
	} else if (klen == 6 && memcmp(v, "failed", 6) == 0) {
		r->failed = 1;
		state_keep_last(r, q, end);
	} else if (klen == 3 && memcmp(v, "dsn", 3) == 0) {
		uint64_t bit;

		if (state_num(&q, end, UINT32_MAX, &bit) < 0)
			return -1;
		r->dsn_sent |= (unsigned)bit;	/* a later version's bits kept */
	} else if (klen == 6 && memcmp(v, "origin", 6) == 0) {
		uint64_t o;

		if (state_num(&q, end, SPOOL_ORIGIN_DOUBLE, &o) < 0)
			return -1;
		msg->origin = (int)o;
	}
	/* any other kind: a later version's record, kept on disk, skipped */
	return 0;
}

int
spool_enc_state(struct buf *out, const char *kind, size_t idx, unsigned attempts,
		int64_t next, const char *reply)
{
	struct buf v;
	char h[9];
	int rc = -1;

	buf_init(&v, SPOOL_MAX_STATE_REC);
	if (strcmp(kind, "dsn") == 0 || strcmp(kind, "origin") == 0) {
		if (buf_appendf(&v, "%s %zu %u", kind, idx, attempts) < 0)
			goto done;
	} else if (strcmp(kind, "deferred") == 0) {
		if (buf_appendf(&v, "%s %zu %u %" PRId64 " ", kind, idx, attempts,
				next > 0 ? next : 0) < 0)
			goto done;
	} else if (buf_appendf(&v, "%s %zu ", kind, idx) < 0) {
		goto done;
	}
	if (reply != NULL) {
		size_t room = SPOOL_MAX_STATE_REC - 9 - v.len, len = strlen(reply);

		if (buf_append(&v, reply, len < room ? len : room) < 0)
			goto done;
	}
	if (snprintf(h, sizeof(h), "%08" PRIx32, crc32c_update(0, v.data, v.len)) != 8)
		goto done;
	if (buf_appendf(out, "state %zu:", v.len + 9) < 0 || buf_append(out, h, 8) < 0 ||
	    buf_append_byte(out, ' ') < 0 || buf_append(out, v.data, v.len) < 0 ||
	    buf_append_byte(out, '\n') < 0)
		goto done;
	rc = 0;
done:
	buf_fini(&v);
	return rc;
}

/* ---- the detail of a failure, for DSNs ------------------------------- */

/* One word of the detail: no space, no control; else "-". */
static int
detail_word(struct buf *out, const char *w)
{
	size_t n = w != NULL ? strlen(w) : 0;

	if (n == 0 || n > 255)
		return buf_append_str(out, "- ");
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)w[i] <= ' ' || w[i] == 0x7f)
			return buf_append_str(out, "- ");
	if (buf_append(out, w, n) < 0)
		return -1;
	return buf_append_byte(out, ' ');
}

int
spool_detail_format(struct buf *out, const struct spool_detail *d)
{
	if (detail_word(out, d->status) < 0 || detail_word(out, d->cond) < 0 ||
	    detail_word(out, d->mta) < 0)
		return -1;
	/* the diagnostic on one line: CR, LF and other controls become spaces */
	for (const char *p = d->diag != NULL ? d->diag : ""; *p != '\0'; p++)
		if (buf_append_byte(out, (unsigned char)*p < ' ' ? ' ' : (uint8_t)*p) < 0)
			return -1;
	return 0;
}

int
spool_state_failed(struct buf *out, size_t idx, const struct spool_detail *d)
{
	struct buf t;
	int rc;

	buf_init(&t, SPOOL_MAX_STATE_REC);
	rc = spool_detail_format(&t, d) == 0 && buf_append_byte(&t, '\0') == 0
		     ? spool_enc_state(out, "failed", idx, 0, 0, (const char *)t.data)
		     : -1;
	buf_fini(&t);
	return rc;
}

int
spool_state_dsn(struct buf *out, size_t idx, unsigned dsn_bit)
{
	return spool_enc_state(out, "dsn", idx, dsn_bit, 0, NULL);
}

int
spool_state_origin(struct buf *out, int origin)
{
	return spool_enc_state(out, "origin", 0, (unsigned)origin, 0, NULL);
}

static int
detail_is_status(const char *w)
{
	/* class "." subject "." detail, RFC 3463 */
	return (w[0] == '2' || w[0] == '4' || w[0] == '5') && w[1] == '.' &&
	       strspn(w + 2, "0123456789.") == strlen(w + 2) && strchr(w + 2, '.') != NULL;
}

static int
detail_is_id(const char *w)
{
	return w[0] != '\0' && strspn(w, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") == strlen(w);
}

void
spool_detail_parse(const char *s, char *scratch, size_t size, struct spool_detail *d)
{
	char *w[3] = { NULL, NULL, NULL }, *p;
	size_t n = strlen(s);

	memset(d, 0, sizeof(*d));
	if (size == 0)
		return;
	if (n >= size)
		n = size - 1;
	memcpy(scratch, s, n);
	scratch[n] = '\0';
	p = scratch;
	for (int i = 0; i < 3; i++) {
		char *sp = strchr(p, ' ');

		if (sp == NULL)
			break;
		*sp = '\0';
		w[i] = p;
		p = sp + 1;
	}
	if (w[2] != NULL && (strcmp(w[0], "-") == 0 || detail_is_status(w[0]))) {
		d->status = strcmp(w[0], "-") != 0 ? w[0] : NULL;
		d->cond = strcmp(w[1], "-") != 0 ? w[1] : NULL;
		d->mta = strcmp(w[2], "-") != 0 ? w[2] : NULL;
		d->diag = *p != '\0' ? p : NULL;
		return;
	}
	/* an older or free-form reply: restore it whole */
	memcpy(scratch, s, n);
	scratch[n] = '\0';
	if (detail_is_id(scratch))
		d->cond = scratch;
	else
		d->diag = scratch;
}
