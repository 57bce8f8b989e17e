/*
 * dns_resolver.c - the resolver of one loop thread: c-ares driven by the
 * loop (its sockets watched through the socket-state callback and
 * ares_process_fd, its timeouts on one loop timer; no threads), answers
 * parsed by dns_answer.c and kept in the shared dns_cache.c; dns.*
 * options, their check at load, reverse names.
 *
 * A query's callback never runs inside dns_query(): cache hits, invalid
 * names and anything c-ares answers at once go on a ready list that a
 * zero-delay timer hands over on the next loop round.
 */
#include <arpa/inet.h>
#include <ares.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "buf.h"
#include "cidr.h"
#include "config.h"
#include "dns.h"
#include "dns_answer.h"
#include "loop.h"

#define DNS_MAX_FDS 64		/* sockets of one channel watched at once */
#define DNS_MAX_SERVERS 16
#define C_IN 1

struct dns_query {
	struct dns_resolver *r;
	struct dns_query *prev, *next;	/* the ready list */
	dns_fn fn;			/* NULL: cancelled (c-ares still has it) */
	void *arg;
	enum dns_type type;
	int ready;			/* on the ready list, ans filled */
	struct dns_answer ans;
	char name[DNS_NAME_MAX + 1];
};

struct dns_settings {
	struct dns_server servers[DNS_MAX_SERVERS];
	size_t nservers;		/* 0: the system's (resolv.conf) */
	unsigned timeout_ms;
	unsigned tries;
};

struct dns_resolver {
	struct loop *loop;
	struct dns_cache *cache;
	ares_channel ch;
	struct dns_settings set;
	struct ares_addr_port_node *sys_servers;	/* resolv.conf's, read at start */
	int sys_read;			/* sys_servers known (may be NULL) */
	int fds[DNS_MAX_FDS];
	size_t nfds;
	struct loop_timer timer;	/* c-ares' next timeout */
	struct loop_timer ready_timer;
	struct dns_query *ready_head, *ready_tail;
	int in_send;			/* inside ares_query: answers wait */
	int closing;			/* being freed: no callbacks */
};

static pthread_once_t ares_once = PTHREAD_ONCE_INIT;
static int ares_init_rc;

static void
ares_lib_init(void)
{
	ares_init_rc = ares_library_init(ARES_LIB_INIT_ALL);
}

/* ---- dns.servers ------------------------------------------------------ */

int
dns_server_parse(const char *s, struct dns_server *out)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	char host[INET6_ADDRSTRLEN + 1];
	size_t n = strlen(s);

	memset(out, 0, sizeof(*out));
	out->port = 53;
	if (inet_pton(AF_INET, s, out->addr) == 1) {
		out->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, out->addr) == 1) {
		out->family = AF_INET6;
		return 0;
	}
	if (n > 2 && s[0] == '[' && s[n - 1] == ']' && n - 2 < sizeof(host)) {
		memcpy(host, s + 1, n - 2);
		host[n - 2] = '\0';
		out->family = AF_INET6;
		return inet_pton(AF_INET6, host, out->addr) == 1 ? 0 : -1;
	}
	/* IP:port, [IPv6]:port (not the listeners' "*:port") */
	if (s[0] == '*' || sockaddr_parse_hostport(s, &ss, &sl) < 0)
		return -1;
	out->family = ss.ss_family;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)&ss;

		memcpy(out->addr, &sin->sin_addr, 4);
		out->port = ntohs(sin->sin_port);
	} else {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)&ss;

		memcpy(out->addr, &sin6->sin6_addr, 16);
		out->port = ntohs(sin6->sin6_port);
	}
	return 0;
}

static int
settings_from(const struct config *cfg, struct dns_settings *set)
{
	memset(set, 0, sizeof(*set));
	if (cfg->dns_servers.n > DNS_MAX_SERVERS)
		return -1;
	for (size_t i = 0; i < cfg->dns_servers.n; i++)
		if (dns_server_parse(cfg->dns_servers.v[i], &set->servers[i]) < 0)
			return -1;
	set->nservers = cfg->dns_servers.n;
	set->timeout_ms = cfg->dns_timeout * 1000u;
	set->tries = cfg->dns_attempts;
	return 0;
}

