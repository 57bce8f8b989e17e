/*
 * kv.h - the key/value state store: short-lived shared state with TTLs
 * (AUTH failure counters, later greylist triplets, rate counters, seen
 * Message-IDs). ARCHITECTURE decision 7: one small interface; the embedded
 * back end is SQLite in the state folder (kv_sqlite.c), a Redis one can
 * follow behind the same calls.
 *
 * (Not to be confused with core/kv.h, the key/value pairs of log lines.)
 *
 * This is the SQLite engine under the asynchronous store (state.h), which
 * everything else uses; only state_sqlite.c and the unit tests call it.
 * Every call may block on disk: call them from worker threads only, never
 * from an event loop. A store is safe to use from several threads at once.
 * Keys are NUL-terminated strings of at most KV_KEY_MAX octets. Times are
 * wall-clock (they must survive a restart); a TTL of 0 means no expiry.
 * An expired entry is never returned, whether or not it was purged yet.
 */
#ifndef POSTERN_STORE_KV_H
#define POSTERN_STORE_KV_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "compat.h"

#define KV_KEY_MAX 512
#define KV_VALUE_MAX (64u * 1024u)
#define KV_FILE "state.db"

struct kv_store;

/* Opens (creating if needed) <dir>/state.db in WAL mode. dir must exist.
 * On failure returns NULL and sets *error_out to a static or
 * thread-local description (for STORE-STATE-OPEN-FAILED). */
struct kv_store *kv_open(const char *dir, const char **error_out) WARN_UNUSED;
/* A store that lives in memory only (the fallback when the file cannot be
 * opened): same calls, nothing survives the process. */
struct kv_store *kv_open_memory(const char **error_out) WARN_UNUSED;
void kv_close(struct kv_store **kvp);
/* 1 for a store in memory (kv_open_memory). */
int kv_is_memory(const struct kv_store *kv);

/* Stores value (len <= KV_VALUE_MAX octets) under key, replacing any entry
 * and its TTL. Returns 0, or -1 (kv_error() says why). */
int kv_put(struct kv_store *kv, const char *key, const void *value, size_t len,
	   unsigned ttl_s) WARN_UNUSED;
/* Copies key's value into out (appended). Returns 1 found, 0 absent or
 * expired, -1 error. *ttl_left_out (if not NULL) gets the seconds left,
 * rounded up, or 0 for an entry without expiry. */
int kv_get(struct kv_store *kv, const char *key, struct buf *out,
	   uint64_t *ttl_left_out) WARN_UNUSED;
/* The same for an integer value (kv_incr's counters). */
int kv_get_int(struct kv_store *kv, const char *key, int64_t *value_out,
	       uint64_t *ttl_left_out) WARN_UNUSED;
/* Adds delta to key's integer value in one atomic step and returns the
 * result in *value_out. An absent or expired key starts from 0 and gets
 * ttl_s; an existing key keeps its expiry (a fixed window from the first
 * increment). Returns 0, or -1. */
int kv_incr(struct kv_store *kv, const char *key, int64_t delta, unsigned ttl_s,
	    int64_t *value_out) WARN_UNUSED;
/* Removes key. Returns 1 if there was a live entry, 0 if not, -1 error. */
int kv_delete(struct kv_store *kv, const char *key) WARN_UNUSED;
/* A transaction around several calls from one thread (state_sqlite.c
 * batches requests so): BEGIN IMMEDIATE, COMMIT, ROLLBACK. 0 or -1. */
int kv_begin(struct kv_store *kv) WARN_UNUSED;
int kv_commit(struct kv_store *kv) WARN_UNUSED;
void kv_rollback(struct kv_store *kv);
/* Purges expired entries. Returns how many, or -1. (Writes purge now and
 * then by themselves; this is for tests and maintenance.) */
long kv_expire(struct kv_store *kv) WARN_UNUSED;

/* The last error of this thread's last failed call, e.g. "database is
 * locked"; "" if none. */
const char *kv_error(void);

/* Test hook: a clock offset in seconds added to the wall clock of every
 * call on kv (to test expiry without sleeping). */
void kv_set_clock_offset(struct kv_store *kv, int64_t offset_s);

#endif
