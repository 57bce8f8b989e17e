/*
 * test_smtp_data.c - unit tests for smtp/smtp_data.c: the DATA decoder
 * (end marker, dot-stuffing, bare LF and CR, size limit, every split of the
 * input) and the message scanner (line lengths, Received, Message-ID).
 */
#include "smtp_data.h"

#include <stdlib.h>
#include <string.h>

#include "testing.h"

struct result {
	struct buf out;
	size_t consumed;
	struct smtp_data d;
	struct smtp_scan sc;
};

/*
 * Decodes in[0..len) fed in pieces cut at the given offsets (ascending,
 * ncut of them), stopping once the data ends. r->out must be freed.
 */
static void
decode_cuts(struct result *r, const char *in, size_t len, int normalize,
	    size_t max, const size_t *cuts, size_t ncut)
{
	size_t pos = 0;

	buf_init(&r->out, max);
	smtp_data_init(&r->d, normalize);
	smtp_scan_init(&r->sc, 10);
	r->consumed = 0;
	for (size_t k = 0; k <= ncut; k++) {
		size_t end = k < ncut ? cuts[k] : len;
		size_t got;

		if (end < pos)
			end = pos;
		got = smtp_data_feed(&r->d, (const uint8_t *)in + pos,
				     end - pos, &r->out, &r->sc);
		r->consumed += got;
		if (got < end - pos) {
			if (!r->d.done)
				abort();	/* must only stop at the end */
			break;
		}
		pos = end;
	}
}

static void
decode(struct result *r, const char *in, size_t len, int normalize, size_t max)
{
	decode_cuts(r, in, len, normalize, max, NULL, 0);
}

static const char *
out_str(struct result *r)
{
	return r->out.data ? (const char *)r->out.data : "";
}

static int
same_result(const struct result *a, const struct result *b)
{
	return a->consumed == b->consumed && a->out.len == b->out.len &&
	       (a->out.len == 0 ||
		memcmp(a->out.data, b->out.data, a->out.len) == 0) &&
	       a->d.done == b->d.done && a->d.too_big == b->d.too_big &&
	       a->d.size == b->d.size && a->d.bare_lf == b->d.bare_lf &&
	       (a->d.bare_lf == 0 || a->d.first_bare_lf == b->d.first_bare_lf) &&
	       a->d.ends_lf_dot_lf == b->d.ends_lf_dot_lf &&
	       a->sc.bytes == b->sc.bytes &&
	       a->sc.longest_line == b->sc.longest_line &&
	       a->sc.long_lines == b->sc.long_lines &&
	       a->sc.received == b->sc.received &&
	       a->sc.in_header == b->sc.in_header &&
	       strcmp(a->sc.msgid, b->sc.msgid) == 0;
}

struct dcase {
	const char *name;
	const char *in;
	int normalize;
	size_t max;
	int done;
	size_t consumed;	/* checked when done */
	const char *out;
	unsigned bare_lf;
	int too_big;
};

#define M 4096

