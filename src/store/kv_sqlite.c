/*
 * kv_sqlite.c - the embedded back end of the state store (kv.h): one
 * SQLite database, <state dir>/state.db, in WAL mode.
 *
 * Owns struct kv_store: one connection and its prepared statements, used
 * under one mutex (SQLite work is short; the callers are worker threads).
 * Table kv(k TEXT PRIMARY KEY, v, exp INTEGER): exp is the expiry in
 * wall-clock milliseconds since the epoch, 0 for none. Reads filter
 * expired rows out; writes purge them every KV_PURGE_EVERY writes.
 * synchronous=NORMAL: in WAL mode a power loss may drop the last writes,
 * never corrupt the file, which is the right trade for counters.
 */
#include "kv_store.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KV_PURGE_EVERY 1000u
#define KV_BUSY_MS 5000

enum {
	ST_PUT, ST_GET, ST_INCR, ST_DELETE, ST_EXPIRE, ST__COUNT
};

static const char *const stmt_sql[ST__COUNT] = {
	[ST_PUT] = "INSERT OR REPLACE INTO kv(k, v, exp) VALUES(?1, ?2, ?3)",
	[ST_GET] = "SELECT v, exp FROM kv WHERE k = ?1 AND (exp = 0 OR exp > ?2)",
	[ST_INCR] = "INSERT INTO kv(k, v, exp) VALUES(?1, ?2, ?3) "
		    "ON CONFLICT(k) DO UPDATE SET "
		    "v = CASE WHEN exp != 0 AND exp <= ?4 THEN ?2 "
		    "ELSE CAST(v AS INTEGER) + ?2 END, "
		    "exp = CASE WHEN exp != 0 AND exp <= ?4 THEN ?3 ELSE exp END "
		    "RETURNING v",
	[ST_DELETE] = "DELETE FROM kv WHERE k = ?1 RETURNING exp",
	[ST_EXPIRE] = "DELETE FROM kv WHERE exp != 0 AND exp <= ?1",
};

struct kv_store {
	pthread_mutex_t mu;
	sqlite3 *db;
	sqlite3_stmt *st[ST__COUNT];
	unsigned writes;	/* since the last purge */
	int memory;
	int64_t offset_s;	/* test clock offset */
};

static _Thread_local char kv_errbuf[256];

const char *
kv_error(void)
{
	return kv_errbuf;
}

static void
set_error(const char *what, const char *detail)
{
	if (snprintf(kv_errbuf, sizeof(kv_errbuf), "%s: %s", what,
		     detail ? detail : "unknown") < 0)
		kv_errbuf[0] = '\0';
}

static void
db_error(struct kv_store *kv, const char *what)
{
	set_error(what, kv->db ? sqlite3_errmsg(kv->db) : "no database");
}

static int64_t
now_ms(const struct kv_store *kv)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((int64_t)ts.tv_sec + kv->offset_s) * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
expiry(const struct kv_store *kv, unsigned ttl_s)
{
	return ttl_s == 0 ? 0 : now_ms(kv) + (int64_t)ttl_s * 1000;
}

static uint64_t
ttl_left(const struct kv_store *kv, int64_t exp)
{
	int64_t left;

	if (exp == 0)
		return 0;
	left = exp - now_ms(kv);
	return left <= 0 ? 1 : (uint64_t)((left + 999) / 1000);
}

/* ---- open / close ----------------------------------------------------- */

static struct kv_store *
open_path(const char *path, int memory, const char **error_out)
{
	struct kv_store *kv = xcalloc(1, sizeof(*kv));
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
	const char *setup =
		"PRAGMA journal_mode=WAL;"
		"PRAGMA synchronous=NORMAL;"
		"CREATE TABLE IF NOT EXISTS kv ("
		" k TEXT PRIMARY KEY NOT NULL,"
		" v,"
		" exp INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
		"CREATE INDEX IF NOT EXISTS kv_exp ON kv(exp) WHERE exp != 0;";

	pthread_mutex_init(&kv->mu, NULL);
	kv->memory = memory;
	if (sqlite3_open_v2(path, &kv->db, flags, NULL) != SQLITE_OK) {
		db_error(kv, "open");
		goto fail;
	}
	sqlite3_busy_timeout(kv->db, KV_BUSY_MS);
	if (sqlite3_exec(kv->db, setup, NULL, NULL, NULL) != SQLITE_OK) {
		db_error(kv, "setup");
		goto fail;
	}
	for (int i = 0; i < ST__COUNT; i++) {
		if (sqlite3_prepare_v3(kv->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
				       &kv->st[i], NULL) != SQLITE_OK) {
			db_error(kv, "prepare");
			goto fail;
		}
	}
	return kv;
fail:
	*error_out = kv_errbuf;
	kv_close(&kv);
	return NULL;
}

