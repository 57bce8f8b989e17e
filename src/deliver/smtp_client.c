/*
 * smtp_client.c - the SMTP client protocol engine (smtp_client.h): the
 * connection's life on the session core, the handshake (greeting, EHLO
 * or HELO, STARTTLS, AUTH), transactions with or without PIPELINING, the
 * stage timeouts and the result the outbound engine decides on.
 *
 * Lifetime: struct smtp_client is the caller's handle; the session core
 * owns struct sc_conn (socket, buffers) and frees it from a deferred
 * call after release. Every entry point (core callbacks, the pool's
 * completion, the synthetic-result timer) holds c while it runs; a
 * client ended meanwhile (by a failure or by the caller from inside a
 * callback) is freed when the last hold goes.
 */
#include "smtp_client_private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base64.h"
#include "log.h"

static const char *const stage_names[] = {
	"connect", "greeting", "ehlo", "starttls", "auth", "mail", "rcpt", "data",
	"body", "dot", "rset", "quit", "idle",
};

const char *
smtp_client_stage_name(enum smtp_client_stage s)
{
	return (size_t)s < sizeof(stage_names) / sizeof(stage_names[0]) ? stage_names[s] : "?";
}


/* ---- lifetime ----------------------------------------------------------- */

static void
sc_destroy(struct smtp_client *c)
{
	sc_body_fini(&c->body);
	free(c->rr);
	free(c->host);
	free(c->helo);
	free(c->self);
	free(c->user);
	if (c->pass != NULL) {
		explicit_bzero(c->pass, strlen(c->pass));
		free(c->pass);
	}
	tls_client_unref(&c->p.tls_ctx);
	free(c);
}

void
sc_hold(struct smtp_client *c)
{
	c->hold++;
}

void
sc_unhold(struct smtp_client *c)
{
	if (--c->hold == 0 && c->dead)
		sc_destroy(c);
}

/* Closes the connection (with a QUIT first when quit: the core gives
 * what out holds one last write). */
static void
sc_close(struct smtp_client *c, int quit)
{
	struct sc_conn *cn = c->cn;

	if (c->ended || cn == NULL)
		return;
	c->ended = 1;
	if (c->stage == SMTP_CLIENT_BODY)
		quit = 0;	/* inside the data a QUIT would be data */
	if (quit && cn->ns.phase == NET_PHASE_OPEN) {
		buf_reset(&cn->out);
		if (buf_append_str(&cn->out, "QUIT\r\n") < 0)
			buf_reset(&cn->out);
	} else {
		buf_reset(&cn->out);
	}
	net_session_stop(&cn->ns);
	cn->c = NULL;
	c->cn = NULL;
	net_session_release(&cn->ns);
}

void
sc_tls_note(struct smtp_client *c)
{
	struct conn *k = &c->cn->conn;

	c->res.tls = c->cn->ns.tls;
	if (!c->res.tls)
		return;
	(void)snprintf(c->res.tls_version, sizeof(c->res.tls_version), "%s", tls_conn_version(k));
	(void)snprintf(c->res.tls_cipher, sizeof(c->res.tls_cipher), "%s", tls_conn_cipher(k));
	c->res.tls_verified = tls_conn_verified(k);
}

/* Runs the pending callback once. */
void
sc_report(struct smtp_client *c, struct smtp_client *pass)
{
	smtp_client_fn cb = c->cb;

	c->cb = NULL;
	c->res.ext = c->ext;
	if (cb != NULL)
		cb(c->arg, pass, &c->res);
}

/* The end of the connection with res saying why: closes, reports
 * (open: c NULL; send: c, which the caller must not use after), frees. */
void
sc_end(struct smtp_client *c, int quit)
{
	int opening = c->m.rcpts == NULL;

	c->res.stage = c->stage;
	c->res.reusable = 0;
	c->res.rcpt = c->rr;
	if (opening)
		c->res.connect_ms = loop_now_ms(c->loop) - c->t0;
	else
		c->res.transfer_ms = loop_now_ms(c->loop) - c->t0;
	if (c->cn != NULL) {
		sc_tls_note(c);
		(void)snprintf(c->res.local_text, sizeof(c->res.local_text), "%s",
			       c->cn->conn.local_text);
	}
	sc_close(c, quit);
	c->dead = 1;
	c->busy = 0;
	if (c->rr != NULL) {
		/* Accepted at RCPT but no final reply: no answer (deferred). */
		for (size_t i = 0; i < c->m.n; i++)
			if (c->rr[i].code >= 200 && c->rr[i].code < 300)
				memset(&c->rr[i], 0, sizeof(c->rr[i]));
	}
	sc_report(c, opening ? NULL : c);
}

