/*
 * smtp_client_txn.c - one transaction of the SMTP client (smtp_client.h):
 * MAIL with its parameters, the RCPTs, DATA or BDAT, with or without
 * PIPELINING (RFC 2920); the replies per recipient and for the
 * transaction; RSET after a transaction that did not reach its end; the
 * data stream's pacing (smtp_client_body.c makes the bytes). The
 * connection's life and the handshake are smtp_client.c's.
 */
#include "smtp_client_private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static void
sc_rcpt_cmd(struct smtp_client *c, size_t i)
{
	const struct smtp_client_rcpt *r = &c->m.rcpts[i];
	int dsn = (c->ext.flags & SMTP_EXT_DSN) != 0;

	if (sc_cmd(c, "RCPT TO:<%s>", r->addr) < 0)
		return;
	if (dsn && r->notify != 0) {
		static const char *const names[] = { "NEVER", "SUCCESS", "FAILURE", "DELAY" };
		const char *sep = " NOTIFY=";
		for (unsigned b = 0; b < 4; b++) {
			if (!(r->notify & (1u << b)))
				continue;
			if (sc_cmd(c, "%s%s", sep, names[b]) < 0)
				return;
			sep = ",";
		}
	}
	if (dsn && r->orcpt != NULL && sc_cmd(c, " ORCPT=%s", r->orcpt) < 0)
		return;
	(void)sc_cmd(c, "\r\n");
}

/* Sets the per-recipient results from final: those accepted at RCPT
 * get it; the others keep their RCPT reply. */
static void
sc_final(struct smtp_client *c, const struct smtp_client_reply *final)
{
	size_t ok = 0;

	c->res.reply = *final;
	for (size_t i = 0; i < c->m.n; i++) {
		if (c->rr[i].code >= 200 && c->rr[i].code < 300) {
			c->rr[i] = *final;
			if (final->code >= 200 && final->code < 300)
				ok++;
		}
	}
	c->res.naccepted = ok;
	if (final->code >= 400)
		c->res.cond = final->code >= 500 ? COND_DELIVERY_REMOTE_REJECTED
						 : COND_DELIVERY_REMOTE_TEMPFAIL;
}

/* Every recipient gets r (MAIL refused, or a result made here). */
static void
sc_all(struct smtp_client *c, const struct smtp_client_reply *r)
{
	c->res.reply = *r;
	for (size_t i = 0; i < c->m.n; i++)
		c->rr[i] = *r;
	c->res.naccepted = 0;
	if (r->code >= 400)
		c->res.cond = r->code >= 500 ? COND_DELIVERY_REMOTE_REJECTED
					     : COND_DELIVERY_REMOTE_TEMPFAIL;
}

/* The transaction is over and the connection idle: done. */
void
sc_txn_done(struct smtp_client *c)
{
	c->res.stage = c->stage;
	c->res.rcpt = c->rr;
	c->res.transfer_ms = loop_now_ms(c->loop) - c->t0;
	c->res.reusable = 1;
	sc_tls_note(c);
	sc_body_fini(&c->body);
	c->busy = 0;
	sc_stage(c, SMTP_CLIENT_IDLE);
	sc_report(c, c);
}

/* Ends the transaction with RSET (the peer may hold state), or at once
 * after 421. */
static void
sc_reset(struct smtp_client *c, int code)
{
	if (code == 421) {
		c->res.backoff_destination = 1;
		c->res.naccepted = 0;
		c->res.reusable = 0;
		sc_end(c, 0);
		return;
	}
	sc_expect(c, 0);
	c->res.stage = c->stage;
	sc_stage(c, SMTP_CLIENT_RSET);
	(void)sc_cmd(c, "RSET\r\n");
}

static void
sc_start_data(struct smtp_client *c)
{
	if (c->ext.flags & SMTP_EXT_CHUNKING) {
		sc_body_start(c, 1);
		sc_expect(c, 0);
		sc_stage(c, SMTP_CLIENT_BODY);
		sc_pump(c);
		return;
	}
	sc_expect(c, 0);
	sc_stage(c, SMTP_CLIENT_DATA);
	c->data_sent = 1;
	(void)sc_cmd(c, "DATA\r\n");
}

