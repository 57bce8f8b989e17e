/*
 * smtp_simulate.c - one transaction through the policy chain without a
 * client (see smtp_simulate.h), for `postern simulate`.
 *
 * Owns the simulation's state machine: connect, EHLO, MAIL, each RCPT,
 * DATA and (with a message) end of data, each started from a deferred
 * call once the stage before it is decided, on the caller's loop. The
 * commands go through the session's parser (smtp_parse.h) and its copy
 * into the transaction (smtp_path_copy); what the session adds around
 * the chain (RCPT-NOT-ROUTED, the replies of a stage that passed) is repeated here in the same words.
 */
#include "smtp_simulate.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "cidr.h"
#include "smtp_session_private.h"
#include "state.h"

#define SIM_CMD_MAX (SMTP_SIM_ARG_MAX + 64)	/* "MAIL FROM:<...> SMTPUTF8 SIZE=..." */
#define SIM_PIECE (64u * 1024u)	/* message file read size */

enum sim_step { STEP_CONNECT, STEP_HELO, STEP_MAIL, STEP_RCPT, STEP_DATA, STEP_EOD, STEP_END };

struct sim {
	const struct smtp_sim *p;
	struct policy_txn txn;
	struct policy_run run;
	const struct policy_chain *chain;
	enum sim_step step;
	size_t rcpt;			/* index of the recipient being judged */
	unsigned nrcpt_ok;
	int smtputf8;			/* any address is not ASCII */
	int any4, any5, discard;
	uint64_t started_ms;
	void (*decided)(struct sim *s);
	char sid[17];
	char helo[256];
	struct state_req barrier;	/* the last state request (sim_finish) */
	struct state_op barrier_op;
	int barrier_pending;
};

static void sim_next(struct loop *loop, void *arg);

static void
sim_defer_next(struct sim *s)
{
	loop_defer(s->p->loop, sim_next, s);
}

static void
sim_barrier_done(struct state_req *req)
{
	struct sim *s = req->arg;

	s->barrier_pending = 0;
	loop_stop(s->p->loop);
}

/* The transaction is over. The loop stops once the state store answered
 * a last read, queued behind every request the checks made (a check may
 * still write after answering, in a real session): none is cut off, so
 * a check that wrote in a simulation would be seen to. */
static void
sim_finish(struct sim *s)
{
	struct state *st = policy_state();

	s->step = STEP_END;
	state_op_set(&s->barrier_op, STATE_GET, "simulate:end", NULL, 0, 0, 0);
	s->barrier.ops = &s->barrier_op;
	s->barrier.nops = 1;
	s->barrier.done = sim_barrier_done;
	s->barrier.arg = s;
	if (st != NULL && state_submit(st, s->p->loop, &s->barrier) == 0)
		s->barrier_pending = 1;
	else
		loop_stop(s->p->loop);
}

/* Tells the caller how the stage ended, with the reply for cond. */
static void
sim_emit(struct sim *s, enum policy_stage stage, const char *rcpt, enum policy_action action,
	 const char *by, enum cond_id cond, const struct kv *kvs, size_t nkv)
{
	const struct cond *c = catalog_get(cond);
	struct smtp_sim_stage st = {
		.stage = stage, .rcpt = rcpt, .action = action, .decided_by = by, .cond = cond,
		.refused = c->code >= 400, .ms = loop_clock_ms() - s->started_ms,
	};
	struct buf r;

	buf_init(&r, REPLY_MAX);
	if (catalog_reply(&r, cond, s->p->cfg->hostname, kvs, nkv, 0) < 0)
		buf_reset(&r);
	st.reply = buf_cstr(&r);
	if (c->code >= 500)
		s->any5 = 1;
	else if (c->code >= 400)
		s->any4 = 1;
	if (action == POLICY_DISCARD)
		s->discard = 1;
	if (s->p->on_stage != NULL)
		s->p->on_stage(s->p->arg, &st);
	buf_fini(&r);
}

/* The action a refusal made outside the chain shows (4xx or 5xx). */
static enum policy_action
refusal_action(enum cond_id cond)
{
	return catalog_get(cond)->code < 500 ? POLICY_TEMPFAIL : POLICY_REJECT;
}

