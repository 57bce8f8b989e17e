/*
 * smtp_cmd.c - the SMTP commands that build a transaction's envelope and
 * the session's side of the policy chain.
 *
 * Owns HELO/EHLO, MAIL, RCPT and the commands that do no work (RSET, NOOP,
 * QUIT, HELP, VRFY, EXPN, and the refused old ones), the transaction's
 * life (begin, free, summary), and the glue that copies a command into the
 * transaction the checks see (struct policy_txn), starts a run and turns
 * its verdict into the reply (smtp_ask). DATA, BDAT and the message's end
 * are in smtp_session.c; the session core, TLS and input in
 * smtp_session.c and net/.
 */
#include "smtp_session_private.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp_auth.h"
#include "spool.h"

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
void
smtp_ask(struct smtp_session *s, enum policy_stage stage,
	    void (*decided)(struct smtp_session *s))
{
	ptxn_sync(s);
	s->decided = decided;
	policy_run_start(&s->run, s->env->loop, s->chain, stage, &s->ptxn, s, policy_decided, s);
	if (policy_run_running(&s->run))
		s->busy = 1;
}

/* 1 if the run refused the command (tempfail or reject). */
int
smtp_run_refused(const struct smtp_session *s)
{
	return policy_run_refused(&s->run);
}

/* The deciding verdict's condition and params (policy_run_cond). */
enum cond_id
smtp_run_cond(const struct smtp_session *s, struct kv kvs[POLICY_PARAMS_MAX], size_t *n)
{
	return policy_run_cond(&s->run, kvs, n);
}

enum cond_id
smtp_refuse_verdict(struct smtp_session *s)
{
	struct kv kvs[POLICY_PARAMS_MAX];
	size_t n;
	enum cond_id c = smtp_run_cond(s, kvs, &n);

	smtp_session_refuse(s, c, kvs, n);
	return c;
}

void
smtp_pending_clear(struct smtp_pending *p)
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
int
smtp_path_copy(struct policy_path *slot, const struct smtp_path *p)
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
	if (smtp_run_refused(s)) {
		struct kv kvs[POLICY_PARAMS_MAX];
		size_t n;
		enum cond_id c = smtp_run_cond(s, kvs, &n);

		smtp_session_reply(s, c, kvs, n);
		s->state = SMTP_STATE_CLOSING;
		s->end_cause = c;
		return;
	}
	smtp_session_reply(s, COND_SMTP_GREETING, NULL, 0);
}

void
smtp_greet(struct smtp_session *s)
{
	smtp_ask(s, POLICY_STAGE_CONNECT, connect_decided);
}

/* ---- transactions ----------------------------------------------------- */

