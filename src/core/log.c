/*
 * log.c - formats logfmt lines and hands them to the log thread (log.h).
 *
 * Owns the log target (an fd or syslog), the minimum severity and the one
 * log thread. The calling thread only formats a line (bounded buffer) and
 * pushes it on the bounded queue (log_queue.c); the log thread, woken once
 * per batch, writes every waiting line (writev, or syslog()). Debug lines
 * are dropped when the queue is full and counted; the count is reported
 * through the hook set by log_set_drop_report(). Lines at crit, lines
 * logged before log_open() and after log_close(), and lines of the log
 * thread itself are written directly by the caller. The catalog decides
 * what is said; this file only decides how it looks.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <signal.h>
#include <syslog.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log_queue.h"

#define LOG_LINE_MAX 8192
#define LOG_VALUE_MAX 256
#define LOG_REPLY_MAX 512
#define LOG_CHECKS_MAX 2048	/* SESSION-MESSAGE checks=: up to 32 checks */
#define LOG_QUEUE_LINES 8192	/* default; log.queue_lines */

#define LOG_QUEUE_BYTES (8u << 20)
#define LOG_BATCH 64		/* lines per writev */
#define LOG_DROP_REPORT_S 10	/* at most one drop report per interval */

static int log_fd = 2;
static int log_syslog;
static int log_min = LOG_SEV_INFO;

static struct log_queue log_q;
static size_t log_q_lines = LOG_QUEUE_LINES;
static pthread_t log_thread;
static int log_running;		/* the thread runs: lines go through log_q */
static __thread int log_is_thread;
static void (*log_drop_hook)(uint64_t dropped, uint64_t total);

static const char *const sev_names[] = {
	"debug", "info", "notice", "warning", "error", "crit",
};

const char *
log_errno_name(int err)
{
	const char *n = strerrorname_np(err);

	return n ? n : "EUNKNOWN";
}

const char *
log_sev_name(enum log_sev sev)
{
	if ((unsigned)sev >= ARRAY_LEN(sev_names))
		return "?";
	return sev_names[sev];
}

int
log_sev_parse(const char *name, enum log_sev *out)
{
	for (size_t i = 0; i < ARRAY_LEN(sev_names); i++) {
		if (strcasecmp(name, sev_names[i]) == 0) {
			*out = (enum log_sev)i;
			return 0;
		}
	}
	return -1;
}

static void *log_thread_main(void *arg);

static int
log_start(void)
{
	if (log_running)
		return 0;
	sigset_t all, old;
	log_queue_init(&log_q, log_q_lines, LOG_QUEUE_BYTES);
	/* The thread is born with every signal blocked: the daemon's signals
	 * belong to the main thread's sigwaitinfo(), even when log_open()
	 * runs before the main thread blocks them. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int e = pthread_create(&log_thread, NULL, log_thread_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0) {
		log_queue_fini(&log_q);
		return -1;	/* lines are then written by their callers */
	}
	__atomic_store_n(&log_running, 1, __ATOMIC_RELEASE);
	return 0;
}

void
log_set_queue_lines(size_t lines)
{
	if (lines > 0)
		log_q_lines = lines;
}

void
log_set_drop_report(void (*fn)(uint64_t dropped, uint64_t total))
{
	log_drop_hook = fn;
}

void
log_flush(void)
{
	if (__atomic_load_n(&log_running, __ATOMIC_ACQUIRE) && !log_is_thread)
		log_queue_flush(&log_q);
}

/* A daemon killed while its log thread wrote may have left the file's last
 * line cut: the next start writes its first line on a line of its own.
 * (At start, before the loops run.) */
static void
log_fresh_line(int fd)
{
	char last;
	off_t end = lseek(fd, 0, SEEK_END);

	if (end > 0 && pread(fd, &last, 1, end - 1) == 1 && last != '\n' &&
	    write(fd, "\n", 1) != 1) {
		/* the next line will start after the cut one; nothing else */
	}
}

