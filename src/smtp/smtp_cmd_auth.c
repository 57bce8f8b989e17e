/*
 * smtp_cmd_auth.c - the AUTH command (RFC 4954) with PLAIN (RFC 4616) and
 * LOGIN, against the accounts file, and the AUTH workers.
 *
 * Owns the session's SASL exchange (s->auth, struct auth_state) and the
 * process-wide AUTH service: the "auth" class of the worker pool
 * (core/workpool.h) and the failed-login store (store/authfail.h, in the
 * shared state store, shared with POP3) where failures per client address
 * are counted. A check asks the store whether the client is locked out,
 * then a worker checks the password (crypt is slow on purpose), then a
 * failure is counted in the store; each step answers on the session's
 * loop and finds the session again through its handle (the job is
 * dropped if the session ended). While a job or the failure delay runs the
 * session is busy: it reads nothing more and has no command deadline.
 *
 * Secrets: passwords and AUTH payloads are never logged; decoded bytes
 * are wiped (explicit_bzero) as soon as they are copied into the job, and
 * the job's copy right after the check.
 *
 * Failure counting: store/authfail.h with auth.max_failures,
 * auth.failure_window and auth.lockout.
 */
#include "smtp_auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "workpool.h"
#include "smtp_sasl.h"
#include "smtp_session_private.h"
#include "authfail.h"

/* A yescrypt hash of a random string: an unknown user costs one crypt too,
 * so the timing does not tell unknown users from wrong passwords. */
#define DUMMY_HASH "{CRYPT}$y$j9T$TtDXYbRDAyByxfdr$Cd6GKiu7V7PdjiJChHYWbL8Zlyi/lwYWgvr.3/a2Fe4"

#define CHALLENGE_USER "VXNlcm5hbWU6"	/* base64("Username:") */
#define CHALLENGE_PASS "UGFzc3dvcmQ6"	/* base64("Password:") */
#define FAIL_DELAY_MAX_SHIFT 4		/* fail_delay * 16 at most */

enum auth_mech { MECH_PLAIN, MECH_LOGIN };
enum auth_step { STEP_NONE, STEP_PLAIN, STEP_LOGIN_USER, STEP_LOGIN_PASS };
enum auth_outcome { OUT_OK, OUT_FAILED, OUT_DISABLED, OUT_BANNED };

struct auth_job {
	struct workpool_job wj;	/* first: the pool hands it back */
	struct authfail_req af;	/* the lockout check, then the failure count */
	struct loop *loop;	/* the session's */
	uintptr_t handle;
	struct config *cfg;	/* reference */
	enum auth_mech mech;
	char sid[17];
	char client[64];	/* IP text: the counters' key */
	char user[SASL_FIELD_MAX + 1];
	char pass[SASL_FIELD_MAX + 1];
	char authzid[SASL_FIELD_MAX + 1];
	/* results */
	enum auth_outcome out;
	const char *reason;
	int64_t count;
	uint64_t remaining_s;
	char addr[320];		/* the account's address on success */
};

struct auth_state {
	enum auth_step step;
	enum auth_mech mech;
	char user[SASL_FIELD_MAX + 1];	/* LOGIN: the name, until the password */
	struct loop_timer delay;
	struct auth_job *pending;	/* a failure waiting out its delay */
	struct smtp_session *s;
};

struct auth_service {
	struct workpool *wp;	/* borrowed */
	int cls;		/* the "auth" class */
	struct state *st;	/* borrowed; NULL: counting is off */
};

/* Set once by smtp_auth_init() before the loops run, cleared by
 * smtp_auth_shutdown() after they stopped; the service itself is
 * thread-safe. */
static struct auth_service *svc;

static const char *
mech_name(enum auth_mech m)
{
	return m == MECH_PLAIN ? "PLAIN" : "LOGIN";
}

/* ---- jobs -------------------------------------------------------------- */

static void
job_free(struct auth_job *j)
{
	if (j == NULL)
		return;
	explicit_bzero(j->pass, sizeof(j->pass));
	config_unref(&j->cfg);
	free(j);
}

