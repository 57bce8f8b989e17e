/*
 * cidr.c - IP networks (CIDR), matching, and host:port parsing.
 *
 * Owns struct cidr and struct cidr_list (see cidr.h). No mail knowledge,
 * no DNS: every address is numeric (inet_pton).
 * Invariants: a parsed network has its host bits cleared, and an
 * IPv4-mapped IPv6 network (::ffff:0:0/96 and longer) is stored as the
 * IPv4 network it stands for, so one comparison covers both spellings.
 * Clients given as IPv4-mapped IPv6 are matched as IPv4.
 */
#include "cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

/* Longest textual item we accept: a full IPv6 address with a dotted IPv4
 * tail and a prefix fits easily in 64. */
#define CIDR_ITEM_MAX 64

static const uint8_t v4mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* Clears the bits past prefix in addr (len bytes). */
static void
cidr_mask(uint8_t *addr, size_t len, unsigned prefix)
{
	for (size_t i = 0; i < len; i++) {
		unsigned bit = (unsigned)i * 8;

		if (bit >= prefix)
			addr[i] = 0;
		else if (prefix - bit < 8)
			addr[i] &= (uint8_t)(0xff << (8 - (prefix - bit)));
	}
}

/* 1 if the first prefix bits of a and b agree. */
static int
cidr_prefix_eq(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
	unsigned whole = prefix / 8, rest = prefix % 8;

	if (whole > 0 && memcmp(a, b, whole) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((a[whole] ^ b[whole]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

int
cidr_parse(const char *s, struct cidr *out)
{
	char host[CIDR_ITEM_MAX];
	const char *slash = strchr(s, '/');
	size_t hostlen = slash ? (size_t)(slash - s) : strlen(s);
	unsigned maxprefix, prefix;
	struct cidr c;

	memset(&c, 0, sizeof(c));
	if (hostlen == 0 || hostlen >= sizeof(host))
		return -1;
	memcpy(host, s, hostlen);
	host[hostlen] = '\0';
	if (inet_pton(AF_INET, host, c.addr) == 1) {
		c.family = AF_INET;
		maxprefix = 32;
	} else if (inet_pton(AF_INET6, host, c.addr) == 1) {
		c.family = AF_INET6;
		maxprefix = 128;
	} else {
		return -1;
	}
	prefix = maxprefix;
	if (slash != NULL) {
		uint64_t v;

		/* Digits only: no sign, no spaces, at most 3 of them. */
		if (slice_to_u64(slice_from_cstr(slash + 1), maxprefix, &v) < 0 ||
		    strlen(slash + 1) > 3)
			return -1;
		prefix = (unsigned)v;
	}
	if (c.family == AF_INET6 && prefix >= 96 &&
	    memcmp(c.addr, v4mapped_prefix, sizeof(v4mapped_prefix)) == 0) {
		memmove(c.addr, c.addr + 12, 4);
		memset(c.addr + 4, 0, 12);
		c.family = AF_INET;
		prefix -= 96;
	}
	c.prefix = prefix;
	cidr_mask(c.addr, c.family == AF_INET ? 4 : 16, prefix);
	*out = c;
	return 0;
}

static int
is_sep(char c)
{
	return c == ',' || c == ' ' || c == '\t';
}

int
cidr_list_parse(const char *s, struct cidr_list *out, char *bad, size_t badsize)
{
	struct cidr_list l = { NULL, 0 };
	size_t cap = 0;
	const char *p = s;

	if (bad != NULL && badsize > 0)
		bad[0] = '\0';
	for (;;) {
		char item[CIDR_ITEM_MAX];
		const char *start;
		size_t n;

		while (is_sep(*p))
			p++;
		if (*p == '\0')
			break;
		start = p;
		while (*p != '\0' && !is_sep(*p))
			p++;
		n = (size_t)(p - start);
		if (slice_copy((struct slice){ (const uint8_t *)start, n }, item, sizeof(item)) < 0)
			goto fail;
		if (l.n == cap) {
			cap = cap ? cap * 2 : 4;
			l.v = xrealloc(l.v, cap * sizeof(*l.v));
		}
		if (cidr_parse(item, &l.v[l.n]) < 0)
			goto fail;
		l.n++;
		continue;
fail:
		if (bad != NULL && badsize > 0) {
			size_t m = n < badsize - 1 ? n : badsize - 1;

			memcpy(bad, start, m);
			bad[m] = '\0';
		}
		cidr_list_fini(&l);
		return -1;
	}
	*out = l;
	return 0;
}

void
cidr_list_fini(struct cidr_list *l)
{
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

int
cidr_list_copy(const struct cidr_list *src, struct cidr_list *dst)
{
	dst->n = src->n;
	dst->v = NULL;
	if (src->n > 0) {
		dst->v = xcalloc(src->n, sizeof(*dst->v));
		memcpy(dst->v, src->v, src->n * sizeof(*dst->v));
	}
	return 0;
}

int
sockaddr_key16(const struct sockaddr_storage *ss, uint8_t out[16])
{
	memset(out, 0, 16);
	if (ss->ss_family == AF_INET) {
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &((const struct sockaddr_in *)(const void *)ss)->sin_addr, 4);
		return 0;
	}
	if (ss->ss_family == AF_INET6) {
		memcpy(out, &((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr, 16);
		return 0;
	}
	return -1;
}

int
cidr_list_match(const struct cidr_list *l, const struct sockaddr *sa)
{
	uint8_t addr[16];
	int family;

	if (sa == NULL)
		return 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;

		family = AF_INET;
		memcpy(addr, &sin->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;

		memcpy(addr, &sin6->sin6_addr, 16);
		if (memcmp(addr, v4mapped_prefix, sizeof(v4mapped_prefix)) == 0) {
			family = AF_INET;
			memmove(addr, addr + 12, 4);
		} else {
			family = AF_INET6;
		}
	} else {
		return 0;
	}
	for (size_t i = 0; i < l->n; i++) {
		if (l->v[i].family == family &&
		    cidr_prefix_eq(l->v[i].addr, addr, l->v[i].prefix))
			return 1;
	}
	return 0;
}

int
sockaddr_parse_hostport(const char *s, struct sockaddr_storage *out, socklen_t *len_out)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *hs, *he, *ps;
	uint64_t port;
	size_t hl;

	if (s[0] == '[') {
		hs = s + 1;
		he = strchr(hs, ']');
		if (he == NULL || he[1] != ':')
			return -1;
		ps = he + 2;
	} else {
		hs = s;
		he = strrchr(s, ':');
		if (he == NULL)
			return -1;
		ps = he + 1;
		if (memchr(hs, ':', (size_t)(he - hs)) != NULL)
			return -1;	/* bare IPv6 needs brackets */
	}
	if (*ps == '\0' || strlen(ps) > 5 ||
	    slice_to_u64(slice_from_cstr(ps), 65535, &port) < 0 || port == 0)
		return -1;
	hl = (size_t)(he - hs);
	if (hl == 0 || hl >= sizeof(host))
		return -1;
	memcpy(host, hs, hl);
	host[hl] = '\0';
	memset(out, 0, sizeof(*out));
	if (s[0] != '[' && strcmp(host, "*") == 0) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)out;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_any;
		sin6->sin6_port = htons((uint16_t)port);
		*len_out = sizeof(*sin6);
		return 0;
	}
	if (s[0] != '[') {
		struct sockaddr_in *sin = (struct sockaddr_in *)(void *)out;

		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return -1;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len_out = sizeof(*sin);
		return 0;
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)out;

		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len_out = sizeof(*sin6);
		return 0;
	}
}

int
sockaddr_format(const struct sockaddr *sa, char *out, size_t outsize, int with_port)
{
	char host[INET6_ADDRSTRLEN];
	unsigned port;
	int v6, n;

	if (outsize == 0)
		return -1;
	out[0] = '\0';
	if (sa == NULL)
		return -1;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;

		if (inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host)) == NULL)
			return -1;
		port = ntohs(sin->sin_port);
		v6 = 0;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		const uint8_t *a = sin6->sin6_addr.s6_addr;

		if (memcmp(a, v4mapped_prefix, sizeof(v4mapped_prefix)) == 0) {
			if (inet_ntop(AF_INET, a + 12, host, sizeof(host)) == NULL)
				return -1;
			v6 = 0;
		} else {
			if (inet_ntop(AF_INET6, a, host, sizeof(host)) == NULL)
				return -1;
			v6 = 1;
		}
		port = ntohs(sin6->sin6_port);
	} else {
		return -1;
	}
	if (!with_port)
		n = snprintf(out, outsize, "%s", host);
	else if (v6)
		n = snprintf(out, outsize, "[%s]:%u", host, port);
	else
		n = snprintf(out, outsize, "%s:%u", host, port);
	if (n < 0 || (size_t)n >= outsize) {
		out[0] = '\0';
		return -1;
	}
	return 0;
}
