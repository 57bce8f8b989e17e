/*
 * fuzz_smtp_parse.c - libFuzzer target for smtp/smtp_parse.c.
 *
 * Input: byte 0 picks the offered extensions, the rest is one command
 * line. Checks, besides the sanitizers: the parse is deterministic, every
 * slice lies inside the line, an accepted path obeys the RFC 5321 length
 * limits and its domain validates, an accepted HELO argument validates, a
 * refusal names one of the conditions the header lists, and xtext decoding
 * never grows its input or passes the buffer max.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "smtp_parse.h"

static void
check_slice(struct slice s, const uint8_t *line, size_t len)
{
	if (s.len == 0)
		return;
	check(s.p >= line && s.p + s.len <= line + len);
}

static int
allowed_error(enum cond_id e)
{
	switch (e) {
	case COND_SMTP_COMMAND_UNKNOWN:
	case COND_SMTP_COMMAND_NON_ASCII:
	case COND_SMTP_ARG_SYNTAX:
	case COND_SMTP_ARG_INVALID:
	case COND_SMTP_HELO_INVALID:
	case COND_SMTP_SENDER_SYNTAX:
	case COND_RCPT_SYNTAX:
	case COND_SMTP_UTF8_REQUIRED:
	case COND_SMTP_PARAM_UNSUPPORTED:
	case COND_SMTP_PARAM_INVALID:
		return 1;
	default:
		return 0;
	}
}

static void
check_path(const struct smtp_cmd *cmd)
{
	const struct smtp_path *p = &cmd->path;

	if (p->is_null) {
		check(cmd->verb == SMTP_VERB_MAIL && p->mailbox.len == 0);
		return;
	}
	if (p->is_postmaster) {
		check(cmd->verb == SMTP_VERB_RCPT && p->mailbox.len == 10);
		return;
	}
	check(p->mailbox.len == p->local.len + 1 + p->domain.len);
	check(p->mailbox.len <= 254 && p->local.len <= 64 &&
	      p->local.len >= 1);
	check(p->mailbox.p[p->local.len] == '@');
	check(smtp_domain_valid(p->domain.p, p->domain.len, 1));
	if (cmd->verb == SMTP_VERB_MAIL && p->non_ascii)
		check(cmd->smtputf8);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_parse_opts opts = { 0 };
	struct smtp_cmd cmd, again;
	enum cond_id err = COND__COUNT, err2 = COND__COUNT;
	const uint8_t *line;
	size_t len;
	struct buf out;
	int rc;

	if (size == 0)
		return 0;
	opts.offered = data[0] & 0x3fu;
	line = data + 1;
	len = size - 1;

	rc = smtp_parse_command(line, len, &opts, &cmd, &err);
	check(smtp_parse_command(line, len, &opts, &again, &err2) == rc);
	check(again.verb == cmd.verb);
	check((unsigned)cmd.verb < SMTP_VERB__COUNT);
	check(smtp_verb_name(cmd.verb) != NULL);
	check_slice(cmd.verb_text, line, len);
	check_slice(cmd.arg, line, len);
	check_slice(cmd.helo, line, len);
	check_slice(cmd.path.mailbox, line, len);
	check_slice(cmd.path.local, line, len);
	check_slice(cmd.path.domain, line, len);
	check_slice(cmd.envid, line, len);
	check_slice(cmd.auth, line, len);
	check_slice(cmd.orcpt, line, len);
	check_slice(cmd.bad_param, line, len);
	if (rc == 0) {
		check(cmd.verb != SMTP_VERB_UNKNOWN);
		if (cmd.verb == SMTP_VERB_HELO || cmd.verb == SMTP_VERB_EHLO)
			check(smtp_domain_valid(cmd.helo.p, cmd.helo.len, 0));
		if (cmd.verb == SMTP_VERB_MAIL || cmd.verb == SMTP_VERB_RCPT)
			check_path(&cmd);
		if (cmd.notify & SMTP_NOTIFY_NEVER)
			check(cmd.notify == SMTP_NOTIFY_NEVER);
		if (cmd.envid.len > 0) {
			buf_init(&out, 100);
			check(smtp_xtext_decode(cmd.envid, &out) == 0);
			buf_fini(&out);
		}
	} else {
		check(rc == -1);
		check(err2 == err);
		check(allowed_error(err));
		if (err == COND_SMTP_PARAM_UNSUPPORTED ||
		    err == COND_SMTP_PARAM_INVALID)
			check(cmd.bad_param.len > 0);
	}

	/* the helpers on raw bytes */
	(void)smtp_domain_valid(line, len, data[0] & 0x40);
	buf_init(&out, 32);
	if (smtp_xtext_decode((struct slice){ line, len }, &out) == 0)
		check(out.len <= len && out.len <= 32);
	else
		check(out.len == 0);
	buf_fini(&out);
	return 0;
}
