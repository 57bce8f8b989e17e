/*
 * pop3_session.c - POP3 server session: one state machine per connection
 * (RFC 1939 AUTHORIZATION, TRANSACTION, UPDATE; RFC 2449 CAPA and
 * response codes; RFC 5034 AUTH PLAIN; RFC 2595 STLS and RFC 8314
 * implicit TLS on pop3s listeners).
 *
 * Owns struct pop3_session (pop3_session_private.h), its view of the
 * maildrop (numbers, deleted and retrieved marks) and, once logged in,
 * its mailbox lock; replies, the verb table, input, STLS and the
 * lifecycle are here, the commands of each state in pop3_cmd_auth.c and
 * pop3_cmd_trans.c. The session core (net/net_session.h) moves its
 * bytes, drives TLS and its deadline, and frees it. Parsing is
 * pop3_parse.c's; every blocking step
 * (password check, scan, file reads, UPDATE) is a job on the service's
 * workers (pop3_service.c). Every reply goes through pop3_session_reply(),
 * which takes only catalog IDs and logs what it sends.
 *
 * Invariants: one reply per command, in command order (pipelined
 * commands wait in the input buffer while a command waits on a worker,
 * a delay or the client's reading); nothing in the Maildir changes unless
 * the client sent QUIT in the TRANSACTION state; a session is freed only
 * from a deferred call (or pop3_env_fini), never inside its own callback
 * stack, and late job completions find it by (slot, generation) or free
 * the job (which releases whatever it held).
 */
#include "pop3.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "log.h"
#include "directory.h"
#include "sasl_plain.h"
#include "net_conn.h"
#include "net_session.h"
#include "net_tls.h"
#include "pop3_private.h"
#include "pop3_session_private.h"

/* ---- helpers ---------------------------------------------------------- */

static const char *const state_names[] = { "authorization", "transaction", "closing", "tls" };

static const char *
state_name(enum pop3_state st)
{
	return (unsigned)st < POP3_STATE__COUNT ? state_names[st] : "?";
}

uintptr_t
pop3_session_handle(const struct pop3_session *s)
{
	return net_session_handle(&s->ns);
}

struct pop3_session *
pop3_session_by_handle(struct pop3_env *env, uintptr_t handle)
{
	return net_table_find(&env->table, handle);
}

/* The name for "user=" keys: the mailbox once logged in, else as given. */
static const char *
user_key(const struct pop3_session *s)
{
	if (s->mailbox[0])
		return s->mailbox;
	return s->user[0] ? s->user : NULL;
}

void
pop3_session_log_ctx(const struct pop3_session *s, struct log_ctx *ctx)
{
	ctx->sid = s->sid;
	ctx->qid = NULL;
	ctx->tid = NULL;
}

/* 1 when a TLS context is in force (asked each time: a reload may have
 * fixed or broken it). */
static int
tls_available(const struct pop3_session *s)
{
	struct tls_server *t = s->env->tls_get ? s->env->tls_get(s->env->server) : NULL;

	if (t == NULL)
		return 0;
	tls_server_unref(&t);
	return 1;
}

/* ---- replies ---------------------------------------------------------- */

/* Queues the reply of cond. Refusals ("-ERR") are logged as their own
 * event at the catalog's severity with the reply; normal replies at
 * their row's severity when above debug (POP3-LOGIN, POP3-QUIT-UPDATE),
 * else only at debug. */
