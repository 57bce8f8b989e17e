/*
 * smtp_session.c - SMTP server session: one state machine per connection.
 *
 * Owns struct smtp_session, its connection, buffers, deadline timer and
 * the open transaction. Parsing is smtp_parse.c's, data decoding
 * smtp_data.c's, durability the spool's. Every reply goes through
 * session_reply(), which takes only catalog IDs and logs what it sends.
 *
 * Invariants: one reply per command, sent in command order (pipelined
 * commands wait in the input buffer while a command waits on the spool);
 * 250 after the data only once the spool says the message is durable; a
 * session is freed only from a deferred call, never inside its own
 * callback stack, and late spool completions find it by (slot,
 * generation) or are dropped.
 */
#include "smtp_session.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "core/cidr.h"
#include "core/log.h"
#include "net/net_conn.h"
#include "smtp/smtp_auth.h"
#include "smtp/smtp_data.h"
#include "smtp/smtp_parse.h"
#include "smtp/smtp_session_private.h"

static const char *const state_names[] = {
	"init", "ready", "mail", "data", "bdat", "commit", "closing", "tls",
};

static void session_process(struct smtp_session *s);
static void session_end(struct smtp_session *s, enum cond_id cause);
static void session_io(struct loop *loop, int fd, unsigned events, void *arg);

/* ---- helpers ---------------------------------------------------------- */

static void
log_ctx_of(const struct smtp_session *s, struct log_ctx *ctx)
{
	ctx->sid = s->sid;
	ctx->qid = s->in_txn && s->txn.msg && s->txn.msg->qid[0] ? s->txn.msg->qid : NULL;
	ctx->tid = s->in_txn ? s->txn.tid : NULL;
}

static void
flag_add(struct smtp_session *s, const char *flag)
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

static const char *
state_name(enum smtp_state st)
{
	return (unsigned)st < SMTP_STATE__COUNT ? state_names[st] : "?";
}

/* Queues the reply for cond. Refusals are logged as their own event at the
 * catalog's severity; normal replies only at debug (the summary lines
 * carry them). Returns the reply code. */
static int
session_reply_emit(struct smtp_session *s, enum cond_id cond, const struct kv *kvs,
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
		session_end(s, COND_NET_CLIENT_WRITE_ERROR);
		return c->code;
	}
	log_ctx_of(s, &ctx);
	if (c->code >= 400) {
		s->rejects++;
		memcpy(s->last_reject, s->last_reply, sizeof(s->last_reject));
	}
	if (c->code >= 400 && log_refusal) {
		struct kv all[16];
		size_t n = 0;
		for (size_t i = 0; i < nkv && n < ARRAY_LEN(all) - 1; i++)
			all[n++] = kvs[i];
		all[n++] = KV("reply", s->last_reply);
		catalog_log(cond, &ctx, all, n);
	} else if (log_enabled(LOG_SEV_DEBUG)) {
		catalog_log_sev(cond, LOG_SEV_DEBUG, &ctx, kvs, nkv);
	}
	if (log_enabled(LOG_SEV_DEBUG)) {
		struct kv t[] = { KV("dir", "out"), KVM("line", r.data, r.len) };
		catalog_log(COND_NET_TRACE, &ctx, t, 2);
	}
	buf_fini(&r);
	return c->code;
}

static int
session_reply_more(struct smtp_session *s, enum cond_id cond, const struct kv *kvs,
		   size_t nkv, int more)
{
	return session_reply_emit(s, cond, kvs, nkv, more, 1);
}

static int
session_reply(struct smtp_session *s, enum cond_id cond, const struct kv *kvs, size_t nkv)
{
	return session_reply_emit(s, cond, kvs, nkv, 0, 1);
}

/* Appends a raw continuation line of a multi-line reply (EHLO keywords). */
static void
session_reply_line(struct smtp_session *s, int code, int more, const char *text)
{
	if (s->dead)
		return;
	if (buf_appendf(&s->out, "%d%c%s\r\n", code, more ? '-' : ' ', text) < 0)
		session_end(s, COND_NET_CLIENT_WRITE_ERROR);
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
	session_reply(s, cond, kv, ARRAY_LEN(kv));
	s->state = SMTP_STATE_CLOSING;
	s->end_cause = cond;
	return 1;
}

/* Counts a refusal toward limits.errors: the limit-th closes the session.
 * Returns 1 if the session is closing. */
static int
session_count_error(struct smtp_session *s)
{
	unsigned limit = s->cfg->limits_errors;

	return session_count_toward(s, &s->errors, limit, limit, COND_SMTP_TOO_MANY_ERRORS);
}

/* Replies with a refusal and counts it. */
static void
session_refuse(struct smtp_session *s, enum cond_id cond, const struct kv *kvs, size_t nkv)
{
	session_reply(s, cond, kvs, nkv);
	(void)session_count_error(s);
}

/* Data: limits.data_timeout from now (from the last data read). Commands:
 * limits.command_timeout from the last command that did work, so junk
 * commands (NOOP, RSET, HELP, VRFY) and partial lines never extend it. */
static void
arm_deadline(struct smtp_session *s)
{
	if (s->state == SMTP_STATE_COMMIT || s->state == SMTP_STATE_CLOSING || s->busy) {
		loop_timer_cancel(s->env->loop, &s->deadline);
		return;
	}
	if (s->state == SMTP_STATE_DATA || s->state == SMTP_STATE_BDAT) {
		loop_timer_set(s->env->loop, &s->deadline,
			       (uint64_t)s->cfg->limits_data_timeout * 1000u);
		return;
	}
	uint64_t due = s->active_ms + (uint64_t)s->cfg->limits_command_timeout * 1000u;
	uint64_t now = loop_clock_ms();
	loop_timer_set(s->env->loop, &s->deadline, due > now ? due - now : 1);
}

/* A command or data that did work: the command deadline starts again. */
static void
session_active(struct smtp_session *s)
{
	s->active_ms = loop_clock_ms();
}

/* Counts a junk command (NOOP, RSET, HELP, VRFY) toward
 * limits.junk_commands; past it replies 421 and closes. Returns 1 if the
 * session is closing (the command is not run). */
static int
session_count_junk(struct smtp_session *s)
{
	unsigned limit = s->cfg->limits_junk_commands;

	return session_count_toward(s, &s->junk, limit, limit + 1,
				    COND_SMTP_TOO_MANY_JUNK_COMMANDS);
}

/* ---- the policy chain ------------------------------------------------- */

/* The checks see the session as it is when the command runs. */
static void
ptxn_sync(struct smtp_session *s)
{
	struct policy_txn *t = &s->ptxn;

	t->tls = s->tls;
	t->trusted = s->trusted;
	t->auth_user = s->auth_user;
	t->helo = s->helo;
	t->messages = s->msgs_ok;
}

static void
policy_decided(struct policy_run *run, void *arg)
{
	struct smtp_session *s = arg;
	int waited = s->busy;

	(void)run;
	s->busy = 0;
	s->decided(s);
	if (waited)
		smtp_session_resume(s);
}

/* Asks stage's checks; decided(s) runs with the result in s->run, before
 * this returns when every check answers at once, else when the last one
 * does. Input is held meanwhile (s->busy), so replies keep command order. */
static void
session_ask(struct smtp_session *s, enum policy_stage stage,
	    void (*decided)(struct smtp_session *s))
{
	ptxn_sync(s);
	s->decided = decided;
	policy_run_start(&s->run, s->env->loop, s->chain, stage, &s->ptxn, s, policy_decided, s);
	if (policy_run_running(&s->run))
		s->busy = 1;
}

/* 1 if the run refused the command (tempfail or reject). */
static int
run_refused(const struct smtp_session *s)
{
	return s->run.action == POLICY_TEMPFAIL || s->run.action == POLICY_REJECT;
}

/* The deciding verdict's condition and params (a check that refused
 * without naming a condition is a bug: INTERNAL-ERROR). */
static enum cond_id
run_cond(const struct smtp_session *s, struct kv kvs[POLICY_PARAMS_MAX], size_t *n)
{
	if (s->run.verdict.cond >= COND__COUNT) {
		kvs[0] = KV("where", s->run.decided_by ? s->run.decided_by : "policy");
		kvs[1] = KV("detail", "check refused without a condition");
		*n = 2;
		return COND_INTERNAL_ERROR;
	}
	*n = policy_verdict_kvs(&s->run.verdict, kvs);
	return s->run.verdict.cond;
}

static void
pending_clear(struct smtp_pending *p)
{
	free(p->envid);
	free(p->orcpt);
	memset(p, 0, sizeof(*p));
}

/* The local part without quoting: "a\"b" -> a"b. Returns -1 if it does
 * not fit. */
static int
local_unquote(struct slice local, char *out, size_t outsize)
{
	size_t n = 0;

	if (local.len >= 2 && local.p[0] == '"' && local.p[local.len - 1] == '"') {
		for (size_t i = 1; i + 1 < local.len; i++) {
			uint8_t c = local.p[i];
			if (c == '\\' && i + 2 < local.len)
				c = local.p[++i];
			if (n + 1 >= outsize)
				return -1;
			out[n++] = (char)c;
		}
		out[n] = '\0';
		return 0;
	}
	return slice_copy(local, out, outsize);
}

/* Copies a command's path into a transaction slot. -1 (and the slot with
 * the mailbox only) if the local part does not fit once unquoted. */
