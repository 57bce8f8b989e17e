/*
 * smtp_data.c - incremental DATA decoder (dot-stuffing, end of data, bare
 * LF) and message scanner (line lengths, Received count, Message-ID).
 *
 * Owns only the state in struct smtp_data and struct smtp_scan; the caller
 * owns the output buffer. Both are resumable state machines: feeding the
 * same bytes in any split gives the same result (fuzz/fuzz_smtp_data.c
 * checks it). No I/O, no allocation beyond out's own growth.
 */
#include "smtp_data.h"

#include <string.h>
#include <strings.h>

/* ---- scanner ----------------------------------------------------------- */

void
smtp_scan_init(struct smtp_scan *sc, size_t max_line)
{
	memset(sc, 0, sizeof(*sc));
	sc->max_line = max_line;
	sc->in_header = 1;
	sc->at_line_start = 1;
}

/* Updates longest_line and the long-line count for the current line. The
 * length without a trailing CR only grows as bytes are added. */
static void
scan_line_check(struct smtp_scan *sc)
{
	size_t eff = sc->line_len - (sc->last_cr ? 1 : 0);

	if (eff > sc->longest_line)
		sc->longest_line = eff;
	if (sc->max_line > 0 && eff > sc->max_line && !sc->cur_long) {
		sc->cur_long = 1;
		sc->line_too_long = 1;
		sc->long_lines++;
	}
}

static void
scan_line_end(struct smtp_scan *sc)
{
	scan_line_check(sc);
	if (sc->in_header && sc->line_len - (sc->last_cr ? 1 : 0) == 0) {
		/* RFC 5322 2.1: the header ends at the first empty line */
		sc->in_header = 0;
		sc->in_msgid = 0;
	}
	sc->line_len = 0;
	sc->last_cr = 0;
	sc->cur_long = 0;
	sc->at_line_start = 1;
	sc->in_name = 0;
	sc->field_len = 0;
}

