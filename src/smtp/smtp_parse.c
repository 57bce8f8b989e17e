/*
 * smtp_parse.c - the pure SMTP command parser.
 *
 * Owns the grammar of one command line: verb, HELO/EHLO argument, MAIL and
 * RCPT paths and their ESMTP parameters, BDAT size. Leaves to the session
 * everything that depends on state or policy (sequence, limits, whether a
 * non-ASCII recipient is acceptable, what to do with VRFY).
 * Invariants: no I/O, no globals, no allocation; every slice in struct
 * smtp_cmd points into the caller's line; nothing reads past len.
 */
#include "smtp_parse.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

/* ---- byte classes ------------------------------------------------------ */

static int
is_alpha(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int
is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

static int
is_alnum(uint8_t c)
{
	return is_alpha(c) || is_digit(c);
}

/* RFC 5321 4.1.2 atext (RFC 5322 3.2.3), ASCII part. */
static int
is_atext(uint8_t c)
{
	if (is_alnum(c))
		return 1;
	return c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* RFC 3461 4 xchar: '!'..'~' except '+' and '='. */
static int
is_xchar(uint8_t c)
{
	return c >= 33 && c <= 126 && c != '+' && c != '=';
}

static int
is_upper_hex(uint8_t c)
{
	return is_digit(c) || (c >= 'A' && c <= 'F');
}

static int
hex_val(uint8_t c)
{
	return is_digit(c) ? c - '0' : c - 'A' + 10;
}

/*
 * Length of the well-formed UTF-8 sequence starting at p[0] (a byte >=
 * 0x80), or 0 if it is malformed (RFC 3629 4: no overlongs, no surrogates,
 * nothing above U+10FFFF).
 */
static size_t
utf8_seq_len(const uint8_t *p, size_t len)
{
	uint8_t c = p[0], lo = 0x80, hi = 0xbf;
	size_t n;

	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

/* 1 if p[0..len) is well-formed UTF-8 (ASCII included). */
static int
utf8_valid(const uint8_t *p, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t n;

		if (p[i] < 0x80) {
			i++;
			continue;
		}
		n = utf8_seq_len(p + i, len - i);
		if (n == 0)
			return 0;
		i += n;
	}
	return 1;
}

static int
has_8bit(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] >= 0x80)
			return 1;
	return 0;
}

static int
slice_eq_ci(const uint8_t *p, size_t len, const char *s)
{
	size_t n = strlen(s);

	return len == n && strncasecmp((const char *)p, s, n) == 0;
}

/* ---- verbs ------------------------------------------------------------- */

static const char *const verb_names[SMTP_VERB__COUNT] = {
	[SMTP_VERB_UNKNOWN] = "UNKNOWN",
	[SMTP_VERB_HELO] = "HELO",
	[SMTP_VERB_EHLO] = "EHLO",
	[SMTP_VERB_MAIL] = "MAIL",
	[SMTP_VERB_RCPT] = "RCPT",
	[SMTP_VERB_DATA] = "DATA",
	[SMTP_VERB_BDAT] = "BDAT",
	[SMTP_VERB_RSET] = "RSET",
	[SMTP_VERB_NOOP] = "NOOP",
	[SMTP_VERB_QUIT] = "QUIT",
	[SMTP_VERB_HELP] = "HELP",
	[SMTP_VERB_VRFY] = "VRFY",
	[SMTP_VERB_EXPN] = "EXPN",
	[SMTP_VERB_TURN] = "TURN",
	[SMTP_VERB_STARTTLS] = "STARTTLS",
	[SMTP_VERB_AUTH] = "AUTH",
	[SMTP_VERB_ETRN] = "ETRN",
	[SMTP_VERB_SEND] = "SEND",
	[SMTP_VERB_SOML] = "SOML",
	[SMTP_VERB_SAML] = "SAML",
	[SMTP_VERB_ATRN] = "ATRN",
};

