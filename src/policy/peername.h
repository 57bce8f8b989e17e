/*
 * peername.h - the client's verified name (forward-confirmed reverse DNS,
 * FCrDNS), found once per session and shared by everything that needs it:
 * the Received field, SESSION-END, the client_ptr check, the access map's
 * client-name keys.
 *
 * The session starts the lookup at connect (smtp.peername_lookup) on its
 * loop's resolver: the PTR of the client's address, then the A or AAAA of
 * the first PTR name, which must include the address. Nothing waits for
 * it at connect: a user that needs the result asks peername_need(), which
 * starts the lookup if nobody did (smtp.peername_lookup = no) and calls
 * back when it is done, at once if it is. The whole lookup is bounded by
 * smtp.peername_timeout; past it the result is a temporary failure.
 *
 * Threads: the loop thread of the session only.
 */
#ifndef POSTERN_PEERNAME_H
#define POSTERN_PEERNAME_H

#include <stddef.h>
#include <stdint.h>

#include "dns.h"
#include "loop.h"

struct sockaddr_storage;

enum peername_status {
	PEERNAME_OFF,		/* not started (smtp.peername_lookup = no, nobody asked) */
	PEERNAME_PENDING,	/* started, not done */
	PEERNAME_VERIFIED,	/* name holds the forward-confirmed name */
	PEERNAME_MISSING,	/* no PTR record (or no usable one) */
	PEERNAME_MISMATCH,	/* the PTR name's A/AAAA do not include the address */
	PEERNAME_TEMPFAIL,	/* a lookup failed temporarily, or the bound passed */
};

/* A caller waiting for the result; the caller owns it. */
struct peername_wait {
	struct peername_wait *next;
	void (*fn)(void *arg);
	void *arg;
};

struct peername {
	enum peername_status status;
	/* set by peername_init */
	struct loop *loop;
	struct dns_resolver *dns;
	const struct sockaddr_storage *peer;	/* read when the lookup starts */
	uint64_t timeout_ms;
	const char *sid;	/* for the log line, borrowed */
	const char *client;	/* the address as text, borrowed */
	/* the lookup */
	struct dns_query *dq;	/* pending, or NULL */
	struct loop_timer timer;
	int family;		/* AF_INET (v4-mapped included) or AF_INET6 */
	uint8_t addr[16];
	char ptr[DNS_NAME_MAX + 1];	/* the first PTR name, verified or not */
	char query[DNS_NAME_MAX + 2];	/* the name asked last */
	const char *err;	/* why, for TEMPFAIL (static text) */
	uint64_t started_ms;
	struct peername_wait *waiters;
};

/* Nothing started; peer may change (PROXY) until the lookup starts. */
void peername_init(struct peername *p, struct loop *loop, struct dns_resolver *dns,
		   const struct sockaddr_storage *peer, uint64_t timeout_ms, const char *sid,
		   const char *client);
/* Starts the lookup unless it was started already. Without a resolver or
 * for an address family that has no reverse name the result is MISSING
 * at once. Never calls back inside. */
void peername_start(struct peername *p);
/* 1 when the result is known (p->status); else starts the lookup if
 * needed, queues w, and fn(arg) runs once later, on the loop thread, when
 * the result is known. */
int peername_need(struct peername *p, struct peername_wait *w, void (*fn)(void *arg),
		  void *arg);
/* w no longer waits (no-op if it does not). */
void peername_unwait(struct peername *p, struct peername_wait *w);
/* The lookup ends without a result (the session ends): no callback runs
 * after this. */
void peername_stop(struct peername *p);

/* The verified name, or "unknown" (Postfix's word). */
const char *peername_name(const struct peername *p);
/* The verified name, or NULL. */
const char *peername_verified(const struct peername *p);
/* "off", "pending", "verified", "missing", "mismatch", "tempfail". */
const char *peername_status_name(enum peername_status st);

/* The address of peer as a family (AF_INET for v4-mapped IPv6) and its
 * octets (4 or 16); -1 for a family other than IPv4/IPv6. */
int peername_addr_of(const struct sockaddr_storage *peer, int *family, uint8_t addr[16]) WARN_UNUSED;
/* 1 if ans (A or AAAA) holds the address (family, addr). */
int peername_answer_has(const struct dns_answer *ans, int family, const uint8_t addr[16]);

#endif