void
dns_config_check(struct config *cfg, struct config_load *ld, struct diag *diags)
{
	struct dns_server srv;

	(void)diags;
	if (cfg->dns_servers.n > DNS_MAX_SERVERS)
		config_option_diag(ld, "dns.servers", "more than %d servers", DNS_MAX_SERVERS);
	for (size_t i = 0; i < cfg->dns_servers.n; i++)
		if (dns_server_parse(cfg->dns_servers.v[i], &srv) < 0)
			config_option_diag(ld, "dns.servers",
					   "\"%.100s\" is not an IP address, IP:port or [IPv6]:port",
					   cfg->dns_servers.v[i]);
}

/* ---- the channel on the loop ------------------------------------------ */

static void rearm(struct dns_resolver *r);

static void
on_io(struct loop *loop, int fd, unsigned events, void *arg)
{
	struct dns_resolver *r = arg;

	(void)loop;
	ares_process_fd(r->ch, (events & LOOP_READ) ? fd : ARES_SOCKET_BAD,
			(events & LOOP_WRITE) ? fd : ARES_SOCKET_BAD);
	rearm(r);
}

static void
on_timer(struct loop *loop, void *arg)
{
	struct dns_resolver *r = arg;

	(void)loop;
	ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	rearm(r);
}

static void
rearm(struct dns_resolver *r)
{
	struct timeval tv, *t;

	if (r->ch == NULL)
		return;
	t = ares_timeout(r->ch, NULL, &tv);
	if (t == NULL) {
		loop_timer_cancel(r->loop, &r->timer);
		return;
	}
	uint64_t ms = (uint64_t)t->tv_sec * 1000u + (uint64_t)(t->tv_usec + 999) / 1000u;
	loop_timer_set(r->loop, &r->timer, ms);
}

/* c-ares opens, changes or closes (readable = writable = 0) a socket. */
static void
on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns_resolver *r = data;
	unsigned ev = (readable ? LOOP_READ : 0u) | (writable ? LOOP_WRITE : 0u);
	size_t i;

	for (i = 0; i < r->nfds && r->fds[i] != fd; i++)
		;
	if (ev == 0) {
		if (i < r->nfds) {
			loop_del_fd(r->loop, fd);
			r->fds[i] = r->fds[--r->nfds];
		}
		return;
	}
	if (i < r->nfds) {
		if (loop_mod_fd(r->loop, fd, ev) < 0) {
			/* unwatched: the query times out */
		}
		return;
	}
	/* past the bound, or not watchable: its query times out */
	if (r->nfds < DNS_MAX_FDS && loop_add_fd(r->loop, fd, ev, on_io, r) == 0)
		r->fds[r->nfds++] = fd;
}

static struct ares_addr_port_node *
servers_list(const struct dns_settings *set, struct ares_addr_port_node *nodes)
{
	for (size_t i = 0; i < set->nservers; i++) {
		struct ares_addr_port_node *n = &nodes[i];

		memset(n, 0, sizeof(*n));
		n->next = i + 1 < set->nservers ? &nodes[i + 1] : NULL;
		n->family = set->servers[i].family;
		if (n->family == AF_INET)
			memcpy(&n->addr.addr4, set->servers[i].addr, 4);
		else
			memcpy(&n->addr.addr6, set->servers[i].addr, 16);
		n->udp_port = n->tcp_port = set->servers[i].port;
	}
	return set->nservers > 0 ? nodes : NULL;
}

/* A channel for set. Until the system's servers are known (sys_read),
 * c-ares reads /etc/resolv.conf (at start, off the loop thread); every
 * later channel is given all that c-ares would look up there, so it
 * reads no file. */