/* The replies to MAIL and every RCPT are in. */
static void
sc_after_rcpts(struct smtp_client *c)
{
	if (!c->mail_ok || c->nok == 0) {
		if (c->data_sent) {	/* pipelined: its reply comes, then RSET */
			sc_expect(c, 0);
			sc_stage(c, SMTP_CLIENT_DATA);
			return;
		}
		sc_reset(c, 0);
		return;
	}
	if (c->data_sent) {
		sc_expect(c, 0);
		sc_stage(c, SMTP_CLIENT_DATA);
		return;
	}
	sc_start_data(c);
}

static void
sc_mail_reply(struct smtp_client *c)
{
	struct smtp_client_reply *r = &c->rp.r;

	c->mail_ok = r->code >= 200 && r->code < 300;
	if (!c->mail_ok) {
		sc_all(c, r);
		c->res.backoff_destination = r->code == 421 || smtp_client_reply_is_policy(r);
		if (r->code == 421 || !c->pipelined) {
			sc_reset(c, r->code);
			return;
		}
	}
	sc_expect(c, 0);
	sc_stage(c, SMTP_CLIENT_RCPT);
	if (!c->pipelined)
		sc_rcpt_cmd(c, c->rsent++);
}

static void
sc_rcpt_reply(struct smtp_client *c)
{
	struct smtp_client_reply *r = &c->rp.r;

	if (c->mail_ok) {
		c->rr[c->ri] = *r;
		if (r->code >= 200 && r->code < 300)
			c->nok++;
	}
	c->ri++;
	if (r->code == 421) {
		c->res.reply = *r;
		for (size_t i = c->ri; i < c->m.n; i++)
			c->rr[i] = *r;
		sc_reset(c, 421);
		return;
	}
	if (c->ri < c->m.n) {
		sc_expect(c, 0);
		sc_stage(c, SMTP_CLIENT_RCPT);
		if (!c->pipelined)
			sc_rcpt_cmd(c, c->rsent++);
		return;
	}
	sc_after_rcpts(c);
}

static void
sc_data_reply(struct smtp_client *c)
{
	struct smtp_client_reply *r = &c->rp.r;
	int go = c->mail_ok && c->nok > 0;

	if (r->code == 354 && go) {
		sc_body_start(c, 0);
		sc_expect(c, 0);
		sc_stage(c, SMTP_CLIENT_BODY);
		sc_pump(c);
		return;
	}
	if (r->code == 354) {
		/* Nobody to send to, yet the peer waits for data: end it empty. */
		c->synth = 1;
		sc_expect(c, 0);
		sc_stage(c, SMTP_CLIENT_DOT);
		(void)sc_cmd(c, ".\r\n");
		return;
	}
	if (go)
		sc_final(c, r);
	sc_reset(c, r->code);
}

static void
sc_dot_reply(struct smtp_client *c)
{
	struct smtp_client_reply *r = &c->rp.r;

	if (c->synth) {		/* the empty data after a refused transaction */
		c->synth = 0;
		sc_reset(c, r->code);
		return;
	}
	sc_final(c, r);
	if (r->code == 421) {
		c->res.backoff_destination = 1;
		sc_end(c, 0);
		return;
	}
	sc_txn_done(c);
}

/* A reply while the data streams: a BDAT's, or an early one to DATA. */
static void
sc_body_reply(struct smtp_client *c)
{
	struct smtp_client_reply *r = &c->rp.r;

	if (c->body.bdat && c->body.pending > 0) {
		c->body.pending--;
		if (r->code >= 200 && r->code < 300) {
			if (c->body.ended && c->body.pending == 0) {
				c->stage = SMTP_CLIENT_DOT;
				sc_dot_reply(c);
				return;
			}
			sc_expect(c, 0);
			return;
		}
	}
	/* A refusal before the end: the transaction is lost, and so is the
	 * stream's framing; close. */
	sc_final(c, r);
	c->res.backoff_destination = r->code == 421;
	if (r->code < 400) {
		sc_protocol_error(c, "reply during the data", 0, 0);
		return;
	}
	sc_end(c, 0);
}

