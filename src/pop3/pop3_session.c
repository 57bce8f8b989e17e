/*
 * pop3_session.c - POP3 server session: one state machine per connection
 * (RFC 1939 AUTHORIZATION, TRANSACTION, UPDATE; RFC 2449 CAPA and
 * response codes; RFC 5034 AUTH PLAIN; RFC 2595 STLS and RFC 8314
 * implicit TLS on pop3s listeners).
 *
 * Owns struct pop3_session, its connection, buffers, timers, its view of
 * the maildrop (numbers, deleted and retrieved marks) and, once logged
 * in, its mailbox lock. Parsing is pop3_parse.c's; every blocking step
 * (password check, scan, file reads, UPDATE) is a job on the service's
 * workers (pop3_service.c). Every reply goes through session_reply(),
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
#include "net_tls.h"
#include "pop3_private.h"

#define OUT_MAX (1024 * 1024)
#define OUT_HIGH_WATER (256 * 1024)	/* stop producing output past this */
#define STREAM_LOW (128 * 1024)		/* read the next chunk below this */
#define REPLY_MAX 1024
#define SASL_LINE_MAX 2048		/* an AUTH continuation line */
#define SASL_DECODED_MAX 1024
#define USER_MAX 256
#define FAIL_DELAY_SHIFT_MAX 4		/* the delay grows to 16 x */

enum pop3_state {
	POP3_STATE_AUTH,	/* AUTHORIZATION */
	POP3_STATE_TRANS,	/* TRANSACTION */
	POP3_STATE_CLOSING,	/* last reply queued; close once flushed */
	POP3_STATE_TLS,		/* TLS handshake; it owns the socket */
	POP3_STATE__COUNT
};

static const char *const state_names[] = { "authorization", "transaction", "closing", "tls" };

/* What the session waits for before it reads the next command. */
enum pop3_wait {
	WAIT_NONE,
	WAIT_CHECK,	/* the lockout check before the greeting */
	WAIT_LOGIN,	/* a login job */
	WAIT_DELAY,	/* the delay before a failed login's answer */
	WAIT_SASL,	/* the client's AUTH continuation line */
	WAIT_RETR,	/* a message being streamed */
	WAIT_LIST,	/* a LIST/UIDL listing being produced */
	WAIT_UPDATE,	/* the UPDATE job */
};

struct pop3_session;

/* env->priv: the sessions of one loop. */
struct pop3_loop {
	struct pop3_session **sessions;	/* slot table, NULL = free */
	unsigned *gens;			/* generation per slot */
	size_t nslots;
	struct pop3_session *grave;	/* ended, waiting for the deferred free */
	int sweep_queued;
};

struct pop3_session {
	struct pop3_env *env;
	struct config *cfg;		/* reference, for the whole session */
	struct conn conn;
	size_t slot;
	unsigned gen;
	char sid[POP3_SID_SIZE];
	enum pop3_state state;
	enum pop3_wait wait;
	int dead;
	int paused;
	int want_write;			/* -1: the event mask must be set again */
	int tls;			/* the handshake is done */
	int tls_implicit;		/* pop3s: handshake before the greeting */
	int require_tls;		/* listen.NAME.require_tls */
	const struct config_listener *lst;	/* the listener (boot config) */
	int pending_queued;		/* session_pending deferred */
	struct tls_server *tls_ctx;	/* reference during the handshake */
	uint64_t tls_started_ms;
	struct buf in;
	struct buf out;
	struct loop_timer deadline;
	struct loop_timer delay;
	uint64_t started_ms;
	char user[USER_MAX];		/* USER argument or authcid, as given */
	int have_user;			/* USER accepted, PASS may follow */
	const char *mech;		/* "USER" or "PLAIN" */
	char mailbox[USER_MAX + 64];	/* "local@domain" once logged in */
	int locked;			/* holds the mailbox lock */
	struct pop3_maildrop drop;
	unsigned errors;
	unsigned rejects;
	unsigned retr;
	size_t dele;
	char last_reject[REPLY_MAX];
	enum cond_id end_cause;
	/* WAIT_DELAY: the failures counted for the answer */
	unsigned delayed_count;
	/* WAIT_RETR */
	int top;
	size_t msgi;
	int fd;				/* the message file, when no job has it */
	uint64_t offset;
	struct pop3_enc enc;
	int chunk_pending;
	int streaming;			/* the +OK line went out */
	/* WAIT_LIST */
	int list_uidl;
	size_t list_next;
	struct pop3_session *grave_next;
};

static void session_process(struct pop3_session *s);
static void session_end(struct pop3_session *s, enum cond_id cause);
static void session_pending(struct loop *loop, void *arg);

/* ---- helpers ---------------------------------------------------------- */

static const char *
state_name(enum pop3_state st)
{
	return (unsigned)st < POP3_STATE__COUNT ? state_names[st] : "?";
}

static struct pop3_loop *
loop_priv(struct pop3_env *env)
{
	if (env->priv == NULL)
		env->priv = xcalloc(1, sizeof(struct pop3_loop));
	return env->priv;
}

static uintptr_t
session_handle(const struct pop3_session *s)
{
	return ((uintptr_t)s->slot << 32) | s->gen;
}

static struct pop3_session *
session_by_handle(struct pop3_env *env, uintptr_t handle)
{
	struct pop3_loop *pl = loop_priv(env);
	size_t slot = (size_t)(handle >> 32);
	unsigned gen = (unsigned)(handle & 0xffffffffu);

	if (slot >= pl->nslots || pl->sessions[slot] == NULL || pl->gens[slot] != gen)
		return NULL;
	return pl->sessions[slot];
}

/* The name for "user=" keys: the mailbox once logged in, else as given. */
static const char *
user_key(const struct pop3_session *s)
{
	if (s->mailbox[0])
		return s->mailbox;
	return s->user[0] ? s->user : NULL;
}

static void
log_ctx_of(const struct pop3_session *s, struct log_ctx *ctx)
{
	ctx->sid = s->sid;
	ctx->qid = NULL;
	ctx->tid = NULL;
}

/* RFC 2595 2.1: whether a USER/PASS or AUTH PLAIN login may run on this
 * connection now. COND__COUNT when it may; else the refusal:
 * POP3-TLS-REQUIRED on a require_tls listener before STLS, and
 * POP3-PLAINTEXT-DISABLED without TLS while TLS is configured, except
 * from loopback when the listener's plaintext_on_loopback (or
 * auth.plaintext_on_loopback) allows it. Without a certificate there is
 * no other way in, so plaintext is allowed. */
