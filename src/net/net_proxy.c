/*
 * net_proxy.c - the HAProxy PROXY protocol v1 and v2: the pure header
 * parser, and the preface hook that reads the header off a session's
 * socket without reading past it and puts the client address it carries
 * in the connection (see net_proxy.h).
 */
#include "net_proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "catalog.h"
#include "cidr.h"
#include "log.h"
#include "loop.h"

static const uint8_t v2_sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
				    0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

/* ---- the parser --------------------------------------------------------- */

/* The next space-separated field of p[*i..end) into out (NUL-ended);
 * -1 when empty or too long. */
static int
v1_field(const uint8_t *p, size_t end, size_t *i, char *out, size_t outsz)
{
	size_t k = 0;

	while (*i < end && p[*i] != ' ') {
		if (k + 1 >= outsz)
			return -1;
		out[k++] = (char)p[(*i)++];
	}
	out[k] = '\0';
	if (k == 0)
		return -1;
	if (*i < end)
		(*i)++;		/* the space */
	return 0;
}

/* A decimal port of 1 to 5 digits, no leading zero, at most 65535. */
static int
v1_port(const char *s, unsigned *port)
{
	unsigned v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 5 || (s[0] == '0' && n > 1))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 65535)
		return -1;
	*port = v;
	return 0;
}

static int
v1_addr(int family, const char *text, unsigned port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		return inet_pton(AF_INET, text, &sin->sin_addr) == 1 ? 0 : -1;
	}
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons((uint16_t)port);
	return inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1 ? 0 : -1;
}

static enum net_proxy_parse
parse_v1(const uint8_t *p, size_t n, struct net_proxy_header *h, const char **why)
{
	size_t lim = n < NET_PROXY_V1_MAX ? n : NET_PROXY_V1_MAX;
	size_t end = 0, i = 6;
	char proto[8], src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN], sp[8], dp[8];
	unsigned sport, dport;
	int family;

	while (end < lim && p[end] != '\n')
		end++;
	if (end == lim) {
		if (n >= NET_PROXY_V1_MAX) {
			*why = "v1 header longer than 107 octets";
			return NET_PROXY_BAD;
		}
		for (size_t k = 0; k < n; k++)
			if (p[k] == '\r' && k + 1 < n) {
				*why = "v1 header: CR not followed by LF";
				return NET_PROXY_BAD;
			}
		return NET_PROXY_MORE;
	}
	if (end == 0 || p[end - 1] != '\r') {
		*why = "v1 header: LF without CR";
		return NET_PROXY_BAD;
	}
	h->len = end + 1;
	h->version = 1;
	end--;		/* the CR */
	for (size_t k = 0; k < end; k++)
		if (p[k] < 0x20 || p[k] > 0x7e) {
			*why = "v1 header: control or non-ASCII octet";
			return NET_PROXY_BAD;
		}
	if (v1_field(p, end, &i, proto, sizeof(proto)) < 0) {
		*why = "v1 header: no protocol";
		return NET_PROXY_BAD;
	}
	if (strcmp(proto, "UNKNOWN") == 0) {
		h->local = 1;	/* the rest of the line is ignored */
		return NET_PROXY_OK;
	}
	if (strcmp(proto, "TCP4") == 0)
		family = AF_INET;
	else if (strcmp(proto, "TCP6") == 0)
		family = AF_INET6;
	else {
		*why = "v1 header: protocol not TCP4, TCP6 or UNKNOWN";
		return NET_PROXY_BAD;
	}
	if (v1_field(p, end, &i, src, sizeof(src)) < 0 ||
	    v1_field(p, end, &i, dst, sizeof(dst)) < 0 ||
	    v1_field(p, end, &i, sp, sizeof(sp)) < 0 ||
	    v1_field(p, end, &i, dp, sizeof(dp)) < 0 || i != end || p[end - 1] == ' ') {
		*why = "v1 header: not four fields after the protocol";
		return NET_PROXY_BAD;
	}
	if (v1_port(sp, &sport) < 0 || v1_port(dp, &dport) < 0) {
		*why = "v1 header: bad port";
		return NET_PROXY_BAD;
	}
	if (v1_addr(family, src, sport, &h->src) < 0 || v1_addr(family, dst, dport, &h->dst) < 0) {
		*why = "v1 header: address not of the protocol's family";
		return NET_PROXY_BAD;
	}
	h->local = 0;
	return NET_PROXY_OK;
}

static enum net_proxy_parse
parse_v2(const uint8_t *p, size_t n, struct net_proxy_header *h, const char **why)
{
	size_t len, need;

	if (n < 16)
		return NET_PROXY_MORE;
	if ((p[12] >> 4) != 2) {
		*why = "v2 header: version not 2";
		return NET_PROXY_BAD;
	}
	if ((p[12] & 0x0f) > 1) {
		*why = "v2 header: command not LOCAL or PROXY";
		return NET_PROXY_BAD;
	}
	len = ((size_t)p[14] << 8) | p[15];
	if (16 + len > NET_PROXY_V2_MAX) {
		*why = "v2 header longer than 1024 octets";
		return NET_PROXY_BAD;
	}
	if (n < 16 + len)
		return NET_PROXY_MORE;
	h->len = 16 + len;
	h->version = 2;
	h->local = 1;
	if ((p[12] & 0x0f) == 0)
		return NET_PROXY_OK;	/* LOCAL: the proxy's own connection */
	switch (p[13]) {
	case 0x00:			/* UNSPEC */
	case 0x31:			/* UNIX stream */
		return NET_PROXY_OK;
	case 0x11:			/* TCP over IPv4 */
		need = 12;
		break;
	case 0x21:			/* TCP over IPv6 */
		need = 36;
		break;
	default:
		*why = "v2 header: not a stream over IPv4, IPv6 or UNIX";
		return NET_PROXY_BAD;
	}
	if (len < need) {
		*why = "v2 header: address block shorter than its family";
		return NET_PROXY_BAD;
	}
	memset(&h->src, 0, sizeof(h->src));
	memset(&h->dst, 0, sizeof(h->dst));
	if (p[13] == 0x11) {
		struct sockaddr_in *s = (struct sockaddr_in *)&h->src;
		struct sockaddr_in *d = (struct sockaddr_in *)&h->dst;

		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, p + 16, 4);
		memcpy(&d->sin_addr, p + 20, 4);
		memcpy(&s->sin_port, p + 24, 2);
		memcpy(&d->sin_port, p + 26, 2);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&h->src;
		struct sockaddr_in6 *d = (struct sockaddr_in6 *)&h->dst;

		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, p + 16, 16);
		memcpy(&d->sin6_addr, p + 32, 16);
		memcpy(&s->sin6_port, p + 48, 2);
		memcpy(&d->sin6_port, p + 50, 2);
	}
	h->local = 0;
	return NET_PROXY_OK;
}

