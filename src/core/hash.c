/*
 * hash.c - the one hash table (see hash.h): linear probing over slots of
 * (32-bit hash, value + 1), doubled when half full; a seeded hash.
 */
#include "hash.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "buf.h"

static uint64_t hash_seed;
static pthread_once_t hash_seed_once = PTHREAD_ONCE_INIT;

static void
hash_seed_init(void)
{
	uint64_t s;

	if (getrandom(&s, sizeof(s), 0) != (ssize_t)sizeof(s)) {
		struct timespec ts;
		(void)clock_gettime(CLOCK_MONOTONIC, &ts);
		s = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)ts.tv_sec;
	}
	hash_seed = s | 1;
}

uint64_t
hash_start(void)
{
	(void)pthread_once(&hash_seed_once, hash_seed_init);
	return 1469598103934665603ull ^ hash_seed;
}

/* FNV-1a steps over a seeded state, each byte also rotated in, so the
 * state after a prefix depends on the secret seed in a non-linear way. */
uint64_t
hash_feed(uint64_t h, const void *p, size_t n, int fold_case)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		unsigned c = b[i];
		if (fold_case && c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		h = (h ^ c) * 1099511628211ull;
		h ^= h >> 29;
	}
	return h;
}

/* The murmur3 finaliser, so every output bit depends on every state bit. */
uint64_t
hash_end(uint64_t h)
{
	h ^= hash_seed;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

uint64_t
hash_bytes(const void *p, size_t n)
{
	return hash_end(hash_feed(hash_start(), p, n, 0));
}

void
hash_init(struct hash *t, size_t max, hash_eq_fn eq)
{
	t->slots = NULL;
	t->nslots = 0;
	t->n = 0;
	t->max = max < HASH_MAX_ENTRIES ? max : HASH_MAX_ENTRIES;
	t->eq = eq;
}

void
hash_fini(struct hash *t)
{
	free(t->slots);
	t->slots = NULL;
	t->nslots = 0;
	t->n = 0;
}

void
hash_clear(struct hash *t)
{
	if (t->slots != NULL)
		memset(t->slots, 0, t->nslots * sizeof(*t->slots));
	t->n = 0;
}

/* The slot holding key, or the empty slot where it would go. The table
 * is never more than half full, so the probe ends. */
static size_t
slot_of(const struct hash *t, uint32_t h32, const void *ctx, const void *key)
{
	size_t mask = t->nslots - 1;

	for (size_t i = h32 & mask;; i = (i + 1) & mask) {
		const struct hash_slot *s = &t->slots[i];
		if (s->val1 == 0)
			return i;
		if (s->h == h32 && t->eq(ctx, s->val1 - 1, key))
			return i;
	}
}

static void
grow(struct hash *t)
{
	size_t n = t->nslots ? t->nslots * 2 : 16;
	struct hash_slot *old = t->slots;
	size_t nold = t->nslots;

	t->slots = xcalloc(n, sizeof(*t->slots));
	t->nslots = n;
	for (size_t k = 0; k < nold; k++) {
		if (old[k].val1 == 0)
			continue;
		size_t i = old[k].h & (n - 1);
		while (t->slots[i].val1 != 0)
			i = (i + 1) & (n - 1);
		t->slots[i] = old[k];
	}
	free(old);
}

int
hash_find(const struct hash *t, uint64_t h, const void *ctx, const void *key, uint32_t *val)
{
	if (t->n == 0)
		return 0;
	size_t i = slot_of(t, (uint32_t)h, ctx, key);
	if (t->slots[i].val1 == 0)
		return 0;
	*val = t->slots[i].val1 - 1;
	return 1;
}

int
hash_insert(struct hash *t, uint64_t h, const void *ctx, const void *key, uint32_t val,
	    uint32_t *existing)
{
	uint32_t h32 = (uint32_t)h;

	if (val == UINT32_MAX)
		return -1;
	if (t->n > 0) {
		size_t i = slot_of(t, h32, ctx, key);
		if (t->slots[i].val1 != 0) {
			if (existing != NULL)
				*existing = t->slots[i].val1 - 1;
			return 1;
		}
	}
	if (t->n >= t->max)
		return -1;
	if ((t->n + 1) * 2 > t->nslots)
		grow(t);
	size_t i = slot_of(t, h32, ctx, key);
	t->slots[i].h = h32;
	t->slots[i].val1 = val + 1;
	t->n++;
	return 0;
}

int
hash_remove(struct hash *t, uint64_t h, const void *ctx, const void *key, uint32_t *val)
{
	if (t->n == 0)
		return 0;
	size_t mask = t->nslots - 1, i = slot_of(t, (uint32_t)h, ctx, key);
	if (t->slots[i].val1 == 0)
		return 0;
	if (val != NULL)
		*val = t->slots[i].val1 - 1;
	/* Backward shift: every later entry of the run whose home slot is
	 * not between the hole and itself (cyclically) moves into the hole,
	 * so no probe for it meets an empty slot before reaching it. */
	for (size_t j = (i + 1) & mask; t->slots[j].val1 != 0; j = (j + 1) & mask) {
		size_t home = t->slots[j].h & mask;

		if (((j - home) & mask) >= ((j - i) & mask)) {
			t->slots[i] = t->slots[j];
			i = j;
		}
	}
	t->slots[i].h = 0;
	t->slots[i].val1 = 0;
	t->n--;
	return 1;
}
