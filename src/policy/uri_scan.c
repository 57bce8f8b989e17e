/*
 * uri_scan.c - the link extractor of URI block lists (see uri_scan.h).
 *
 * Four stages, each a small resumable state machine fed one layer's
 * output: lines (MIME header fields and boundaries, through a bounded
 * line buffer), the part's transfer decoding (identity, quoted-printable,
 * base64), HTML character references, and the link matcher that collects
 * a host after "http://", "https://" or a bare "www." and keeps its
 * registered domain.
 */
#include "uri_scan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base64.h"
#include "buf.h"
#include "domain.h"
#include "regdomain.h"

#define URI_SCAN_LINE_MAX 1024	/* line buffer: boundaries, header fields */
#define FIELD_MAX 512		/* a Content-Type value kept */
#define CTE_MAX 64		/* a Content-Transfer-Encoding value kept */
#define BOUNDARY_MAX 70		/* RFC 2046 5.1.1 */
#define DEPTH_MAX 8		/* nested multiparts followed */
#define HOST_MAX 256		/* a host collected (longer: not a name) */
#define ENT_MAX 10		/* "#x10ffff", "quot": a reference's name */

enum { ENC_IDENT, ENC_QP, ENC_B64 };
enum { FIELD_NONE, FIELD_CT, FIELD_CTE };
enum { HOST_OFF, HOST_NAME, HOST_AFTER_COLON };

struct uri_scan {
	uint64_t max_octets, octets;
	int bounded;
	size_t max_domains, ndomains;
	uint64_t dropped;
	struct uri_scan_domain *domains;
	/* lines */
	uint8_t line[URI_SCAN_LINE_MAX];
	size_t line_len;
	int line_long;		/* this line overflowed the buffer */
	/* MIME */
	int in_header;
	int field;		/* FIELD_*: the field being read */
	char ctype[FIELD_MAX];
	size_t ctype_len;
	char cte[CTE_MAX];
	size_t cte_len;
	char bounds[DEPTH_MAX][BOUNDARY_MAX + 1];
	size_t depth;
	int skip;		/* preamble, epilogue, a part that is not text */
	int enc;		/* ENC_* of the part */
	/* transfer decoding */
	int qp;			/* 0, 1 after '=', 2 after '=' and a hex digit,
				 * 3 after "=\r" or '=' and blanks */
	uint8_t qp_hex;
	uint32_t b64_acc;
	int b64_n;
	/* character references */
	int in_ent;
	char ent[ENT_MAX + 1];
	size_t ent_len;
	/* links */
	char win[8];		/* the last octets seen outside a host, lower case */
	int host_state;		/* HOST_* */
	char host[HOST_MAX];
	size_t host_len;	/* HOST_MAX: too long, dropped */
	size_t host_kept;	/* host_len when ':' came */
};

/* ---- results ----------------------------------------------------------- */

static int
host_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_';
}

/* 1 and the address in out when s (n octets) is a dotted IPv4 address. */
static int
host_ipv4(const char *s, size_t n, char *out, size_t outlen)
{
	unsigned part[4] = { 0 }, k = 0, digits = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (digits == 0 || ++k > 3)
				return 0;
			digits = 0;
		} else if (s[i] >= '0' && s[i] <= '9') {
			part[k] = part[k] * 10 + (unsigned)(s[i] - '0');
			if (++digits > 3 || part[k] > 255)
				return 0;
		} else {
			return 0;
		}
	}
	if (k != 3 || digits == 0)
		return 0;
	for (unsigned i = 0, w = 0; i < 4; i++) {
		char d[4];
		size_t dl = 0;
		unsigned v = part[i];

		do {
			d[dl++] = (char)('0' + v % 10);
			v /= 10;
		} while (v > 0);
		if (w + dl + 2 > outlen)
			return 0;
		while (dl > 0)
			out[w++] = d[--dl];
		out[w++] = i < 3 ? '.' : '\0';
	}
	return 1;
}

static void
domain_add(struct uri_scan *u, const char *name, int is_ip)
{
	for (size_t i = 0; i < u->ndomains; i++)
		if (u->domains[i].is_ip == is_ip && strcmp(u->domains[i].name, name) == 0)
			return;
	if (u->ndomains == u->max_domains) {
		u->dropped++;
		return;
	}
	snprintf(u->domains[u->ndomains].name, sizeof(u->domains[0].name), "%s", name);
	u->domains[u->ndomains].is_ip = is_ip;
	u->ndomains++;
}