struct kv_store *
kv_open(const char *dir, const char **error_out)
{
	char path[4096];
	int n = snprintf(path, sizeof(path), "%s/%s", dir, KV_FILE);

	if (n < 0 || (size_t)n >= sizeof(path)) {
		set_error("open", "path too long");
		*error_out = kv_errbuf;
		return NULL;
	}
	return open_path(path, 0, error_out);
}

struct kv_store *
kv_open_memory(const char **error_out)
{
	return open_path(":memory:", 1, error_out);
}

void
kv_close(struct kv_store **kvp)
{
	struct kv_store *kv = *kvp;

	if (kv == NULL)
		return;
	for (int i = 0; i < ST__COUNT; i++)
		sqlite3_finalize(kv->st[i]);
	if (kv->db != NULL)
		sqlite3_close(kv->db);
	pthread_mutex_destroy(&kv->mu);
	free(kv);
	*kvp = NULL;
}

int
kv_is_memory(const struct kv_store *kv)
{
	return kv->memory;
}

void
kv_set_clock_offset(struct kv_store *kv, int64_t offset_s)
{
	pthread_mutex_lock(&kv->mu);
	kv->offset_s = offset_s;
	pthread_mutex_unlock(&kv->mu);
}

/* ---- operations ------------------------------------------------------- */

static int
key_ok(const char *key)
{
	size_t n = strnlen(key, KV_KEY_MAX + 1);

	if (n == 0 || n > KV_KEY_MAX) {
		set_error("key", "empty or longer than KV_KEY_MAX");
		return 0;
	}
	return 1;
}

static sqlite3_stmt *
stmt(struct kv_store *kv, int which)
{
	sqlite3_stmt *s = kv->st[which];

	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

/* Purges expired rows now and then (lock held). */
static void
maybe_purge(struct kv_store *kv)
{
	if (++kv->writes < KV_PURGE_EVERY)
		return;
	kv->writes = 0;
	sqlite3_stmt *s = stmt(kv, ST_EXPIRE);
	sqlite3_bind_int64(s, 1, now_ms(kv));
	(void)sqlite3_step(s);	/* a failed purge is retried next time */
	sqlite3_reset(s);
}

int
kv_put(struct kv_store *kv, const char *key, const void *value, size_t len, unsigned ttl_s)
{
	int rc;

	if (!key_ok(key))
		return -1;
	if (len > KV_VALUE_MAX) {
		set_error("put", "value too large");
		return -1;
	}
	pthread_mutex_lock(&kv->mu);
	sqlite3_stmt *s = stmt(kv, ST_PUT);
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s, 2, len ? value : "", (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, expiry(kv, ttl_s));
	rc = sqlite3_step(s);
	if (rc != SQLITE_DONE)
		db_error(kv, "put");
	sqlite3_reset(s);
	if (rc == SQLITE_DONE)
		maybe_purge(kv);
	pthread_mutex_unlock(&kv->mu);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Runs ST_GET for key (lock held); on 1 the row is current in the
 * statement, which the caller resets. */
static int
get_row(struct kv_store *kv, const char *key, sqlite3_stmt **out)
{
	sqlite3_stmt *s = stmt(kv, ST_GET);
	int rc;

	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, now_ms(kv));
	rc = sqlite3_step(s);
	*out = s;
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	db_error(kv, "get");
	return -1;
}

int
kv_get(struct kv_store *kv, const char *key, struct buf *out, uint64_t *ttl_left_out)
{
	sqlite3_stmt *s;
	int r;

	if (!key_ok(key))
		return -1;
	pthread_mutex_lock(&kv->mu);
	r = get_row(kv, key, &s);
	if (r == 1) {
		const void *p;
		int n;
		if (sqlite3_column_type(s, 0) == SQLITE_BLOB) {
			p = sqlite3_column_blob(s, 0);
			n = sqlite3_column_bytes(s, 0);
		} else {
			p = sqlite3_column_text(s, 0);
			n = sqlite3_column_bytes(s, 0);
		}
		if (n > 0 && (p == NULL || buf_append(out, p, (size_t)n) < 0)) {
			set_error("get", "value does not fit the buffer");
			r = -1;
		}
		if (ttl_left_out != NULL)
			*ttl_left_out = ttl_left(kv, sqlite3_column_int64(s, 1));
	}
	sqlite3_reset(s);
	pthread_mutex_unlock(&kv->mu);
	return r;
}

int
kv_get_int(struct kv_store *kv, const char *key, int64_t *value_out, uint64_t *ttl_left_out)
{
	sqlite3_stmt *s;
	int r;

	if (!key_ok(key))
		return -1;
	pthread_mutex_lock(&kv->mu);
	r = get_row(kv, key, &s);
	if (r == 1) {
		*value_out = sqlite3_column_int64(s, 0);
		if (ttl_left_out != NULL)
			*ttl_left_out = ttl_left(kv, sqlite3_column_int64(s, 1));
	}
	sqlite3_reset(s);
	pthread_mutex_unlock(&kv->mu);
	return r;
}

int
kv_incr(struct kv_store *kv, const char *key, int64_t delta, unsigned ttl_s, int64_t *value_out)
{
	int rc, r = -1;

	if (!key_ok(key))
		return -1;
	pthread_mutex_lock(&kv->mu);
	sqlite3_stmt *s = stmt(kv, ST_INCR);
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, delta);
	sqlite3_bind_int64(s, 3, expiry(kv, ttl_s));
	sqlite3_bind_int64(s, 4, now_ms(kv));
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*value_out = sqlite3_column_int64(s, 0);
		rc = sqlite3_step(s);	/* finish the statement: commits */
	}
	if (rc == SQLITE_DONE)
		r = 0;
	else
		db_error(kv, "incr");
	sqlite3_reset(s);
	if (r == 0)
		maybe_purge(kv);
	pthread_mutex_unlock(&kv->mu);
	return r;
}

