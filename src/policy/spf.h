/*
 * spf.h - the SPF evaluator (RFC 7208 4, 5, 6): check_host() for one
 * identity, asynchronous over the loop's resolver (net/dns.h), with the
 * 10-lookup and 2-void-lookup limits, include/redirect nesting, the p
 * macro and the exp explanation. Records and macros: spf_record.h.
 *
 * Threads: on the loop thread of the resolver; the callback runs there.
 */
#ifndef POSTERN_SPF_H
#define POSTERN_SPF_H

#include <stddef.h>
#include <stdint.h>

#include "spf_record.h"

struct dns_resolver;

#define SPF_LOOKUPS_MAX 10	/* RFC 7208 4.6.4 */
#define SPF_VOID_MAX 2
#define SPF_MX_MAX 10		/* MX names looked at; more: permerror */
#define SPF_PTR_MAX 10		/* PTR names looked at */
#define SPF_SENDER_MAX 512
#define SPF_EXPLAIN_MAX 512

struct spf_request {
	int family;		/* AF_INET / AF_INET6 (v4-mapped: give AF_INET) */
	uint8_t addr[16];
	const char *sender;	/* MAIL FROM mailbox, "" for <> */
	const char *helo;	/* HELO/EHLO name, "" if none */
	int helo_identity;	/* check HELO (RFC 7208 2.3) instead of MAIL FROM */
	const char *receiver;	/* r macro: our host name */
};

struct spf_outcome {
	enum spf_result result;
	const char *identity;		/* "mailfrom" or "helo" */
	char sender[SPF_SENDER_MAX];	/* the <sender> checked */
	char domain[256];		/* its domain */
	char reason[128];		/* the mechanism, or the error */
	char explanation[SPF_EXPLAIN_MAX];	/* exp= text for fail, or "" */
};

typedef void (*spf_done_fn)(void *arg, const struct spf_outcome *o);

struct spf_eval;

/* Starts check_host() for req. done runs once, on the loop thread; when
 * the result needs no DNS (an invalid domain: none) it runs before this
 * returns and NULL is returned. Otherwise the handle, valid until done
 * ran or spf_cancel. */
struct spf_eval *spf_start(struct dns_resolver *r, const struct spf_request *req,
			   spf_done_fn done, void *arg);
/* Before done ran: it never runs; queries are cancelled. */
void spf_cancel(struct spf_eval *e);

#endif