/* Splits "local@domain" at the last '@' and finds the account. */
static const struct account *
find_account(const struct config *cfg, const char *user)
{
	const char *at = strrchr(user, '@');

	if (at == NULL || at == user || at[1] == '\0' || cfg->accounts == NULL)
		return NULL;
	return directory_find(cfg->accounts, user, (size_t)(at - user), at + 1, strlen(at + 1));
}

/* Worker side: the password. */
static void
run_check(struct workpool_job *wj)
{
	struct auth_job *j = (struct auth_job *)wj;
	const struct config *cfg = j->cfg;
	const struct account *a;
	int r;

	a = find_account(cfg, j->user);
	if (a == NULL || a->password == NULL || a->password[0] == '\0') {
		struct account dummy = { .password = (char *)DUMMY_HASH };
		r = directory_verify_password(&dummy, j->pass);
		(void)r;
		j->out = OUT_FAILED;
		j->reason = a == NULL ? "unknown_user" : "no_password";
	} else {
		r = directory_verify_password(a, j->pass);
		if (r == 1) {
			if (snprintf(j->addr, sizeof(j->addr), "%s@%s", a->local, a->domain) < 0)
				j->addr[0] = '\0';
			/* RFC 4616 2: an authzid other than the user's own
			 * would be proxy authorisation, which Postern does
			 * not grant */
			if (j->authzid[0] != '\0' && strcasecmp(j->authzid, j->user) != 0 &&
			    strcasecmp(j->authzid, j->addr) != 0) {
				j->out = OUT_FAILED;
				j->reason = "authzid";
			} else if (a->disabled ||
				   directory_domain_disabled(cfg->accounts, a->domain,
							     strlen(a->domain))) {
				j->out = OUT_DISABLED;
			} else {
				j->out = OUT_OK;
			}
		} else {
			j->out = OUT_FAILED;
			j->reason = r == 0 ? "bad_password" : "no_password";
		}
	}
	explicit_bzero(j->pass, sizeof(j->pass));
}

static void job_done(struct loop *loop, struct workpool_job *wj);

/* The pool stopped before the job's completion ran (shutdown). */
static void
job_cancel(struct workpool_job *wj)
{
	job_free((struct auth_job *)wj);
}

/* The store closed with the job's request pending (shutdown). */
static void
af_cancel(struct authfail_req *r)
{
	job_free(r->arg);
}

/* ---- service lifecycle ------------------------------------------------- */

int
smtp_auth_init(struct state *state, struct workpool *wp, unsigned workers)
{
	struct auth_service *v;

	if (svc != NULL)
		return 0;
	v = xcalloc(1, sizeof(*v));
	v->wp = wp;
	v->st = state;
	svc = v;
	v->cls = workpool_class_new(wp, "auth", workers > 0 ? workers : 1, 0);
	if (v->cls < 0) {
		smtp_auth_shutdown();
		return -1;
	}
	return 0;
}

void
smtp_auth_shutdown(void)
{
	struct auth_service *v = svc;

	if (v == NULL)
		return;
	/* Jobs never run, or whose completion a stopped loop never ran,
	 * are cancelled (freed); running checks finish first. */
	if (v->cls >= 0)
		workpool_class_stop(v->wp, v->cls);
	svc = NULL;
	free(v);
}

/* ---- session side ------------------------------------------------------ */

/* RFC 4954 4: PLAIN and LOGIN only under TLS, or in clear where the
 * listener allows it (loopback with plaintext_on_loopback; never on a
 * listener that needs TLS). */
static int
plaintext_ok(const struct smtp_session *s)
{
	return s->tls || config_plaintext_allowed(s->cfg, s->lst, &s->conn.peer);
}

int
smtp_auth_offered(const struct smtp_session *s)
{
	return svc != NULL && s->ehlo && plaintext_ok(s);
}

int
smtp_auth_expects_line(const struct smtp_session *s)
{
	const struct auth_state *st = s->auth;

	return st != NULL && st->step != STEP_NONE && !s->busy;
}

