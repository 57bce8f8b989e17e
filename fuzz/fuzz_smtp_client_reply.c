/*
 * fuzz_smtp_client_reply.c - libFuzzer target for the SMTP client's
 * reply parser and EHLO keyword parser (deliver/smtp_client_reply.c).
 *
 * Input: bytes as a peer would send them. They are cut into lines with
 * smtp_client_line_next and fed to the reply parser, starting a new reply
 * after each one completes (the first as an EHLO reply). Checks, besides
 * the sanitizers: a line is never longer than the bound, the consumed
 * count lies inside the input; a completed reply has a code 200..559,
 * a NUL-terminated text within its bound, an enhanced code that starts
 * with the reply's class; never more lines than the bound per reply;
 * feeding the same lines again gives the same reply; every line fed as
 * an EHLO keyword leaves the SIZE and AUTH fields consistent with flags.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "smtp_client_reply.h"

static void
check_reply(const struct smtp_client_rparse *p)
{
	const struct smtp_client_reply *r = &p->r;

	check(r->code >= 200 && r->code <= 559);
	check(memchr(r->text, '\0', sizeof(r->text)) != NULL);
	check(strlen(r->text) == p->tlen);
	check(memchr(r->enh, '\0', sizeof(r->enh)) != NULL);
	if (r->enh[0] != '\0')
		check(r->enh[0] == '0' + r->code / 100 && r->enh[1] == '.');
	check(p->lines >= 1 && p->lines <= SMTP_CLIENT_LINES_MAX);
	check(memchr(p->first_word, '\0', sizeof(p->first_word)) != NULL);
	if (!(p->ext.flags & SMTP_EXT_SIZE))
		check(p->ext.size == 0);
	if (!(p->ext.flags & SMTP_EXT_AUTH))
		check(p->ext.auth == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_client_rparse p, again;
	struct slice in = { data, size };
	size_t starts[SMTP_CLIENT_LINES_MAX + 1], lens[SMTP_CLIENT_LINES_MAX + 1];
	size_t nl = 0;
	int first = 1;

	smtp_client_rparse_init(&p, 1);
	while (in.len > 0) {
		size_t len = 0, used = 0;
		int got = smtp_client_line_next(in, &len, &used);
		if (got <= 0) {
			if (got < 0)
				check(in.len >= SMTP_CLIENT_LINE_MAX);
			break;
		}
		check(used <= in.len && len < used && len < SMTP_CLIENT_LINE_MAX);
		struct smtp_client_ext e = { 0 };
		smtp_client_ehlo_keyword(&e, in.p, len);
		if (!(e.flags & SMTP_EXT_AUTH))
			check(e.auth == 0);
		if (nl <= SMTP_CLIENT_LINES_MAX) {
			starts[nl] = (size_t)(in.p - data);
			lens[nl] = len;
			nl++;
		}
		enum smtp_client_rp rp = smtp_client_rparse_line(&p, in.p, len);
		in.p += used;
		in.len -= used;
		if (rp == SMTP_CLIENT_RP_MORE)
			continue;
		if (rp == SMTP_CLIENT_RP_DONE) {
			check_reply(&p);
			/* The same lines again: the same reply. */
			smtp_client_rparse_init(&again, first);
			enum smtp_client_rp r2 = SMTP_CLIENT_RP_MORE;
			for (size_t i = 0; i < nl; i++)
				r2 = smtp_client_rparse_line(&again, data + starts[i], lens[i]);
			check(r2 == SMTP_CLIENT_RP_DONE);
			check(memcmp(&again.r, &p.r, sizeof(p.r)) == 0);
			check(again.ext.flags == p.ext.flags && again.ext.size == p.ext.size);
		} else {
			check(rp == SMTP_CLIENT_RP_ERROR || p.lines == SMTP_CLIENT_LINES_MAX + 1);
			break;
		}
		first = 0;
		nl = 0;
		smtp_client_rparse_init(&p, 0);
	}
	return 0;
}