static const struct dcase dcases[] = {
	{ "empty message", ".\r\n", 1, M, 1, 3, "", 0, 0 },
	{ "empty line then end", "\r\n.\r\n", 1, M, 1, 5, "\r\n", 0, 0 },
	{ "simple", "Subject: x\r\n\r\nbody\r\n.\r\n", 1, M, 1, 23,
	  "Subject: x\r\n\r\nbody\r\n", 0, 0 },
	{ "stuffed first line", "..a\r\n.\r\n", 1, M, 1, 8, ".a\r\n", 0, 0 },
	{ "stuffed dot line", "a\r\n..\r\n.\r\n", 1, M, 1, 10, "a\r\n.\r\n", 0, 0 },
	{ "stuffed text line", ".foo\r\n.\r\n", 1, M, 1, 9, "foo\r\n", 0, 0 },
	{ "dot inside line", "a.b\r\n.x.\r\n.\r\n", 1, M, 1, 13, "a.b\r\nx.\r\n", 0, 0 },
	{ "data after end", "a\r\n.\r\nMAIL FROM:<x@y>\r\n", 1, M, 1, 6, "a\r\n", 0, 0 },
	{ "end then end", ".\r\n.\r\n", 1, M, 1, 3, "", 0, 0 },
	{ "no end yet", "a\r\nb\r\n", 1, M, 0, 0, "a\r\nb\r\n", 0, 0 },
	{ "dot cr pending", "a\r\n.\r", 1, M, 0, 0, "a\r\n", 0, 0 },
	{ "dot pending", "a\r\n.", 1, M, 0, 0, "a\r\n", 0, 0 },
	{ "bare lf normalized", "a\nb\r\n.\r\n", 1, M, 1, 8, "a\r\nb\r\n", 1, 0 },
	{ "bare lf kept", "a\nb\r\n.\r\n", 0, M, 1, 8, "a\nb\r\n", 1, 0 },
	{ "lf dot lf not end", "a\n.\nb\r\n.\r\n", 1, M, 1, 10, "a\r\n.\r\nb\r\n", 2, 0 },
	{ "lf dot lf kept", "a\n.\nb\r\n.\r\n", 0, M, 1, 10, "a\n.\nb\r\n", 2, 0 },
	{ "lf dot crlf not end", "a\n.\r\nb\r\n.\r\n", 1, M, 1, 11, "a\r\n.\r\nb\r\n", 1, 0 },
	{ "crlf dot lf not end", "a\r\n.\nb\r\n.\r\n", 1, M, 1, 11, "a\r\n.\r\nb\r\n", 1, 0 },
	{ "lf stuffed", "a\n..b\r\n.\r\n", 1, M, 1, 10, "a\r\n.b\r\n", 1, 0 },
	{ "lf dot text", "a\n.b\r\n.\r\n", 1, M, 1, 9, "a\r\nb\r\n", 1, 0 },
	{ "only bare lf", "\n.\n", 1, M, 0, 0, "\r\n.\r\n", 2, 0 },
	{ "bare cr kept", "a\rb\r\n.\r\n", 1, M, 1, 8, "a\rb\r\n", 0, 0 },
	{ "cr cr lf", "a\r\r\n.\r\n", 1, M, 1, 7, "a\r\r\n", 0, 0 },
	{ "dot cr x", "a\r\n.\rx\r\n.\r\n", 1, M, 1, 11, "a\r\n\rx\r\n", 0, 0 },
	{ "dot cr cr lf", "a\r\n.\r\r\n.\r\n", 1, M, 1, 10, "a\r\n\r\r\n", 0, 0 },
	{ "lf dot cr x", "a\n.\rx\r\n.\r\n", 1, M, 1, 10, "a\r\n\rx\r\n", 1, 0 },
	{ "too big", "hello world\r\n.\r\n", 1, 5, 1, 16, "hello", 0, 1 },
	{ "exact fit", "hello\r\n.\r\n", 1, 7, 1, 10, "hello\r\n", 0, 0 },
	{ "one over", "hello\r\n.\r\n", 1, 6, 1, 10, "hello\r", 0, 1 },
	{ "too big normalized lf", "abc\nd\r\n.\r\n", 1, 4, 1, 10, "abc\r", 1, 1 },
	{ "max zero", "x\r\n.\r\n", 1, 0, 1, 6, "", 0, 1 },
	{ "smuggle attempt", "a\r\n.\nMAIL FROM:<e@vil>\r\n.\r\n", 1, M, 1, 27,
	  "a\r\n.\r\nMAIL FROM:<e@vil>\r\n", 1, 0 },
};

static void
test_cases(void)
{
	for (size_t i = 0; i < sizeof(dcases) / sizeof(dcases[0]); i++) {
		const struct dcase *c = &dcases[i];
		struct result r;

		TEST_CASE(c->name);
		decode(&r, c->in, strlen(c->in), c->normalize, c->max);
		CHECK_INT(r.d.done, c->done);
		if (c->done)
			CHECK_INT(r.consumed, c->consumed);
		else
			CHECK_INT(r.consumed, strlen(c->in));
		CHECK_MEM(out_str(&r), r.out.len, c->out);
		CHECK_INT(r.d.bare_lf, c->bare_lf);
		CHECK_INT(r.d.too_big, c->too_big);
		CHECK(r.out.len <= c->max);
		CHECK(r.d.size >= r.out.len);
		if (!c->too_big)
			CHECK_INT(r.d.size, r.out.len);
		buf_fini(&r.out);
	}
}

