/*
 * server_ipcount.h - sessions per client address (server_ipcount.c), for
 * limits.connections_per_ip. Thread-safe.
 */
#ifndef POSTERN_SERVER_IPCOUNT_H
#define POSTERN_SERVER_IPCOUNT_H

#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>

#define IP_BUCKETS 4096

struct ip_count {
	struct ip_count *next;
	uint8_t addr[16];
	unsigned count;
};

struct ip_counts {
	pthread_mutex_t lock;
	struct ip_count *table[IP_BUCKETS];
};

void ip_counts_init(struct ip_counts *ic);
void ip_counts_fini(struct ip_counts *ic);
/* Takes one slot for the address unless it already holds limit (0 = no
 * limit). Returns the count before, or -1 - count when refused. */
long ip_counts_take(struct ip_counts *ic, const struct sockaddr_storage *ss, unsigned limit);
void ip_counts_release(struct ip_counts *ic, const struct sockaddr_storage *ss);

#endif
