/*
 * queue_cmd.c - `postern queue` (see queue_cmd.h): argument parsing, the
 * list and show views, the control socket client, and the offline edits
 * under the queue lock.
 */
#include "queue_cmd.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "catalog.h"
#include "config.h"
#include "diag.h"
#include "log.h"
#include "loop.h"
#include "queue_json.h"
#include "server_config.h"
#include "server_control.h"
#include "spool_admin.h"

#define EX_USAGE 64
#define EX_TEMPFAIL 75
#define EX_CONFIG 78
#define QUEUE_OVERRIDES_MAX 64
#define QUEUE_DEFAULT_CONFIG "/etc/postern/postern.conf"
/* A daemon starting or stopping holds the lock without a socket yet: the
 * command asks again this often, this many times. */
#define QUEUE_LOCK_RETRY_MS 100
#define QUEUE_LOCK_RETRIES 50
#define QUEUE_ANSWER_MAX ((size_t)16 << 20)
#define QUEUE_ANSWER_TIMEOUT_MS 60000

struct qargs {
	const char *config;
	const char *overrides[QUEUE_OVERRIDES_MAX];
	size_t noverrides;
	const char *cmd;
	const char *id;
	const char *domain;
	int json;
};

static void
queue_usage(FILE *out)
{
	fprintf(out,
		"usage: postern queue [-c FILE] [-o section.key=value ...] COMMAND [--json]\n"
		"  list               every queued message and its recipients\n"
		"  show ID            one message: envelope, headers, delivery history\n"
		"  flush [ID] [--domain D]  attempt now (all, one, or one domain's)\n"
		"  hold ID | release ID | delete ID | bounce ID\n"
		"  status             the running daemon's queue\n");
}

static int
parse_args(int argc, char **argv, struct qargs *a)
{
	memset(a, 0, sizeof(*a));
	a->config = QUEUE_DEFAULT_CONFIG;
	for (int i = 2; i < argc; i++) {
		const char *s = argv[i];

		if (strcmp(s, "-c") == 0 && i + 1 < argc) {
			a->config = argv[++i];
		} else if (strcmp(s, "-o") == 0 && i + 1 < argc) {
			if (a->noverrides >= QUEUE_OVERRIDES_MAX)
				return -1;
			a->overrides[a->noverrides++] = argv[++i];
		} else if (strcmp(s, "--json") == 0) {
			a->json = 1;
		} else if (strcmp(s, "--domain") == 0 && i + 1 < argc) {
			a->domain = argv[++i];
		} else if (s[0] == '-') {
			return -1;
		} else if (a->cmd == NULL) {
			a->cmd = s;
		} else if (a->id == NULL) {
			a->id = s;
		} else {
			return -1;
		}
	}
	if (a->cmd == NULL)
		return -1;
	int takes_id = strcmp(a->cmd, "show") == 0 || strcmp(a->cmd, "hold") == 0 ||
		       strcmp(a->cmd, "release") == 0 || strcmp(a->cmd, "delete") == 0 ||
		       strcmp(a->cmd, "bounce") == 0;
	int bare = strcmp(a->cmd, "list") == 0 || strcmp(a->cmd, "status") == 0;
	if (strcmp(a->cmd, "flush") == 0)
		return a->id != NULL && a->domain != NULL ? -1 : 0;
	if (a->domain != NULL || (takes_id && a->id == NULL) || (bare && a->id != NULL) ||
	    (!takes_id && !bare))
		return -1;
	return 0;
}

/* ---- list and show ---------------------------------------------------- */

static void
fmt_time(int64_t t, char *out, size_t size)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (t <= 0 || gmtime_r(&tt, &tm) == NULL || strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		(void)snprintf(out, size, "-");
}