void
pop3_session_reply(struct pop3_session *s, enum cond_id cond, const struct kv *kvs, size_t nkv)
{
	const struct cond *c = catalog_get(cond);
	struct buf r;
	struct log_ctx ctx;
	int err = pop3_reply_is_err(cond);

	if (s->dead)
		return;
	buf_init(&r, REPLY_MAX - 3);
	if (pop3_reply_render(&r, cond, s->cfg->hostname, kvs, nkv) < 0) {
		buf_reset(&r);
		if (buf_append_str(&r, "-ERR [SYS/TEMP]") < 0)
			PANIC("cannot render a reply");
	}
	if (buf_append(&s->out, r.data, r.len) < 0 || buf_append(&s->out, "\r\n", 2) < 0) {
		/* The client does not read its replies: drop it. */
		buf_fini(&r);
		pop3_session_end(s, COND_NET_CLIENT_WRITE_ERROR);
		return;
	}
	pop3_session_log_ctx(s, &ctx);
	if (err) {
		s->rejects++;
		if (slice_copy(buf_slice(&r), s->last_reject, sizeof(s->last_reject)) < 0)
			s->last_reject[0] = '\0';
		catalog_log_refusal(cond, &ctx, kvs, nkv, s->last_reject);
	} else if (c->sev > LOG_SEV_DEBUG) {
		catalog_log(cond, &ctx, kvs, nkv);
	} else if (log_enabled(LOG_SEV_DEBUG)) {
		catalog_log_sev(cond, LOG_SEV_DEBUG, &ctx, kvs, nkv);
	}
	if (log_enabled(LOG_SEV_DEBUG))
		catalog_trace(&ctx, "out", r.data, r.len);
	buf_fini(&r);
}

/* Appends one line of a multi-line response (CAPA, LIST, UIDL). */
void
pop3_session_line(struct pop3_session *s, const char *fmt, ...)
{
	va_list ap;
	int r;

	if (s->dead)
		return;
	va_start(ap, fmt);
	r = buf_vappendf(&s->out, fmt, ap);
	va_end(ap);
	if (r < 0 || buf_append(&s->out, "\r\n", 2) < 0)
		pop3_session_end(s, COND_NET_CLIENT_WRITE_ERROR);
}

/* Counts a refusal toward limits.errors; closes the session past it.
 * Only protocol errors count (unknown command, bad syntax, wrong
 * sequence, a failed or refused login): ordinary answers a correct client
 * gets (no such message, message deleted, maildrop busy, LOGIN-DELAY,
 * the server's own trouble) are sent with pop3_session_reply and count
 * nothing, so a client that RETRs a message it deleted is not closed
 * before its QUIT applies the deletions. */
static void
session_count_error(struct pop3_session *s)
{
	unsigned limit = config_listener_uint(s->cfg, s->lst, CONFIG_OVER_LIMITS_ERRORS);

	s->errors++;
	if (limit == 0 || s->errors < limit || s->state == POP3_STATE_CLOSING)
		return;
	struct kv kv[] = { KV("client", s->conn.peer_text), KVU("count", s->errors),
			   KVU("limit", limit) };
	pop3_session_reply(s, COND_POP3_TOO_MANY_ERRORS, kv, ARRAY_LEN(kv));
	s->state = POP3_STATE_CLOSING;
	s->end_cause = COND_POP3_TOO_MANY_ERRORS;
}

void
pop3_session_refuse(struct pop3_session *s, enum cond_id cond, const struct kv *kvs, size_t nkv)
{
	pop3_session_reply(s, cond, kvs, nkv);
	session_count_error(s);
}

static void
cmd_not_offered(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	/* APOP is not offered (no APOP secrets), nor STLS without a
	 * certificate. */
	struct kv kv[] = { KV("client", s->conn.peer_text), KV("cmd", pop3_verb_name(cmd->verb)) };

	pop3_session_refuse(s, COND_POP3_SYNTAX, kv, ARRAY_LEN(kv));
}

static void
cmd_capa(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	(void)cmd;
	/* RFC 2595 4: no USER (nor SASL PLAIN) where it would be refused. */
	int plain = pop3_plaintext_refusal(s) == COND__COUNT;

	pop3_session_reply(s, COND_POP3_CAPA, NULL, 0);
	pop3_session_line(s, "TOP");
	pop3_session_line(s, "UIDL");
	if (plain)
		pop3_session_line(s, "USER");
	pop3_session_line(s, "RESP-CODES");
	pop3_session_line(s, "AUTH-RESP-CODE");
	pop3_session_line(s, "PIPELINING");
	if (plain)
		pop3_session_line(s, "SASL PLAIN");
	if (!s->tls && s->state == POP3_STATE_AUTH && tls_available(s))
		pop3_session_line(s, "STLS");
	if (s->cfg->pop3_login_delay > 0)
		pop3_session_line(s, "LOGIN-DELAY %u", s->cfg->pop3_login_delay);
	pop3_session_line(s, "IMPLEMENTATION Postern");
	pop3_session_line(s, ".");
}

