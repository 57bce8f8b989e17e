/*
 * smtp_message.c - the message itself: DATA and BDAT, the data streamed
 * to the body sink (the spool's file) through a bounded buffer, the end of
 * data judged by the policy chain, and the commit whose completion sends
 * the 250.
 *
 * Invariant: no message is ever whole in memory; the 250 goes out only
 * when the sink says the message is durable (commit_done).
 */
#include "smtp_session_private.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "spool.h"

void
smtp_data_summary(struct smtp_session *s, enum cond_id cause)
{
	struct log_ctx ctx;

	smtp_session_log_ctx(s, &ctx);
	struct kv kv[] = { KVU("nrcpt", s->txn.nrcpt_ok), KV("cause", catalog_get(cause)->id),
			   KV("reply", s->last_reply) };
	catalog_log(COND_SESSION_DATA, &ctx, kv, ARRAY_LEN(kv));
}

/* Checks that a transaction can take data; replies and returns -1 if not.
 * On success writes our Received field first into the message. */
/* A transaction takes data only with an accepted recipient: replies (or,
 * for BDAT, sets the chunk's refusal) and returns -1 if it has none. */
static int
data_check(struct smtp_session *s, int reply_now)
{
	if (s->txn.nrcpt_ok > 0)
		return 0;
	enum cond_id c = s->txn.nrcpt_tried > 0 ? COND_SMTP_NO_VALID_RCPTS : COND_SMTP_NEED_RCPT;
	struct kv kv[] = { KV("client", s->conn.peer_text), KVU("nbad", s->txn.nrcpt_bad) };
	if (reply_now) {
		smtp_session_refuse(s, c, kv, c == COND_SMTP_NO_VALID_RCPTS ? 2 : 1);
		smtp_data_summary(s, c);
	} else {
		s->txn.bdat_refusal = c;
	}
	return -1;
}

/* The body sink answered begin: the file is open (or failed, cond). */
static void
data_opened(struct loop *loop, void *arg, int status, enum cond_id cond)
{
	struct smtp_env *env = loop_get_data(loop);
	struct smtp_session *s = smtp_session_by_handle(env, (uintptr_t)arg);

	if (s == NULL)
		return;	/* cannot happen: an ended session aborted the sink */
	s->busy = 0;
	if (status < 0)
		body_sink_abort(&s->txn.sink);
	s->txn.opened(s, status, cond);
	smtp_session_resume(s);
}

static void data_begin(struct smtp_session *s);

/* The client's name is known (or its bound passed): the data begins. */
static void
data_name_known(void *arg)
{
	struct smtp_session *s = arg;

	s->busy = 0;
	data_begin(s);
	smtp_session_resume(s);
}

void
smtp_uri_tap(void *arg, const uint8_t *p, size_t n)
{
	uri_scan_feed(arg, p, n);
}

int
smtp_uribl_configured(const struct config *cfg)
{
	for (size_t i = 0; i < cfg->ndnsls; i++)
		if (!cfg->dnsls[i].allow && cfg->dnsls[i].type == DNSL_TYPE_URI)
			return 1;
	return 0;
}

/* 1 when the message's links are wanted: a URI list is configured and
 * the client is one the check uribl asks about. */
static int
smtp_uribl_wanted(const struct smtp_session *s)
{
	if (s->ptxn.trusted || s->ptxn.dnswl || s->auth_user[0] != '\0')
		return 0;
	return smtp_uribl_configured(s->cfg);
}

/* The data begins once the client's name is known (our Received field
 * shows it): at once, or, input held, when the lookup started at connect
 * ends (within smtp.peername_timeout). Then opened(s, status, cond)
 * runs as data_begin says. */
static void
data_start(struct smtp_session *s,
	   void (*opened)(struct smtp_session *s, int status, enum cond_id cond))
{
	s->txn.opened = opened;
	if (s->peername.status == PEERNAME_PENDING &&
	    !peername_need(&s->peername, &s->data_wait, data_name_known, s)) {
		s->busy = 1;
		return;
	}
	data_begin(s);
}

/* The data begins: a queue ID, our Received field first in the message,
 * the decoder set up, and the body sink (the spool file) opened on the
 * pool; input is held until s->txn.opened(s, status, cond) ran. */