static enum cond_id
plaintext_refusal(const struct pop3_session *s)
{
	if (s->tls)
		return COND__COUNT;
	if (s->require_tls)
		return COND_POP3_TLS_REQUIRED;
	if (s->cfg->tls_cert_file[0] == '\0')
		return COND__COUNT;
	if (config_plaintext_allowed(s->cfg, s->lst, &s->conn.peer))
		return COND__COUNT;
	return COND_POP3_PLAINTEXT_DISABLED;
}

static void session_refuse(struct pop3_session *s, enum cond_id cond, const struct kv *kvs,
			   size_t nkv);

/* Refuses a plaintext login with its reason; 1 if it did. */
static int
refuse_plaintext(struct pop3_session *s, const char *cmd, struct slice user)
{
	enum cond_id why = plaintext_refusal(s);

	if (why == COND__COUNT)
		return 0;
	if (why == COND_POP3_TLS_REQUIRED) {
		struct kv kv[] = { KV("client", s->conn.peer_text), KV("cmd", cmd) };
		session_refuse(s, why, kv, ARRAY_LEN(kv));
	} else {
		struct kv kv[] = { KV("client", s->conn.peer_text),
				   user.len ? KVM("user", user.p, user.len) : KV("user", NULL) };
		session_refuse(s, why, kv, ARRAY_LEN(kv));
	}
	return 1;
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
static void
session_reply(struct pop3_session *s, enum cond_id cond, const struct kv *kvs, size_t nkv)
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
		session_end(s, COND_NET_CLIENT_WRITE_ERROR);
		return;
	}
	log_ctx_of(s, &ctx);
	if (err) {
		struct kv all[16];
		size_t n = 0;
		s->rejects++;
		if (slice_copy(buf_slice(&r), s->last_reject, sizeof(s->last_reject)) < 0)
			s->last_reject[0] = '\0';
		for (size_t i = 0; i < nkv && n < ARRAY_LEN(all) - 1; i++)
			all[n++] = kvs[i];
		all[n++] = KV("reply", s->last_reject);
		catalog_log(cond, &ctx, all, n);
	} else if (c->sev > LOG_SEV_DEBUG) {
		catalog_log(cond, &ctx, kvs, nkv);
	} else if (log_enabled(LOG_SEV_DEBUG)) {
		catalog_log_sev(cond, LOG_SEV_DEBUG, &ctx, kvs, nkv);
	}
	if (log_enabled(LOG_SEV_DEBUG)) {
		struct kv t[] = { KV("dir", "out"), KVM("line", r.data, r.len) };
		catalog_log(COND_NET_TRACE, &ctx, t, 2);
	}
	buf_fini(&r);
}

/* Appends one line of a multi-line response (CAPA, LIST, UIDL). */
static void
session_line(struct pop3_session *s, const char *fmt, ...) PRINTF(2, 3);

static void
session_line(struct pop3_session *s, const char *fmt, ...)
{
	va_list ap;
	int r;

	if (s->dead)
		return;
	va_start(ap, fmt);
	r = buf_vappendf(&s->out, fmt, ap);
	va_end(ap);
	if (r < 0 || buf_append(&s->out, "\r\n", 2) < 0)
		session_end(s, COND_NET_CLIENT_WRITE_ERROR);
}

/* Counts a refusal toward limits.errors; closes the session past it.
 * Only protocol errors count (unknown command, bad syntax, wrong
 * sequence, a failed or refused login): ordinary answers a correct client
 * gets (no such message, message deleted, maildrop busy, LOGIN-DELAY,
 * the server's own trouble) are sent with session_reply and count
 * nothing, so a client that RETRs a message it deleted is not closed
 * before its QUIT applies the deletions. */
static void
session_count_error(struct pop3_session *s)
{
	unsigned limit = s->cfg->limits_errors;

	s->errors++;
	if (limit == 0 || s->errors < limit || s->state == POP3_STATE_CLOSING)
		return;
	struct kv kv[] = { KV("client", s->conn.peer_text), KVU("count", s->errors),
			   KVU("limit", limit) };
	session_reply(s, COND_POP3_TOO_MANY_ERRORS, kv, ARRAY_LEN(kv));
	s->state = POP3_STATE_CLOSING;
	s->end_cause = COND_POP3_TOO_MANY_ERRORS;
}

static void
session_refuse(struct pop3_session *s, enum cond_id cond, const struct kv *kvs, size_t nkv)
{
	session_reply(s, cond, kvs, nkv);
	session_count_error(s);
}

static void
maildrop_totals(const struct pop3_session *s, size_t *count, uint64_t *size)
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

/* ---- AUTHORIZATION ------------------------------------------------------ */

static void login_done(struct pop3_job *j);

/* Starts the login job for user and pass (borrowed), mech "USER" or
 * "PLAIN". authzid_mismatch: a SASL authorization identity other than
 * the user (refused once the password is checked). */
static void
login_start(struct pop3_session *s, struct slice user, struct slice pass, int authzid_mismatch,
	    const char *mech)
{
	struct config *cfg = s->cfg;
	const struct account *a = NULL;
	struct pop3_job *j;

	s->mech = mech;
	if (slice_copy(user, s->user, sizeof(s->user)) < 0)
		s->user[0] = '\0';
	if (s->user[0] != '\0') {
		const char *at = strrchr(s->user, '@');
		const char *local = s->user, *domain = NULL;
		size_t llen = 0, dlen = 0;
		if (at != NULL) {
			llen = (size_t)(at - s->user);
			domain = at + 1;
			dlen = strlen(domain);
		} else if (cfg->local_domains.n == 1) {
			/* a bare local part names the only local domain */
			llen = strlen(s->user);
			domain = cfg->local_domains.v[0];
			dlen = strlen(domain);
		}
		if (domain != NULL && llen > 0 && config_is_local_domain(cfg, domain, dlen))
			a = directory_find(cfg->accounts, local, llen, domain, dlen);
	}
	j = pop3_job_new(s->env->svc, POP3_JOB_LOGIN, s->env, session_handle(s), login_done);
	j->cfg = config_ref(cfg);
	j->pass = xstrndup((const char *)pass.p, pass.len);
	memcpy(j->sid, s->sid, sizeof(j->sid));
	if (slice_copy(slice_from_cstr(s->conn.peer_text), j->client, sizeof(j->client)) < 0)
		PANIC("client address text");
	j->authzid_mismatch = authzid_mismatch;
	if (a != NULL) {
		j->acct = a;
		j->mailbox = xasprintf("%s@%s", a->local, a->domain);
		/* <mail_root>/<domain>/<local>, as delivery writes it (both
		 * parts are lower-cased, and valid names, in the directory) */
		j->dir = xasprintf("%s/%s/%s", cfg->server_mail_root, a->domain, a->local);
	}
	s->wait = WAIT_LOGIN;
	pop3_job_submit(j);
}

