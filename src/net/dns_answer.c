/*
 * dns_answer.c - parses raw DNS answers into struct dns_answer (see
 * dns_answer.h), and owns the answer's memory helpers and the type and
 * status names.
 *
 * Bounds: names at most 255 octets on the wire, at most
 * DNS_PTR_JUMPS_MAX compression pointers per name and each pointing
 * before itself; at most DNS_WALK_MAX_RR answer records looked at, at
 * most DNS_ANSWER_MAX_RR kept, at most DNS_ANSWER_MAX_TXT TXT bytes kept;
 * every length is checked against the message. Anything that does not
 * parse makes the answer TEMPFAIL ("malformed answer"), never a crash.
 */
#include "dns_answer.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "buf.h"

#define T_CNAME 5
#define T_SOA 6
#define C_IN 1
#define NAME_BUF 256		/* 253 characters + slack + NUL */

const char *
dns_type_name(enum dns_type type)
{
	switch (type) {
	case DNS_T_A: return "a";
	case DNS_T_AAAA: return "aaaa";
	case DNS_T_MX: return "mx";
	case DNS_T_TXT: return "txt";
	case DNS_T_PTR: return "ptr";
	}
	return "?";
}

int
dns_type_parse(const char *s, enum dns_type *out)
{
	static const enum dns_type all[] = { DNS_T_A, DNS_T_AAAA, DNS_T_MX, DNS_T_TXT, DNS_T_PTR };

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (strcasecmp(s, dns_type_name(all[i])) == 0) {
			*out = all[i];
			return 0;
		}
	}
	return -1;
}

const char *
dns_status_name(enum dns_status st)
{
	switch (st) {
	case DNS_OK: return "ok";
	case DNS_NXDOMAIN: return "nxdomain";
	case DNS_NODATA: return "nodata";
	case DNS_TEMPFAIL: return "tempfail";
	}
	return "?";
}

void
dns_answer_fini(struct dns_answer *ans)
{
	for (size_t i = 0; i < ans->n; i++) {
		free(ans->rr[i].name);
		free(ans->rr[i].txt);
	}
	free(ans->rr);
	ans->rr = NULL;
	ans->n = 0;
}

void
dns_answer_copy(struct dns_answer *dst, const struct dns_answer *src)
{
	*dst = *src;
	dst->rr = NULL;
	if (src->n == 0)
		return;
	dst->rr = xcalloc(src->n, sizeof(*dst->rr));
	for (size_t i = 0; i < src->n; i++) {
		dst->rr[i] = src->rr[i];
		if (src->rr[i].name != NULL)
			dst->rr[i].name = xstrdup(src->rr[i].name);
		if (src->rr[i].txt != NULL) {
			dst->rr[i].txt = xmalloc(src->rr[i].txt_len + 1);
			memcpy(dst->rr[i].txt, src->rr[i].txt, src->rr[i].txt_len + 1);
		}
	}
}

void
dns_answer_tempfail(struct dns_answer *out, const char *err)
{
	dns_answer_fini(out);
	memset(out, 0, sizeof(*out));
	out->status = DNS_TEMPFAIL;
	out->err = err;
}

/* ---- the wire format -------------------------------------------------- */