/* The host collected is complete: its domain is kept. */
static void
host_end(struct uri_scan *u)
{
	char *h = u->host, out[URI_SCAN_NAME_MAX + 1];
	size_t n = u->host_state == HOST_AFTER_COLON ? u->host_kept : u->host_len, k;

	u->host_state = HOST_OFF;
	if (u->host_len >= HOST_MAX)
		return;
	while (n > 0 && h[n - 1] == '.')
		n--;
	if (n == 0 || n > URI_SCAN_NAME_MAX)
		return;
	for (size_t i = 0; i < n; i++)
		if (h[i] >= 'A' && h[i] <= 'Z')
			h[i] = (char)(h[i] + 32);
	if (host_ipv4(h, n, out, sizeof(out))) {
		domain_add(u, out, 1);
		return;
	}
	if (memchr(h, '.', n) == NULL || !domain_name_valid(h, n))
		return;
	for (k = n; k > 0 && h[k - 1] >= '0' && h[k - 1] <= '9'; k--)
		;
	if (k == 0 || h[k - 1] == '.')
		return;		/* a numeric top label: no name, no address */
	h[n] = '\0';
	if (regdomain_of(h, out, sizeof(out)) <= 0 || strchr(out, '.') == NULL)
		return;
	domain_add(u, out, 0);
}

/* ---- links ------------------------------------------------------------- */

static int
win_ends(const struct uri_scan *u, const char *s)
{
	size_t n = strlen(s);

	return memcmp(u->win + sizeof(u->win) - n, s, n) == 0;
}

/* One decoded octet of a text part. */
static void
link_octet(struct uri_scan *u, uint8_t c)
{
	if (u->host_state == HOST_NAME) {
		if (host_char(c)) {
			if (u->host_len < HOST_MAX)
				u->host[u->host_len++] = (char)c;
			return;
		}
		if (c == '@') {		/* user@host: the host follows */
			u->host_len = 0;
			return;
		}
		if (c == ':') {		/* a port, or user:password@host */
			u->host_kept = u->host_len;
			u->host_state = HOST_AFTER_COLON;
			return;
		}
		host_end(u);
	} else if (u->host_state == HOST_AFTER_COLON) {
		if (c == '@') {
			u->host_len = 0;
			u->host_state = HOST_NAME;
			return;
		}
		if (c > 0x20 && c < 0x7f && c != '/' && c != '?' && c != '#' && c != '"' &&
		    c != '\'' && c != '<' && c != '>' && c != '\\')
			return;
		host_end(u);
	}
	memmove(u->win, u->win + 1, sizeof(u->win) - 1);
	u->win[sizeof(u->win) - 1] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
	if (win_ends(u, "http://") || win_ends(u, "https://")) {
		u->host_state = HOST_NAME;
		u->host_len = 0;
	} else if (win_ends(u, "www.") && !host_char((uint8_t)u->win[sizeof(u->win) - 5]) &&
		   u->win[sizeof(u->win) - 5] != '/' && u->win[sizeof(u->win) - 5] != '@') {
		u->host_state = HOST_NAME;
		memcpy(u->host, "www.", 4);
		u->host_len = 4;
	}
}

/* ---- character references ---------------------------------------------- */