void
smtp_txn_free(struct smtp_session *s)
{
	if (!s->in_txn)
		return;
	spool_msg_free(&s->txn.msg);
	body_sink_abort(&s->txn.sink);	/* nothing of an unfinished message stays */
	buf_fini(&s->txn.body);
	buf_fini(&s->txn.rcpt_list);
	hash_fini(&s->txn.targets);
	uri_scan_free(&s->txn.uris);
	policy_txn_reset(&s->ptxn);
	smtp_pending_clear(&s->pend);
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

void
smtp_txn_begin(struct smtp_session *s)
{
	smtp_txn_free(s);
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
void
smtp_txn_summary(struct smtp_session *s, const char *verdict, enum cond_id cause)
{
	struct log_ctx ctx;
	struct txn *t = &s->txn;
	const char *from = t->msg ? t->msg->from : "";
	char checks[POLICY_TRACE_TEXT_MAX];

	(void)policy_txn_trace_format(&s->ptxn, checks, sizeof(checks));
	smtp_session_log_ctx(s, &ctx);
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
		KV("checks", checks[0] ? checks : NULL),
	};
	catalog_log(COND_SESSION_MESSAGE, &ctx, kv, ARRAY_LEN(kv));
	metrics_inc(strcmp(verdict, "accepted") == 0 || strcmp(verdict, "discarded") == 0
			    ? METRICS_MSG_ACCEPTED : METRICS_MSG_REFUSED);
}

/* ---- commands --------------------------------------------------------- */

unsigned
smtp_offered_extensions(const struct smtp_session *s)
{
	if (!s->ehlo)
		return 0;
	return SMTP_EXT_SIZE | SMTP_EXT_8BITMIME | SMTP_EXT_SMTPUTF8 | SMTP_EXT_DSN |
	       SMTP_EXT_CHUNKING | (smtp_auth_offered(s) ? SMTP_EXT_AUTH : 0);
}

/* 1 when a TLS context is in force (checked per EHLO: a reload may
 * have fixed or broken it). */
int
smtp_tls_available(struct smtp_session *s)
{
	struct tls_server *t = s->env->tls_get ? s->env->tls_get(s->env->server) : NULL;

	if (t == NULL)
		return 0;
	tls_server_unref(&t);
	return 1;
}

static void helo_decided(struct smtp_session *s);

void
smtp_cmd_helo(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	smtp_txn_free(s);
	if (slice_copy(cmd->helo, s->helo, sizeof(s->helo)) < 0)
		s->helo[0] = '\0';
	s->ehlo = cmd->verb == SMTP_VERB_EHLO;
	smtp_ask(s, POLICY_STAGE_HELO, helo_decided);
}

static void
helo_decided(struct smtp_session *s)
{
	struct kv kv[] = { KV("helo", s->helo) };

	if (smtp_run_refused(s)) {
		s->helo[0] = '\0';
		s->ehlo = 0;
		s->state = SMTP_STATE_INIT;
		(void)smtp_refuse_verdict(s);
		return;
	}
	s->state = SMTP_STATE_READY;
	if (!s->ehlo) {
		smtp_session_reply(s, COND_SMTP_HELO, kv, 1);
		return;
	}
	smtp_session_flag(s, "ehlo");
	smtp_reply_more(s, COND_SMTP_EHLO, kv, 1, 1);
	char size[40];
	if (snprintf(size, sizeof(size), "SIZE %" PRIu64, s->cfg->limits_message_size) < 0)
		size[0] = '\0';
	smtp_reply_line(s, 250, 1, "PIPELINING");
	smtp_reply_line(s, 250, 1, size);
	smtp_reply_line(s, 250, 1, "8BITMIME");
	smtp_reply_line(s, 250, 1, "ENHANCEDSTATUSCODES");
	smtp_reply_line(s, 250, 1, "SMTPUTF8");
	smtp_reply_line(s, 250, 1, "CHUNKING");
	if (!s->tls && smtp_tls_available(s))
		smtp_reply_line(s, 250, 1, "STARTTLS");
	if (smtp_auth_offered(s))
		smtp_reply_line(s, 250, 1, "AUTH PLAIN LOGIN");
	smtp_reply_line(s, 250, 0, "DSN");
}

static const char *const mail_bodies[] = { NULL, "7BIT", "8BITMIME" };
static const char *const mail_rets[] = { NULL, "FULL", "HDRS" };

/* SESSION-MAIL with the MAIL's facts (from, size, body, smtputf8, ret,
 * envid) in kv[0..5]; check names the check that refused it, or NULL. */
static void
mail_summary_log(struct smtp_session *s, struct kv kv[9], enum cond_id cause,
		 const char *check)
{
	struct log_ctx ctx;

	smtp_session_log_ctx(s, &ctx);
	kv[6] = KV("cause", catalog_get(cause)->id);
	kv[7] = KV("reply", s->last_reply);
	kv[8] = KV("check", check);
	catalog_log(COND_SESSION_MAIL, &ctx, kv, 9);
}

/* The check whose verdict refused the command just judged, or NULL. */
static const char *
refusing_check(const struct smtp_session *s)
{
	return smtp_run_refused(s) ? s->run.decided_by : NULL;
}

/* SESSION-MAIL for the MAIL the checks judged (the transaction's copies). */
static void
mail_summary(struct smtp_session *s, enum cond_id cause)
{
	const struct policy_txn *t = &s->ptxn;
	const char *from = t->sender.mailbox != NULL ? t->sender.mailbox : "";
	struct kv kv[9] = {
		KVA("from", from, strlen(from)),
		t->has_size ? KVU("size", t->size) : KV("size", NULL),
		KV("body", mail_bodies[s->pend.body]),
		KV("smtputf8", t->smtputf8 ? "yes" : NULL),
		KV("ret", mail_rets[s->pend.ret]),
		KV("envid", s->pend.envid),
	};

	mail_summary_log(s, kv, cause, refusing_check(s));
}

/* SESSION-MAIL for a MAIL refused before the checks (as parsed). */
void
smtp_mail_summary_cmd(struct smtp_session *s, const struct smtp_cmd *cmd, enum cond_id cause)
{
	struct kv kv[9] = {
		KVA("from", cmd->path.mailbox.p, cmd->path.mailbox.len),
		cmd->has_size ? KVU("size", cmd->size) : KV("size", NULL),
		KV("body", mail_bodies[cmd->body]),
		KV("smtputf8", cmd->smtputf8 ? "yes" : NULL),
		KV("ret", mail_rets[cmd->ret]),
		cmd->envid.len ? KVM("envid", cmd->envid.p, cmd->envid.len) : KV("envid", NULL),
	};

	mail_summary_log(s, kv, cause, NULL);
}



static void mail_decided(struct smtp_session *s);

void
smtp_cmd_mail(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	policy_txn_reset(&s->ptxn);
	smtp_pending_clear(&s->pend);
	(void)smtp_path_copy(&s->ptxn.sender, &cmd->path);	/* unquoting: checks see "" */
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
		smtp_session_reply(s, COND_SMTP_TOO_MANY_MESSAGES, kv, ARRAY_LEN(kv));
		mail_summary(s, COND_SMTP_TOO_MANY_MESSAGES);
		s->state = SMTP_STATE_CLOSING;
		s->end_cause = COND_SMTP_TOO_MANY_MESSAGES;
		return;
	}
	smtp_ask(s, POLICY_STAGE_MAIL, mail_decided);
}

