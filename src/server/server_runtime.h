/*
 * server_runtime.h - process limits set at start: RLIMIT_NOFILE for
 * limits.connections, and the log thread's drop report.
 */
#ifndef POSTERN_SERVER_RUNTIME_H
#define POSTERN_SERVER_RUNTIME_H

#include <stdint.h>

struct config;

/* Raises RLIMIT_NOFILE to what cfg's limits.connections needs with nloops
 * loops, or as far as the hard limit allows after one
 * STARTUP-NOFILE-TOO-LOW warning naming the sessions that fit. */
void server_nofile_raise(const struct config *cfg, unsigned nloops);

/* log_set_drop_report() hook: logs LOG-LINES-DROPPED. */
void server_log_drops(uint64_t dropped, uint64_t total);

#endif
