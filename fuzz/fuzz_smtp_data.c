/*
 * fuzz_smtp_data.c - libFuzzer target for smtp/smtp_data.c.
 *
 * Input: byte 0 = flags (bit 0 normalize bare LF), byte 1 = out max / 4,
 * byte 2 = scanner max_line, bytes 3..5 = cut points; the rest is the raw
 * DATA stream. The stream is decoded whole, cut at three points, and one
 * byte at a time; all three must agree on every result. Also checked:
 * out never passes its max; the decoder ends exactly after the first
 * <CRLF>.<CRLF> (or a leading ".<CRLF>") and nowhere else; with
 * normalization on, out holds no bare LF; the scanner saw every decoded
 * octet.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "smtp_data.h"

struct run {
	struct buf out;
	struct smtp_data d;
	struct smtp_scan sc;
	size_t consumed;
};

/* Feeds in[0..len) in pieces ending at cuts[] (ascending), then the rest. */
static void
run_cuts(struct run *r, const uint8_t *in, size_t len, int normalize,
	 size_t max, size_t max_line, const size_t *cuts, size_t ncut)
{
	size_t pos = 0;

	buf_init(&r->out, max);
	smtp_data_init(&r->d, normalize);
	smtp_scan_init(&r->sc, max_line);
	r->consumed = 0;
	for (size_t k = 0; k <= ncut; k++) {
		size_t end = k < ncut ? cuts[k] : len;
		size_t got;

		if (end < pos)
			end = pos;
		got = smtp_data_feed(&r->d, in + pos, end - pos, &r->out,
				     &r->sc);
		check(got <= end - pos);
		check(r->out.len <= r->out.max);
		r->consumed += got;
		if (got < end - pos) {
			check(r->d.done);
			break;
		}
		pos = end;
	}
}

static void
check_same(const struct run *a, const struct run *b)
{
	check(a->consumed == b->consumed);
	check(a->out.len == b->out.len);
	check(a->out.len == 0 ||
	      memcmp(a->out.data, b->out.data, a->out.len) == 0);
	check(a->d.done == b->d.done);
	check(a->d.too_big == b->d.too_big);
	check(a->d.size == b->d.size);
	check(a->d.bare_lf == b->d.bare_lf);
	check(a->d.bare_lf == 0 || a->d.first_bare_lf == b->d.first_bare_lf);
	check(a->d.ends_lf_dot_lf == b->d.ends_lf_dot_lf);
	check(a->sc.bytes == b->sc.bytes);
	check(a->sc.longest_line == b->sc.longest_line);
	check(a->sc.long_lines == b->sc.long_lines);
	check(a->sc.line_too_long == b->sc.line_too_long);
	check(a->sc.received == b->sc.received);
	check(a->sc.in_header == b->sc.in_header);
	check(strcmp(a->sc.msgid, b->sc.msgid) == 0);
}

/* Where the data must end: after the first CRLF.CRLF, or after a leading
 * ".CRLF"; 0 if it must not end. */
static size_t
expected_end(const uint8_t *in, size_t len)
{
	const uint8_t *m;

	if (len >= 3 && memcmp(in, ".\r\n", 3) == 0)
		return 3;
	m = memmem(in, len, "\r\n.\r\n", 5);
	return m ? (size_t)(m - in) + 5 : 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run whole, cut, bytes;
	const uint8_t *in;
	size_t len, max, max_line, cuts[3], *each, end;
	int normalize;

	if (size < 6)
		return 0;
	normalize = data[0] & 1;
	max = (size_t)data[1] * 4;
	max_line = data[2];
	in = data + 6;
	len = size - 6;
	for (int k = 0; k < 3; k++)
		cuts[k] = len ? data[3 + k] % (len + 1) : 0;
	/* ascending */
	for (int a = 0; a < 3; a++)
		for (int b = a + 1; b < 3; b++)
			if (cuts[b] < cuts[a]) {
				size_t t = cuts[a];

				cuts[a] = cuts[b];
				cuts[b] = t;
			}

	run_cuts(&whole, in, len, normalize, max, max_line, NULL, 0);
	run_cuts(&cut, in, len, normalize, max, max_line, cuts, 3);
	each = malloc((len + 1) * sizeof(*each));
	check(each != NULL);
	for (size_t i = 0; i < len; i++)
		each[i] = i + 1;
	run_cuts(&bytes, in, len, normalize, max, max_line, each, len);
	free(each);

	check_same(&whole, &cut);
	check_same(&whole, &bytes);

	/* the end marker and nothing else ends the data */
	end = expected_end(in, len);
	check(whole.d.done == (end != 0));
	check(whole.consumed == (end ? end : len));

	/* storage: a prefix up to max, the rest only counted */
	check(whole.out.len <= max);
	check(whole.d.size >= whole.out.len);
	if (!whole.d.too_big)
		check(whole.d.size == whole.out.len);
	else
		check(whole.out.len == max);
	check(whole.sc.bytes == whole.d.size);
	check(whole.d.bare_lf == 0 || whole.d.first_bare_lf <= whole.d.size);
	if (normalize)
		for (size_t i = 0; i < whole.out.len; i++)
			if (whole.out.data[i] == '\n')
				check(i > 0 && whole.out.data[i - 1] == '\r');
	check(strlen(whole.sc.msgid) < sizeof(whole.sc.msgid));

	buf_fini(&whole.out);
	buf_fini(&cut.out);
	buf_fini(&bytes.out);
	return 0;
}