static void
test_details(void)
{
	struct result r;
	struct smtp_data d;
	struct buf out;

	TEST_CASE("first bare lf offset");
	decode(&r, "ab\r\ncd\nef\ng\r\n.\r\n", 16, 1, M);
	CHECK_INT(r.d.bare_lf, 2);
	CHECK_INT(r.d.first_bare_lf, 6);
	buf_fini(&r.out);

	TEST_CASE("too big keeps counting");
	decode(&r, "0123456789\r\n0123456789\r\n.\r\n", 27, 1, 8);
	CHECK_INT(r.d.size, 24);
	CHECK_INT(r.out.len, 8);
	CHECK_INT(r.d.too_big, 1);
	CHECK_INT(r.d.done, 1);
	buf_fini(&r.out);

	TEST_CASE("feed after done");
	smtp_data_init(&d, 1);
	buf_init(&out, 64);
	CHECK_INT(smtp_data_feed(&d, (const uint8_t *)".\r\n", 3, &out, NULL), 3);
	CHECK_INT(d.done, 1);
	CHECK_INT(smtp_data_feed(&d, (const uint8_t *)"more\r\n", 6, &out, NULL), 0);
	CHECK_INT(out.len, 0);
	CHECK_INT(d.size, 0);
	buf_fini(&out);

	TEST_CASE("ends_lf_dot_lf");
	smtp_data_init(&d, 1);
	buf_init(&out, 64);
	CHECK_INT(smtp_data_feed(&d, (const uint8_t *)"hi\n.\n", 5, &out, NULL), 5);
	CHECK_INT(d.done, 0);
	CHECK_INT(d.ends_lf_dot_lf, 1);
	CHECK_INT(smtp_data_feed(&d, (const uint8_t *)"", 0, &out, NULL), 0);
	CHECK_INT(d.ends_lf_dot_lf, 1);
	CHECK_INT(smtp_data_feed(&d, (const uint8_t *)"x", 1, &out, NULL), 1);
	CHECK_INT(d.ends_lf_dot_lf, 0);
	CHECK_INT(smtp_data_feed(&d, (const uint8_t *)"\n.", 2, &out, NULL), 2);
	CHECK_INT(d.ends_lf_dot_lf, 0);
	CHECK_INT(smtp_data_feed(&d, (const uint8_t *)"\n", 1, &out, NULL), 1);
	CHECK_INT(d.ends_lf_dot_lf, 1);
	CHECK_INT(d.done, 0);
	buf_fini(&out);

	TEST_CASE("ends_lf_dot_lf after crlf");
	decode(&r, "hi\r\n.\n", 6, 1, M);
	CHECK_INT(r.d.ends_lf_dot_lf, 1);
	CHECK_INT(r.d.done, 0);
	buf_fini(&r.out);

	TEST_CASE("no ends_lf_dot_lf mid data");
	decode(&r, "hi\n.\nmore", 9, 1, M);
	CHECK_INT(r.d.ends_lf_dot_lf, 0);
	buf_fini(&r.out);

	TEST_CASE("dot cr then x in a second feed");
	smtp_data_init(&d, 1);
	buf_init(&out, 64);
	CHECK_INT(smtp_data_feed(&d, (const uint8_t *)"a\r\n.\r", 5, &out, NULL), 5);
	CHECK_INT(d.done, 0);
	CHECK_INT(smtp_data_feed(&d, (const uint8_t *)"x", 1, &out, NULL), 1);
	CHECK_INT(d.done, 0);
	CHECK_INT(smtp_data_feed(&d, (const uint8_t *)"\r\n.\r\n", 5, &out, NULL), 5);
	CHECK_INT(d.done, 1);
	CHECK_MEM(out.data, out.len, "a\r\n\rx\r\n");
	buf_fini(&out);

	TEST_CASE("decoder feeds scanner");
	decode(&r, "Received: a\r\nMessage-ID: <m@x>\r\n\r\n..b\r\n.\r\n", 42, 1, M);
	CHECK_INT(r.d.done, 1);
	CHECK_INT(r.sc.received, 1);
	CHECK_STR(r.sc.msgid, "<m@x>");
	CHECK_INT(r.sc.bytes, r.d.size);
	CHECK_INT(r.sc.in_header, 0);
	buf_fini(&r.out);

	TEST_CASE("scanner sees bytes not stored");
	decode(&r, "Received: a\r\nReceived: b\r\n\r\n.\r\n", 31, 1, 4);
	CHECK_INT(r.d.too_big, 1);
	CHECK_INT(r.sc.received, 2);
	CHECK_INT(r.sc.bytes, 28);
	buf_fini(&r.out);
}

