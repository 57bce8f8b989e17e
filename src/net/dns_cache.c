/*
 * dns_cache.c - the answer cache shared by every loop's resolver: at most
 * max entries, each kept for its answer's TTL (positive or negative),
 * the least recently used evicted first; one mutex.
 *
 * Entries live in one array (grown up to max) with a doubly linked LRU
 * list through indices. The index is the project's hash table (core/
 * hash.h), which has no removal: an evicted entry's slot is reused for
 * its new key and the stale index slot no longer matches (the eq check
 * compares keys); when the table fills with stale slots it is rebuilt
 * from the live entries, which costs O(max) once per max inserts.
 * Times are loop_clock_ms() (pinned by tests).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "dns.h"
#include "hash.h"
#include "loop.h"

#define NIL UINT32_MAX

struct centry {
	char *name;		/* owned; NULL: free */
	enum dns_type type;
	uint64_t stored_ms;
	uint64_t expires_ms;
	struct dns_answer ans;	/* owned copy */
	uint32_t prev, next;	/* LRU list; head = most recent */
};

struct ckey {
	const char *name;
	enum dns_type type;
};

struct dns_cache {
	pthread_mutex_t mu;
	size_t max;
	struct centry *e;
	size_t n;		/* entries used in e (live or free) */
	size_t cap;		/* entries allocated in e */
	uint32_t head, tail;
	struct hash idx;
};

static int
centry_eq(const void *ctx, uint32_t val, const void *key)
{
	const struct dns_cache *c = ctx;
	const struct ckey *k = key;
	const struct centry *e = &c->e[val];

	return e->name != NULL && e->type == k->type && strcmp(e->name, k->name) == 0;
}

static uint64_t
ckey_hash(const char *name, enum dns_type type)
{
	uint8_t t = (uint8_t)type;
	uint64_t h = hash_start();

	h = hash_feed(h, &t, 1, 0);
	h = hash_feed(h, name, strlen(name), 0);
	return hash_end(h);
}

struct dns_cache *
dns_cache_new(size_t max_entries)
{
	struct dns_cache *c = xcalloc(1, sizeof(*c));

	if (max_entries > UINT32_MAX / 4)
		max_entries = UINT32_MAX / 4;
	c->max = max_entries;
	c->head = c->tail = NIL;
	pthread_mutex_init(&c->mu, NULL);
	/* twice the entries: room for stale slots between rebuilds */
	hash_init(&c->idx, max_entries * 2 + 1, centry_eq);
	return c;
}

void
dns_cache_free(struct dns_cache **cp)
{
	struct dns_cache *c = *cp;

	if (c == NULL)
		return;
	*cp = NULL;
	for (size_t i = 0; i < c->n; i++) {
		free(c->e[i].name);
		dns_answer_fini(&c->e[i].ans);
	}
	free(c->e);
	hash_fini(&c->idx);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

static void
lru_unlink(struct dns_cache *c, uint32_t i)
{
	struct centry *e = &c->e[i];

	if (e->prev != NIL)
		c->e[e->prev].next = e->next;
	else
		c->head = e->next;
	if (e->next != NIL)
		c->e[e->next].prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NIL;
}

static void
lru_push_front(struct dns_cache *c, uint32_t i)
{
	struct centry *e = &c->e[i];

	e->prev = NIL;
	e->next = c->head;
	if (c->head != NIL)
		c->e[c->head].prev = i;
	c->head = i;
	if (c->tail == NIL)
		c->tail = i;
}

static int
find(struct dns_cache *c, const char *name, enum dns_type type, uint32_t *i)
{
	struct ckey k = { name, type };

	return hash_find(&c->idx, ckey_hash(name, type), c, &k, i);
}

int
dns_cache_get(struct dns_cache *c, const char *name, enum dns_type type,
	      struct dns_answer *out)
{
	uint64_t now = loop_clock_ms();
	uint32_t i;
	int hit = 0;

	if (c == NULL || c->max == 0)
		return 0;
	pthread_mutex_lock(&c->mu);
	if (find(c, name, type, &i) && now < c->e[i].expires_ms) {
		struct centry *e = &c->e[i];
		uint32_t spent = (uint32_t)((now - e->stored_ms) / 1000u);

		dns_answer_copy(out, &e->ans);
		out->ttl = out->ttl > spent ? out->ttl - spent : 0;
		for (size_t r = 0; r < out->n; r++)
			out->rr[r].ttl = out->rr[r].ttl > spent ? out->rr[r].ttl - spent : 0;
		lru_unlink(c, i);
		lru_push_front(c, i);
		hit = 1;
	}
	pthread_mutex_unlock(&c->mu);
	return hit;
}

/* Rebuilds the index from the live entries (the table is full of stale
 * slots). */
static void
reindex(struct dns_cache *c)
{
	hash_clear(&c->idx);
	for (size_t i = 0; i < c->n; i++) {
		if (c->e[i].name == NULL)
			continue;
		struct ckey k = { c->e[i].name, c->e[i].type };
		if (hash_insert(&c->idx, ckey_hash(k.name, k.type), c, &k, (uint32_t)i, NULL) < 0)
			PANIC("dns cache index smaller than its entries");
	}
}

/* An entry for a new key: a never-used one while there is room, else the
 * least recently used. */
static uint32_t
take_entry(struct dns_cache *c)
{
	uint32_t i;

	if (c->n < c->max) {
		if (c->n == c->cap) {
			c->cap = c->cap == 0 ? 16 : c->cap * 2;
			if (c->cap > c->max)
				c->cap = c->max;
			c->e = xrealloc(c->e, c->cap * sizeof(*c->e));
		}
		i = (uint32_t)c->n++;
		memset(&c->e[i], 0, sizeof(c->e[i]));
		c->e[i].prev = c->e[i].next = NIL;
		return i;
	}
	i = c->tail;
	lru_unlink(c, i);
	free(c->e[i].name);
	c->e[i].name = NULL;
	dns_answer_fini(&c->e[i].ans);
	return i;
}

void
dns_cache_put(struct dns_cache *c, const char *name, enum dns_type type,
	      const struct dns_answer *ans)
{
	uint64_t now = loop_clock_ms();
	uint32_t i;

	if (c == NULL || c->max == 0 || ans->status == DNS_TEMPFAIL || ans->ttl == 0)
		return;
	pthread_mutex_lock(&c->mu);
	if (find(c, name, type, &i)) {
		dns_answer_fini(&c->e[i].ans);
		lru_unlink(c, i);
	} else {
		i = take_entry(c);
		c->e[i].name = xstrdup(name);
		c->e[i].type = type;
		struct ckey k = { c->e[i].name, type };
		uint64_t h = ckey_hash(name, type);
		int r = hash_insert(&c->idx, h, c, &k, i, NULL);
		if (r < 0) {
			reindex(c);	/* the new entry is live: indexed now */
		}
	}
	struct centry *e = &c->e[i];
	dns_answer_copy(&e->ans, ans);
	e->stored_ms = now;
	e->expires_ms = now + (uint64_t)ans->ttl * 1000u;
	lru_push_front(c, i);
	pthread_mutex_unlock(&c->mu);
}

size_t
dns_cache_count(struct dns_cache *c)
{
	size_t live = 0;

	if (c == NULL)
		return 0;
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < c->n; i++)
		live += c->e[i].name != NULL;
	pthread_mutex_unlock(&c->mu);
	return live;
}