static void
delay_fire(struct loop *loop, void *arg)
{
	struct pop3_session *s = arg;

	(void)loop;
	if (s->dead || s->wait != WAIT_DELAY)
		return;
	s->wait = WAIT_NONE;
	struct kv kv[] = { KV("client", s->conn.peer_text), KV("user", s->user[0] ? s->user : NULL),
			   KV("mech", s->mech), KVU("count", s->delayed_count) };
	session_refuse(s, COND_POP3_AUTH_FAILED, kv, ARRAY_LEN(kv));
	session_process(s);
}

/* A failure the login job counted in the failed-login store. */
static void
login_failed(struct pop3_session *s, const struct pop3_job *j)
{
	struct config *cfg = s->cfg;
	enum cond_id cond = j->cond;
	int locked = j->banned;
	unsigned count = j->fail_count > 0 && j->fail_count < UINT32_MAX ? (unsigned)j->fail_count : 1;
	struct log_ctx ctx;

	/* The reason goes to the log now; the client gets the same
	 * POP3-AUTH-FAILED for both, after the delay. */
	log_ctx_of(s, &ctx);
	struct kv kf[] = { KV("client", s->conn.peer_text), KV("user", s->user[0] ? s->user : NULL),
			   KV("mech", s->mech), KVU("count", count) };
	catalog_log(cond, &ctx, kf, ARRAY_LEN(kf));
	if (locked) {
		struct kv kv[] = { KV("client", s->conn.peer_text), KVU("count", count),
				   KVU("remaining_s", cfg->pop3_lockout) };
		catalog_log(COND_POP3_AUTH_LOCKOUT, &ctx, kv, ARRAY_LEN(kv));
	}
	unsigned shift = count > 0 ? count - 1 : 0;
	if (shift > FAIL_DELAY_SHIFT_MAX)
		shift = FAIL_DELAY_SHIFT_MAX;
	s->delayed_count = count;
	s->wait = WAIT_DELAY;
	loop_timer_set(s->env->loop, &s->delay, (uint64_t)cfg->pop3_fail_delay << shift);
}

static void
login_done(struct pop3_job *j)
{
	struct pop3_session *s = session_by_handle(j->env, j->handle);

	if (s == NULL || s->dead || s->wait != WAIT_LOGIN) {
		pop3_job_free(j);	/* releases the lock if it took it */
		return;
	}
	s->wait = WAIT_NONE;
	s->have_user = 0;
	switch (j->result) {
	case POP3_LOGIN_OK: {
		s->drop = j->drop;
		memset(&j->drop, 0, sizeof(j->drop));
		s->locked = 1;
		j->locked = 0;
		if (slice_copy(slice_from_cstr(j->mailbox), s->mailbox, sizeof(s->mailbox)) < 0)
			PANIC("mailbox name");
		s->state = POP3_STATE_TRANS;
		size_t count;
		uint64_t size;
		maildrop_totals(s, &count, &size);
		struct kv kv[] = { KV("user", s->mailbox), KV("client", s->conn.peer_text),
				   KV("mech", s->mech), KVU("count", count), KVU("size", size) };
		session_reply(s, COND_POP3_LOGIN, kv, ARRAY_LEN(kv));
		break;
	}
	case POP3_LOGIN_UNKNOWN:
	case POP3_LOGIN_BAD:
		login_failed(s, j);
		break;
	case POP3_LOGIN_LOCKOUT: {
		struct kv kv[] = { KV("client", s->conn.peer_text), KVI("count", j->fail_count),
				   KVU("remaining_s", j->ban_remaining_s) };
		session_refuse(s, COND_POP3_AUTH_LOCKOUT, kv, ARRAY_LEN(kv));
		break;
	}
	case POP3_LOGIN_REFUSED:
		/* Right credentials, maildrop busy or too soon: not an error. */
		if (j->cond == COND_POP3_LOCKED) {
			struct kv kv[] = { KV("user", j->mailbox), KV("holder_sid", j->holder) };
			session_reply(s, j->cond, kv, ARRAY_LEN(kv));
		} else if (j->cond == COND_POP3_LOGIN_DELAY) {
			struct kv kv[] = { KV("user", j->mailbox), KV("client", s->conn.peer_text),
					   KVU("remaining_s", j->remaining_s) };
			session_reply(s, j->cond, kv, ARRAY_LEN(kv));
		} else {
			struct kv kv[] = { KV("user", j->mailbox), KV("client", s->conn.peer_text) };
			session_refuse(s, j->cond, kv, ARRAY_LEN(kv));
		}
		break;
	case POP3_LOGIN_ERROR: {
		struct kv kv[] = { KV("user", j->mailbox), KV("path", j->err_path),
				   KV("errno", net_errno_name(j->err)) };
		session_reply(s, COND_POP3_MAILBOX_ERROR, kv, ARRAY_LEN(kv));
		break;
	}
	}
	pop3_job_free(j);
	session_process(s);
}

static void
cmd_user(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	if (refuse_plaintext(s, "USER", cmd->arg))
		return;
	if (slice_copy(cmd->arg, s->user, sizeof(s->user)) < 0)
		s->user[0] = '\0';
	s->have_user = 1;
	struct kv kv[] = { KVM("user", cmd->arg.p, cmd->arg.len) };
	session_reply(s, COND_POP3_USER_OK, kv, 1);
}

static void
cmd_pass(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	if (!s->have_user) {
		struct kv kv[] = { KV("client", s->conn.peer_text), KV("state", "authorization"),
				   KV("cmd", "PASS") };
		session_refuse(s, COND_POP3_SEQUENCE, kv, ARRAY_LEN(kv));
		return;
	}
	login_start(s, slice_from_cstr(s->user), cmd->arg, 0, "USER");
}

/* RFC 4616 PLAIN from a base64 response (initial or continuation). */
static void
sasl_plain(struct pop3_session *s, struct slice b64)
{
	struct buf dec;
	struct sasl_plain p;

	buf_init(&dec, SASL_DECODED_MAX);
	if (pop3_base64_decode(b64, &dec) < 0 ||
	    sasl_plain_parse(dec.data, dec.len, &p) < 0) {
		struct kv kv[] = { KV("client", s->conn.peer_text), KV("cmd", "AUTH") };
		session_refuse(s, COND_POP3_SYNTAX, kv, ARRAY_LEN(kv));
	} else {
		int mismatch = p.authzid.len > 0 &&
			       !(p.authzid.len == p.authcid.len &&
				 strncasecmp((const char *)p.authzid.p,
					     (const char *)p.authcid.p, p.authzid.len) == 0);
		login_start(s, p.authcid, p.passwd, mismatch, "PLAIN");
	}
	if (dec.data != NULL)
		explicit_bzero(dec.data, dec.cap);
	buf_fini(&dec);
}