static void
print_human(const struct spool_view *v, int64_t now, int show)
{
	const struct spool_msg *m = v->msg;
	char when[32];

	fmt_time(m->received_at, when, sizeof(when));
	printf("%s %10llu %s (%llds)%s <%s>\n", m->qid, (unsigned long long)v->size, when,
	       (long long)(now > m->received_at ? now - m->received_at : 0),
	       m->held ? " HELD" : "", m->from);
	for (size_t i = 0; i < m->nrcpts; i++) {
		const struct spool_rcpt *r = &m->rcpts[i];

		fmt_time(!r->done && !r->failed ? r->next_try : 0, when, sizeof(when));
		printf("    %-7s <%s> attempts=%u next=%s%s%s\n", queue_rcpt_state(v, i), r->addr,
		       r->attempts, when, r->last != NULL ? " last=" : "",
		       r->last != NULL ? r->last : "");
	}
	if (!show)
		return;
	printf("  client %s helo %s\n  headers:\n", m->client, m->helo);
	fwrite(v->headers.data, 1, v->headers.len, stdout);
	if (v->headers_cut)
		printf("  (header section cut at %zu bytes)\n", SPOOL_VIEW_HEADERS_MAX);
	printf("  history:\n");
	for (size_t i = 0; i < v->nhist; i++)
		printf("    %s rcpt=%zu %s\n", v->hist[i].kind, v->hist[i].rcpt, v->hist[i].detail);
}

/* Writes buf to stdout and empties it. */
static int
flush_out(struct buf *b, int err)
{
	if (err || fwrite(b->data, 1, b->len, stdout) != b->len)
		return -1;
	buf_reset(b);
	return 0;
}

static int
cmd_list(struct spool *sp, const struct qargs *a)
{
	char **names = NULL;
	size_t n = 0, nbad = 0;
	int64_t now = (int64_t)time(NULL);
	struct buf out, bad;
	struct jw w, wb;
	int rc = 0;

	if (spool_admin_names(sp, &names, &n) < 0) {
		fprintf(stderr, "postern: cannot read the queue folder: %s\n", strerror(errno));
		return 1;
	}
	buf_init(&out, QUEUE_ANSWER_MAX);
	buf_init(&bad, QUEUE_ANSWER_MAX);
	jw_init(&w, &out);
	jw_init(&wb, &bad);
	if (a->json) {
		jw_open(&w, '{');
		jw_kstr(&w, "schema", QUEUE_JSON_SCHEMA);
		jw_kstr(&w, "command", "list");
		jw_kint(&w, "now", now);
		jw_key(&w, "messages");
		jw_open(&w, '[');
		jw_open(&wb, '[');
	}
	size_t shown = 0;
	for (size_t i = 0; i < n; i++) {
		struct spool_view v;
		const char *reason = NULL;
		int r = spool_view_read(sp, names[i], 0, &v, &reason);

		if (r == -2)
			continue;	/* delivered meanwhile */
		if (r < 0) {
			nbad++;
			if (a->json) {
				jw_open(&wb, '{');
				jw_kstr(&wb, "qid", names[i]);
				jw_kstr(&wb, "reason", reason);
				jw_close(&wb, '}');
			} else {
				printf("%s unreadable: %s\n", names[i], reason);
			}
			continue;
		}
		shown++;
		if (a->json)
			queue_json_message(&w, &v, now, 0);
		else
			print_human(&v, now, 0);
		spool_view_fini(&v);
		if (a->json && flush_out(&out, w.err) < 0)
			rc = 1;
	}
	if (a->json) {
		jw_close(&w, ']');
		jw_close(&wb, ']');
		jw_key(&w, "unreadable");
		if (!w.err && buf_append(&out, bad.data, bad.len) < 0)
			w.err = 1;
		jw_close(&w, '}');
		if (!w.err && buf_append_byte(&out, '\n') < 0)
			w.err = 1;
		if (flush_out(&out, w.err || wb.err) < 0)
			rc = 1;
	} else {
		printf("-- %zu message%s%s\n", shown, shown == 1 ? "" : "s",
		       nbad > 0 ? ", some unreadable" : "");
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	buf_fini(&out);
	buf_fini(&bad);
	return rc;
}

static void
log_qid(enum cond_id id, const char *qid, const struct kv *kvs, size_t n)
{
	struct log_ctx ctx = { .qid = qid };

	catalog_log(id, &ctx, kvs, n);
}

static int
cmd_show(struct spool *sp, const struct qargs *a)
{
	struct spool_view v;
	const char *reason = NULL;
	int64_t now = (int64_t)time(NULL);
	int r = spool_view_read(sp, a->id, SPOOL_VIEW_HISTORY | SPOOL_VIEW_HEADERS, &v, &reason);

	if (r == -2) {
		log_qid(COND_QUEUE_NOT_FOUND, NULL, NULL, 0);
		fprintf(stderr, "postern: %s: not in the queue [QUEUE-NOT-FOUND]\n", a->id);
		return 1;
	}
	if (r < 0) {
		fprintf(stderr, "postern: %s: %s\n", a->id, reason);
		return 1;
	}
	if (a->json) {
		struct buf out;
		struct jw w;

		buf_init(&out, QUEUE_ANSWER_MAX);
		jw_init(&w, &out);
		jw_open(&w, '{');
		jw_kstr(&w, "schema", QUEUE_JSON_SCHEMA);
		jw_kstr(&w, "command", "show");
		jw_kint(&w, "now", now);
		jw_key(&w, "message");
		queue_json_message(&w, &v, now, 1);
		jw_close(&w, '}');
		if (!w.err && buf_append_byte(&out, '\n') < 0)
			w.err = 1;
		r = flush_out(&out, w.err);
		buf_fini(&out);
	} else {
		print_human(&v, now, 1);
		r = 0;
	}
	spool_view_fini(&v);
	return r < 0 ? 1 : 0;
}

/* ---- the control socket ----------------------------------------------- */

/* Sends line to the daemon and reads its answer. 0; 1 when no daemon
 * listens (no socket, or refused); -1 on a failure after connecting. */
static int
control_ask(const char *state_dir, const char *line, struct buf *answer)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", state_dir,
			     CONTROL_SOCKET_NAME);
	uint64_t end = loop_clock_ms() + QUEUE_ANSWER_TIMEOUT_MS;

	if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
		return 1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = errno;

		close(fd);
		return err == ENOENT || err == ECONNREFUSED ? 1 : -1;
	}
	size_t len = strlen(line);
	if (send(fd, line, len, MSG_NOSIGNAL) != (ssize_t)len ||
	    send(fd, "\n", 1, MSG_NOSIGNAL) != 1) {
		close(fd);
		return -1;
	}
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		uint64_t now = loop_clock_ms();
		char tmp[4096];

		if (now >= end || poll(&pfd, 1, (int)(end - now)) <= 0)
			break;
		ssize_t r = read(fd, tmp, sizeof(tmp));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || buf_append(answer, tmp, (size_t)r) < 0)
			break;
	}
	close(fd);
	return answer->len > 0 && answer->data[answer->len - 1] == '\n' ? 0 : -1;
}

