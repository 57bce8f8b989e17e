/*
 * catalog.h - lookups over catalog.def: every condition's reply, log event,
 * reference text, and how often each condition happened (counts for
 * /metrics). The table is const; nothing else in Postern holds the
 * words of a reply or an event.
 */
#ifndef POSTERN_CATALOG_H
#define POSTERN_CATALOG_H

#include <stddef.h>
#include <stdio.h>

#include "buf.h"
#include "kv.h"
#include "log.h"

enum cond_id {
#define COND(name, sev, code, esc, params, reply, logtext, desc, action, untested) COND_##name,
#include "catalog.def"
#undef COND
	COND__COUNT
};

struct cond {
	const char *id;		/* "RCPT-UNKNOWN-USER" */
	enum log_sev sev;
	int code;		/* 0: log only */
	const char *esc;	/* "" when none */
	const char *params;	/* "client,rcpt" */
	const char *reply;
	const char *logtext;
	const char *description;
	const char *action;
	const char *untested;	/* "" when the e2e suite reaches it */
};

const struct cond *catalog_get(enum cond_id id);
/* Case-insensitive lookup by shown ID ("rcpt-unknown-user"); -1 if none. */
int catalog_find(const char *id, enum cond_id *out);

/* Renders the reply for id into out (no CRLF): "550 5.1.1 text [ID]".
 * {key} placeholders are filled from kvs; "hostname" is always available
 * through the hostname argument. When more_follow is set, the code is
 * followed by '-' (multi-line reply). Returns -1 if it does not fit. */
int catalog_reply(struct buf *out, enum cond_id id, const char *hostname,
		  const struct kv *kvs, size_t nkv, int more_follow) WARN_UNUSED;

/* Renders only the row's reply text with its {key} placeholders filled
 * (no code, no [ID]); for protocols whose reply lines are the text itself
 * (POP3). Values are cut and cleaned as in catalog_reply. */
int catalog_render_text(struct buf *out, enum cond_id id, const char *hostname,
			const struct kv *kvs, size_t nkv) WARN_UNUSED;

/* Logs the event for id with its catalog severity and log text. Keys not
 * listed in the row's params are a programming error (ASSERT in debug
 * self-check, ignored otherwise). */
void catalog_log(enum cond_id id, const struct log_ctx *ctx,
		 const struct kv *kvs, size_t nkv);
/* Counts one occurrence of id (catalog_log does; a reply that is not
 * logged at the current level calls it). Lock-free, per thread shard. */
void catalog_count(enum cond_id id);
/* Occurrences of id since start (sum of the shards). */
uint64_t catalog_count_get(enum cond_id id);
/* Same, at an explicit severity (e.g. benign accept errors at debug). */
void catalog_log_sev(enum cond_id id, enum log_sev sev, const struct log_ctx *ctx,
		     const struct kv *kvs, size_t nkv);

/* Logs a refusal's event with its kvs and the reply that was sent (key
 * "reply"); at most 15 kvs are kept. */
void catalog_log_refusal(enum cond_id id, const struct log_ctx *ctx, const struct kv *kvs,
			 size_t nkv, const char *reply);
/* NET-TRACE for one protocol line (dir "in" or "out"), at debug. */
void catalog_trace(const struct log_ctx *ctx, const char *dir, const void *line, size_t len);

/* 1 if name (len octets) is a configuration option ("section.key"). */
typedef int (*catalog_option_fn)(const char *name, size_t len);

/* Markdown of one entry / the whole catalog (docs/events.md). With
 * is_option, the entry also says "Governed by:" the options its
 * operator action names (the section.key words is_option knows). */
void catalog_explain(FILE *out, enum cond_id id, catalog_option_fn is_option);
void catalog_markdown(FILE *out);
/* The section.key words of text that is_option knows, in order, each
 * once (names point into text); returns how many, at most 8. */
size_t catalog_options_named(const char *text, catalog_option_fn is_option,
			     const char *names[8], size_t lens[8]);

/* Checks the table's invariants; returns the number of problems and
 * prints each to err. */
int catalog_self_check(FILE *err);

#endif
