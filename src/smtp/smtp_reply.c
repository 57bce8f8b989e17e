/*
 * smtp_reply.c - every reply the SMTP session sends, and the counts that
 * close a session (limits.errors, limits.junk_commands).
 *
 * Replies take only catalog IDs: the row gives the code, the enhanced
 * status and the text; refusals are logged as their own event, and each
 * reply is kept for the summary lines. Nothing else writes to s->out.
 */
#include "smtp_session_private.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

static const char *const state_names[] = {
	"init", "ready", "mail", "data", "bdat", "commit", "closing", "tls",
};

void
smtp_session_log_ctx(const struct smtp_session *s, struct log_ctx *ctx)
{
	ctx->sid = s->sid;
	ctx->qid = s->in_txn && s->txn.msg && s->txn.msg->qid[0] ? s->txn.msg->qid : NULL;
	ctx->tid = s->in_txn ? s->txn.tid : NULL;
}

void
smtp_session_flag(struct smtp_session *s, const char *flag)
{
	size_t n = strlen(s->flags), f = strlen(flag);
	const char *p = s->flags;

	while ((p = strstr(p, flag)) != NULL) {	/* already there? */
		if ((p == s->flags || p[-1] == ',') && (p[f] == '\0' || p[f] == ','))
			return;
		p += f;
	}
	if (n + f + 2 > sizeof(s->flags))
		return;
	if (n > 0)
		s->flags[n++] = ',';
	memcpy(s->flags + n, flag, f + 1);
}

const char *
smtp_state_name(enum smtp_state st)
{
	return (unsigned)st < SMTP_STATE__COUNT ? state_names[st] : "?";
}

/* Queues the reply for cond. Refusals are logged as their own event at the
 * catalog's severity; normal replies only at debug (the summary lines
 * carry them). Returns the reply code. */
int
smtp_reply_emit(struct smtp_session *s, enum cond_id cond, const struct kv *kvs,
		   size_t nkv, int more, int log_refusal)
{
	const struct cond *c = catalog_get(cond);
	struct buf r;
	struct log_ctx ctx;

	if (s->dead)
		return c->code;
	buf_init(&r, REPLY_MAX - 3);
	if (catalog_reply(&r, cond, s->cfg->hostname, kvs, nkv, more) < 0) {
		buf_reset(&r);
		if (catalog_reply(&r, COND_INTERNAL_ERROR, s->cfg->hostname, NULL, 0, 0) < 0)
			PANIC("cannot render INTERNAL-ERROR reply");
	}
	if (slice_copy(buf_slice(&r), s->last_reply, sizeof(s->last_reply)) < 0)
		s->last_reply[0] = '\0';
	if (buf_append(&s->out, r.data, r.len) < 0 || buf_append(&s->out, "\r\n", 2) < 0) {
		/* The client does not read its replies: drop it. */
		buf_fini(&r);
		s->state = SMTP_STATE_CLOSING;
		smtp_session_end(s, COND_NET_CLIENT_WRITE_ERROR);
		return c->code;
	}
	smtp_session_log_ctx(s, &ctx);
	if (c->code >= 400) {
		s->rejects++;
		memcpy(s->last_reject, s->last_reply, sizeof(s->last_reject));
	}
	if (s->cmd_t0_us != 0) {	/* the first reply line to a command */
		metrics_observe(METRICS_H_REPLY_US, metrics_now_us() - s->cmd_t0_us);
		s->cmd_t0_us = 0;
	}
	if (c->code >= 400 && log_refusal) {
		catalog_log_refusal(cond, &ctx, kvs, nkv, s->last_reply);
	} else if (log_enabled(LOG_SEV_DEBUG)) {
		catalog_log_sev(cond, LOG_SEV_DEBUG, &ctx, kvs, nkv);
	} else {
		catalog_count(cond);
	}
	if (log_enabled(LOG_SEV_DEBUG))
		catalog_trace(&ctx, "out", r.data, r.len);
	buf_fini(&r);
	return c->code;
}

int
smtp_reply_more(struct smtp_session *s, enum cond_id cond, const struct kv *kvs,
		   size_t nkv, int more)
{
	return smtp_reply_emit(s, cond, kvs, nkv, more, 1);
}

int
smtp_session_reply(struct smtp_session *s, enum cond_id cond, const struct kv *kvs, size_t nkv)
{
	return smtp_reply_emit(s, cond, kvs, nkv, 0, 1);
}

/* Appends a raw continuation line of a multi-line reply (EHLO keywords). */
void
smtp_reply_line(struct smtp_session *s, int code, int more, const char *text)
{
	if (s->dead)
		return;
	if (buf_appendf(&s->out, "%d%c%s\r\n", code, more ? '-' : ' ', text) < 0)
		smtp_session_end(s, COND_NET_CLIENT_WRITE_ERROR);
}

/* Counts one toward a session limit (0: none); once *count reaches
 * close_at, replies cond (a 421) and closes. Returns 1 if closing. */
static int
session_count_toward(struct smtp_session *s, unsigned *count, unsigned limit,
		     unsigned close_at, enum cond_id cond)
{
	(*count)++;
	if (limit == 0 || *count < close_at)
		return 0;
	struct kv kv[] = { KV("client", s->conn.peer_text), KVU("count", *count),
			   KVU("limit", limit) };
	smtp_session_reply(s, cond, kv, ARRAY_LEN(kv));
	s->state = SMTP_STATE_CLOSING;
	s->end_cause = cond;
	return 1;
}

/* Counts a refusal toward limits.errors: the limit-th closes the session.
 * Returns 1 if the session is closing. */
int
smtp_count_error(struct smtp_session *s)
{
	unsigned limit = config_listener_uint(s->cfg, s->lst, CONFIG_OVER_LIMITS_ERRORS);

	return session_count_toward(s, &s->errors, limit, limit, COND_SMTP_TOO_MANY_ERRORS);
}

/* Replies with a refusal and counts it. */
void
smtp_session_refuse(struct smtp_session *s, enum cond_id cond, const struct kv *kvs, size_t nkv)
{
	smtp_session_reply(s, cond, kvs, nkv);
	(void)smtp_count_error(s);
}


/* Counts a junk command (NOOP, RSET, HELP, VRFY) toward
 * limits.junk_commands; past it replies 421 and closes. Returns 1 if the
 * session is closing (the command is not run). */
int
smtp_count_junk(struct smtp_session *s)
{
	unsigned limit = s->cfg->limits_junk_commands;

	return session_count_toward(s, &s->junk, limit, limit + 1,
				    COND_SMTP_TOO_MANY_JUNK_COMMANDS);
}