static void delay_fired(struct loop *loop, void *arg);

static struct auth_state *
state_get(struct smtp_session *s)
{
	struct auth_state *st = s->auth;

	if (st == NULL) {
		st = xcalloc(1, sizeof(*st));
		st->s = s;
		loop_timer_init(&st->delay, delay_fired, st);
		s->auth = st;
	}
	return st;
}

void
smtp_auth_free(struct smtp_session *s)
{
	struct auth_state *st = s->auth;

	if (st == NULL)
		return;
	loop_timer_cancel(s->env->loop, &st->delay);
	job_free(st->pending);
	explicit_bzero(st->user, sizeof(st->user));
	free(st);
	s->auth = NULL;
}

static void
challenge(struct smtp_session *s, struct auth_state *st, const char *text, unsigned step)
{
	struct kv kv[] = { KV("mech", mech_name(st->mech)), KVU("step", step),
			   KV("challenge", text) };

	(void)smtp_session_reply(s, COND_AUTH_CHALLENGE, kv, ARRAY_LEN(kv));
}

/* Ends the exchange with a refusal of the response. */
static void
response_refuse(struct smtp_session *s, struct auth_state *st, enum sasl_result r,
		size_t len, unsigned step)
{
	const char *mech = mech_name(st->mech);

	st->step = STEP_NONE;
	explicit_bzero(st->user, sizeof(st->user));
	if (r == SASL_CANCEL) {
		struct kv kv[] = { KV("client", s->conn.peer_text), KV("mech", mech),
				   KVU("step", step) };
		(void)smtp_session_reply(s, COND_AUTH_CANCELLED, kv, ARRAY_LEN(kv));
	} else if (r == SASL_TOO_LONG) {
		struct kv kv[] = { KV("client", s->conn.peer_text), KV("mech", mech),
				   KVU("len", len), KVU("limit", SMTP_AUTH_LINE_MAX) };
		smtp_session_refuse(s, COND_AUTH_LINE_TOO_LONG, kv, ARRAY_LEN(kv));
	} else {
		struct kv kv[] = { KV("client", s->conn.peer_text), KV("mech", mech),
				   KVU("step", step), KV("reason", sasl_result_name(r)) };
		smtp_session_refuse(s, COND_AUTH_RESPONSE_INVALID, kv, ARRAY_LEN(kv));
	}
}

/* Hands the credentials to a worker. -1 (the refusal sent, j freed)
 * when the pool refuses the job. */
static int
hash_submit(struct smtp_session *s, struct auth_job *j)
{
	if (workpool_submit(svc->wp, svc->cls, &j->wj, s->env->loop) == 0)
		return 0;
	struct kv kv[] = { KV("client", s->conn.peer_text) };
	job_free(j);
	smtp_session_refuse(s, COND_AUTH_SASL_INIT_FAILED, kv, ARRAY_LEN(kv));
	return -1;
}

static void conclude(struct smtp_session *s, struct auth_job *j);

/* The lockout check came back: refused at once, or on to the password. */
static void
ban_checked(struct authfail_req *r)
{
	struct auth_job *j = r->arg;
	struct smtp_session *s = smtp_session_by_handle(loop_get_data(j->loop), j->handle);

	if (s == NULL) {
		job_free(j);	/* the client left meanwhile */
		return;
	}
	if (r->banned) {
		explicit_bzero(j->pass, sizeof(j->pass));
		j->out = OUT_BANNED;
		j->count = r->count;
		j->remaining_s = r->remaining_s;
		conclude(s, j);
		return;
	}
	if (hash_submit(s, j) < 0) {
		s->busy = 0;
		smtp_session_resume(s);
	}
}

/* The lockout check, then the password on a worker; the session waits
 * (busy). */
static void
check_submit(struct smtp_session *s, struct auth_state *st, struct slice user,
	     struct slice pass, struct slice authzid)
{
	struct auth_job *j = xcalloc(1, sizeof(*j));

