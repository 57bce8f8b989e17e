/*
 * smtp_session.c - SMTP server session: one state machine per connection.
 *
 * Owns struct smtp_session's life (start, end, free), its input loop and
 * command dispatch, and STARTTLS; the session core (net/net_session.h)
 * moves its bytes, drives TLS and its deadline. Commands are in
 * smtp_cmd.c, the message in smtp_message.c, replies in smtp_reply.c
 * (catalog IDs only), parsing in smtp_parse.c.
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

#include "cidr.h"
#include "log.h"
#include "net_conn.h"
#include "smtp_auth.h"
#include "smtp_data.h"
#include "smtp_parse.h"
#include "smtp_session_private.h"

static void session_process(struct smtp_session *s);

/* Data: limits.data_timeout from now (from the last data read). Commands:
 * limits.command_timeout from the last command that did work, so junk
 * commands (NOOP, RSET, HELP, VRFY) and partial lines never extend it. */
static void
arm_deadline(struct smtp_session *s)
{
	if (s->state == SMTP_STATE_COMMIT || s->state == SMTP_STATE_CLOSING || s->busy) {
		net_session_deadline_cancel(&s->ns);
		return;
	}
	if (s->state == SMTP_STATE_DATA || s->state == SMTP_STATE_BDAT) {
		net_session_deadline(&s->ns, (uint64_t)s->cfg->limits_data_timeout * 1000u);
		return;
	}
	uint64_t due = s->active_ms + (uint64_t)s->cfg->limits_command_timeout * 1000u;
	uint64_t now = loop_clock_ms();
	net_session_deadline(&s->ns, due > now ? due - now : 1);
}

/* A command or data that did work: the command deadline starts again. */
void
smtp_session_active(struct smtp_session *s)
{
	s->active_ms = loop_clock_ms();
}

/* Starts the handshake on s->conn; the session waits in SMTP_STATE_TLS.
 * -1 (TLS-HANDSHAKE-FAILED logged with err) when TLS cannot start. */
static int
tls_begin(struct smtp_session *s, const char *err)
{
	struct tls_server *ctx = s->env->tls_get ? s->env->tls_get(s->env->server) : NULL;

	if (net_session_tls_accept(&s->ns, ctx, s->cfg->tls_handshake_timeout * 1000u, err) < 0)
		return -1;
	s->state = SMTP_STATE_TLS;
	return 0;
}


void
smtp_cmd_starttls(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	if (s->tls) {
		struct kv kv[] = { KV("client", s->conn.peer_text) };
		smtp_session_refuse(s, COND_TLS_ALREADY_ACTIVE, kv, 1);
		return;
	}
	if (s->in_txn) {
		struct kv kv[] = { KV("client", s->conn.peer_text), KV("state", smtp_state_name(s->state)),
				   KV("cmd", "STARTTLS") };
		smtp_session_refuse(s, COND_SMTP_SEQUENCE_ERROR, kv, ARRAY_LEN(kv));
		return;
	}
	if (s->cfg->tls_cert_file[0] == '\0') {
		/* TLS not configured: the verb is not offered (RFC 3207 4). */
		smtp_cmd_not_implemented(s, cmd);
		return;
	}
	if (!smtp_tls_available(s)) {
		struct kv kv[] = { KV("client", s->conn.peer_text), KV("reason", "no TLS context") };
		smtp_session_refuse(s, COND_TLS_STARTTLS_UNAVAILABLE, kv, ARRAY_LEN(kv));
		return;
	}
	smtp_session_reply(s, COND_TLS_STARTTLS_READY, NULL, 0);
	/* CVE-2011-0411: whatever came after STARTTLS in plain text must not
	 * be taken as sent over TLS. The 220 goes out in clear first. */
	net_session_drop_input(&s->ns);
	if (net_session_write(&s->ns) != CONN_IO_OK) {
		smtp_session_end(s, COND_NET_CLIENT_WRITE_ERROR);
		return;
	}
	if (tls_begin(s, "TLS setup failed") < 0)
		smtp_session_end(s, COND_TLS_HANDSHAKE_FAILED);
}

