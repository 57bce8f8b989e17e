/*
 * spool_state.c - the state log's records (the grammar is in
 * spool_format.c's header): encoding one for delivery to append, and
 * applying one that recovery read back to the message's recipients.
 */
#include "spool_private.h"

#include <inttypes.h>
#include <stdio.h>
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
	} else if (klen == 8 && memcmp(v, "deferred", 8) == 0) {
		if (state_num(&q, end, UINT32_MAX, &attempts) < 0 ||
		    state_num(&q, end, (uint64_t)INT64_MAX, &next) < 0)
			return -1;
		r->attempts = (unsigned)attempts;
		r->next_try = (int64_t)next;
	} else if (klen == 6 && memcmp(v, "failed", 6) == 0) {
		r->failed = 1;
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
	if (strcmp(kind, "deferred") == 0) {
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
