/*
 * pop3_cmd_trans.c - the POP3 TRANSACTION and UPDATE states (RFC 1939 5,
 * 6): STAT, LIST, UIDL, RETR, TOP, DELE, RSET, NOOP, QUIT. Listings are
 * produced as the output drains; messages stream from a worker's reads
 * (pop3_service.c) through the byte-stuffing encoder (pop3_parse.c); QUIT
 * hands the marks to the UPDATE job, which owns them and the mailbox lock
 * until the Maildir is updated.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pop3_session_private.h"

void
pop3_session_totals(const struct pop3_session *s, size_t *count, uint64_t *size)
{
	*count = 0;
	*size = 0;
	for (size_t i = 0; i < s->drop.n; i++) {
		if (s->drop.v[i].deleted)
			continue;
		(*count)++;
		*size += s->drop.v[i].size;
	}
}

/* ---- TRANSACTION --------------------------------------------------------- */

/* The message cmd names, or NULL after refusing. */
static struct pop3_msg *
find_msg(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	if (cmd->msgno > s->drop.n) {
		struct kv kv[] = { KV("user", s->mailbox), KVU("msgno", cmd->msgno),
				   KVU("count", s->drop.n) };
		pop3_session_reply(s, COND_POP3_MSG_OUT_OF_RANGE, kv, ARRAY_LEN(kv));
		return NULL;
	}
	struct pop3_msg *m = &s->drop.v[cmd->msgno - 1];
	if (m->deleted) {
		struct kv kv[] = { KV("user", s->mailbox), KVU("msgno", cmd->msgno) };
		pop3_session_reply(s, COND_POP3_MSG_DELETED, kv, ARRAY_LEN(kv));
		return NULL;
	}
	return m;
}

void
pop3_cmd_stat(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	size_t count;
	uint64_t size;

	(void)cmd;
	pop3_session_totals(s, &count, &size);
	struct kv kv[] = { KVU("count", count), KVU("size", size) };
	pop3_session_reply(s, COND_POP3_STAT, kv, ARRAY_LEN(kv));
}

/* Produces listing lines until the output is full or the list ends. */
void
pop3_list_more(struct pop3_session *s)
{
	while (!s->dead && s->list_next < s->drop.n && s->out.len < OUT_HIGH_WATER) {
		const struct pop3_msg *m = &s->drop.v[s->list_next++];
		if (m->deleted)
			continue;
		if (s->list_uidl)
			pop3_session_line(s, "%zu %s", s->list_next, m->uid);
		else
			pop3_session_line(s, "%zu %" PRIu64, s->list_next, m->size);
	}
	if (!s->dead && s->list_next >= s->drop.n) {
		pop3_session_line(s, ".");
		s->wait = WAIT_NONE;
	}
}

void
pop3_cmd_list(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	if (cmd->has_msgno) {
		struct pop3_msg *m = find_msg(s, cmd);
		if (m == NULL)
			return;
		if (cmd->verb == POP3_VERB_UIDL) {
			struct kv kv[] = { KVU("msgno", cmd->msgno), KV("uid", m->uid) };
			pop3_session_reply(s, COND_POP3_UIDL_ONE, kv, ARRAY_LEN(kv));
		} else {
			struct kv kv[] = { KVU("msgno", cmd->msgno), KVU("size", m->size) };
			pop3_session_reply(s, COND_POP3_LIST_ONE, kv, ARRAY_LEN(kv));
		}
		return;
	}
	size_t count;
	uint64_t size;
	pop3_session_totals(s, &count, &size);
	if (cmd->verb == POP3_VERB_UIDL) {
		struct kv kv[] = { KVU("count", count) };
		pop3_session_reply(s, COND_POP3_UIDL_ALL, kv, 1);
	} else {
		struct kv kv[] = { KVU("count", count), KVU("size", size) };
		pop3_session_reply(s, COND_POP3_LIST_ALL, kv, ARRAY_LEN(kv));
	}
	s->list_uidl = cmd->verb == POP3_VERB_UIDL;
	s->list_next = 0;
	s->wait = WAIT_LIST;
}

static void chunk_done(struct pop3_job *j);

void
pop3_chunk_request(struct pop3_session *s)
{
	struct pop3_job *j = pop3_job_new(s->env->svc, POP3_JOB_CHUNK, s->env, pop3_session_handle(s),
					  chunk_done);

	j->path = pop3_msg_path(&s->drop, &s->drop.v[s->msgi]);
	j->fd = s->fd;		/* the job owns the file while it reads */
	s->fd = -1;
	j->offset = s->offset;
	s->chunk_pending = 1;
	pop3_job_submit(j);
}

static void
stream_end(struct pop3_session *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	s->wait = WAIT_NONE;
	s->streaming = 0;
}

