/*
 * net_proxy.h - the HAProxy PROXY protocol (v1 text, v2 binary), as the
 * preface stage of listeners with proxy_protocol = yes.
 *
 * Owns the pure header parser (net_proxy_parse: bytes in, the header's
 * length and addresses out, nothing read or written) and the preface
 * hook that drives it on a session's socket: the proxy's address must be
 * in proxy.networks, the header comes within proxy.timeout and within
 * its bound, and the client address it carries replaces the connection's
 * peer (the proxy's own stays in conn.proxy_peer) before the protocol
 * sees a byte. Each refusal is a catalog event (NET-PROXY-*).
 */
#ifndef POSTERN_NET_PROXY_H
#define POSTERN_NET_PROXY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "net_session.h"

/* v1: 107 octets at most, CRLF included (the specification's bound). */
#define NET_PROXY_V1_MAX 107
/* v2: 16 octets and the address block with its TLVs; we take at most
 * this much in all (HAProxy's own TLVs fit well within it). */
#define NET_PROXY_V2_MAX 1024
#define NET_PROXY_MAX NET_PROXY_V2_MAX

enum net_proxy_parse {
	NET_PROXY_OK,		/* a whole header: h filled */
	NET_PROXY_MORE,		/* every octet so far belongs to a header */
	NET_PROXY_BAD,		/* not a header (why says what) */
};

struct net_proxy_header {
	size_t len;			/* octets of the header */
	int version;			/* 1 or 2 */
	int local;			/* keep the connection's own addresses
					 * (v2 LOCAL, v1 UNKNOWN, v2 UNSPEC/UNIX) */
	struct sockaddr_storage src;	/* the client, unless local */
	struct sockaddr_storage dst;
};

/* Parses the start of p[0..n). OK: h->len octets are the header; MORE:
 * all n octets are a prefix of one; BAD: *why names the fault. */
enum net_proxy_parse net_proxy_parse(const uint8_t *p, size_t n, struct net_proxy_header *h,
				     const char **why);

/* The preface hook of a proxy_protocol listener (net_preface_of). */
enum net_preface net_proxy_preface(struct net_session *ns, int timed_out);

#endif