/* The string value of "key" in an answer of ours (queue_json.h), with
 * the escapes our writer makes undone; NULL when absent or null. */
static char *
answer_str(const struct buf *ans, const char *key)
{
	char pat[64];
	const char *p, *end = (const char *)ans->data + ans->len;

	if (snprintf(pat, sizeof(pat), "\"%s\":\"", key) >= (int)sizeof(pat))
		return NULL;
	p = memmem(ans->data, ans->len, pat, strlen(pat));
	if (p == NULL)
		return NULL;
	p += strlen(pat);
	struct buf s;
	buf_init(&s, ans->len + 1);
	while (p < end && *p != '"') {
		char c = *p++;

		if (c == '\\' && p < end) {
			c = *p++;
			c = c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c;
		}
		if (buf_append_byte(&s, (uint8_t)c) < 0)
			break;
	}
	char *out = xstrdup(buf_cstr(&s));
	buf_fini(&s);
	return out;
}

/* Prints an edit's answer; its exit code. */
static int
print_answer(const struct qargs *a, const struct buf *ans)
{
	int ok = memmem(ans->data, ans->len, "\"ok\":true", 9) != NULL;

	if (a->json) {
		if (fwrite(ans->data, 1, ans->len, stdout) != ans->len)
			return 1;
	} else {
		char *msg = answer_str(ans, "message"), *err = answer_str(ans, "error");
		char *via = answer_str(ans, "via");

		if (ok)
			printf("%s %s: %s (%s)\n", a->cmd, a->id != NULL ? a->id : a->domain != NULL
			       ? a->domain : "all", msg != NULL ? msg : "done", via != NULL ? via : "-");
		else
			fprintf(stderr, "postern: %s %s: %s [%s]\n", a->cmd,
				a->id != NULL ? a->id : "", msg != NULL ? msg : "failed",
				err != NULL ? err : "?");
		free(msg);
		free(err);
		free(via);
	}
	return ok ? 0 : 1;
}

/* ---- offline edits ---------------------------------------------------- */

/* 1 when a waiting recipient of v is in domain. */
static int
view_has_domain(const struct spool_view *v, const char *domain)
{
	for (size_t i = 0; i < v->msg->nrcpts; i++) {
		const struct spool_rcpt *r = &v->msg->rcpts[i];
		const char *at = strrchr(r->addr, '@');

		if (!r->done && !r->failed && at != NULL && strcasecmp(at + 1, domain) == 0)
			return 1;
	}
	return 0;
}