static void
sc_log_trouble(struct smtp_client *c, enum cond_id id, const char *err, size_t len,
	       size_t limit, unsigned timeout_ms)
{
	struct log_ctx ctx = { .sid = c->sid };
	const char *stage = smtp_client_stage_name(c->stage);

	if (id == COND_DELIVERY_TIMEOUT) {
		struct kv kv[] = { KV("host", c->host), KV("peer", c->res.peer_text),
				   KV("stage", stage), KVU("timeout_ms", timeout_ms) };
		catalog_log(id, &ctx, kv, ARRAY_LEN(kv));
	} else {
		struct kv kv[] = { KV("host", c->host), KV("peer", c->res.peer_text),
				   KV("stage", stage), KV("err", err), KVU("len", len),
				   KVU("limit", limit) };
		catalog_log(id, &ctx, kv, ARRAY_LEN(kv));
	}
}

/* The connection failed or was lost, or the peer broke the protocol. */
static void
sc_fail_conn(struct smtp_client *c, enum cond_id cond, int err)
{
	c->res.cond = cond;
	c->res.err = err;
	c->res.next_host = 1;
	sc_end(c, cond != COND_DELIVERY_CONNECT_FAILED);
}

void
sc_protocol_error(struct smtp_client *c, const char *err, size_t len, size_t limit)
{
	sc_log_trouble(c, COND_DELIVERY_PROTOCOL_ERROR, err, len, limit, 0);
	sc_fail_conn(c, COND_DELIVERY_PROTOCOL_ERROR, EPROTO);
}

/* ---- timeouts ----------------------------------------------------------- */

unsigned
sc_dflt(unsigned v, unsigned d)
{
	return v ? v : d;
}

static unsigned
stage_ms(const struct smtp_client *c)
{
	const struct smtp_client_timeouts *t = &c->p.t;

	switch (c->stage) {
	case SMTP_CLIENT_CONNECT: return sc_dflt(t->connect_ms, 30000);
	case SMTP_CLIENT_GREETING: return sc_dflt(t->greeting_ms, 300000);
	case SMTP_CLIENT_EHLO: return sc_dflt(t->helo_ms, 300000);
	case SMTP_CLIENT_STARTTLS: return sc_dflt(t->starttls_ms, 300000);
	case SMTP_CLIENT_AUTH: return sc_dflt(t->auth_ms, 300000);
	case SMTP_CLIENT_MAIL: return sc_dflt(t->mail_ms, 300000);
	case SMTP_CLIENT_RCPT: return sc_dflt(t->rcpt_ms, 300000);
	case SMTP_CLIENT_DATA: return sc_dflt(t->data_ms, 120000);
	case SMTP_CLIENT_BODY: return sc_dflt(t->block_ms, 180000);
	case SMTP_CLIENT_DOT: return sc_dflt(t->dot_ms, 600000);
	case SMTP_CLIENT_RSET: return sc_dflt(t->mail_ms, 300000);
	case SMTP_CLIENT_QUIT: return sc_dflt(t->quit_ms, 300000);
	case SMTP_CLIENT_IDLE: return 0;
	}
	return 300000;
}

/* Enters stage s, waiting for the peer within its timeout. */
void
sc_stage(struct smtp_client *c, enum smtp_client_stage s)
{
	c->stage = s;
	if (s == SMTP_CLIENT_IDLE) {
		if (c->idle_ms > 0)
			net_session_deadline(&c->cn->ns, c->idle_ms);
		else
			net_session_deadline_cancel(&c->cn->ns);
		return;
	}
	net_session_deadline(&c->cn->ns, stage_ms(c));
}

/* ---- commands ----------------------------------------------------------- */