static int
path_copy(struct policy_path *slot, const struct smtp_path *p)
{
	char local[320] = "";
	int r = p->is_postmaster || p->is_null ? 0 : local_unquote(p->local, local, sizeof(local));

	if (r < 0)
		local[0] = '\0';
	policy_path_set(slot, p->mailbox.len ? (const char *)p->mailbox.p : "", p->mailbox.len,
			local, strlen(local), p->domain.len ? (const char *)p->domain.p : "",
			p->domain.len);
	slot->is_null = p->is_null;
	slot->is_postmaster = p->is_postmaster;
	slot->non_ascii = p->non_ascii;
	return r;
}

/* The connect stage: the checks may refuse the client before the greeting
 * (RFC 5321 3.1: a 554 or 421 greeting, then the session ends). */
static void
connect_decided(struct smtp_session *s)
{
	if (run_refused(s)) {
		struct kv kvs[POLICY_PARAMS_MAX];
		size_t n;
		enum cond_id c = run_cond(s, kvs, &n);

		session_reply(s, c, kvs, n);
		s->state = SMTP_STATE_CLOSING;
		s->end_cause = c;
		return;
	}
	session_reply(s, COND_SMTP_GREETING, NULL, 0);
}

static void
session_greet(struct smtp_session *s)
{
	session_ask(s, POLICY_STAGE_CONNECT, connect_decided);
}

/* ---- transactions ----------------------------------------------------- */

static void
txn_free(struct smtp_session *s)
{
	if (!s->in_txn)
		return;
	spool_msg_free(&s->txn.msg);
	body_sink_abort(&s->txn.sink);	/* nothing of an unfinished message stays */
	buf_fini(&s->txn.body);
	buf_fini(&s->txn.rcpt_list);
	hash_fini(&s->txn.targets);
	policy_txn_reset(&s->ptxn);
	pending_clear(&s->pend);
	memset(&s->txn, 0, sizeof(s->txn));
	s->in_txn = 0;
}

/* hash_eq_fn for txn.targets: ctx the message, key an address. */
static int
target_eq(const void *ctx, uint32_t val, const void *key)
{
	const struct spool_msg *m = ctx;

	return val < m->nrcpts && strcmp(m->rcpts[val].addr, key) == 0;
}

static void
txn_begin(struct smtp_session *s)
{
	txn_free(s);
	memset(&s->txn, 0, sizeof(s->txn));
	s->txn_count++;
	if (snprintf(s->txn.tid, sizeof(s->txn.tid), "%s.%u", s->sid, s->txn_count) < 0)
		s->txn.tid[0] = '\0';
	s->txn.msg = spool_msg_new(0);	/* the data goes to txn.sink */
	buf_init(&s->txn.rcpt_list, 4096);
	hash_init(&s->txn.targets, SPOOL_MAX_RCPTS, target_eq);
	s->txn.started_ms = loop_clock_ms();
	s->in_txn = 1;
}

/* Logs SESSION-MESSAGE for the transaction that just ended. */
static void
txn_summary(struct smtp_session *s, const char *verdict, enum cond_id cause)
{
	struct log_ctx ctx;
	struct txn *t = &s->txn;
	const char *from = t->msg ? t->msg->from : "";

	log_ctx_of(s, &ctx);
	struct kv kv[] = {
		KVA("from", from, strlen(from)),
		KV("rcpts", buf_cstr(&t->rcpt_list)),
		KVU("nrcpt", t->nrcpt_ok),
		KVU("nbad", t->nrcpt_bad),
		KVU("size", t->message_size),
		KV("msgid", t->scan.msgid[0] ? t->scan.msgid : NULL),
		KV("verdict", verdict),
		KV("cause", catalog_get(cause)->id),
		KV("reply", s->last_reply),
		KVU("elapsed_ms", loop_clock_ms() - t->started_ms),
	};
	catalog_log(COND_SESSION_MESSAGE, &ctx, kv, ARRAY_LEN(kv));
}

/* ---- commands --------------------------------------------------------- */

static unsigned
offered_extensions(const struct smtp_session *s)
{
	if (!s->ehlo)
		return 0;
	return SMTP_EXT_SIZE | SMTP_EXT_8BITMIME | SMTP_EXT_SMTPUTF8 | SMTP_EXT_DSN |
	       SMTP_EXT_CHUNKING | (smtp_auth_offered(s) ? SMTP_EXT_AUTH : 0);
}

/* 1 when a TLS context is in force (checked per EHLO: a reload may
 * have fixed or broken it). */
static int
tls_available(struct smtp_session *s)
{
	struct tls_server *t = s->env->tls_get ? s->env->tls_get(s->env->server) : NULL;

	if (t == NULL)
		return 0;
	tls_server_unref(&t);
	return 1;
}

static void helo_decided(struct smtp_session *s);

static void
cmd_helo(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	txn_free(s);
	if (slice_copy(cmd->helo, s->helo, sizeof(s->helo)) < 0)
		s->helo[0] = '\0';
	s->ehlo = cmd->verb == SMTP_VERB_EHLO;
	session_ask(s, POLICY_STAGE_HELO, helo_decided);
}

static void
helo_decided(struct smtp_session *s)
{
	struct kv kv[] = { KV("helo", s->helo) };

	if (run_refused(s)) {
		struct kv kvs[POLICY_PARAMS_MAX];
		size_t n;
		enum cond_id c = run_cond(s, kvs, &n);

		s->helo[0] = '\0';
		s->ehlo = 0;
		s->state = SMTP_STATE_INIT;
		session_refuse(s, c, kvs, n);
		return;
	}
	s->state = SMTP_STATE_READY;
	if (!s->ehlo) {
		session_reply(s, COND_SMTP_HELO, kv, 1);
		return;
	}
	flag_add(s, "ehlo");
	session_reply_more(s, COND_SMTP_EHLO, kv, 1, 1);
	char size[40];
	if (snprintf(size, sizeof(size), "SIZE %" PRIu64, s->cfg->limits_message_size) < 0)
		size[0] = '\0';
	session_reply_line(s, 250, 1, "PIPELINING");
	session_reply_line(s, 250, 1, size);
	session_reply_line(s, 250, 1, "8BITMIME");
	session_reply_line(s, 250, 1, "ENHANCEDSTATUSCODES");
	session_reply_line(s, 250, 1, "SMTPUTF8");
	session_reply_line(s, 250, 1, "CHUNKING");
	if (!s->tls && tls_available(s))
		session_reply_line(s, 250, 1, "STARTTLS");
	if (smtp_auth_offered(s))
		session_reply_line(s, 250, 1, "AUTH PLAIN LOGIN");
	session_reply_line(s, 250, 0, "DSN");
}

static const char *const mail_bodies[] = { NULL, "7BIT", "8BITMIME" };
static const char *const mail_rets[] = { NULL, "FULL", "HDRS" };

/* SESSION-MAIL with the MAIL's facts (from, size, body, smtputf8, ret,
 * envid) in kv[0..5]. */
static void
mail_summary_log(struct smtp_session *s, struct kv kv[8], enum cond_id cause)
{
	struct log_ctx ctx;

	log_ctx_of(s, &ctx);
	kv[6] = KV("cause", catalog_get(cause)->id);
	kv[7] = KV("reply", s->last_reply);
	catalog_log(COND_SESSION_MAIL, &ctx, kv, 8);
}

/* SESSION-MAIL for the MAIL the checks judged (the transaction's copies). */
static void
mail_summary(struct smtp_session *s, enum cond_id cause)
{
	const struct policy_txn *t = &s->ptxn;
	const char *from = t->sender.mailbox != NULL ? t->sender.mailbox : "";
	struct kv kv[8] = {
		KVA("from", from, strlen(from)),
		t->has_size ? KVU("size", t->size) : KV("size", NULL),
		KV("body", mail_bodies[s->pend.body]),
		KV("smtputf8", t->smtputf8 ? "yes" : NULL),
		KV("ret", mail_rets[s->pend.ret]),
		KV("envid", s->pend.envid),
	};

	mail_summary_log(s, kv, cause);
}

/* SESSION-MAIL for a MAIL refused before the checks (as parsed). */
static void
mail_summary_cmd(struct smtp_session *s, const struct smtp_cmd *cmd, enum cond_id cause)
{
	struct kv kv[8] = {
		KVA("from", cmd->path.mailbox.p, cmd->path.mailbox.len),
		cmd->has_size ? KVU("size", cmd->size) : KV("size", NULL),
		KV("body", mail_bodies[cmd->body]),
		KV("smtputf8", cmd->smtputf8 ? "yes" : NULL),
		KV("ret", mail_rets[cmd->ret]),
		cmd->envid.len ? KVM("envid", cmd->envid.p, cmd->envid.len) : KV("envid", NULL),
	};

	mail_summary_log(s, kv, cause);
}



static void mail_decided(struct smtp_session *s);