enum net_proxy_parse
net_proxy_parse(const uint8_t *p, size_t n, struct net_proxy_header *h, const char **why)
{
	static const char v1_sig[6] = { 'P', 'R', 'O', 'X', 'Y', ' ' };
	size_t k;

	memset(h, 0, sizeof(*h));
	*why = "";
	for (k = 0; k < n && k < sizeof(v2_sig); k++)
		if (p[k] != v2_sig[k])
			break;
	if (k == n && n < sizeof(v2_sig) && (n == 0 || p[0] == v2_sig[0])) {
		/* A prefix of both signatures only when empty. */
		return NET_PROXY_MORE;
	}
	if (k == sizeof(v2_sig))
		return parse_v2(p, n, h, why);
	for (k = 0; k < n && k < sizeof(v1_sig); k++)
		if (p[k] != (uint8_t)v1_sig[k]) {
			*why = "no PROXY header";
			return NET_PROXY_BAD;
		}
	if (n < sizeof(v1_sig))
		return NET_PROXY_MORE;
	return parse_v1(p, n, h, why);
}

/* ---- the preface hook --------------------------------------------------- */

/* The header's octets read so far wait in the session's input buffer
 * (empty until the protocol starts; emptied again before it does), so
 * the socket never stays readable with bytes only peeked: level-
 * triggered epoll would wake the loop for them again and again. */
static enum net_preface
proxy_refuse(struct net_session *ns, enum cond_id cond, const char *reason)
{
	struct log_ctx ctx = { .sid = ns->sid };
	struct kv kv[] = { KV("client", ns->conn->peer_text), KV("reason", reason),
			   KVU("bytes", ns->in->len),
			   KVU("elapsed_ms", loop_clock_ms() - ns->preface_started_ms) };

	catalog_log(cond, &ctx, kv, ARRAY_LEN(kv));
	ns->preface_cause = cond;
	buf_reset(ns->in);
	return NET_PREFACE_ERROR;
}

enum net_preface
net_proxy_preface(struct net_session *ns, int timed_out)
{
	uint8_t p[NET_PROXY_MAX];
	struct net_proxy_header h;
	const char *why = "";
	size_t have = ns->in->len, room;
	enum net_proxy_parse r;
	ssize_t got;

	if (timed_out)
		return proxy_refuse(ns, COND_NET_PROXY_TIMEOUT, "no whole header in proxy.timeout");
	if (have == 0 && (ns->proxy_networks == NULL ||
			  !cidr_list_match(ns->proxy_networks,
					   (const struct sockaddr *)&ns->conn->peer)))
		return proxy_refuse(ns, COND_NET_PROXY_NOT_ALLOWED, "not in proxy.networks");
	if (have > sizeof(p))
		return proxy_refuse(ns, COND_NET_PROXY_MALFORMED, "header too long");
	if (have > 0)
		memcpy(p, ns->in->data, have);
	room = sizeof(p) - have;
	if (room > ns->in->max - have)
		room = ns->in->max - have;
	got = recv(ns->conn->fd, p + have, room, MSG_PEEK);
	if (got < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return NET_PREFACE_MORE;
		return proxy_refuse(ns, COND_NET_PROXY_MALFORMED, "read error");
	}
	if (got == 0)
		return proxy_refuse(ns, COND_NET_PROXY_MALFORMED,
				    "connection closed before the header ended");
	r = net_proxy_parse(p, have + (size_t)got, &h, &why);
	if (r == NET_PROXY_BAD)
		return proxy_refuse(ns, COND_NET_PROXY_MALFORMED, why);
	if (r == NET_PROXY_MORE && have + (size_t)got >= ns->in->max)
		return proxy_refuse(ns, COND_NET_PROXY_MALFORMED, "header too long");
	/* Take exactly the header's octets (all of them so far on MORE). */
	size_t take = r == NET_PROXY_OK ? h.len - have : (size_t)got;
	if (recv(ns->conn->fd, p + have, take, 0) != (ssize_t)take)
		return proxy_refuse(ns, COND_NET_PROXY_MALFORMED, "read error");
	ns->conn->bytes_in += take;
	if (r == NET_PROXY_MORE) {
		if (buf_append(ns->in, p + have, take) < 0)
			return proxy_refuse(ns, COND_NET_PROXY_MALFORMED, "header too long");
		return NET_PREFACE_MORE;
	}
	buf_reset(ns->in);
	*ns->in_off = 0;
	if (!h.local)
		conn_set_client(ns->conn, &h.src);
	return NET_PREFACE_DONE;
}