/* ---- TLS (RFC 2595 STLS, RFC 8314 pop3s) ---------------------------------------- */

static void send_greeting(struct pop3_session *s);

/* Puts s->conn on TLS; the session waits in POP3_STATE_TLS. -1
 * (TLS-HANDSHAKE-FAILED logged with err) when TLS cannot start. */
static int
tls_begin(struct pop3_session *s, const char *err)
{
	struct tls_server *ctx = s->env->tls_get ? s->env->tls_get(s->env->server) : NULL;

	if (net_session_tls_accept(&s->ns, ctx, s->cfg->tls_handshake_timeout * 1000u, err) < 0)
		return -1;
	s->state = POP3_STATE_TLS;
	return 0;
}

/* The handshake is done (the core logged TLS-ESTABLISHED): the session
 * is in AUTHORIZATION with no USER given (RFC 2595 4: the client asks
 * CAPA again); on pop3s the greeting goes out now. */
static void
session_tls_ready(void *arg)
{
	struct pop3_session *s = arg;

	s->tls = 1;
	s->state = POP3_STATE_AUTH;
	s->have_user = 0;
	s->user[0] = '\0';
	if (s->tls_implicit)
		send_greeting(s);
	pop3_session_process(s);
}

static void
cmd_stls(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	if (s->tls) {
		struct kv kv[] = { KV("client", s->conn.peer_text) };
		pop3_session_refuse(s, COND_POP3_STLS_ACTIVE, kv, 1);
		return;
	}
	if (s->cfg->tls_cert_file[0] == '\0') {
		cmd_not_offered(s, cmd);	/* TLS not configured: not offered */
		return;
	}
	if (!tls_available(s)) {
		struct kv kv[] = { KV("client", s->conn.peer_text), KV("reason", "no TLS context") };
		pop3_session_reply(s, COND_POP3_STLS_UNAVAILABLE, kv, ARRAY_LEN(kv));
		return;
	}
	pop3_session_reply(s, COND_POP3_STLS_READY, NULL, 0);
	/* The +OK goes out in clear; whatever the client sent after STLS
	 * in clear must not count as sent over TLS (CVE-2011-0411). */
	net_session_drop_input(&s->ns);
	s->have_user = 0;
	if (net_session_write(&s->ns) != CONN_IO_OK) {
		pop3_session_end(s, COND_NET_CLIENT_WRITE_ERROR);
		return;
	}
	if (tls_begin(s, "TLS setup failed") < 0) {
		buf_reset(&s->out);	/* nothing may go out in clear now */
		pop3_session_end(s, COND_TLS_HANDSHAKE_FAILED);
	}
	/* pop3_session_process sees POP3_STATE_TLS and starts the handshake */
}

/* ---- the verb table ---------------------------------------------------------- */

#define ST(x) (1u << POP3_STATE_##x)

struct verb_rule {
	enum pop3_verb verb;
	void (*fn)(struct pop3_session *s, const struct pop3_cmd *cmd);
	unsigned states;
};