/* Emits the run's refusal; returns 1 when the run refused. */
static int
sim_refused(struct sim *s, enum policy_stage stage, const char *rcpt)
{
	struct kv kvs[POLICY_PARAMS_MAX];
	size_t n;
	enum cond_id c;

	if (!policy_run_refused(&s->run))
		return 0;
	c = policy_run_cond(&s->run, kvs, &n);
	sim_emit(s, stage, rcpt, s->run.action, s->run.decided_by, c, kvs, n);
	return 1;
}

static void
sim_run_done(struct policy_run *run, void *arg)
{
	struct sim *s = arg;

	(void)run;
	s->decided(s);
}

/* Asks stage's checks; decided(s) runs with the result in s->run. */
static void
sim_ask(struct sim *s, enum policy_stage stage, void (*decided)(struct sim *s))
{
	s->decided = decided;
	s->started_ms = loop_clock_ms();
	s->txn.helo = s->helo;
	policy_run_start(&s->run, s->p->loop, s->chain, stage, &s->txn, NULL, sim_run_done, s);
}

/* Parses one command line (n: what snprintf made of it) as the session
 * would; on a refusal emits it for stage and returns -1. A line that did
 * not fit (arguments past SMTP_SIM_ARG_MAX, which the caller refuses
 * first) goes as an empty one: SMTP-COMMAND-UNKNOWN. */
static int
sim_parse(struct sim *s, enum policy_stage stage, const char *rcpt, char *line, int n,
	  struct smtp_cmd *cmd)
{
	struct smtp_parse_opts opts = {
		.offered = SMTP_EXT_SIZE | SMTP_EXT_8BITMIME | SMTP_EXT_SMTPUTF8 | SMTP_EXT_DSN |
			   SMTP_EXT_CHUNKING,
	};
	enum cond_id err;
	struct kv kv[4];
	char verb[17];

	memset(cmd, 0, sizeof(*cmd));
	s->started_ms = loop_clock_ms();
	if (n < 0 || n >= SIM_CMD_MAX)
		line[0] = '\0';
	if (smtp_parse_command((const uint8_t *)line, strlen(line), &opts, cmd, &err) == 0)
		return 0;
	size_t nkv = smtp_parse_refusal_kvs(s->p->client, "ready", cmd, err,
					    (const uint8_t *)line, strlen(line), verb, kv);
	sim_emit(s, stage, rcpt, refusal_action(err), NULL, err, kv, nkv);
	return -1;
}

/* ---- stages ----------------------------------------------------------- */

/* A stage that is not RCPT is decided: refused (the transaction ends),
 * or passed with the session's reply ok (kv) and on to next. */
static void
stage_decided(struct sim *s, enum policy_stage stage, enum cond_id ok, const struct kv *kv,
	      size_t n, enum sim_step next)
{
	if (sim_refused(s, stage, NULL)) {
		sim_finish(s);
		return;
	}
	sim_emit(s, stage, NULL, s->run.action, s->run.decided_by, ok, kv, n);
	s->step = next;
	if (next == STEP_END)
		sim_finish(s);
	else
		sim_defer_next(s);
}

static void
connect_decided(struct sim *s)
{
	stage_decided(s, POLICY_STAGE_CONNECT, COND_SMTP_GREETING, NULL, 0, STEP_HELO);
}

static void
helo_decided(struct sim *s)
{
	struct kv kv[] = { KV("helo", s->helo) };

	stage_decided(s, POLICY_STAGE_HELO, COND_SMTP_EHLO, kv, 1, STEP_MAIL);
}

static void
mail_decided(struct sim *s)
{
	const char *from = s->txn.sender.mailbox;
	struct kv kv[] = { KVA("from", from, strlen(from)) };

	stage_decided(s, POLICY_STAGE_MAIL, COND_SMTP_MAIL_OK, kv, 1, STEP_RCPT);
}

/* The recipient is judged: accepted (its local mailboxes kept for the
 * end-of-data checks) or refused; then the next one. */