static void
data_begin(struct smtp_session *s)
{
	struct spool_msg *m = s->txn.msg;
	struct buf *b = &s->txn.body;
	char date[64];
	struct tm tm;
	time_t now = time(NULL);

	spool_new_qid(s->env->spool, m->qid);
	m->received_at = (int64_t)now;
	localtime_r(&now, &tm);
	if (strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
		date[0] = '\0';
	/* RFC 3848 and RFC 6531 3.7.3: ESMTP, ESMTPS, ESMTPA, ESMTPSA,
	 * UTF8SMTP[S][A]; plain SMTP after HELO. */
	char proto[16];
	int auth = s->auth_user[0] != '\0';
	if (snprintf(proto, sizeof(proto), "%s%s%s",
		     s->txn.smtputf8 ? "UTF8SMTP" : s->ehlo ? "ESMTP" : "SMTP",
		     s->tls && (s->ehlo || s->txn.smtputf8) ? "S" : "",
		     auth && (s->ehlo || s->txn.smtputf8) ? "A" : "") < 0)
		proto[0] = '\0';
	buf_fini(b);
	buf_init(b, SPOOL_MAX_TRACE);
	int r = buf_appendf(b, "Received: from %s (%s [%s])\r\n\tby %s (Postern) with %s id %s",
			    s->helo, peername_name(&s->peername), s->conn.peer_text,
			    s->cfg->hostname, proto, m->qid);
	if (r == 0 && s->tls)
		r = buf_appendf(b, "\r\n\t(using %s with cipher %s (%d bits))",
				tls_conn_version(&s->conn), tls_conn_cipher(&s->conn),
				tls_conn_bits(&s->conn));
	if (r == 0 && m->nrcpts == 1)
		r = buf_appendf(b, "\r\n\tfor <%s>", m->rcpts[0].addr);
	if (r == 0)
		r = buf_appendf(b, "; %s\r\n", date);
	if (r < 0)
		PANIC("Received field does not fit");
	s->txn.hdr_len = b->len;
	s->txn.body_stored = 0;
	s->txn.body_max = b->len + s->cfg->limits_message_size;
	smtp_data_init(&s->txn.dec, strcmp(s->cfg->smtp_bare_lf, "reject") != 0);
	smtp_scan_init(&s->txn.scan, s->cfg->limits_line_length);
	uri_scan_free(&s->txn.uris);
	if (smtp_uribl_wanted(s)) {
		s->txn.uris = uri_scan_new(s->cfg->uribl_scan_size, s->cfg->uribl_max_domains);
		s->txn.scan.tap = smtp_uri_tap;
		s->txn.scan.tap_arg = s->txn.uris;
	}
	s->txn.data_started = 1;
	s->txn.sink_failed = 0;
	if (s->run.action == POLICY_DISCARD)
		s->txn.discard = 1;
	s->msgs_tried++;
	/* The envelope is final: the file is opened and it written on the
	 * pool, the loop waits (input held) for the answer. */
	body_sink_abort(&s->txn.sink);
	s->txn.sink = s->env->sink_new != NULL ? s->env->sink_new(s->env, m)
					      : spool_body_sink(s->env->spool, m);
	s->busy = 1;
	body_sink_begin(s->txn.sink, s->env->loop, data_opened,
			(void *)smtp_session_handle(s));
}

/* Room for decoded data: what the message may still store, so the decoder
 * counts (too_big) rather than stores past the limit. */
static void
body_room(struct txn *t)
{
	uint64_t used = t->body_stored + t->body.len;
	uint64_t left = t->body_max > used ? t->body_max - used : 0;

	t->body.max = t->body.len + (left < SIZE_MAX - t->body.len ? (size_t)left
								    : SIZE_MAX - t->body.len);
}

#define BODY_FLUSH (32 * 1024)	/* write to the sink from this much on */

/* Hands the buffered data to the sink (a write error is kept by the sink
 * and reported by the commit, after the data was read to its end). */
static void
body_flush(struct txn *t, int all)
{
	if (t->body.len == 0 || (!all && t->body.len < BODY_FLUSH))
		return;
	if (t->sink != NULL)
		(void)body_sink_write(t->sink, t->body.data, t->body.len);
	t->body_stored += t->body.len;
	buf_reset(&t->body);
}

static void data_decided(struct smtp_session *s);
static void data_go(struct smtp_session *s, int status, enum cond_id cond);

void
smtp_cmd_data(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	if (s->txn.chunking) {
		struct kv kv[] = { KV("client", s->conn.peer_text), KV("state", smtp_state_name(s->state)),
				   KV("cmd", "DATA") };
		smtp_session_refuse(s, COND_SMTP_SEQUENCE_ERROR, kv, ARRAY_LEN(kv));
		return;
	}
	if (data_check(s, 1) < 0)
		return;
	smtp_ask(s, POLICY_STAGE_DATA, data_decided);
}

static void
data_decided(struct smtp_session *s)
{
	if (smtp_run_refused(s)) {
		smtp_data_summary(s, smtp_refuse_verdict(s));
		return;
	}
	data_start(s, data_go);
}

/* DATA: the spool file is open (354), or not (451, the transaction
 * stays: the client may try DATA again or RSET). */
static void
data_go(struct smtp_session *s, int status, enum cond_id cond)
{
	if (status < 0) {
		s->txn.data_started = 0;
		smtp_reply_emit(s, cond, NULL, 0, 0, 0);	/* logged by the spool */
		smtp_data_summary(s, cond);
		return;
	}
	s->state = SMTP_STATE_DATA;
	smtp_session_reply(s, COND_SMTP_DATA_GO, NULL, 0);
	smtp_data_summary(s, COND_SMTP_DATA_GO);
}

/* A chunk that would take the message past the limit is refused at the
 * command: its octets are read and dropped, and the transaction ends with
 * the reply (message_size never passes the limit). Then the chunk is read. */
static void
bdat_read_chunk(struct smtp_session *s)
{
	if (!s->txn.bdat_discard &&
	    s->txn.bdat_chunk > s->cfg->limits_message_size - s->txn.message_size) {
		s->txn.bdat_discard = 1;
		s->txn.bdat_refusal = COND_CONTENT_SIZE_EXCEEDED;
	}
	s->state = SMTP_STATE_BDAT;
}

/* The first BDAT: the spool file is open, or the chunk is read and
 * dropped and answered with the failure. */
static void
bdat_go(struct smtp_session *s, int status, enum cond_id cond)
{
	if (status < 0) {
		s->txn.data_started = 0;
		s->txn.bdat_discard = 1;
		s->txn.sink_failed = 1;
		s->txn.bdat_refusal = cond;
	} else {
		s->txn.chunking = 1;
		s->txn.bdat_refusal = COND_SMTP_DATA_GO;
	}
	bdat_read_chunk(s);
}

static void
bdat_decided(struct smtp_session *s)
{
	if (smtp_run_refused(s)) {
		s->txn.bdat_discard = 1;
		s->txn.bdat_by_policy = 1;
		bdat_read_chunk(s);
		return;
	}
	data_start(s, bdat_go);
}

void
smtp_cmd_bdat(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	s->txn.bdat_left = cmd->chunk_size;
	s->txn.bdat_chunk = cmd->chunk_size;
	s->txn.bdat_last = cmd->last;
	s->txn.bdat_discard = 0;
	s->txn.bdat_by_policy = 0;
	if (!s->in_txn || s->state != SMTP_STATE_MAIL) {
		/* RFC 3030 2: a refused BDAT's octets are still read. */
		s->txn.bdat_discard = 1;
		s->txn.bdat_refusal = s->state == SMTP_STATE_INIT ? COND_SMTP_NEED_HELO
								  : COND_SMTP_NEED_RCPT;
	} else if (!s->txn.chunking) {
		if (s->txn.data_started) {
			s->txn.bdat_discard = 1;
			s->txn.bdat_refusal = COND_SMTP_SEQUENCE_ERROR;
		} else if (data_check(s, 0) < 0) {
			s->txn.bdat_discard = 1;
		} else {
			/* the first chunk: the data stage's checks first (the
			 * chunk's octets wait in the input meanwhile) */
			smtp_ask(s, POLICY_STAGE_DATA, bdat_decided);
			return;
		}
	}
	bdat_read_chunk(s);
}

/* A BDAT refused by the parser. Without a size its chunk cannot be found,
 * so nothing after it is a command: 421 and close. With a size (a bad end
 * marker) the refusal is sent and the chunk's octets are read and dropped
 * (RFC 3030 2). */
void
smtp_bdat_parse_refused(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	if (!cmd->has_chunk_size) {
		struct kv kv[] = { KV("client", s->conn.peer_text),
				   KVM("arg", cmd->arg.p, cmd->arg.len) };
		smtp_session_reply(s, COND_SMTP_BDAT_SIZE_INVALID, kv, ARRAY_LEN(kv));
		s->state = SMTP_STATE_CLOSING;
		s->end_cause = COND_SMTP_BDAT_SIZE_INVALID;
		return;
	}
	if (s->state == SMTP_STATE_CLOSING || s->dead)
		return;	/* limits.errors reached: nothing more is read */
	s->txn.bdat_left = cmd->chunk_size;
	s->txn.bdat_chunk = cmd->chunk_size;
	s->txn.bdat_last = 0;
	s->txn.bdat_discard = 1;
	s->txn.bdat_refusal = COND__COUNT;	/* already answered */
	s->state = SMTP_STATE_BDAT;
}

/* ---- message end ------------------------------------------------------ */

static void
commit_done(struct loop *loop, void *arg, int status, enum cond_id cond);

/* Checks the finished message and commits it, or refuses it. */
static void message_decided(struct smtp_session *s);

void
smtp_content_set(struct policy_content *c, const struct smtp_data *dec,
		 const struct smtp_scan *scan, uint64_t size, uint64_t limit)
{
	c->size = size;
	if (dec->too_big && c->size <= limit)
		c->size = limit + 1;
	c->bare_lf = dec->bare_lf;
	c->first_bare_lf = dec->first_bare_lf;
	c->line_too_long = scan->line_too_long;
	c->longest_line = scan->longest_line;
	c->received = scan->received;
	memcpy(c->msgid, scan->msgid, sizeof(c->msgid));
	c->msgid[sizeof(c->msgid) - 1] = '\0';
}

/* The message is in: what the decoder counted goes to the transaction,
 * and the end-of-data checks judge it. */
static void
message_finish(struct smtp_session *s)
{
	struct txn *t = &s->txn;

	smtp_content_set(&s->ptxn.content, &t->dec, &t->scan, t->message_size,
			 s->cfg->limits_message_size);
	if (t->uris != NULL)
		uri_scan_finish(t->uris);
	s->ptxn.content.uris = t->uris;
	s->ptxn.nrcpt_ok = t->nrcpt_ok;
	s->state = SMTP_STATE_COMMIT;	/* nothing more is read meanwhile */
	smtp_ask(s, POLICY_STAGE_END_OF_DATA, message_decided);
}

/* The checks' header fields (tags): stored after the data, put on top of
 * it by delivery (they are known only now, the data is on disk). */
_Static_assert(POLICY_HEADERS_MAX <= SPOOL_MAX_TAGS, "every tag fits the spool file");
static void
message_tag(struct smtp_session *s)
{
	struct spool_msg *m = s->txn.msg;
	const struct buf *h = &s->ptxn.headers;

	buf_reset(&m->tags);
	if (buf_append(&m->tags, h->data, h->len) < 0)
		PANIC("tags do not fit");	/* POLICY_HEADERS_MAX < SPOOL_MAX_TAGS */
}

/* Takes out of the message the destinations an end-of-data check dropped
 * (policy_dest.drop, in the message's recipient order); the session does
 * not know why. At least one is left (a check that drops all discards). */
static void
message_drop_dests(struct smtp_session *s)
{
	struct spool_msg *m = s->txn.msg;
	const struct policy_txn *pt = &s->ptxn;
	unsigned char *drop;
	size_t n = 0;

	if (pt->ndests != m->nrcpts)
		return;	/* cannot happen: added together (txn_add_target) */
	for (size_t i = 0; i < pt->ndests; i++)
		n += pt->dests[i].drop != 0;
	if (n == 0 || n == m->nrcpts)
		return;
	drop = xcalloc(m->nrcpts, 1);
	for (size_t i = 0; i < pt->ndests; i++)
		drop[i] = pt->dests[i].drop != 0;
	(void)spool_msg_drop_rcpts(m, drop);
	free(drop);
}

/* What commit_done needs, even after the session ended: the session's
 * handle, and the checks' work for when the message's fate is known. */
struct commit_ctx {
	uintptr_t handle;
	struct policy_afters after;
};

/* Commits the judged message, refuses it, or (discard) answers 250 and
 * drops it. */
static void
message_decided(struct smtp_session *s)
{
	struct txn *t = &s->txn;

	if (smtp_run_refused(s)) {
		struct kv kvs[POLICY_PARAMS_MAX];
		size_t n;
		enum cond_id c = smtp_run_cond(s, kvs, &n);

		s->state = SMTP_STATE_READY;
		smtp_session_refuse(s, c, kvs, n);
		smtp_txn_summary(s, s->run.action == POLICY_TEMPFAIL ? "tempfail" : "rejected", c);
		smtp_txn_free(s);
		return;
	}
	if (t->discard || s->run.action == POLICY_DISCARD) {
		struct kv kv[] = { KV("qid", t->msg->qid) };

		s->state = SMTP_STATE_READY;
		s->msgs_ok++;
		smtp_session_flag(s, "discarded");
		smtp_session_reply(s, COND_SMTP_MSG_ACCEPTED, kv, 1);
		smtp_txn_summary(s, "discarded", COND_SMTP_MSG_ACCEPTED);
		policy_chain_accepted(s->chain, &s->ptxn, POLICY_EVENT_MESSAGE_ACCEPTED,
				      s->env->loop);
		smtp_txn_free(s);
		return;
	}
	if (t->dec.bare_lf > 0)
		smtp_session_flag(s, "bare_lf_fixed");
	body_flush(t, 1);
	message_tag(s);
	message_drop_dests(s);
	struct commit_ctx *cc = xcalloc(1, sizeof(*cc));
	cc->handle = ((uintptr_t)s->slot << 32) | s->gen;
	policy_afters_take(&s->ptxn, &cc->after);
	struct spool_msg *m = t->msg;
	t->msg = NULL;	/* the spool owns it now; keep qid for the logs */
	/* keep a copy of the qid for the summary, the txn no longer has msg */
	t->msg = spool_msg_new(0);
	memcpy(t->msg->qid, m->qid, sizeof(m->qid));
	free(t->msg->from);
	t->msg->from = xstrdup(m->from);
	struct body_sink *sk = t->sink;
	t->sink = NULL;	/* the commit frees it */
	body_sink_commit(sk, m, s->env->loop, commit_done, cc);
}

static void
commit_done(struct loop *loop, void *arg, int status, enum cond_id cond)
{
	struct smtp_env *env = loop_get_data(loop);
	struct commit_ctx *cc = arg;
	struct smtp_session *s = smtp_session_by_handle(env, cc->handle);

	policy_afters_run(&cc->after, status == 0);
	free(cc);
	if (s == NULL)
		return;	/* the client left; the message (if durable) is delivered */
	if (status == 0) {
		struct kv kv[] = { KV("qid", s->txn.msg->qid) };
		s->msgs_ok++;
		s->junk = 0;	/* as Postfix: forgiven after an accepted message */
		smtp_session_reply(s, COND_SMTP_MSG_ACCEPTED, kv, 1);
		smtp_txn_summary(s, "accepted", COND_SMTP_MSG_ACCEPTED);
		policy_chain_accepted(s->chain, &s->ptxn, POLICY_EVENT_MESSAGE_ACCEPTED,
				      s->env->loop);
	} else {
		/* The spool logged the failure with its path and errno. */
		smtp_reply_emit(s, cond, NULL, 0, 0, 0);
		smtp_txn_summary(s, "tempfail", cond);
	}
	smtp_txn_free(s);
	/* While the server drains, the session goes on until the client
	 * quits or the grace period ends. */
	if (s->state == SMTP_STATE_COMMIT)
		s->state = SMTP_STATE_READY;
	smtp_session_resume(s);
}

/* ---- input: the data as it arrives ------------------------------------ */

void
smtp_data_input(struct smtp_session *s)
{
	struct txn *t = &s->txn;
	struct slice u = buf_unread(&s->in, s->in_off);
	body_room(t);
	size_t used = smtp_data_feed(&t->dec, u.p, u.len, &t->body, &t->scan);

	s->in_off += used;
	body_flush(t, 0);
	smtp_session_active(s);
	t->message_size = t->dec.size;
	if (t->dec.done) {
		s->cmd_t0_us = metrics_now_us();	/* the end of data is the command */
		message_finish(s);
	}
}

void
smtp_bdat_input(struct smtp_session *s)
{
	struct txn *t = &s->txn;
	struct slice u = buf_unread(&s->in, s->in_off);
	size_t take = u.len < t->bdat_left ? u.len : (size_t)t->bdat_left;

	if (!t->bdat_discard && take > 0) {
		/* Bare LF as in DATA (smtp.bare_lf); the limit counts octets
		 * as sent, checked per chunk at the command. */
		body_room(t);
		smtp_data_chunk(&t->dec, u.p, take, &t->body, &t->scan);
		t->message_size += take;
		body_flush(t, 0);
	}
	s->in_off += take;
	if (take > 0)
		smtp_session_active(s);
	t->bdat_left -= take;
	if (t->bdat_left > 0)
		return;
	/* The chunk is complete. */
	int first = 0;
	if (t->bdat_discard) {
		enum cond_id c = t->bdat_refusal;
		struct kv kv[] = { KV("client", s->conn.peer_text), KV("state", "bdat"),
				   KV("cmd", "BDAT") };
		s->state = !s->in_txn ? (s->helo[0] ? SMTP_STATE_READY : SMTP_STATE_INIT)
				      : SMTP_STATE_MAIL;
		if (t->bdat_by_policy) {
			struct kv kvs[POLICY_PARAMS_MAX];
			size_t n;

			t->bdat_by_policy = 0;
			c = smtp_run_cond(s, kvs, &n);
			smtp_session_refuse(s, c, kvs, n);
			smtp_data_summary(s, c);
			return;
		}
		if (c == COND__COUNT)
			return;	/* refused by the parser, answered then */
		if (t->sink_failed) {
			/* the spool file could not be made: logged there */
			t->sink_failed = 0;
			smtp_reply_emit(s, c, NULL, 0, 0, 0);
			smtp_data_summary(s, c);
			return;
		}
		if (c == COND_CONTENT_SIZE_EXCEEDED) {
			struct kv ks[] = { KV("client", s->conn.peer_text),
					   KVU("size", t->message_size + t->bdat_chunk),
					   KVU("limit", s->cfg->limits_message_size) };
			smtp_session_refuse(s, c, ks, ARRAY_LEN(ks));
			smtp_data_summary(s, c);
			smtp_txn_summary(s, "rejected", c);
			smtp_txn_free(s);
			if (s->state != SMTP_STATE_CLOSING)
				s->state = SMTP_STATE_READY;
			return;
		}
		if (c == COND_SMTP_NO_VALID_RCPTS) {
			struct kv kb[] = { KV("client", s->conn.peer_text),
					   KVU("nbad", s->txn.nrcpt_bad) };
			smtp_session_refuse(s, c, kb, 2);
		} else if (c == COND_SMTP_SEQUENCE_ERROR) {
			smtp_session_refuse(s, c, kv, 3);
		} else {
			kv[1] = kv[2];
			smtp_session_refuse(s, c, kv, 2);
		}
		if (s->in_txn)
			smtp_data_summary(s, c);
		return;
	}
	if (t->bdat_refusal == COND_SMTP_DATA_GO) {
		first = 1;
		t->bdat_refusal = COND__COUNT;
	}
	if (!t->bdat_last) {
		struct kv kv[] = { KVU("size", t->bdat_chunk) };
		s->state = SMTP_STATE_MAIL;
		smtp_session_reply(s, COND_SMTP_BDAT_OK, kv, 1);
		if (first)
			smtp_data_summary(s, COND_SMTP_BDAT_OK);
		return;
	}
	if (first)
		smtp_data_summary(s, COND_SMTP_MSG_ACCEPTED);
	s->state = SMTP_STATE_MAIL;
	s->cmd_t0_us = metrics_now_us();	/* the last chunk is the command */
	message_finish(s);
}