static const struct verb_rule verb_rules[] = {
	{ POP3_VERB_USER, pop3_cmd_user, ST(AUTH) },
	{ POP3_VERB_PASS, pop3_cmd_pass, ST(AUTH) },
	{ POP3_VERB_AUTH, pop3_cmd_auth, ST(AUTH) },
	{ POP3_VERB_APOP, cmd_not_offered, ST(AUTH) },
	{ POP3_VERB_STLS, cmd_stls, ST(AUTH) },
	{ POP3_VERB_CAPA, cmd_capa, ST(AUTH) | ST(TRANS) },
	{ POP3_VERB_STAT, pop3_cmd_stat, ST(TRANS) },
	{ POP3_VERB_LIST, pop3_cmd_list, ST(TRANS) },
	{ POP3_VERB_UIDL, pop3_cmd_list, ST(TRANS) },
	{ POP3_VERB_RETR, pop3_cmd_retr, ST(TRANS) },
	{ POP3_VERB_TOP, pop3_cmd_retr, ST(TRANS) },
	{ POP3_VERB_DELE, pop3_cmd_dele, ST(TRANS) },
	{ POP3_VERB_RSET, pop3_cmd_rset, ST(TRANS) },
	{ POP3_VERB_NOOP, pop3_cmd_noop, ST(TRANS) },
	{ POP3_VERB_QUIT, pop3_cmd_quit, ST(AUTH) | ST(TRANS) },
};

static const struct verb_rule *
verb_rule_find(enum pop3_verb verb)
{
	for (size_t i = 0; i < ARRAY_LEN(verb_rules); i++)
		if (verb_rules[i].verb == verb)
			return &verb_rules[i];
	return NULL;
}

static void
session_command(struct pop3_session *s, const uint8_t *line, size_t len)
{
	struct pop3_cmd cmd;
	enum cond_id err;
	int rc = pop3_parse_command(line, len, &cmd, &err);

	if (log_enabled(LOG_SEV_DEBUG)) {
		struct log_ctx ctx;
		pop3_session_log_ctx(s, &ctx);
		/* never the password, nor a SASL response */
		size_t shown = cmd.verb == POP3_VERB_PASS ? 4 :
			       cmd.verb == POP3_VERB_AUTH && cmd.initial.len ? 10 : len;
		if (shown > len)
			shown = len;
		catalog_trace(&ctx, "in", line, shown);
	}
	const struct verb_rule *rule = verb_rule_find(cmd.verb);
	if (rule != NULL && !(rule->states & (1u << s->state))) {
		struct kv kv[] = { KV("client", s->conn.peer_text), KV("state", state_name(s->state)),
				   KV("cmd", pop3_verb_name(cmd.verb)) };
		pop3_session_refuse(s, COND_POP3_SEQUENCE, kv, ARRAY_LEN(kv));
		return;
	}
	if (rc < 0) {
		if (err == COND_POP3_MSG_NUMBER_INVALID) {
			struct kv kv[] = { KV("user", user_key(s)), KVM("arg", cmd.arg.p, cmd.arg.len) };
			pop3_session_refuse(s, err, kv, ARRAY_LEN(kv));
		} else {
			size_t vl = cmd.verb_text.len > 16 ? 16 : cmd.verb_text.len;
			struct kv kv[] = { KV("client", s->conn.peer_text),
					   cmd.verb != POP3_VERB_UNKNOWN
					   ? KV("cmd", pop3_verb_name(cmd.verb))
					   : KVM("cmd", line, vl ? vl : (len > 16 ? 16 : len)) };
			pop3_session_refuse(s, COND_POP3_SYNTAX, kv, ARRAY_LEN(kv));
		}
		return;
	}
	rule->fn(s, &cmd);
}

/* ---- input and output ------------------------------------------------------- */

static void
overflow(struct pop3_session *s)
{
	struct kv kv[] = { KV("client", s->conn.peer_text), KVU("bytes", s->in.len - s->in_off),
			   KVU("limit", s->in.max) };

	pop3_session_reply(s, COND_POP3_INPUT_OVERFLOW, kv, ARRAY_LEN(kv));
	s->state = POP3_STATE_CLOSING;
	s->end_cause = COND_POP3_INPUT_OVERFLOW;
}

static int
waiting_on_server(const struct pop3_session *s)
{
	return s->wait == WAIT_CHECK || s->wait == WAIT_LOGIN || s->wait == WAIT_DELAY ||
	       s->wait == WAIT_UPDATE;
}