/* Every one- and two-cut split, and byte at a time, must equal the whole. */
static void
test_splits(void)
{
	static const char *const inputs[] = {
		"a\r\n.\r\n",
		".\r\n",
		"\r\n.\r\n",
		"..a\r\n.x\r\n..\r\n.\r\nNEXT",
		"a\n.\nb\n.\r\nc\r\n.\nd\r\n.\rx\r\n.\r\n",
		"a\rb\r\r\n\r\n.\r\r\n.\r\n",
		"Received: x\r\n y\r\nMessage-Id:\r\n <a@b>\r\n\r\n0123456789012\r\n.\r\n",
		"hi\n.\n",
		"0123456789abcdef\n\n.\r\n",
	};
	for (size_t t = 0; t < sizeof(inputs) / sizeof(inputs[0]); t++) {
		const char *in = inputs[t];
		size_t len = strlen(in);
		size_t maxes[] = { M, 5 };

		for (size_t m = 0; m < 2; m++) {
			for (int norm = 0; norm < 2; norm++) {
				struct result whole, part;
				int bad1 = 0, bad2 = 0, bad3 = 0;
				size_t *cuts;

				TEST_CASE(in);
				decode(&whole, in, len, norm, maxes[m]);
				for (size_t i = 0; i <= len; i++) {
					decode_cuts(&part, in, len, norm,
						    maxes[m], &i, 1);
					bad1 += !same_result(&whole, &part);
					buf_fini(&part.out);
					for (size_t j = i; j <= len; j++) {
						size_t c2[2] = { i, j };

						decode_cuts(&part, in, len,
							    norm, maxes[m],
							    c2, 2);
						bad2 += !same_result(&whole,
								     &part);
						buf_fini(&part.out);
					}
				}
				cuts = calloc(len + 1, sizeof(*cuts));
				if (cuts == NULL)
					abort();
				for (size_t i = 0; i < len; i++)
					cuts[i] = i + 1;
				decode_cuts(&part, in, len, norm, maxes[m],
					    cuts, len);
				bad3 += !same_result(&whole, &part);
				buf_fini(&part.out);
				free(cuts);
				CHECK_INT(bad1, 0);
				CHECK_INT(bad2, 0);
				CHECK_INT(bad3, 0);
				buf_fini(&whole.out);
			}
		}
	}
}

/* ---- scanner ----------------------------------------------------------- */

static void
scan(struct smtp_scan *sc, const char *in, size_t max_line)
{
	smtp_scan_init(sc, max_line);
	smtp_scan_feed(sc, (const uint8_t *)in, strlen(in));
}

