/*
 * server_control.c - the control socket (see server_control.h): the
 * folder check, the socket, its thread, and the request dispatch.
 */
#include "server_control.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "queue_json.h"
#include "server_runtime.h"
#include "spool_admin.h"

struct server_control {
	struct control_ops ops;
	int fd;			/* listening */
	int stop[2];		/* a pipe: the thread's stop signal */
	pthread_t thread;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static void
control_fail(const char *path, const char *op, int err)
{
	struct kv kvs[] = { KV("path", path), KV("op", op), KV("errno", log_errno_name(err)),
			    KV("err", strerror(err)) };

	catalog_log(COND_QUEUE_CONTROL_FAILED, NULL, kvs, ARRAY_LEN(kvs));
}

static void
bad_request(const char *reason)
{
	struct kv kvs[] = { KV("reason", reason) };

	catalog_log(COND_QUEUE_CONTROL_BAD_REQUEST, NULL, kvs, ARRAY_LEN(kvs));
}

/* A queue ID as the command line gives it: 1..SPOOL_QID_SIZE-1 of
 * [0-9A-Z]; the daemon's lookup says whether it is queued. */
static int
qid_word(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= 20)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'Z')))
			return 0;
	return 1;
}

static void
answer_status(const struct control_ops *ops, struct buf *out)
{
	struct buf dest;
	struct jw w;

	buf_init(&dest, 1 << 20);
	if (ops->destinations != NULL)
		ops->destinations(ops->status_arg, &dest);
	jw_init(&w, out);
	jw_open(&w, '{');
	jw_kstr(&w, "schema", QUEUE_JSON_SCHEMA);
	jw_kstr(&w, "command", "status");
	jw_kbool(&w, "ok", 1);
	jw_kstr(&w, "via", "control");
	jw_kint(&w, "pid", (int64_t)getpid());
	jw_kint(&w, "pending", ops->pending != NULL ? (int64_t)ops->pending(ops->status_arg) : 0);
	jw_key(&w, "destinations");
	jw_strn(&w, dest.data, dest.len);
	jw_close(&w, '}');
	if (!w.err && buf_append_byte(out, '\n') < 0)
		w.err = 1;
	buf_fini(&dest);
	if (w.err) {
		buf_reset(out);
		(void)queue_json_result(out, "status", "control", NULL, 0,
					COND_QUEUE_CONTROL_BAD_REQUEST, "answer too long");
	}
}

void
server_control_answer(const struct control_ops *ops, const char *line, struct buf *out)
{
	char cmd[16], arg[CONTROL_LINE_MAX + 1];
	const char *sp = strchr(line, ' ');
	size_t clen = sp != NULL ? (size_t)(sp - line) : strlen(line);
	enum cond_id err = COND__COUNT;
	long count = 0;
	const char *text = "done";

	arg[0] = '\0';
	if (clen >= sizeof(cmd) || strlen(line) > CONTROL_LINE_MAX) {
		bad_request("unknown command");
		(void)queue_json_result(out, "?", "control", NULL, 0,
					COND_QUEUE_CONTROL_BAD_REQUEST, "unknown command");
		return;
	}
	memcpy(cmd, line, clen);
	cmd[clen] = '\0';
	if (sp != NULL)
		memcpy(arg, sp + 1, strlen(sp + 1) + 1);
	if (strcmp(cmd, "status") == 0 && sp == NULL) {
		answer_status(ops, out);
		return;
	}
	int is_flush = strcmp(cmd, "flush") == 0;
	int needs_qid = !is_flush && (strcmp(cmd, "hold") == 0 || strcmp(cmd, "release") == 0 ||
				      strcmp(cmd, "delete") == 0 || strcmp(cmd, "bounce") == 0);
	int flush_domain = is_flush && arg[0] == '@' && arg[1] != '\0' &&
			   strcspn(arg + 1, " \t/\\\"") == strlen(arg + 1);
	if ((!is_flush && !needs_qid) || (needs_qid && !qid_word(arg)) ||
	    (is_flush && sp != NULL && !flush_domain && !qid_word(arg))) {
		bad_request(!is_flush && !needs_qid ? "unknown command" : "bad argument");
		(void)queue_json_result(out, cmd, "control", arg, 0,
					COND_QUEUE_CONTROL_BAD_REQUEST,
					!is_flush && !needs_qid ? "unknown command" : "bad argument");
		return;
	}
	if (is_flush && ops->flush != NULL)
		err = ops->flush(ops->arg, sp != NULL && !flush_domain ? arg : NULL,
				 flush_domain ? arg + 1 : NULL, &count);
	else if ((strcmp(cmd, "hold") == 0 || strcmp(cmd, "release") == 0) && ops->hold != NULL)
		err = ops->hold(ops->arg, arg, cmd[0] == 'h', &count);
	else if (strcmp(cmd, "delete") == 0 && ops->remove != NULL)
		err = ops->remove(ops->arg, arg, &count);
	else if (strcmp(cmd, "bounce") == 0 && ops->bounce != NULL)
		err = ops->bounce(ops->arg, arg, &count);
	else
		err = COND_QUEUE_COMMAND_UNAVAILABLE;
	if (err == COND_QUEUE_COMMAND_UNAVAILABLE) {
		struct kv kvs[] = { KV("command", cmd) };

		catalog_log(err, NULL, kvs, ARRAY_LEN(kvs));
	}
	if (err != COND__COUNT)
		text = catalog_get(err)->logtext;
	(void)queue_json_result(out, cmd, "control",
				flush_domain ? arg + 1 : sp != NULL ? arg : "all", count, err, text);
}