static void
arm_deadline(struct pop3_session *s)
{
	if (waiting_on_server(s)) {
		net_session_deadline_cancel(&s->ns);
		return;
	}
	/* Idle for a command, or a client that does not read its reply. */
	net_session_deadline(&s->ns, (uint64_t)s->cfg->pop3_idle_timeout * 1000u);
}

/* Handles whatever complete input there is, in order, then flushes. */
void
pop3_session_process(struct pop3_session *s)
{
	enum conn_io io;

	if (s->state == POP3_STATE_TLS)
		return;		/* the handshake owns the socket */
again:
	while (!s->dead && s->state != POP3_STATE_CLOSING && s->out.len < OUT_HIGH_WATER) {
		if (s->wait == WAIT_LIST) {
			pop3_list_more(s);
			if (s->wait == WAIT_LIST)
				break;
			continue;
		}
		if (s->wait == WAIT_RETR) {
			if (!s->chunk_pending && s->out.len < STREAM_LOW)
				pop3_chunk_request(s);
			break;
		}
		if (waiting_on_server(s))
			break;
		struct slice u = buf_unread(&s->in, s->in_off);
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
		if (s->wait == WAIT_SASL) {
			if (log_enabled(LOG_SEV_DEBUG)) {
				struct log_ctx ctx;
				pop3_session_log_ctx(s, &ctx);
				catalog_trace(&ctx, "in", "(SASL response)", 15);
			}
			pop3_sasl_response(s, u.p, len, linelen);
		} else if (linelen > POP3_COMMAND_MAX) {
			struct kv kv[] = { KV("client", s->conn.peer_text), KVU("len", linelen),
					   KVU("limit", POP3_COMMAND_MAX) };
			pop3_session_refuse(s, COND_POP3_LINE_TOO_LONG, kv, ARRAY_LEN(kv));
		} else {
			session_command(s, u.p, len);
		}
		if (s->dead)
			return;
		if (s->state == POP3_STATE_TLS) {
			/* STLS: the input is gone; no reply is pending */
			net_session_tls_step(&s->ns);
			return;
		}
		/* wipe a password before the bytes are reused; taken by
		 * moving the offset, not the bytes */
		explicit_bzero(s->in.data + s->in_off, linelen);
		s->in_off += linelen;
	}
	if (s->dead)
		return;
	io = net_session_flush(&s->ns, s->state == POP3_STATE_CLOSING ||
					  (s->wait != WAIT_NONE && s->wait != WAIT_SASL));
	if (s->dead)
		return;
	if (io == CONN_IO_ERROR) {
		struct log_ctx ctx;
		pop3_session_log_ctx(s, &ctx);
		struct kv kv[] = { KV("client", s->conn.peer_text), KV("state", state_name(s->state)),
				   KV("errno", log_errno_name(errno)) };
		catalog_log(COND_NET_CLIENT_WRITE_ERROR, &ctx, kv, ARRAY_LEN(kv));
		pop3_session_end(s, COND_NET_CLIENT_WRITE_ERROR);
		return;
	}
	if (io == CONN_IO_OK && s->state == POP3_STATE_CLOSING) {
		pop3_session_end(s, s->end_cause);
		return;
	}
	/* The output drained while a listing or a message goes on: produce
	 * the next part now (no event would come for it). */
	if (io == CONN_IO_OK && (s->wait == WAIT_LIST ||
				 (s->wait == WAIT_RETR && !s->chunk_pending)))
		goto again;
	arm_deadline(s);
}

static void
session_process_cb(void *arg)
{
	pop3_session_process(arg);
}

/* The client closed (err 0) or reading failed. */
static void
session_closed(void *arg, int err)
{
	struct pop3_session *s = arg;

	if (s->dead)
		return;
	if (s->state == POP3_STATE_CLOSING) {
		pop3_session_end(s, s->end_cause);
		return;
	}
	/* The client left without QUIT: no UPDATE (RFC 1939 6). */
	struct log_ctx ctx;
	pop3_session_log_ctx(s, &ctx);
	struct kv kv[] = { KV("client", s->conn.peer_text), KV("state", state_name(s->state)),
			   KV("errno", err ? log_errno_name(err) : NULL) };
	catalog_log(COND_NET_CLIENT_READ_ERROR, &ctx, kv, ARRAY_LEN(kv));
	pop3_session_end(s, COND_NET_CLIENT_READ_ERROR);
}