static void
cmd_mail(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	policy_txn_reset(&s->ptxn);
	pending_clear(&s->pend);
	(void)path_copy(&s->ptxn.sender, &cmd->path);	/* unquoting: checks see "" */
	s->ptxn.has_size = cmd->has_size;
	s->ptxn.size = cmd->size;
	s->ptxn.smtputf8 = cmd->smtputf8;
	s->pend.body = (int)cmd->body;
	s->pend.ret = (int)cmd->ret;
	if (cmd->envid.len > 0)
		s->pend.envid = xstrndup((const char *)cmd->envid.p, cmd->envid.len);
	if (s->cfg->limits_messages_per_session != 0 &&
	    s->msgs_tried >= s->cfg->limits_messages_per_session) {
		struct kv kv[] = { KV("client", s->conn.peer_text), KVU("count", s->msgs_tried),
				   KVU("limit", s->cfg->limits_messages_per_session) };
		session_reply(s, COND_SMTP_TOO_MANY_MESSAGES, kv, ARRAY_LEN(kv));
		mail_summary(s, COND_SMTP_TOO_MANY_MESSAGES);
		s->state = SMTP_STATE_CLOSING;
		s->end_cause = COND_SMTP_TOO_MANY_MESSAGES;
		return;
	}
	session_ask(s, POLICY_STAGE_MAIL, mail_decided);
}

static void
mail_decided(struct smtp_session *s)
{
	const struct policy_txn *t = &s->ptxn;
	const char *from = t->sender.mailbox;

	if (run_refused(s)) {
		struct kv kvs[POLICY_PARAMS_MAX];
		size_t n;
		enum cond_id c = run_cond(s, kvs, &n);

		session_refuse(s, c, kvs, n);
		mail_summary(s, c);
		return;
	}
	txn_begin(s);
	s->txn.discard = s->run.action == POLICY_DISCARD;
	struct spool_msg *m = s->txn.msg;
	free(m->from);
	m->from = xstrdup(from);
	m->ret = s->pend.ret;
	if (s->pend.envid != NULL)
		m->envid = xstrdup(s->pend.envid);
	m->body_8bit = s->pend.body == SMTP_BODY_8BITMIME;
	m->smtputf8 = t->smtputf8;
	m->client = xstrdup(s->conn.peer_text);
	m->helo = xstrdup(s->helo);
	s->txn.smtputf8 = t->smtputf8;
	s->state = SMTP_STATE_MAIL;
	struct kv kvfrom[] = { KVA("from", from, strlen(from)) };
	session_reply(s, COND_SMTP_MAIL_OK, kvfrom, 1);
	mail_summary(s, COND_SMTP_MAIL_OK);
}

/* SESSION-RCPT with the RCPT's facts (rcpt, notify, orcpt) in kv[0..2]. */
static void
rcpt_summary_log(struct smtp_session *s, struct kv kv[5], unsigned nt, enum cond_id cause)
{
	struct log_ctx ctx;
	char notify[40] = "";

	if (nt & SMTP_NOTIFY_NEVER)
		memcpy(notify, "NEVER", sizeof("NEVER"));
	else if (nt &&
		 snprintf(notify, sizeof(notify), "%s%s%s",
			  nt & SMTP_NOTIFY_SUCCESS ? "SUCCESS," : "",
			  nt & SMTP_NOTIFY_FAILURE ? "FAILURE," : "",
			  nt & SMTP_NOTIFY_DELAY ? "DELAY," : "") > 0)
		notify[strlen(notify) - 1] = '\0';
	log_ctx_of(s, &ctx);
	kv[1] = KV("notify", notify[0] ? notify : NULL);
	kv[3] = KV("cause", catalog_get(cause)->id);
	kv[4] = KV("reply", s->last_reply);
	catalog_log(COND_SESSION_RCPT, &ctx, kv, 5);
}

/* SESSION-RCPT for the RCPT the checks judged (the transaction's copies). */
static void
rcpt_summary(struct smtp_session *s, enum cond_id cause)
{
	const char *rcpt = s->ptxn.rcpt.mailbox != NULL ? s->ptxn.rcpt.mailbox : "";
	struct kv kv[5] = { KVA("rcpt", rcpt, strlen(rcpt)), KV("notify", NULL),
			    KV("orcpt", s->pend.orcpt) };

	rcpt_summary_log(s, kv, s->pend.notify, cause);
}

/* SESSION-RCPT for a RCPT refused before the checks (as parsed). */
static void
rcpt_summary_cmd(struct smtp_session *s, const struct smtp_cmd *cmd, enum cond_id cause)
{
	struct kv kv[5] = {
		KVA("rcpt", cmd->path.mailbox.p, cmd->path.mailbox.len), KV("notify", NULL),
		cmd->orcpt.len ? KVM("orcpt", cmd->orcpt.p, cmd->orcpt.len) : KV("orcpt", NULL),
	};

	rcpt_summary_log(s, kv, cmd->notify, cause);
}


static void
rcpt_refuse(struct smtp_session *s, enum cond_id cond, const struct kv *kv, size_t nkv)
{
	s->txn.nrcpt_bad++;
	s->rcpts_bad++;
	session_reply(s, cond, kv, nkv);
	rcpt_summary(s, cond);
	(void)session_count_error(s);
}


/* Adds one final destination to the transaction, once. */
static void
txn_add_target(struct smtp_session *s, const char *addr, const struct account *acct, int local)
{
	struct spool_msg *m = s->txn.msg;
	size_t len = strlen(addr);
	const char *orcpt = s->pend.orcpt;
	int r = hash_insert(&s->txn.targets, hash_bytes(addr, len), m, addr, (uint32_t)m->nrcpts,
			    NULL);

	if (r != 0)
		return;	/* already there (1); full (-1) cannot be: txn_targets_fit */
	spool_msg_add_rcpt(m, addr, len, orcpt, orcpt != NULL ? strlen(orcpt) : 0, s->pend.notify);
	if (local)
		policy_txn_add_local(&s->ptxn, acct, addr);
}

/* 1 if the transaction can take these final destinations within the
 * spool's bound (SPOOL_MAX_RCPTS); else refuses the RCPT and returns 0. */
static int
txn_targets_fit(struct smtp_session *s, const struct resolve_result *e)
{
	size_t fresh = 0;
	uint32_t v;
	const char *rcpt = s->ptxn.rcpt.mailbox;

	for (size_t i = 0; i < e->ntargets; i++) {
		const char *a = e->targets[i].addr;

		if (!hash_find(&s->txn.targets, hash_bytes(a, strlen(a)), s->txn.msg, a, &v))
			fresh++;
	}
	if (s->txn.msg->nrcpts + fresh <= SPOOL_MAX_RCPTS)
		return 1;
	struct kv kv[] = { KV("client", s->conn.peer_text), KVA("rcpt", rcpt, strlen(rcpt)),
			   KVU("ntargets", s->txn.msg->nrcpts + fresh), KVU("limit", SPOOL_MAX_RCPTS) };
	rcpt_refuse(s, COND_RCPT_TOO_MANY_TARGETS, kv, ARRAY_LEN(kv));
	return 0;
}

/* Records an accepted RCPT: counters, summary, reply. */
static void
rcpt_accept(struct smtp_session *s, const char *route)
{
	const char *rcpt = s->ptxn.rcpt.mailbox;

	if (buf_appendf(&s->txn.rcpt_list, "%s<%s>", s->txn.rcpt_list.len ? "," : "", rcpt) < 0)
		buf_reset(&s->txn.rcpt_list);	/* the log cuts it at 256 anyway */
	s->txn.nrcpt_ok++;
	s->rcpts_ok++;
	flag_add(s, route);
	struct kv kv[] = { KVA("rcpt", rcpt, strlen(rcpt)), KV("route", route) };
	session_reply(s, COND_RCPT_OK, kv, 2);
	rcpt_summary(s, COND_RCPT_OK);
}


static void rcpt_decided(struct smtp_session *s);

static void
cmd_rcpt(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	const struct smtp_path *p = &cmd->path;
	const char *rcpt;

	s->txn.nrcpt_tried++;
	free(s->pend.orcpt);
	s->pend.orcpt = cmd->orcpt.len ? xstrndup((const char *)cmd->orcpt.p, cmd->orcpt.len) : NULL;
	s->pend.notify = cmd->notify;
	policy_txn_rcpt_reset(&s->ptxn);
	int copied = path_copy(&s->ptxn.rcpt, p);
	rcpt = s->ptxn.rcpt.mailbox;
	if (p->non_ascii && !s->txn.smtputf8) {
		struct kv kv[] = { KV("client", s->conn.peer_text), KV("cmd", "RCPT"),
				   KVA("addr", rcpt, strlen(rcpt)) };
		rcpt_refuse(s, COND_SMTP_UTF8_REQUIRED, kv, ARRAY_LEN(kv));
		return;
	}
	if (copied < 0) {
		struct kv kv[] = { KV("client", s->conn.peer_text), KVA("rcpt", rcpt, strlen(rcpt)) };
		rcpt_refuse(s, COND_RCPT_SYNTAX, kv, ARRAY_LEN(kv));
		return;
	}
	s->ptxn.nrcpt_ok = s->txn.nrcpt_ok;
	session_ask(s, POLICY_STAGE_RCPT, rcpt_decided);
}

