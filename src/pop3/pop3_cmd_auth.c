/*
 * pop3_cmd_auth.c - the POP3 AUTHORIZATION state: USER and PASS, AUTH
 * PLAIN (RFC 5034, RFC 4616), the plaintext rules (RFC 2595 2.1), and the
 * login job's answer (the failed-login delay, lockouts, LOGIN-DELAY, the
 * mailbox lock). The password check and the maildrop scan run on the
 * service's workers (pop3_service.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sasl_plain.h"
#include "directory.h"
#include "pop3_session_private.h"

/* RFC 2595 2.1: whether a USER/PASS or AUTH PLAIN login may run on this
 * connection now. COND__COUNT when it may; else the refusal:
 * POP3-TLS-REQUIRED on a require_tls listener before STLS, and
 * POP3-PLAINTEXT-DISABLED without TLS while TLS is configured, except
 * from loopback when the listener's plaintext_on_loopback (or
 * auth.plaintext_on_loopback) allows it. Without a certificate there is
 * no other way in, so plaintext is allowed. */
enum cond_id
pop3_plaintext_refusal(const struct pop3_session *s)
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

/* Refuses a plaintext login with its reason; 1 if it did. */
static int
refuse_plaintext(struct pop3_session *s, const char *cmd, struct slice user)
{
	enum cond_id why = pop3_plaintext_refusal(s);

	if (why == COND__COUNT)
		return 0;
	if (why == COND_POP3_TLS_REQUIRED) {
		struct kv kv[] = { KV("client", s->conn.peer_text), KV("cmd", cmd) };
		pop3_session_refuse(s, why, kv, ARRAY_LEN(kv));
	} else {
		struct kv kv[] = { KV("client", s->conn.peer_text),
				   user.len ? KVM("user", user.p, user.len) : KV("user", NULL) };
		pop3_session_refuse(s, why, kv, ARRAY_LEN(kv));
	}
	return 1;
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
	j = pop3_job_new(s->env->svc, POP3_JOB_LOGIN, s->env, pop3_session_handle(s), login_done);
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

void
pop3_delay_fire(struct loop *loop, void *arg)
{
	struct pop3_session *s = arg;

	(void)loop;
	if (s->dead || s->wait != WAIT_DELAY)
		return;
	s->wait = WAIT_NONE;
	struct kv kv[] = { KV("client", s->conn.peer_text), KV("user", s->user[0] ? s->user : NULL),
			   KV("mech", s->mech), KVU("count", s->delayed_count) };
	pop3_session_refuse(s, COND_POP3_AUTH_FAILED, kv, ARRAY_LEN(kv));
	pop3_session_process(s);
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
	pop3_session_log_ctx(s, &ctx);
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
	struct pop3_session *s = pop3_session_by_handle(j->env, j->handle);

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
		pop3_session_totals(s, &count, &size);
		struct kv kv[] = { KV("user", s->mailbox), KV("client", s->conn.peer_text),
				   KV("mech", s->mech), KVU("count", count), KVU("size", size) };
		pop3_session_reply(s, COND_POP3_LOGIN, kv, ARRAY_LEN(kv));
		break;
	}
	case POP3_LOGIN_UNKNOWN:
	case POP3_LOGIN_BAD:
		login_failed(s, j);
		break;
	case POP3_LOGIN_LOCKOUT: {
		struct kv kv[] = { KV("client", s->conn.peer_text), KVI("count", j->fail_count),
				   KVU("remaining_s", j->ban_remaining_s) };
		pop3_session_refuse(s, COND_POP3_AUTH_LOCKOUT, kv, ARRAY_LEN(kv));
		break;
	}
	case POP3_LOGIN_REFUSED:
		/* Right credentials, maildrop busy or too soon: not an error. */
		if (j->cond == COND_POP3_LOCKED) {
			struct kv kv[] = { KV("user", j->mailbox), KV("holder_sid", j->holder) };
			pop3_session_reply(s, j->cond, kv, ARRAY_LEN(kv));
		} else if (j->cond == COND_POP3_LOGIN_DELAY) {
			struct kv kv[] = { KV("user", j->mailbox), KV("client", s->conn.peer_text),
					   KVU("remaining_s", j->remaining_s) };
			pop3_session_reply(s, j->cond, kv, ARRAY_LEN(kv));
		} else {
			struct kv kv[] = { KV("user", j->mailbox), KV("client", s->conn.peer_text) };
			pop3_session_refuse(s, j->cond, kv, ARRAY_LEN(kv));
		}
		break;
	case POP3_LOGIN_ERROR: {
		struct kv kv[] = { KV("user", j->mailbox), KV("path", j->err_path),
				   KV("errno", log_errno_name(j->err)) };
		pop3_session_reply(s, COND_POP3_MAILBOX_ERROR, kv, ARRAY_LEN(kv));
		break;
	}
	}
	pop3_job_free(j);
	pop3_session_process(s);
}

void
pop3_cmd_user(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	if (refuse_plaintext(s, "USER", cmd->arg))
		return;
	if (slice_copy(cmd->arg, s->user, sizeof(s->user)) < 0)
		s->user[0] = '\0';
	s->have_user = 1;
	struct kv kv[] = { KVM("user", cmd->arg.p, cmd->arg.len) };
	pop3_session_reply(s, COND_POP3_USER_OK, kv, 1);
}

void
pop3_cmd_pass(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	if (!s->have_user) {
		struct kv kv[] = { KV("client", s->conn.peer_text), KV("state", "authorization"),
				   KV("cmd", "PASS") };
		pop3_session_refuse(s, COND_POP3_SEQUENCE, kv, ARRAY_LEN(kv));
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
		pop3_session_refuse(s, COND_POP3_SYNTAX, kv, ARRAY_LEN(kv));
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

void
pop3_cmd_auth(struct pop3_session *s, const struct pop3_cmd *cmd)
{
	if (!slice_eq_nocase(cmd->mech, "PLAIN")) {
		struct kv kv[] = { KV("client", s->conn.peer_text),
				   KVM("mech", cmd->mech.p, cmd->mech.len) };
		pop3_session_refuse(s, COND_POP3_AUTH_MECHANISM, kv, ARRAY_LEN(kv));
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
	pop3_session_reply(s, COND_POP3_AUTH_CONTINUE, kv, 1);
	s->wait = WAIT_SASL;
}

/* The line after "+ ": the client's response, or "*" to cancel. */
void
pop3_sasl_response(struct pop3_session *s, const uint8_t *line, size_t len, size_t linelen)
{
	s->wait = WAIT_NONE;
	if (len == 1 && line[0] == '*') {
		struct kv kv[] = { KV("client", s->conn.peer_text) };
		pop3_session_refuse(s, COND_POP3_AUTH_CANCELLED, kv, 1);
		return;
	}
	if (linelen > SASL_LINE_MAX) {
		struct kv kv[] = { KV("client", s->conn.peer_text), KVU("len", linelen),
				   KVU("limit", SASL_LINE_MAX) };
		pop3_session_refuse(s, COND_POP3_LINE_TOO_LONG, kv, ARRAY_LEN(kv));
		return;
	}
	sasl_plain(s, (struct slice){ line, len });
}