static int
hex_value(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static void
ent_resolve(struct uri_scan *u)
{
	static const struct { const char *name; char c; } named[] = {
		{ "amp", '&' }, { "lt", '<' }, { "gt", '>' }, { "quot", '"' },
		{ "apos", '\'' }, { "sol", '/' }, { "colon", ':' }, { "period", '.' },
	};
	const char *e = u->ent;
	unsigned long v = 0;

	u->ent[u->ent_len] = '\0';
	if (e[0] == '#') {
		int hex = e[1] == 'x' || e[1] == 'X';
		const char *d = e + 1 + hex;

		if (*d == '\0')
			goto raw;
		for (; *d != '\0'; d++) {
			int x = hex_value((uint8_t)*d);

			if (x < 0 || (!hex && x > 9))
				goto raw;
			v = v * (hex ? 16 : 10) + (unsigned long)x;
			if (v > 0x10ffff)
				goto raw;
		}
		link_octet(u, v > 0 && v < 0x80 ? (uint8_t)v : ' ');
		return;
	}
	for (size_t i = 0; i < ARRAY_LEN(named); i++)
		if (strcasecmp(e, named[i].name) == 0) {
			link_octet(u, (uint8_t)named[i].c);
			return;
		}
	link_octet(u, ' ');	/* &nbsp; and the others: a separator */
	return;
raw:
	link_octet(u, '&');
	for (size_t i = 0; i < u->ent_len; i++)
		link_octet(u, (uint8_t)u->ent[i]);
	link_octet(u, ';');
}

/* One octet of a text part after its transfer decoding. */
static void
ent_octet(struct uri_scan *u, uint8_t c)
{
	if (u->in_ent) {
		if (c == ';') {
			u->in_ent = 0;
			ent_resolve(u);
			return;
		}
		if (u->ent_len < ENT_MAX &&
		    ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		     (c == '#' && u->ent_len == 0))) {
			u->ent[u->ent_len++] = (char)c;
			return;
		}
		/* not a reference: what was held goes on as it was */
		u->in_ent = 0;
		link_octet(u, '&');
		for (size_t i = 0; i < u->ent_len; i++)
			link_octet(u, (uint8_t)u->ent[i]);
	}
	if (c == '&') {
		u->in_ent = 1;
		u->ent_len = 0;
		return;
	}
	link_octet(u, c);
}

/* ---- transfer decoding ------------------------------------------------- */

static void
qp_octet(struct uri_scan *u, uint8_t c)
{
	switch (u->qp) {
	case 1:
		if (hex_value(c) >= 0) {
			u->qp_hex = c;
			u->qp = 2;
		} else if (c == '\r' || c == ' ' || c == '\t') {
			u->qp = 3;	/* a soft line break, maybe after blanks */
		} else if (c == '\n') {
			u->qp = 0;
		} else {
			u->qp = 0;
			ent_octet(u, '=');
			ent_octet(u, c);
		}
		return;
	case 2:
		u->qp = 0;
		if (hex_value(c) >= 0) {
			ent_octet(u, (uint8_t)(hex_value(u->qp_hex) << 4 | hex_value(c)));
		} else {
			ent_octet(u, '=');
			ent_octet(u, u->qp_hex);
			ent_octet(u, c);
		}
		return;
	case 3:
		if (c == '\n')
			u->qp = 0;
		else if (c != '\r' && c != ' ' && c != '\t') {
			u->qp = 0;	/* blanks after '=' that end nothing */
			ent_octet(u, c);
		}
		return;
	default:
		if (c == '=')
			u->qp = 1;
		else
			ent_octet(u, c);
	}
}

static void
b64_octet(struct uri_scan *u, uint8_t c)
{
	int v = base64_value(c);

	if (c == '=') {
		/* padding: the quantum is over, with what it holds */
		if (u->b64_n == 2) {
			ent_octet(u, (uint8_t)(u->b64_acc >> 4));
		} else if (u->b64_n == 3) {
			ent_octet(u, (uint8_t)(u->b64_acc >> 10));
			ent_octet(u, (uint8_t)(u->b64_acc >> 2));
		}
		u->b64_n = 0;
		u->b64_acc = 0;
		return;
	}
	if (v < 0)
		return;
	u->b64_acc = u->b64_acc << 6 | (uint32_t)v;
	if (++u->b64_n < 4)
		return;
	ent_octet(u, (uint8_t)(u->b64_acc >> 16));
	ent_octet(u, (uint8_t)(u->b64_acc >> 8));
	ent_octet(u, (uint8_t)u->b64_acc);
	u->b64_n = 0;
	u->b64_acc = 0;
}

static void
content(struct uri_scan *u, const uint8_t *p, size_t n)
{
	if (u->skip)
		return;
	for (size_t i = 0; i < n; i++) {
		if (u->enc == ENC_QP)
			qp_octet(u, p[i]);
		else if (u->enc == ENC_B64)
			b64_octet(u, p[i]);
		else
			ent_octet(u, p[i]);
	}
}

/* A part ends: a pending link or reference ends with it. */
static void
part_end(struct uri_scan *u)
{
	if (!u->skip) {
		if (u->in_ent)
			ent_octet(u, ' ');
		link_octet(u, ' ');
	}
	u->qp = 0;
	u->b64_n = 0;
	u->b64_acc = 0;
	u->in_ent = 0;
	u->host_state = HOST_OFF;
	memset(u->win, 0, sizeof(u->win));
}