static void
rcpt_decided(struct sim *s)
{
	struct policy_txn *t = &s->txn;
	const char *given = s->p->to[s->rcpt];
	const char *rcpt = t->rcpt.mailbox;

	s->rcpt++;
	sim_defer_next(s);
	if (sim_refused(s, POLICY_STAGE_RCPT, given))
		return;
	if (!t->routed || t->expansion.ntargets == 0) {
		struct kv kv[] = { KV("client", s->p->client), KVA("rcpt", rcpt, strlen(rcpt)) };

		sim_emit(s, POLICY_STAGE_RCPT, given, refusal_action(COND_RCPT_NOT_ROUTED), NULL,
			 COND_RCPT_NOT_ROUTED, kv, ARRAY_LEN(kv));
		return;
	}
	for (size_t i = 0; i < t->expansion.ntargets; i++)
		if (t->expansion.targets[i].local)
			policy_txn_add_local(t, t->expansion.targets[i].acct,
					     t->expansion.targets[i].addr);
	struct kv kv[] = { KVA("rcpt", rcpt, strlen(rcpt)),
			   KV("route", t->route[0] ? t->route : "local") };
	sim_emit(s, POLICY_STAGE_RCPT, given, s->run.action, s->run.decided_by, COND_RCPT_OK, kv,
		 ARRAY_LEN(kv));
	s->nrcpt_ok++;
	policy_txn_rcpt_reset(t);
}

static void
data_decided(struct sim *s)
{
	stage_decided(s, POLICY_STAGE_DATA, COND_SMTP_DATA_GO, NULL, 0, STEP_EOD);
}

static void
eod_decided(struct sim *s)
{
	struct kv kv[] = { KV("qid", "simulated") };

	stage_decided(s, POLICY_STAGE_END_OF_DATA, COND_SMTP_MSG_ACCEPTED, kv, 1, STEP_END);
}

static void
step_helo(struct sim *s)
{
	char line[SIM_CMD_MAX];
	struct smtp_cmd cmd;
	int n = snprintf(line, sizeof(line), "EHLO %s", s->p->helo);

	if (sim_parse(s, POLICY_STAGE_HELO, NULL, line, n, &cmd) < 0) {
		sim_finish(s);
		return;
	}
	if (slice_copy(cmd.helo, s->helo, sizeof(s->helo)) < 0)
		s->helo[0] = '\0';
	sim_ask(s, POLICY_STAGE_HELO, helo_decided);
}

static void
step_mail(struct sim *s)
{
	char line[SIM_CMD_MAX];
	struct smtp_cmd cmd;
	const struct policy_content *c = s->p->content;
	int n = c != NULL
		? snprintf(line, sizeof(line), "MAIL FROM:<%s>%s SIZE=%" PRIu64, s->p->from,
			   s->smtputf8 ? " SMTPUTF8" : "", c->size)
		: snprintf(line, sizeof(line), "MAIL FROM:<%s>%s", s->p->from,
			   s->smtputf8 ? " SMTPUTF8" : "");

	if (sim_parse(s, POLICY_STAGE_MAIL, NULL, line, n, &cmd) < 0) {
		sim_finish(s);
		return;
	}
	policy_txn_reset(&s->txn);
	(void)smtp_path_copy(&s->txn.sender, &cmd.path);
	s->txn.has_size = cmd.has_size;
	s->txn.size = cmd.size;
	s->txn.smtputf8 = cmd.smtputf8;
	sim_ask(s, POLICY_STAGE_MAIL, mail_decided);
}

static void
step_rcpt(struct sim *s)
{
	const char *given = s->p->to[s->rcpt];
	char line[SIM_CMD_MAX];
	struct smtp_cmd cmd;
	int n = snprintf(line, sizeof(line), "RCPT TO:<%s>", given);

	if (sim_parse(s, POLICY_STAGE_RCPT, given, line, n, &cmd) < 0) {
		s->rcpt++;
		sim_defer_next(s);
		return;
	}
	policy_txn_rcpt_reset(&s->txn);
	if (smtp_path_copy(&s->txn.rcpt, &cmd.path) < 0) {
		const char *rcpt = s->txn.rcpt.mailbox;
		struct kv kv[] = { KV("client", s->p->client), KVA("rcpt", rcpt, strlen(rcpt)) };

		sim_emit(s, POLICY_STAGE_RCPT, given, refusal_action(COND_RCPT_SYNTAX), NULL,
			 COND_RCPT_SYNTAX, kv, ARRAY_LEN(kv));
		s->rcpt++;
		sim_defer_next(s);
		return;
	}
	s->txn.nrcpt_ok = s->nrcpt_ok;
	sim_ask(s, POLICY_STAGE_RCPT, rcpt_decided);
}

static void
step_data(struct sim *s)
{
	if (s->nrcpt_ok == 0) {
		sim_finish(s);
		return;
	}
	sim_ask(s, POLICY_STAGE_DATA, data_decided);
}