static void
rcpt_decided(struct smtp_session *s)
{
	struct policy_txn *t = &s->ptxn;
	const char *rcpt = t->rcpt.mailbox;
	char route[sizeof(t->route)];

	if (t->flag != NULL)
		flag_add(s, t->flag);
	if (run_refused(s)) {
		struct kv kvs[POLICY_PARAMS_MAX];
		size_t n;
		enum cond_id c = run_cond(s, kvs, &n);

		rcpt_refuse(s, c, kvs, n);
		return;
	}
	if (!t->routed || t->expansion.ntargets == 0) {
		struct kv kv[] = { KV("client", s->conn.peer_text), KVA("rcpt", rcpt, strlen(rcpt)) };
		rcpt_refuse(s, COND_RCPT_NOT_ROUTED, kv, ARRAY_LEN(kv));
		return;
	}
	if (!txn_targets_fit(s, &t->expansion))
		return;
	for (size_t i = 0; i < t->expansion.ntargets; i++)
		txn_add_target(s, t->expansion.targets[i].addr, t->expansion.targets[i].acct,
			       t->expansion.targets[i].local);
	if (s->run.action == POLICY_DISCARD)
		s->txn.discard = 1;
	memcpy(route, t->route, sizeof(route));
	policy_txn_rcpt_reset(t);
	rcpt_accept(s, route[0] ? route : "local");
}

static void
data_summary(struct smtp_session *s, enum cond_id cause)
{
	struct log_ctx ctx;

	log_ctx_of(s, &ctx);
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
		session_refuse(s, c, kv, c == COND_SMTP_NO_VALID_RCPTS ? 2 : 1);
		data_summary(s, c);
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

/* The data begins: a queue ID, our Received field first in the message,
 * the decoder set up, and the body sink (the spool file) opened on the
 * pool; input is held until opened(s, status, cond) ran. */
static void
data_start(struct smtp_session *s,
	   void (*opened)(struct smtp_session *s, int status, enum cond_id cond))
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
	int r = buf_appendf(b, "Received: from %s ([%s])\r\n\tby %s (Postern) with %s id %s",
			    s->helo, s->conn.peer_text, s->cfg->hostname, proto, m->qid);
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
	s->txn.data_started = 1;
	s->txn.sink_failed = 0;
	if (s->run.action == POLICY_DISCARD)
		s->txn.discard = 1;
	s->msgs_tried++;
	/* The envelope is final: the file is opened and it written on the
	 * pool, the loop waits (input held) for the answer. */
	body_sink_abort(&s->txn.sink);
	s->txn.sink = spool_body_sink(s->env->spool, m);
	s->txn.opened = opened;
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

static void
cmd_data(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	if (s->txn.chunking) {
		struct kv kv[] = { KV("client", s->conn.peer_text), KV("state", state_name(s->state)),
				   KV("cmd", "DATA") };
		session_refuse(s, COND_SMTP_SEQUENCE_ERROR, kv, ARRAY_LEN(kv));
		return;
	}
	if (data_check(s, 1) < 0)
		return;
	session_ask(s, POLICY_STAGE_DATA, data_decided);
}

static void
data_decided(struct smtp_session *s)
{
	if (run_refused(s)) {
		struct kv kvs[POLICY_PARAMS_MAX];
		size_t n;
		enum cond_id c = run_cond(s, kvs, &n);

		session_refuse(s, c, kvs, n);
		data_summary(s, c);
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
		session_reply_emit(s, cond, NULL, 0, 0, 0);	/* logged by the spool */
		data_summary(s, cond);
		return;
	}
	s->state = SMTP_STATE_DATA;
	session_reply(s, COND_SMTP_DATA_GO, NULL, 0);
	data_summary(s, COND_SMTP_DATA_GO);
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
	if (run_refused(s)) {
		s->txn.bdat_discard = 1;
		s->txn.bdat_by_policy = 1;
		bdat_read_chunk(s);
		return;
	}
	data_start(s, bdat_go);
}

static void
cmd_bdat(struct smtp_session *s, const struct smtp_cmd *cmd)
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
			session_ask(s, POLICY_STAGE_DATA, bdat_decided);
			return;
		}
	}
	bdat_read_chunk(s);
}

/* A BDAT refused by the parser. Without a size its chunk cannot be found,
 * so nothing after it is a command: 421 and close. With a size (a bad end
 * marker) the refusal is sent and the chunk's octets are read and dropped
 * (RFC 3030 2). */
