/*
 * fuzz_pop3_parse.c - libFuzzer target for pop3/pop3_parse.c.
 *
 * Input: byte 0 picks a TOP line count and a chunk size, the rest is both
 * a command line and a message file. Checks, besides the sanitizers: the
 * parse is deterministic, slices lie inside the line, errors are the two
 * the header lists, message numbers are in range; base64 and PLAIN never
 * pass their bounds; a unique-id is 1..70 printable octets; the encoder
 * gives the same bytes whatever the chunking, its output has only CRLF
 * line ends and no line "." before the end, ends with CRLF.CRLF, and its
 * counted size equals the output minus stuffing and terminator.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "sasl_plain.h"
#include "pop3_parse.h"

static void
check_slice(struct slice s, const uint8_t *line, size_t len)
{
	if (s.len == 0)
		return;
	check(s.p >= line && s.p + s.len <= line + len);
}

static void
encode(const uint8_t *p, size_t n, int top, uint32_t lines, size_t step, struct buf *out,
       uint64_t *size)
{
	struct pop3_enc e;

	pop3_enc_init(&e, top, lines);
	for (size_t off = 0; off < n && !e.done; off += step) {
		size_t k = n - off < step ? n - off : step;
		long used = pop3_enc_feed(&e, p + off, k, out);
		check(used >= 0 && (size_t)used <= k);
		if ((size_t)used < k)
			check(e.done);
	}
	check(pop3_enc_finish(&e, out) == 0);
	*size = e.size;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pop3_cmd cmd, again;
	enum cond_id err = COND__COUNT, err2 = COND__COUNT;

	if (size == 0)
		return 0;
	const uint8_t *line = data + 1;
	size_t len = size - 1;

	/* the command parser */
	int rc = pop3_parse_command(line, len, &cmd, &err);
	check(pop3_parse_command(line, len, &again, &err2) == rc);
	check(again.verb == cmd.verb && again.msgno == cmd.msgno);
	check((unsigned)cmd.verb < POP3_VERB__COUNT);
	check_slice(cmd.verb_text, line, len);
	check_slice(cmd.arg, line, len);
	check_slice(cmd.mech, line, len);
	check_slice(cmd.initial, line, len);
	if (rc == 0) {
		check(cmd.verb != POP3_VERB_UNKNOWN);
		if (cmd.has_msgno)
			check(cmd.msgno >= 1 && cmd.msgno <= POP3_MSGNO_MAX);
	} else {
		check(rc == -1 && err == err2);
		check(err == COND_POP3_SYNTAX || err == COND_POP3_MSG_NUMBER_INVALID);
	}

	/* SASL */
	struct buf dec;
	buf_init(&dec, 64);
	if (pop3_base64_decode((struct slice){ line, len }, &dec) == 0) {
		check(dec.len <= 64 && dec.len <= len);
		struct sasl_plain p;
		if (sasl_plain_parse(dec.data, dec.len, &p) == 0)
			check(p.authzid.len + p.authcid.len + p.passwd.len + 2 == dec.len &&
			      p.authcid.len > 0 && p.passwd.len > 0);
	} else {
		check(dec.len == 0);
	}
	buf_fini(&dec);

	/* unique-ids */
	char uid[POP3_UID_MAX + 1];
	pop3_uid_of((const char *)line, len, uid);
	size_t ul = strlen(uid);
	check(ul >= 1 && ul <= POP3_UID_MAX);
	for (size_t i = 0; i < ul; i++)
		check(uid[i] >= 0x21 && uid[i] <= 0x7e);

	/* the encoder: the same output whatever the chunking */
	int top = data[0] & 1;
	uint32_t lines = (data[0] >> 1) & 7;
	size_t step = 1 + (data[0] >> 4);
	struct buf a, b;
	uint64_t sa, sb;
	buf_init(&a, 2 * len + 8);
	buf_init(&b, 2 * len + 8);
	encode(line, len, top, lines, step, &a, &sa);
	encode(line, len, top, lines, len ? len : 1, &b, &sb);
	check(a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0));
	check(sa == sb);
	check(a.len >= 3 && memcmp(a.data + a.len - 3, ".\r\n", 3) == 0);
	/* walk the lines: CRLF only; count the stuffing */
	uint64_t stuffed = 0;
	size_t bol = 0;
	for (size_t i = 0; i < a.len; i++) {
		if (a.data[i] == '\n') {
			check(i > 0 && a.data[i - 1] == '\r');
			size_t ll = i - 1 - bol;	/* without CRLF */
			if (i + 1 < a.len && a.data[bol] == '.') {
				check(ll >= 2 && a.data[bol + 1] == '.');
				stuffed++;
			}
			bol = i + 1;
		}
	}
	check(bol == a.len);
	check(sa + stuffed + 3 == a.len);
	buf_fini(&a);
	buf_fini(&b);
	return 0;
}