/* ---- MIME -------------------------------------------------------------- */

static void
header_start(struct uri_scan *u)
{
	u->in_header = 1;
	u->field = FIELD_NONE;
	u->ctype_len = 0;
	u->cte_len = 0;
	u->ctype[0] = '\0';
	u->cte[0] = '\0';
}

static void
field_append(struct uri_scan *u, const uint8_t *p, size_t n)
{
	char *dst = u->field == FIELD_CT ? u->ctype : u->cte;
	size_t *len = u->field == FIELD_CT ? &u->ctype_len : &u->cte_len;
	size_t max = u->field == FIELD_CT ? sizeof(u->ctype) - 1 : sizeof(u->cte) - 1;

	for (size_t i = 0; i < n && *len < max; i++) {
		uint8_t c = p[i];

		if (c == '\r' || c == '\n')
			continue;
		dst[(*len)++] = (char)(c == '\t' ? ' ' : c);
	}
	dst[*len] = '\0';
}

/* The boundary parameter of the Content-Type value, into out. */
static int
ctype_boundary(const char *ct, char *out, size_t outlen)
{
	const char *p = ct;
	size_t n = 0;

	while ((p = strchr(p, ';')) != NULL) {
		p++;
		while (*p == ' ')
			p++;
		if (strncasecmp(p, "boundary", 8) != 0)
			continue;
		p += 8;
		while (*p == ' ')
			p++;
		if (*p != '=')
			continue;
		p++;
		while (*p == ' ')
			p++;
		if (*p == '"') {
			for (p++; *p != '\0' && *p != '"' && n < outlen - 1; p++)
				out[n++] = *p;
		} else {
			for (; *p != '\0' && *p != ';' && *p != ' ' && n < outlen - 1; p++)
				out[n++] = *p;
		}
		out[n] = '\0';
		return n > 0 ? 0 : -1;
	}
	return -1;
}

/* The header of a part (or of the message) is over. */
static void
header_end(struct uri_scan *u)
{
	const char *ct = u->ctype;
	char b[BOUNDARY_MAX + 2];

	while (*ct == ' ')
		ct++;
	u->in_header = 0;
	u->field = FIELD_NONE;
	u->skip = 0;
	u->enc = ENC_IDENT;
	if (strncasecmp(ct, "multipart/", 10) == 0) {
		size_t bl;

		u->skip = 1;	/* the preamble */
		if (u->depth < DEPTH_MAX && ctype_boundary(ct, b, sizeof(b)) == 0 &&
		    (bl = strlen(b)) <= BOUNDARY_MAX)
			memcpy(u->bounds[u->depth++], b, bl + 1);
		return;
	}
	if (strncasecmp(ct, "message/rfc822", 14) == 0) {
		header_start(u);	/* the enclosed message's header */
		return;
	}
	if (*ct != '\0' && *ct != ';' && strncasecmp(ct, "text/", 5) != 0) {
		u->skip = 1;	/* images, archives: no links looked for */
		return;
	}
	const char *e = u->cte;

	while (*e == ' ')
		e++;
	if (strncasecmp(e, "quoted-printable", 16) == 0)
		u->enc = ENC_QP;
	else if (strncasecmp(e, "base64", 6) == 0)
		u->enc = ENC_B64;
}

static void
header_line(struct uri_scan *u, const uint8_t *p, size_t n)
{
	size_t k;

	while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r'))
		n--;
	if (n == 0) {
		header_end(u);
		return;
	}
	if (p[0] == ' ' || p[0] == '\t') {
		if (u->field != FIELD_NONE)
			field_append(u, p, n);
		return;
	}
	u->field = FIELD_NONE;
	for (k = 0; k < n && p[k] != ':'; k++)
		;
	if (k == n)
		return;
	if (k == 12 && strncasecmp((const char *)p, "content-type", 12) == 0) {
		u->field = FIELD_CT;
		u->ctype_len = 0;
	} else if (k == 25 && strncasecmp((const char *)p, "content-transfer-encoding", 25) == 0) {
		u->field = FIELD_CTE;
		u->cte_len = 0;
	} else {
		return;
	}
	field_append(u, p + k + 1, n - k - 1);
}

