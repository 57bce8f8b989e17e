/*
 * log.h - the logging mechanism: one logfmt line per event.
 *
 * The words come from the catalog (catalog_log()); this file only formats
 * and writes. Line shape:
 *   ts=... sev=... event=ID sid=... qid=... [tid=...] key=value... msg="..."
 * After log_open() the calling thread never writes: lines go on a bounded
 * queue that one log thread drains (lines are whole, never interleaved).
 * On a full queue debug lines are dropped and counted; lines at info and
 * above make the caller wait for room; crit lines are written by the
 * caller after the queue is flushed. Values are quoted and escaped when needed; each value is cut
 * at 256 octets (512 for key "reply").
 */
#ifndef POSTERN_LOG_H
#define POSTERN_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "kv.h"

enum log_sev { LOG_SEV_DEBUG, LOG_SEV_INFO, LOG_SEV_NOTICE, LOG_SEV_WARNING,
	       LOG_SEV_ERROR, LOG_SEV_CRIT };

/* Who an event belongs to; all fields optional. */
struct log_ctx {
	const char *sid;	/* 16 hex digits, or NULL */
	const char *qid;	/* NULL shows as qid=- */
	const char *tid;	/* NULL: key left out */
};

const char *log_sev_name(enum log_sev sev);
/* The symbolic name of an errno value for log keys ("EFBIG"), or
 * "EUNKNOWN". */
const char *log_errno_name(int err);
int log_sev_parse(const char *name, enum log_sev *out);

/* Where lines go: "stderr" (default), "syslog", or a file path (appended).
 * Returns -1 with errno when the file cannot be opened. */
int log_open(const char *target, enum log_sev min_sev);
void log_set_min(enum log_sev min_sev);
int log_enabled(enum log_sev sev);
/* Writes every queued line and stops the log thread; later lines are
 * written by their callers. */
void log_close(void);
/* Queue size in lines (log.queue_lines); takes effect at the next
 * log_open() that starts the thread. */
void log_set_queue_lines(size_t lines);
/* Called on the log thread, at most once per 10 s and at log_close(), with
 * the debug lines dropped since the last call and in all. */
void log_set_drop_report(void (*fn)(uint64_t dropped, uint64_t total));
/* Waits until every line logged before the call is written. */
void log_flush(void);

void log_write(enum log_sev sev, const char *event, const struct log_ctx *ctx,
	       const struct kv *kvs, size_t nkv, const char *msg);

/* Appends one logfmt value (quoted/escaped as needed) to a string; used by
 * log_write and exposed for tests. Returns bytes written, or -1. */
struct buf;
int log_format_value(struct buf *out, const struct kv *kv);

#endif
