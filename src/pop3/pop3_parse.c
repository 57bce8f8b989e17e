/*
 * pop3_parse.c - POP3 command parser, base64 of AUTH responses, unique-ids
 * and the RETR/TOP encoder (see pop3_parse.h).
 *
 * Pure: bytes in, a struct or a condition ID out. Slices point into the
 * caller's line; nothing is copied or kept.
 */
#include "pop3_parse.h"

#include <string.h>

#include "base64.h"

static const struct {
	const char *name;
	enum pop3_verb verb;
} verbs[] = {
	{ "USER", POP3_VERB_USER }, { "PASS", POP3_VERB_PASS },
	{ "APOP", POP3_VERB_APOP }, { "AUTH", POP3_VERB_AUTH },
	{ "STLS", POP3_VERB_STLS }, { "CAPA", POP3_VERB_CAPA },
	{ "STAT", POP3_VERB_STAT }, { "LIST", POP3_VERB_LIST },
	{ "UIDL", POP3_VERB_UIDL }, { "RETR", POP3_VERB_RETR },
	{ "TOP", POP3_VERB_TOP },   { "DELE", POP3_VERB_DELE },
	{ "RSET", POP3_VERB_RSET }, { "NOOP", POP3_VERB_NOOP },
	{ "QUIT", POP3_VERB_QUIT },
};

const char *
pop3_verb_name(enum pop3_verb verb)
{
	for (size_t i = 0; i < ARRAY_LEN(verbs); i++)
		if (verbs[i].verb == verb)
			return verbs[i].name;
	return "?";
}

/* Splits s at single spaces into at most max words. Returns the count,
 * or -1 when there are more, or an empty word (two spaces, a leading or
 * trailing space). */
static int
split_words(struct slice s, struct slice *w, int max)
{
	int n = 0;
	size_t i = 0;

	if (s.len == 0)
		return 0;
	while (i <= s.len) {
		size_t j = i;
		while (j < s.len && s.p[j] != ' ')
			j++;
		if (j == i || n == max)
			return -1;
		w[n++] = (struct slice){ s.p + i, j - i };
		i = j + 1;
		if (j == s.len)
			break;
	}
	return n;
}

/* RFC 1939: a message number is a decimal number from 1; leading zeros
 * are tolerated, signs and anything else are not. */
