/*
 * hash.h - the one hash table: an open-addressing index from byte keys to
 * 32-bit values (an entry number in the caller's array).
 *
 * The keys live with the caller: the table keeps, per slot, 32 bits of the
 * key's hash and the value, and asks the caller's eq function whether the
 * entry behind a value has the key looked for. So a table costs 8 bytes per
 * slot whatever the keys, and growing it never looks at a key. hash_remove
 * takes one entry out by backward-shift deletion (no tombstones), so a
 * long-lived index (the delivery queue's queue IDs) stays as short to probe
 * as a fresh one.
 *
 * Hashes come from hash_start/hash_feed/hash_end (or hash_bytes): a
 * per-process random seed, so a client cannot choose keys that collide.
 * hash_feed can fold ASCII case, for keys matched case-insensitively.
 *
 * Bounds: at most max entries (insert past it fails with -1), at most
 * 2^31; the slot count is a power of two, at least twice the entries.
 */
#ifndef POSTERN_HASH_H
#define POSTERN_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "compat.h"

#define HASH_MAX_ENTRIES ((size_t)1 << 31)

/* 1 if the caller's entry val has key. */
typedef int (*hash_eq_fn)(const void *ctx, uint32_t val, const void *key);

struct hash_slot {
	uint32_t h;	/* low 32 bits of the key's hash */
	uint32_t val1;	/* value + 1; 0 = empty */
};

struct hash {
	struct hash_slot *slots;	/* owned; NULL until the first insert */
	size_t nslots;
	size_t n;
	size_t max;
	hash_eq_fn eq;
};

void hash_init(struct hash *t, size_t max, hash_eq_fn eq);
void hash_fini(struct hash *t);
/* Drops every entry, keeps the memory. */
void hash_clear(struct hash *t);

uint64_t hash_start(void);
uint64_t hash_feed(uint64_t h, const void *p, size_t n, int fold_case);
uint64_t hash_end(uint64_t h);
uint64_t hash_bytes(const void *p, size_t n);

/* 1 and *val if an entry with key (hash h) is there, else 0. */
int hash_find(const struct hash *t, uint64_t h, const void *ctx, const void *key,
	      uint32_t *val);
/* Adds val under key unless the key is there: 0 added, 1 already there
 * (*existing set if not NULL), -1 the table is full (max). */
int hash_insert(struct hash *t, uint64_t h, const void *ctx, const void *key, uint32_t val,
		uint32_t *existing) WARN_UNUSED;
/* Removes the entry with key (hash h): 1 and *val (if not NULL) when it
 * was there, else 0. Entries after it in its probe run move back, so
 * the caller's values stay valid; the table never shrinks. */
int hash_remove(struct hash *t, uint64_t h, const void *ctx, const void *key, uint32_t *val);

#endif