int
sc_cmd(struct smtp_client *c, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = buf_vappendf(&c->cn->out, fmt, ap);
	va_end(ap);
	if (rc < 0) {
		sc_protocol_error(c, "command does not fit", c->cn->out.len, SC_OUT_MAX);
		return -1;
	}
	return 0;
}

void
sc_expect(struct smtp_client *c, int ehlo)
{
	smtp_client_rparse_init(&c->rp, ehlo);
}

static int
sc_is_self(const struct smtp_client *c)
{
	return c->self != NULL && c->self[0] != '\0' && strcasecmp(c->rp.first_word, c->self) == 0;
}

/* A refusal at the greeting, EHLO or HELO: the next host. */
static void
sc_refused_early(struct smtp_client *c)
{
	int code = c->rp.r.code;

	c->res.reply = c->rp.r;
	c->res.cond = code >= 500 ? COND_DELIVERY_REMOTE_REJECTED : COND_DELIVERY_REMOTE_TEMPFAIL;
	c->res.next_host = 1;
	c->res.backoff_destination = code == 421 || smtp_client_reply_is_policy(&c->rp.r);
	sc_end(c, code != 421);
}

static void
sc_loop(struct smtp_client *c)
{
	c->res.reply = c->rp.r;
	c->res.cond = COND_DELIVERY_LOOP_TO_SELF;
	c->res.loop = 1;
	sc_end(c, 1);
}

static void
sc_ready(struct smtp_client *c)
{
	sc_tls_note(c);
	c->res.stage = SMTP_CLIENT_IDLE;
	c->res.reusable = 1;
	c->res.connect_ms = loop_now_ms(c->loop) - c->t0;
	c->busy = 0;
	sc_stage(c, SMTP_CLIENT_IDLE);
	sc_report(c, c);
}

static void
sc_auth(struct smtp_client *c)
{
	if (c->user == NULL) {
		sc_ready(c);
		return;
	}
	c->stage = SMTP_CLIENT_AUTH;
	if (!c->cn->ns.tls) {
		c->res.cond = COND_DELIVERY_AUTH_NO_TLS;
		c->res.next_host = 1;
		sc_end(c, 1);
		return;
	}
	if (!(c->ext.flags & SMTP_EXT_AUTH) || !(c->ext.auth & (SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN))) {
		c->res.cond = COND_DELIVERY_AUTH_FAILED;
		sc_end(c, 1);
		return;
	}
	sc_expect(c, 0);
	sc_stage(c, SMTP_CLIENT_AUTH);
	if (!(c->ext.auth & SMTP_AUTH_PLAIN)) {
		c->auth_step = 0;
		(void)sc_cmd(c, "AUTH LOGIN\r\n");
		return;
	}
	size_t ul = strlen(c->user), pl = strlen(c->pass);
	uint8_t msg[2 + 2 * 256];
	char enc[4 * ((sizeof(msg) + 2) / 3) + 1];
	if (ul > 255 || pl > 255) {
		c->res.cond = COND_DELIVERY_AUTH_FAILED;
		sc_end(c, 1);
		return;
	}
	msg[0] = '\0';
	memcpy(msg + 1, c->user, ul);
	msg[1 + ul] = '\0';
	memcpy(msg + 2 + ul, c->pass, pl);
	size_t n = base64_encode(msg, 2 + ul + pl, enc, sizeof(enc) - 1);
	enc[n] = '\0';
	(void)sc_cmd(c, "AUTH PLAIN %s\r\n", enc);
	explicit_bzero(msg, sizeof(msg));
	explicit_bzero(enc, sizeof(enc));
}

static void
sc_auth_reply(struct smtp_client *c)
{
	int code = c->rp.r.code;

	if (code == 235) {
		sc_ready(c);
		return;
	}
	if (code == 334 && !(c->ext.auth & SMTP_AUTH_PLAIN) && c->auth_step < 2) {
		const char *s = c->auth_step == 0 ? c->user : c->pass;
		char enc[4 * ((256 + 2) / 3) + 1];
		size_t n = base64_encode((const uint8_t *)s, strlen(s), enc, sizeof(enc) - 1);
		enc[n] = '\0';
		c->auth_step++;
		sc_expect(c, 0);
		sc_stage(c, SMTP_CLIENT_AUTH);
		(void)sc_cmd(c, "%s\r\n", enc);
		explicit_bzero(enc, sizeof(enc));
		return;
	}
	c->res.reply = c->rp.r;
	c->res.cond = COND_DELIVERY_AUTH_FAILED;
	c->res.backoff_destination = code == 421;
	sc_end(c, code != 421);
}