int
log_open(const char *target, enum log_sev min_sev)
{
	log_set_min(min_sev);
	log_flush();	/* lines already queued go to the old target */
	if (target == NULL || *target == '\0' || strcmp(target, "stderr") == 0) {
		log_fd = 2;
		log_syslog = 0;
		(void)log_start();
		return 0;
	}
	if (strcmp(target, "syslog") == 0) {
		openlog("postern", LOG_PID | LOG_NDELAY, LOG_MAIL);
		log_syslog = 1;
		(void)log_start();
		return 0;
	}
	int fd = open(target, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return -1;
	log_fresh_line(fd);
	if (log_fd > 2)
		close(log_fd);
	log_fd = fd;
	log_syslog = 0;
	(void)log_start();
	return 0;
}

void
log_set_min(enum log_sev min_sev)
{
	__atomic_store_n(&log_min, (int)min_sev, __ATOMIC_RELAXED);
}

int
log_enabled(enum log_sev sev)
{
	return (int)sev >= __atomic_load_n(&log_min, __ATOMIC_RELAXED);
}

void
log_close(void)
{
	if (log_running) {
		/* The thread writes every line still queued, reports drops
		 * not yet reported, and ends. */
		log_queue_stop(&log_q);
		pthread_join(log_thread, NULL);
		__atomic_store_n(&log_running, 0, __ATOMIC_RELEASE);
		log_queue_fini(&log_q);
	}
	if (log_syslog)
		closelog();
	if (log_fd > 2)
		close(log_fd);
	log_fd = 2;
	log_syslog = 0;
}

/* Length of the valid UTF-8 sequence at p (2..4), or 0. */
static size_t
utf8_seq(const uint8_t *p, size_t n)
{
	size_t need;
	uint32_t cp;

	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		need = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		need = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		need = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (n < need)
		return 0;
	for (size_t i = 1; i < need; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((need == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (need == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return need;
}

static int
needs_quotes(const uint8_t *p, size_t n)
{
	if (n == 0)
		return 1;
	for (size_t i = 0; i < n; i++) {
		if (p[i] <= ' ' || p[i] >= 0x7f || p[i] == '"' || p[i] == '\\' || p[i] == '=')
			return 1;
	}
	return 0;
}

static int
append_value(struct buf *out, const uint8_t *p, size_t n, size_t maxlen, int bracket)
{
	int cut = 0;

	if (n > maxlen) {
		n = maxlen;
		cut = 1;
	}
	if (!bracket && !cut && !needs_quotes(p, n))
		return buf_append(out, p, n);
	if (bracket && n == 0)
		return buf_append(out, "<>", 2);
	if (!needs_quotes(p, n) && !cut) {
		/* <addr> without odd bytes stays bare */
		if (buf_append_byte(out, '<') < 0 || buf_append(out, p, n) < 0)
			return -1;
		return buf_append_byte(out, '>');
	}
	if (buf_append_byte(out, '"') < 0)
		return -1;
	if (bracket && buf_append_byte(out, '<') < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		int r;

		if (c == '"' || c == '\\')
			r = buf_appendf(out, "\\%c", c);
		else if (c == '\n')
			r = buf_append(out, "\\n", 2);
		else if (c == '\r')
			r = buf_append(out, "\\r", 2);
		else if (c == '\t')
			r = buf_append(out, "\\t", 2);
		else if (c < 0x20 || c == 0x7f)
			r = buf_appendf(out, "\\x%02x", c);
		else if (c >= 0x80) {
			size_t k = utf8_seq(p + i, n - i);
			if (k > 0) {
				r = buf_append(out, p + i, k);
				i += k - 1;
			} else {
				r = buf_appendf(out, "\\x%02x", c);
			}
		} else
			r = buf_append_byte(out, c);
		if (r < 0)
			return -1;
	}
	if (bracket && buf_append_byte(out, '>') < 0)
		return -1;
	if (cut && buf_append(out, "...", 3) < 0)
		return -1;
	return buf_append_byte(out, '"');
}

int
log_format_value(struct buf *out, const struct kv *kv)
{
	size_t maxlen = strcmp(kv->key, "reply") == 0 || strcmp(kv->key, "last_reject") == 0
			? LOG_REPLY_MAX
			: strcmp(kv->key, "checks") == 0 ? LOG_CHECKS_MAX : LOG_VALUE_MAX;
	size_t before = out->len;
	int r;

	switch (kv->type) {
	case KV_STR:
		r = append_value(out, (const uint8_t *)(kv->s ? kv->s : ""),
				 kv->s ? strlen(kv->s) : 0, maxlen, 0);
		break;
	case KV_MEM:
		r = append_value(out, (const uint8_t *)kv->s, kv->len, maxlen, 0);
		break;
	case KV_ADDR:
		r = append_value(out, (const uint8_t *)kv->s, kv->len, maxlen, 1);
		break;
	case KV_U64:
		r = buf_appendf(out, "%" PRIu64, kv->u);
		break;
	case KV_I64:
		r = buf_appendf(out, "%" PRId64, kv->i);
		break;
	default:
		r = -1;
	}
	if (r < 0)
		return -1;
	return (int)(out->len - before);
}

/* ---- writing: the log thread, or the caller when it must ------------ */

static void
log_syslog_line(int sev, const char *p, size_t len)
{
	static const int prio[] = { LOG_DEBUG, LOG_INFO, LOG_NOTICE, LOG_WARNING,
				    LOG_ERR, LOG_CRIT };

	if (sev < 0 || (size_t)sev >= ARRAY_LEN(prio))
		sev = LOG_SEV_CRIT;
	syslog(prio[sev], "%.*s", (int)(len > 0 ? len - 1 : 0), p);	/* no '\n' */
}

/* Writes n lines (each ending in '\n') to the target, in order. */
static void
log_write_items(const struct log_item *items, size_t n)
{
	if (log_syslog) {
		for (size_t i = 0; i < n; i++)
			log_syslog_line(items[i].sev, items[i].line, items[i].len);
		return;
	}
	for (size_t i = 0; i < n;) {
		struct iovec iov[LOG_BATCH];
		size_t k = 0;
		while (k < LOG_BATCH && i + k < n) {
			iov[k].iov_base = items[i + k].line;
			iov[k].iov_len = items[i + k].len;
			k++;
		}
		i += k;
		struct iovec *v = iov;
		while (k > 0) {
			ssize_t w = writev(log_fd, v, (int)k);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break;	/* the target is gone: nowhere to say so */
			size_t done = (size_t)w;
			while (k > 0 && done >= v->iov_len) {
				done -= v->iov_len;
				v++;
				k--;
			}
			if (k > 0) {
				v->iov_base = (char *)v->iov_base + done;
				v->iov_len -= done;
			}
		}
	}
}

static void
log_report_drops(uint64_t *reported, time_t *last, int final)
{
	uint64_t total = log_queue_dropped(&log_q);
	time_t now = time(NULL);

	if (total == *reported || log_drop_hook == NULL)
		return;
	if (!final && *last != 0 && now - *last < LOG_DROP_REPORT_S)
		return;
	log_drop_hook(total - *reported, total);	/* logs from this thread */
	*reported = total;
	*last = now;
}

static void *
log_thread_main(void *arg)
{
	struct log_item batch[LOG_BATCH * 4];
	uint64_t reported = 0;
	time_t last = 0;
	size_t n;

	(void)arg;
	log_is_thread = 1;
	while ((n = log_queue_take(&log_q, batch, ARRAY_LEN(batch))) > 0) {
		log_write_items(batch, n);
		for (size_t i = 0; i < n; i++)
			free(batch[i].line);
		log_queue_done(&log_q);
		log_report_drops(&reported, &last, 0);
	}
	log_report_drops(&reported, &last, 1);
	return NULL;
}

/* Hands a finished line (ending in '\n') to the log thread, or writes it
 * here: before log_open, after log_close, on the log thread, and at crit
 * (the line of a failing start or a crash must be out before we exit).
 * Takes line's memory. */
static void
log_emit(enum log_sev sev, struct buf *line)
{
	if (__atomic_load_n(&log_running, __ATOMIC_ACQUIRE) && !log_is_thread &&
	    sev < LOG_SEV_CRIT) {
		char *p = (char *)line->data;
		size_t len = line->len;
		line->data = NULL;
		buf_fini(line);
		int r = log_queue_push(&log_q, p, len, (int)sev, sev <= LOG_SEV_DEBUG);
		if (r >= 0)
			return;
		struct log_item it = { p, len, (int)sev };	/* stopping */
		log_write_items(&it, 1);
		free(p);
		return;
	}
	if (sev >= LOG_SEV_CRIT)
		log_flush();	/* keep the order: what came before goes first */
	struct log_item it = { (char *)line->data, line->len, (int)sev };
	log_write_items(&it, 1);
	buf_fini(line);
}

void
log_write(enum log_sev sev, const char *event, const struct log_ctx *ctx,
	  const struct kv *kvs, size_t nkv, const char *msg)
{
	struct buf line;
	struct timespec ts;
	struct tm tm;
	int saved = errno;

	if (!log_enabled(sev))
		return;
	buf_init(&line, LOG_LINE_MAX - 1);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int r = 0;
	if (!log_syslog)
		r = buf_appendf(&line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ",
				tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
				tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
	if (r == 0)
		r = buf_appendf(&line, "sev=%s event=%s sid=%s qid=%s",
				log_sev_name(sev), event,
				ctx && ctx->sid ? ctx->sid : "-",
				ctx && ctx->qid && ctx->qid[0] ? ctx->qid : "-");
	if (r == 0 && ctx && ctx->tid)
		r = buf_appendf(&line, " tid=%s", ctx->tid);
	for (size_t i = 0; r == 0 && i < nkv; i++) {
		if (kvs[i].type == KV_STR && kvs[i].s == NULL)
			continue;	/* a key with no value is left out */
		if (strcmp(kvs[i].key, "qid") == 0 && ctx && ctx->qid && ctx->qid[0])
			continue;	/* already among the common keys */
		r = buf_appendf(&line, " %s=", kvs[i].key);
		if (r == 0 && log_format_value(&line, &kvs[i]) < 0)
			r = -1;
	}
	if (r == 0)
		r = buf_appendf(&line, " msg=\"%s\"", msg);	/* catalog text: no quotes */
	if (r < 0) {
		/* Too long even after cutting values: say so rather than lose it. */
		buf_reset(&line);
		if (buf_appendf(&line, "sev=%s event=%s sid=%s msg=\"log line too long\"",
				log_sev_name(sev), event, ctx && ctx->sid ? ctx->sid : "-") < 0) {
			buf_fini(&line);
			return;
		}
	}
	line.max++;	/* the newline always fits */
	if (buf_append_byte(&line, '\n') < 0)
		line.data[line.len - 1] = '\n';
	log_emit(sev, &line);
	buf_fini(&line);
	errno = saved;
}