static void
cmd_auth(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	if (!slice_eq_nocase(cmd->mech, "PLAIN")) {
		struct kv kv[] = { KV("client", s->conn.peer_text),
				   KVM("mech", cmd->mech.p, cmd->mech.len) };
		session_refuse(s, COND_POP3_AUTH_MECHANISM, kv, ARRAY_LEN(kv));
		return;
	}
	if (refuse_plaintext(s, "AUTH", (struct slice){ NULL, 0 }))
		return;
	s->have_user = 0;
	if (cmd->initial.len > 0) {
		sasl_plain(s, cmd->initial);
		return;
	}
	struct kv kv[] = { KV("mech", "PLAIN") };
	session_reply(s, COND_POP3_AUTH_CONTINUE, kv, 1);
	s->wait = WAIT_SASL;
}

/* The line after "+ ": the client's response, or "*" to cancel. */
static void
sasl_response(struct pop3_session *s, const uint8_t *line, size_t len, size_t linelen)
{
	s->wait = WAIT_NONE;
	if (len == 1 && line[0] == '*') {
		struct kv kv[] = { KV("client", s->conn.peer_text) };
		session_refuse(s, COND_POP3_AUTH_CANCELLED, kv, 1);
		return;
	}
	if (linelen > SASL_LINE_MAX) {
		struct kv kv[] = { KV("client", s->conn.peer_text), KVU("len", linelen),
				   KVU("limit", SASL_LINE_MAX) };
		session_refuse(s, COND_POP3_LINE_TOO_LONG, kv, ARRAY_LEN(kv));
		return;
	}
	sasl_plain(s, (struct slice){ line, len });
}

static void
cmd_not_offered(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	/* APOP is not offered (no APOP secrets), nor STLS without a
	 * certificate. */
	struct kv kv[] = { KV("client", s->conn.peer_text), KV("cmd", pop3_verb_name(cmd->verb)) };

	session_refuse(s, COND_POP3_SYNTAX, kv, ARRAY_LEN(kv));
}

static void
cmd_capa(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	(void)cmd;
	/* RFC 2595 4: no USER (nor SASL PLAIN) where it would be refused. */
	int plain = plaintext_refusal(s) == COND__COUNT;

	session_reply(s, COND_POP3_CAPA, NULL, 0);
	session_line(s, "TOP");
	session_line(s, "UIDL");
	if (plain)
		session_line(s, "USER");
	session_line(s, "RESP-CODES");
	session_line(s, "AUTH-RESP-CODE");
	session_line(s, "PIPELINING");
	if (plain)
		session_line(s, "SASL PLAIN");
	if (!s->tls && s->state == POP3_STATE_AUTH && tls_available(s))
		session_line(s, "STLS");
	if (s->cfg->pop3_login_delay > 0)
		session_line(s, "LOGIN-DELAY %u", s->cfg->pop3_login_delay);
	session_line(s, "IMPLEMENTATION Postern");
	session_line(s, ".");
}

static void
cmd_quit(struct pop3_session *s, const struct pop3_cmd *cmd);

/* ---- TRANSACTION --------------------------------------------------------- */

/* The message cmd names, or NULL after refusing. */
static struct pop3_msg *
find_msg(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	if (cmd->msgno > s->drop.n) {
		struct kv kv[] = { KV("user", s->mailbox), KVU("msgno", cmd->msgno),
				   KVU("count", s->drop.n) };
		session_reply(s, COND_POP3_MSG_OUT_OF_RANGE, kv, ARRAY_LEN(kv));
		return NULL;
	}
	struct pop3_msg *m = &s->drop.v[cmd->msgno - 1];
	if (m->deleted) {
		struct kv kv[] = { KV("user", s->mailbox), KVU("msgno", cmd->msgno) };
		session_reply(s, COND_POP3_MSG_DELETED, kv, ARRAY_LEN(kv));
		return NULL;
	}
	return m;
}

static void
cmd_stat(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	size_t count;
	uint64_t size;

	(void)cmd;
	maildrop_totals(s, &count, &size);
	struct kv kv[] = { KVU("count", count), KVU("size", size) };
	session_reply(s, COND_POP3_STAT, kv, ARRAY_LEN(kv));
}

/* Produces listing lines until the output is full or the list ends. */
static void
list_more(struct pop3_session *s)
{
	while (!s->dead && s->list_next < s->drop.n && s->out.len < OUT_HIGH_WATER) {
		const struct pop3_msg *m = &s->drop.v[s->list_next++];
		if (m->deleted)
			continue;
		if (s->list_uidl)
			session_line(s, "%zu %s", s->list_next, m->uid);
		else
			session_line(s, "%zu %" PRIu64, s->list_next, m->size);
	}
	if (!s->dead && s->list_next >= s->drop.n) {
		session_line(s, ".");
		s->wait = WAIT_NONE;
	}
}

static void
cmd_list(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	if (cmd->has_msgno) {
		struct pop3_msg *m = find_msg(s, cmd);
		if (m == NULL)
			return;
		if (cmd->verb == POP3_VERB_UIDL) {
			struct kv kv[] = { KVU("msgno", cmd->msgno), KV("uid", m->uid) };
			session_reply(s, COND_POP3_UIDL_ONE, kv, ARRAY_LEN(kv));
		} else {
			struct kv kv[] = { KVU("msgno", cmd->msgno), KVU("size", m->size) };
			session_reply(s, COND_POP3_LIST_ONE, kv, ARRAY_LEN(kv));
		}
		return;
	}
	size_t count;
	uint64_t size;
	maildrop_totals(s, &count, &size);
	if (cmd->verb == POP3_VERB_UIDL) {
		struct kv kv[] = { KVU("count", count) };
		session_reply(s, COND_POP3_UIDL_ALL, kv, 1);
	} else {
		struct kv kv[] = { KVU("count", count), KVU("size", size) };
		session_reply(s, COND_POP3_LIST_ALL, kv, ARRAY_LEN(kv));
	}
	s->list_uidl = cmd->verb == POP3_VERB_UIDL;
	s->list_next = 0;
	s->wait = WAIT_LIST;
}

static void chunk_done(struct pop3_job *j);