static void
mail_decided(struct smtp_session *s)
{
	const struct policy_txn *t = &s->ptxn;
	const char *from = t->sender.mailbox;

	if (smtp_run_refused(s)) {
		mail_summary(s, smtp_refuse_verdict(s));
		return;
	}
	smtp_txn_begin(s);
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
	smtp_session_reply(s, COND_SMTP_MAIL_OK, kvfrom, 1);
	mail_summary(s, COND_SMTP_MAIL_OK);
}

/* SESSION-RCPT with the RCPT's facts (rcpt, notify, orcpt) in kv[0..2];
 * check names the check that refused it, or NULL. */
static void
rcpt_summary_log(struct smtp_session *s, struct kv kv[6], unsigned nt, enum cond_id cause,
		 const char *check)
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
	smtp_session_log_ctx(s, &ctx);
	kv[1] = KV("notify", notify[0] ? notify : NULL);
	kv[3] = KV("cause", catalog_get(cause)->id);
	kv[4] = KV("reply", s->last_reply);
	kv[5] = KV("check", check);
	catalog_log(COND_SESSION_RCPT, &ctx, kv, 6);
}

/* SESSION-RCPT for the RCPT the checks judged (the transaction's copies). */
static void
rcpt_summary(struct smtp_session *s, enum cond_id cause)
{
	const char *rcpt = s->ptxn.rcpt.mailbox != NULL ? s->ptxn.rcpt.mailbox : "";
	struct kv kv[6] = { KVA("rcpt", rcpt, strlen(rcpt)), KV("notify", NULL),
			    KV("orcpt", s->pend.orcpt) };

	rcpt_summary_log(s, kv, s->pend.notify, cause, refusing_check(s));
}

/* SESSION-RCPT for a RCPT refused before the checks (as parsed). */
void
smtp_rcpt_summary_cmd(struct smtp_session *s, const struct smtp_cmd *cmd, enum cond_id cause)
{
	struct kv kv[6] = {
		KVA("rcpt", cmd->path.mailbox.p, cmd->path.mailbox.len), KV("notify", NULL),
		cmd->orcpt.len ? KVM("orcpt", cmd->orcpt.p, cmd->orcpt.len) : KV("orcpt", NULL),
	};

	rcpt_summary_log(s, kv, cmd->notify, cause, NULL);
}


