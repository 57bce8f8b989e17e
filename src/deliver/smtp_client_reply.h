/*
 * smtp_client_reply.h - the SMTP client's reply parser: replies of one or
 * more lines ("250-..." then "250 ..."), their enhanced status code (RFC
 * 3463, RFC 2034), and the EHLO keywords the client uses.
 *
 * Owns nothing but the parse state; pure (no I/O, no logging), so the
 * fuzz target runs it alone. Bounded: a line is at most
 * SMTP_CLIENT_LINE_MAX octets with its CRLF, a reply at most
 * SMTP_CLIENT_LINES_MAX lines; the text kept is cut at
 * SMTP_CLIENT_TEXT_MAX. Anything that is not a reply line (no three
 * digits, a code that changes inside a reply, a first digit outside 2-5,
 * a control character) is a protocol error.
 */
#ifndef POSTERN_SMTP_CLIENT_REPLY_H
#define POSTERN_SMTP_CLIENT_REPLY_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define SMTP_CLIENT_LINE_MAX 4096	/* 512 (RFC 5321 4.5.3.1.5) and slack */
#define SMTP_CLIENT_LINES_MAX 100
#define SMTP_CLIENT_TEXT_MAX 512

/* One reply: code 0 means none came (connection lost, timeout). enh is
 * "x.y.z" or "". text is the lines' texts joined by a space, without the
 * code and the enhanced code, cut at SMTP_CLIENT_TEXT_MAX - 1 octets. */
struct smtp_client_reply {
	int code;
	char enh[16];
	char text[SMTP_CLIENT_TEXT_MAX];
};

/* EHLO keywords (RFC 5321 4.1.1.1 and the extensions'). */
#define SMTP_EXT_PIPELINING 0x01u
#define SMTP_EXT_SIZE       0x02u
#define SMTP_EXT_8BITMIME   0x04u
#define SMTP_EXT_SMTPUTF8   0x08u
#define SMTP_EXT_DSN        0x10u
#define SMTP_EXT_CHUNKING   0x20u
#define SMTP_EXT_STARTTLS   0x40u
#define SMTP_EXT_AUTH       0x80u

#define SMTP_AUTH_PLAIN 0x1u
#define SMTP_AUTH_LOGIN 0x2u

struct smtp_client_ext {
	unsigned flags;		/* SMTP_EXT_* */
	uint64_t size;		/* SIZE n: the peer's limit, 0 = none given */
	unsigned auth;		/* SMTP_AUTH_* offered */
};

enum smtp_client_rp {
	SMTP_CLIENT_RP_MORE,	/* the reply goes on: feed the next line */
	SMTP_CLIENT_RP_DONE,	/* the reply is complete in p->r */
	SMTP_CLIENT_RP_ERROR,	/* not a reply line, or a code that changed */
	SMTP_CLIENT_RP_TOO_MANY,	/* more than SMTP_CLIENT_LINES_MAX lines */
};

struct smtp_client_rparse {
	struct smtp_client_reply r;
	unsigned lines;		/* lines of this reply so far */
	size_t tlen;		/* octets in r.text */
	int ehlo;		/* parse EHLO keywords into ext (set by the caller) */
	struct smtp_client_ext ext;
	char first_word[256];	/* the first line's first word (the greeting's
				 * or EHLO reply's host name), "" if none */
};

/* Starts a new reply; ehlo: the lines after the first are EHLO keywords. */
void smtp_client_rparse_init(struct smtp_client_rparse *p, int ehlo);

/* Feeds one line without its line end (CRLF or bare LF removed). */
enum smtp_client_rp smtp_client_rparse_line(struct smtp_client_rparse *p, const uint8_t *line,
					    size_t len);

/* Finds the next line in in: its length without the line end in *len,
 * the octets to consume (with the line end) in *used. 1 when a line is
 * there, 0 when more input is needed, -1 when SMTP_CLIENT_LINE_MAX octets
 * came without a line end (too long). */
int smtp_client_line_next(struct slice in, size_t *len, size_t *used);

/* Parses one EHLO keyword line (the text after "250-"/"250 ") into ext. */
void smtp_client_ehlo_keyword(struct smtp_client_ext *ext, const uint8_t *kw, size_t len);

/* 1 when the reply carries an enhanced code of class x.7.y (security or
 * policy: RFC 3463 3.8). */
int smtp_client_reply_is_policy(const struct smtp_client_reply *r);

#endif