static void
chunk_request(struct pop3_session *s)
{
	struct pop3_job *j = pop3_job_new(s->env->svc, POP3_JOB_CHUNK, s->env, session_handle(s),
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
	struct pop3_session *s = session_by_handle(j->env, j->handle);

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
				   KV("path", j->path), KV("errno", net_errno_name(j->err)) };
		int started = s->streaming;
		stream_end(s);
		if (!started) {
			session_reply(s, COND_POP3_MSG_UNAVAILABLE, kv, ARRAY_LEN(kv));
		} else {
			/* Part of the message is out: no -ERR can follow it. */
			struct log_ctx ctx;
			log_ctx_of(s, &ctx);
			catalog_log(COND_POP3_MSG_UNAVAILABLE, &ctx, kv, ARRAY_LEN(kv));
			session_end(s, COND_POP3_MSG_UNAVAILABLE);
		}
		pop3_job_free(j);
		if (!s->dead)
			session_process(s);
		return;
	}
	if (!s->streaming) {
		s->streaming = 1;
		if (s->top) {
			struct kv kv[] = { KVU("msgno", msgno), KVU("lines", s->enc.top_lines) };
			session_reply(s, COND_POP3_TOP, kv, ARRAY_LEN(kv));
		} else {
			struct kv kv[] = { KVU("msgno", msgno), KVU("size", s->drop.v[s->msgi].size) };
			session_reply(s, COND_POP3_RETR, kv, ARRAY_LEN(kv));
		}
	}
	if (!s->dead && pop3_enc_feed(&s->enc, j->data.data, j->data.len, &s->out) < 0)
		session_end(s, COND_NET_CLIENT_WRITE_ERROR);
	if (!s->dead && (j->eof || s->enc.done)) {
		if (pop3_enc_finish(&s->enc, &s->out) < 0) {
			session_end(s, COND_NET_CLIENT_WRITE_ERROR);
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
		session_process(s);
}

static void
cmd_retr(struct pop3_session *s, const struct pop3_cmd *cmd)
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
	chunk_request(s);
}

static void
cmd_dele(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	struct pop3_msg *m = find_msg(s, cmd);

	if (m == NULL)
		return;
	m->deleted = 1;
	struct kv kv[] = { KVU("msgno", cmd->msgno) };
	session_reply(s, COND_POP3_DELE, kv, 1);
}

static void
cmd_rset(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	size_t count;
	uint64_t size;

	(void)cmd;
	for (size_t i = 0; i < s->drop.n; i++) {
		s->drop.v[i].deleted = 0;
		s->drop.v[i].retrieved = 0;
	}
	maildrop_totals(s, &count, &size);
	struct kv kv[] = { KVU("count", count), KVU("size", size) };
	session_reply(s, COND_POP3_RSET, kv, ARRAY_LEN(kv));
}

static void
cmd_noop(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	(void)cmd;
	session_reply(s, COND_POP3_NOOP, NULL, 0);
}

/* ---- UPDATE ---------------------------------------------------------------- */

static void
update_done(struct pop3_job *j)
{
	struct pop3_session *s = session_by_handle(j->env, j->handle);

	if (s == NULL || s->dead || s->wait != WAIT_UPDATE) {
		pop3_job_free(j);
		return;
	}
	s->wait = WAIT_NONE;
	s->dele = j->dele;
	if (j->failed > 0) {
		struct kv kv[] = { KV("user", s->mailbox), KV("path", j->err_path),
				   KV("errno", net_errno_name(j->err)), KVU("count", j->failed) };
		session_reply(s, COND_POP3_UPDATE_FAILED, kv, ARRAY_LEN(kv));
		s->end_cause = COND_POP3_UPDATE_FAILED;
	} else {
		struct kv kv[] = { KV("user", s->mailbox), KVU("dele", j->dele), KVU("seen", j->seen),
				   KVU("count", s->drop.n - j->dele) };
		session_reply(s, COND_POP3_QUIT_UPDATE, kv, ARRAY_LEN(kv));
		s->end_cause = COND_POP3_QUIT_UPDATE;
	}
	s->state = POP3_STATE_CLOSING;
	pop3_job_free(j);
	session_process(s);
}

