/*
 * cidr.h - IP addresses, CIDR networks and host:port parsing.
 *
 * No mail knowledge. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) match
 * IPv4 networks.
 */
#ifndef POSTERN_CIDR_H
#define POSTERN_CIDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "compat.h"

struct cidr {
	int family;		/* AF_INET or AF_INET6 */
	uint8_t addr[16];	/* network byte order; 4 used for AF_INET */
	unsigned prefix;	/* 0..32 or 0..128 */
};

struct cidr_list {
	struct cidr *v;		/* owned */
	size_t n;
};

/* "192.0.2.0/24", "2001:db8::/32", "127.0.0.1" (a host). 0 or -1. */
int cidr_parse(const char *s, struct cidr *out) WARN_UNUSED;
/* Comma- and/or space-separated list. On error returns -1 and copies the
 * offending item into bad (cut to badsize). */
int cidr_list_parse(const char *s, struct cidr_list *out, char *bad, size_t badsize) WARN_UNUSED;
void cidr_list_fini(struct cidr_list *l);
int cidr_list_copy(const struct cidr_list *src, struct cidr_list *dst) WARN_UNUSED;
/* 1 if sa (AF_INET/AF_INET6) is inside any network of l. */
int cidr_list_match(const struct cidr_list *l, const struct sockaddr *sa);

/* The address of ss as 16 octets (IPv6; IPv4 as IPv4-mapped), a key for
 * tables of client addresses. -1 (out zeroed) if ss is not IP. */
int sockaddr_key16(const struct sockaddr_storage *ss, uint8_t out[16]) WARN_UNUSED;

/* "127.0.0.1:2525", "[::1]:2525", "*:25" (IPv6 any, dual stack). */
int sockaddr_parse_hostport(const char *s, struct sockaddr_storage *out,
			    socklen_t *len_out) WARN_UNUSED;
/* "192.0.2.7" / "2001:db8::1" (with_port: "192.0.2.7:25", "[2001:db8::1]:25").
 * IPv4-mapped IPv6 is shown as IPv4. Returns -1 if it does not fit. */
int sockaddr_format(const struct sockaddr *sa, char *out, size_t outsize, int with_port) WARN_UNUSED;

#endif
