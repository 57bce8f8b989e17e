/*
 * authfail.h - the one failed-login store: failures and lockouts per
 * client address, kept in the shared state store (state.h), shared by
 * SMTP AUTH and POP3 (USER/PASS and AUTH), and by every node that shares
 * the store.
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
 * counter.
 *
 * Asynchronous, like the store: a call queues requests and the done
 * function runs later on the caller's loop thread (never inside the call).
 * Store errors are logged (STORE-STATE-OP-FAILED, with sid) and fail open:
 * nobody is locked out, nothing is counted.
 */
#ifndef POSTERN_STORE_AUTHFAIL_H
#define POSTERN_STORE_AUTHFAIL_H

#include <stdint.h>

#include "state.h"

struct authfail_policy {
	unsigned max_failures;	/* 0: count, never lock out */
	unsigned window_s;
	unsigned lockout_s;
};

struct authfail_req;
typedef void (*authfail_done_fn)(struct authfail_req *r);

/* Embedded in the caller's job; untouched by it until done runs. */
struct authfail_req {
	/* results */
	int banned;		/* check: locked out now; record: this failure
				 * started a lockout */
	int64_t count;		/* check: the count that caused the lockout;
				 * record: the failures in the window */
	uint64_t remaining_s;	/* check: seconds of lockout left */
	/* the caller's */
	authfail_done_fn done;
	authfail_done_fn cancel;	/* set before the call: the store closed
					 * with the request pending (shutdown) */
	void *arg;
	/* private */
	struct state *st;
	struct state_req req;
	struct state_op ops[2];
	struct authfail_policy pol;
	int phase;
	char sid[17];
	char kfail[80];
	char kban[80];
	char value[24];
};

/* Is client locked out now? */
void authfail_check(struct state *st, struct loop *loop, struct authfail_req *r,
		    const char *client, const char *sid, authfail_done_fn done, void *arg);
/* Counts one failure (and starts the lockout at pol->max_failures). */
void authfail_record(struct state *st, struct loop *loop, struct authfail_req *r,
		     const char *client, const char *sid, const struct authfail_policy *pol,
		     authfail_done_fn done, void *arg);
/* A successful login: the failures of client are forgotten (nothing to
 * wait for; loop thread). */
void authfail_clear(struct state *st, struct loop *loop, const char *client, const char *sid);

#endif
