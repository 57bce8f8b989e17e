/*
 * spf_record.c - SPF record parsing and macro expansion (spf_record.h):
 * RFC 7208's grammar (4.5, 5, 6, 7) checked strictly, anything it
 * refuses a permerror; pure and bounded (fuzz/fuzz_spf_record.c).
 */
#include "spf_record.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static const char *const result_names[SPF_RESULT__COUNT] = {
	"none", "neutral", "pass", "fail", "softfail", "temperror", "permerror",
};

const char *
spf_result_name(enum spf_result r)
{
	return (unsigned)r < SPF_RESULT__COUNT ? result_names[r] : "?";
}

int
spf_record_is_spf(const char *txt, size_t len)
{
	return len >= 6 && strncasecmp(txt, "v=spf1", 6) == 0 && (len == 6 || txt[6] == ' ');
}

static int
is_delim(char c)
{
	return c != '\0' && strchr(".-+,/_=", c) != NULL;
}

/* Letters allowed everywhere, and in explanations only. */
static int
macro_letter(char c, int exp)
{
	c = (char)tolower((unsigned char)c);
	if (c != '\0' && strchr("slodiphv", c) != NULL)
		return 1;
	return exp && c != '\0' && strchr("crt", c) != NULL;
}

/* Length of the macro-expand at s ("%{...}", "%%", "%_", "%-"), or -1. */
static int
macro_token(const char *s, size_t len, int exp)
{
	if (len < 2 || s[0] != '%')
		return -1;
	if (s[1] == '%' || s[1] == '_' || s[1] == '-')
		return 2;
	if (s[1] != '{' || len < 4 || !macro_letter(s[2], exp))
		return -1;
	size_t i = 3;
	while (i < len && isdigit((unsigned char)s[i]))
		i++;
	if (i < len && (s[i] == 'r' || s[i] == 'R'))
		i++;
	while (i < len && is_delim(s[i]))
		i++;
	if (i >= len || s[i] != '}')
		return -1;
	return (int)i + 1;
}

int
spf_macro_check(const char *s, size_t len, int exp)
{
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)s[i];

		if (c == '%') {
			int n = macro_token(s + i, len - i, exp);
			if (n < 0)
				return -1;
			i += (size_t)n;
		} else if ((c >= 0x21 && c <= 0x7E) || (exp && c == ' ')) {
			i++;
		} else {
			return -1;
		}
	}
	return 0;
}

int
spf_macro_uses_p(const char *s, size_t len)
{
	for (size_t i = 0; i + 2 < len; i++)
		if (s[i] == '%' && s[i + 1] == '{' && (s[i + 2] == 'p' || s[i + 2] == 'P'))
			return 1;
	return 0;
}

struct out {
	char *p;
	size_t n, cap;
	int bad;
};

static void
out_put(struct out *o, const char *s, size_t n)
{
	if (o->bad || n >= o->cap - o->n || o->n + n > SPF_EXPAND_MAX) {
		o->bad = 1;
		return;
	}
	memcpy(o->p + o->n, s, n);
	o->n += n;
	o->p[o->n] = '\0';
}

/* The value of a letter, into buf. */
static const char *
macro_value(char letter, const struct spf_macro_ctx *c, char *buf, size_t bufsz)
{
	switch (tolower((unsigned char)letter)) {
	case 's': return c->sender;
	case 'l': return c->local;
	case 'o': return c->sender_domain;
	case 'd': return c->domain;
	case 'h': return c->helo;
	case 'p': return c->ptr != NULL ? c->ptr : "unknown";
	case 'r': return c->receiver != NULL && c->receiver[0] ? c->receiver : "unknown";
	case 'v': return c->family == AF_INET6 ? "ip6" : "in-addr";
	case 't':
		snprintf(buf, bufsz, "%llu", (unsigned long long)c->now);
		return buf;
	case 'c':
		if (inet_ntop(c->family, c->addr, buf, (socklen_t)bufsz) == NULL)
			return "";
		return buf;
	case 'i':
		if (c->family == AF_INET6) {
			size_t k = 0;
			for (int b = 0; b < 16 && k + 4 < bufsz; b++) {
				static const char hex[] = "0123456789ABCDEF";
				buf[k++] = hex[c->addr[b] >> 4];
				buf[k++] = '.';
				buf[k++] = hex[c->addr[b] & 15];
				buf[k++] = b == 15 ? '\0' : '.';
			}
			return buf;
		}
		if (inet_ntop(AF_INET, c->addr, buf, (socklen_t)bufsz) == NULL)
			return "";
		return buf;
	}
	return "";
}