static void
cmd_quit(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	(void)cmd;
	if (s->state == POP3_STATE_AUTH) {
		session_reply(s, COND_POP3_QUIT, NULL, 0);
		s->state = POP3_STATE_CLOSING;
		s->end_cause = COND_POP3_QUIT;
		return;
	}
	/* RFC 1939 6: the UPDATE state. Copy what changes; the job owns
	 * the copy and the lock until the Maildir is updated. */
	struct pop3_job *j = pop3_job_new(s->env->svc, POP3_JOB_UPDATE, s->env, session_handle(s),
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

/* ---- TLS (RFC 2595 STLS, RFC 8314 pop3s) ---------------------------------------- */

static void send_greeting(struct pop3_session *s);

/* Puts s->conn on TLS; the session waits in POP3_STATE_TLS. */
static int
tls_begin(struct pop3_session *s)
{
	s->tls_ctx = s->env->tls_get ? s->env->tls_get(s->env->server) : NULL;
	if (s->tls_ctx == NULL || tls_conn_start(&s->conn, s->tls_ctx) < 0) {
		tls_server_unref(&s->tls_ctx);
		return -1;
	}
	s->state = POP3_STATE_TLS;
	s->tls_started_ms = loop_clock_ms();
	return 0;
}

static void
tls_failed(struct pop3_session *s, const char *err)
{
	struct log_ctx ctx;

	log_ctx_of(s, &ctx);
	struct kv kv[] = { KV("client", s->conn.peer_text), KV("err", err),
			   KVU("elapsed_ms", s->tls_started_ms ? loop_clock_ms() - s->tls_started_ms : 0) };
	catalog_log(COND_TLS_HANDSHAKE_FAILED, &ctx, kv, ARRAY_LEN(kv));
	buf_reset(&s->out);	/* nothing may go out in clear now */
	session_end(s, COND_TLS_HANDSHAKE_FAILED);
}

/* Drives the handshake (bounded by tls.handshake_timeout). On success
 * the session is in AUTHORIZATION with no USER given (RFC 2595 4: the
 * client asks CAPA again); on pop3s the greeting goes out now. */
static void
tls_step(struct pop3_session *s)
{
	char err[256] = "";
	enum conn_io io = tls_conn_handshake(&s->conn, err, sizeof(err));

	if (io == CONN_IO_AGAIN) {
		unsigned ev = tls_conn_wants_write(&s->conn) ? LOOP_WRITE : LOOP_READ;
		if (loop_mod_fd(s->env->loop, s->conn.fd, ev) < 0) {
			session_end(s, COND_NET_CLIENT_READ_ERROR);
			return;
		}
		s->paused = 0;
		s->want_write = -1;
		loop_timer_set(s->env->loop, &s->deadline,
			       (uint64_t)s->cfg->tls_handshake_timeout * 1000u);
		return;
	}
	tls_server_unref(&s->tls_ctx);
	if (io != CONN_IO_OK) {
		tls_failed(s, err[0] ? err : "handshake failed");
		return;
	}
	s->tls = 1;
	struct log_ctx ctx;
	log_ctx_of(s, &ctx);
	struct kv kv[] = { KV("client", s->conn.peer_text), KV("version", tls_conn_version(&s->conn)),
			   KV("cipher", tls_conn_cipher(&s->conn)), KVU("bits", tls_conn_bits(&s->conn)),
			   KVU("elapsed_ms", loop_clock_ms() - s->tls_started_ms) };
	catalog_log(COND_TLS_ESTABLISHED, &ctx, kv, ARRAY_LEN(kv));
	s->state = POP3_STATE_AUTH;
	s->have_user = 0;
	s->user[0] = '\0';
	s->want_write = -1;	/* set the event mask again */
	if (s->tls_implicit)
		send_greeting(s);
	session_process(s);
}

static void
cmd_stls(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	if (s->tls) {
		struct kv kv[] = { KV("client", s->conn.peer_text) };
		session_refuse(s, COND_POP3_STLS_ACTIVE, kv, 1);
		return;
	}
	if (s->cfg->tls_cert_file[0] == '\0') {
		cmd_not_offered(s, cmd);	/* TLS not configured: not offered */
		return;
	}
	if (!tls_available(s)) {
		struct kv kv[] = { KV("client", s->conn.peer_text), KV("reason", "no TLS context") };
		session_reply(s, COND_POP3_STLS_UNAVAILABLE, kv, ARRAY_LEN(kv));
		return;
	}
	session_reply(s, COND_POP3_STLS_READY, NULL, 0);
	/* The +OK goes out in clear; whatever the client sent after STLS
	 * in clear must not count as sent over TLS (CVE-2011-0411). */
	if (s->in.data != NULL)
		explicit_bzero(s->in.data, s->in.cap);
	buf_reset(&s->in);
	s->have_user = 0;
	if (conn_flush(&s->conn, &s->out) != CONN_IO_OK) {
		session_end(s, COND_NET_CLIENT_WRITE_ERROR);
		return;
	}
	s->tls_started_ms = loop_clock_ms();
	if (tls_begin(s) < 0)
		tls_failed(s, "TLS setup failed");
	/* session_process sees POP3_STATE_TLS and starts the handshake */
}

/* ---- the verb table ---------------------------------------------------------- */

#define ST(x) (1u << POP3_STATE_##x)

struct verb_rule {
	enum pop3_verb verb;
	void (*fn)(struct pop3_session *s, const struct pop3_cmd *cmd);
	unsigned states;
};

static const struct verb_rule verb_rules[] = {
	{ POP3_VERB_USER, cmd_user, ST(AUTH) },
	{ POP3_VERB_PASS, cmd_pass, ST(AUTH) },
	{ POP3_VERB_AUTH, cmd_auth, ST(AUTH) },
	{ POP3_VERB_APOP, cmd_not_offered, ST(AUTH) },
	{ POP3_VERB_STLS, cmd_stls, ST(AUTH) },
	{ POP3_VERB_CAPA, cmd_capa, ST(AUTH) | ST(TRANS) },
	{ POP3_VERB_STAT, cmd_stat, ST(TRANS) },
	{ POP3_VERB_LIST, cmd_list, ST(TRANS) },
	{ POP3_VERB_UIDL, cmd_list, ST(TRANS) },
	{ POP3_VERB_RETR, cmd_retr, ST(TRANS) },
	{ POP3_VERB_TOP, cmd_retr, ST(TRANS) },
	{ POP3_VERB_DELE, cmd_dele, ST(TRANS) },
	{ POP3_VERB_RSET, cmd_rset, ST(TRANS) },
	{ POP3_VERB_NOOP, cmd_noop, ST(TRANS) },
	{ POP3_VERB_QUIT, cmd_quit, ST(AUTH) | ST(TRANS) },
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
		log_ctx_of(s, &ctx);
		/* never the password, nor a SASL response */
		size_t shown = cmd.verb == POP3_VERB_PASS ? 4 :
			       cmd.verb == POP3_VERB_AUTH && cmd.initial.len ? 10 : len;
		if (shown > len)
			shown = len;
		struct kv t[] = { KV("dir", "in"), KVM("line", line, shown) };
		catalog_log(COND_NET_TRACE, &ctx, t, 2);
	}
	const struct verb_rule *rule = verb_rule_find(cmd.verb);
	if (rule != NULL && !(rule->states & (1u << s->state))) {
		struct kv kv[] = { KV("client", s->conn.peer_text), KV("state", state_name(s->state)),
				   KV("cmd", pop3_verb_name(cmd.verb)) };
		session_refuse(s, COND_POP3_SEQUENCE, kv, ARRAY_LEN(kv));
		return;
	}
	if (rc < 0) {
		if (err == COND_POP3_MSG_NUMBER_INVALID) {
			struct kv kv[] = { KV("user", user_key(s)), KVM("arg", cmd.arg.p, cmd.arg.len) };
			session_refuse(s, err, kv, ARRAY_LEN(kv));
		} else {
			size_t vl = cmd.verb_text.len > 16 ? 16 : cmd.verb_text.len;
			struct kv kv[] = { KV("client", s->conn.peer_text),
					   cmd.verb != POP3_VERB_UNKNOWN
					   ? KV("cmd", pop3_verb_name(cmd.verb))
					   : KVM("cmd", line, vl ? vl : (len > 16 ? 16 : len)) };
			session_refuse(s, COND_POP3_SYNTAX, kv, ARRAY_LEN(kv));
		}
		return;
	}
	rule->fn(s, &cmd);
}

/* ---- input and output ------------------------------------------------------- */

static void
overflow(struct pop3_session *s)
{
	struct kv kv[] = { KV("client", s->conn.peer_text), KVU("bytes", s->in.len),
			   KVU("limit", s->in.max) };

	session_reply(s, COND_POP3_INPUT_OVERFLOW, kv, ARRAY_LEN(kv));
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
		loop_timer_cancel(s->env->loop, &s->deadline);
		return;
	}
	/* Idle for a command, or a client that does not read its reply. */
	loop_timer_set(s->env->loop, &s->deadline, (uint64_t)s->cfg->pop3_idle_timeout * 1000u);
}