const char *
smtp_verb_name(enum smtp_verb verb)
{
	if ((unsigned)verb >= SMTP_VERB__COUNT)
		return "UNKNOWN";
	return verb_names[verb];
}

static enum smtp_verb
verb_lookup(const uint8_t *p, size_t len)
{
	for (int v = SMTP_VERB_UNKNOWN + 1; v < SMTP_VERB__COUNT; v++)
		if (slice_eq_ci(p, len, verb_names[v]))
			return (enum smtp_verb)v;
	return SMTP_VERB_UNKNOWN;
}

/* ---- domains ----------------------------------------------------------- */

/* RFC 5321 4.1.3 address-literal: [IPv4] or [IPv6:...]. General literals
 * ([tag:content]) name no address we could reach, so they are refused. */
static int
addr_literal_valid(const uint8_t *p, size_t len)
{
	char text[64];
	unsigned char bin[16];
	const uint8_t *in;
	size_t n;
	int af;

	if (len < 3 || p[0] != '[' || p[len - 1] != ']')
		return 0;
	in = p + 1;
	n = len - 2;
	if (n >= 5 && strncasecmp((const char *)in, "IPv6:", 5) == 0) {
		af = AF_INET6;
		in += 5;
		n -= 5;
	} else {
		af = AF_INET;
	}
	if (n == 0 || n >= sizeof(text))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!(is_digit(in[i]) || in[i] == '.' || in[i] == ':' ||
		      (in[i] >= 'a' && in[i] <= 'f') ||
		      (in[i] >= 'A' && in[i] <= 'F')))
			return 0;
	memcpy(text, in, n);
	text[n] = '\0';
	return inet_pton(af, text, bin) == 1;
}

int
smtp_domain_valid(const uint8_t *p, size_t len, int utf8)
{
	size_t i = 0;

	if (p == NULL || len == 0 || len > 255)
		return 0;
	if (p[0] == '[')
		return addr_literal_valid(p, len);
	if (!utf8 && has_8bit(p, len))
		return 0;
	if (!utf8_valid(p, len))
		return 0;
	while (i < len) {
		size_t start = i;

		/* one label: RFC 5321 sub-domain = Let-dig [Ldh-str]; RFC 6531
		 * adds U-labels (any non-ASCII UTF-8 counts as a letter). */
		while (i < len && p[i] != '.') {
			if (!(is_alnum(p[i]) || p[i] == '-' || p[i] >= 0x80))
				return 0;
			i++;
		}
		if (i == start || i - start > 63)
			return 0;
		if (p[start] == '-' || p[i - 1] == '-')
			return 0;
		if (i < len) {
			i++;		/* the dot */
			if (i == len)
				return 0;	/* trailing dot */
		}
	}
	return 1;
}

/* ---- xtext ------------------------------------------------------------- */

/* 1 if s is non-empty, well-formed xtext (RFC 3461 4). */
static int
xtext_valid(const uint8_t *p, size_t len)
{
	if (len == 0)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '+') {
			if (len - i < 3 || !is_upper_hex(p[i + 1]) ||
			    !is_upper_hex(p[i + 2]))
				return 0;
			i += 2;
		} else if (!is_xchar(p[i])) {
			return 0;
		}
	}
	return 1;
}

int
smtp_xtext_decode(struct slice in, struct buf *out)
{
	size_t start = out->len;

	for (size_t i = 0; i < in.len; i++) {
		uint8_t c = in.p[i];

		if (c == '+') {
			if (in.len - i < 3 || !is_upper_hex(in.p[i + 1]) ||
			    !is_upper_hex(in.p[i + 2]))
				goto fail;
			c = (uint8_t)(hex_val(in.p[i + 1]) * 16 +
				      hex_val(in.p[i + 2]));
			i += 2;
		} else if (!is_xchar(c)) {
			goto fail;
		}
		if (buf_append_byte(out, c) < 0)
			goto fail;
	}
	return 0;
fail:
	out->len = start;	/* leave out as it was */
	if (out->data != NULL)
		out->data[start] = '\0';
	return -1;
}

