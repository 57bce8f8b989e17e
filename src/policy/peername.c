/*
 * peername.c - the client's verified name, looked up once per session
 * (see peername.h): PTR, then the first PTR name's A or AAAA, which must
 * include the client's address; bounded by one timer; the waiters called
 * back when it is done; SMTP-PEERNAME-TEMPFAIL logged for a failure.
 */
#include "peername.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "catalog.h"
#include "log.h"

int
peername_addr_of(const struct sockaddr_storage *peer, int *family, uint8_t addr[16])
{
	if (peer == NULL)
		return -1;
	if (peer->ss_family == AF_INET) {
		*family = AF_INET;
		memcpy(addr, &((const struct sockaddr_in *)(const void *)peer)->sin_addr, 4);
		return 0;
	}
	if (peer->ss_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)(const void *)peer)->sin6_addr;

		*family = AF_INET6;
		memcpy(addr, a6, 16);
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			*family = AF_INET;
			memmove(addr, &a6->s6_addr[12], 4);
		}
		return 0;
	}
	return -1;
}

int
peername_answer_has(const struct dns_answer *ans, int family, const uint8_t addr[16])
{
	size_t alen = family == AF_INET ? 4 : 16;

	for (size_t i = 0; ans->status == DNS_OK && i < ans->n; i++)
		if (ans->rr[i].family == family && memcmp(ans->rr[i].addr, addr, alen) == 0)
			return 1;
	return 0;
}

const char *
peername_status_name(enum peername_status st)
{
	switch (st) {
	case PEERNAME_OFF: return "off";
	case PEERNAME_PENDING: return "pending";
	case PEERNAME_VERIFIED: return "verified";
	case PEERNAME_MISSING: return "missing";
	case PEERNAME_MISMATCH: return "mismatch";
	case PEERNAME_TEMPFAIL: return "tempfail";
	}
	return "off";
}

const char *
peername_verified(const struct peername *p)
{
	return p->status == PEERNAME_VERIFIED ? p->ptr : NULL;
}

const char *
peername_name(const struct peername *p)
{
	return p->status == PEERNAME_VERIFIED ? p->ptr : "unknown";
}

static void peername_timeout(struct loop *loop, void *arg);

void
peername_init(struct peername *p, struct loop *loop, struct dns_resolver *dns,
	      const struct sockaddr_storage *peer, uint64_t timeout_ms, const char *sid,
	      const char *client)
{
	memset(p, 0, sizeof(*p));
	p->status = PEERNAME_OFF;
	p->loop = loop;
	p->dns = dns;
	p->peer = peer;
	p->timeout_ms = timeout_ms;
	p->sid = sid;
	p->client = client;
	loop_timer_init(&p->timer, peername_timeout, p);
}

/* The result is known: the waiters are called, one at a time from the
 * head (a callback may unwait another waiter). */
static void
peername_done(struct peername *p, enum peername_status st)
{
	p->status = st;
	if (p->loop != NULL)
		loop_timer_cancel(p->loop, &p->timer);
	if (st == PEERNAME_TEMPFAIL) {
		struct log_ctx ctx = { .sid = p->sid };
		struct kv kv[] = { KV("client", p->client), KV("query", p->query),
				   KV("error", p->err != NULL ? p->err : "DNS failure"),
				   KVU("elapsed_ms", loop_clock_ms() - p->started_ms) };

		catalog_log(COND_SMTP_PEERNAME_TEMPFAIL, &ctx, kv, ARRAY_LEN(kv));
	}
	while (p->waiters != NULL) {
		struct peername_wait *w = p->waiters;

		p->waiters = w->next;
		w->next = NULL;
		w->fn(w->arg);
	}
}

static void
peername_timeout(struct loop *loop, void *arg)
{
	struct peername *p = arg;

	(void)loop;
	if (p->dq != NULL) {
		dns_cancel(p->dq);
		p->dq = NULL;
	}
	p->err = "timeout (smtp.peername_timeout)";
	peername_done(p, PEERNAME_TEMPFAIL);
}

/* The answer to the PTR (no name yet) or to the PTR name's A/AAAA. */
static void
peername_on_answer(void *arg, const struct dns_answer *ans)
{
	struct peername *p = arg;
	int forward = p->ptr[0] != '\0';

	p->dq = NULL;
	if (ans->status == DNS_TEMPFAIL) {
		p->err = ans->err;
		peername_done(p, PEERNAME_TEMPFAIL);
		return;
	}
	if (forward) {
		peername_done(p, peername_answer_has(ans, p->family, p->addr) ? PEERNAME_VERIFIED
									       : PEERNAME_MISMATCH);
		return;
	}
	for (size_t i = 0; ans->status == DNS_OK && i < ans->n; i++) {
		if (ans->rr[i].name != NULL && ans->rr[i].name[0] != '\0' &&
		    strlen(ans->rr[i].name) < sizeof(p->ptr)) {
			snprintf(p->ptr, sizeof(p->ptr), "%s", ans->rr[i].name);
			break;
		}
	}
	if (p->ptr[0] == '\0') {
		peername_done(p, PEERNAME_MISSING);
		return;
	}
	snprintf(p->query, sizeof(p->query), "%s", p->ptr);
	p->dq = dns_query(p->dns, p->ptr, p->family == AF_INET ? DNS_T_A : DNS_T_AAAA,
			  peername_on_answer, p);
}

void
peername_start(struct peername *p)
{
	if (p->status != PEERNAME_OFF)
		return;
	p->started_ms = loop_clock_ms();
	if (p->dns == NULL || p->loop == NULL ||
	    peername_addr_of(p->peer, &p->family, p->addr) < 0 ||
	    dns_reverse_name(p->family, p->addr, p->query, sizeof(p->query)) < 0) {
		p->status = PEERNAME_MISSING;
		return;
	}
	p->status = PEERNAME_PENDING;
	loop_timer_set(p->loop, &p->timer, p->timeout_ms);
	/* the answer comes later, never inside dns_query */
	p->dq = dns_query(p->dns, p->query, DNS_T_PTR, peername_on_answer, p);
}

int
peername_need(struct peername *p, struct peername_wait *w, void (*fn)(void *arg), void *arg)
{
	peername_start(p);
	if (p->status != PEERNAME_PENDING)
		return 1;
	struct peername_wait **pp = &p->waiters;

	while (*pp != NULL)
		pp = &(*pp)->next;
	w->fn = fn;
	w->arg = arg;
	w->next = NULL;
	*pp = w;
	return 0;
}

void
peername_unwait(struct peername *p, struct peername_wait *w)
{
	for (struct peername_wait **pp = &p->waiters; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			w->next = NULL;
			return;
		}
	}
}

void
peername_stop(struct peername *p)
{
	if (p->dq != NULL) {
		dns_cancel(p->dq);
		p->dq = NULL;
	}
	if (p->loop != NULL)
		loop_timer_cancel(p->loop, &p->timer);
	p->waiters = NULL;
	if (p->status == PEERNAME_PENDING)
		p->err = "session ended";
}