static void
chunk_done(struct pop3_job *j)
{
	struct pop3_session *s = pop3_session_by_handle(j->env, j->handle);

	if (s == NULL || s->dead || s->wait != WAIT_RETR) {
		pop3_job_free(j);	/* closes the file */
		return;
	}
	s->chunk_pending = 0;
	s->fd = j->fd;
	j->fd = -1;
	s->offset = j->offset;
	uint32_t msgno = (uint32_t)s->msgi + 1;
	if (j->err != 0) {
		struct kv kv[] = { KV("user", s->mailbox), KVU("msgno", msgno),
				   KV("path", j->path), KV("errno", log_errno_name(j->err)) };
		int started = s->streaming;
		stream_end(s);
		if (!started) {
			pop3_session_reply(s, COND_POP3_MSG_UNAVAILABLE, kv, ARRAY_LEN(kv));
		} else {
			/* Part of the message is out: no -ERR can follow it. */
			struct log_ctx ctx;
			pop3_session_log_ctx(s, &ctx);
			catalog_log(COND_POP3_MSG_UNAVAILABLE, &ctx, kv, ARRAY_LEN(kv));
			pop3_session_end(s, COND_POP3_MSG_UNAVAILABLE);
		}
		pop3_job_free(j);
		if (!s->dead)
			pop3_session_process(s);
		return;
	}
	if (!s->streaming) {
		s->streaming = 1;
		if (s->top) {
			struct kv kv[] = { KVU("msgno", msgno), KVU("lines", s->enc.top_lines) };
			pop3_session_reply(s, COND_POP3_TOP, kv, ARRAY_LEN(kv));
		} else {
			struct kv kv[] = { KVU("msgno", msgno), KVU("size", s->drop.v[s->msgi].size) };
			pop3_session_reply(s, COND_POP3_RETR, kv, ARRAY_LEN(kv));
		}
	}
	if (!s->dead && pop3_enc_feed(&s->enc, j->data.data, j->data.len, &s->out) < 0)
		pop3_session_end(s, COND_NET_CLIENT_WRITE_ERROR);
	if (!s->dead && (j->eof || s->enc.done)) {
		if (pop3_enc_finish(&s->enc, &s->out) < 0) {
			pop3_session_end(s, COND_NET_CLIENT_WRITE_ERROR);
		} else {
			if (!s->top) {
				s->drop.v[s->msgi].retrieved = 1;
				s->retr++;
			}
			stream_end(s);
		}
	}
	pop3_job_free(j);
	if (!s->dead)
		pop3_session_process(s);
}

void
pop3_cmd_retr(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	if (find_msg(s, cmd) == NULL)
		return;
	s->top = cmd->verb == POP3_VERB_TOP;
	s->msgi = cmd->msgno - 1;
	s->offset = 0;
	s->fd = -1;
	s->streaming = 0;
	pop3_enc_init(&s->enc, s->top, cmd->lines);
	s->wait = WAIT_RETR;
	pop3_chunk_request(s);
}

void
pop3_cmd_dele(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	struct pop3_msg *m = find_msg(s, cmd);

	if (m == NULL)
		return;
	m->deleted = 1;
	struct kv kv[] = { KVU("msgno", cmd->msgno) };
	pop3_session_reply(s, COND_POP3_DELE, kv, 1);
}

void
pop3_cmd_rset(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	size_t count;
	uint64_t size;

	(void)cmd;
	for (size_t i = 0; i < s->drop.n; i++) {
		s->drop.v[i].deleted = 0;
		s->drop.v[i].retrieved = 0;
	}
	pop3_session_totals(s, &count, &size);
	struct kv kv[] = { KVU("count", count), KVU("size", size) };
	pop3_session_reply(s, COND_POP3_RSET, kv, ARRAY_LEN(kv));
}

void
pop3_cmd_noop(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	(void)cmd;
	pop3_session_reply(s, COND_POP3_NOOP, NULL, 0);
}

/* ---- UPDATE ---------------------------------------------------------------- */

static void
update_done(struct pop3_job *j)
{
	struct pop3_session *s = pop3_session_by_handle(j->env, j->handle);

	if (s == NULL || s->dead || s->wait != WAIT_UPDATE) {
		pop3_job_free(j);
		return;
	}
	s->wait = WAIT_NONE;
	s->dele = j->dele;
	if (j->failed > 0) {
		struct kv kv[] = { KV("user", s->mailbox), KV("path", j->err_path),
				   KV("errno", log_errno_name(j->err)), KVU("count", j->failed) };
		pop3_session_reply(s, COND_POP3_UPDATE_FAILED, kv, ARRAY_LEN(kv));
		s->end_cause = COND_POP3_UPDATE_FAILED;
	} else {
		struct kv kv[] = { KV("user", s->mailbox), KVU("dele", j->dele), KVU("seen", j->seen),
				   KVU("count", s->drop.n - j->dele) };
		pop3_session_reply(s, COND_POP3_QUIT_UPDATE, kv, ARRAY_LEN(kv));
		s->end_cause = COND_POP3_QUIT_UPDATE;
	}
	s->state = POP3_STATE_CLOSING;
	pop3_job_free(j);
	pop3_session_process(s);
}

void
pop3_cmd_quit(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	(void)cmd;
	if (s->state == POP3_STATE_AUTH) {
		pop3_session_reply(s, COND_POP3_QUIT, NULL, 0);
		s->state = POP3_STATE_CLOSING;
		s->end_cause = COND_POP3_QUIT;
		return;
	}
	/* RFC 1939 6: the UPDATE state. Copy what changes; the job owns
	 * the copy and the lock until the Maildir is updated. */
	struct pop3_job *j = pop3_job_new(s->env->svc, POP3_JOB_UPDATE, s->env, pop3_session_handle(s),
					  update_done);
	j->drop.dir = xstrdup(s->drop.dir);
	j->drop.v = xcalloc(s->drop.n ? s->drop.n : 1, sizeof(*j->drop.v));
	for (size_t i = 0; i < s->drop.n; i++) {
		const struct pop3_msg *m = &s->drop.v[i];
		if (!m->deleted && !m->retrieved)
			continue;
		struct pop3_msg *c = &j->drop.v[j->drop.n++];
		*c = *m;
		c->name = xstrdup(m->name);
	}
	j->mailbox = xstrdup(s->mailbox);
	j->cfg = config_ref(s->cfg);	/* mail_root for the quota cache */
	j->locked = s->locked;
	s->locked = 0;
	s->wait = WAIT_UPDATE;
	pop3_job_submit(j);
}