	workpool_job_init(&j->wj, run_check, job_done, job_cancel);
	j->handle = smtp_session_handle(s);
	j->cfg = config_ref(s->cfg);
	j->mech = st->mech;
	/* The slices are at most SASL_FIELD_MAX octets (checked by the
	 * decoder), so each copy fits. */
	if (slice_copy(slice_from_cstr(s->sid), j->sid, sizeof(j->sid)) < 0 ||
	    slice_copy(slice_from_cstr(s->conn.peer_text), j->client, sizeof(j->client)) < 0 ||
	    slice_copy(user, j->user, sizeof(j->user)) < 0 ||
	    slice_copy(pass, j->pass, sizeof(j->pass)) < 0 ||
	    slice_copy(authzid, j->authzid, sizeof(j->authzid)) < 0)
		PANIC("SASL field longer than its decoder allows");
	st->step = STEP_NONE;
	explicit_bzero(st->user, sizeof(st->user));
	j->loop = s->env->loop;
	if (svc->st != NULL && j->cfg->auth_max_failures > 0) {
		j->af.cancel = af_cancel;
		authfail_check(svc->st, j->loop, &j->af, j->client, j->sid, ban_checked, j);
		s->busy = 1;
		return;
	}
	if (hash_submit(s, j) == 0)
		s->busy = 1;
}

/* A decoded PLAIN message. */
static void
plain_finish(struct smtp_session *s, struct auth_state *st, const uint8_t *msg, size_t len,
	     unsigned step)
{
	struct sasl_plain p;

	if (sasl_plain_parse(msg, len, &p) < 0) {
		response_refuse(s, st, SASL_BAD_MESSAGE, len, step);
		return;
	}
	check_submit(s, st, p.authcid, p.passwd, p.authzid);
}

/* A decoded LOGIN step: the user name, then the password. */
static void
login_step(struct smtp_session *s, struct auth_state *st, const uint8_t *msg, size_t len,
	   unsigned step)
{
	enum sasl_result r = sasl_login_check(msg, len);

	if (r != SASL_OK) {
		response_refuse(s, st, r, len, step);
		return;
	}
	if (st->step != STEP_LOGIN_PASS) {
		memcpy(st->user, msg, len);	/* len <= SASL_FIELD_MAX */
		st->user[len] = '\0';
		st->step = STEP_LOGIN_PASS;
		challenge(s, st, CHALLENGE_PASS, step + 1);
		return;
	}
	check_submit(s, st, slice_from_cstr(st->user), (struct slice){ msg, len },
		     (struct slice){ (const uint8_t *)"", 0 });
}