static void
sc_send_ehlo(struct smtp_client *c)
{
	memset(&c->ext, 0, sizeof(c->ext));
	sc_expect(c, 1);
	sc_stage(c, SMTP_CLIENT_EHLO);
	(void)sc_cmd(c, "%s %s\r\n", c->helo_used ? "HELO" : "EHLO", c->helo);
}

/* EHLO or HELO done: STARTTLS, AUTH, ready. */
static void
sc_after_ehlo(struct smtp_client *c)
{
	if (c->p.tls != SMTP_CLIENT_TLS_NONE && !c->cn->ns.tls && !c->notls) {
		if (c->ext.flags & SMTP_EXT_STARTTLS) {
			sc_expect(c, 0);
			sc_stage(c, SMTP_CLIENT_STARTTLS);
			(void)sc_cmd(c, "STARTTLS\r\n");
			return;
		}
		if (c->p.tls != SMTP_CLIENT_TLS_MAY) {
			c->stage = SMTP_CLIENT_STARTTLS;
			c->res.cond = COND_DELIVERY_TLS_REQUIRED;
			c->res.next_host = 1;
			sc_end(c, 1);
			return;
		}
	}
	sc_auth(c);
}

/* ---- the handshake replies ---------------------------------------------- */

static void
sc_handshake_reply(struct smtp_client *c)
{
	struct smtp_client_reply *r = &c->rp.r;

	switch (c->stage) {
	case SMTP_CLIENT_GREETING:
		if (r->code != 220) {
			sc_refused_early(c);
			return;
		}
		if (sc_is_self(c)) {
			sc_loop(c);
			return;
		}
		sc_send_ehlo(c);
		return;
	case SMTP_CLIENT_EHLO:
		if (r->code == 250) {
			if (sc_is_self(c)) {
				sc_loop(c);
				return;
			}
			if (!c->helo_used)
				c->ext = c->rp.ext;
			sc_after_ehlo(c);
			return;
		}
		if (r->code >= 500 && !c->helo_used) {
			c->helo_used = 1;
			sc_send_ehlo(c);
			return;
		}
		sc_refused_early(c);
		return;
	case SMTP_CLIENT_STARTTLS:
		if (r->code == 220) {
			net_session_drop_input(&c->cn->ns);
			if (net_session_tls_connect(&c->cn->ns, c->p.tls_ctx, c->host,
						    sc_dflt(c->p.t.starttls_ms, 300000)) < 0) {
				c->res.cond = COND_DELIVERY_TLS_FAILED;
				c->res.next_host = 1;
				sc_end(c, 0);
			}
			return;
		}
		if (c->p.tls == SMTP_CLIENT_TLS_MAY) {
			sc_auth(c);
			return;
		}
		c->res.reply = *r;
		c->res.cond = COND_DELIVERY_TLS_REQUIRED;
		c->res.next_host = 1;
		c->res.backoff_destination = r->code == 421;
		sc_end(c, r->code != 421);
		return;
	case SMTP_CLIENT_AUTH:
		sc_auth_reply(c);
		return;
	default:
		return;
	}
}

static void
sc_on_reply(struct smtp_client *c)
{
	switch (c->stage) {
	case SMTP_CLIENT_GREETING:
	case SMTP_CLIENT_EHLO:
	case SMTP_CLIENT_STARTTLS:
	case SMTP_CLIENT_AUTH:
		sc_handshake_reply(c);
		return;
	case SMTP_CLIENT_MAIL:
	case SMTP_CLIENT_RCPT:
	case SMTP_CLIENT_DATA:
	case SMTP_CLIENT_BODY:
	case SMTP_CLIENT_DOT:
	case SMTP_CLIENT_RSET:
		sc_txn_reply(c);
		return;
	default:
		sc_protocol_error(c, "reply while none was due", 0, 0);
		return;
	}
}

/* ---- the session core's callbacks --------------------------------------- */

struct sc_token {
	struct net_table *table;
	uintptr_t handle;
};