static enum cond_id
offline_flush(struct spool *sp, const struct qargs *a, long *count)
{
	char **names = NULL;
	size_t n = 0;
	enum cond_id err = COND__COUNT;

	if (a->id != NULL) {
		int one = 0, r = spool_admin_flush(sp, a->id, &one);

		*count = one;
		return r == -2 ? COND_QUEUE_NOT_FOUND : r < 0 ? COND_QUEUE_WRITE_FAILED : err;
	}
	if (spool_admin_names(sp, &names, &n) < 0)
		return COND_QUEUE_SPOOL_READ_FAILED;
	for (size_t i = 0; i < n; i++) {
		struct spool_view v;
		const char *reason;
		int one = 0, match = 1;

		if (a->domain != NULL) {
			if (spool_view_read(sp, names[i], 0, &v, &reason) < 0) {
				free(names[i]);
				continue;
			}
			match = view_has_domain(&v, a->domain);
			spool_view_fini(&v);
		}
		if (match && spool_admin_flush(sp, names[i], &one) == -1)
			err = COND_QUEUE_WRITE_FAILED;
		*count += one;
		free(names[i]);
	}
	free(names);
	return err;
}

static enum cond_id
offline_edit(struct spool *sp, const struct qargs *a, long *count, const char **text)
{
	int r = 0;
	const char *qid = a->id;

	*count = 0;
	if (strcmp(a->cmd, "flush") == 0) {
		enum cond_id e = offline_flush(sp, a, count);
		struct kv kvs[] = { KV("by", "offline"),
				    KV("scope", a->id != NULL ? a->id : a->domain != NULL ? a->domain : "all"),
				    KVI("count", *count) };

		if (e == COND__COUNT)
			log_qid(COND_QUEUE_FLUSHED, a->id, kvs, ARRAY_LEN(kvs));
		*text = "due at the next start";
		return e;
	}
	if (strcmp(a->cmd, "bounce") == 0) {
		size_t n = 0;

		/* failed records now, and released: the next start's pass
		 * sends the DSN and removes the message */
		r = spool_admin_bounce(sp, qid, &n);
		if (r == 0 && spool_admin_hold(sp, qid, 0) == 0) {
			struct kv kvs[] = { KV("by", "offline"), KVU("rcpts", n) };

			log_qid(COND_QUEUE_BOUNCED_BY_ADMIN, qid, kvs, ARRAY_LEN(kvs));
			*text = "failed; the DSN goes at the next start";
			*count = 1;
		}
		return r == -2 ? COND_QUEUE_NOT_FOUND : r < 0 ? COND_QUEUE_WRITE_FAILED : COND__COUNT;
	}
	if (strcmp(a->cmd, "hold") == 0 || strcmp(a->cmd, "release") == 0) {
		int on = a->cmd[0] == 'h';
		struct kv kvs[] = { KV("by", "offline") };

		r = spool_admin_hold(sp, qid, on);
		if (r == 0) {
			log_qid(on ? COND_QUEUE_HELD : COND_QUEUE_RELEASED, qid, kvs, 1);
			*text = on ? "held" : "released";
			*count = 1;
		}
	} else {	/* delete */
		size_t left = 0;

		r = spool_admin_delete(sp, qid, &left);
		if (r == 0) {
			struct kv kvs[] = { KV("by", "offline"), KVU("rcpts_left", left) };

			log_qid(COND_QUEUE_DELETED, qid, kvs, ARRAY_LEN(kvs));
			*text = "deleted";
			*count = 1;
		}
	}
	return r == -2 ? COND_QUEUE_NOT_FOUND : r < 0 ? COND_QUEUE_WRITE_FAILED : COND__COUNT;
}

/* An edit or status: through the daemon when one runs, else offline
 * under the queue lock. */