int
kv_delete(struct kv_store *kv, const char *key)
{
	int rc, r = 0;
	int64_t now;

	if (!key_ok(key))
		return -1;
	pthread_mutex_lock(&kv->mu);
	now = now_ms(kv);
	sqlite3_stmt *s = stmt(kv, ST_DELETE);
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int64_t exp = sqlite3_column_int64(s, 0);
		if (exp == 0 || exp > now)
			r = 1;
	}
	if (rc != SQLITE_DONE) {
		db_error(kv, "delete");
		r = -1;
	}
	sqlite3_reset(s);
	pthread_mutex_unlock(&kv->mu);
	return r;
}

static int
exec_locked(struct kv_store *kv, const char *sql, const char *what)
{
	int r = 0;

	pthread_mutex_lock(&kv->mu);
	if (sqlite3_exec(kv->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		db_error(kv, what);
		r = -1;
	}
	pthread_mutex_unlock(&kv->mu);
	return r;
}

int
kv_begin(struct kv_store *kv)
{
	return exec_locked(kv, "BEGIN IMMEDIATE", "begin");
}

int
kv_commit(struct kv_store *kv)
{
	return exec_locked(kv, "COMMIT", "commit");
}

void
kv_rollback(struct kv_store *kv)
{
	char first[sizeof(kv_errbuf)];

	memcpy(first, kv_errbuf, sizeof(first));	/* the error that made us roll back */
	(void)exec_locked(kv, "ROLLBACK", "rollback");
	memcpy(kv_errbuf, first, sizeof(first));
}

long
kv_expire(struct kv_store *kv)
{
	long r;

	pthread_mutex_lock(&kv->mu);
	sqlite3_stmt *s = stmt(kv, ST_EXPIRE);
	sqlite3_bind_int64(s, 1, now_ms(kv));
	if (sqlite3_step(s) == SQLITE_DONE) {
		r = (long)sqlite3_changes(kv->db);
	} else {
		db_error(kv, "expire");
		r = -1;
	}
	sqlite3_reset(s);
	kv->writes = 0;
	pthread_mutex_unlock(&kv->mu);
	return r;
}