/* ---- paths ------------------------------------------------------------- */

/*
 * Parses Local-part "@" Domain in p[0..len) (RFC 5321 4.1.2, RFC 6531 3.3).
 * Fills local, domain and non_ascii. 0 valid, -1 not.
 */
static int
mailbox_parse(const uint8_t *p, size_t len, struct smtp_path *path)
{
	size_t i = 0;

	if (len == 0)
		return -1;
	if (p[0] == '"') {
		/* Quoted-string: qtextSMTP / quoted-pairSMTP, UTF-8 allowed */
		i = 1;
		for (;;) {
			if (i >= len)
				return -1;
			if (p[i] == '"')
				break;
			if (p[i] == '\\') {
				if (i + 1 >= len || p[i + 1] < 32 ||
				    p[i + 1] > 126)
					return -1;
				i += 2;
			} else if (p[i] >= 0x80) {
				size_t n = utf8_seq_len(p + i, len - i);

				if (n == 0)
					return -1;
				i += n;
			} else if (p[i] >= 32 && p[i] <= 126) {
				i++;
			} else {
				return -1;
			}
		}
		i++;		/* closing quote */
	} else {
		/* Dot-string = Atom *("." Atom) */
		int prev_dot = 1;

		while (i < len && p[i] != '@') {
			if (p[i] == '.') {
				if (prev_dot)
					return -1;
				prev_dot = 1;
				i++;
			} else if (p[i] >= 0x80) {
				size_t n = utf8_seq_len(p + i, len - i);

				if (n == 0)
					return -1;
				prev_dot = 0;
				i += n;
			} else if (is_atext(p[i])) {
				prev_dot = 0;
				i++;
			} else {
				return -1;
			}
		}
		if (prev_dot)
			return -1;	/* empty, or trailing dot */
	}
	if (i >= len || p[i] != '@')
		return -1;
	/* RFC 5321 4.5.3.1.1 local part, 4.5.3.1.2 domain, 4.5.3.1.3 path */
	if (i > 64 || len - i - 1 > 255 || len > 254)
		return -1;
	if (!smtp_domain_valid(p + i + 1, len - i - 1, 1))
		return -1;
	path->local = (struct slice){ p, i };
	path->domain = (struct slice){ p + i + 1, len - i - 1 };
	path->non_ascii = has_8bit(p, len);
	return 0;
}

/*
 * Parses what is between the angle brackets: empty (<>), <postmaster>,
 * [A-d-l ":"] Mailbox. is_rcpt selects the RCPT forms. 0 valid, -1 not.
 */
static int
path_parse(const uint8_t *p, size_t len, int is_rcpt, struct smtp_path *path)
{
	if (len == 0) {
		if (is_rcpt)
			return -1;	/* <> is a reverse-path only */
		path->is_null = 1;
		path->mailbox = (struct slice){ p, 0 };
		return 0;
	}
	if (is_rcpt && slice_eq_ci(p, len, "postmaster")) {
		/* RFC 5321 4.5.1: <Postmaster> without a domain */
		path->is_postmaster = 1;
		path->mailbox = (struct slice){ p, len };
		path->local = (struct slice){ p, len };
		path->domain = (struct slice){ p, 0 };
		return 0;
	}
	if (p[0] == '@') {
		/* A-d-l = At-domain *( "," At-domain ) ":" (RFC 5321 4.1.2;
		 * 4.1.1.3 and C: accepted, and ignored) */
		size_t i = 0;

		for (;;) {
			size_t start;

			if (i >= len || p[i] != '@')
				return -1;
			start = ++i;
			while (i < len && p[i] != ',' && p[i] != ':')
				i++;
			if (i >= len ||
			    !smtp_domain_valid(p + start, i - start, 1))
				return -1;
			if (p[i++] == ':')
				break;
		}
		path->had_route = 1;
		p += i;
		len -= i;
	}
	if (mailbox_parse(p, len, path) < 0)
		return -1;
	path->mailbox = (struct slice){ p, len };
	return 0;
}