/* Handles whatever complete input there is, in order, then flushes. */
static void
session_process(struct pop3_session *s)
{
	enum conn_io io;

	if (s->state == POP3_STATE_TLS)
		return;		/* the handshake owns the socket */
again:
	while (!s->dead && s->state != POP3_STATE_CLOSING && s->out.len < OUT_HIGH_WATER) {
		if (s->wait == WAIT_LIST) {
			list_more(s);
			if (s->wait == WAIT_LIST)
				break;
			continue;
		}
		if (s->wait == WAIT_RETR) {
			if (!s->chunk_pending && s->out.len < STREAM_LOW)
				chunk_request(s);
			break;
		}
		if (waiting_on_server(s))
			break;
		uint8_t *lf = memchr(s->in.data ? s->in.data : (uint8_t *)"", '\n', s->in.len);
		if (lf == NULL) {
			if (s->in.len >= s->in.max)
				overflow(s);
			break;
		}
		size_t linelen = (size_t)(lf - s->in.data) + 1;
		size_t len = linelen - 1;
		if (len > 0 && s->in.data[len - 1] == '\r')
			len--;
		if (s->wait == WAIT_SASL) {
			if (log_enabled(LOG_SEV_DEBUG)) {
				struct log_ctx ctx;
				log_ctx_of(s, &ctx);
				struct kv t[] = { KV("dir", "in"), KV("line", "(SASL response)") };
				catalog_log(COND_NET_TRACE, &ctx, t, 2);
			}
			sasl_response(s, s->in.data, len, linelen);
		} else if (linelen > POP3_COMMAND_MAX) {
			struct kv kv[] = { KV("client", s->conn.peer_text), KVU("len", linelen),
					   KVU("limit", POP3_COMMAND_MAX) };
			session_refuse(s, COND_POP3_LINE_TOO_LONG, kv, ARRAY_LEN(kv));
		} else {
			session_command(s, s->in.data, len);
		}
		if (s->dead)
			return;
		if (s->state == POP3_STATE_TLS) {
			/* STLS: the input is gone; no reply is pending */
			tls_step(s);
			return;
		}
		/* wipe a password before the bytes are reused */
		explicit_bzero(s->in.data, linelen);
		buf_consume(&s->in, linelen);
	}
	if (s->dead)
		return;
	io = conn_flush(&s->conn, &s->out);
	if (io == CONN_IO_ERROR) {
		struct log_ctx ctx;
		log_ctx_of(s, &ctx);
		struct kv kv[] = { KV("client", s->conn.peer_text), KV("state", state_name(s->state)),
				   KV("errno", net_errno_name(errno)) };
		catalog_log(COND_NET_CLIENT_WRITE_ERROR, &ctx, kv, ARRAY_LEN(kv));
		session_end(s, COND_NET_CLIENT_WRITE_ERROR);
		return;
	}
	if (io == CONN_IO_OK && s->state == POP3_STATE_CLOSING) {
		session_end(s, s->end_cause);
		return;
	}
	/* The output drained while a listing or a message goes on: produce
	 * the next part now (no event would come for it). */
	if (io == CONN_IO_OK && (s->wait == WAIT_LIST ||
				 (s->wait == WAIT_RETR && !s->chunk_pending)))
		goto again;
	int want_write = io == CONN_IO_AGAIN;
	int pause = s->state == POP3_STATE_CLOSING || (s->wait != WAIT_NONE && s->wait != WAIT_SASL) ||
		    s->out.len >= OUT_HIGH_WATER || s->in.len >= s->in.max;
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
	/* OpenSSL may hold decrypted bytes the socket no longer signals. */
	if (s->tls && !s->paused && !s->pending_queued && tls_conn_pending(&s->conn) > 0) {
		s->pending_queued = 1;
		loop_defer(s->env->loop, session_pending, s);
	}
}

static void
session_io(struct loop *loop, int fd, unsigned events, void *arg)
{
	struct pop3_session *s = arg;
	int eof = 0, err = 0;

	(void)loop;
	(void)fd;
	if (s->dead)
		return;
	if (s->state == POP3_STATE_TLS) {
		tls_step(s);
		return;
	}
	if ((events & LOOP_READ) && !s->paused) {
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
	if (s->dead || !(eof || err))
		return;
	if (s->state == POP3_STATE_CLOSING) {
		session_end(s, s->end_cause);
		return;
	}
	/* The client left without QUIT: no UPDATE (RFC 1939 6). */
	struct log_ctx ctx;
	log_ctx_of(s, &ctx);
	struct kv kv[] = { KV("client", s->conn.peer_text), KV("state", state_name(s->state)),
			   KV("errno", err ? net_errno_name(err) : NULL) };
	catalog_log(COND_NET_CLIENT_READ_ERROR, &ctx, kv, ARRAY_LEN(kv));
	session_end(s, COND_NET_CLIENT_READ_ERROR);
}

static void
session_pending(struct loop *loop, void *arg)
{
	struct pop3_session *s = arg;

	s->pending_queued = 0;
	if (!s->dead && !s->paused && s->state != POP3_STATE_TLS &&
	    tls_conn_pending(&s->conn) > 0)
		session_io(loop, s->conn.fd, LOOP_READ, s);
}

static void
session_timeout(struct loop *loop, void *arg)
{
	struct pop3_session *s = arg;

	(void)loop;
	if (s->dead)
		return;
	if (s->state == POP3_STATE_TLS) {
		tls_failed(s, "handshake timeout");
		return;
	}
	/* RFC 1939 3: close without a response and without UPDATE. */
	struct log_ctx ctx;
	log_ctx_of(s, &ctx);
	struct kv kv[] = { KV("client", s->conn.peer_text), KV("state", state_name(s->state)),
			   KVU("idle_s", s->cfg->pop3_idle_timeout) };
	catalog_log(COND_POP3_TIMEOUT, &ctx, kv, ARRAY_LEN(kv));
	buf_reset(&s->out);
	session_end(s, COND_POP3_TIMEOUT);
}

/* ---- lifecycle ---------------------------------------------------------------- */

static void
session_free(struct pop3_session *s)
{
	if (s->fd >= 0)
		close(s->fd);
	pop3_maildrop_fini(&s->drop);
	if (s->in.data != NULL)
		explicit_bzero(s->in.data, s->in.cap);
	buf_fini(&s->in);
	buf_fini(&s->out);
	config_unref(&s->cfg);
	tls_server_unref(&s->tls_ctx);
	free(s);
}

static void
grave_sweep(struct loop *loop, void *arg)
{
	struct pop3_loop *pl = arg;

	(void)loop;
	pl->sweep_queued = 0;
	while (pl->grave != NULL) {
		struct pop3_session *s = pl->grave;
		pl->grave = s->grave_next;
		session_free(s);
	}
}

static void
session_end(struct pop3_session *s, enum cond_id cause)
{
	struct pop3_env *env = s->env;
	struct pop3_loop *pl = loop_priv(env);
	char dur[32], tls_text[128];

	if (s->dead)
		return;
	s->dead = 1;
	loop_timer_cancel(env->loop, &s->deadline);
	loop_timer_cancel(env->loop, &s->delay);
	loop_del_fd(env->loop, s->conn.fd);
	(void)conn_flush(&s->conn, &s->out);	/* best effort for a last -ERR */
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
	conn_close(&s->conn);
	pl->sessions[s->slot] = NULL;
	pl->gens[s->slot]++;
	env->live--;
	if (env->on_end)
		env->on_end(env, &s->conn.peer);
	s->grave_next = pl->grave;
	pl->grave = s;
	if (!pl->sweep_queued) {
		pl->sweep_queued = 1;
		loop_defer(env->loop, grave_sweep, pl);
	}
}

static size_t
slot_take(struct pop3_loop *pl, struct pop3_session *s)
{
	for (size_t i = 0; i < pl->nslots; i++) {
		if (pl->sessions[i] == NULL) {
			pl->sessions[i] = s;
			return i;
		}
	}
	size_t n = pl->nslots ? pl->nslots * 2 : 64;
	pl->sessions = xrealloc(pl->sessions, n * sizeof(*pl->sessions));
	pl->gens = xrealloc(pl->gens, n * sizeof(*pl->gens));
	for (size_t i = pl->nslots; i < n; i++) {
		pl->sessions[i] = NULL;
		pl->gens[i] = 1;
	}
	size_t slot = pl->nslots;
	pl->nslots = n;
	pl->sessions[slot] = s;
	return slot;
}

/* The lockout check came back: the greeting, or the refusal that takes
 * its place. */
static void
greeting_checked(struct pop3_job *j)
{
	struct pop3_session *s = session_by_handle(j->env, j->handle);
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
		session_reply(s, COND_POP3_AUTH_LOCKOUT, k2, ARRAY_LEN(k2));
		s->state = POP3_STATE_CLOSING;
		s->end_cause = COND_POP3_AUTH_LOCKOUT;
	} else {
		session_reply(s, COND_POP3_GREETING, NULL, 0);
	}
	session_process(s);
}