static int
channel_new(struct dns_resolver *r, const struct dns_settings *set, ares_channel *out)
{
	struct ares_options o;
	struct in_addr any = { htonl(INADDR_LOOPBACK) };
	char lookups[] = "b";
	int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB;
	int full = r->sys_read;

	memset(&o, 0, sizeof(o));
	o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_EDNS;
	o.timeout = (int)set->timeout_ms;
	o.tries = (int)set->tries;
	o.sock_state_cb = on_sock_state;
	o.sock_state_cb_data = r;
	if (full) {
		/* a placeholder server, replaced below: settings complete */
		o.servers = &any;
		o.nservers = 1;
		o.ndomains = 0;
		o.ndots = 1;
		o.lookups = lookups;
		o.nsort = 0;
		mask |= ARES_OPT_SERVERS | ARES_OPT_DOMAINS | ARES_OPT_NDOTS | ARES_OPT_LOOKUPS |
			ARES_OPT_SORTLIST;
	}
	if (ares_init_options(out, &o, mask) != ARES_SUCCESS)
		return -1;
	if (!r->sys_read) {
		if (ares_get_servers_ports(*out, &r->sys_servers) != ARES_SUCCESS)
			r->sys_servers = NULL;
		r->sys_read = 1;
	}
	struct ares_addr_port_node nodes[DNS_MAX_SERVERS];
	struct ares_addr_port_node *list = set->nservers > 0 ? servers_list(set, nodes)
							     : r->sys_servers;
	if (list != NULL && ares_set_servers_ports(*out, list) != ARES_SUCCESS) {
		ares_destroy(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

/* ---- answers ---------------------------------------------------------- */

static void deliver_ready(struct loop *loop, void *arg);

static void
ready_push(struct dns_resolver *r, struct dns_query *q)
{
	q->ready = 1;
	q->next = NULL;
	q->prev = r->ready_tail;
	if (r->ready_tail != NULL)
		r->ready_tail->next = q;
	else
		r->ready_head = q;
	r->ready_tail = q;
	if (!loop_timer_armed(&r->ready_timer))
		loop_timer_set(r->loop, &r->ready_timer, 0);
}

static void
ready_unlink(struct dns_resolver *r, struct dns_query *q)
{
	if (q->prev != NULL)
		q->prev->next = q->next;
	else
		r->ready_head = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	else
		r->ready_tail = q->prev;
	q->prev = q->next = NULL;
}

static void
query_free(struct dns_query *q)
{
	dns_answer_fini(&q->ans);
	free(q);
}

static void
deliver_ready(struct loop *loop, void *arg)
{
	struct dns_resolver *r = arg;
	struct dns_query *q;

	(void)loop;
	while ((q = r->ready_head) != NULL) {
		ready_unlink(r, q);
		q->fn(q->arg, &q->ans);
		query_free(q);
	}
}

static void send_query(struct dns_query *q);

static void
on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_query *q = arg;
	struct dns_resolver *r = q->r;

	(void)timeouts;
	if (status == ARES_EDESTRUCTION && !r->closing && q->fn != NULL) {
		send_query(q);	/* the channel was replaced (reload) */
		return;
	}
	if (r->closing || q->fn == NULL) {
		query_free(q);
		return;
	}
	if (abuf != NULL && alen > 0) {
		dns_answer_parse(abuf, (size_t)alen, q->type, &q->ans);
	} else if (status == ARES_ENOTFOUND || status == ARES_ENODATA) {
		memset(&q->ans, 0, sizeof(q->ans));
		q->ans.status = status == ARES_ENOTFOUND ? DNS_NXDOMAIN : DNS_NODATA;
	} else {
		const char *err;

		switch (status) {
		case ARES_ETIMEOUT: err = "timeout"; break;
		/* c-ares 1.18 reports a SERVFAIL or REFUSED answer from
		 * every server as a refused connection: one text for all */
		case ARES_ESERVFAIL:
		case ARES_EREFUSED:
		case ARES_ECONNREFUSED: err = "SERVFAIL, REFUSED or unreachable"; break;
		case ARES_EBADRESP: err = "malformed answer"; break;
		default: err = ares_strerror(status); break;
		}
		dns_answer_tempfail(&q->ans, err);
	}
	dns_cache_put(r->cache, q->name, q->type, &q->ans);
	if (r->in_send) {
		ready_push(r, q);
		return;
	}
	q->fn(q->arg, &q->ans);
	query_free(q);
}

static void
send_query(struct dns_query *q)
{
	struct dns_resolver *r = q->r;

	r->in_send++;
	ares_query(r->ch, q->name, C_IN, (int)q->type, on_answer, q);
	r->in_send--;
}

/* Lower case, no trailing dot; labels of 1..63 printable octets or
 * spaces, 253 in all (underscores allowed: _dmarc, SRV-style names;
 * spaces: SPF's %_ macro, RFC 7208 7.1). 0 or -1. */
static int
name_normalize(const char *in, char *out)
{
	size_t n = strlen(in), label = 0;

	if (n > 0 && in[n - 1] == '.')
		n--;
	if (n == 0 || n > DNS_NAME_MAX)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char c = in[i];

		if (c == '.') {
			if (label == 0)
				return -1;
			label = 0;
		} else if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7F || c == '\\' ||
			   ++label > 63) {
			return -1;
		}
		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
	}
	out[n] = '\0';
	return label == 0 ? -1 : 0;
}