/* Reads one LF-ended line within the deadline. 0, or -1 with *why. */
static int
read_line(int fd, char *line, size_t size, const char **why)
{
	size_t n = 0;
	uint64_t end = loop_clock_ms() + CONTROL_TIMEOUT_MS;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		uint64_t now = loop_clock_ms();

		if (now >= end || poll(&pfd, 1, (int)(end - now)) == 0) {
			*why = "no line in time";
			return -1;
		}
		ssize_t r = read(fd, line + n, size - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			*why = "closed before a line";
			return -1;
		}
		n += (size_t)r;
		line[n] = '\0';
		char *lf = memchr(line, '\n', n);
		if (lf != NULL) {
			*lf = '\0';
			if (lf > line && lf[-1] == '\r')
				lf[-1] = '\0';
			return 0;
		}
		if (n >= size - 1) {
			*why = "line too long";
			return -1;
		}
	}
}

static void
serve_one(struct server_control *sc, int cfd)
{
	char line[CONTROL_LINE_MAX + 2];
	const char *why = NULL;
	struct buf out;

	buf_init(&out, 16u << 20);
	if (read_line(cfd, line, sizeof(line), &why) < 0) {
		bad_request(why);
		(void)queue_json_result(&out, "?", "control", NULL, 0,
					COND_QUEUE_CONTROL_BAD_REQUEST, why);
	} else {
		server_control_answer(&sc->ops, line, &out);
	}
	for (size_t off = 0; off < out.len;) {
		ssize_t w = send(cfd, out.data + off, out.len - off, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;	/* the client left: nothing to tell */
		off += (size_t)w;
	}
	/* What the client sent past its line is read away (bounded), so
	 * closing does not reset the connection before it reads the answer. */
	(void)shutdown(cfd, SHUT_WR);
	for (int i = 0; i < 64; i++) {
		struct pollfd pfd = { .fd = cfd, .events = POLLIN };

		if (poll(&pfd, 1, 100) <= 0 || read(cfd, line, sizeof(line)) <= 0)
			break;
	}
	buf_fini(&out);
}

static void *
control_thread(void *arg)
{
	struct server_control *sc = arg;

	for (;;) {
		struct pollfd pfd[2] = { { .fd = sc->fd, .events = POLLIN },
					 { .fd = sc->stop[0], .events = POLLIN } };

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents != 0)
			break;
		int cfd = accept4(sc->fd, NULL, NULL, SOCK_CLOEXEC);
		if (cfd < 0)
			continue;	/* gone meanwhile, or out of fds: next one */
		/* a client that does not read its answer is given up on */
		struct timeval tv = { .tv_sec = CONTROL_TIMEOUT_MS / 1000 };
		if (setsockopt(cfd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
			close(cfd);
			continue;
		}
		serve_one(sc, cfd);
		close(cfd);
	}
	return NULL;
}

struct server_control *
server_control_start(const char *state_dir, const struct control_ops *ops)
{
	struct server_control *sc = xcalloc(1, sizeof(*sc));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	const char *op = "check";
	int err = EPERM;

	sc->fd = sc->stop[0] = sc->stop[1] = -1;
	sc->ops = *ops;
	if ((size_t)snprintf(sc->path, sizeof(sc->path), "%s/%s", state_dir,
			     CONTROL_SOCKET_NAME) >= sizeof(sc->path)) {
		err = ENAMETOOLONG;
		op = "bind";
		goto fail;
	}
	/* Whoever can reach the socket can delete mail: only the daemon's
	 * user, in a folder nobody else may change. */
	if (lstat(state_dir, &st) < 0) {
		err = errno;
		op = "stat";
		goto fail;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077) != 0)
		goto fail;
	memcpy(sa.sun_path, sc->path, strlen(sc->path) + 1);
	op = "socket";
	sc->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (sc->fd < 0)
		goto fail_errno;
	op = "unlink";
	if (unlink(sc->path) < 0 && errno != ENOENT)	/* a previous run's */
		goto fail_errno;
	op = "bind";
	mode_t old = umask(0177);
	int rc = bind(sc->fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0)
		goto fail_errno;
	op = "chmod";
	if (chmod(sc->path, 0600) < 0)
		goto fail_errno;
	op = "listen";
	if (listen(sc->fd, 16) < 0)
		goto fail_errno;
	op = "thread";
	if (pipe2(sc->stop, O_CLOEXEC) < 0)
		goto fail_errno;
	if ((err = pthread_create(&sc->thread, NULL, control_thread, sc)) != 0)
		goto fail;
	return sc;
fail_errno:
	err = errno;
fail:
	control_fail(sc->path[0] != '\0' ? sc->path : state_dir, op, err);
	if (sc->fd >= 0) {
		close(sc->fd);
		if (strcmp(op, "bind") != 0 && strcmp(op, "socket") != 0 && strcmp(op, "unlink") != 0)
			(void)unlink(sc->path);
	}
	if (sc->stop[0] >= 0) {
		close(sc->stop[0]);
		close(sc->stop[1]);
	}
	free(sc);
	return NULL;
}