/* ---- parameters -------------------------------------------------------- */

enum param_id {
	P_SIZE, P_BODY, P_SMTPUTF8, P_RET, P_ENVID, P_AUTH, P_NOTIFY, P_ORCPT,
	P__COUNT
};

static const struct {
	const char *name;
	unsigned ext;
	int rcpt;		/* 0 MAIL, 1 RCPT */
} params[P__COUNT] = {
	[P_SIZE] = { "SIZE", SMTP_EXT_SIZE, 0 },
	[P_BODY] = { "BODY", SMTP_EXT_8BITMIME, 0 },
	[P_SMTPUTF8] = { "SMTPUTF8", SMTP_EXT_SMTPUTF8, 0 },
	[P_RET] = { "RET", SMTP_EXT_DSN, 0 },
	[P_ENVID] = { "ENVID", SMTP_EXT_DSN, 0 },
	[P_AUTH] = { "AUTH", SMTP_EXT_AUTH, 0 },
	[P_NOTIFY] = { "NOTIFY", SMTP_EXT_DSN, 1 },
	[P_ORCPT] = { "ORCPT", SMTP_EXT_DSN, 1 },
};

/* RFC 3461 4.1: NOTIFY="NEVER" / 1#( "SUCCESS" / "FAILURE" / "DELAY" ) */
static int
notify_parse(const uint8_t *p, size_t len, unsigned *out)
{
	unsigned bits = 0;
	size_t i = 0;

	if (slice_eq_ci(p, len, "NEVER")) {
		*out = SMTP_NOTIFY_NEVER;
		return 0;
	}
	while (i <= len) {
		size_t start = i;
		unsigned bit;

		while (i < len && p[i] != ',')
			i++;
		if (slice_eq_ci(p + start, i - start, "SUCCESS"))
			bit = SMTP_NOTIFY_SUCCESS;
		else if (slice_eq_ci(p + start, i - start, "FAILURE"))
			bit = SMTP_NOTIFY_FAILURE;
		else if (slice_eq_ci(p + start, i - start, "DELAY"))
			bit = SMTP_NOTIFY_DELAY;
		else
			return -1;	/* empty item, NEVER in a list, junk */
		if (bits & bit)
			return -1;
		bits |= bit;
		i++;			/* the comma, or one past the end */
	}
	*out = bits;
	return 0;
}

/* RFC 3461 4.2: ORCPT=addr-type ";" xtext; addr-type is an atom. The
 * decoded address must be printable US-ASCII (4.2) and the whole value at
 * most 500 characters. */
static int
orcpt_valid(const uint8_t *p, size_t len)
{
	size_t i = 0;

	if (len > 500)
		return 0;
	while (i < len && p[i] != ';') {
		if (!is_atext(p[i]))
			return 0;
		i++;
	}
	if (i == 0 || i >= len)
		return 0;
	i++;
	if (!xtext_valid(p + i, len - i))
		return 0;
	for (; i < len; i++) {
		if (p[i] == '+') {
			int c = hex_val(p[i + 1]) * 16 + hex_val(p[i + 2]);

			if (c < 32 || c > 126)
				return 0;
			i += 2;
		}
	}
	return 1;
}