/* The greeting, after the lockout check (the state store is asked on a
 * worker; input waits meanwhile), or the refusal that takes its place. */
static void
send_greeting(struct pop3_session *s)
{
	struct pop3_env *env = s->env;

	if (env->draining) {
		struct kv k2[] = { KV("signal", "SIGTERM"), KVU("sessions", env->live) };
		session_reply(s, COND_POP3_SHUTDOWN, k2, ARRAY_LEN(k2));
		s->state = POP3_STATE_CLOSING;
		s->end_cause = COND_POP3_SHUTDOWN;
		return;
	}
	if (s->cfg->pop3_max_failures == 0) {	/* lockout off */
		session_reply(s, COND_POP3_GREETING, NULL, 0);
		return;
	}
	struct pop3_job *j = pop3_job_new(env->svc, POP3_JOB_CHECK, env, session_handle(s),
					  greeting_checked);
	memcpy(j->sid, s->sid, sizeof(j->sid));
	if (slice_copy(slice_from_cstr(s->conn.peer_text), j->client, sizeof(j->client)) < 0)
		PANIC("client address text");
	s->wait = WAIT_CHECK;
	pop3_job_submit(j);
}

void
pop3_session_start(struct pop3_env *env, int fd, const struct config_listener *lst,
		   unsigned long sessions_now)
{
	struct pop3_session *s = xcalloc(1, sizeof(*s));
	struct pop3_loop *pl = loop_priv(env);
	uint64_t rnd;

	s->env = env;
	s->cfg = env->config_get(env->server);
	s->tls_implicit = lst != NULL && lst->role == CONFIG_ROLE_POP3S;
	s->require_tls = lst != NULL && lst->require_tls;
	s->lst = lst;
	conn_init(&s->conn, fd);
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = loop_clock_ms() ^ ((uint64_t)(uintptr_t)s << 16);
	if (snprintf(s->sid, sizeof(s->sid), "%016" PRIx64, rnd) < 0)
		s->sid[0] = '\0';
	s->slot = slot_take(pl, s);
	s->gen = pl->gens[s->slot];
	env->live++;
	s->started_ms = loop_clock_ms();
	s->end_cause = COND__COUNT;
	s->state = POP3_STATE_AUTH;
	s->fd = -1;
	buf_init(&s->in, s->cfg->limits_line_buffer);
	buf_init(&s->out, OUT_MAX);
	loop_timer_init(&s->deadline, session_timeout, s);
	loop_timer_init(&s->delay, delay_fire, s);

	struct log_ctx ctx = { .sid = s->sid };
	struct kv kv[] = { KV("proto", "pop3"), KV("client", s->conn.peer_text),
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
			tls_failed(s, "no TLS context");
			return;
		}
		tls_step(s);
		return;
	}
	send_greeting(s);
	session_process(s);
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
	struct pop3_loop *pl = loop_priv(env);
	const char *sig = signo == 2 ? "SIGINT" : "SIGTERM";

	for (size_t i = 0; i < pl->nslots; i++) {
		struct pop3_session *s = pl->sessions[i];
		if (s == NULL || s->dead || s->state == POP3_STATE_CLOSING)
			continue;
		if (s->wait == WAIT_UPDATE)
			continue;	/* closes after its update */
		struct kv kv[] = { KV("signal", sig), KVU("sessions", env->live) };
		if (s->wait == WAIT_RETR || s->wait == WAIT_LIST || s->state == POP3_STATE_TLS) {
			/* mid-response or mid-handshake: an -ERR cannot
			 * follow; just close */
			struct log_ctx ctx;
			log_ctx_of(s, &ctx);
			catalog_log(COND_POP3_SHUTDOWN, &ctx, kv, ARRAY_LEN(kv));
			session_end(s, COND_POP3_SHUTDOWN);
			continue;
		}
		loop_timer_cancel(env->loop, &s->delay);
		s->wait = WAIT_NONE;
		session_reply(s, COND_POP3_SHUTDOWN, kv, ARRAY_LEN(kv));
		if (s->dead)
			continue;
		s->state = POP3_STATE_CLOSING;
		s->end_cause = COND_POP3_SHUTDOWN;
		session_process(s);
	}
}

void
pop3_env_fini(struct pop3_env *env)
{
	struct pop3_loop *pl = env->priv;

	if (pl == NULL)
		return;
	/* The loop has stopped: sessions still open are dropped as they are
	 * (no UPDATE), and the deferred frees that never ran are done. */
	for (size_t i = 0; i < pl->nslots; i++) {
		struct pop3_session *s = pl->sessions[i];
		if (s == NULL)
			continue;
		if (s->locked)
			pop3_lock_release(env->svc, s->mailbox);
		conn_close(&s->conn);
		session_free(s);
		pl->sessions[i] = NULL;
	}
	grave_sweep(NULL, pl);
	free(pl->sessions);
	free(pl->gens);
	free(pl);
	env->priv = NULL;
}