static void
sim_next(struct loop *loop, void *arg)
{
	struct sim *s = arg;

	(void)loop;
	switch (s->step) {
	case STEP_CONNECT:
		sim_ask(s, POLICY_STAGE_CONNECT, connect_decided);
		break;
	case STEP_HELO:
		step_helo(s);
		break;
	case STEP_MAIL:
		step_mail(s);
		break;
	case STEP_RCPT:
		if (s->rcpt < s->p->nto) {
			step_rcpt(s);
			break;
		}
		s->step = STEP_DATA;
		/* fall through */
	case STEP_DATA:
		step_data(s);
		break;
	case STEP_EOD:
		if (s->p->content == NULL) {
			sim_finish(s);
			break;
		}
		s->txn.content = *s->p->content;
		sim_ask(s, POLICY_STAGE_END_OF_DATA, eod_decided);
		break;
	case STEP_END:
		break;
	}
}

static int
non_ascii(const char *p)
{
	for (; *p != '\0'; p++)
		if ((unsigned char)*p >= 0x80)
			return 1;
	return 0;
}

enum smtp_sim_result
smtp_simulate(const struct smtp_sim *p)
{
	struct sim *s = xcalloc(1, sizeof(*s));
	uint64_t rnd;
	enum smtp_sim_result r;

	s->p = p;
	s->chain = policy_chain_of(p->cfg, p->lst);
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = loop_clock_ms();
	if (snprintf(s->sid, sizeof(s->sid), "%016" PRIx64, rnd) < 0)
		s->sid[0] = '\0';
	s->smtputf8 = non_ascii(p->from);
	for (size_t i = 0; i < p->nto; i++)
		s->smtputf8 |= non_ascii(p->to[i]);
	policy_txn_init(&s->txn);
	s->txn.cfg = p->cfg;
	s->txn.lst = p->lst;
	s->txn.client = p->client;
	s->txn.peer = p->peer;
	s->txn.dns = p->dns;
	s->txn.sid = s->sid;
	s->txn.simulate = 1;
	s->txn.tls = p->tls;
	s->txn.auth_user = p->auth_user;
	s->txn.trusted = cidr_list_match(&p->cfg->server_trusted_networks,
					 (const struct sockaddr *)p->peer);
	policy_run_init(&s->run);
	policy_run_observe(&s->run, p->on_check, p->arg);
	s->step = STEP_CONNECT;
	sim_defer_next(s);
	if (loop_run(p->loop) < 0 && s->step != STEP_END) {
		/* the loop failed: what was decided so far was shown */
		policy_run_cancel(&s->run);
		s->any4 = 1;
	}
	r = s->any5 ? SMTP_SIM_REJECTED : s->any4 ? SMTP_SIM_TEMPFAILED
	    : s->discard ? SMTP_SIM_DISCARDED : SMTP_SIM_ACCEPTED;
	policy_txn_fini(&s->txn);
	if (!s->barrier_pending)
		free(s);	/* else state_close still ends it: the process exits */
	return r;
}

/* ---- the message file --------------------------------------------------- */

int
smtp_sim_scan_file(FILE *f, const struct config *cfg, struct policy_content *out,
		   struct uri_scan **uris_out)
{
	struct uri_scan *uris = NULL;
	struct smtp_data dec;
	struct smtp_scan scan;
	struct buf sink;
	uint8_t *piece = xmalloc(SIM_PIECE);
	size_t n;
	int r = 0;

	smtp_data_init(&dec, 1);	/* a lone LF is sent as CRLF */
	smtp_scan_init(&scan, cfg->limits_line_length);
	if (smtp_uribl_configured(cfg)) {
		uris = uri_scan_new(cfg->uribl_scan_size, cfg->uribl_max_domains);
		scan.tap = smtp_uri_tap;
		scan.tap_arg = uris;
	}
	buf_init(&sink, 2 * SIM_PIECE + 2);
	while ((n = fread(piece, 1, SIM_PIECE, f)) > 0) {
		smtp_data_chunk(&dec, piece, n, &sink, &scan);
		buf_reset(&sink);	/* only the counts are kept */
	}
	if (ferror(f))
		r = -1;
	smtp_content_set(out, &dec, &scan, dec.size, cfg->limits_message_size);
	if (uris != NULL)
		uri_scan_finish(uris);
	out->uris = uris;
	*uris_out = uris;
	out->bare_lf = 0;	/* the client turned them into CRLF */
	out->first_bare_lf = 0;
	buf_fini(&sink);
	free(piece);
	return r;
}
