/*
 * server_rate.h - new connections per second, per client address and in
 * all (server_rate.c), for rates.client_connections and rates.connections
 * (smtpf's rate-throttle). In memory on each node, as Postfix's anvil:
 * a connection rate is about this node's sockets, cheap to count at
 * accept, and needs no shared store. Thread-safe. And the admission of a
 * client address, which checks them with limits.connections_per_ip.
 */
#ifndef POSTERN_SERVER_RATE_H
#define POSTERN_SERVER_RATE_H

#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>

#include "catalog.h"
#include "config.h"
#include "kv.h"
#include "server_ipcount.h"

#define CONN_RATE_SLOTS 4096	/* addresses remembered */
#define CONN_RATE_PROBE 8	/* slots looked at per address */

/* Connections in one second (sec) and in the one before it. */
struct conn_rate_slot {
	uint8_t addr[16];	/* IPv6, IPv4 mapped */
	uint64_t sec;		/* 0: free */
	unsigned cur, prev;
};

struct conn_rates {
	pthread_mutex_t lock;
	struct conn_rate_slot all;	/* every client together */
	struct conn_rate_slot slots[CONN_RATE_SLOTS];
};

enum conn_rate_verdict { CONN_RATE_OK, CONN_RATE_CLIENT, CONN_RATE_ALL };

void conn_rates_init(struct conn_rates *r);
void conn_rates_fini(struct conn_rates *r);
/* One new connection from ss at now_ms (a monotonic clock): refused when
 * the address's rate over the last second has reached limit, or the
 * node's has reached limit_all (0: no limit); counted only when taken.
 * *rate_out is the rate that was compared (the address's, or all). */
enum conn_rate_verdict conn_rates_take(struct conn_rates *r, const struct sockaddr_storage *ss,
				       unsigned limit, unsigned limit_all, uint64_t now_ms,
				       unsigned *rate_out);

/* Admits a new SMTP or POP3 session from peer (client: its text): for
 * SMTP (rated) outside server.trusted_networks, the connection rates;
 * then limits.connections_per_ip (per_ip: the limit, 0 none), a slot of
 * ips taken that the session's end releases. COND__COUNT when admitted;
 * else the refusal's condition, with its keys in kv (client, current or
 * rate, limit: 3 of them), nothing taken. */
enum cond_id server_admit(struct ip_counts *ips, struct conn_rates *rates,
			  const struct config *cfg, const struct sockaddr_storage *peer,
			  const char *client, int rated, unsigned per_ip, struct kv kv[3]);

#endif