struct dns_query *
dns_query(struct dns_resolver *r, const char *name, enum dns_type type, dns_fn fn, void *arg)
{
	struct dns_query *q = xcalloc(1, sizeof(*q));

	q->r = r;
	q->fn = fn;
	q->arg = arg;
	q->type = type;
	if (name_normalize(name, q->name) < 0) {
		q->ans.status = DNS_NXDOMAIN;
		q->ans.err = "not a domain name";
		ready_push(r, q);
	} else if (dns_cache_get(r->cache, q->name, type, &q->ans)) {
		ready_push(r, q);
	} else {
		send_query(q);
		rearm(r);
	}
	return q;
}

void
dns_cancel(struct dns_query *q)
{
	if (q == NULL)
		return;
	if (q->ready) {
		ready_unlink(q->r, q);
		query_free(q);
		return;
	}
	q->fn = NULL;	/* c-ares' callback frees it */
}

/* ---- life ------------------------------------------------------------- */

struct dns_resolver *
dns_resolver_new(struct loop *loop, const struct config *cfg, struct dns_cache *cache)
{
	struct dns_resolver *r;

	pthread_once(&ares_once, ares_lib_init);
	if (ares_init_rc != ARES_SUCCESS)
		return NULL;
	r = xcalloc(1, sizeof(*r));
	r->loop = loop;
	r->cache = cache;
	loop_timer_init(&r->timer, on_timer, r);
	loop_timer_init(&r->ready_timer, deliver_ready, r);
	if (settings_from(cfg, &r->set) < 0 || channel_new(r, &r->set, &r->ch) < 0) {
		if (r->sys_servers != NULL)
			ares_free_data(r->sys_servers);
		free(r);
		return NULL;
	}
	return r;
}

int
dns_resolver_set_config(struct dns_resolver *r, const struct config *cfg)
{
	struct dns_settings set;
	ares_channel ch;

	if (settings_from(cfg, &set) < 0)
		return -1;
	if (memcmp(&set, &r->set, sizeof(set)) == 0)
		return 0;
	if (channel_new(r, &set, &ch) < 0)
		return -1;
	ares_channel old = r->ch;
	r->ch = ch;
	r->set = set;
	ares_destroy(old);	/* its queries are sent again on ch */
	rearm(r);
	return 0;
}

void
dns_resolver_free(struct dns_resolver **rp)
{
	struct dns_resolver *r = *rp;
	struct dns_query *q;

	if (r == NULL)
		return;
	*rp = NULL;
	r->closing = 1;
	ares_destroy(r->ch);
	loop_timer_cancel(r->loop, &r->timer);
	loop_timer_cancel(r->loop, &r->ready_timer);
	while ((q = r->ready_head) != NULL) {
		ready_unlink(r, q);
		query_free(q);
	}
	if (r->sys_servers != NULL)
		ares_free_data(r->sys_servers);
	free(r);
}

/* ---- reverse names ---------------------------------------------------- */

int
dns_reverse_name(int family, const void *addr, char *out, size_t outlen)
{
	const uint8_t *a = addr;
	size_t o = 0;
	int n;

	if (family == AF_INET) {
		n = snprintf(out, outlen, "%u.%u.%u.%u.in-addr.arpa", a[3], a[2], a[1], a[0]);
		return n < 0 || (size_t)n >= outlen ? -1 : 0;
	}
	if (family != AF_INET6 || outlen < 64 + 9)
		return -1;
	static const char hex[] = "0123456789abcdef";
	for (int i = 15; i >= 0; i--) {
		out[o++] = hex[a[i] & 0xF];
		out[o++] = '.';
		out[o++] = hex[a[i] >> 4];
		out[o++] = '.';
	}
	memcpy(out + o, "ip6.arpa", 9);
	return 0;
}