/* 1 if the line is a boundary of an open multipart (and acts on it). */
static int
boundary_line(struct uri_scan *u, const uint8_t *p, size_t n)
{
	while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r' || p[n - 1] == ' ' ||
			 p[n - 1] == '\t'))
		n--;
	if (n < 3 || p[0] != '-' || p[1] != '-')
		return 0;
	for (size_t k = u->depth; k-- > 0;) {
		size_t bl = strlen(u->bounds[k]);

		if (n - 2 < bl || memcmp(p + 2, u->bounds[k], bl) != 0)
			continue;
		if (n - 2 == bl) {
			part_end(u);
			u->depth = k + 1;
			header_start(u);
			return 1;
		}
		if (n - 2 == bl + 2 && p[n - 1] == '-' && p[n - 2] == '-') {
			part_end(u);
			u->depth = k;
			u->skip = 1;	/* the epilogue */
			return 1;
		}
	}
	return 0;
}

/* A whole line (with its LF, if any) that fit the buffer. */
static void
line_done(struct uri_scan *u, const uint8_t *p, size_t n)
{
	if (u->in_header)
		header_line(u, p, n);
	else if (!boundary_line(u, p, n))
		content(u, p, n);
}

/* ---- input ------------------------------------------------------------- */

struct uri_scan *
uri_scan_new(uint64_t max_octets, size_t max_domains)
{
	struct uri_scan *u = xcalloc(1, sizeof(*u));

	if (max_domains < 1)
		max_domains = 1;
	if (max_domains > URI_SCAN_DOMAINS_MAX)
		max_domains = URI_SCAN_DOMAINS_MAX;
	u->max_octets = max_octets;
	u->max_domains = max_domains;
	u->domains = xcalloc(max_domains, sizeof(*u->domains));
	header_start(u);
	return u;
}

void
uri_scan_free(struct uri_scan **up)
{
	if (*up == NULL)
		return;
	free((*up)->domains);
	free(*up);
	*up = NULL;
}

void
uri_scan_feed(struct uri_scan *u, const uint8_t *p, size_t n)
{
	if (u->bounded)
		return;
	if (n > u->max_octets - u->octets) {
		n = (size_t)(u->max_octets - u->octets);
		u->bounded = 1;
	}
	u->octets += n;
	for (size_t i = 0; i < n;) {
		const uint8_t *nl = memchr(p + i, '\n', n - i);
		size_t run = (nl != NULL ? (size_t)(nl - p) + 1 : n) - i;

		if (u->line_long) {
			/* the rest of a long line: content, or a header's tail */
			if (!u->in_header)
				content(u, p + i, run);
		} else if (u->line_len + run <= sizeof(u->line)) {
			memcpy(u->line + u->line_len, p + i, run);
			u->line_len += run;
			if (nl != NULL) {
				line_done(u, u->line, u->line_len);
				u->line_len = 0;
			}
		} else {
			size_t room = sizeof(u->line) - u->line_len;

			memcpy(u->line + u->line_len, p + i, room);
			u->line_long = 1;
			if (u->in_header)
				header_line(u, u->line, sizeof(u->line));
			else
				content(u, u->line, sizeof(u->line));
			u->line_len = 0;
			if (!u->in_header)
				content(u, p + i + room, run - room);
		}
		if (nl != NULL)
			u->line_long = 0;
		i += run;
	}
	if (u->bounded) {
		/* a host cut at the bound is not a domain of the message */
		u->host_state = HOST_OFF;
	}
}

void
uri_scan_finish(struct uri_scan *u)
{
	if (u->bounded)
		return;
	if (u->line_len > 0 && !u->line_long)
		line_done(u, u->line, u->line_len);
	u->line_len = 0;
	part_end(u);
}

size_t
uri_scan_count(const struct uri_scan *u)
{
	return u->ndomains;
}

const struct uri_scan_domain *
uri_scan_get(const struct uri_scan *u, size_t i)
{
	return i < u->ndomains ? &u->domains[i] : NULL;
}

uint64_t
uri_scan_octets(const struct uri_scan *u)
{
	return u->octets;
}

int
uri_scan_bounded(const struct uri_scan *u)
{
	return u->bounded;
}

uint64_t
uri_scan_dropped(const struct uri_scan *u)
{
	return u->dropped;
}