static void
sc_deferred_pump(struct loop *loop, void *arg)
{
	struct sc_token *k = arg;
	struct sc_conn *cn = net_table_find(k->table, k->handle);
	struct smtp_client *c = cn != NULL ? cn->c : NULL;

	(void)loop;
	free(k);
	if (c == NULL)
		return;
	sc_hold(c);
	sc_body_continue(c);
	sc_unhold(c);
}

static void
sc_defer_pump(struct smtp_client *c)
{
	struct sc_token *k = xmalloc(sizeof(*k));

	k->table = c->table;
	k->handle = net_session_handle(&c->cn->ns);
	loop_defer(c->loop, sc_deferred_pump, k);
}

void
sc_flush(struct smtp_client *c)
{
	if (c->ended || c->cn->ns.phase != NET_PHASE_OPEN)
		return;		/* the TLS handshake keeps the socket's mask */
	struct sc_conn *cn = c->cn;
	enum conn_io io = net_session_flush(&cn->ns, 0);
	if (c->ended)
		return;
	if (io == CONN_IO_ERROR) {
		sc_fail_conn(c, COND_DELIVERY_CONNECT_FAILED, errno);
		return;
	}
	/* The socket took all: more data while it does (bounded per round;
	 * then a deferred call goes on, as no event would come). */
	for (int i = 0; io == CONN_IO_OK && c->stage == SMTP_CLIENT_BODY && !c->body.reading; i++) {
		if (c->body.bdat && !c->pipelined && c->body.pending > 0)
			return;
		if (i == 16) {
			sc_defer_pump(c);
			return;
		}
		sc_pump(c);
		if (c->ended || cn->out.len == 0)
			return;
		io = net_session_flush(&cn->ns, 0);
		if (c->ended)
			return;
		if (io == CONN_IO_ERROR) {
			sc_fail_conn(c, COND_DELIVERY_CONNECT_FAILED, errno);
			return;
		}
	}
}

static int sc_connect(struct smtp_client *c);
static void sc_tls_failed(struct smtp_client *c, const char *err);

static void
sc_idle_end(struct smtp_client *c, int quit)
{
	void (*fn)(void *, struct smtp_client *) = c->idle_fn;

	sc_close(c, quit);
	if (fn == NULL)
		return;		/* the owner finds it ended: send fails, quit frees */
	c->dead = 1;
	fn(c->idle_arg, c);
}

static void
sc_read_replies(struct smtp_client *c)
{
	struct sc_conn *cn = c->cn;

	while (!c->ended) {
		struct slice in = buf_unread(&cn->in, cn->in_off);
		size_t len = 0, used = 0;
		if (in.len == 0)
			return;
		if (c->stage == SMTP_CLIENT_IDLE) {
			sc_idle_end(c, 0);	/* the peer spoke unasked */
			return;
		}
		int got = smtp_client_line_next(in, &len, &used);
		if (got == 0)
			return;
		if (got < 0) {
			sc_protocol_error(c, "reply line too long", in.len, SMTP_CLIENT_LINE_MAX);
			return;
		}
		cn->in_off += used;
		switch (smtp_client_rparse_line(&c->rp, in.p, len)) {
		case SMTP_CLIENT_RP_MORE:
			continue;
		case SMTP_CLIENT_RP_ERROR:
			sc_protocol_error(c, "not an SMTP reply", len, SMTP_CLIENT_LINE_MAX);
			return;
		case SMTP_CLIENT_RP_TOO_MANY:
			sc_protocol_error(c, "too many reply lines", c->rp.lines,
					  SMTP_CLIENT_LINES_MAX);
			return;
		case SMTP_CLIENT_RP_DONE:
			sc_on_reply(c);
			break;
		}
	}
}

static void
sc_process(void *owner)
{
	struct sc_conn *cn = owner;
	struct smtp_client *c = cn->c;

	if (c == NULL)
		return;
	sc_hold(c);
	sc_read_replies(c);
	if (!c->ended && c->stage == SMTP_CLIENT_BODY && cn->out.len == 0)
		sc_pump(c);
	sc_flush(c);
	sc_unhold(c);
}