/* The handshake is done (the core logged TLS-ESTABLISHED): the session
 * starts over (RFC 3207 4.2: forget HELO and any AUTH; implicit TLS:
 * send the greeting). */
static void
session_tls_ready(void *arg)
{
	struct smtp_session *s = arg;

	s->tls = 1;
	smtp_session_flag(s, "tls");
	smtp_txn_free(s);
	smtp_auth_free(s);
	s->auth_user[0] = '\0';
	s->helo[0] = '\0';
	s->ehlo = 0;
	s->state = SMTP_STATE_INIT;
	smtp_session_active(s);	/* the command deadline starts after the handshake */
	if (s->tls_implicit)
		smtp_greet(s);
	session_process(s);
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
	{ SMTP_VERB_HELO, smtp_cmd_helo, ST_CMD },
	{ SMTP_VERB_EHLO, smtp_cmd_helo, ST_CMD },
	{ SMTP_VERB_MAIL, smtp_cmd_mail, ST(READY) },
	{ SMTP_VERB_RCPT, smtp_cmd_rcpt, ST(MAIL) },
	{ SMTP_VERB_DATA, smtp_cmd_data, ST(MAIL) },
	{ SMTP_VERB_BDAT, smtp_cmd_bdat, ST_CMD },	/* checks its own sequence */
	{ SMTP_VERB_RSET, smtp_cmd_rset, ST_CMD },
	{ SMTP_VERB_NOOP, smtp_cmd_noop, ST_CMD },
	{ SMTP_VERB_QUIT, smtp_cmd_quit, ST_CMD },
	{ SMTP_VERB_HELP, smtp_cmd_help, ST_CMD },
	{ SMTP_VERB_VRFY, smtp_cmd_vrfy, ST_CMD },
	{ SMTP_VERB_EXPN, smtp_cmd_expn, ST_CMD },
	{ SMTP_VERB_TURN, smtp_cmd_not_implemented, ST_CMD },
	{ SMTP_VERB_STARTTLS, smtp_cmd_starttls, ST_CMD },
	{ SMTP_VERB_AUTH, smtp_cmd_auth, ST_CMD },	/* checks its own sequence */
	{ SMTP_VERB_ETRN, smtp_cmd_not_implemented, ST_CMD },
	{ SMTP_VERB_SEND, smtp_cmd_not_implemented, ST_CMD },
	{ SMTP_VERB_SOML, smtp_cmd_not_implemented, ST_CMD },
	{ SMTP_VERB_SAML, smtp_cmd_not_implemented, ST_CMD },
	{ SMTP_VERB_ATRN, smtp_cmd_not_implemented, ST_CMD },
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
	struct kv kv[] = { KV("client", s->conn.peer_text), KV("state", smtp_state_name(s->state)),
			   KV("cmd", smtp_verb_name(cmd->verb)) };
	/* Each row names its own keys; pass those it lists. */
	size_t nkv = cond == COND_SMTP_SEQUENCE_ERROR ? 3 : 1;
	if (cond == COND_SMTP_NEED_HELO) {
		kv[1] = kv[2];
		nkv = 2;
	}
	smtp_session_refuse(s, cond, kv, nkv);
	if (cmd->verb == SMTP_VERB_MAIL)
		smtp_mail_summary_cmd(s, cmd, cond);
	else if (cmd->verb == SMTP_VERB_RCPT)
		smtp_rcpt_summary_cmd(s, cmd, cond);
	else if (cmd->verb == SMTP_VERB_DATA)
		smtp_data_summary(s, cond);
}

/* The log and reply keys of a command the parser refused (err): kv gets
 * at most 4, verb the first octets of the line; returns the count. */
size_t
smtp_parse_refusal_kvs(const char *client, const char *state, const struct smtp_cmd *cmd,
		       enum cond_id err, const uint8_t *line, size_t len, char verb[17],
		       struct kv kv[4])
{
	size_t n = 0;
	size_t vlen = len < 16 ? len : 16;

