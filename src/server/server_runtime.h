/*
 * server_runtime.h - the process around the daemon, set up at start:
 * RLIMIT_NOFILE for limits.connections, the log thread's drop report, the
 * data folders, the privilege drop and the pid file.
 */
#ifndef POSTERN_SERVER_RUNTIME_H
#define POSTERN_SERVER_RUNTIME_H

#include <stdint.h>
#include <sys/types.h>

struct config;

/* Raises RLIMIT_NOFILE to what cfg's limits.connections needs with nloops
 * loops, or as far as the hard limit allows after one
 * STARTUP-NOFILE-TOO-LOW warning naming the sessions that fit. */
void server_nofile_raise(const struct config *cfg, unsigned nloops);

/* log_set_drop_report() hook: logs LOG-LINES-DROPPED. */
void server_log_drops(uint64_t dropped, uint64_t total);

/* A locked pid file (server.pid_file); fd -1 and path "" when none. */
struct server_pidfile {
	int fd;
	char path[4096];
};

/* Creates path and its parents (mode for the new ones); -1 with errno. */
int server_mkdir_p(const char *path, mode_t mode);
/* Logs STARTUP-INIT-FAILED for subsystem at path with errno e. */
void server_init_failed(const char *subsystem, const char *path, int e);
/* As root with server.user set: gives the spool, state and mail folders
 * (and the pid file) to that user, then switches to it for good. Logs
 * STARTUP-PRIVDROP, or STARTUP-RUNNING-AS-ROOT without a user. -1 on
 * failure (logged). */
/* lock_fd (spool/queue.lock, or -1) is given to the user too, so that
 * `postern queue` run as that user can take the lock. */
int server_drop_privileges(const struct config *cfg, const struct server_pidfile *pf,
			   int lock_fd);
/* Writes and locks the pid file at path ("" = none); -1 after
 * STARTUP-PIDFILE-FAILED (another instance holds it, or an error). */
int server_pidfile_open(struct server_pidfile *pf, const char *path);
/* Removes it at exit (SHUTDOWN-PIDFILE-UNLINK-FAILED if it cannot). */
void server_pidfile_remove(struct server_pidfile *pf);

#endif