static void
bdat_parse_refused(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	if (!cmd->has_chunk_size) {
		struct kv kv[] = { KV("client", s->conn.peer_text),
				   KVM("arg", cmd->arg.p, cmd->arg.len) };
		session_reply(s, COND_SMTP_BDAT_SIZE_INVALID, kv, ARRAY_LEN(kv));
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

/* Starts the handshake on s->conn; the session waits in SMTP_STATE_TLS. */
static int
tls_begin(struct smtp_session *s)
{
	s->tls_ctx = s->env->tls_get ? s->env->tls_get(s->env->server) : NULL;
	if (s->tls_ctx == NULL || tls_conn_start(&s->conn, s->tls_ctx) < 0) {
		tls_server_unref(&s->tls_ctx);
		return -1;
	}
	s->state = SMTP_STATE_TLS;
	s->tls_started_ms = loop_clock_ms();
	return 0;
}

static void cmd_not_implemented(struct smtp_session *s, const struct smtp_cmd *cmd);

static void
cmd_starttls(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	if (s->tls) {
		struct kv kv[] = { KV("client", s->conn.peer_text) };
		session_refuse(s, COND_TLS_ALREADY_ACTIVE, kv, 1);
		return;
	}
	if (s->in_txn) {
		struct kv kv[] = { KV("client", s->conn.peer_text), KV("state", state_name(s->state)),
				   KV("cmd", "STARTTLS") };
		session_refuse(s, COND_SMTP_SEQUENCE_ERROR, kv, ARRAY_LEN(kv));
		return;
	}
	if (s->cfg->tls_cert_file[0] == '\0') {
		/* TLS not configured: the verb is not offered (RFC 3207 4). */
		cmd_not_implemented(s, cmd);
		return;
	}
	if (!tls_available(s)) {
		struct kv kv[] = { KV("client", s->conn.peer_text), KV("reason", "no TLS context") };
		session_refuse(s, COND_TLS_STARTTLS_UNAVAILABLE, kv, ARRAY_LEN(kv));
		return;
	}
	session_reply(s, COND_TLS_STARTTLS_READY, NULL, 0);
	/* CVE-2011-0411: whatever came after STARTTLS in plain text must not
	 * be taken as sent over TLS. The 220 goes out in clear first. */
	buf_reset(&s->in);
	s->in_off = 0;
	if (conn_flush(&s->conn, &s->out) != CONN_IO_OK) {
		session_end(s, COND_NET_CLIENT_WRITE_ERROR);
		return;
	}
	if (tls_begin(s) < 0) {
		struct kv kv[] = { KV("client", s->conn.peer_text), KV("err", "TLS setup failed"),
				   KVU("elapsed_ms", 0) };
		struct log_ctx ctx;
		log_ctx_of(s, &ctx);
		catalog_log(COND_TLS_HANDSHAKE_FAILED, &ctx, kv, ARRAY_LEN(kv));
		session_end(s, COND_TLS_HANDSHAKE_FAILED);
	}
}

/* Drives the handshake; on success the session starts over (RFC 3207
 * 4.2: forget HELO and any AUTH; implicit TLS: send the greeting). */
static void
tls_step(struct smtp_session *s)
{
	char err[256] = "";
	enum conn_io io = tls_conn_handshake(&s->conn, err, sizeof(err));
	struct log_ctx ctx;

	log_ctx_of(s, &ctx);
	if (io == CONN_IO_AGAIN) {
		unsigned ev = tls_conn_wants_write(&s->conn) ? LOOP_WRITE : LOOP_READ;
		if (loop_mod_fd(s->env->loop, s->conn.fd, ev) < 0) {
			session_end(s, COND_NET_CLIENT_READ_ERROR);
			return;
		}
		s->paused = 0;
		s->want_write = ev == LOOP_WRITE;
		loop_timer_set(s->env->loop, &s->deadline, (uint64_t)s->cfg->tls_handshake_timeout * 1000u);
		return;
	}
	tls_server_unref(&s->tls_ctx);
	uint64_t elapsed = loop_clock_ms() - s->tls_started_ms;
	if (io != CONN_IO_OK) {
		struct kv kv[] = { KV("client", s->conn.peer_text), KV("err", err),
				   KVU("elapsed_ms", elapsed) };
		catalog_log(COND_TLS_HANDSHAKE_FAILED, &ctx, kv, ARRAY_LEN(kv));
		session_end(s, COND_TLS_HANDSHAKE_FAILED);
		return;
	}
	s->tls = 1;
	flag_add(s, "tls");
	struct kv kv[] = { KV("client", s->conn.peer_text), KV("version", tls_conn_version(&s->conn)),
			   KV("cipher", tls_conn_cipher(&s->conn)), KVU("bits", tls_conn_bits(&s->conn)),
			   KVU("elapsed_ms", elapsed) };
	catalog_log(COND_TLS_ESTABLISHED, &ctx, kv, ARRAY_LEN(kv));
	txn_free(s);
	smtp_auth_free(s);
	s->auth_user[0] = '\0';
	s->helo[0] = '\0';
	s->ehlo = 0;
	s->state = SMTP_STATE_INIT;
	session_active(s);	/* the command deadline starts after the handshake */
	s->want_write = 1;	/* force the event mask to be set again */
	if (s->tls_implicit)
		session_greet(s);
	session_process(s);
}

static void
cmd_rset(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	struct kv kv[] = { KV("cmd", smtp_verb_name(cmd->verb)) };

	txn_free(s);
	if (s->state != SMTP_STATE_INIT)
		s->state = SMTP_STATE_READY;
	session_reply(s, COND_SMTP_OK, kv, 1);
}

static void
cmd_noop(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	struct kv kv[] = { KV("cmd", smtp_verb_name(cmd->verb)) };

	session_reply(s, COND_SMTP_OK, kv, 1);
}

static void
cmd_quit(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	flag_add(s, "quit");
	session_reply(s, COND_SMTP_QUIT, NULL, 0);
	s->state = SMTP_STATE_CLOSING;
	s->end_cause = COND_SMTP_QUIT;
}

static void
cmd_help(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	session_reply(s, COND_SMTP_HELP, NULL, 0);
}

static void
cmd_vrfy(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	struct kv kv[] = { KV("client", s->conn.peer_text), KVM("arg", cmd->arg.p, cmd->arg.len) };

	session_reply(s, COND_SMTP_VRFY_DISABLED, kv, ARRAY_LEN(kv));
}

static void
cmd_expn(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	struct kv kv[] = { KV("client", s->conn.peer_text), KVM("arg", cmd->arg.p, cmd->arg.len) };

	session_refuse(s, COND_SMTP_EXPN_DISABLED, kv, ARRAY_LEN(kv));
}

static void
cmd_not_implemented(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	struct kv kv[] = { KV("client", s->conn.peer_text), KV("cmd", smtp_verb_name(cmd->verb)) };

	session_refuse(s, COND_SMTP_COMMAND_NOT_IMPLEMENTED, kv, ARRAY_LEN(kv));
}

/* The verb table: handler and the states where the verb is allowed. A
 * verb outside its states gets the sequence condition for that state from
 * seq_refusals, or SMTP-SEQUENCE-ERROR. */
#define ST(x) (1u << SMTP_STATE_##x)
#define ST_CMD (ST(INIT) | ST(READY) | ST(MAIL))

struct verb_rule {
	enum smtp_verb verb;
	void (*fn)(struct smtp_session *s, const struct smtp_cmd *cmd);
	unsigned states;
};

static const struct verb_rule verb_rules[] = {
	{ SMTP_VERB_HELO, cmd_helo, ST_CMD },
	{ SMTP_VERB_EHLO, cmd_helo, ST_CMD },
	{ SMTP_VERB_MAIL, cmd_mail, ST(READY) },
	{ SMTP_VERB_RCPT, cmd_rcpt, ST(MAIL) },
	{ SMTP_VERB_DATA, cmd_data, ST(MAIL) },
	{ SMTP_VERB_BDAT, cmd_bdat, ST_CMD },	/* checks its own sequence */
	{ SMTP_VERB_RSET, cmd_rset, ST_CMD },
	{ SMTP_VERB_NOOP, cmd_noop, ST_CMD },
	{ SMTP_VERB_QUIT, cmd_quit, ST_CMD },
	{ SMTP_VERB_HELP, cmd_help, ST_CMD },
	{ SMTP_VERB_VRFY, cmd_vrfy, ST_CMD },
	{ SMTP_VERB_EXPN, cmd_expn, ST_CMD },
	{ SMTP_VERB_TURN, cmd_not_implemented, ST_CMD },
	{ SMTP_VERB_STARTTLS, cmd_starttls, ST_CMD },
	{ SMTP_VERB_AUTH, smtp_cmd_auth, ST_CMD },	/* checks its own sequence */
	{ SMTP_VERB_ETRN, cmd_not_implemented, ST_CMD },
	{ SMTP_VERB_SEND, cmd_not_implemented, ST_CMD },
	{ SMTP_VERB_SOML, cmd_not_implemented, ST_CMD },
	{ SMTP_VERB_SAML, cmd_not_implemented, ST_CMD },
	{ SMTP_VERB_ATRN, cmd_not_implemented, ST_CMD },
};

static const struct {
	enum smtp_verb verb;
	enum smtp_state state;
	enum cond_id cond;
} seq_refusals[] = {
	{ SMTP_VERB_MAIL, SMTP_STATE_INIT, COND_SMTP_NEED_HELO },
	{ SMTP_VERB_MAIL, SMTP_STATE_MAIL, COND_SMTP_NESTED_MAIL },
	{ SMTP_VERB_RCPT, SMTP_STATE_INIT, COND_SMTP_NEED_HELO },
	{ SMTP_VERB_RCPT, SMTP_STATE_READY, COND_SMTP_NEED_MAIL },
	{ SMTP_VERB_DATA, SMTP_STATE_INIT, COND_SMTP_NEED_HELO },
	{ SMTP_VERB_DATA, SMTP_STATE_READY, COND_SMTP_NEED_RCPT },
};

static const struct verb_rule *
verb_rule_find(enum smtp_verb verb)
{
	for (size_t i = 0; i < ARRAY_LEN(verb_rules); i++)
		if (verb_rules[i].verb == verb)
			return &verb_rules[i];
	return NULL;
}

static void
sequence_refuse(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	enum cond_id cond = COND_SMTP_SEQUENCE_ERROR;

	for (size_t i = 0; i < ARRAY_LEN(seq_refusals); i++)
		if (seq_refusals[i].verb == cmd->verb && seq_refusals[i].state == s->state)
			cond = seq_refusals[i].cond;
	struct kv kv[] = { KV("client", s->conn.peer_text), KV("state", state_name(s->state)),
			   KV("cmd", smtp_verb_name(cmd->verb)) };
	/* Each row names its own keys; pass those it lists. */
	size_t nkv = cond == COND_SMTP_SEQUENCE_ERROR ? 3 : 1;
	if (cond == COND_SMTP_NEED_HELO) {
		kv[1] = kv[2];
		nkv = 2;
	}
	session_refuse(s, cond, kv, nkv);
	if (cmd->verb == SMTP_VERB_MAIL)
		mail_summary_cmd(s, cmd, cond);
	else if (cmd->verb == SMTP_VERB_RCPT)
		rcpt_summary_cmd(s, cmd, cond);
	else if (cmd->verb == SMTP_VERB_DATA)
		data_summary(s, cond);
}

static void
parse_refuse(struct smtp_session *s, const struct smtp_cmd *cmd, enum cond_id err,
	     const uint8_t *line, size_t len)
{
	struct kv kv[4];
	size_t n = 0;
	char verb[17];
	size_t vlen = len < 16 ? len : 16;

	memcpy(verb, line, vlen);
	verb[vlen] = '\0';
	kv[n++] = KV("client", s->conn.peer_text);
	switch (err) {
	case COND_SMTP_COMMAND_UNKNOWN:
		kv[n++] = KV("state", state_name(s->state));
		kv[n++] = KVM("cmd", verb, vlen);
		break;
	case COND_SMTP_COMMAND_NON_ASCII:
		kv[n++] = KV("state", state_name(s->state));
		break;
	case COND_SMTP_HELO_INVALID:
		kv[n++] = KVM("helo", cmd->arg.p, cmd->arg.len);
		break;
	case COND_SMTP_SENDER_SYNTAX:
		kv[n++] = KVM("from", cmd->arg.p, cmd->arg.len);
		break;
	case COND_RCPT_SYNTAX:
		kv[n++] = KVM("rcpt", cmd->arg.p, cmd->arg.len);
		break;
	case COND_SMTP_UTF8_REQUIRED:
		kv[n++] = KV("cmd", smtp_verb_name(cmd->verb));
		kv[n++] = KVM("addr", cmd->arg.p, cmd->arg.len);
		break;
	case COND_SMTP_PARAM_UNSUPPORTED:
	case COND_SMTP_PARAM_INVALID:
		kv[n++] = KV("cmd", smtp_verb_name(cmd->verb));
		kv[n++] = KVM("param", cmd->bad_param.p, cmd->bad_param.len);
		break;
	default:
		kv[n++] = KV("cmd", smtp_verb_name(cmd->verb));
		kv[n++] = KVM("arg", cmd->arg.p, cmd->arg.len);
		break;
	}
	/* A refused BDAT's octets follow: bdat_parse_refused reads them
	 * (size known) or closes the session (size unreadable). */
	session_refuse(s, err, kv, n);
	if (cmd->verb == SMTP_VERB_MAIL)
		mail_summary_cmd(s, cmd, err);
	else if (cmd->verb == SMTP_VERB_RCPT) {
		if (s->in_txn) {
			s->txn.nrcpt_tried++;
			s->txn.nrcpt_bad++;
		}
		s->rcpts_bad++;
		rcpt_summary_cmd(s, cmd, err);
	}
}

static void
session_command(struct smtp_session *s, const uint8_t *line, size_t len)
{
	struct smtp_cmd cmd;
	enum cond_id err;
	struct smtp_parse_opts opts = { .offered = offered_extensions(s) };

	if (log_enabled(LOG_SEV_DEBUG)) {
		struct log_ctx ctx;
		log_ctx_of(s, &ctx);
		size_t shown = slice_starts_nocase((struct slice){ line, len }, "AUTH ") ? 5 : len;
		struct kv t[] = { KV("dir", "in"), KVM("line", line, shown) };
		catalog_log(COND_NET_TRACE, &ctx, t, 2);
	}
	memset(&cmd, 0, sizeof(cmd));
	if (smtp_parse_command(line, len, &opts, &cmd, &err) < 0) {
		session_active(s);
		if (cmd.verb == SMTP_VERB_AUTH && err == COND_SMTP_ARG_INVALID) {
			smtp_cmd_auth(s, &cmd);	/* AUTH-MECH-MISSING */
			return;
		}
		if (cmd.verb == SMTP_VERB_BDAT && !cmd.has_chunk_size) {
			bdat_parse_refused(s, &cmd);
			return;
		}
		parse_refuse(s, &cmd, err, line, len);
		if (cmd.verb == SMTP_VERB_BDAT)
			bdat_parse_refused(s, &cmd);
		return;
	}
	const struct verb_rule *rule = verb_rule_find(cmd.verb);
	if (rule == NULL) {
		parse_refuse(s, &cmd, COND_SMTP_COMMAND_UNKNOWN, line, len);
		return;
	}
	if (!(rule->states & (1u << s->state))) {
		session_active(s);
		sequence_refuse(s, &cmd);
		return;
	}
	if (cmd.verb == SMTP_VERB_NOOP || cmd.verb == SMTP_VERB_RSET ||
	    cmd.verb == SMTP_VERB_HELP || cmd.verb == SMTP_VERB_VRFY) {
		if (session_count_junk(s))
			return;
	} else {
		session_active(s);
	}
	rule->fn(s, &cmd);
}

/* ---- message end ------------------------------------------------------ */

static void
commit_done(struct loop *loop, void *arg, int status, enum cond_id cond);

/* Checks the finished message and commits it, or refuses it. */
static void message_decided(struct smtp_session *s);

/* The message is in: what the decoder counted goes to the transaction,
 * and the end-of-data checks judge it. */
static void
message_finish(struct smtp_session *s)
{
	struct txn *t = &s->txn;
	struct policy_content *c = &s->ptxn.content;

	c->size = t->message_size;
	if (t->dec.too_big && c->size <= s->cfg->limits_message_size)
		c->size = s->cfg->limits_message_size + 1;
	c->bare_lf = t->dec.bare_lf;
	c->first_bare_lf = t->dec.first_bare_lf;
	c->line_too_long = t->scan.line_too_long;
	c->longest_line = t->scan.longest_line;
	c->received = t->scan.received;
	memcpy(c->msgid, t->scan.msgid, sizeof(c->msgid));
	c->msgid[sizeof(c->msgid) - 1] = '\0';
	s->state = SMTP_STATE_COMMIT;	/* nothing more is read meanwhile */
	session_ask(s, POLICY_STAGE_END_OF_DATA, message_decided);
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

/* Commits the judged message, refuses it, or (discard) answers 250 and
 * drops it. */
static void
message_decided(struct smtp_session *s)
{
	struct txn *t = &s->txn;

	if (run_refused(s)) {
		struct kv kvs[POLICY_PARAMS_MAX];
		size_t n;
		enum cond_id c = run_cond(s, kvs, &n);

		s->state = SMTP_STATE_READY;
		session_refuse(s, c, kvs, n);
		txn_summary(s, s->run.action == POLICY_TEMPFAIL ? "tempfail" : "rejected", c);
		txn_free(s);
		return;
	}
	if (t->discard || s->run.action == POLICY_DISCARD) {
		struct kv kv[] = { KV("qid", t->msg->qid) };

		s->state = SMTP_STATE_READY;
		s->msgs_ok++;
		flag_add(s, "discarded");
		session_reply(s, COND_SMTP_MSG_ACCEPTED, kv, 1);
		txn_summary(s, "discarded", COND_SMTP_MSG_ACCEPTED);
		txn_free(s);
		return;
	}
	if (t->dec.bare_lf > 0)
		flag_add(s, "bare_lf_fixed");
	body_flush(t, 1);
	message_tag(s);
	struct spool_msg *m = t->msg;
	t->msg = NULL;	/* the spool owns it now; keep qid for the logs */
	uintptr_t handle = ((uintptr_t)s->slot << 32) | s->gen;
	/* keep a copy of the qid for the summary, the txn no longer has msg */
	t->msg = spool_msg_new(0);
	memcpy(t->msg->qid, m->qid, sizeof(m->qid));
	free(t->msg->from);
	t->msg->from = xstrdup(m->from);
	struct body_sink *sk = t->sink;
	t->sink = NULL;	/* the commit frees it */
	body_sink_commit(sk, m, s->env->loop, commit_done, (void *)handle);
}

static struct smtp_session *
session_by_handle(struct smtp_env *env, uintptr_t handle)
{
	size_t slot = (size_t)(handle >> 32);
	unsigned gen = (unsigned)(handle & 0xffffffffu);

	if (slot >= env->nslots || env->sessions[slot] == NULL || env->gens[slot] != gen)
		return NULL;
	return env->sessions[slot];
}

static void
commit_done(struct loop *loop, void *arg, int status, enum cond_id cond)
{
	struct smtp_env *env = loop_get_data(loop);
	struct smtp_session *s = session_by_handle(env, (uintptr_t)arg);

	if (s == NULL || s->dead)
		return;	/* the client left; the message (if durable) is delivered */
	if (status == 0) {
		struct kv kv[] = { KV("qid", s->txn.msg->qid) };
		s->msgs_ok++;
		s->junk = 0;	/* as Postfix: forgiven after an accepted message */
		session_reply(s, COND_SMTP_MSG_ACCEPTED, kv, 1);
		txn_summary(s, "accepted", COND_SMTP_MSG_ACCEPTED);
	} else {
		/* The spool logged the failure with its path and errno. */
		session_reply_emit(s, cond, NULL, 0, 0, 0);
		txn_summary(s, "tempfail", cond);
	}
	txn_free(s);
	/* While the server drains, the session goes on until the client
	 * quits or the grace period ends. */
	if (s->state == SMTP_STATE_COMMIT)
		s->state = SMTP_STATE_READY;
	session_active(s);
	session_process(s);
}

/* ---- input ------------------------------------------------------------ */

static void
data_input(struct smtp_session *s)
{
	struct txn *t = &s->txn;
	struct slice u = buf_unread(&s->in, s->in_off);
	body_room(t);
	size_t used = smtp_data_feed(&t->dec, u.p, u.len, &t->body, &t->scan);

	s->in_off += used;
	body_flush(t, 0);
	session_active(s);
	t->message_size = t->dec.size;
	if (t->dec.done)
		message_finish(s);
}

static void
bdat_input(struct smtp_session *s)
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
		session_active(s);
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
			c = run_cond(s, kvs, &n);
			session_refuse(s, c, kvs, n);
			data_summary(s, c);
			return;
		}
		if (c == COND__COUNT)
			return;	/* refused by the parser, answered then */
		if (t->sink_failed) {
			/* the spool file could not be made: logged there */
			t->sink_failed = 0;
			session_reply_emit(s, c, NULL, 0, 0, 0);
			data_summary(s, c);
			return;
		}
		if (c == COND_CONTENT_SIZE_EXCEEDED) {
			struct kv ks[] = { KV("client", s->conn.peer_text),
					   KVU("size", t->message_size + t->bdat_chunk),
					   KVU("limit", s->cfg->limits_message_size) };
			session_refuse(s, c, ks, ARRAY_LEN(ks));
			data_summary(s, c);
			txn_summary(s, "rejected", c);
			txn_free(s);
			if (s->state != SMTP_STATE_CLOSING)
				s->state = SMTP_STATE_READY;
			return;
		}
		if (c == COND_SMTP_NO_VALID_RCPTS) {
			struct kv kb[] = { KV("client", s->conn.peer_text),
					   KVU("nbad", s->txn.nrcpt_bad) };
			session_refuse(s, c, kb, 2);
		} else if (c == COND_SMTP_SEQUENCE_ERROR) {
			session_refuse(s, c, kv, 3);
		} else {
			kv[1] = kv[2];
			session_refuse(s, c, kv, 2);
		}
		if (s->in_txn)
			data_summary(s, c);
		return;
	}
	if (t->bdat_refusal == COND_SMTP_DATA_GO) {
		first = 1;
		t->bdat_refusal = COND__COUNT;
	}
	if (!t->bdat_last) {
		struct kv kv[] = { KVU("size", t->bdat_chunk) };
		s->state = SMTP_STATE_MAIL;
		session_reply(s, COND_SMTP_BDAT_OK, kv, 1);
		if (first)
			data_summary(s, COND_SMTP_BDAT_OK);
		return;
	}
	if (first)
		data_summary(s, COND_SMTP_MSG_ACCEPTED);
	s->state = SMTP_STATE_MAIL;
	message_finish(s);
}

