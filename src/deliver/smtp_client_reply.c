/*
 * smtp_client_reply.c - the SMTP client's reply parser and EHLO keyword
 * parser (smtp_client_reply.h). Pure and bounded.
 */
#include "smtp_client_reply.h"

#include <string.h>

void
smtp_client_rparse_init(struct smtp_client_rparse *p, int ehlo)
{
	memset(p, 0, sizeof(*p));
	p->ehlo = ehlo;
}

int
smtp_client_line_next(struct slice in, size_t *len, size_t *used)
{
	size_t scan = in.len < SMTP_CLIENT_LINE_MAX ? in.len : SMTP_CLIENT_LINE_MAX;
	const uint8_t *lf = memchr(in.p, '\n', scan);

	if (lf == NULL)
		return in.len >= SMTP_CLIENT_LINE_MAX ? -1 : 0;
	size_t n = (size_t)(lf - in.p);
	*used = n + 1;
	if (n > 0 && in.p[n - 1] == '\r')
		n--;
	*len = n;
	return 1;
}

static int
is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* "x.y.z": class 2, 4 or 5 matching the reply, subject 1..3 digits,
 * detail 1..3 digits (RFC 3463 2). The length matched, or 0. */
static size_t
enh_match(const uint8_t *p, size_t n, int code)
{
	size_t i = 0, k;

	if (n < 5 || p[0] != (uint8_t)('0' + code / 100) || p[1] != '.')
		return 0;
	i = 2;
	for (k = 0; k < 3 && i < n && is_digit(p[i]); k++)
		i++;
	if (k == 0 || i >= n || p[i] != '.')
		return 0;
	i++;
	for (k = 0; k < 3 && i < n && is_digit(p[i]); k++)
		i++;
	if (k == 0 || (i < n && p[i] != ' '))
		return 0;
	return i;
}

static void
text_add(struct smtp_client_rparse *p, const uint8_t *s, size_t n)
{
	if (p->tlen > 0 && n > 0 && p->tlen + 1 < sizeof(p->r.text))
		p->r.text[p->tlen++] = ' ';
	size_t room = sizeof(p->r.text) - 1 - p->tlen;
	if (n > room)
		n = room;
	memcpy(p->r.text + p->tlen, s, n);
	p->tlen += n;
	p->r.text[p->tlen] = '\0';
}

enum smtp_client_rp
smtp_client_rparse_line(struct smtp_client_rparse *p, const uint8_t *line, size_t len)
{
	if (len < 3 || !is_digit(line[0]) || !is_digit(line[1]) || !is_digit(line[2]) ||
	    line[0] < '2' || line[0] > '5' || line[1] > '5')
		return SMTP_CLIENT_RP_ERROR;
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		return SMTP_CLIENT_RP_ERROR;
	for (size_t i = 0; i < len; i++)
		if ((line[i] < 0x20 && line[i] != '\t') || line[i] == 0x7f)
			return SMTP_CLIENT_RP_ERROR;
	int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (p->lines > 0 && code != p->r.code)
		return SMTP_CLIENT_RP_ERROR;
	if (++p->lines > SMTP_CLIENT_LINES_MAX)
		return SMTP_CLIENT_RP_TOO_MANY;
	int more = len > 3 && line[3] == '-';
	const uint8_t *t = len > 4 ? line + 4 : line + len;
	size_t tn = len > 4 ? len - 4 : 0;

	if (p->lines == 1) {
		p->r.code = code;
		size_t e = enh_match(t, tn, code);
		if (e > 0 && e < sizeof(p->r.enh)) {
			memcpy(p->r.enh, t, e);
			p->r.enh[e] = '\0';
		}
		size_t w = 0;
		while (w < tn && t[w] != ' ' && w + 1 < sizeof(p->first_word))
			w++;
		memcpy(p->first_word, t, w);
		p->first_word[w] = '\0';
	} else if (p->ehlo) {
		smtp_client_ehlo_keyword(&p->ext, t, tn);
	}
	if (p->r.enh[0] != '\0') {
		size_t e = enh_match(t, tn, code);
		if (e > 0) {
			t += e;
			tn -= e;
			while (tn > 0 && *t == ' ') {
				t++;
				tn--;
			}
		}
	}
	text_add(p, t, tn);
	return more ? SMTP_CLIENT_RP_MORE : SMTP_CLIENT_RP_DONE;
}

static int
word_is(const uint8_t *w, size_t n, const char *s)
{
	size_t k = strlen(s);

	if (n != k)
		return 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = w[i];
		if (c >= 'a' && c <= 'z')
			c = (uint8_t)(c - 32);
		if (c != (uint8_t)s[i])
			return 0;
	}
	return 1;
}

void
smtp_client_ehlo_keyword(struct smtp_client_ext *ext, const uint8_t *kw, size_t len)
{
	size_t w = 0;

	while (w < len && kw[w] != ' ' && kw[w] != '=')
		w++;
	const uint8_t *arg = kw + w;
	size_t an = len - w;
	if (word_is(kw, w, "PIPELINING"))
		ext->flags |= SMTP_EXT_PIPELINING;
	else if (word_is(kw, w, "8BITMIME"))
		ext->flags |= SMTP_EXT_8BITMIME;
	else if (word_is(kw, w, "SMTPUTF8"))
		ext->flags |= SMTP_EXT_SMTPUTF8;
	else if (word_is(kw, w, "DSN"))
		ext->flags |= SMTP_EXT_DSN;
	else if (word_is(kw, w, "CHUNKING"))
		ext->flags |= SMTP_EXT_CHUNKING;
	else if (word_is(kw, w, "STARTTLS"))
		ext->flags |= SMTP_EXT_STARTTLS;
	else if (word_is(kw, w, "SIZE")) {
		uint64_t v = 0;
		ext->flags |= SMTP_EXT_SIZE;
		while (an > 0 && *arg == ' ') {
			arg++;
			an--;
		}
		size_t d = 0;
		while (d < an && is_digit(arg[d]))
			d++;
		/* "SIZE" or "SIZE 0": no limit; junk after the digits: none
		 * either (a limit we cannot read is not enforced). */
		if (d > 0 && d == an && slice_to_u64((struct slice){ arg, d }, UINT64_MAX, &v) == 0)
			ext->size = v;
		else
			ext->size = 0;
	} else if (word_is(kw, w, "AUTH")) {
		/* "AUTH PLAIN LOGIN"; old servers say "AUTH=PLAIN LOGIN". */
		ext->flags |= SMTP_EXT_AUTH;
		size_t i = 0;
		while (i < an) {
			while (i < an && (arg[i] == ' ' || arg[i] == '='))
				i++;
			size_t s = i;
			while (i < an && arg[i] != ' ')
				i++;
			if (word_is(arg + s, i - s, "PLAIN"))
				ext->auth |= SMTP_AUTH_PLAIN;
			else if (word_is(arg + s, i - s, "LOGIN"))
				ext->auth |= SMTP_AUTH_LOGIN;
		}
	}
}

int
smtp_client_reply_is_policy(const struct smtp_client_reply *r)
{
	return r->enh[0] != '\0' && r->enh[1] == '.' && r->enh[2] == '7' && r->enh[3] == '.';
}
