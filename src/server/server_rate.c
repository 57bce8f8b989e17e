/*
 * server_rate.c - new connections per second per client address and in
 * all (see server_rate.h): a bounded table of addresses under one mutex,
 * touched once per connection. The rate is a sliding second: the
 * connections of this second plus those of the previous one weighted by
 * the part of it still inside the last 1000 ms (rounded up). A full
 * table forgets the address seen longest ago among those probed. And
 * server_admit, the per-address admission of a new session.
 */
#include "server_rate.h"

#include <string.h>

#include "cidr.h"
#include "hash.h"
#include "loop.h"

void
conn_rates_init(struct conn_rates *r)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
}

void
conn_rates_fini(struct conn_rates *r)
{
	pthread_mutex_destroy(&r->lock);
}

/* Brings slot e to second sec; returns its rate over the last second. */
static unsigned
rate_now(struct conn_rate_slot *e, uint64_t sec, uint64_t ms_in)
{
	if (e->sec != sec) {
		e->prev = e->sec + 1 == sec ? e->cur : 0;
		e->cur = 0;
		e->sec = sec;
	}
	return e->cur + (unsigned)(((uint64_t)e->prev * (1000 - ms_in) + 999) / 1000);
}

/* The slot of addr: its own, a free or stale one, or the one seen
 * longest ago among those probed (then cleared). */
static struct conn_rate_slot *
rate_slot(struct conn_rates *r, const uint8_t addr[16], uint64_t sec)
{
	size_t h = (size_t)hash_bytes(addr, 16);
	struct conn_rate_slot *stale = NULL, *oldest = NULL, *best;

	for (size_t i = 0; i < CONN_RATE_PROBE; i++) {
		struct conn_rate_slot *e = &r->slots[(h + i) % CONN_RATE_SLOTS];

		if (e->sec != 0 && memcmp(e->addr, addr, 16) == 0)
			return e;
		if (e->sec + 1 < sec) {
			if (stale == NULL)
				stale = e;	/* free, or nothing in the last second */
		} else if (oldest == NULL || e->sec < oldest->sec) {
			oldest = e;
		}
	}
	best = stale != NULL ? stale : oldest;
	memset(best, 0, sizeof(*best));
	memcpy(best->addr, addr, 16);
	return best;
}

enum conn_rate_verdict
conn_rates_take(struct conn_rates *r, const struct sockaddr_storage *ss, unsigned limit,
		unsigned limit_all, uint64_t now_ms, unsigned *rate_out)
{
	uint8_t addr[16];
	uint64_t sec = now_ms / 1000 + 1, ms_in = now_ms % 1000;	/* sec 0 is "free" */
	struct conn_rate_slot *e = NULL;
	unsigned rate;

	*rate_out = 0;
	if (limit == 0 && limit_all == 0)
		return CONN_RATE_OK;
	pthread_mutex_lock(&r->lock);
	if (limit_all != 0) {
		rate = rate_now(&r->all, sec, ms_in);
		if (rate >= limit_all) {
			pthread_mutex_unlock(&r->lock);
			*rate_out = rate;
			return CONN_RATE_ALL;
		}
	}
	if (limit != 0 && sockaddr_key16(ss, addr) == 0) {
		e = rate_slot(r, addr, sec);
		rate = rate_now(e, sec, ms_in);
		if (rate >= limit) {
			pthread_mutex_unlock(&r->lock);
			*rate_out = rate;
			return CONN_RATE_CLIENT;
		}
		e->cur++;
	}
	if (limit_all != 0)
		r->all.cur++;
	pthread_mutex_unlock(&r->lock);
	return CONN_RATE_OK;
}

enum cond_id
server_admit(struct ip_counts *ips, struct conn_rates *rates, const struct config *cfg,
	     const struct sockaddr_storage *peer, const char *client, int rated, unsigned per_ip,
	     struct kv kv[3])
{
	long before;

	if (rated && !cidr_list_match(&cfg->server_trusted_networks, (const struct sockaddr *)peer)) {
		unsigned rate;
		enum conn_rate_verdict v = conn_rates_take(rates, peer, cfg->rates_client_connections,
							   cfg->rates_connections, loop_clock_ms(),
							   &rate);

		if (v != CONN_RATE_OK) {
			kv[0] = KV("client", client);
			kv[1] = KVU("rate", rate);
			kv[2] = KVU("limit", v == CONN_RATE_ALL ? cfg->rates_connections :
								    cfg->rates_client_connections);
			return v == CONN_RATE_ALL ? COND_POLICY_RATE_CONNECTIONS_ALL :
						    COND_POLICY_RATE_CONNECTIONS;
		}
	}
	before = ip_counts_take(ips, peer, per_ip);
	if (before < 0) {
		kv[0] = KV("client", client);
		kv[1] = KVU("current", (unsigned long)(-1 - before));
		kv[2] = KVU("limit", per_ip);
		return COND_POLICY_CONCURRENCY_LIMIT;
	}
	return COND__COUNT;
}