void
smtp_cmd_auth(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	struct slice arg = cmd->arg, mech, ir = { NULL, 0 };
	const char *client = s->conn.peer_text;
	struct auth_state *st;
	uint8_t dec[SASL_DECODED_MAX];
	size_t declen = 0;
	enum sasl_result r;
	int has_ir = 0;

	if (svc == NULL) {
		struct kv kv[] = { KV("client", client) };
		smtp_session_refuse(s, COND_AUTH_SASL_INIT_FAILED, kv, ARRAY_LEN(kv));
		return;
	}
	if (s->auth_user[0] != '\0') {
		struct kv kv[] = { KV("client", client), KV("user", s->auth_user) };
		smtp_session_refuse(s, COND_AUTH_ALREADY, kv, ARRAY_LEN(kv));
		return;
	}
	if (s->state == SMTP_STATE_INIT) {
		struct kv kv[] = { KV("client", client), KV("cmd", "AUTH") };
		smtp_session_refuse(s, COND_SMTP_NEED_HELO, kv, ARRAY_LEN(kv));
		return;
	}
	/* RFC 4954 4: AUTH is not permitted during a mail transaction; and
	 * after HELO (not EHLO) the extension was never offered. */
	if (s->in_txn || s->state != SMTP_STATE_READY || !s->ehlo) {
		struct kv kv[] = { KV("client", client),
				   KV("state", s->state == SMTP_STATE_READY ? "helo" : "mail"),
				   KV("cmd", "AUTH") };
		smtp_session_refuse(s, COND_SMTP_SEQUENCE_ERROR, kv, ARRAY_LEN(kv));
		return;
	}
	/* RFC 3207 4: a require_tls listener refuses AUTH before STARTTLS,
	 * from every address. */
	if (s->lst != NULL && s->lst->require_tls && !s->tls) {
		struct kv kv[] = { KV("client", client), KV("cmd", "AUTH") };
		smtp_session_refuse(s, COND_TLS_REQUIRED, kv, ARRAY_LEN(kv));
		return;
	}
	mech = arg;
	const uint8_t *sp = arg.len ? memchr(arg.p, ' ', arg.len) : NULL;
	if (sp != NULL) {
		mech.len = (size_t)(sp - arg.p);
		ir = (struct slice){ sp + 1, arg.len - mech.len - 1 };
		has_ir = 1;
	}
	if (mech.len == 0) {
		struct kv kv[] = { KV("client", client) };
		smtp_session_refuse(s, COND_AUTH_MECH_MISSING, kv, ARRAY_LEN(kv));
		return;
	}
	enum auth_mech m;
	if (slice_eq_nocase(mech, "PLAIN")) {
		m = MECH_PLAIN;
	} else if (slice_eq_nocase(mech, "LOGIN")) {
		m = MECH_LOGIN;
	} else {
		struct kv kv[] = { KV("client", client),
				   KVM("mech", mech.p, mech.len > 64 ? 64 : mech.len) };
		smtp_session_refuse(s, COND_AUTH_MECH_UNSUPPORTED, kv, ARRAY_LEN(kv));
		return;
	}
	if (!plaintext_ok(s)) {
		struct kv kv[] = { KV("client", client), KV("mech", mech_name(m)) };
		smtp_session_refuse(s, COND_AUTH_ENCRYPTION_REQUIRED, kv, ARRAY_LEN(kv));
		return;
	}
	st = state_get(s);
	st->mech = m;
	st->step = m == MECH_PLAIN ? STEP_PLAIN : STEP_LOGIN_USER;
	if (!has_ir) {
		if (m == MECH_PLAIN)
			challenge(s, st, "", 1);
		else
			challenge(s, st, CHALLENGE_USER, 1);
		return;
	}
	r = sasl_response_decode(ir.p, ir.len, 1, dec, sizeof(dec), &declen);
	if (r != SASL_OK) {
		/* "*" as an initial response also cancels (RFC 4954 4) */
		response_refuse(s, st, r, ir.len, 0);
		return;
	}
	if (m == MECH_PLAIN)
		plain_finish(s, st, dec, declen, 0);
	else
		login_step(s, st, dec, declen, 0);
	explicit_bzero(dec, declen);
}

void
smtp_auth_line(struct smtp_session *s, const uint8_t *line, size_t len)
{
	struct auth_state *st = s->auth;
	uint8_t dec[SASL_DECODED_MAX];
	size_t declen = 0;
	unsigned step;
	enum sasl_result r;

	if (st == NULL || st->step == STEP_NONE)
		return;
	step = st->step == STEP_LOGIN_PASS ? 2 : 1;
	r = sasl_response_decode(line, len, 0, dec, sizeof(dec), &declen);
	if (r != SASL_OK) {
		response_refuse(s, st, r, len, step);
		return;
	}
	if (st->step == STEP_PLAIN)
		plain_finish(s, st, dec, declen, step);
	else
		login_step(s, st, dec, declen, step);
	explicit_bzero(dec, declen);
}

/* ---- results ----------------------------------------------------------- */