static void
sc_start(void *owner)
{
	struct sc_conn *cn = owner;
	struct smtp_client *c = cn->c;

	if (c == NULL)
		return;
	sc_hold(c);
	(void)snprintf(c->res.peer_text, sizeof(c->res.peer_text), "%s:%u", cn->conn.peer_text,
		       cn->conn.peer_port);
	(void)snprintf(c->res.local_text, sizeof(c->res.local_text), "%s", cn->conn.local_text);
	sc_expect(c, 0);
	sc_stage(c, SMTP_CLIENT_GREETING);
	sc_flush(c);
	sc_unhold(c);
}

static void
sc_closed(void *owner, int err)
{
	struct sc_conn *cn = owner;
	struct smtp_client *c = cn->c;

	if (c == NULL)
		return;
	sc_hold(c);
	if (c->stage == SMTP_CLIENT_IDLE)
		sc_idle_end(c, 0);
	else if (cn->ns.phase == NET_PHASE_TLS)	/* lost in the handshake */
		sc_tls_failed(c, "connection closed during the handshake");
	else
		sc_fail_conn(c, COND_DELIVERY_CONNECT_FAILED, err ? err : ECONNRESET);
	sc_unhold(c);
}

static void
sc_timeout(void *owner)
{
	struct sc_conn *cn = owner;
	struct smtp_client *c = cn->c;

	if (c == NULL)
		return;
	sc_hold(c);
	if (c->synth) {
		/* smtp_client_send refused the message without a byte sent. */
		c->synth = 0;
		sc_txn_done(c);
	} else if (c->stage == SMTP_CLIENT_IDLE) {
		sc_idle_end(c, 1);
	} else {
		unsigned ms = stage_ms(c);
		sc_log_trouble(c, COND_DELIVERY_TIMEOUT, "", 0, 0, ms);
		c->res.cond = COND_DELIVERY_TIMEOUT;
		c->res.next_host = 1;
		sc_end(c, 1);
	}
	sc_unhold(c);
}

/* The TLS handshake failed (err says why): under tls = may once more in
 * clear to the same address, as Postfix does; otherwise the next host. */
static void
sc_tls_failed(struct smtp_client *c, const char *err)
{
	struct log_ctx ctx = { .sid = c->sid };
	struct kv kv[] = { KV("host", c->host), KV("peer", c->res.peer_text), KV("err", err) };

	catalog_log(COND_DELIVERY_TLS_FAILED, &ctx, kv, ARRAY_LEN(kv));
	if (c->p.tls == SMTP_CLIENT_TLS_MAY && !c->notls) {
		sc_close(c, 0);
		c->ended = 0;
		c->notls = 1;
		c->helo_used = 0;
		if (sc_connect(c) < 0) {
			c->ended = 1;
			c->res.cond = COND_DELIVERY_CONNECT_FAILED;
			c->res.err = errno;
			c->res.next_host = 1;
			sc_end(c, 0);
		}
		return;
	}
	c->res.cond = COND_DELIVERY_TLS_FAILED;
	c->res.next_host = 1;
	(void)snprintf(c->res.reply.text, sizeof(c->res.reply.text), "%s", err);
	sc_end(c, 0);
}

static void
sc_fail(void *owner, enum cond_id cause)
{
	struct sc_conn *cn = owner;
	struct smtp_client *c = cn->c;

	if (c == NULL)
		return;
	sc_hold(c);
	if (cause == COND_TLS_HANDSHAKE_FAILED)
		sc_tls_failed(c, cn->ns.tls_err[0] ? cn->ns.tls_err : "handshake failed");
	else
		sc_fail_conn(c, COND_DELIVERY_CONNECT_FAILED, errno);
	sc_unhold(c);
}

static void
sc_tls_ready(void *owner)
{
	struct sc_conn *cn = owner;
	struct smtp_client *c = cn->c;

	if (c == NULL)
		return;
	sc_hold(c);
	sc_send_ehlo(c);	/* RFC 3207 4.2: everything starts over */
	sc_flush(c);
	sc_unhold(c);
}

static void
sc_conn_free(void *owner)
{
	free(owner);
}

static const struct net_session_ops sc_ops = {
	.start = sc_start,
	.process = sc_process,
	.closed = sc_closed,
	.timeout = sc_timeout,
	.fail = sc_fail,
	.tls_ready = sc_tls_ready,
	.free = sc_conn_free,
};