static int
is_blank(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/* The field name collected so far equals name (blanks before ':' cut). */
static int
scan_field_is(const struct smtp_scan *sc, const char *name)
{
	size_t n = sc->field_len, want = strlen(name);

	while (n > 0 && is_blank((uint8_t)sc->field[n - 1]))
		n--;
	return n == want && strncasecmp(sc->field, name, n) == 0;
}

static void
scan_msgid_byte(struct smtp_scan *sc, uint8_t c)
{
	if (c == '\t')
		c = ' ';
	if (c < 0x20 || c == 0x7f)
		return;		/* CR of the fold, stray controls */
	if (c == ' ' && sc->msgid_len == 0)
		return;		/* leading blanks */
	if (sc->msgid_len >= sizeof(sc->msgid) - 1)
		return;		/* cut to fit */
	if (c == ' ') {
		sc->msgid_len++;	/* written only if more text follows */
		return;
	}
	memset(sc->msgid + sc->msgid_end, ' ', sc->msgid_len - sc->msgid_end);
	sc->msgid[sc->msgid_len++] = (char)c;
	sc->msgid_end = sc->msgid_len;
	sc->msgid[sc->msgid_end] = '\0';
}

/* One header byte (not LF). */
static void
scan_header_byte(struct smtp_scan *sc, uint8_t c)
{
	if (sc->at_line_start) {
		sc->at_line_start = 0;
		if (is_blank(c)) {
			sc->in_name = 0;	/* continuation of the field */
		} else {
			sc->in_msgid = 0;	/* a new field (or the end) */
			sc->in_name = 1;
		}
	}
	if (sc->in_name) {
		if (c == ':') {
			sc->in_name = 0;
			if (scan_field_is(sc, "received")) {
				sc->received++;
			} else if (scan_field_is(sc, "message-id") &&
				   !sc->msgid_seen) {
				sc->msgid_seen = 1;
				sc->in_msgid = 1;
			}
		} else if (sc->field_len < sizeof(sc->field) - 1) {
			sc->field[sc->field_len++] = (char)c;
		} else {
			sc->in_name = 0;	/* longer than any name we want */
		}
	} else if (sc->in_msgid) {
		scan_msgid_byte(sc, c);
	}
}

void
smtp_scan_feed(struct smtp_scan *sc, const uint8_t *p, size_t n)
{
	size_t i = 0;

	sc->bytes += n;
	if (sc->tap != NULL)
		sc->tap(sc->tap_arg, p, n);
	while (i < n) {
		if (sc->in_header) {
			uint8_t c = p[i++];

			if (c == '\n') {
				scan_line_end(sc);
				continue;
			}
			scan_header_byte(sc, c);
			sc->line_len++;
			sc->last_cr = c == '\r';
			if (c != '\r')
				scan_line_check(sc);
		} else {
			const uint8_t *nl = memchr(p + i, '\n', n - i);
			size_t run = (nl ? (size_t)(nl - p) : n) - i;

			if (run > 0) {
				sc->line_len += run;
				sc->last_cr = p[i + run - 1] == '\r';
				sc->at_line_start = 0;
				scan_line_check(sc);
				i += run;
			}
			if (nl != NULL) {
				scan_line_end(sc);
				i++;
			}
		}
	}
}

/* ---- DATA decoder ------------------------------------------------------ */

enum {
	ST_BOL,		/* start of data or after CRLF: "." may begin the end */
	ST_BOL_LF,	/* after a bare LF: "." is stuffing, never the end */
	ST_TEXT,	/* inside a line */
	ST_TEXT_CR,	/* inside a line, the last byte stored was CR */
	ST_DOT,		/* "." at ST_BOL, held back */
	ST_DOT_CR,	/* ".\r" at ST_BOL, held back */
	ST_LFDOT,	/* "." at ST_BOL_LF, held back */
	ST_LFDOT_CR,	/* ".\r" at ST_BOL_LF, held back */
	ST_DONE
};

void
smtp_data_init(struct smtp_data *d, int normalize_bare_lf)
{
	memset(d, 0, sizeof(*d));
	d->normalize_bare_lf = normalize_bare_lf;
	d->state = ST_BOL;
}

/* Stores decoded bytes: out up to its max, then only counted. */
static void
data_emit(struct smtp_data *d, struct buf *out, struct smtp_scan *sc,
	  const uint8_t *p, size_t n)
{
	d->size += n;
	if (sc != NULL)
		smtp_scan_feed(sc, p, n);
	if (d->too_big)
		return;
	if (n > out->max - out->len) {
		size_t room = out->max - out->len;

		d->too_big = 1;
		n = room;
	}
	if (n > 0 && buf_append(out, p, n) < 0)
		d->too_big = 1;
}

/* A bare LF ends the line (RFC 5321 2.3.8: report it, never trust it). */
static void
data_bare_lf(struct smtp_data *d, struct buf *out, struct smtp_scan *sc)
{
	if (d->bare_lf++ == 0)
		d->first_bare_lf = d->size;
	if (d->normalize_bare_lf)
		data_emit(d, out, sc, (const uint8_t *)"\r\n", 2);
	else
		data_emit(d, out, sc, (const uint8_t *)"\n", 1);
	d->state = ST_BOL_LF;
}

size_t
smtp_data_feed(struct smtp_data *d, const uint8_t *in, size_t len,
	       struct buf *out, struct smtp_scan *sc)
{
	size_t i = 0;

	if (d->state == ST_DONE)
		return 0;
	if (len > 0)
		d->ends_lf_dot_lf = 0;
	while (i < len) {
		uint8_t c = in[i];

		switch (d->state) {
		case ST_BOL:
		case ST_BOL_LF:
			if (c == '.') {
				d->state = d->state == ST_BOL ? ST_DOT
							      : ST_LFDOT;
				i++;
			} else {
				d->state = ST_TEXT;
			}
			break;
		case ST_DOT:
		case ST_LFDOT:
			if (c == '\r') {
				d->state = d->state == ST_DOT ? ST_DOT_CR
							      : ST_LFDOT_CR;
				i++;
			} else if (c == '\n') {
				/* "." closed by a bare LF: not the end */
				data_emit(d, out, sc, (const uint8_t *)".", 1);
				data_bare_lf(d, out, sc);
				i++;
				d->lf_dot_lf_seen = 1;
				if (i == len)
					d->ends_lf_dot_lf = 1;
			} else {
				/* RFC 5321 4.5.2: drop the stuffed dot */
				d->state = ST_TEXT;
			}
			break;
		case ST_DOT_CR:
		case ST_LFDOT_CR:
			if (c == '\n' && d->state == ST_DOT_CR) {
				/* <CRLF>.<CRLF> (RFC 5321 4.1.1.4) */
				d->state = ST_DONE;
				d->done = 1;
				return i + 1;
			}
			if (c == '\n') {
				/* <LF>.<CRLF>: a line "." that ends nothing */
				data_emit(d, out, sc,
					  (const uint8_t *)".\r\n", 3);
				d->state = ST_BOL;
				i++;
			} else {
				/* ".\r" + more: the dot was stuffing */
				data_emit(d, out, sc, (const uint8_t *)"\r", 1);
				d->state = ST_TEXT_CR;
			}
			break;
		case ST_TEXT:
		case ST_TEXT_CR: {
			const uint8_t *nl = memchr(in + i, '\n', len - i);
			size_t run = (nl ? (size_t)(nl - in) : len) - i;
			int cr = d->state == ST_TEXT_CR;

			if (run > 0) {
				data_emit(d, out, sc, in + i, run);
				cr = in[i + run - 1] == '\r';
				i += run;
			}
			if (nl == NULL) {
				d->state = cr ? ST_TEXT_CR : ST_TEXT;
				break;
			}
			i++;
			if (cr) {
				data_emit(d, out, sc, (const uint8_t *)"\n", 1);
				d->state = ST_BOL;
			} else {
				data_bare_lf(d, out, sc);
			}
			break;
		}
		default:
			return i;
		}
	}
	return i;
}

void
smtp_data_chunk(struct smtp_data *d, const uint8_t *in, size_t len, struct buf *out,
		struct smtp_scan *sc)
{
	size_t i = 0;

	while (i < len) {
		const uint8_t *nl = memchr(in + i, '\n', len - i);
		size_t run = (nl ? (size_t)(nl - in) : len) - i;

		if (run > 0) {
			data_emit(d, out, sc, in + i, run);
			d->chunk_cr = in[i + run - 1] == '\r';
			i += run;
		}
		if (nl == NULL)
			break;
		i++;
		if (d->chunk_cr)
			data_emit(d, out, sc, (const uint8_t *)"\n", 1);
		else
			data_bare_lf(d, out, sc);
		d->chunk_cr = 0;
	}
}
