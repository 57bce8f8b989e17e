/*
 * authfail.h - the one failed-login store: failures and lockouts per
 * client address, kept in the state store (store/kv.h), shared by SMTP
 * AUTH and POP3 (USER/PASS and AUTH).
 *
 * One counter and one lockout per client address for both protocols: a
 * password guessed over POP3 is the same password SMTP AUTH checks, so a
 * client locked out by either is locked out of both. Each protocol applies
 * its own thresholds (auth.* or pop3.*) when it counts a failure.
 *
 * Keys (client = the address as text, e.g. "192.0.2.7" or "2001:db8::1"):
 *   authfail:<client>  integer, TTL window_s from the first failure
 *   authban:<client>   the count that caused it, TTL lockout_s
 * At max_failures the ban is written and the counter dropped, so a new
 * window starts when the lockout ends. A successful login drops the
 * counter. Entries survive a restart (unless the store fell back to
 * memory: STORE-STATE-OPEN-FAILED).
 *
 * Every call may block (SQLite): worker threads only. Store errors are
 * logged (STORE-STATE-OP-FAILED, with sid) and fail open.
 */
#ifndef POSTERN_STORE_AUTHFAIL_H
#define POSTERN_STORE_AUTHFAIL_H

#include <stdint.h>

#include "kv_store.h"

struct authfail_policy {
	unsigned max_failures;	/* 0: count, never lock out */
	unsigned window_s;
	unsigned lockout_s;
};

/* Opens <state_dir>/state.db; when it cannot, logs STORE-STATE-OPEN-FAILED
 * and falls back to a store in memory. NULL only if that fails too (then
 * nothing is counted). Main thread, at start. */
struct kv_store *authfail_open(const char *state_dir);

/* 1 when client is locked out now (*count_out: the count that caused it,
 * *remaining_out: seconds left); else 0. */
int authfail_banned(struct kv_store *kv, const char *client, const char *sid,
		    int64_t *count_out, uint64_t *remaining_out);
/* Counts one failure; returns the count in the window (0 if the store
 * failed). *banned_out is set when this failure started a lockout. */
int64_t authfail_record(struct kv_store *kv, const char *client, const char *sid,
			const struct authfail_policy *pol, int *banned_out);
/* A successful login: the failures of client are forgotten. */
void authfail_clear(struct kv_store *kv, const char *client, const char *sid);

#endif