static void
finish(struct smtp_session *s, struct auth_job *j)
{
	const char *client = s->conn.peer_text;
	const char *mech = mech_name(j->mech);

	switch (j->out) {
	case OUT_OK: {
		struct log_ctx ctx;
		if (slice_copy(slice_from_cstr(j->addr), s->auth_user, sizeof(s->auth_user)) < 0)
			s->auth_user[0] = '\0';
		smtp_session_flag(s, "auth");
		struct kv kv[] = { KV("client", client), KV("mech", mech), KV("user", s->auth_user),
				   KV("tls", s->tls ? "yes" : "no") };
		smtp_session_log_ctx(s, &ctx);
		catalog_log(COND_AUTH_OK, &ctx, kv, ARRAY_LEN(kv));
		(void)smtp_session_reply(s, COND_AUTH_OK, kv, ARRAY_LEN(kv));
		break;
	}
	case OUT_FAILED: {
		struct kv kv[] = { KV("client", client), KV("mech", mech), KV("user", j->user),
				   KV("reason", j->reason), KVI("count", j->count) };
		smtp_session_refuse(s, COND_AUTH_FAILED, kv, ARRAY_LEN(kv));
		break;
	}
	case OUT_DISABLED: {
		struct kv kv[] = { KV("client", client), KV("mech", mech), KV("user", j->user) };
		smtp_session_refuse(s, COND_AUTH_ACCOUNT_DISABLED, kv, ARRAY_LEN(kv));
		break;
	}
	case OUT_BANNED: {
		struct kv kv[] = { KV("client", client), KVI("count", j->count),
				   KVU("remaining_s", j->remaining_s) };
		smtp_session_refuse(s, COND_AUTH_TEMPBAN, kv, ARRAY_LEN(kv));
		break;
	}
	}
	job_free(j);
	s->busy = 0;
	smtp_session_resume(s);
}

static void
delay_fired(struct loop *loop, void *arg)
{
	struct auth_state *st = arg;
	struct auth_job *j = st->pending;

	(void)loop;
	st->pending = NULL;
	if (j != NULL)
		finish(st->s, j);
}

/* The outcome goes out: at once, or a failure after its delay. */
static void
conclude(struct smtp_session *s, struct auth_job *j)
{
	struct auth_state *st;

	if (s->auth == NULL) {
		/* cannot happen: the exchange state lives while busy */
		job_free(j);
		s->busy = 0;
		smtp_session_resume(s);
		return;
	}
	st = s->auth;
	if (j->out == OUT_FAILED && j->cfg->auth_fail_delay > 0) {
		int64_t c = j->count > 1 ? j->count - 1 : 0;
		unsigned shift = c > FAIL_DELAY_MAX_SHIFT ? FAIL_DELAY_MAX_SHIFT : (unsigned)c;
		uint64_t ms = (uint64_t)j->cfg->auth_fail_delay << shift;
		st->pending = j;
		loop_timer_set(j->loop, &st->delay, ms);
		return;	/* still busy until the timer */
	}
	finish(s, j);
}

/* A failure was counted (j->af.count: the failures in the window). */
static void
failure_recorded(struct authfail_req *r)
{
	struct auth_job *j = r->arg;
	struct smtp_session *s = smtp_session_by_handle(loop_get_data(j->loop), j->handle);

	if (s == NULL) {
		job_free(j);
		return;
	}
	j->count = r->count;
	conclude(s, j);
}

static void
job_done(struct loop *loop, struct workpool_job *wj)
{
	struct auth_job *j = (struct auth_job *)wj;
	struct smtp_session *s = smtp_session_by_handle(loop_get_data(loop), j->handle);

	if (s == NULL) {
		job_free(j);	/* the client left meanwhile */
		return;
	}
	if (svc->st != NULL && j->out == OUT_FAILED) {
		struct authfail_policy pol = { j->cfg->auth_max_failures,
					       j->cfg->auth_failure_window, j->cfg->auth_lockout };
		j->af.cancel = af_cancel;
		authfail_record(svc->st, loop, &j->af, j->client, j->sid, &pol,
				failure_recorded, j);
		return;		/* still busy until it is counted */
	}
	if (svc->st != NULL && j->out == OUT_OK)
		authfail_clear(svc->st, loop, j->client, j->sid);
	conclude(s, j);
}
