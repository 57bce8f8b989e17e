/*
 * server_ipcount.c - how many sessions each client address holds, for
 * limits.connections_per_ip (see server_ipcount.h): a small chained table
 * under one mutex, touched once at accept and once at a session's end.
 */
#include "server_ipcount.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cidr.h"

void
ip_counts_init(struct ip_counts *ic)
{
	memset(ic, 0, sizeof(*ic));
	pthread_mutex_init(&ic->lock, NULL);
}

void
ip_counts_fini(struct ip_counts *ic)
{
	for (size_t b = 0; b < IP_BUCKETS; b++) {
		while (ic->table[b]) {
			struct ip_count *e = ic->table[b];

			ic->table[b] = e->next;
			free(e);
		}
	}
	pthread_mutex_destroy(&ic->lock);
}

/* The address as 16 octets (zeros when not IP: one shared entry). */
static void
ip_key(const struct sockaddr_storage *ss, uint8_t out[16])
{
	if (sockaddr_key16(ss, out) < 0)
		memset(out, 0, 16);
}

static size_t
ip_hash(const uint8_t k[16])
{
	uint64_t h = 1469598103934665603ull;

	for (int i = 0; i < 16; i++)
		h = (h ^ k[i]) * 1099511628211ull;
	return (size_t)(h % IP_BUCKETS);
}

/* Takes one slot for the address unless it already holds limit (0 = no
 * limit). Returns the count before, or -1 when refused. */
long
ip_counts_take(struct ip_counts *ic, const struct sockaddr_storage *ss, unsigned limit)
{
	uint8_t k[16];
	struct ip_count *e;
	long before;

	ip_key(ss, k);
	size_t b = ip_hash(k);
	pthread_mutex_lock(&ic->lock);
	for (e = ic->table[b]; e != NULL; e = e->next)
		if (memcmp(e->addr, k, 16) == 0)
			break;
	before = e ? (long)e->count : 0;
	if (limit != 0 && before >= (long)limit) {
		pthread_mutex_unlock(&ic->lock);
		return -1 - before;
	}
	if (e == NULL) {
		e = xcalloc(1, sizeof(*e));
		memcpy(e->addr, k, 16);
		e->next = ic->table[b];
		ic->table[b] = e;
	}
	e->count++;
	pthread_mutex_unlock(&ic->lock);
	return before;
}

void
ip_counts_release(struct ip_counts *ic, const struct sockaddr_storage *ss)
{
	uint8_t k[16];
	struct ip_count **pp;

	ip_key(ss, k);
	size_t b = ip_hash(k);
	pthread_mutex_lock(&ic->lock);
	for (pp = &ic->table[b]; *pp != NULL; pp = &(*pp)->next) {
		if (memcmp((*pp)->addr, k, 16) == 0) {
			if (--(*pp)->count == 0) {
				struct ip_count *dead = *pp;
				*pp = dead->next;
				free(dead);
			}
			break;
		}
	}
	pthread_mutex_unlock(&ic->lock);
}