static void
test_scan(void)
{
	struct smtp_scan sc;
	char big[600];

	TEST_CASE("line lengths");
	scan(&sc, "short\r\n0123456789\r\n01234567890\r\n", 10);
	CHECK_INT(sc.long_lines, 1);
	CHECK_INT(sc.line_too_long, 1);
	CHECK_INT(sc.longest_line, 11);

	TEST_CASE("exactly max");
	scan(&sc, "\r\n0123456789\r\n", 10);
	CHECK_INT(sc.long_lines, 0);
	CHECK_INT(sc.line_too_long, 0);
	CHECK_INT(sc.longest_line, 10);

	TEST_CASE("several long lines");
	scan(&sc, "\r\n01234567890\r\nx\r\n012345678901234\r\n", 10);
	CHECK_INT(sc.long_lines, 2);
	CHECK_INT(sc.longest_line, 15);

	TEST_CASE("bare lf ends line");
	scan(&sc, "\n01234567890\nabc", 10);
	CHECK_INT(sc.long_lines, 1);
	CHECK_INT(sc.longest_line, 11);

	TEST_CASE("bare cr counts");
	scan(&sc, "\r\n0123456789\r\r\n", 10);
	CHECK_INT(sc.long_lines, 1);
	CHECK_INT(sc.longest_line, 11);

	TEST_CASE("unterminated last line");
	scan(&sc, "\r\n012345678901", 10);
	CHECK_INT(sc.long_lines, 1);
	CHECK_INT(sc.longest_line, 12);

	TEST_CASE("long header line");
	scan(&sc, "Subject: 0123456789\r\n\r\n", 10);
	CHECK_INT(sc.long_lines, 1);
	CHECK_INT(sc.longest_line, 19);

	TEST_CASE("no limit");
	scan(&sc, "\r\n0123456789012345678901234567890\r\n", 0);
	CHECK_INT(sc.long_lines, 0);
	CHECK_INT(sc.longest_line, 31);

	TEST_CASE("received count");
	scan(&sc, "Received: a\r\nreceived : b\r\nRECEIVED:c\r\n"
		  "X-Received: d\r\nReceivedX: e\r\n\r\nReceived: body\r\n", 998);
	CHECK_INT(sc.received, 3);
	CHECK_INT(sc.in_header, 0);

	TEST_CASE("received folded");
	scan(&sc, "Received: from a\r\n\tby b\r\n Received: no\r\n\r\n", 998);
	CHECK_INT(sc.received, 1);

	TEST_CASE("received after bare lf header end");
	scan(&sc, "Received: a\n\nReceived: b\n", 998);
	CHECK_INT(sc.received, 1);
	CHECK_INT(sc.in_header, 0);

	TEST_CASE("header without end");
	scan(&sc, "Received: a\r\nReceived: b", 998);
	CHECK_INT(sc.received, 2);
	CHECK_INT(sc.in_header, 1);

	TEST_CASE("empty header");
	scan(&sc, "\r\nReceived: a\r\n", 998);
	CHECK_INT(sc.received, 0);
	CHECK_INT(sc.in_header, 0);

	TEST_CASE("message-id trimmed");
	scan(&sc, "Message-ID:   <abc@example.org>  \r\n\r\n", 998);
	CHECK_STR(sc.msgid, "<abc@example.org>");

	TEST_CASE("message-id case");
	scan(&sc, "message-id: <x@y>\r\n", 998);
	CHECK_STR(sc.msgid, "<x@y>");

	TEST_CASE("message-id blank before colon");
	scan(&sc, "Message-Id : <x@y>\r\n", 998);
	CHECK_STR(sc.msgid, "<x@y>");

	TEST_CASE("message-id folded");
	scan(&sc, "Message-Id:\r\n <abc@\r\n\texample.org>\r\nSubject: x\r\n\r\n", 998);
	CHECK_STR(sc.msgid, "<abc@ example.org>");

	TEST_CASE("message-id first wins");
	scan(&sc, "Message-ID: <one@x>\r\nMessage-ID: <two@x>\r\n\r\n", 998);
	CHECK_STR(sc.msgid, "<one@x>");

	TEST_CASE("message-id in body ignored");
	scan(&sc, "Subject: x\r\n\r\nMessage-ID: <body@x>\r\n", 998);
	CHECK_STR(sc.msgid, "");

	TEST_CASE("message-id not a prefix match");
	scan(&sc, "Message-IDs: <x@y>\r\nX-Message-ID: <z@y>\r\n\r\n", 998);
	CHECK_STR(sc.msgid, "");

	TEST_CASE("message-id controls dropped");
	scan(&sc, "Message-ID: <a\x01" "b@c>\r\n", 998);
	CHECK_STR(sc.msgid, "<ab@c>");

	TEST_CASE("message-id unterminated");
	scan(&sc, "Message-ID: <a@b>  ", 998);
	CHECK_STR(sc.msgid, "<a@b>");

	TEST_CASE("message-id cut");
	{
		size_t n = strlen("Message-ID: <");

		memcpy(big, "Message-ID: <", n);
		memset(big + n, 'x', 400);
		memcpy(big + n + 400, ">\r\n\r\n", 6);
		scan(&sc, big, 998);
		CHECK_INT(strlen(sc.msgid), sizeof(sc.msgid) - 1);
		CHECK(sc.msgid[0] == '<' && sc.msgid[1] == 'x');
	}

	TEST_CASE("bytes");
	scan(&sc, "abc\r\n", 998);
	CHECK_INT(sc.bytes, 5);
}

static int
same_scan(const struct smtp_scan *a, const struct smtp_scan *b)
{
	return a->bytes == b->bytes && a->longest_line == b->longest_line &&
	       a->long_lines == b->long_lines &&
	       a->line_too_long == b->line_too_long &&
	       a->received == b->received && a->in_header == b->in_header &&
	       strcmp(a->msgid, b->msgid) == 0;
}

