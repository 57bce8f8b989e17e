/*
 * server_runtime.c - process limits the daemon sets at start
 * (server_runtime.h): RLIMIT_NOFILE sized to limits.connections, and the
 * report of log lines the log thread dropped.
 */
#include "server_runtime.h"

#include <stdint.h>
#include <sys/resource.h>

#include "catalog.h"
#include "config.h"

/* Called on the log thread (log.h) when debug lines were dropped. */
void
server_log_drops(uint64_t dropped, uint64_t total)
{
	struct kv kv[] = { KVU("dropped", dropped), KVU("total", total) };

	catalog_log(COND_LOG_LINES_DROPPED, NULL, kv, ARRAY_LEN(kv));
}

/* Descriptors the daemon needs at limits.connections: per session its
 * socket and one file a worker may hold for it (spool, Maildir); per loop
 * its listeners, epoll and eventfd; per worker a few files; and a margin
 * for the log, the pid file, the state store and the library. */
#define NOFILE_PER_SESSION 2
#define NOFILE_PER_LOOP 2
#define NOFILE_PER_WORKER 4
#define NOFILE_POOLS 4	/* spool, delivery, POP3, AUTH workers */
#define NOFILE_MARGIN 64

static uint64_t
nofile_needed(const struct config *cfg, unsigned nloops)
{
	return (uint64_t)cfg->limits_connections * NOFILE_PER_SESSION +
	       (uint64_t)nloops * (cfg->nlisteners + NOFILE_PER_LOOP) +
	       (uint64_t)cfg->server_workers * NOFILE_POOLS * NOFILE_PER_WORKER + NOFILE_MARGIN;
}

/* Raises RLIMIT_NOFILE to what limits.connections needs (the hard limit
 * too when we may, as root). A hard limit below the need is a warning, not
 * a refusal to start (as Postfix does): STARTUP-NOFILE-TOO-LOW names the
 * sessions that fit; past them accept() fails with EMFILE and the
 * listener pauses (RESOURCE-FD-EXHAUSTED) until descriptors are free. */
void
server_nofile_raise(const struct config *cfg, unsigned nloops)
{
	uint64_t need = nofile_needed(cfg, nloops);
	uint64_t fixed = need - (uint64_t)cfg->limits_connections * NOFILE_PER_SESSION;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;		/* cannot happen; the limit stays as it is */
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
		return;
	struct rlimit want = { (rlim_t)need, rl.rlim_max };
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		want.rlim_max = (rlim_t)need;
		if (setrlimit(RLIMIT_NOFILE, &want) == 0)
			return;	/* root may raise the hard limit */
		want.rlim_cur = rl.rlim_max;
		want.rlim_max = rl.rlim_max;
	}
	if (setrlimit(RLIMIT_NOFILE, &want) < 0 && getrlimit(RLIMIT_NOFILE, &want) < 0)
		want = rl;
	if (want.rlim_cur != RLIM_INFINITY && want.rlim_cur < need) {
		uint64_t fits = want.rlim_cur > fixed
				? (want.rlim_cur - fixed) / NOFILE_PER_SESSION : 0;
		struct kv kv[] = { KVU("needed", need), KVU("limit", (uint64_t)want.rlim_cur),
				   KVU("connections", cfg->limits_connections),
				   KVU("effective", fits) };
		catalog_log(COND_STARTUP_NOFILE_TOO_LOW, NULL, kv, ARRAY_LEN(kv));
	}
}