/* Applies one known keyword's value; 0 ok, -1 bad value. */
static int
param_value(struct smtp_cmd *cmd, enum param_id id, const uint8_t *v,
	    size_t vlen, int has_value)
{
	switch (id) {
	case P_SIZE:
		/* RFC 1870 size-value = 1*20DIGIT */
		if (!has_value ||
		    slice_to_u64((struct slice){ v, vlen }, UINT64_MAX,
				 &cmd->size) < 0)
			return -1;
		cmd->has_size = 1;
		return 0;
	case P_BODY:
		/* RFC 6152; BINARYMIME (RFC 3030) is not offered */
		if (has_value && slice_eq_ci(v, vlen, "7BIT"))
			cmd->body = SMTP_BODY_7BIT;
		else if (has_value && slice_eq_ci(v, vlen, "8BITMIME"))
			cmd->body = SMTP_BODY_8BITMIME;
		else
			return -1;
		return 0;
	case P_SMTPUTF8:
		/* RFC 6531 3.4: no value */
		if (has_value)
			return -1;
		cmd->smtputf8 = 1;
		return 0;
	case P_RET:
		if (has_value && slice_eq_ci(v, vlen, "FULL"))
			cmd->ret = SMTP_RET_FULL;
		else if (has_value && slice_eq_ci(v, vlen, "HDRS"))
			cmd->ret = SMTP_RET_HDRS;
		else
			return -1;
		return 0;
	case P_ENVID:
		/* RFC 3461 4.4: xtext, at most 100 characters */
		if (!has_value || vlen > 100 || !xtext_valid(v, vlen))
			return -1;
		cmd->envid = (struct slice){ v, vlen };
		return 0;
	case P_AUTH:
		/* RFC 4954 5: AUTH=xtext / "<>" */
		if (!has_value ||
		    !(slice_eq_ci(v, vlen, "<>") || xtext_valid(v, vlen)))
			return -1;
		cmd->auth = (struct slice){ v, vlen };
		return 0;
	case P_NOTIFY:
		if (!has_value || notify_parse(v, vlen, &cmd->notify) < 0)
			return -1;
		return 0;
	case P_ORCPT:
		if (!has_value || !orcpt_valid(v, vlen))
			return -1;
		cmd->orcpt = (struct slice){ v, vlen };
		return 0;
	case P__COUNT:
		break;
	}
	return -1;
}

/*
 * Parses Mail-parameters / Rcpt-parameters in p[0..len): esmtp-param
 * *(SP esmtp-param), one or more spaces between them. Returns 0, or -1
 * with *err_out set.
 */
static int
params_parse(const uint8_t *p, size_t len, int is_rcpt,
	     const struct smtp_parse_opts *opts, struct smtp_cmd *cmd,
	     enum cond_id *err_out)
{
	unsigned seen = 0;
	size_t i = 0;

	if (has_8bit(p, len)) {
		*err_out = COND_SMTP_ARG_SYNTAX;
		return -1;
	}
	for (;;) {
		size_t kstart, klen, vstart, vlen;
		int has_value = 0, id = -1;

		while (i < len && p[i] == ' ')
			i++;
		if (i >= len)
			return 0;
		/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
		kstart = i;
		while (i < len && (is_alnum(p[i]) || p[i] == '-'))
			i++;
		klen = i - kstart;
		if (klen == 0 || p[kstart] == '-' ||
		    (i < len && p[i] != '=' && p[i] != ' ')) {
			*err_out = COND_SMTP_ARG_SYNTAX;
			return -1;
		}
		vstart = vlen = 0;
		if (i < len && p[i] == '=') {
			has_value = 1;
			vstart = ++i;
			while (i < len && p[i] != ' ')
				i++;
			vlen = i - vstart;
		}
		cmd->bad_param = (struct slice){ p + kstart, klen };
		for (int k = 0; k < P__COUNT; k++) {
			if (slice_eq_ci(p + kstart, klen, params[k].name)) {
				id = k;
				break;
			}
		}
		if (id < 0 || params[id].rcpt != is_rcpt ||
		    !(opts->offered & params[id].ext)) {
			*err_out = COND_SMTP_PARAM_UNSUPPORTED;
			return -1;
		}
		if (seen & (1u << id)) {
			*err_out = COND_SMTP_PARAM_INVALID;
			return -1;
		}
		seen |= 1u << id;
		/* esmtp-value = 1*(%d33-60 / %d62-126): no empty value, no '=' */
		if ((has_value && vlen == 0) ||
		    (has_value && memchr(p + vstart, '=', vlen) != NULL) ||
		    param_value(cmd, (enum param_id)id, p + vstart, vlen,
				has_value) < 0) {
			*err_out = COND_SMTP_PARAM_INVALID;
			return -1;
		}
		cmd->bad_param = (struct slice){ NULL, 0 };
	}
}