static void
overflow(struct smtp_session *s)
{
	struct kv kv[] = { KV("client", s->conn.peer_text), KV("state", state_name(s->state)),
			   KVU("bytes", s->in.len - s->in_off), KVU("limit", s->in.max) };

	session_reply(s, COND_SMTP_INPUT_OVERFLOW, kv, ARRAY_LEN(kv));
	s->state = SMTP_STATE_CLOSING;
	s->end_cause = COND_SMTP_INPUT_OVERFLOW;
}

/* Handles whatever complete input there is, in order, then flushes. */
static void
session_process(struct smtp_session *s)
{
	if (s->state == SMTP_STATE_TLS)
		return;	/* the handshake owns the socket */
	while (!s->dead && !s->busy && s->state != SMTP_STATE_CLOSING &&
	       s->state != SMTP_STATE_COMMIT && s->out.len < OUT_HIGH_WATER) {
		struct slice u = buf_unread(&s->in, s->in_off);
		if (s->state == SMTP_STATE_DATA) {
			if (u.len == 0)
				break;
			data_input(s);
			if (s->state == SMTP_STATE_DATA) {
				if (s->in_off < s->in.len)
					continue;
				break;
			}
			continue;
		}
		if (s->state == SMTP_STATE_BDAT) {
			if (u.len == 0 && s->txn.bdat_left > 0)
				break;
			bdat_input(s);
			continue;
		}
		const uint8_t *lf = memchr(u.len ? u.p : (const uint8_t *)"", '\n', u.len);
		if (lf == NULL) {
			if (u.len >= s->in.max)
				overflow(s);
			break;
		}
		size_t linelen = (size_t)(lf - u.p) + 1;
		size_t len = linelen - 1;
		if (len > 0 && u.p[len - 1] == '\r')
			len--;
		/* Taken before the command runs: a handler may reset the input
		 * (STARTTLS) or read on from the offset (BDAT). */
		s->in_off += linelen;
		if (smtp_auth_expects_line(s)) {
			/* A SASL response: never traced (it holds the password),
			 * any length (the exchange answers one too long). */
			session_active(s);
			smtp_auth_line(s, u.p, len);
			continue;
		}
		/* RFC 4954 4: an AUTH initial response may be 12288 octets. */
		size_t limit = slice_starts_nocase((struct slice){ u.p, len }, "AUTH ")
			       ? SMTP_AUTH_LINE_MAX + 32 : s->cfg->limits_command_line;
		if (linelen > limit) {
			struct kv kv[] = { KV("client", s->conn.peer_text),
					   KV("state", state_name(s->state)), KVU("len", linelen),
					   KVU("limit", s->cfg->limits_command_line) };
			session_active(s);
			session_refuse(s, COND_SMTP_LINE_TOO_LONG, kv, ARRAY_LEN(kv));
			if (slice_starts_nocase((struct slice){ u.p, len }, "BDAT ") && !s->dead &&
			    s->state != SMTP_STATE_CLOSING) {
				/* its size was never read: the chunk cannot be found */
				struct smtp_cmd bad = { .verb = SMTP_VERB_BDAT,
							.arg = { u.p + 5, len < 69 ? len - 5 : 64 } };
				bdat_parse_refused(s, &bad);
			}
		} else {
			session_command(s, u.p, len);
		}
		if (s->in_off < s->in.len && s->state != SMTP_STATE_DATA &&
		    s->state != SMTP_STATE_BDAT)
			flag_add(s, "pipelining");
	}
	if (!s->dead && s->in_off > 0 && s->in_off >= s->in.len) {
		buf_reset(&s->in);	/* all taken: start over, nothing to move */
		s->in_off = 0;
	}
	if (s->dead)
		return;
	/* Flush replies. */
	enum conn_io io = conn_flush(&s->conn, &s->out);
	if (io == CONN_IO_ERROR) {
		struct log_ctx ctx;
		log_ctx_of(s, &ctx);
		struct kv kv[] = { KV("client", s->conn.peer_text), KV("state", state_name(s->state)),
				   KV("errno", net_errno_name(errno)) };
		catalog_log(COND_NET_CLIENT_WRITE_ERROR, &ctx, kv, ARRAY_LEN(kv));
		session_end(s, COND_NET_CLIENT_WRITE_ERROR);
		return;
	}
	if (io == CONN_IO_OK && s->state == SMTP_STATE_CLOSING) {
		session_end(s, s->end_cause);
		return;
	}
	int want_write = io == CONN_IO_AGAIN;
	int pause = s->state == SMTP_STATE_COMMIT || s->state == SMTP_STATE_CLOSING ||
		    s->busy || s->out.len >= OUT_HIGH_WATER;
	if (want_write != s->want_write || pause != s->paused) {
		unsigned ev = (pause ? 0 : LOOP_READ) | (want_write ? LOOP_WRITE : 0);
		if (loop_mod_fd(s->env->loop, s->conn.fd, ev) < 0) {
			session_end(s, COND_NET_CLIENT_WRITE_ERROR);
			return;
		}
		s->want_write = want_write;
		s->paused = pause;
	}
	arm_deadline(s);
}

