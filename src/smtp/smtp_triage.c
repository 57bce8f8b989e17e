/*
 * smtp_triage.c - pre-greeting triage, as Postfix's postscreen and
 * smtpf: with smtp.greet_pause the greeting waits; a client that talks
 * before it (an early talker) or sends a command behind its HELO/EHLO
 * before the reply (pipelining it was never offered) is refused with
 * 554 5.5.1 and the connection closed. A client that passed is
 * remembered by address for smtp.greet_pass_ttl, and skips the pause
 * and the checks: the pass cache.
 *
 * The pass cache lives in the shared state store (store/state.h), key
 * "greetpass:<address>", so that nodes sharing a Redis share it too. The
 * pause starts at once and the store is asked meanwhile; input that comes
 * before the answer is held, not judged. A remembered client is then
 * greeted at once and its input served; any other waits out the pause.
 * A store that fails counts as "not remembered" (the pause applies).
 */
#include "smtp_session_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"

#define PASS_KEY_MAX 80

struct triage_ask {
	struct state_req req;
	struct state_op op;
	struct loop *loop;
	uintptr_t handle;	/* the session, found again (or gone) */
	char sid[17];
	char key[PASS_KEY_MAX];
};

static int
pass_key(const struct smtp_session *s, char *out, size_t size)
{
	int n = snprintf(out, size, "greetpass:%s", s->conn.peer_text);

	return n < 0 || (size_t)n >= size ? -1 : 0;
}

static void
ask_free(struct state_req *req)
{
	free(req->arg);
}

static void
ask_failed_log(const struct triage_ask *a, const char *op)
{
	struct log_ctx ctx = { .sid = a->sid[0] != '\0' ? a->sid : NULL };
	struct kv kv[] = { KV("op", op), KV("key", a->key), KV("err", a->req.err) };

	catalog_log(COND_STORE_STATE_OP_FAILED, &ctx, kv, ARRAY_LEN(kv));
}

/* The store answered: a remembered client is greeted now; another one's
 * pause goes on, and input it sent meanwhile makes it an early talker. */
static void
asked(struct state_req *req)
{
	struct triage_ask *a = req->arg;
	struct smtp_session *s = smtp_session_by_handle(loop_get_data(a->loop), a->handle);
	int known = !req->failed && a->op.found;

	if (req->failed)
		ask_failed_log(a, "get");
	free(a);
	if (s == NULL || s->dead || !s->triage_asking)
		return;
	s->triage_asking = 0;
	if (!s->greet_wait || s->state == SMTP_STATE_CLOSING)
		return;
	if (known) {
		s->triage = 0;
		smtp_triage_pause_over(s);
	} else {
		smtp_session_flag(s, "greet-pause");
	}
	smtp_session_resume(s);
}

static void
remembered(struct state_req *req)
{
	struct triage_ask *a = req->arg;

	if (req->failed)
		ask_failed_log(a, "put");
	free(a);
}

static struct triage_ask *
ask_new(struct smtp_session *s)
{
	struct triage_ask *a = xcalloc(1, sizeof(*a));

	if (pass_key(s, a->key, sizeof(a->key)) < 0) {
		free(a);
		return NULL;
	}
	a->loop = s->env->loop;
	a->handle = smtp_session_handle(s);
	if (slice_copy(slice_from_cstr(s->sid), a->sid, sizeof(a->sid)) < 0)
		a->sid[0] = '\0';
	a->req.ops = &a->op;
	a->req.nops = 1;
	a->req.cancel = ask_free;
	a->req.arg = a;
	return a;
}

int
smtp_triage_begin(struct smtp_session *s)
{
	struct state *st = policy_state();
	struct triage_ask *a;

	if (s->cfg->smtp_greet_pause == 0 || s->trusted || s->env->draining ||
	    (s->lst != NULL && s->lst->role != CONFIG_ROLE_MX))
		return 0;
	s->triage = 1;
	s->greet_wait = 1;
	net_session_deadline(&s->ns, (uint64_t)s->cfg->smtp_greet_pause * 1000u);
	a = st != NULL ? ask_new(s) : NULL;
	if (a != NULL) {
		state_op_set(&a->op, STATE_GET, a->key, NULL, 0, 0, 0);
		a->req.done = asked;
		if (state_submit(st, a->loop, &a->req) == 0) {
			s->triage_asking = 1;
			return 1;
		}
		free(a);
	}
	smtp_session_flag(s, "greet-pause");
	return 1;
}

/* Remembers a client that passed, for smtp.greet_pass_ttl. */
static void
cache_remember(struct smtp_session *s)
{
	struct state *st = policy_state();
	struct triage_ask *a = st != NULL ? ask_new(s) : NULL;

	if (a == NULL)
		return;
	state_op_set(&a->op, STATE_PUT, a->key, "1", 1, 0, s->cfg->smtp_greet_pass_ttl);
	a->req.done = remembered;
	if (state_submit(st, a->loop, &a->req) < 0)
		free(a);
}

/* Refuses and closes: the reply is logged as its event. */
static void
triage_refuse(struct smtp_session *s, enum cond_id cond, const struct kv *kv, size_t n)
{
	s->greet_wait = 0;
	s->triage = 0;
	smtp_session_reply(s, cond, kv, n);
	s->state = SMTP_STATE_CLOSING;
	s->end_cause = cond;
}

int
smtp_triage_input(struct smtp_session *s)
{
	struct slice u = buf_unread(&s->in, s->in_off);

	if (u.len == 0 || s->triage_asking)
		return 0;	/* nothing yet, or held until the store answers */
	struct kv kv[] = { KV("client", s->conn.peer_text), KVU("bytes", u.len),
			   KVU("waited_ms", loop_clock_ms() - s->started_ms) };
	triage_refuse(s, COND_SMTP_EARLY_TALKER, kv, ARRAY_LEN(kv));
	return 1;
}

void
smtp_triage_pause_over(struct smtp_session *s)
{
	if (s->triage_asking) {
		/* the pause ran out before the store answered */
		s->triage_asking = 0;
		smtp_session_flag(s, "greet-pause");
	}
	s->greet_wait = 0;
	s->active_ms = loop_clock_ms();
	smtp_greet(s);
}

int
smtp_triage_line(struct smtp_session *s, const uint8_t *line, size_t len)
{
	struct slice l = { line, len };

	if (!slice_starts_nocase(l, "EHLO") && !slice_starts_nocase(l, "HELO"))
		return 0;
	if (s->in_off < s->in.len) {
		struct kv kv[] = { KV("client", s->conn.peer_text), KVM("cmd", line, 4),
				   KVU("bytes", s->in.len - s->in_off) };
		triage_refuse(s, COND_SMTP_PIPELINING_EARLY, kv, ARRAY_LEN(kv));
		return 1;
	}
	s->triage = 0;
	cache_remember(s);
	struct log_ctx ctx = { .sid = s->sid };
	struct kv kv[] = { KV("client", s->conn.peer_text),
			   KVU("ttl_s", s->cfg->smtp_greet_pass_ttl) };
	catalog_log(COND_SMTP_TRIAGE_PASSED, &ctx, kv, ARRAY_LEN(kv));
	return 0;
}