static int
cmd_edit(const struct config *cfg, struct spool *sp, const struct qargs *a)
{
	char line[CONTROL_LINE_MAX];
	struct buf ans;
	int lockfd = -1, rc;

	if (strcmp(a->cmd, "flush") == 0 && a->domain != NULL)
		rc = snprintf(line, sizeof(line), "flush @%s", a->domain);
	else
		rc = snprintf(line, sizeof(line), "%s%s%s", a->cmd, a->id != NULL ? " " : "",
			      a->id != NULL ? a->id : "");
	if (rc < 0 || (size_t)rc >= sizeof(line)) {
		queue_usage(stderr);
		return EX_USAGE;
	}
	buf_init(&ans, QUEUE_ANSWER_MAX);
	for (int tries = 0;; tries++) {
		rc = control_ask(cfg->server_state, line, &ans);
		if (rc == 0) {
			rc = print_answer(a, &ans);
			goto out;
		}
		if (rc < 0) {
			fprintf(stderr, "postern: the daemon's control socket did not answer\n");
			rc = 1;
			goto out;
		}
		buf_reset(&ans);
		if (spool_lock_take(cfg->server_spool, 0, &lockfd) == 0)
			break;
		if (tries == QUEUE_LOCK_RETRIES) {
			char *path = xasprintf("%s/%s", cfg->server_spool, SPOOL_LOCK_FILE);
			struct kv kvs[] = { KV("path", path) };

			catalog_log(COND_QUEUE_LOCKED, NULL, kvs, 1);
			fprintf(stderr, "postern: %s is held and no daemon answers [QUEUE-LOCKED]\n",
				path);
			free(path);
			rc = EX_TEMPFAIL;
			goto out;
		}
		(void)poll(NULL, 0, QUEUE_LOCK_RETRY_MS);
	}
	/* No daemon, and the lock is ours: a daemon starting now waits. */
	long count = 0;
	const char *text = "done";
	enum cond_id err = COND__COUNT;
	if (strcmp(a->cmd, "status") == 0) {
		char **names = NULL;
		size_t n = 0;

		if (spool_admin_names(sp, &names, &n) == 0)
			count = (long)n;
		for (size_t i = 0; i < n; i++)
			free(names[i]);
		free(names);
		text = "no daemon running";
	} else {
		err = offline_edit(sp, a, &count, &text);
	}
	if (err == COND_QUEUE_NOT_FOUND)
		log_qid(err, NULL, NULL, 0);
	else if (err == COND_QUEUE_COMMAND_UNAVAILABLE) {
		struct kv kvs[] = { KV("command", a->cmd) };

		catalog_log(err, NULL, kvs, 1);
	}
	if (err != COND__COUNT && err != COND_QUEUE_COMMAND_UNAVAILABLE)
		text = catalog_get(err)->logtext;
	if (queue_json_result(&ans, a->cmd, "offline", a->id != NULL ? a->id : a->domain != NULL
			      ? a->domain : "all", count, err, text) < 0) {
		rc = 1;
		goto out;
	}
	rc = print_answer(a, &ans);
out:
	spool_lock_release(&lockfd);
	buf_fini(&ans);
	return rc;
}

int
queue_cmd_main(int argc, char **argv)
{
	struct qargs a;
	struct diag d;
	struct config *cfg;
	struct spool *sp;
	int rc;

	if (parse_args(argc, argv, &a) < 0) {
		queue_usage(stderr);
		return EX_USAGE;
	}
	diag_init(&d);
	cfg = server_config_load(a.config, a.overrides, a.noverrides, &d);
	if (cfg == NULL) {
		diag_print(&d, stderr);
		diag_fini(&d);
		return EX_CONFIG;
	}
	diag_fini(&d);
	/* The edits' events go where the daemon's go (postsuper logs to the
	 * mail log too); stderr when that cannot be opened. */
	enum log_sev sev = LOG_SEV_INFO;
	if (log_sev_parse(cfg->log_level, &sev) < 0 || sev < LOG_SEV_INFO)
		sev = LOG_SEV_INFO;
	if (log_open(cfg->log_target, sev) < 0)
		(void)log_open("stderr", sev);
	sp = spool_admin_open(cfg->server_spool);
	if (sp == NULL) {
		fprintf(stderr, "postern: %s/queue: %s\n", cfg->server_spool, strerror(errno));
		config_unref(&cfg);
		log_close();
		return 1;
	}
	if (strcmp(a.cmd, "list") == 0)
		rc = cmd_list(sp, &a);
	else if (strcmp(a.cmd, "show") == 0)
		rc = cmd_show(sp, &a);
	else
		rc = cmd_edit(cfg, sp, &a);
	if (fflush(stdout) != 0)
		rc = 1;
	spool_admin_close(&sp);
	config_unref(&cfg);
	log_close();
	return rc;
}
