/*
 * dns.h - the one asynchronous DNS resolver: A, AAAA, MX, TXT and PTR
 * lookups on an event loop, with a TTL-honouring cache shared by every
 * loop's resolver.
 *
 * A resolver belongs to one loop thread (c-ares driven by that loop: no
 * threads of its own); every call on it, and every callback, happens on
 * that thread. The cache is the only shared part (one mutex). Answers
 * say clearly whether a name does not exist (permanent) or could not be
 * found out (temporary), so callers defer instead of bouncing.
 */
#ifndef POSTERN_DNS_H
#define POSTERN_DNS_H

#include <stddef.h>
#include <stdint.h>

#include "compat.h"

struct loop;
struct config;
struct config_load;
struct diag;

enum dns_type { DNS_T_A = 1, DNS_T_PTR = 12, DNS_T_MX = 15, DNS_T_TXT = 16, DNS_T_AAAA = 28 };

enum dns_status {
	DNS_OK,		/* records in the answer */
	DNS_NXDOMAIN,	/* the name does not exist: permanent */
	DNS_NODATA,	/* the name exists, no records of the type: permanent */
	DNS_TEMPFAIL,	/* could not find out (timeout, SERVFAIL, REFUSED, a
			 * malformed answer): temporary */
};

#define DNS_NAME_MAX 253		/* text form, no trailing dot */
#define DNS_ANSWER_MAX_RR 64		/* records kept per answer */
#define DNS_ANSWER_MAX_TXT 65536	/* TXT bytes kept per answer */
#define DNS_TTL_MAX 86400u		/* positive TTLs are capped at a day */
#define DNS_NEG_TTL_MAX 10800u		/* negative TTLs at 3 h (RFC 2308 5) */

struct dns_rr {
	uint32_t ttl;
	uint16_t pref;		/* MX preference */
	int family;		/* A: AF_INET, AAAA: AF_INET6 */
	uint8_t addr[16];	/* A / AAAA */
	char *name;		/* MX exchange, PTR target (no trailing dot, lower
				 * case; "" for the root: a null MX, RFC 7505) */
	char *txt;		/* TXT: the character-strings joined, NUL-terminated */
	size_t txt_len;
};

struct dns_answer {
	enum dns_status status;
	const char *err;	/* why, for TEMPFAIL (log text; static) */
	uint32_t ttl;		/* for the cache: the lowest record TTL, or the
				 * negative TTL (0: not cached) */
	int ad;			/* the AD bit */
	int truncated;		/* records past DNS_ANSWER_MAX_RR/_TXT dropped */
	size_t n;
	struct dns_rr *rr;	/* MX sorted by preference (stable) */
};

/* Frees what a parsed or copied answer owns (not ans itself). */
void dns_answer_fini(struct dns_answer *ans);
/* Deep copy; dst must be fini'ed by the caller. */
void dns_answer_copy(struct dns_answer *dst, const struct dns_answer *src);

/* "a", "aaaa", "mx", "txt", "ptr" (lower case) and back; -1 if unknown. */
const char *dns_type_name(enum dns_type type);
int dns_type_parse(const char *s, enum dns_type *out) WARN_UNUSED;
/* "ok", "nxdomain", "nodata", "tempfail". */
const char *dns_status_name(enum dns_status st);

struct dns_cache;
struct dns_resolver;
struct dns_query;

/* A cache of at most max_entries answers (0: one that keeps nothing),
 * least recently used evicted first; thread-safe. */
struct dns_cache *dns_cache_new(size_t max_entries);
void dns_cache_free(struct dns_cache **cp);
/* 1 and a copy in *out (TTLs lowered by the time spent in the cache) if
 * (name, type) is there and not expired, else 0. name is lower case. */
int dns_cache_get(struct dns_cache *c, const char *name, enum dns_type type,
		  struct dns_answer *out);
/* Keeps a copy of ans for ans->ttl seconds (nothing if 0 or TEMPFAIL). */
void dns_cache_put(struct dns_cache *c, const char *name, enum dns_type type,
		   const struct dns_answer *ans);
/* Entries now held (tests). */
size_t dns_cache_count(struct dns_cache *c);

/* One per loop thread; cfg gives dns.servers/timeout/attempts (copied).
 * Reads /etc/resolv.conf when dns.servers is empty: call it off the loop
 * thread (at start). cache may be NULL. NULL on failure. */
struct dns_resolver *dns_resolver_new(struct loop *loop, const struct config *cfg,
				      struct dns_cache *cache);
/* Reload, on the loop thread: a change of dns.* takes a new c-ares
 * channel built from the settings read at start (no file is read);
 * lookups in flight are sent again on it. 0, or -1 (the old settings
 * stay). */
int dns_resolver_set_config(struct dns_resolver *r, const struct config *cfg);
/* Queries still open get no callback. Not from inside a callback. */
void dns_resolver_free(struct dns_resolver **rp);

/* The answer arrives later, on the loop thread, never inside dns_query
 * itself (a cache hit is handed over on the next loop round); ans is
 * valid only during the callback. name may end in a dot; a name that is
 * not a valid domain name answers NXDOMAIN. Never NULL; the handle is
 * freed once the callback has run (or at dns_cancel). The callback may
 * start and cancel queries, not free the resolver. */
typedef void (*dns_fn)(void *arg, const struct dns_answer *ans);
struct dns_query *dns_query(struct dns_resolver *r, const char *name, enum dns_type type,
			    dns_fn fn, void *arg);
/* Before its callback ran: it never runs. */
void dns_cancel(struct dns_query *q);

/* The reverse name for an address (x.x.x.x.in-addr.arpa / ip6.arpa). 0,
 * or -1 if family is unknown or out is too small. */
int dns_reverse_name(int family, const void *addr, char *out, size_t outlen) WARN_UNUSED;

/* One item of dns.servers: "IP", "IP:port", "[IPv6]:port" (or a bare
 * IPv6 address). 0, or -1 if it is none of these. */
struct dns_server {
	int family;
	uint8_t addr[16];
	uint16_t port;		/* 53 when not given */
};
int dns_server_parse(const char *s, struct dns_server *out) WARN_UNUSED;
/* The config_attach_fn step that checks dns.servers at load (FILE:LINE
 * errors through config_option_diag). */
void dns_config_check(struct config *cfg, struct config_load *ld, struct diag *diags);

#endif