static uint16_t
get16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads the name at *off into out (NAME_BUF bytes: lower case, labels
 * joined by dots, no trailing dot, "" for the root) and moves *off past
 * it (past the first pointer if there is one). 0, 1 if it parsed but a
 * label holds a byte no domain name in text form can carry (a dot, a
 * control or non-ASCII byte: out is then not to be used; a space is
 * kept, as SPF's %_ macro may ask for one), -1 if malformed. */
static int
name_read(const uint8_t *m, size_t len, size_t *off, char *out)
{
	size_t p = *off, o = 0, wire = 1, end = 0;
	int jumps = 0, odd = 0;

	for (;;) {
		if (p >= len)
			return -1;
		uint8_t l = m[p];

		if ((l & 0xC0) == 0xC0) {
			if (p + 1 >= len)
				return -1;
			size_t target = (size_t)(l & 0x3F) << 8 | m[p + 1];

			if (jumps == 0)
				end = p + 2;
			/* backward only, and few: no loop can last */
			if (target >= p || ++jumps > DNS_PTR_JUMPS_MAX)
				return -1;
			p = target;
			continue;
		}
		if ((l & 0xC0) != 0)
			return -1;	/* extended label types (RFC 6891) */
		if (l == 0) {
			p++;
			break;
		}
		wire += 1u + l;
		if (wire > 255 || p + 1 + l > len)
			return -1;
		if (o > 0)
			out[o++] = '.';
		for (size_t i = 0; i < l; i++) {
			uint8_t c = m[p + 1 + i];

			if (c < 0x20 || c >= 0x7F || c == '.')
				odd = 1;
			if (c >= 'A' && c <= 'Z')
				c = (uint8_t)(c + 32);
			out[o++] = (char)c;	/* o < 254: wire bounds it */
		}
		p += 1u + l;
	}
	out[o] = '\0';
	*off = jumps > 0 ? end : p;
	return odd;
}

struct rawrr {
	char owner[NAME_BUF];
	int owner_odd;
	uint16_t type;
	uint32_t ttl;
	size_t rd, rdlen;
};

/* Reads one resource record's fixed part at *off. 0 or -1. */
static int
rr_read(const uint8_t *m, size_t len, size_t *off, struct rawrr *rr)
{
	int r = name_read(m, len, off, rr->owner);

	if (r < 0 || *off + 10 > len)
		return -1;
	rr->owner_odd = r;
	rr->type = get16(m + *off);
	uint16_t cls = get16(m + *off + 2);
	rr->ttl = get32(m + *off + 4);
	if (rr->ttl & 0x80000000u)
		rr->ttl = 0;	/* RFC 2181 8 */
	rr->rdlen = get16(m + *off + 8);
	rr->rd = *off + 10;
	if (rr->rd + rr->rdlen > len)
		return -1;
	*off = rr->rd + rr->rdlen;
	if (cls != C_IN)
		rr->type = 0;	/* not ours: never matches */
	return 0;
}

/* A name that must fill the rest of rdata [*off, end). 0, 1 (odd), -1. */
static int
rdata_name(const uint8_t *m, size_t len, size_t off, size_t end, char *out)
{
	int r = name_read(m, len, &off, out);

	if (r < 0 || off != end)
		return -1;
	return r;
}

/* The negative TTL: the SOA's in the authority section, min(its TTL,
 * its MINIMUM) (RFC 2308 5); 0 when there is none. -1 if malformed. */
static int
negative_ttl(const uint8_t *m, size_t len, size_t off, unsigned nscount, uint32_t *ttl)
{
	struct rawrr rr;
	char tmp[NAME_BUF];

	*ttl = 0;
	for (unsigned i = 0; i < nscount && i < DNS_WALK_MAX_RR; i++) {
		if (rr_read(m, len, &off, &rr) < 0)
			return -1;
		if (rr.type != T_SOA)
			continue;
		size_t p = rr.rd;
		if (name_read(m, len, &p, tmp) < 0 || name_read(m, len, &p, tmp) < 0 ||
		    p + 20 != rr.rd + rr.rdlen)
			return -1;
		uint32_t min = get32(m + p + 16);
		*ttl = rr.ttl < min ? rr.ttl : min;
		if (*ttl > DNS_NEG_TTL_MAX)
			*ttl = DNS_NEG_TTL_MAX;
		return 0;
	}
	return 0;
}

/* The joined character-strings of a TXT rdata; -1 if malformed. */
static int
txt_read(const uint8_t *m, size_t rd, size_t rdlen, struct dns_rr *out)
{
	size_t p = rd, end = rd + rdlen, n = 0;

	if (rdlen == 0)
		return -1;
	out->txt = xmalloc(rdlen + 1);
	while (p < end) {
		size_t l = m[p];

		if (p + 1 + l > end) {
			free(out->txt);
			out->txt = NULL;
			return -1;
		}
		memcpy(out->txt + n, m + p + 1, l);
		n += l;
		p += 1 + l;
	}
	out->txt[n] = '\0';
	out->txt_len = n;
	return 0;
}

/* The record's rdata into out. 0, 1 (skip the record: a target name no
 * host has), -1 malformed. */
static int
rdata_read(const uint8_t *m, size_t len, const struct rawrr *rr, struct dns_rr *out)
{
	char name[NAME_BUF];
	int r;

	out->ttl = rr->ttl > DNS_TTL_MAX ? DNS_TTL_MAX : rr->ttl;
	switch (rr->type) {
	case DNS_T_A:
		if (rr->rdlen != 4)
			return -1;
		out->family = AF_INET;
		memcpy(out->addr, m + rr->rd, 4);
		return 0;
	case DNS_T_AAAA:
		if (rr->rdlen != 16)
			return -1;
		out->family = AF_INET6;
		memcpy(out->addr, m + rr->rd, 16);
		return 0;
	case DNS_T_MX:
		if (rr->rdlen < 3)
			return -1;
		out->pref = get16(m + rr->rd);
		r = rdata_name(m, len, rr->rd + 2, rr->rd + rr->rdlen, name);
		break;
	case DNS_T_PTR:
		r = rdata_name(m, len, rr->rd, rr->rd + rr->rdlen, name);
		break;
	case DNS_T_TXT:
		return txt_read(m, rr->rd, rr->rdlen, out);
	default:
		return -1;
	}
	if (r != 0)
		return r;
	out->name = xstrdup(name);
	return 0;
}

static void
mx_sort(struct dns_rr *rr, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		struct dns_rr x = rr[i];
		size_t j = i;

		while (j > 0 && rr[j - 1].pref > x.pref) {
			rr[j] = rr[j - 1];
			j--;
		}
		rr[j] = x;
	}
}

