/*
 * authfail.c - the one failed-login store (see authfail.h): the keys and
 * rules over the state store, for SMTP AUTH and POP3 alike.
 */
#include "authfail.h"

#include <stdio.h>
#include <string.h>

#include "catalog.h"
#include "log.h"

static void
store_failed(const char *sid, const char *op, const char *key)
{
	struct log_ctx ctx = { .sid = sid };
	struct kv kv[] = { KV("op", op), KV("key", key), KV("err", kv_error()) };

	catalog_log(COND_STORE_STATE_OP_FAILED, &ctx, kv, ARRAY_LEN(kv));
}

/* The two keys of client; -1 if they do not fit (never: addresses are
 * short). */
static int
keys_of(const char *client, char kfail[KV_KEY_MAX], char kban[KV_KEY_MAX])
{
	int a = snprintf(kfail, KV_KEY_MAX, "authfail:%s", client);
	int b = snprintf(kban, KV_KEY_MAX, "authban:%s", client);

	return a < 0 || a >= KV_KEY_MAX || b < 0 || b >= KV_KEY_MAX ? -1 : 0;
}

struct kv_store *
authfail_open(const char *state_dir)
{
	const char *err = "";
	struct kv_store *kv = kv_open(state_dir, &err);
	char path[4096], why[256];

	if (kv != NULL)
		return kv;
	if (snprintf(path, sizeof(path), "%s/%s", state_dir, KV_FILE) < 0)
		path[0] = '\0';
	if (slice_copy(slice_from_cstr(err), why, sizeof(why)) < 0)
		why[0] = '\0';
	kv = kv_open_memory(&err);
	struct kv kvs[] = { KV("path", path), KV("err", why),
			    KV("fallback", kv != NULL ? "memory" : "none") };
	catalog_log(COND_STORE_STATE_OPEN_FAILED, NULL, kvs, ARRAY_LEN(kvs));
	return kv;
}

int
authfail_banned(struct kv_store *kv, const char *client, const char *sid,
		int64_t *count_out, uint64_t *remaining_out)
{
	char kfail[KV_KEY_MAX], kban[KV_KEY_MAX];
	int64_t v = 0;
	uint64_t left = 0;
	int r;

	if (kv == NULL || keys_of(client, kfail, kban) < 0)
		return 0;
	r = kv_get_int(kv, kban, &v, &left);
	if (r < 0)
		store_failed(sid, "get", kban);		/* fail open */
	if (r != 1)
		return 0;
	*count_out = v;
	*remaining_out = left;
	return 1;
}

int64_t
authfail_record(struct kv_store *kv, const char *client, const char *sid,
		const struct authfail_policy *pol, int *banned_out)
{
	char kfail[KV_KEY_MAX], kban[KV_KEY_MAX];
	int64_t count = 0;

	*banned_out = 0;
	if (kv == NULL || keys_of(client, kfail, kban) < 0)
		return 0;
	if (kv_incr(kv, kfail, 1, pol->window_s, &count) < 0) {
		store_failed(sid, "incr", kfail);
		return 0;
	}
	if (pol->max_failures > 0 && count >= (int64_t)pol->max_failures) {
		char v[32];
		int n = snprintf(v, sizeof(v), "%lld", (long long)count);
		if (n < 0 || kv_put(kv, kban, v, (size_t)n, pol->lockout_s) < 0)
			store_failed(sid, "put", kban);
		else
			*banned_out = 1;
		if (kv_delete(kv, kfail) < 0)
			store_failed(sid, "delete", kfail);
	}
	return count;
}

void
authfail_clear(struct kv_store *kv, const char *client, const char *sid)
{
	char kfail[KV_KEY_MAX], kban[KV_KEY_MAX];

	if (kv == NULL || keys_of(client, kfail, kban) < 0)
		return;
	if (kv_delete(kv, kfail) < 0)
		store_failed(sid, "delete", kfail);
}