void
server_control_stop(struct server_control **scp)
{
	struct server_control *sc = *scp;

	if (sc == NULL)
		return;
	if (write(sc->stop[1], "x", 1) != 1) {
		/* a pipe with room: cannot fail; the join below would hang */
	}
	pthread_join(sc->thread, NULL);
	close(sc->fd);
	close(sc->stop[0]);
	close(sc->stop[1]);
	(void)unlink(sc->path);
	free(sc);
	*scp = NULL;
}

int
server_queue_lock(const char *spool_dir)
{
	int fd = -1, rc = spool_lock_take(spool_dir, 0, &fd);

	if (rc == 1) {
		char *path = xasprintf("%s/%s", spool_dir, SPOOL_LOCK_FILE);
		struct kv kvs[] = { KV("path", path) };

		catalog_log(COND_QUEUE_LOCK_WAIT, NULL, kvs, ARRAY_LEN(kvs));
		log_flush();
		free(path);
		rc = spool_lock_take(spool_dir, 1, &fd);
	}
	if (rc != 0) {
		server_init_failed("queue lock", spool_dir, errno);
		return -1;
	}
	return fd;
}

/* A request run on a loop for the control thread; whoever is last of the
 * two (the loop's callback, or a waiter that gave up) frees it. */
struct on_loop_req {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done, refs;
	void (*fn)(void *arg, struct buf *out);
	void *arg;
	struct buf out;
};

static void
on_loop_unref(struct on_loop_req *r)
{
	pthread_mutex_lock(&r->mu);
	int last = --r->refs == 0;
	pthread_mutex_unlock(&r->mu);
	if (!last)
		return;
	buf_fini(&r->out);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

static void
on_loop_run(struct loop *loop, void *arg)
{
	struct on_loop_req *r = arg;

	(void)loop;
	r->fn(r->arg, &r->out);
	pthread_mutex_lock(&r->mu);
	r->done = 1;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
	on_loop_unref(r);
}

void
server_control_on_loop(struct loop *loop, void (*fn)(void *arg, struct buf *out), void *arg,
		       struct buf *out)
{
	struct on_loop_req *r = xcalloc(1, sizeof(*r));
	struct timespec until;

	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	r->refs = 2;
	r->fn = fn;
	r->arg = arg;
	buf_init(&r->out, out->max);
	loop_post(loop, on_loop_run, r);
	(void)clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += CONTROL_TIMEOUT_MS / 1000;
	pthread_mutex_lock(&r->mu);
	while (!r->done && pthread_cond_timedwait(&r->cv, &r->mu, &until) != ETIMEDOUT)
		;
	if (r->done && buf_append(out, r->out.data, r->out.len) < 0) {
		/* past out's bound: left out */
	}
	pthread_mutex_unlock(&r->mu);
	on_loop_unref(r);
}