/* OpenSSL may hold decrypted bytes the socket no longer signals. */
static void
session_pending(struct loop *loop, void *arg)
{
	struct smtp_session *s = arg;

	if (!s->dead && !s->paused && tls_conn_pending(&s->conn) > 0)
		session_io(loop, s->conn.fd, LOOP_READ, s);
}

static void
session_io(struct loop *loop, int fd, unsigned events, void *arg)
{
	struct smtp_session *s = arg;
	int eof = 0, err = 0;

	(void)fd;
	if (s->state == SMTP_STATE_TLS) {
		tls_step(s);
		return;
	}
	if ((events & LOOP_READ) && !s->paused) {
		buf_compact(&s->in, &s->in_off);	/* one move per read, not per command */
		for (int i = 0; i < 4; i++) {
			enum conn_io io = conn_read(&s->conn, &s->in);
			if (io == CONN_IO_OK)
				continue;
			if (io == CONN_IO_EOF)
				eof = 1;
			else if (io == CONN_IO_ERROR)
				err = errno;
			break;
		}
	}
	session_process(s);
	if (!s->dead && !eof && !err && s->tls && tls_conn_pending(&s->conn) > 0)
		loop_defer(loop, session_pending, s);
	if (s->dead || !(eof || err))
		return;
	/* Whatever complete commands came before the EOF were answered. */
	if (s->state == SMTP_STATE_DATA || s->state == SMTP_STATE_BDAT) {
		struct log_ctx ctx;
		log_ctx_of(s, &ctx);
		struct kv kv[] = { KV("client", s->conn.peer_text), KVU("bytes", s->txn.message_size),
				   KV("errno", err ? net_errno_name(err) : NULL) };
		catalog_log(COND_SMTP_DATA_CLIENT_LOST, &ctx, kv, ARRAY_LEN(kv));
		session_end(s, COND_SMTP_DATA_CLIENT_LOST);
		return;
	}
	if (s->state == SMTP_STATE_CLOSING) {
		session_end(s, s->end_cause);
		return;
	}
	struct log_ctx ctx;
	log_ctx_of(s, &ctx);
	struct kv kv[] = { KV("client", s->conn.peer_text), KV("state", state_name(s->state)),
			   KV("errno", err ? net_errno_name(err) : NULL) };
	catalog_log(COND_NET_CLIENT_READ_ERROR, &ctx, kv, ARRAY_LEN(kv));
	session_end(s, COND_NET_CLIENT_READ_ERROR);
}

static void
session_timeout(struct loop *loop, void *arg)
{
	struct smtp_session *s = arg;
	unsigned secs = s->state == SMTP_STATE_DATA || s->state == SMTP_STATE_BDAT
			? s->cfg->limits_data_timeout : s->cfg->limits_command_timeout;

	(void)loop;
	if (s->dead)
		return;
	if (s->state == SMTP_STATE_TLS) {
		struct log_ctx ctx;
		log_ctx_of(s, &ctx);
		struct kv kv[] = { KV("client", s->conn.peer_text), KV("err", "handshake timeout"),
				   KVU("elapsed_ms", loop_clock_ms() - s->tls_started_ms) };
		catalog_log(COND_TLS_HANDSHAKE_FAILED, &ctx, kv, ARRAY_LEN(kv));
		session_end(s, COND_TLS_HANDSHAKE_FAILED);
		return;
	}
	if (s->state == SMTP_STATE_DATA && s->txn.dec.lf_dot_lf_seen) {
		struct log_ctx ctx;
		log_ctx_of(s, &ctx);
		struct kv kv[] = { KV("client", s->conn.peer_text), KVU("bytes", s->txn.message_size) };
		catalog_log(COND_SMTP_DATA_BARE_DOT_LF, &ctx, kv, ARRAY_LEN(kv));
	}
	struct kv kv[] = { KV("client", s->conn.peer_text), KV("state", state_name(s->state)),
			   KVU("idle_s", secs) };
	session_reply(s, COND_SMTP_TIMEOUT, kv, ARRAY_LEN(kv));
	if (s->in_txn && s->txn.data_started)
		txn_summary(s, "rejected", COND_SMTP_TIMEOUT);
	s->state = SMTP_STATE_CLOSING;
	s->end_cause = COND_SMTP_TIMEOUT;
	session_process(s);
}

/* ---- lifecycle -------------------------------------------------------- */

static void
session_free(struct loop *loop, void *arg)
{
	struct smtp_session *s = arg;

	(void)loop;
	txn_free(s);
	policy_txn_fini(&s->ptxn);
	pending_clear(&s->pend);
	buf_fini(&s->in);
	buf_fini(&s->out);
	config_unref(&s->cfg);
	tls_server_unref(&s->tls_ctx);
	free(s);
}