static void
test_scan_splits(void)
{
	static const char *const inputs[] = {
		"Received: a\r\nreceived : b\r\n c\r\nMessage-ID:\r\n <x@\r\n\ty> \r\n\r\nReceived: z\r\n",
		"Message-Id: <m@x>\n\nlong line 0123456789\r\nx\r\r\n",
		"\r\nReceived: a\r\n",
		"X: 0123456789012\r\nMessage-ID : \t<q@r>\t\r\nReceived:\r\n",
	};

	for (size_t t = 0; t < sizeof(inputs) / sizeof(inputs[0]); t++) {
		const char *in = inputs[t];
		size_t len = strlen(in);
		struct smtp_scan whole, part;
		int bad = 0;

		TEST_CASE(in);
		scan(&whole, in, 10);
		for (size_t i = 0; i <= len; i++) {
			for (size_t j = i; j <= len; j++) {
				smtp_scan_init(&part, 10);
				smtp_scan_feed(&part, (const uint8_t *)in, i);
				smtp_scan_feed(&part, (const uint8_t *)in + i, j - i);
				smtp_scan_feed(&part, (const uint8_t *)in + j, len - j);
				bad += !same_scan(&whole, &part);
			}
		}
		CHECK_INT(bad, 0);
	}
}

/* BDAT chunks: bytes as sent, bare LF counted and (normalize) stored as
 * CRLF; the same result for every split, a CR at the end of one piece
 * pairing with an LF at the start of the next. */
static void
test_chunk(void)
{
	static const char in[] = "Subject: x\nA: b\r\n\r\nline\n.\r\nlast\r";
	static const char want_norm[] = "Subject: x\r\nA: b\r\n\r\nline\r\n.\r\nlast\r";
	size_t n = sizeof(in) - 1;

	for (int normalize = 0; normalize <= 1; normalize++) {
		int all_ok = 1;
		TEST_CASE(normalize ? "chunk normalize, every split" : "chunk keep, every split");
		for (size_t cut = 0; cut <= n; cut++) {
			struct smtp_data d;
			struct smtp_scan sc;
			struct buf out;
			buf_init(&out, 1024);
			smtp_data_init(&d, normalize);
			smtp_scan_init(&sc, 998);
			smtp_data_chunk(&d, (const uint8_t *)in, cut, &out, &sc);
			smtp_data_chunk(&d, (const uint8_t *)in + cut, n - cut, &out, &sc);
			const char *want = normalize ? want_norm : in;
			if (out.len != strlen(want) || memcmp(out.data, want, out.len) != 0 ||
			    d.bare_lf != 2 || d.first_bare_lf != 10 || d.size != out.len ||
			    d.too_big)
				all_ok = 0;
			buf_fini(&out);
		}
		CHECK(all_ok);
	}

	TEST_CASE("chunk CR then LF across pieces is not bare");
	{
		struct smtp_data d;
		struct buf out;
		buf_init(&out, 64);
		smtp_data_init(&d, 1);
		smtp_data_chunk(&d, (const uint8_t *)"a\r", 2, &out, NULL);
		smtp_data_chunk(&d, (const uint8_t *)"", 0, &out, NULL);
		smtp_data_chunk(&d, (const uint8_t *)"\nb\n", 3, &out, NULL);
		CHECK_MEM(out.data, out.len, "a\r\nb\r\n");
		CHECK_INT(d.bare_lf, 1);
		CHECK_INT(d.first_bare_lf, 4);
		buf_fini(&out);
	}

	TEST_CASE("chunk past the buffer's max: counted, too_big");
	{
		struct smtp_data d;
		struct buf out;
		buf_init(&out, 4);
		smtp_data_init(&d, 1);
		smtp_data_chunk(&d, (const uint8_t *)"ab\ncd", 5, &out, NULL);
		CHECK_INT(d.too_big, 1);
		CHECK_INT(d.size, 6);
		CHECK_MEM(out.data, out.len, "ab\r\n");
		buf_fini(&out);
	}
}

int
main(void)
{
	test_chunk();
	test_cases();
	test_details();
	test_splits();
	test_scan();
	test_scan_splits();
	return TEST_DONE();
}