static void
sc_rset_reply(struct smtp_client *c)
{
	enum smtp_client_stage s = c->res.stage;

	if (c->rp.r.code != 250) {
		c->res.backoff_destination |= c->rp.r.code == 421;
		sc_end(c, c->rp.r.code != 421);
		return;
	}
	c->stage = s;
	sc_txn_done(c);
}

/* A reply in a transaction's stage. */
void
sc_txn_reply(struct smtp_client *c)
{
	switch (c->stage) {
	case SMTP_CLIENT_MAIL:
		sc_mail_reply(c);
		return;
	case SMTP_CLIENT_RCPT:
		sc_rcpt_reply(c);
		return;
	case SMTP_CLIENT_DATA:
		sc_data_reply(c);
		return;
	case SMTP_CLIENT_BODY:
		sc_body_reply(c);
		return;
	case SMTP_CLIENT_DOT:
		if (c->body.bdat && c->body.pending > 1) {
			c->stage = SMTP_CLIENT_BODY;
			sc_body_reply(c);
			if (!c->ended)
				c->stage = SMTP_CLIENT_DOT;
			return;
		}
		if (c->body.bdat && c->body.pending == 1)
			c->body.pending = 0;
		sc_dot_reply(c);
		return;
	case SMTP_CLIENT_RSET:
		sc_rset_reply(c);
		return;
	default:
		return;
	}
}

/* ---- the data stream ---------------------------------------------------- */

void
sc_pump(struct smtp_client *c)
{
	for (int i = 0; i < 4 && !c->ended && c->stage == SMTP_CLIENT_BODY; i++) {
		struct sc_body *b = &c->body;
		if (b->bdat && !c->pipelined && b->pending > 0)
			return;		/* each chunk's reply first */
		if (c->cn->out.len >= SC_CHUNK)
			return;		/* the peer reads first */
		enum sc_pump r = sc_body_pump(c);
		if (r == SC_PUMP_ERROR) {
			/* A spool problem: the end of data is never sent, so the
			 * peer drops the transaction. */
			c->res.naccepted = 0;
			sc_end(c, 0);
			return;
		}
		if (r == SC_PUMP_WAIT)
			return;
		if (r == SC_PUMP_END) {
			sc_stage(c, SMTP_CLIENT_DOT);
			return;
		}
		sc_stage(c, SMTP_CLIENT_BODY);	/* a block went: its timeout again */
	}
}

void
sc_body_continue(struct smtp_client *c)
{
	sc_pump(c);
	sc_flush(c);
}

static void sc_send_cmds(struct smtp_client *c, const struct smtp_client_msg *m, int dsn);

static int
too_long(const char *s)
{
	return s != NULL && strlen(s) > SC_FIELD_MAX;
}

