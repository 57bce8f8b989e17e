/*
 * smtp_data.h - incremental DATA decoding and message scanning. Pure: no
 * I/O, fuzzed by fuzz/fuzz_smtp_data.c.
 *
 * smtp_data_feed() takes the raw bytes after "354" as they arrive in any
 * split, undoes dot-stuffing (RFC 5321 4.5.2), finds the end of data
 * (only <CR><LF>.<CR><LF>, where the first CRLF may be the one that ends
 * the previous line, or the very start of the data), and appends the
 * message bytes to out. Bare LF (an LF not preceded by CR) is reported
 * and, when normalize is set, stored as CRLF; a bare LF is never part of
 * the end marker. Once out would pass its max, bytes are counted but no
 * longer stored (too_big is set) so the session can read to the end and
 * refuse.
 *
 * smtp_scan_feed() looks at message bytes (decoded DATA, or BDAT chunks)
 * and keeps what the session needs: line lengths, the count of Received
 * fields in the header, the Message-ID, where the header ends.
 *
 * Details (tested in tests/unit/test_smtp_data.c, fuzzed for split
 * independence):
 * - Dot-stuffing is undone after any line end, bare LF included, but only
 *   a "." line after a CRLF (or at the very start) ends the data. A "."
 *   line that is not the end ("\n.\r\n", "\r\n.\n") is kept as ".".
 * - A bare CR is kept as it is (and is not an end of line).
 * - first_bare_lf is the offset in the decoded message (size at that
 *   point) where the bare LF was stored; valid when bare_lf > 0.
 * - ends_lf_dot_lf is 1 while the input so far ends with a line "." closed
 *   by a bare LF ("\n.\n", also "\r\n.\n"): the client probably thinks it
 *   ended the data, but it did not (SMTP-DATA-BARE-DOT-LF).
 * - Once too_big, out holds exactly out->max bytes: the first ones.
 * - The scanner sees every decoded byte, stored or not, and shows each to
 *   its tap (if any) in the same pieces.
 * - Scanner: a line ends at LF; a CR right before it is not counted. The
 *   header ends at the first empty line. Field names are matched
 *   case-insensitively, with optional blanks before the colon. Only the
 *   first Message-ID field is kept: unfolded (CR, LF dropped), TAB turned
 *   to space, other control bytes dropped, blanks trimmed at both ends,
 *   cut at sizeof(msgid) - 1 bytes. max_line 0 means no line limit.
 */
#ifndef POSTERN_SMTP_DATA_H
#define POSTERN_SMTP_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct smtp_scan {
	size_t max_line;	/* limits.line_length, CRLF excluded */
	/* results */
	uint64_t bytes;		/* message octets seen */
	size_t longest_line;	/* longest line seen, CRLF excluded */
	int line_too_long;	/* some line > max_line */
	uint64_t long_lines;	/* how many lines > max_line */
	unsigned received;	/* Received: fields in the header */
	int in_header;		/* still in the header */
	char msgid[256];	/* Message-ID value (trimmed, cut to fit), "" if none */
	/* internal */
	size_t line_len;
	int at_line_start;
	int last_cr;
	char field[16];		/* start of the current header line */
	size_t field_len;
	int in_name;		/* reading the field name of this line */
	int cur_long;		/* this line already counted in long_lines */
	int in_msgid;		/* collecting a (possibly folded) Message-ID */
	int msgid_seen;		/* a Message-ID field was found */
	size_t msgid_len;	/* value length, trailing blanks (not yet written) included */
	size_t msgid_end;	/* length without trailing blanks */
	/* also shown every octet, when set after init (the URI lists' link
	 * extractor, policy/uri_scan.h) */
	void (*tap)(void *arg, const uint8_t *p, size_t n);
	void *tap_arg;
};

void smtp_scan_init(struct smtp_scan *sc, size_t max_line);
void smtp_scan_feed(struct smtp_scan *sc, const uint8_t *p, size_t n);

struct smtp_data {
	int normalize_bare_lf;
	/* results */
	int done;		/* end of data seen */
	int too_big;		/* out hit its max; bytes counted in size */
	uint64_t size;		/* decoded octets (stored or not) */
	uint64_t bare_lf;	/* count of bare LFs */
	uint64_t first_bare_lf;	/* offset of the first one */
	int ends_lf_dot_lf;	/* the input so far ends with a bare <LF>.<LF> */
	int lf_dot_lf_seen;	/* a "." line closed by a bare LF came at all */
	/* internal */
	int state;
	int chunk_cr;		/* BDAT: the last byte stored was a CR */
};

void smtp_data_init(struct smtp_data *d, int normalize_bare_lf);
/* Consumes bytes from in until the end of data (inclusive) or until in is
 * exhausted; returns how many were consumed. Decoded bytes are appended
 * to out and also fed to sc (if not NULL). Once done, returns 0. */
size_t smtp_data_feed(struct smtp_data *d, const uint8_t *in, size_t len,
		      struct buf *out, struct smtp_scan *sc);
/* BDAT (RFC 3030): chunk bytes are the message as sent (no dot-stuffing,
 * no end marker), except that a bare LF is counted and, when normalize is
 * set, stored as CRLF, exactly as in DATA. A CR that ends one piece pairs
 * with an LF that starts the next. size, too_big, bare_lf and
 * first_bare_lf mean what they mean for DATA. */
void smtp_data_chunk(struct smtp_data *d, const uint8_t *in, size_t len, struct buf *out,
		     struct smtp_scan *sc);

#endif
