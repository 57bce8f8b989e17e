/*
 * queue_json.h - the JSON of `postern queue --json` and of the control
 * socket's answers: schema "postern-queue/1" (docs/queue.md). One writer
 * for the command (offline) and the daemon (live), so both say the same.
 */
#ifndef POSTERN_QUEUE_JSON_H
#define POSTERN_QUEUE_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "catalog.h"

#define QUEUE_JSON_SCHEMA "postern-queue/1"

struct spool_view;

/* A writer over a buf: the first failed append (the buf's bound) is
 * remembered in err, so a caller checks once at the end. */
struct jw {
	struct buf *b;
	int err;
	int first;		/* no member written yet at this level */
};

void jw_init(struct jw *w, struct buf *b);
void jw_open(struct jw *w, char c);		/* '{' or '[' */
void jw_close(struct jw *w, char c);		/* '}' or ']' */
void jw_key(struct jw *w, const char *key);	/* in an object */
void jw_str(struct jw *w, const char *s);	/* NULL: null */
void jw_strn(struct jw *w, const void *p, size_t n);
void jw_int(struct jw *w, int64_t v);
void jw_bool(struct jw *w, int v);
void jw_null(struct jw *w);
/* key and value in one */
void jw_kstr(struct jw *w, const char *key, const char *s);
void jw_kint(struct jw *w, const char *key, int64_t v);
void jw_kbool(struct jw *w, const char *key, int v);

/* One message as list shows it (show = 1: with envelope details, the
 * header section and the history). now: unix seconds, for its age. */
void queue_json_message(struct jw *w, const struct spool_view *v, int64_t now, int show);

/* The answer to an edit or status command:
 *   {"schema":..., "command":..., "ok":..., "via":..., "target":...,
 *    "count":..., "error":ID or null, "message":text}
 * err COND__COUNT means ok. One line, LF-ended. */
int queue_json_result(struct buf *out, const char *command, const char *via,
		      const char *target, long count, enum cond_id err, const char *text);

/* A recipient's state word: "done", "failed", "held" or "waiting". */
const char *queue_rcpt_state(const struct spool_view *v, size_t i);

#endif