/* ---- the interface ------------------------------------------------------ */

static int
sc_connect(struct smtp_client *c)
{
	struct sc_conn *cn = xcalloc(1, sizeof(*cn));

	cn->c = c;
	buf_init(&cn->in, SC_IN_MAX);
	buf_init(&cn->out, SC_OUT_MAX);
	cn->conn.fd = -1;
	net_session_init(&cn->ns, &sc_ops, cn, c->sid, &cn->conn, &cn->in, &cn->in_off, &cn->out);
	c->cn = cn;
	c->stage = SMTP_CLIENT_CONNECT;
	if (net_session_connect_from(&cn->ns, c->table, c->loop, c->p.sa, c->p.salen, c->p.bind,
				     c->p.bindlen, stage_ms(c)) < 0) {
		int e = errno;
		c->cn = NULL;
		free(cn);
		errno = e;
		return -1;
	}
	return 0;
}

static char *
dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

struct smtp_client *
smtp_client_open(struct net_table *t, struct loop *loop, struct workpool *wp,
		 const struct smtp_client_params *p, smtp_client_fn ready, void *arg)
{
	struct smtp_client *c = xcalloc(1, sizeof(*c));

	if (p->salen > sizeof(c->sa) || p->bindlen > sizeof(c->bind)) {
		free(c);
		errno = EINVAL;
		return NULL;
	}
	c->table = t;
	c->loop = loop;
	c->wp = wp;
	c->p = *p;
	memcpy(&c->sa, p->sa, p->salen);
	c->p.sa = (const struct sockaddr *)&c->sa;
	if (p->bind != NULL) {
		memcpy(&c->bind, p->bind, p->bindlen);
		c->p.bind = (const struct sockaddr *)&c->bind;
	}
	c->host = xstrdup(p->host != NULL && p->host[0] ? p->host : "unknown");
	c->helo = xstrdup(p->helo != NULL && p->helo[0] ? p->helo : "localhost");
	c->self = dup_or_null(p->self);
	if (p->auth_user != NULL && p->auth_pass != NULL) {
		c->user = xstrdup(p->auth_user);
		c->pass = xstrdup(p->auth_pass);
	}
	c->p.host = c->host;
	c->p.helo = c->helo;
	c->p.self = c->self;
	c->p.auth_user = c->user;
	c->p.auth_pass = c->pass;
	c->p.tls_ctx = p->tls_ctx != NULL ? tls_client_ref(p->tls_ctx) : NULL;
	if (p->tls_ctx == NULL)
		c->p.tls = SMTP_CLIENT_TLS_NONE == p->tls || p->tls == SMTP_CLIENT_TLS_MAY
			   ? SMTP_CLIENT_TLS_NONE : p->tls;
	(void)snprintf(c->sid, sizeof(c->sid), "%s", p->sid != NULL ? p->sid : "");
	c->p.sid = c->sid;
	c->res.cond = COND__COUNT;
	c->cb = ready;
	c->arg = arg;
	c->busy = 1;
	c->t0 = loop_now_ms(loop);
	if (sc_connect(c) < 0) {
		int e = errno;
		sc_destroy(c);
		errno = e;
		return NULL;
	}
	return c;
}


void
smtp_client_on_idle(struct smtp_client *c, unsigned idle_ms,
		    void (*closed)(void *arg, struct smtp_client *c), void *arg)
{
	c->idle_fn = closed;
	c->idle_arg = arg;
	c->idle_ms = idle_ms;
	if (c->stage == SMTP_CLIENT_IDLE && !c->ended)
		sc_stage(c, SMTP_CLIENT_IDLE);
}

static void
sc_finish(struct smtp_client *c, int quit)
{
	c->cb = NULL;
	c->idle_fn = NULL;
	sc_close(c, quit);
	c->dead = 1;
	if (c->hold == 0)
		sc_destroy(c);
}

void
smtp_client_quit(struct smtp_client *c)
{
	sc_finish(c, c->stage == SMTP_CLIENT_IDLE);
}

void
smtp_client_abort(struct smtp_client *c)
{
	sc_finish(c, 0);
}

const char *
smtp_client_peer(const struct smtp_client *c)
{
	return c->res.peer_text;
}