static void
rcpt_refuse(struct smtp_session *s, enum cond_id cond, const struct kv *kv, size_t nkv)
{
	s->txn.nrcpt_bad++;
	s->rcpts_bad++;
	smtp_session_reply(s, cond, kv, nkv);
	rcpt_summary(s, cond);
	(void)smtp_count_error(s);
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
	policy_txn_add_dest(&s->ptxn, addr);	/* same order: end of data may drop it */
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
	if (policy_rcpt_exempt(&s->ptxn))
		s->ptxn.nrcpt_exempt++;	/* URI lists skip a message only to them */
	s->rcpts_ok++;
	smtp_session_flag(s, route);
	struct kv kv[] = { KVA("rcpt", rcpt, strlen(rcpt)), KV("route", route) };
	smtp_session_reply(s, COND_RCPT_OK, kv, 2);
	rcpt_summary(s, COND_RCPT_OK);
	policy_chain_accepted(s->chain, &s->ptxn, POLICY_EVENT_RCPT_ACCEPTED, s->env->loop);
}


static void rcpt_decided(struct smtp_session *s);

void
smtp_cmd_rcpt(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	const struct smtp_path *p = &cmd->path;
	const char *rcpt;

	s->txn.nrcpt_tried++;
	free(s->pend.orcpt);
	s->pend.orcpt = cmd->orcpt.len ? xstrndup((const char *)cmd->orcpt.p, cmd->orcpt.len) : NULL;
	s->pend.notify = cmd->notify;
	policy_txn_rcpt_reset(&s->ptxn);
	int copied = smtp_path_copy(&s->ptxn.rcpt, p);
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
	smtp_ask(s, POLICY_STAGE_RCPT, rcpt_decided);
}

static void
rcpt_decided(struct smtp_session *s)
{
	struct policy_txn *t = &s->ptxn;
	const char *rcpt = t->rcpt.mailbox;
	char route[sizeof(t->route)];

	if (t->flag != NULL)
		smtp_session_flag(s, t->flag);
	if (smtp_run_refused(s)) {
		struct kv kvs[POLICY_PARAMS_MAX];
		size_t n;
		enum cond_id c = smtp_run_cond(s, kvs, &n);

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

void
smtp_cmd_rset(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	struct kv kv[] = { KV("cmd", smtp_verb_name(cmd->verb)) };

	smtp_txn_free(s);
	if (s->state != SMTP_STATE_INIT)
		s->state = SMTP_STATE_READY;
	smtp_session_reply(s, COND_SMTP_OK, kv, 1);
}

void
smtp_cmd_noop(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	struct kv kv[] = { KV("cmd", smtp_verb_name(cmd->verb)) };

	smtp_session_reply(s, COND_SMTP_OK, kv, 1);
}

void
smtp_cmd_quit(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	smtp_session_flag(s, "quit");
	smtp_session_reply(s, COND_SMTP_QUIT, NULL, 0);
	s->state = SMTP_STATE_CLOSING;
	s->end_cause = COND_SMTP_QUIT;
}

void
smtp_cmd_help(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	smtp_session_reply(s, COND_SMTP_HELP, NULL, 0);
}

void
smtp_cmd_vrfy(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	struct kv kv[] = { KV("client", s->conn.peer_text), KVM("arg", cmd->arg.p, cmd->arg.len) };

	smtp_session_reply(s, COND_SMTP_VRFY_DISABLED, kv, ARRAY_LEN(kv));
}

void
smtp_cmd_expn(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	struct kv kv[] = { KV("client", s->conn.peer_text), KVM("arg", cmd->arg.p, cmd->arg.len) };

	smtp_session_refuse(s, COND_SMTP_EXPN_DISABLED, kv, ARRAY_LEN(kv));
}

void
smtp_cmd_not_implemented(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	struct kv kv[] = { KV("client", s->conn.peer_text), KV("cmd", smtp_verb_name(cmd->verb)) };

	smtp_session_refuse(s, COND_SMTP_COMMAND_NOT_IMPLEMENTED, kv, ARRAY_LEN(kv));
}