static int
url_unreserved(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* Expands one %{...} token (tok, n octets) into o. */
static void
expand_one(const char *tok, size_t n, const struct spf_macro_ctx *c, struct out *o)
{
	char vbuf[256], delims[16];
	const char *v = macro_value(tok[2], c, vbuf, sizeof(vbuf));
	size_t i = 3, ndelim = 0;
	unsigned long keep = 0;
	int digits = 0, rev = 0;

	if (v == NULL)
		v = "";
	while (isdigit((unsigned char)tok[i])) {
		keep = keep * 10 + (unsigned long)(tok[i] - '0');
		if (keep > 1000)
			keep = 1000;
		digits = 1;
		i++;
	}
	if (tok[i] == 'r' || tok[i] == 'R') {
		rev = 1;
		i++;
	}
	while (i + 1 < n && ndelim + 1 < sizeof(delims))
		delims[ndelim++] = tok[i++];
	delims[ndelim] = '\0';
	if (ndelim == 0) {
		delims[0] = '.';
		delims[1] = '\0';
	}
	if (digits && keep == 0) {
		o->bad = 1;
		return;
	}
	/* split */
	const char *ps[SPF_MACRO_PARTS];
	size_t pl[SPF_MACRO_PARTS], np = 0, vlen = strlen(v), start = 0;
	for (size_t k = 0; k <= vlen; k++) {
		if (k == vlen || strchr(delims, v[k]) != NULL) {
			if (np >= SPF_MACRO_PARTS) {
				o->bad = 1;
				return;
			}
			ps[np] = v + start;
			pl[np++] = k - start;
			start = k + 1;
		}
	}
	if (rev) {
		for (size_t a = 0, b = np - 1; a < b; a++, b--) {
			const char *tp = ps[a]; size_t tl = pl[a];
			ps[a] = ps[b]; pl[a] = pl[b];
			ps[b] = tp; pl[b] = tl;
		}
	}
	size_t first = digits && keep < np ? np - keep : 0;
	int upper = isupper((unsigned char)tok[2]);
	for (size_t k = first; k < np; k++) {
		if (k > first)
			out_put(o, ".", 1);
		if (!upper) {
			out_put(o, ps[k], pl[k]);
			continue;
		}
		for (size_t m = 0; m < pl[k]; m++) {
			unsigned char ch = (unsigned char)ps[k][m];
			char esc[4];
			if (url_unreserved(ch)) {
				out_put(o, (const char *)&ch, 1);
			} else {
				snprintf(esc, sizeof(esc), "%%%02X", ch);
				out_put(o, esc, 3);
			}
		}
	}
}

int
spf_macro_expand(const char *s, size_t len, const struct spf_macro_ctx *ctx, int exp,
		 char *out, size_t outlen)
{
	struct out o = { out, 0, outlen, 0 };

	if (outlen == 0)
		return -1;
	out[0] = '\0';
	if (spf_macro_check(s, len, exp) < 0)
		return -1;
	for (size_t i = 0; i < len && !o.bad;) {
		if (s[i] != '%') {
			out_put(&o, s + i, 1);
			i++;
			continue;
		}
		int n = macro_token(s + i, len - i, exp);
		if (n < 0)
			return -1;
		if (s[i + 1] == '%')
			out_put(&o, "%", 1);
		else if (s[i + 1] == '_')
			out_put(&o, " ", 1);
		else if (s[i + 1] == '-')
			out_put(&o, "%20", 3);
		else
			expand_one(s + i, (size_t)n, ctx, &o);
		i += (size_t)n;
	}
	return o.bad ? -1 : (int)o.n;
}

char *
spf_domain_trim(char *name)
{
	size_t n = strlen(name);

	if (n > 0 && name[n - 1] == '.')
		name[--n] = '\0';
	while (n > 253) {
		char *dot = strchr(name, '.');
		if (dot == NULL) {
			name[0] = '\0';
			break;
		}
		n -= (size_t)(dot + 1 - name);
		memmove(name, dot + 1, n + 1);
	}
	return name;
}

/* ---- records ---------------------------------------------------------- */

/* RFC 7208 toplabel. */
static int
toplabel_ok(const char *s, size_t n)
{
	int alpha = 0, hyphen = 0;

	if (n == 0 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (isalpha(c))
			alpha = 1;
		else if (c == '-')
			hyphen = 1;
		else if (!isdigit(c))
			return 0;
	}
	return alpha || hyphen;
}

/* A domain-spec: a macro string ending in a macro-expand or in
 * "." toplabel ["."] (RFC 7208 7.1). */
static int
domain_spec_ok(const char *s, size_t n)
{
	if (n == 0 || spf_macro_check(s, n, 0) < 0)
		return 0;
	if (s[n - 1] == '}')
		return 1;
	if (s[n - 1] == '.')
		n--;
	size_t i = n;
	while (i > 0 && s[i - 1] != '.')
		i--;
	if (i == 0)
		return 0;	/* no "." before the toplabel */
	return toplabel_ok(s + i, n - i);
}

/* A CIDR length: "0" or no leading zero, at most max. -1 if bad. */
static int
cidr_parse(const char *s, size_t n, int max)
{
	int v = 0;

	if (n == 0 || n > 3 || (n > 1 && s[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v <= max ? v : -1;
}

static int dual_cidr(const char *s, size_t n, struct spf_term *t);

/* The end of a domain-spec in s: the first '/' after which the rest is a
 * dual-cidr-length ('/' may be in the name: RFC 7208 7.1). */
static size_t
domain_end(const char *s, size_t n)
{
	struct spf_term t;

	for (size_t i = 0; i < n; i++)
		if (s[i] == '/' && dual_cidr(s + i, n - i, &t) == 0)
			return i;
	return n;
}

/* dual-cidr-length at s (n octets, may be 0). */
static int
dual_cidr(const char *s, size_t n, struct spf_term *t)
{
	t->cidr4 = 32;
	t->cidr6 = 128;
	if (n == 0)
		return 0;
	if (s[0] != '/')
		return -1;
	const char *dbl = NULL;
	for (size_t i = 0; i + 1 < n; i++)
		if (s[i] == '/' && s[i + 1] == '/') {
			dbl = s + i;
			break;
		}
	if (dbl != s) {
		size_t l4 = (dbl != NULL ? (size_t)(dbl - s) : n) - 1;
		int v = cidr_parse(s + 1, l4, 32);
		if (v < 0)
			return -1;
		t->cidr4 = (uint8_t)v;
	}
	if (dbl != NULL) {
		size_t off = (size_t)(dbl - s) + 2;
		int v = cidr_parse(s + off, n - off, 128);
		if (v < 0)
			return -1;
		t->cidr6 = (uint8_t)v;
	}
	return 0;
}

static int
mech_lookup(const char *name, size_t n, enum spf_mech *out)
{
	static const struct { const char *name; enum spf_mech m; } tab[] = {
		{ "all", SPF_M_ALL }, { "include", SPF_M_INCLUDE }, { "a", SPF_M_A },
		{ "mx", SPF_M_MX }, { "ptr", SPF_M_PTR }, { "ip4", SPF_M_IP4 },
		{ "ip6", SPF_M_IP6 }, { "exists", SPF_M_EXISTS },
	};
	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (strlen(tab[i].name) == n && strncasecmp(tab[i].name, name, n) == 0) {
			*out = tab[i].m;
			return 0;
		}
	return -1;
}

static int
term_parse(struct spf_record *rec, size_t off, size_t n, const char **err)
{
	const char *s = rec->text + off;
	size_t i = 0;
	enum spf_result res = SPF_PASS;
	int qual = 0;

	switch (s[0]) {
	case '+': res = SPF_PASS; qual = 1; break;
	case '-': res = SPF_FAIL; qual = 1; break;
	case '~': res = SPF_SOFTFAIL; qual = 1; break;
	case '?': res = SPF_NEUTRAL; qual = 1; break;
	}
	i = (size_t)qual;
	size_t name0 = i;
	while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '_' || s[i] == '.'))
		i++;
	size_t name_len = i - name0;
	if (name_len == 0) {
		*err = "bad term";
		return -1;
	}
	if (i < n && s[i] == '=') {
		/* modifier */
		if (qual || !isalpha((unsigned char)s[name0])) {
			*err = "bad modifier";
			return -1;
		}
		const char *v = s + i + 1;
		size_t vl = n - i - 1;
		uint16_t voff = (uint16_t)(off + i + 1);
		if (name_len == 8 && strncasecmp(s + name0, "redirect", 8) == 0) {
			if (rec->redirect_len != 0 || !domain_spec_ok(v, vl)) {
				*err = "bad or second redirect";
				return -1;
			}
			rec->redirect = voff;
			rec->redirect_len = (uint16_t)vl;
		} else if (name_len == 3 && strncasecmp(s + name0, "exp", 3) == 0) {
			if (rec->exp_len != 0 || !domain_spec_ok(v, vl)) {
				*err = "bad or second exp";
				return -1;
			}
			rec->exp = voff;
			rec->exp_len = (uint16_t)vl;
		} else if (spf_macro_check(v, vl, 0) < 0) {
			*err = "bad macro in a modifier";
			return -1;
		}
		return 0;
	}
	enum spf_mech m;
	if (mech_lookup(s + name0, name_len, &m) < 0) {
		*err = "unknown mechanism";
		return -1;
	}
	if (rec->nterms >= SPF_TERMS_MAX) {
		*err = "too many terms";
		return -1;
	}
	struct spf_term *t = &rec->terms[rec->nterms];
	memset(t, 0, sizeof(*t));
	t->mech = (uint8_t)m;
	t->result = (uint8_t)res;
	const char *arg = s + i;
	size_t al = n - i;
	switch (m) {
	case SPF_M_ALL:
		if (al != 0)
			goto bad;
		break;
	case SPF_M_INCLUDE:
	case SPF_M_EXISTS:
		if (al < 2 || arg[0] != ':' || !domain_spec_ok(arg + 1, al - 1))
			goto bad;
		t->dom = (uint16_t)(off + i + 1);
		t->dom_len = (uint16_t)(al - 1);
		break;
	case SPF_M_A:
	case SPF_M_MX:
	case SPF_M_PTR: {
		size_t dl = 0;
		if (al > 0 && arg[0] == ':') {
			dl = domain_end(arg + 1, al - 1);
			if (!domain_spec_ok(arg + 1, dl))
				goto bad;
			t->dom = (uint16_t)(off + i + 1);
			t->dom_len = (uint16_t)dl;
			dl++;
		}
		if (m == SPF_M_PTR) {
			if (dl != al)
				goto bad;
		} else if (dual_cidr(arg + dl, al - dl, t) < 0) {
			goto bad;
		}
		break;
	}
	case SPF_M_IP4:
	case SPF_M_IP6: {
		char ip[64];
		if (al < 2 || arg[0] != ':')
			goto bad;
		size_t l = 1;
		while (l < al && arg[l] != '/')
			l++;
		if (l - 1 >= sizeof(ip))
			goto bad;
		memcpy(ip, arg + 1, l - 1);
		ip[l - 1] = '\0';
		int v = m == SPF_M_IP4 ? 32 : 128;
		if (l < al && (v = cidr_parse(arg + l + 1, al - l - 1, v)) < 0)
			goto bad;
		if (inet_pton(m == SPF_M_IP4 ? AF_INET : AF_INET6, ip, t->addr) != 1)
			goto bad;
		if (m == SPF_M_IP4)
			t->cidr4 = (uint8_t)v;
		else
			t->cidr6 = (uint8_t)v;
		break;
	}
	}
	rec->nterms++;
	return 0;
bad:
	*err = "bad mechanism argument";
	return -1;
}

int
spf_record_parse(const char *txt, size_t len, struct spf_record *rec, const char **err)
{
	*err = "";
	rec->nterms = 0;
	rec->redirect = rec->redirect_len = rec->exp = rec->exp_len = 0;
	if (len > SPF_RECORD_MAX) {
		*err = "record too long";
		return -1;
	}
	if (!spf_record_is_spf(txt, len)) {
		*err = "not an SPF record";
		return -1;
	}
	memcpy(rec->text, txt, len);
	rec->text[len] = '\0';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)txt[i];
		if (c < 0x20 || c >= 0x7F) {
			*err = "control or non-ASCII octet";
			return -1;
		}
	}
	size_t i = 6;
	while (i < len) {
		if (rec->text[i] == ' ') {
			i++;
			continue;
		}
		size_t j = i;
		while (j < len && rec->text[j] != ' ')
			j++;
		if (term_parse(rec, i, j - i, err) < 0)
			return -1;
		i = j;
	}
	return 0;
}