static void
session_end(struct smtp_session *s, enum cond_id cause)
{
	struct smtp_env *env = s->env;
	struct log_ctx ctx = { .sid = s->sid };
	char msgs[32], rcpts[32], dur[32], tls_text[128];

	if (s->dead)
		return;
	if (snprintf(tls_text, sizeof(tls_text), "%s/%s", tls_conn_version(&s->conn),
		     tls_conn_cipher(&s->conn)) < 0)
		tls_text[0] = '\0';
	smtp_auth_free(s);
	policy_run_cancel(&s->run);
	s->dead = 1;
	if (s->in_txn && s->txn.data_started && s->state != SMTP_STATE_COMMIT &&
	    cause != COND_SMTP_TIMEOUT && cause != COND_SIGNAL_STOP_SESSIONS)
		txn_summary(s, "rejected", cause);
	loop_timer_cancel(env->loop, &s->deadline);
	loop_del_fd(env->loop, s->conn.fd);
	(void)conn_flush(&s->conn, &s->out);	/* best effort for a last 421 */
	if (snprintf(msgs, sizeof(msgs), "%u/%u", s->msgs_ok, s->msgs_tried) < 0 ||
	    snprintf(rcpts, sizeof(rcpts), "%u/%u", s->rcpts_ok, s->rcpts_bad) < 0 ||
	    snprintf(dur, sizeof(dur), "%.3f", (double)(loop_clock_ms() - s->started_ms) / 1000.0) < 0)
		msgs[0] = rcpts[0] = dur[0] = '\0';
	struct kv kv[] = {
		KV("proto", "smtp"),
		KV("client", s->conn.peer_text),
		KV("ptr", "unknown"),
		KV("helo", s->helo[0] ? s->helo : NULL),
		KV("tls", s->tls ? tls_text : "no"),
		KV("auth", s->auth_user[0] ? s->auth_user : NULL),
		KV("flags", s->flags[0] ? s->flags : NULL),
		KV("msgs", msgs),
		KV("rcpts", rcpts),
		KVU("rejects", s->rejects),
		KVU("bytes", s->conn.bytes_in),
		KV("duration_s", dur),
		KV("last_reject", s->last_reject[0] ? s->last_reject : NULL),
		KV("cause", catalog_get(cause == COND__COUNT ? COND_NET_CLIENT_READ_ERROR : cause)->id),
	};
	catalog_log(COND_SESSION_END, &ctx, kv, ARRAY_LEN(kv));
	conn_close(&s->conn);
	env->sessions[s->slot] = NULL;
	env->gens[s->slot]++;
	env->live--;
	if (env->on_end)
		env->on_end(env, &s->conn.peer);
	loop_defer(env->loop, session_free, s);
}

static size_t
slot_take(struct smtp_env *env, struct smtp_session *s)
{
	for (size_t i = 0; i < env->nslots; i++) {
		if (env->sessions[i] == NULL) {
			env->sessions[i] = s;
			return i;
		}
	}
	size_t n = env->nslots ? env->nslots * 2 : 256;
	env->sessions = xrealloc(env->sessions, n * sizeof(*env->sessions));
	env->gens = xrealloc(env->gens, n * sizeof(*env->gens));
	for (size_t i = env->nslots; i < n; i++) {
		env->sessions[i] = NULL;
		env->gens[i] = 1;
	}
	size_t slot = env->nslots;
	env->nslots = n;
	env->sessions[slot] = s;
	return slot;
}

void
smtp_session_start(struct smtp_env *env, int fd, const struct config_listener *lst,
		   unsigned long sessions_now)
{
	struct smtp_session *s = xcalloc(1, sizeof(*s));
	uint64_t rnd;

	s->env = env;
	s->lst = lst;
	s->tls_implicit = lst != NULL && lst->role == CONFIG_ROLE_SUBMISSIONS;
	s->cfg = env->config_get(env->server);
	conn_init(&s->conn, fd);
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = loop_clock_ms() ^ ((uint64_t)(uintptr_t)s << 16);
	if (snprintf(s->sid, sizeof(s->sid), "%016" PRIx64, rnd) < 0)
		s->sid[0] = '\0';
	s->slot = slot_take(env, s);
	s->gen = env->gens[s->slot];
	env->live++;
	s->started_ms = loop_clock_ms();
	s->active_ms = s->started_ms;
	s->end_cause = COND__COUNT;
	s->state = SMTP_STATE_INIT;
	buf_init(&s->in, s->cfg->limits_line_buffer);
	buf_init(&s->out, OUT_MAX);
	loop_timer_init(&s->deadline, session_timeout, s);
	s->trusted = cidr_list_match(&s->cfg->server_trusted_networks,
				     (struct sockaddr *)&s->conn.peer);
	s->chain = policy_chain_of(s->cfg, lst);
	policy_txn_init(&s->ptxn);
	s->ptxn.cfg = s->cfg;
	s->ptxn.lst = lst;
	s->ptxn.client = s->conn.peer_text;
	policy_run_init(&s->run);
	if (s->trusted)
		flag_add(s, "trusted");
	if (s->conn.peer.ss_family == AF_INET6)
		flag_add(s, "ipv6");

	struct log_ctx ctx = { .sid = s->sid };
	struct kv kv[] = { KV("proto", "smtp"), KV("client", s->conn.peer_text),
			   KVU("port", s->conn.peer_port), KV("local", s->conn.local_text),
			   KVU("sessions", sessions_now) };
	catalog_log(COND_SESSION_START, &ctx, kv, ARRAY_LEN(kv));
	if (loop_add_fd(env->loop, fd, LOOP_READ, session_io, s) < 0) {
		session_end(s, COND_NET_CLIENT_READ_ERROR);
		return;
	}
	if (s->tls_implicit && !env->draining) {
		/* RFC 8314: TLS first, the greeting comes after the handshake. */
		if (tls_begin(s) < 0) {
			struct kv kt[] = { KV("client", s->conn.peer_text),
					   KV("err", "no TLS context"), KVU("elapsed_ms", 0) };
			catalog_log(COND_TLS_HANDSHAKE_FAILED, &ctx, kt, ARRAY_LEN(kt));
			session_end(s, COND_TLS_HANDSHAKE_FAILED);
			return;
		}
		tls_step(s);
		return;
	}
	if (env->draining) {
		struct kv k2[] = { KV("signal", "SIGTERM"), KVU("sessions", env->live) };
		session_reply(s, COND_SIGNAL_STOP_SESSIONS, k2, 2);
		s->state = SMTP_STATE_CLOSING;
		s->end_cause = COND_SIGNAL_STOP_SESSIONS;
	} else {
		session_greet(s);
	}
	session_process(s);
}

void
smtp_refuse_connection(int fd, enum cond_id cond, const char *hostname,
		       const struct kv *kvs, size_t nkv)
{
	struct buf r;

	buf_init(&r, REPLY_MAX);
	if (catalog_reply(&r, cond, hostname, kvs, nkv, 0) == 0 &&
	    buf_append(&r, "\r\n", 2) == 0) {
		/* One small write on a fresh socket: it fits the send buffer. */
		if (send(fd, r.data, r.len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
			/* the client is gone already; nothing to tell */
		}
	}
	buf_fini(&r);
	catalog_log(cond, NULL, kvs, nkv);
	close(fd);
}

void
smtp_env_stop_sessions(struct smtp_env *env, int signo)
{
	char sig[16];

	if (snprintf(sig, sizeof(sig), "%s", signo == 2 ? "SIGINT" : "SIGTERM") < 0)
		sig[0] = '\0';
	for (size_t i = 0; i < env->nslots; i++) {
		struct smtp_session *s = env->sessions[i];
		if (s == NULL || s->dead || s->state == SMTP_STATE_CLOSING)
			continue;
		if (s->state == SMTP_STATE_COMMIT)
			continue;	/* closes after its commit (env->draining) */
		struct kv kv[] = { KV("signal", sig), KVU("sessions", env->live) };
		session_reply(s, COND_SIGNAL_STOP_SESSIONS, kv, ARRAY_LEN(kv));
		if (s->dead)
			continue;
		if (s->in_txn && s->txn.data_started)
			txn_summary(s, "tempfail", COND_SIGNAL_STOP_SESSIONS);
		s->state = SMTP_STATE_CLOSING;
		s->end_cause = COND_SIGNAL_STOP_SESSIONS;
		session_process(s);
	}
}

/* ---- for command handlers in other files ------------------------------ */

int
smtp_session_reply(struct smtp_session *s, enum cond_id cond, const struct kv *kvs, size_t nkv)
{
	return session_reply(s, cond, kvs, nkv);
}

void
smtp_session_refuse(struct smtp_session *s, enum cond_id cond, const struct kv *kvs, size_t nkv)
{
	session_refuse(s, cond, kvs, nkv);
}

void
smtp_session_log_ctx(const struct smtp_session *s, struct log_ctx *ctx)
{
	log_ctx_of(s, ctx);
}

void
smtp_session_flag(struct smtp_session *s, const char *flag)
{
	flag_add(s, flag);
}

uintptr_t
smtp_session_handle(const struct smtp_session *s)
{
	return ((uintptr_t)s->slot << 32) | s->gen;
}

struct smtp_session *
smtp_session_by_handle(struct smtp_env *env, uintptr_t handle)
{
	struct smtp_session *s = session_by_handle(env, handle);

	return s != NULL && !s->dead ? s : NULL;
}

void
smtp_session_resume(struct smtp_session *s)
{
	if (!s->dead) {
		session_active(s);
		session_process(s);
	}
}