static void
session_timeout(void *arg)
{
	struct pop3_session *s = arg;

	if (s->dead)
		return;
	/* RFC 1939 3: close without a response and without UPDATE. */
	struct log_ctx ctx;
	pop3_session_log_ctx(s, &ctx);
	struct kv kv[] = { KV("client", s->conn.peer_text), KV("state", state_name(s->state)),
			   KVU("idle_s", s->cfg->pop3_idle_timeout) };
	catalog_log(COND_POP3_TIMEOUT, &ctx, kv, ARRAY_LEN(kv));
	buf_reset(&s->out);
	pop3_session_end(s, COND_POP3_TIMEOUT);
}

/* The core cannot go on (a failed handshake, logged; an epoll error). */
static void
session_fail(void *arg, enum cond_id cause)
{
	pop3_session_end(arg, cause);
}

/* ---- lifecycle ---------------------------------------------------------------- */

/* From the core's deferred call (or pop3_env_fini). */
static void
session_free(void *arg)
{
	struct pop3_session *s = arg;

	if (s->fd >= 0)
		close(s->fd);
	pop3_maildrop_fini(&s->drop);
	if (s->in.data != NULL)
		explicit_bzero(s->in.data, s->in.cap);
	buf_fini(&s->in);
	buf_fini(&s->out);
	config_unref(&s->cfg);
	free(s);
}

void
pop3_session_end(struct pop3_session *s, enum cond_id cause)
{
	struct pop3_env *env = s->env;
	char dur[32], tls_text[128];

	if (s->dead)
		return;
	s->dead = 1;
	net_session_stop(&s->ns);	/* and a best-effort flush for a last -ERR */
	loop_timer_cancel(env->loop, &s->delay);
	if (s->fd >= 0) {
		close(s->fd);
		s->fd = -1;
	}
	if (s->locked) {
		pop3_lock_release(env->svc, s->mailbox);
		s->locked = 0;
	}
	if (snprintf(dur, sizeof(dur), "%.3f",
		     (double)(loop_clock_ms() - s->started_ms) / 1000.0) < 0)
		dur[0] = '\0';
	if (snprintf(tls_text, sizeof(tls_text), "%s/%s", tls_conn_version(&s->conn),
		     tls_conn_cipher(&s->conn)) < 0)
		tls_text[0] = '\0';
	struct log_ctx ctx = { .sid = s->sid };
	struct kv kv[] = {
		KV("proto", "pop3"),
		KV("client", s->conn.peer_text),
		KV("user", user_key(s)),
		KV("tls", s->tls ? tls_text : "no"),
		KVU("retr", s->retr),
		KVU("dele", s->dele),
		KVU("rejects", s->rejects),
		KVU("bytes", s->conn.bytes_in),
		KVU("bytes_out", s->conn.bytes_out),
		KV("duration_s", dur),
		KV("last_reject", s->last_reject[0] ? s->last_reject : NULL),
		KV("cause", catalog_get(cause == COND__COUNT ? COND_NET_CLIENT_READ_ERROR : cause)->id),
	};
	catalog_log(COND_SESSION_END, &ctx, kv, ARRAY_LEN(kv));
	net_session_release(&s->ns);
	if (env->on_end)
		env->on_end(env, s->ip_slot ? &s->conn.peer : NULL);
}

/* The lockout check came back: the greeting, or the refusal that takes
 * its place. */
