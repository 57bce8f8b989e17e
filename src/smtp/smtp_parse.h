/*
 * smtp_parse.h - the pure SMTP command parser (RFC 5321, 1870, 3030,
 * 3461, 6152, 6531).
 *
 * Bytes go in, a struct smtp_cmd or a condition ID comes out. No I/O, no
 * globals, no allocation: every slice in the result points into the input
 * line. Fuzzed by fuzz/fuzz_smtp_parse.c.
 *
 * Choices where the RFCs leave room (tested in tests/unit/test_smtp_parse.c):
 * - Any byte below 0x20 or equal to 0x7f anywhere in the line (TAB too) is
 *   SMTP-COMMAND-NON-ASCII, checked before anything else.
 * - The verb is the text up to the first space; one or more spaces separate
 *   it from the argument, and trailing spaces of the line are ignored (so
 *   "QUIT " is QUIT). An empty verb (line starting with a space, or an empty
 *   line) and a verb with 8-bit bytes are SMTP-COMMAND-UNKNOWN.
 * - 8-bit bytes are allowed, as well-formed UTF-8 only, inside MAIL/RCPT
 *   paths and in VRFY/EXPN/HELP/NOOP arguments. Anywhere else (MAIL/RCPT
 *   parameters, BDAT, AUTH) they are SMTP-ARG-SYNTAX, and in HELO/EHLO they
 *   are SMTP-HELO-INVALID. RFC 6533 utf-8-addr-unitext in ORCPT is not
 *   accepted (only xtext).
 * - DATA, RSET, QUIT, STARTTLS, TURN with an argument: SMTP-ARG-INVALID.
 *   VRFY, EXPN, AUTH without one: SMTP-ARG-INVALID. MAIL/RCPT without
 *   "FROM:"/"TO:", without angle brackets, or with junk right after '>':
 *   SMTP-ARG-SYNTAX. ETRN, SEND, SOML, SAML, ATRN are recognised and their
 *   argument is not checked: the session answers 502 to them anyway.
 * - HELO/EHLO take exactly one word: a domain or an address literal.
 *   A dotless name ("localhost") and an all-numeric name are valid domain
 *   syntax; judging them is policy's job.
 * - MAIL FROM:/RCPT TO: may have one space after the colon. A source route
 *   is parsed, validated and dropped (had_route). '%' and '!' in a local
 *   part are plain atext: Postern never routes on them.
 * - Lengths (RFC 5321 4.5.3.1): local part <= 64, domain <= 255, mailbox
 *   (local@domain) <= 254 octets.
 * - Parameters: keyword syntax errors are SMTP-ARG-SYNTAX; an unknown
 *   keyword, or one whose extension is not offered or belongs to the other
 *   command, is SMTP-PARAM-UNSUPPORTED; a repeated keyword or a bad value is
 *   SMTP-PARAM-INVALID. bad_param names the keyword in both cases.
 * - Order of checks for MAIL: path syntax, then parameters, then
 *   SMTP-UTF8-REQUIRED (non-ASCII path without SMTPUTF8).
 */
#ifndef POSTERN_SMTP_PARSE_H
#define POSTERN_SMTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "buf.h"
#include "spool.h"	/* enum smtp_ret, SMTP_NOTIFY_* */

enum smtp_verb {
	SMTP_VERB_UNKNOWN,
	SMTP_VERB_HELO, SMTP_VERB_EHLO, SMTP_VERB_MAIL, SMTP_VERB_RCPT,
	SMTP_VERB_DATA, SMTP_VERB_BDAT, SMTP_VERB_RSET, SMTP_VERB_NOOP,
	SMTP_VERB_QUIT, SMTP_VERB_HELP, SMTP_VERB_VRFY, SMTP_VERB_EXPN,
	SMTP_VERB_TURN, SMTP_VERB_STARTTLS, SMTP_VERB_AUTH, SMTP_VERB_ETRN,
	SMTP_VERB_SEND, SMTP_VERB_SOML, SMTP_VERB_SAML, SMTP_VERB_ATRN,
	SMTP_VERB__COUNT
};