	memcpy(verb, line, vlen);
	verb[vlen] = '\0';
	kv[n++] = KV("client", client);
	switch (err) {
	case COND_SMTP_COMMAND_UNKNOWN:
		kv[n++] = KV("state", state);
		kv[n++] = KVM("cmd", verb, vlen);
		break;
	case COND_SMTP_COMMAND_NON_ASCII:
		kv[n++] = KV("state", state);
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
	return n;
}

static void
parse_refuse(struct smtp_session *s, const struct smtp_cmd *cmd, enum cond_id err,
	     const uint8_t *line, size_t len)
{
	struct kv kv[4];
	char verb[17];
	size_t n = smtp_parse_refusal_kvs(s->conn.peer_text, smtp_state_name(s->state), cmd, err,
					  line, len, verb, kv);

	/* A refused BDAT's octets follow: smtp_bdat_parse_refused reads them
	 * (size known) or closes the session (size unreadable). */
	smtp_session_refuse(s, err, kv, n);
	if (cmd->verb == SMTP_VERB_MAIL)
		smtp_mail_summary_cmd(s, cmd, err);
	else if (cmd->verb == SMTP_VERB_RCPT) {
		if (s->in_txn) {
			s->txn.nrcpt_tried++;
			s->txn.nrcpt_bad++;
		}
		s->rcpts_bad++;
		smtp_rcpt_summary_cmd(s, cmd, err);
	}
}

static void
session_command(struct smtp_session *s, const uint8_t *line, size_t len)
{
	struct smtp_cmd cmd;
	enum cond_id err;
	struct smtp_parse_opts opts = { .offered = smtp_offered_extensions(s) };

	if (log_enabled(LOG_SEV_DEBUG)) {
		struct log_ctx ctx;
		smtp_session_log_ctx(s, &ctx);
		size_t shown = slice_starts_nocase((struct slice){ line, len }, "AUTH ") ? 5 : len;
		catalog_trace(&ctx, "in", line, shown);
	}
	memset(&cmd, 0, sizeof(cmd));
	if (smtp_parse_command(line, len, &opts, &cmd, &err) < 0) {
		smtp_session_active(s);
		if (cmd.verb == SMTP_VERB_AUTH && err == COND_SMTP_ARG_INVALID) {
			smtp_cmd_auth(s, &cmd);	/* AUTH-MECH-MISSING */
			return;
		}
		if (cmd.verb == SMTP_VERB_BDAT && !cmd.has_chunk_size) {
			smtp_bdat_parse_refused(s, &cmd);
			return;
		}
		parse_refuse(s, &cmd, err, line, len);
		if (cmd.verb == SMTP_VERB_BDAT)
			smtp_bdat_parse_refused(s, &cmd);
		return;
	}
	const struct verb_rule *rule = verb_rule_find(cmd.verb);
	if (rule == NULL) {
		parse_refuse(s, &cmd, COND_SMTP_COMMAND_UNKNOWN, line, len);
		return;
	}
	if (!(rule->states & (1u << s->state))) {
		smtp_session_active(s);
		sequence_refuse(s, &cmd);
		return;
	}
	if (cmd.verb == SMTP_VERB_NOOP || cmd.verb == SMTP_VERB_RSET ||
	    cmd.verb == SMTP_VERB_HELP || cmd.verb == SMTP_VERB_VRFY) {
		if (smtp_count_junk(s))
			return;
	} else {
		smtp_session_active(s);
	}
	rule->fn(s, &cmd);
}

/* ---- input ------------------------------------------------------------ */

static void
overflow(struct smtp_session *s)
{
	struct kv kv[] = { KV("client", s->conn.peer_text), KV("state", smtp_state_name(s->state)),
			   KVU("bytes", s->in.len - s->in_off), KVU("limit", s->in.max) };

	smtp_session_reply(s, COND_SMTP_INPUT_OVERFLOW, kv, ARRAY_LEN(kv));
	s->state = SMTP_STATE_CLOSING;
	s->end_cause = COND_SMTP_INPUT_OVERFLOW;
}

/* Handles whatever complete input there is, in order, then flushes. */
static void
session_process(struct smtp_session *s)
{
	if (s->state == SMTP_STATE_TLS)
		return;	/* the handshake owns the socket */
	if (s->greet_wait && s->state != SMTP_STATE_CLOSING && !smtp_triage_input(s)) {
		/* smtp.greet_pause runs (its deadline stays): read, so that
		 * a client talking first is seen. */
		if (net_session_flush(&s->ns, 0) == CONN_IO_ERROR && !s->dead)
			smtp_session_end(s, COND_NET_CLIENT_WRITE_ERROR);
		return;
	}
	while (!s->dead && !s->busy && s->state != SMTP_STATE_CLOSING &&
	       s->state != SMTP_STATE_COMMIT && s->out.len < OUT_HIGH_WATER) {
		struct slice u = buf_unread(&s->in, s->in_off);
		if (s->state == SMTP_STATE_DATA) {
			if (u.len == 0)
				break;
			smtp_data_input(s);
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
			smtp_bdat_input(s);
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
		s->cmd_t0_us = metrics_now_us();
		if (s->triage && smtp_triage_line(s, u.p, len))
			continue;	/* refused: closing */
		if (smtp_auth_expects_line(s)) {
			/* A SASL response: never traced (it holds the password),
			 * any length (the exchange answers one too long). */
			smtp_session_active(s);
			smtp_auth_line(s, u.p, len);
			continue;
		}
		/* RFC 4954 4: an AUTH initial response may be 12288 octets. */
		size_t limit = slice_starts_nocase((struct slice){ u.p, len }, "AUTH ")
			       ? SMTP_AUTH_LINE_MAX + 32 : s->cfg->limits_command_line;
		if (linelen > limit) {
			struct kv kv[] = { KV("client", s->conn.peer_text),
					   KV("state", smtp_state_name(s->state)), KVU("len", linelen),
					   KVU("limit", s->cfg->limits_command_line) };
			smtp_session_active(s);
			smtp_session_refuse(s, COND_SMTP_LINE_TOO_LONG, kv, ARRAY_LEN(kv));
			if (slice_starts_nocase((struct slice){ u.p, len }, "BDAT ") && !s->dead &&
			    s->state != SMTP_STATE_CLOSING) {
				/* its size was never read: the chunk cannot be found */
				struct smtp_cmd bad = { .verb = SMTP_VERB_BDAT,
							.arg = { u.p + 5, len < 69 ? len - 5 : 64 } };
				smtp_bdat_parse_refused(s, &bad);
			}
		} else {
			session_command(s, u.p, len);
		}
		if (s->in_off < s->in.len && s->state != SMTP_STATE_DATA &&
		    s->state != SMTP_STATE_BDAT)
			smtp_session_flag(s, "pipelining");
	}
	if (s->dead || s->state == SMTP_STATE_TLS)
		return;	/* ended, or the handshake owns the socket now */
	/* Flush replies; input waits while a commit or a check runs. */
	enum conn_io io = net_session_flush(&s->ns, s->state == SMTP_STATE_COMMIT ||
						   s->state == SMTP_STATE_CLOSING || s->busy);
	if (s->dead)
		return;
	if (io == CONN_IO_ERROR) {
		struct log_ctx ctx;
		smtp_session_log_ctx(s, &ctx);
		struct kv kv[] = { KV("client", s->conn.peer_text), KV("state", smtp_state_name(s->state)),
				   KV("errno", log_errno_name(errno)) };
		catalog_log(COND_NET_CLIENT_WRITE_ERROR, &ctx, kv, ARRAY_LEN(kv));
		smtp_session_end(s, COND_NET_CLIENT_WRITE_ERROR);
		return;
	}
	if (io == CONN_IO_OK && s->state == SMTP_STATE_CLOSING) {
		smtp_session_end(s, s->end_cause);
		return;
	}
	arm_deadline(s);
}

static void
session_process_cb(void *arg)
{
	session_process(arg);
}

/* The client closed (err 0) or reading failed; whatever complete
 * commands came before were answered. */
static void
session_closed(void *arg, int err)
{
	struct smtp_session *s = arg;

	if (s->dead)
		return;
	if (s->state == SMTP_STATE_DATA || s->state == SMTP_STATE_BDAT) {
		struct log_ctx ctx;
		smtp_session_log_ctx(s, &ctx);
		struct kv kv[] = { KV("client", s->conn.peer_text), KVU("bytes", s->txn.message_size),
				   KV("errno", err ? log_errno_name(err) : NULL) };
		catalog_log(COND_SMTP_DATA_CLIENT_LOST, &ctx, kv, ARRAY_LEN(kv));
		smtp_session_end(s, COND_SMTP_DATA_CLIENT_LOST);
		return;
	}
	if (s->state == SMTP_STATE_CLOSING) {
		smtp_session_end(s, s->end_cause);
		return;
	}
	struct log_ctx ctx;
	smtp_session_log_ctx(s, &ctx);
	struct kv kv[] = { KV("client", s->conn.peer_text), KV("state", smtp_state_name(s->state)),
			   KV("errno", err ? log_errno_name(err) : NULL) };
	catalog_log(COND_NET_CLIENT_READ_ERROR, &ctx, kv, ARRAY_LEN(kv));
	smtp_session_end(s, COND_NET_CLIENT_READ_ERROR);
}

static void
session_timeout(void *arg)
{
	struct smtp_session *s = arg;
	unsigned secs = s->state == SMTP_STATE_DATA || s->state == SMTP_STATE_BDAT
			? s->cfg->limits_data_timeout : s->cfg->limits_command_timeout;

	if (s->dead)
		return;
	if (s->greet_wait && s->state != SMTP_STATE_CLOSING) {
		smtp_triage_pause_over(s);
		session_process(s);
		return;
	}
	if (s->state == SMTP_STATE_DATA && s->txn.dec.lf_dot_lf_seen) {
		struct log_ctx ctx;
		smtp_session_log_ctx(s, &ctx);
		struct kv kv[] = { KV("client", s->conn.peer_text), KVU("bytes", s->txn.message_size) };
		catalog_log(COND_SMTP_DATA_BARE_DOT_LF, &ctx, kv, ARRAY_LEN(kv));
	}
	struct kv kv[] = { KV("client", s->conn.peer_text), KV("state", smtp_state_name(s->state)),
			   KVU("idle_s", secs) };
	smtp_session_reply(s, COND_SMTP_TIMEOUT, kv, ARRAY_LEN(kv));
	if (s->in_txn && s->txn.data_started)
		smtp_txn_summary(s, "rejected", COND_SMTP_TIMEOUT);
	s->state = SMTP_STATE_CLOSING;
	s->end_cause = COND_SMTP_TIMEOUT;
	session_process(s);
}

/* The core cannot go on (a failed handshake, logged; an epoll error). */
static void
session_fail(void *arg, enum cond_id cause)
{
	smtp_session_end(arg, cause);
}

/* ---- lifecycle -------------------------------------------------------- */

/* From the core's deferred call, never inside the session's own stack. */
static void
session_free(void *arg)
{
	struct smtp_session *s = arg;

	smtp_txn_free(s);
	policy_txn_fini(&s->ptxn);
	smtp_pending_clear(&s->pend);
	buf_fini(&s->in);
	buf_fini(&s->out);
	config_unref(&s->cfg);
	free(s);
}

void
smtp_session_end(struct smtp_session *s, enum cond_id cause)
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
	peername_stop(&s->peername);
	s->dead = 1;
	if (s->in_txn && s->txn.data_started && s->state != SMTP_STATE_COMMIT &&
	    cause != COND_SMTP_TIMEOUT && cause != COND_SIGNAL_STOP_SESSIONS)
		smtp_txn_summary(s, "rejected", cause);
	net_session_stop(&s->ns);	/* and a best-effort flush for a last 421 */
	if (snprintf(msgs, sizeof(msgs), "%u/%u", s->msgs_ok, s->msgs_tried) < 0 ||
	    snprintf(rcpts, sizeof(rcpts), "%u/%u", s->rcpts_ok, s->rcpts_bad) < 0 ||
	    snprintf(dur, sizeof(dur), "%.3f", (double)(loop_clock_ms() - s->started_ms) / 1000.0) < 0)
		msgs[0] = rcpts[0] = dur[0] = '\0';
	struct kv kv[] = {
		KV("proto", "smtp"),
		KV("client", s->conn.peer_text),
		KV("ptr", peername_name(&s->peername)),
		KV("ptr_status", peername_status_name(s->peername.status)),
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
	net_session_release(&s->ns);
	if (env->on_end)
		env->on_end(env, s->ip_slot ? &s->conn.peer : NULL);
}

/* The connection is the protocol's (after the preface stage, if any). */
static void
session_begin(void *arg)
{
	struct smtp_session *s = arg;
	struct smtp_env *env = s->env;

	s->slot = s->ns.slot;
	s->gen = s->ns.gen;
	s->trusted = cidr_list_match(&s->cfg->server_trusted_networks,
				     (struct sockaddr *)&s->conn.peer);
	if (s->trusted)
		smtp_session_flag(s, "trusted");
	if (s->conn.peer.ss_family == AF_INET6)
		smtp_session_flag(s, "ipv6");
	if (s->conn.proxied)
		smtp_session_flag(s, "proxied");

	struct log_ctx ctx = { .sid = s->sid };
	struct kv kv[] = { KV("proto", "smtp"), KV("client", s->conn.peer_text),
			   KVU("port", s->conn.peer_port), KV("local", s->conn.local_text),
			   KVU("sessions", s->sessions_now),
			   KV("proxy", s->conn.proxied ? s->conn.proxy_text : NULL) };
	catalog_log(COND_SESSION_START, &ctx, kv, ARRAY_LEN(kv));
	if (s->conn.proxied && env->admit != NULL && !env->draining) {
		/* the client is known now: admitted as the server admits at accept */
		struct kv ak[3];
		enum cond_id c = env->admit(env, &s->conn.peer, s->conn.peer_text, ak);

		if (c != COND__COUNT) {
			smtp_session_reply(s, c, ak, ARRAY_LEN(ak));
			s->state = SMTP_STATE_CLOSING;
			s->end_cause = c;
			session_process(s);
			return;
		}
		s->ip_slot = 1;
	}
	/* The client's name: asked now, awaited only where needed (a check,
	 * our Received field); the greeting does not wait for it. */
	if (s->cfg->smtp_peername_lookup && !env->draining)
		peername_start(&s->peername);
	if (s->tls_implicit && !env->draining) {
		/* RFC 8314: TLS first, the greeting comes after the handshake. */
		if (tls_begin(s, "no TLS context") < 0) {
			smtp_session_end(s, COND_TLS_HANDSHAKE_FAILED);
			return;
		}
		net_session_tls_step(&s->ns);
		return;
	}
	if (env->draining) {
		struct kv k2[] = { KV("signal", "SIGTERM"), KVU("sessions", env->table.live) };
		smtp_session_reply(s, COND_SIGNAL_STOP_SESSIONS, k2, 2);
		s->state = SMTP_STATE_CLOSING;
		s->end_cause = COND_SIGNAL_STOP_SESSIONS;
	} else if (!smtp_triage_begin(s)) {
		smtp_greet(s);
	}
	session_process(s);
}

static const struct net_session_ops smtp_session_ops = {
	.start = session_begin,
	.process = session_process_cb,
	.closed = session_closed,
	.timeout = session_timeout,
	.fail = session_fail,
	.tls_ready = session_tls_ready,
	.free = session_free,
};

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
	net_session_init(&s->ns, &smtp_session_ops, s, s->sid, &s->conn, &s->in, &s->in_off,
			 &s->out);
	conn_init(&s->conn, fd);
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = loop_clock_ms() ^ ((uint64_t)(uintptr_t)s << 16);
	if (snprintf(s->sid, sizeof(s->sid), "%016" PRIx64, rnd) < 0)
		s->sid[0] = '\0';
	s->started_ms = loop_clock_ms();
	s->active_ms = s->started_ms;
	s->end_cause = COND__COUNT;
	s->state = SMTP_STATE_INIT;
	buf_init(&s->in, s->cfg->limits_line_buffer);
	buf_init(&s->out, OUT_MAX);
	s->ns.out_high = OUT_HIGH_WATER;
	s->chain = env->chain != NULL ? env->chain : policy_chain_of(s->cfg, lst);
	policy_txn_init(&s->ptxn);
	s->ptxn.cfg = s->cfg;
	s->ptxn.lst = lst;
	s->ptxn.client = s->conn.peer_text;
	s->ptxn.peer = &s->conn.peer;
	s->ptxn.dns = env->dns;
	s->ptxn.sid = s->sid;
	peername_init(&s->peername, env->loop, env->dns, &s->conn.peer,
		      (uint64_t)s->cfg->smtp_peername_timeout * 1000u, s->sid, s->conn.peer_text);
	s->ptxn.peername = &s->peername;
	policy_run_init(&s->run);
	s->sessions_now = sessions_now;
	/* the server took a slot for the socket's peer at accept, except
	 * behind a proxy (admitted in session_begin) */
	s->ip_slot = lst == NULL || !lst->proxy_protocol;
	s->ns.proxy_networks = &s->cfg->proxy_networks;
	/* The greeting (session_begin) comes after the listener's preface
	 * stage, when it has one: a PROXY header sets the client's address
	 * (s->conn.peer, which ptxn points to) before SESSION-START. */
	if (net_session_accept(&s->ns, &env->table, env->loop, net_preface_of(lst),
			       s->cfg->proxy_timeout * 1000u) < 0)
		smtp_session_end(s, COND_NET_CLIENT_READ_ERROR);
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
	for (size_t i = 0; i < env->table.n; i++) {
		struct smtp_session *s = net_table_at(&env->table, i);
		if (s == NULL || s->dead || s->state == SMTP_STATE_CLOSING)
			continue;
		if (s->state == SMTP_STATE_COMMIT)
			continue;	/* closes after its commit (env->draining) */
		struct kv kv[] = { KV("signal", sig), KVU("sessions", env->table.live) };
		smtp_session_reply(s, COND_SIGNAL_STOP_SESSIONS, kv, ARRAY_LEN(kv));
		if (s->dead)
			continue;
		if (s->in_txn && s->txn.data_started)
			smtp_txn_summary(s, "tempfail", COND_SIGNAL_STOP_SESSIONS);
		s->state = SMTP_STATE_CLOSING;
		s->end_cause = COND_SIGNAL_STOP_SESSIONS;
		session_process(s);
	}
}

/* The loop has stopped: a session still open (waiting on a commit past
 * the hard stop) is dropped as it is; a late completion finds nothing. */
static void
session_drop(void *arg)
{
	struct smtp_session *s = arg;

	smtp_auth_free(s);
	policy_run_cancel(&s->run);
	peername_stop(&s->peername);
	conn_close(&s->conn);
	session_free(s);
}

void
smtp_env_fini(struct smtp_env *env)
{
	net_table_fini(&env->table, session_drop);
}

/* ---- for command handlers in other files ------------------------------ */

static struct smtp_session *
session_by_handle(struct smtp_env *env, uintptr_t handle)
{
	return net_table_find(&env->table, handle);
}

uintptr_t
smtp_session_handle(const struct smtp_session *s)
{
	return net_session_handle(&s->ns);
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
		smtp_session_active(s);
		session_process(s);
	}
}