static void
greeting_checked(struct pop3_job *j)
{
	struct pop3_session *s = pop3_session_by_handle(j->env, j->handle);
	int banned = j->banned;
	int64_t count = j->fail_count;
	uint64_t left = j->ban_remaining_s;

	pop3_job_free(j);	/* the answer is copied */
	if (s == NULL || s->dead || s->wait != WAIT_CHECK)
		return;		/* gone, or told of a shutdown meanwhile */
	s->wait = WAIT_NONE;
	if (banned) {
		struct kv k2[] = { KV("client", s->conn.peer_text), KVI("count", count),
				   KVU("remaining_s", left) };
		pop3_session_reply(s, COND_POP3_AUTH_LOCKOUT, k2, ARRAY_LEN(k2));
		s->state = POP3_STATE_CLOSING;
		s->end_cause = COND_POP3_AUTH_LOCKOUT;
	} else {
		pop3_session_reply(s, COND_POP3_GREETING, NULL, 0);
	}
	pop3_session_process(s);
}

/* The greeting, after the lockout check (the state store is asked on a
 * worker; input waits meanwhile), or the refusal that takes its place. */
static void
send_greeting(struct pop3_session *s)
{
	struct pop3_env *env = s->env;

	if (env->draining) {
		struct kv k2[] = { KV("signal", "SIGTERM"), KVU("sessions", env->table.live) };
		pop3_session_reply(s, COND_POP3_SHUTDOWN, k2, ARRAY_LEN(k2));
		s->state = POP3_STATE_CLOSING;
		s->end_cause = COND_POP3_SHUTDOWN;
		return;
	}
	if (s->cfg->pop3_max_failures == 0) {	/* lockout off */
		pop3_session_reply(s, COND_POP3_GREETING, NULL, 0);
		return;
	}
	struct pop3_job *j = pop3_job_new(env->svc, POP3_JOB_CHECK, env, pop3_session_handle(s),
					  greeting_checked);
	memcpy(j->sid, s->sid, sizeof(j->sid));
	if (slice_copy(slice_from_cstr(s->conn.peer_text), j->client, sizeof(j->client)) < 0)
		PANIC("client address text");
	s->wait = WAIT_CHECK;
	pop3_job_submit(j);
}

/* The connection is the protocol's (after the preface stage, if any). */
static void
session_begin(void *arg)
{
	struct pop3_session *s = arg;
	struct log_ctx ctx = { .sid = s->sid };
	struct kv kv[] = { KV("proto", "pop3"), KV("client", s->conn.peer_text),
			   KVU("port", s->conn.peer_port), KV("local", s->conn.local_text),
			   KVU("sessions", s->sessions_now),
			   KV("proxy", s->conn.proxied ? s->conn.proxy_text : NULL) };

	catalog_log(COND_SESSION_START, &ctx, kv, ARRAY_LEN(kv));
	if (s->conn.proxied && s->env->admit != NULL && !s->env->draining) {
		/* the client is known now: admitted as the server admits at accept */
		struct kv ak[3];
		enum cond_id c = s->env->admit(s->env, &s->conn.peer, s->conn.peer_text, ak);

		if (c != COND__COUNT) {
			pop3_session_reply(s, c, ak, ARRAY_LEN(ak));
			s->state = POP3_STATE_CLOSING;
			s->end_cause = c;
			pop3_session_process(s);
			return;
		}
		s->ip_slot = 1;
	}
	if (s->tls_implicit && !s->env->draining) {
		/* RFC 8314: TLS first, the greeting comes after the handshake. */
		if (tls_begin(s, "no TLS context") < 0) {
			pop3_session_end(s, COND_TLS_HANDSHAKE_FAILED);
			return;
		}
		net_session_tls_step(&s->ns);
		return;
	}
	send_greeting(s);
	pop3_session_process(s);
}

static const struct net_session_ops pop3_session_ops = {
	.start = session_begin,
	.process = session_process_cb,
	.closed = session_closed,
	.timeout = session_timeout,
	.fail = session_fail,
	.tls_ready = session_tls_ready,
	.free = session_free,
};