/* Follows the CNAME chain from rrs' question name cur; the lowest TTL on
 * the way into *ttl. 0, or -1 (malformed, or too long). */
static int
cname_follow(const uint8_t *m, size_t len, const struct rawrr *rrs, size_t n, char *cur,
	     uint32_t *ttl, const char **err)
{
	for (int hops = 0;; hops++) {
		size_t i;

		for (i = 0; i < n; i++)
			if (rrs[i].type == T_CNAME && !rrs[i].owner_odd && strcmp(rrs[i].owner, cur) == 0)
				break;
		if (i == n)
			return 0;
		if (hops >= DNS_CNAME_MAX) {
			*err = "CNAME chain too long";
			return -1;
		}
		char next[NAME_BUF];
		if (rdata_name(m, len, rrs[i].rd, rrs[i].rd + rrs[i].rdlen, next) != 0) {
			*err = "malformed answer";
			return -1;
		}
		if (rrs[i].ttl < *ttl)
			*ttl = rrs[i].ttl;
		memcpy(cur, next, NAME_BUF);
	}
}

static void
parse(const uint8_t *m, size_t len, enum dns_type qtype, struct dns_answer *out,
      struct rawrr *rrs)
{
	const char *bad = "malformed answer";
	char qname[NAME_BUF];
	size_t off = 12, n = 0;

	if (len < 12)
		goto malformed;
	uint16_t flags = get16(m + 2);
	unsigned qd = get16(m + 4), an = get16(m + 6), ns = get16(m + 8);
	if (!(flags & 0x8000) || qd != 1)
		goto malformed;
	out->ad = (flags & 0x0020) != 0;
	if (flags & 0x0200) {
		dns_answer_tempfail(out, "truncated answer");
		return;
	}
	switch (flags & 0x000F) {
	case 0:
	case 3:
		break;
	case 2:
		dns_answer_tempfail(out, "SERVFAIL");
		return;
	case 5:
		dns_answer_tempfail(out, "REFUSED");
		return;
	default:
		dns_answer_tempfail(out, "error reply (rcode not 0 or 3)");
		return;
	}
	if (name_read(m, len, &off, qname) < 0 || off + 4 > len)
		goto malformed;
	off += 4;
	for (unsigned i = 0; i < an; i++) {
		if (i >= DNS_WALK_MAX_RR) {
			out->truncated = 1;
			break;
		}
		if (rr_read(m, len, &off, &rrs[n]) < 0)
			goto malformed;
		n++;
	}
	uint32_t ttl = DNS_TTL_MAX;
	if (cname_follow(m, len, rrs, n, qname, &ttl, &bad) < 0)
		goto malformed;
	if ((flags & 0x000F) == 3) {
		out->status = DNS_NXDOMAIN;
		goto negative;
	}
	size_t txt_total = 0;
	for (size_t i = 0; i < n; i++) {
		if (rrs[i].type != qtype || rrs[i].owner_odd || strcmp(rrs[i].owner, qname) != 0)
			continue;
		if (out->n >= DNS_ANSWER_MAX_RR) {
			out->truncated = 1;
			break;
		}
		if (out->rr == NULL)
			out->rr = xcalloc(DNS_ANSWER_MAX_RR, sizeof(*out->rr));
		struct dns_rr *rr = &out->rr[out->n];
		int r = rdata_read(m, len, &rrs[i], rr);
		if (r < 0) {
			goto malformed;
		} else if (r > 0) {
			continue;
		}
		if (rr->txt != NULL && txt_total + rr->txt_len > DNS_ANSWER_MAX_TXT) {
			free(rr->txt);
			memset(rr, 0, sizeof(*rr));
			out->truncated = 1;
			continue;
		}
		txt_total += rr->txt_len;
		if (rr->ttl < ttl)
			ttl = rr->ttl;
		out->n++;
	}
	if (out->n > 0) {
		out->status = DNS_OK;
		out->ttl = ttl;
		if (qtype == DNS_T_MX)
			mx_sort(out->rr, out->n);
		return;
	}
	out->status = DNS_NODATA;
negative:
	/* the authority section follows the answers walked (all of them
	 * unless there were more than DNS_WALK_MAX_RR: then no SOA) */
	if (out->truncated) {
		out->ttl = 0;
		return;
	}
	if (negative_ttl(m, len, off, ns, &out->ttl) < 0)
		goto malformed;
	return;
malformed:
	dns_answer_tempfail(out, bad);
}

void
dns_answer_parse(const uint8_t *msg, size_t len, enum dns_type qtype, struct dns_answer *out)
{
	struct rawrr *rrs = xcalloc(DNS_WALK_MAX_RR, sizeof(*rrs));

	memset(out, 0, sizeof(*out));
	parse(msg, len, qtype, out, rrs);
	free(rrs);
}