/* ---- commands ---------------------------------------------------------- */

/* MAIL FROM:<path> [params] and RCPT TO:<path> [params]. */
static int
parse_mail_rcpt(const uint8_t *a, size_t alen, int is_rcpt,
		const struct smtp_parse_opts *opts, struct smtp_cmd *cmd,
		enum cond_id *err_out)
{
	const char *kw = is_rcpt ? "TO:" : "FROM:";
	size_t kwlen = strlen(kw), i, open, close;
	int quoted = 0;
	enum cond_id path_err = is_rcpt ? COND_RCPT_SYNTAX
					: COND_SMTP_SENDER_SYNTAX;

	if (alen < kwlen || strncasecmp((const char *)a, kw, kwlen) != 0) {
		*err_out = COND_SMTP_ARG_SYNTAX;
		return -1;
	}
	i = kwlen;
	if (i < alen && a[i] == ' ')
		i++;		/* "MAIL FROM: <a@b>", common and harmless */
	if (i >= alen || a[i] != '<') {
		*err_out = COND_SMTP_ARG_SYNTAX;
		return -1;
	}
	open = i++;
	/* the closing bracket: the first '>' outside a quoted string */
	for (; i < alen; i++) {
		if (quoted && a[i] == '\\' && i + 1 < alen) {
			i++;
		} else if (a[i] == '"') {
			quoted = !quoted;
		} else if (!quoted && a[i] == '>') {
			break;
		}
	}
	if (i >= alen) {
		*err_out = COND_SMTP_ARG_SYNTAX;
		return -1;
	}
	close = i;
	if (close + 1 < alen && a[close + 1] != ' ') {
		*err_out = COND_SMTP_ARG_SYNTAX;
		return -1;
	}
	if (path_parse(a + open + 1, close - open - 1, is_rcpt,
		       &cmd->path) < 0) {
		*err_out = path_err;
		return -1;
	}
	if (params_parse(a + close + 1, alen - close - 1, is_rcpt, opts, cmd,
			 err_out) < 0)
		return -1;
	/* RFC 6531 3.4: a non-ASCII reverse-path needs SMTPUTF8 on MAIL */
	if (!is_rcpt && cmd->path.non_ascii && !cmd->smtputf8) {
		*err_out = COND_SMTP_UTF8_REQUIRED;
		return -1;
	}
	return 0;
}

/* RFC 3030 2: BDAT SP chunk-size [ SP end-marker ] */
static int
parse_bdat(const uint8_t *a, size_t alen, struct smtp_cmd *cmd,
	   enum cond_id *err_out)
{
	size_t i = 0, j;

	if (alen == 0) {
		*err_out = COND_SMTP_ARG_INVALID;
		return -1;
	}
	while (i < alen && a[i] != ' ')
		i++;
	if (slice_to_u64((struct slice){ a, i }, UINT64_MAX,
			 &cmd->chunk_size) < 0) {
		*err_out = COND_SMTP_ARG_SYNTAX;
		return -1;
	}
	cmd->has_chunk_size = 1;
	while (i < alen && a[i] == ' ')
		i++;
	if (i == alen)
		return 0;
	j = i;
	while (j < alen && a[j] != ' ')
		j++;
	if (j != alen || !slice_eq_ci(a + i, j - i, "LAST")) {
		*err_out = COND_SMTP_ARG_SYNTAX;
		return -1;
	}
	cmd->last = 1;
	return 0;
}

int
smtp_parse_command(const uint8_t *line, size_t len,
		   const struct smtp_parse_opts *opts,
		   struct smtp_cmd *cmd, enum cond_id *err_out)
{
	static const struct smtp_parse_opts no_opts = { 0 };
	const uint8_t *a;
	size_t vlen = 0, alen, i;