void
pop3_session_start(struct pop3_env *env, int fd, const struct config_listener *lst,
		   unsigned long sessions_now)
{
	struct pop3_session *s = xcalloc(1, sizeof(*s));
	uint64_t rnd;

	s->env = env;
	s->cfg = env->config_get(env->server);
	s->tls_implicit = lst != NULL && lst->role == CONFIG_ROLE_POP3S;
	s->require_tls = lst != NULL && lst->require_tls;
	s->lst = lst;
	net_session_init(&s->ns, &pop3_session_ops, s, s->sid, &s->conn, &s->in, &s->in_off,
			 &s->out);
	s->ns.wipe_input = 1;	/* input may hold a password */
	s->ns.out_high = OUT_HIGH_WATER;
	conn_init(&s->conn, fd);
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = loop_clock_ms() ^ ((uint64_t)(uintptr_t)s << 16);
	if (snprintf(s->sid, sizeof(s->sid), "%016" PRIx64, rnd) < 0)
		s->sid[0] = '\0';
	s->started_ms = loop_clock_ms();
	s->end_cause = COND__COUNT;
	s->state = POP3_STATE_AUTH;
	s->fd = -1;
	buf_init(&s->in, s->cfg->limits_line_buffer);
	buf_init(&s->out, OUT_MAX);
	loop_timer_init(&s->delay, pop3_delay_fire, s);

	s->sessions_now = sessions_now;
	/* the server took a slot for the socket's peer at accept, except
	 * behind a proxy (admitted in session_begin) */
	s->ip_slot = lst == NULL || !lst->proxy_protocol;
	s->ns.proxy_networks = &s->cfg->proxy_networks;
	/* The greeting (session_begin) comes after the listener's preface
	 * stage, when it has one: a PROXY header sets the client's address
	 * before SESSION-START. */
	if (net_session_accept(&s->ns, &env->table, env->loop, net_preface_of(lst),
			       s->cfg->proxy_timeout * 1000u) < 0)
		pop3_session_end(s, COND_NET_CLIENT_READ_ERROR);
}

void
pop3_refuse_connection(int fd, enum cond_id cond, const struct kv *kvs, size_t nkv)
{
	struct buf r;

	buf_init(&r, REPLY_MAX);
	if (pop3_reply_render(&r, cond, NULL, kvs, nkv) == 0 && buf_append(&r, "\r\n", 2) == 0) {
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
pop3_env_stop_sessions(struct pop3_env *env, int signo)
{
	const char *sig = signo == 2 ? "SIGINT" : "SIGTERM";

	for (size_t i = 0; i < env->table.n; i++) {
		struct pop3_session *s = net_table_at(&env->table, i);
		if (s == NULL || s->dead || s->state == POP3_STATE_CLOSING)
			continue;
		if (s->wait == WAIT_UPDATE)
			continue;	/* closes after its update */
		struct kv kv[] = { KV("signal", sig), KVU("sessions", env->table.live) };
		if (s->wait == WAIT_RETR || s->wait == WAIT_LIST || s->state == POP3_STATE_TLS) {
			/* mid-response or mid-handshake: an -ERR cannot
			 * follow; just close */
			struct log_ctx ctx;
			pop3_session_log_ctx(s, &ctx);
			catalog_log(COND_POP3_SHUTDOWN, &ctx, kv, ARRAY_LEN(kv));
			pop3_session_end(s, COND_POP3_SHUTDOWN);
			continue;
		}
		loop_timer_cancel(env->loop, &s->delay);
		s->wait = WAIT_NONE;
		pop3_session_reply(s, COND_POP3_SHUTDOWN, kv, ARRAY_LEN(kv));
		if (s->dead)
			continue;
		s->state = POP3_STATE_CLOSING;
		s->end_cause = COND_POP3_SHUTDOWN;
		pop3_session_process(s);
	}
}

/* The loop has stopped: a session still open is dropped as it is (no
 * UPDATE). */
static void
session_drop(void *arg)
{
	struct pop3_session *s = arg;

	if (s->locked)
		pop3_lock_release(s->env->svc, s->mailbox);
	conn_close(&s->conn);
	session_free(s);
}

void
pop3_env_fini(struct pop3_env *env)
{
	net_table_fini(&env->table, session_drop);
}