/* Extensions offered on this connection: parameters of extensions not
 * offered are SMTP-PARAM-UNSUPPORTED. */
#define SMTP_EXT_SIZE      0x01u
#define SMTP_EXT_8BITMIME  0x02u
#define SMTP_EXT_SMTPUTF8  0x04u
#define SMTP_EXT_DSN       0x08u
#define SMTP_EXT_CHUNKING  0x10u
#define SMTP_EXT_AUTH      0x20u	/* MAIL AUTH= (RFC 4954 5) */

enum smtp_body { SMTP_BODY_NONE, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };
/* enum smtp_ret and SMTP_NOTIFY_*: store/spool.h, which keeps them. */

/* A reverse-path or forward-path, after any source route is dropped. */
struct smtp_path {
	struct slice mailbox;	/* "local@domain", "postmaster", or empty for <> */
	struct slice local;	/* local part as written (quoted form kept) */
	struct slice domain;	/* domain or address literal ("[192.0.2.1]"); empty for <postmaster> */
	int is_null;		/* <> */
	int is_postmaster;	/* <postmaster> (RCPT only, RFC 5321 4.5.1) */
	int non_ascii;		/* UTF-8 somewhere in the mailbox */
	int had_route;		/* a source route (<@a,@b:x@y>) was given and dropped */
};

struct smtp_cmd {
	enum smtp_verb verb;
	struct slice verb_text;		/* the verb as sent (for logs) */
	struct slice arg;		/* everything after the verb and its space */

	/* HELO/EHLO */
	struct slice helo;

	/* MAIL/RCPT */
	struct smtp_path path;
	int has_size;
	uint64_t size;			/* SIZE= */
	enum smtp_body body;		/* BODY= */
	int smtputf8;			/* SMTPUTF8 */
	enum smtp_ret ret;		/* RET= */
	struct slice envid;		/* ENVID= (xtext, as sent) */
	struct slice auth;		/* AUTH= (xtext, as sent) */
	unsigned notify;		/* NOTIFY= bits, 0 = not given */
	struct slice orcpt;		/* ORCPT= (addr-type;xtext, as sent) */

	/* BDAT */
	uint64_t chunk_size;
	int has_chunk_size;	/* chunk_size was read (even if the rest was not) */
	int last;

	/* On SMTP-PARAM-UNSUPPORTED / SMTP-PARAM-INVALID: the keyword. */
	struct slice bad_param;
};

struct smtp_parse_opts {
	unsigned offered;	/* SMTP_EXT_* bits */
};

/* Parses one command line (without its CRLF). Returns 0 and fills cmd, or
 * -1 and sets *err_out to one of: SMTP_COMMAND_UNKNOWN,
 * SMTP_COMMAND_NON_ASCII, SMTP_ARG_SYNTAX, SMTP_ARG_INVALID,
 * SMTP_HELO_INVALID, SMTP_SENDER_SYNTAX, RCPT_SYNTAX, SMTP_UTF8_REQUIRED
 * (MAIL with a non-ASCII sender but no SMTPUTF8 parameter),
 * SMTP_PARAM_UNSUPPORTED, SMTP_PARAM_INVALID. cmd->verb is set even on
 * error when the verb was recognised. */
int smtp_parse_command(const uint8_t *line, size_t len,
		       const struct smtp_parse_opts *opts,
		       struct smtp_cmd *cmd, enum cond_id *err_out);

/* Validates a domain (RFC 5321 Domain, U-labels allowed when utf8) or an
 * address literal ([IPv4], [IPv6:...]). 1 valid, 0 not. */
int smtp_domain_valid(const uint8_t *p, size_t len, int utf8);

const char *smtp_verb_name(enum smtp_verb verb);

/* Decodes xtext (RFC 3461 4) into out; -1 on bad xtext or overflow. */
int smtp_xtext_decode(struct slice in, struct buf *out) WARN_UNUSED;

#endif