static int
parse_number(struct slice s, uint32_t min, uint32_t *out)
{
	uint64_t v;

	if (s.len == 0 || s.len > 12)
		return -1;
	if (slice_to_u64(s, POP3_MSGNO_MAX, &v) < 0 || v < min)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int
fail(enum cond_id *err, enum cond_id cond)
{
	*err = cond;
	return -1;
}

int
pop3_parse_command(const uint8_t *line, size_t len, struct pop3_cmd *cmd, enum cond_id *err)
{
	size_t i = 0;
	struct slice w[3];
	int nw;

	memset(cmd, 0, sizeof(*cmd));
	cmd->verb = POP3_VERB_UNKNOWN;
	/* Commands are ASCII; a NUL, a control octet (but TAB in passwords)
	 * or an 8-bit octet in the verb makes the line unusable. */
	while (i < len && line[i] != ' ')
		i++;
	cmd->verb_text = (struct slice){ line, i };
	if (i == 0 || i > 4)
		return fail(err, COND_POP3_SYNTAX);
	for (size_t k = 0; k < i; k++)
		if (line[k] < 0x21 || line[k] > 0x7e)
			return fail(err, COND_POP3_SYNTAX);
	for (size_t k = 0; k < ARRAY_LEN(verbs); k++) {
		if (slice_eq_nocase(cmd->verb_text, verbs[k].name)) {
			cmd->verb = verbs[k].verb;
			break;
		}
	}
	if (cmd->verb == POP3_VERB_UNKNOWN)
		return fail(err, COND_POP3_SYNTAX);
	if (i < len)
		cmd->arg = (struct slice){ line + i + 1, len - i - 1 };
	for (size_t k = 0; k < cmd->arg.len; k++) {
		uint8_t c = cmd->arg.p[k];
		if (c == 0 || c == '\r' || c == '\n' || (c < 0x20 && c != '\t') || c == 0x7f)
			return fail(err, COND_POP3_SYNTAX);
	}
	switch (cmd->verb) {
	case POP3_VERB_USER:
		/* RFC 1939 7: USER name; a name has no spaces. */
		if (cmd->arg.len == 0 || memchr(cmd->arg.p, ' ', cmd->arg.len) != NULL)
			return fail(err, COND_POP3_SYNTAX);
		return 0;
	case POP3_VERB_PASS:
		/* RFC 1939 7: the password may contain spaces; take the rest
		 * of the line. */
		if (cmd->arg.len == 0)
			return fail(err, COND_POP3_SYNTAX);
		return 0;
	case POP3_VERB_APOP:
		if (split_words(cmd->arg, w, 2) != 2)
			return fail(err, COND_POP3_SYNTAX);
		return 0;
	case POP3_VERB_AUTH:
		/* RFC 5034 4: AUTH mechanism [initial-response] */
		nw = split_words(cmd->arg, w, 2);
		if (nw < 1)
			return fail(err, COND_POP3_SYNTAX);
		cmd->mech = w[0];
		if (nw == 2)
			cmd->initial = w[1];
		for (size_t k = 0; k < cmd->mech.len; k++)
			if (cmd->mech.p[k] < 0x21 || cmd->mech.p[k] > 0x7e)
				return fail(err, COND_POP3_SYNTAX);
		return 0;
	case POP3_VERB_LIST:
	case POP3_VERB_UIDL:
		nw = split_words(cmd->arg, w, 1);
		if (nw < 0)
			return fail(err, COND_POP3_SYNTAX);
		if (nw == 1) {
			if (parse_number(w[0], 1, &cmd->msgno) < 0)
				return fail(err, COND_POP3_MSG_NUMBER_INVALID);
			cmd->has_msgno = 1;
		}
		return 0;
	case POP3_VERB_RETR:
	case POP3_VERB_DELE:
		if (split_words(cmd->arg, w, 1) != 1)
			return fail(err, COND_POP3_SYNTAX);
		if (parse_number(w[0], 1, &cmd->msgno) < 0)
			return fail(err, COND_POP3_MSG_NUMBER_INVALID);
		cmd->has_msgno = 1;
		return 0;
	case POP3_VERB_TOP:
		if (split_words(cmd->arg, w, 2) != 2)
			return fail(err, COND_POP3_SYNTAX);
		if (parse_number(w[0], 1, &cmd->msgno) < 0)
			return fail(err, COND_POP3_MSG_NUMBER_INVALID);
		cmd->has_msgno = 1;
		if (parse_number(w[1], 0, &cmd->lines) < 0)
			return fail(err, COND_POP3_SYNTAX);
		return 0;
	default:
		/* STLS CAPA STAT RSET NOOP QUIT take no argument. */
		if (cmd->arg.len != 0)
			return fail(err, COND_POP3_SYNTAX);
		return 0;
	}
}

/* ---- SASL ------------------------------------------------------------ */

int
pop3_base64_decode(struct slice in, struct buf *out)
{
	size_t n = 0;

	if (in.len == 1 && in.p[0] == '=')
		return 0;	/* RFC 5034 4: an empty initial response */
	if (in.len == 0 || buf_reserve(out, in.len / 4 * 3) < 0)
		return -1;
	if (base64_decode(in.p, in.len, out->data + out->len, out->cap - out->len - 1, &n) < 0)
		return -1;
	out->len += n;
	out->data[out->len] = '\0';
	return 0;
}

/* ---- unique-ids ------------------------------------------------------ */

void
pop3_uid_of(const char *name, size_t len, char out[POP3_UID_MAX + 1])
{
	static const char hex[] = "0123456789abcdef";
	int ok = len >= 1 && len <= POP3_UID_MAX;

	for (size_t i = 0; ok && i < len; i++)
		if ((uint8_t)name[i] < 0x21 || (uint8_t)name[i] > 0x7e)
			ok = 0;
	if (ok) {
		memcpy(out, name, len);
		out[len] = '\0';
		return;
	}
	/* Two independent 64-bit FNV-1a hashes: stable, and 128 bits make
	 * a collision between two names of one maildrop unthinkable. */
	uint64_t h1 = 1469598103934665603ull, h2 = 0x84222325cbf29ce4ull;
	for (size_t i = 0; i < len; i++) {
		h1 = (h1 ^ (uint8_t)name[i]) * 1099511628211ull;
		h2 = (h2 ^ (uint8_t)name[len - 1 - i]) * 0x100000001b3ull;
		h2 ^= h2 >> 29;
	}
	out[0] = 'H';
	for (int i = 0; i < 16; i++) {
		out[1 + i] = hex[(h1 >> (60 - 4 * i)) & 15];
		out[17 + i] = hex[(h2 >> (60 - 4 * i)) & 15];
	}
	out[33] = '\0';
}

/* ---- replies -------------------------------------------------------- */

int
pop3_reply_is_err(enum cond_id id)
{
	return strncmp(catalog_get(id)->reply, "-ERR", 4) == 0;
}

int
pop3_reply_render(struct buf *out, enum cond_id id, const char *hostname,
		  const struct kv *kvs, size_t nkv)
{
	const struct cond *c = catalog_get(id);

	if (c->reply[0] == '\0' || catalog_render_text(out, id, hostname, kvs, nkv) < 0)
		return -1;
	if (pop3_reply_is_err(id) && buf_appendf(out, " [%s]", c->id) < 0)
		return -1;
	return 0;
}

/* ---- the encoder ----------------------------------------------------- */

void
pop3_enc_init(struct pop3_enc *e, int top, uint32_t lines)
{
	memset(e, 0, sizeof(*e));
	e->top = top;
	e->top_lines = lines;
	e->bol = 1;
}

static int
put(struct buf *out, uint8_t c)
{
	return out == NULL ? 0 : buf_append_byte(out, c);
}

long
pop3_enc_feed(struct pop3_enc *e, const uint8_t *p, size_t n, struct buf *out)
{
	size_t i;

	if (out != NULL && out->max - out->len < 2 * n)
		return -1;
	for (i = 0; i < n && !e->done; i++) {
		uint8_t c = p[i];
		if (c == '\n') {
			int blank = e->line_len == 0 || (e->line_len == 1 && e->last_cr);
			if (!e->last_cr) {
				if (put(out, '\r') < 0)
					return -1;
				e->size++;
			}
			if (put(out, '\n') < 0)
				return -1;
			e->size++;
			e->any = 1;
			e->bol = 1;
			e->last_cr = 0;
			e->line_len = 0;
			if (!e->in_body) {
				if (blank) {
					e->in_body = 1;
					if (e->top && e->top_lines == 0)
						e->done = 1;
				}
			} else {
				e->body_lines++;
				if (e->top && e->body_lines >= e->top_lines)
					e->done = 1;
			}
			continue;
		}
		/* RFC 1939 3: a line starting with '.' gets another '.' */
		if (e->bol && c == '.' && put(out, '.') < 0)
			return -1;
		if (put(out, c) < 0)
			return -1;
		e->size++;
		e->any = 1;
		e->bol = 0;
		e->last_cr = c == '\r';
		e->line_len++;
	}
	return (long)i;
}

int
pop3_enc_finish(struct pop3_enc *e, struct buf *out)
{
	if (e->any && !e->bol) {
		/* the last line had no line end: the client gets one */
		if (out != NULL && buf_append(out, e->last_cr ? "\n" : "\r\n",
					      e->last_cr ? 1 : 2) < 0)
			return -1;
		e->size += e->last_cr ? 1 : 2;
		e->bol = 1;
	}
	if (out != NULL && buf_append(out, ".\r\n", 3) < 0)
		return -1;
	return 0;
}
