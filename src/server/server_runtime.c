/*
 * server_runtime.c - the process around the daemon (server_runtime.h):
 * RLIMIT_NOFILE sized to limits.connections, the report of log lines the
 * log thread dropped, the data folders, the privilege drop and the pid
 * file. Runs on the main thread at start and exit only.
 */
#include "server_runtime.h"

#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog.h"
#include "config.h"
#include "net_conn.h"

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

/* ---- folders, privileges, pid file ------------------------------------ */

int
server_mkdir_p(const char *path, mode_t mode)
{
	char tmp[4096];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(tmp))
		return -1;
	memcpy(tmp, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (tmp[i] == '/' || tmp[i] == '\0') {
			char c = tmp[i];
			tmp[i] = '\0';
			if (mkdir(tmp, mode) < 0 && errno != EEXIST)
				return -1;
			tmp[i] = c;
		}
	}
	return 0;
}

void
server_init_failed(const char *subsystem, const char *path, int e)
{
	struct kv kv[] = { KV("subsystem", subsystem), KV("path", path),
			   KV("errno", log_errno_name(e)), KV("err", strerror(e)) };

	catalog_log(COND_STARTUP_INIT_FAILED, NULL, kv, ARRAY_LEN(kv));
}

static uid_t chown_uid;
static gid_t chown_gid;

static int
chown_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)flag;
	(void)ftw;
	if ((st->st_uid != chown_uid || st->st_gid != chown_gid) &&
	    lchown(path, chown_uid, chown_gid) < 0)
		return -1;
	return 0;
}

/* Gives a data folder to the service user: recursively when the folder
 * itself is not yet theirs (first run), else only the folder. */
static int
chown_tree(const char *path, uid_t uid, gid_t gid)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -1;
	if (st.st_uid == uid && st.st_gid == gid)
		return 0;
	chown_uid = uid;
	chown_gid = gid;
	return nftw(path, chown_one, 32, FTW_PHYS);
}

int
server_drop_privileges(const struct config *cfg, const struct server_pidfile *pf, int lock_fd)
{

	if (geteuid() != 0)
		return 0;
	if (cfg->server_user[0] == '\0') {
		catalog_log(COND_STARTUP_RUNNING_AS_ROOT, NULL, NULL, 0);
		return 0;
	}
	errno = 0;
	struct passwd *pw = getpwnam(cfg->server_user);
	if (pw == NULL) {
		int e = errno ? errno : ENOENT;
		struct kv kv[] = { KV("user", cfg->server_user), KV("errno", log_errno_name(e)),
				   KV("err", "no such user") };
		catalog_log(COND_STARTUP_PRIVDROP_FAILED, NULL, kv, ARRAY_LEN(kv));
		return -1;
	}
	const char *dirs[] = { cfg->server_spool, cfg->server_state, cfg->server_mail_root };
	for (size_t i = 0; i < ARRAY_LEN(dirs); i++) {
		if (chown_tree(dirs[i], pw->pw_uid, pw->pw_gid) < 0) {
			struct kv kv[] = { KV("user", cfg->server_user),
					   KV("errno", log_errno_name(errno)), KV("err", dirs[i]) };
			catalog_log(COND_STARTUP_PRIVDROP_FAILED, NULL, kv, ARRAY_LEN(kv));
			return -1;
		}
	}
	if (pf->fd >= 0 && fchown(pf->fd, pw->pw_uid, pw->pw_gid) < 0) {
		/* not fatal: the file is removed at exit by path, as root or not */
	}
	if (lock_fd >= 0 && fchown(lock_fd, pw->pw_uid, pw->pw_gid) < 0) {
		/* not fatal: root can still edit the queue offline */
	}
	if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0 ||
	    (pw->pw_uid != 0 && setuid(0) == 0)) {
		int e = errno;
		struct kv kv[] = { KV("user", cfg->server_user), KV("errno", log_errno_name(e)),
				   KV("err", strerror(e)) };
		catalog_log(COND_STARTUP_PRIVDROP_FAILED, NULL, kv, ARRAY_LEN(kv));
		return -1;
	}
	struct kv kv[] = { KV("user", cfg->server_user), KVU("uid", pw->pw_uid),
			   KVU("gid", pw->pw_gid) };
	catalog_log(COND_STARTUP_PRIVDROP, NULL, kv, ARRAY_LEN(kv));
	return 0;
}

int
server_pidfile_open(struct server_pidfile *pf, const char *path)
{
	char text[32];

	pf->fd = -1;
	if (path[0] == '\0')
		return 0;
	if (slice_copy(slice_from_cstr(path), pf->path, sizeof(pf->path)) < 0)
		return -1;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	int n = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0 || ftruncate(fd, 0) < 0 || n < 0 ||
	    write(fd, text, (size_t)n) != n) {
		int e = errno;
		struct kv kv[] = { KV("path", path), KV("errno", log_errno_name(e)),
				   KV("err", e == EWOULDBLOCK ? "another instance holds it" : strerror(e)) };
		catalog_log(COND_STARTUP_PIDFILE_FAILED, NULL, kv, ARRAY_LEN(kv));
		if (fd >= 0)
			close(fd);
		pf->path[0] = '\0';
		return -1;
	}
	pf->fd = fd;
	return 0;
}

void
server_pidfile_remove(struct server_pidfile *pf)
{
	if (pf->path[0] == '\0')
		return;
	if (unlink(pf->path) < 0) {
		int e = errno;
		struct kv kv[] = { KV("path", pf->path), KV("errno", log_errno_name(e)),
				   KV("err", strerror(e)) };
		catalog_log(COND_SHUTDOWN_PIDFILE_UNLINK_FAILED, NULL, kv, ARRAY_LEN(kv));
	}
	close(pf->fd);
}