int
smtp_client_send(struct smtp_client *c, const struct smtp_client_msg *m, smtp_client_fn done,
		 void *arg)
{
	if (c->busy || c->ended || c->dead || c->stage != SMTP_CLIENT_IDLE || m->n == 0 ||
	    m->rcpts == NULL)
		return -1;
	int bad = too_long(m->from) || too_long(m->envid);
	for (size_t i = 0; i < m->n && !bad; i++)
		bad = m->rcpts[i].addr == NULL || too_long(m->rcpts[i].addr) ||
		      too_long(m->rcpts[i].orcpt);
	if (bad) {
		errno = EINVAL;
		return -1;
	}
	c->busy = 1;
	c->m = *m;
	c->cb = done;
	c->arg = arg;
	free(c->rr);
	c->rr = xcalloc(m->n, sizeof(*c->rr));
	c->ri = c->rsent = c->nok = 0;
	c->mail_ok = c->data_sent = c->synth = 0;
	memset(&c->res, 0, sizeof(c->res));
	c->res.cond = COND__COUNT;
	c->res.rcpt = c->rr;
	(void)snprintf(c->res.peer_text, sizeof(c->res.peer_text), "%s:%u",
		       c->cn->conn.peer_text, c->cn->conn.peer_port);
	c->t0 = loop_now_ms(c->loop);
	c->pipelined = (c->ext.flags & SMTP_EXT_PIPELINING) != 0;
	size_t batch = 0;	/* a pipelined batch that could not fit goes one by one */
	for (size_t i = 0; i < m->n; i++)
		batch += strlen(m->rcpts[i].addr) +
			 (m->rcpts[i].orcpt != NULL ? strlen(m->rcpts[i].orcpt) : 0) + 64;
	if (batch > SC_OUT_MAX / 2)
		c->pipelined = 0;

	enum cond_id refuse = COND__COUNT;
	if (m->smtputf8 && !(c->ext.flags & SMTP_EXT_SMTPUTF8))
		refuse = COND_DELIVERY_SMTPUTF8_UNSUPPORTED;
	else if ((c->ext.flags & SMTP_EXT_SIZE) && c->ext.size > 0 && m->size > c->ext.size)
		refuse = COND_DELIVERY_MESSAGE_TOO_BIG;
	if (refuse != COND__COUNT) {
		struct buf line;
		struct smtp_client_rparse rp;
		struct kv kv[] = { KV("host", c->host), KV("peer", c->res.peer_text),
				   KVU("size", m->size), KVU("limit", c->ext.size) };
		buf_init(&line, SMTP_CLIENT_TEXT_MAX);
		smtp_client_rparse_init(&rp, 0);
		size_t nkv = refuse == COND_DELIVERY_MESSAGE_TOO_BIG ? ARRAY_LEN(kv) : 2;
		if (catalog_reply(&line, refuse, c->host, kv, nkv, 0) < 0 ||
		    smtp_client_rparse_line(&rp, line.data, line.len) != SMTP_CLIENT_RP_DONE) {
			rp.r.code = catalog_get(refuse)->code;
			(void)snprintf(rp.r.enh, sizeof(rp.r.enh), "%s", catalog_get(refuse)->esc);
		}
		buf_fini(&line);
		sc_all(c, &rp.r);
		c->res.cond = refuse;
		c->stage = SMTP_CLIENT_MAIL;
		c->synth = 1;
		net_session_deadline(&c->cn->ns, 0);	/* done after we return */
		return 0;
	}

	int dsn = (c->ext.flags & SMTP_EXT_DSN) != 0;
	sc_hold(c);
	sc_send_cmds(c, m, dsn);
	sc_unhold(c);
	return 0;
}

/* MAIL, and with PIPELINING every RCPT and DATA. A command that cannot
 * fit ends the connection (only with envelope strings past their bounds). */
static void
sc_send_cmds(struct smtp_client *c, const struct smtp_client_msg *m, int dsn)
{
	sc_expect(c, 0);
	sc_stage(c, SMTP_CLIENT_MAIL);
	if (sc_cmd(c, "MAIL FROM:<%s>", m->from != NULL ? m->from : "") < 0)
		return;
	if ((c->ext.flags & SMTP_EXT_SIZE) && sc_cmd(c, " SIZE=%llu",
						     (unsigned long long)m->size) < 0)
		return;
	if (m->body_8bit && (c->ext.flags & SMTP_EXT_8BITMIME) && sc_cmd(c, " BODY=8BITMIME") < 0)
		return;
	if (m->smtputf8 && sc_cmd(c, " SMTPUTF8") < 0)
		return;
	if (dsn && m->ret != SMTP_CLIENT_RET_NONE &&
	    sc_cmd(c, " RET=%s", m->ret == SMTP_CLIENT_RET_HDRS ? "HDRS" : "FULL") < 0)
		return;
	if (dsn && m->envid != NULL && sc_cmd(c, " ENVID=%s", m->envid) < 0)
		return;
	if (sc_cmd(c, "\r\n") < 0)
		return;
	if (c->pipelined) {
		/* RFC 2920: MAIL, every RCPT and DATA in one write. */
		for (size_t i = 0; i < m->n && !c->ended; i++)
			sc_rcpt_cmd(c, c->rsent++);
		if (!c->ended && !(c->ext.flags & SMTP_EXT_CHUNKING)) {
			c->data_sent = 1;
			(void)sc_cmd(c, "DATA\r\n");
		}
	}
	if (!c->ended)
		sc_flush(c);
}
