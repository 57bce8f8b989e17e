/*
 * pop3_parse.h - the POP3 command parser and the message encoder: pure
 * functions over bytes, no I/O, no globals (fuzzed by fuzz_pop3_parse).
 *
 * The parser turns one command line (without its CRLF) into a struct
 * pop3_cmd or a condition ID. The encoder turns a Maildir file, fed in
 * chunks, into what RETR and TOP send: CRLF line ends, dot-stuffing
 * (RFC 1939 3), the final ".CRLF"; and it counts the message size as the
 * client sees it (CRLF line ends, without the stuffing), which is what
 * STAT and LIST report.
 */
#ifndef POSTERN_POP3_PARSE_H
#define POSTERN_POP3_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "buf.h"

/* RFC 2449 4: a command line is at most 255 octets, CRLF included. */
#define POP3_COMMAND_MAX 255
/* RFC 1939 7: a unique-id is 1 to 70 characters 0x21-0x7E. */
#define POP3_UID_MAX 70
/* Message numbers past this are "invalid" (no maildrop is that large). */
#define POP3_MSGNO_MAX 100000000u

enum pop3_verb {
	POP3_VERB_UNKNOWN,
	POP3_VERB_USER,
	POP3_VERB_PASS,
	POP3_VERB_APOP,
	POP3_VERB_AUTH,
	POP3_VERB_STLS,
	POP3_VERB_CAPA,
	POP3_VERB_STAT,
	POP3_VERB_LIST,
	POP3_VERB_UIDL,
	POP3_VERB_RETR,
	POP3_VERB_TOP,
	POP3_VERB_DELE,
	POP3_VERB_RSET,
	POP3_VERB_NOOP,
	POP3_VERB_QUIT,
	POP3_VERB__COUNT
};

struct pop3_cmd {
	enum pop3_verb verb;
	struct slice verb_text;	/* as sent */
	struct slice arg;	/* everything after the first space (USER, PASS,
				 * AUTH), or the raw bad argument on errors */
	struct slice mech;	/* AUTH: the mechanism */
	struct slice initial;	/* AUTH: the initial response, if any */
	int has_msgno;		/* LIST, UIDL: a number was given */
	uint32_t msgno;		/* 1.. */
	uint32_t lines;		/* TOP: body lines */
};

/* "USER"; "?" for UNKNOWN. */
const char *pop3_verb_name(enum pop3_verb verb);

/* Parses one command line (no CRLF). Returns 0 and fills cmd, or -1 with
 * *err one of COND_POP3_SYNTAX (unknown verb, missing or extra arguments,
 * non-ASCII or control octets) or COND_POP3_MSG_NUMBER_INVALID (a message
 * number that is not a decimal number from 1). cmd->verb is set whenever
 * the verb was recognised, also on errors. */
int pop3_parse_command(const uint8_t *line, size_t len, struct pop3_cmd *cmd,
		       enum cond_id *err) WARN_UNUSED;

/* RFC 4648 base64 into out (bounded by out->max). "=" alone is the empty
 * string (RFC 5034 4). -1 on bad input or when it does not fit. */
int pop3_base64_decode(struct slice in, struct buf *out) WARN_UNUSED;

/* The unique-id for a Maildir file's base name (up to ':'): the name
 * itself when it is 1..70 octets of 0x21-0x7E, otherwise "H" and 32 hex
 * digits of a hash of it (stable: the same name gives the same id). out
 * needs POP3_UID_MAX + 1 bytes. */
void pop3_uid_of(const char *name, size_t len, char out[POP3_UID_MAX + 1]);

/* Renders the POP3 reply line of a catalog row (no CRLF): the row's text
 * ("+OK ..." or "-ERR ...") with {key} placeholders filled from kvs
 * ({hostname} from hostname); client bytes in values become '?' when they
 * are controls, so a value cannot break the line. A "-ERR" reply gets
 * " [ID]". -1 if the row has no reply text or the line does not fit. */
int pop3_reply_render(struct buf *out, enum cond_id id, const char *hostname,
		      const struct kv *kvs, size_t nkv) WARN_UNUSED;
/* 1 if the row's reply is "-ERR ...". */
int pop3_reply_is_err(enum cond_id id);

/* ---- the message encoder ------------------------------------------------ */

struct pop3_enc {
	int top;		/* TOP: stop after top_lines body lines */
	uint32_t top_lines;
	int bol;		/* at the beginning of a line */
	int last_cr;		/* the previous octet was CR */
	int in_body;		/* the empty line after the header was seen */
	uint64_t line_len;	/* octets of the current line so far */
	uint32_t body_lines;	/* complete body lines sent */
	int done;		/* TOP: enough sent; ignore the rest */
	int any;		/* at least one octet of message */
	uint64_t size;		/* message octets with CRLF ends, no stuffing */
};

/* top != 0: TOP with lines body lines; else RETR (or size counting). */
void pop3_enc_init(struct pop3_enc *e, int top, uint32_t lines);
/* Encodes n octets into out (which needs 2 * n free bytes below its max;
 * out may be NULL to only count). Returns the octets consumed: n, or less
 * once a TOP is complete (e->done). -1 if out has no room. */
long pop3_enc_feed(struct pop3_enc *e, const uint8_t *p, size_t n, struct buf *out) WARN_UNUSED;
/* Ends the message: a CRLF if the last line had none, then ".CRLF" (out
 * needs 5 free bytes; NULL to only count). */
int pop3_enc_finish(struct pop3_enc *e, struct buf *out) WARN_UNUSED;

#endif