	memset(cmd, 0, sizeof(*cmd));
	if (opts == NULL)
		opts = &no_opts;
	if (line == NULL)
		len = 0;
	/* RFC 5321 2.3.8, 4.1.1: no command holds NUL or control bytes */
	for (i = 0; i < len; i++) {
		if (line[i] < 0x20 || line[i] == 0x7f) {
			*err_out = COND_SMTP_COMMAND_NON_ASCII;
			return -1;
		}
	}
	while (len > 0 && line[len - 1] == ' ')
		len--;
	while (vlen < len && line[vlen] != ' ')
		vlen++;
	cmd->verb_text = (struct slice){ line, vlen };
	cmd->verb = verb_lookup(line, vlen);
	if (cmd->verb == SMTP_VERB_UNKNOWN) {
		*err_out = COND_SMTP_COMMAND_UNKNOWN;
		return -1;
	}
	i = vlen;
	while (i < len && line[i] == ' ')
		i++;
	a = line + i;
	alen = len - i;
	cmd->arg = (struct slice){ a, alen };

	switch (cmd->verb) {
	case SMTP_VERB_HELO:
	case SMTP_VERB_EHLO:
		/* RFC 5321 4.1.1.1: one Domain or address-literal; never UTF-8
		 * (RFC 6531 3.7.1 keeps EHLO ASCII or A-labels) */
		if (alen == 0 || memchr(a, ' ', alen) != NULL ||
		    !smtp_domain_valid(a, alen, 0)) {
			*err_out = COND_SMTP_HELO_INVALID;
			return -1;
		}
		cmd->helo = cmd->arg;
		return 0;
	case SMTP_VERB_MAIL:
	case SMTP_VERB_RCPT:
		return parse_mail_rcpt(a, alen, cmd->verb == SMTP_VERB_RCPT,
				       opts, cmd, err_out);
	case SMTP_VERB_BDAT:
		if (has_8bit(a, alen)) {
			*err_out = COND_SMTP_ARG_SYNTAX;
			return -1;
		}
		return parse_bdat(a, alen, cmd, err_out);
	case SMTP_VERB_DATA:
	case SMTP_VERB_RSET:
	case SMTP_VERB_QUIT:
	case SMTP_VERB_STARTTLS:
	case SMTP_VERB_TURN:
		/* RFC 5321 4.1.1.4, 4.1.1.5, 4.1.1.10; RFC 3207 4 */
		if (alen != 0) {
			*err_out = COND_SMTP_ARG_INVALID;
			return -1;
		}
		return 0;
	case SMTP_VERB_VRFY:
	case SMTP_VERB_EXPN:
	case SMTP_VERB_NOOP:
	case SMTP_VERB_HELP:
		if (alen == 0 && (cmd->verb == SMTP_VERB_VRFY ||
				  cmd->verb == SMTP_VERB_EXPN)) {
			*err_out = COND_SMTP_ARG_INVALID;
			return -1;
		}
		if (!utf8_valid(a, alen)) {
			*err_out = COND_SMTP_ARG_SYNTAX;
			return -1;
		}
		return 0;
	case SMTP_VERB_AUTH:
		if (alen == 0) {
			*err_out = COND_SMTP_ARG_INVALID;
			return -1;
		}
		if (has_8bit(a, alen)) {
			*err_out = COND_SMTP_ARG_SYNTAX;
			return -1;
		}
		return 0;
	case SMTP_VERB_ETRN:
	case SMTP_VERB_SEND:
	case SMTP_VERB_SOML:
	case SMTP_VERB_SAML:
	case SMTP_VERB_ATRN:
		return 0;	/* not implemented: the session says 502 */
	case SMTP_VERB_UNKNOWN:
	case SMTP_VERB__COUNT:
		break;
	}
	*err_out = COND_SMTP_COMMAND_UNKNOWN;
	return -1;
}
