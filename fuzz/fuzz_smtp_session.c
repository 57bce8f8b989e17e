/*
 * fuzz_smtp_session.c - libFuzzer target for the whole SMTP session: the
 * state machine (smtp_session.c, smtp_cmd.c, smtp_message.c) on the real
 * session core and loop, driven by a script, in the spirit of Dovecot's
 * fuzz-smtp-server.
 *
 * Owns the fakes around one session: the client (the other end of a
 * socketpair), a body sink (store/body_sink.h) whose begin and commit
 * completions wait until the script releases them, a policy chain over
 * one fake check that answers when the script says (or never, so the
 * chain's deadline fires), and the clock (loop_clock_pin), so command,
 * data and check deadlines expire when the script moves it. Everything
 * runs on this thread: no worker, no disk.
 *
 * A script is two header bytes (listener role, configuration, which
 * stages ask the fake check, whether it answers at once) and then
 * operations, one byte each with their arguments (see op_run). After
 * every operation the harness checks, and traps on a violation:
 *   - every reply line is a code, a space or hyphen, text, and CRLF, at
 *     most 512 octets with it;
 *   - a "250 ... queued as QID" names a message whose fake commit
 *     succeeded (once), or, after a discard verdict, one never committed;
 *   - the session's end is reported once (on_end), and a completion that
 *     comes after it (a late commit) touches nothing of it (ASan);
 *   - at most one check query pending, at most one sink open and one
 *     commit in flight;
 * and at the end, with every job released and the client gone, that the
 * session ended and freed everything (ASan/LSan in the fuzz build).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "body_sink.h"
#include "config.h"
#include "log.h"
#include "loop.h"
#include "policy.h"
#include "policy_checks.h"
#include "smtp_session.h"
#include "spool.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *p, size_t n);

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "violated: %s (line %d)\n", #c, __LINE__); \
		__builtin_trap(); } } while (0)

#define JOBS_MAX 8
#define QIDS_MAX 16
#define REPLY_LINE_MAX 512

/* ---- the world of one run ------------------------------------------- */

struct fake_sink;

struct job {
	struct fake_sink *sk;
	int commit;			/* 0: begin */
	struct spool_msg *msg;		/* commit: owned */
	body_sink_done_fn done;
	void *arg;
	int status;			/* as released */
	enum cond_id cond;
	int posted;			/* released: its completion is on the loop */
	int cancelled;			/* aborted while its completion was posted */
};

struct fake_sink {
	struct body_sink base;
	int write_fail;			/* writes fail from now on */
	struct job *begin;		/* pending or posted */
	uint64_t bytes;
};

static struct {
	struct config *cfg[2];
	struct loop *loop;
	struct policy_chain *chain;
	struct smtp_env env;
	struct config_listener lst;
	int cfg_pick;
	int client;			/* our end; -1 once closed */
	int ended;			/* on_end ran */
	int eof;			/* read 0 from the client end */
	int auto_answer;		/* the fake check answers at once */
	int discarded;			/* a discard verdict was given */
	struct fake_sink *open;		/* the sink not yet committed or aborted */
	struct job *jobs[JOBS_MAX];	/* pending: released by the script */
	size_t njobs;
	size_t sinks_open;
	size_t commits;			/* in flight */
	struct policy_query *queries[4];	/* pending fake queries */
	size_t nqueries;
	/* the last QIDS_MAX commits that succeeded / began (rings) */
	char committed[QIDS_MAX][SPOOL_QID_SIZE];
	size_t ncommitted;
	char started[QIDS_MAX][SPOOL_QID_SIZE];
	size_t nstarted;
	char line[REPLY_LINE_MAX + 2];	/* a reply line being read */
	size_t line_len;
	uint64_t now;
	int trace;			/* FUZZ_TRACE set: replies to stderr */
} W;

/* ---- the fake body sink ---------------------------------------------- */

static const enum cond_id sink_fail_conds[] = { COND_QUEUE_WRITE_FAILED,
						COND_QUEUE_SPOOL_CREATE_FAILED,
						COND_QUEUE_DISK_FULL };

static void
job_push(struct job *j)
{
	CHECK(W.njobs < JOBS_MAX);
	W.jobs[W.njobs++] = j;
}

static void
job_unlink(struct job *j)
{
	for (size_t i = 0; i < W.njobs; i++)
		if (W.jobs[i] == j) {
			memmove(W.jobs + i, W.jobs + i + 1, (W.njobs - i - 1) * sizeof(*W.jobs));
			W.njobs--;
			return;
		}
}

static void
sink_begin(struct body_sink *b, struct loop *loop, body_sink_done_fn done, void *arg)
{
	struct fake_sink *sk = (struct fake_sink *)b;
	struct job *j = calloc(1, sizeof(*j));

	CHECK(j != NULL && sk->begin == NULL);
	(void)loop;
	j->sk = sk;
	j->done = done;
	j->arg = arg;
	sk->begin = j;
	job_push(j);
}

static int
sink_write(struct body_sink *b, const void *p, size_t n)
{
	struct fake_sink *sk = (struct fake_sink *)b;

	(void)p;
	CHECK(sk->begin == NULL);	/* no write before begin's done */
	if (sk->write_fail)
		return -1;
	sk->bytes += n;
	return 0;
}

static void
sink_commit(struct body_sink *b, struct spool_msg *msg, struct loop *loop,
	    body_sink_done_fn done, void *arg)
{
	struct fake_sink *sk = (struct fake_sink *)b;
	struct job *j = calloc(1, sizeof(*j));

	(void)loop;
	CHECK(j != NULL && sk->begin == NULL);
	CHECK(W.commits == 0);
	W.commits++;
	CHECK(W.open == sk);
	W.open = NULL;
	W.sinks_open--;
	j->sk = sk;
	j->commit = 1;
	j->msg = msg;
	j->done = done;
	j->arg = arg;
	memcpy(W.started[W.nstarted++ % QIDS_MAX], msg->qid, SPOOL_QID_SIZE);
	job_push(j);
}

static void
sink_abort(struct body_sink *b)
{
	struct fake_sink *sk = (struct fake_sink *)b;

	if (sk->begin != NULL && sk->begin->posted) {
		sk->begin->cancelled = 1;	/* its call does nothing */
	} else if (sk->begin != NULL) {
		job_unlink(sk->begin);		/* pending: dropped */
		free(sk->begin);
	}
	CHECK(W.open == sk);
	W.open = NULL;
	W.sinks_open--;
	free(sk);
}

static const struct body_sink_ops fake_sink_ops = {
	sink_begin, sink_write, sink_commit, sink_abort,
};

static struct body_sink *
sink_new(struct smtp_env *env, struct spool_msg *m)
{
	struct fake_sink *sk = calloc(1, sizeof(*sk));

	(void)env;
	(void)m;
	CHECK(sk != NULL);
	CHECK(W.sinks_open == 0);
	W.sinks_open++;
	W.open = sk;
	sk->base.ops = &fake_sink_ops;
	return &sk->base;
}

/* The posted completion of a released job. */
static void
job_fire(struct loop *loop, void *arg)
{
	struct job *j = arg;

	if (j->commit) {
		if (j->status == 0)
			memcpy(W.committed[W.ncommitted++ % QIDS_MAX], j->msg->qid, SPOOL_QID_SIZE);
		spool_msg_free(&j->msg);
		free(j->sk);
		W.commits--;
		j->done(loop, j->arg, j->status, j->cond);
	} else if (!j->cancelled) {
		j->sk->begin = NULL;
		j->done(loop, j->arg, j->status, j->cond);
	}
	free(j);
}

/* Releases pending job i with a result (byte r: 0-2 success, else a
 * failure with one of sink_fail_conds). */
static void
job_release(size_t i, uint8_t r)
{
	struct job *j = W.jobs[i];

	job_unlink(j);
	j->status = r % 4 == 3 ? -1 : 0;
	j->cond = sink_fail_conds[(r / 4) % 3];
	if (j->commit && j->sk->write_fail)
		j->status = -1;	/* the sink failed: the commit says so */
	j->posted = 1;
	loop_post(W.loop, job_fire, j);
}

/* ---- the fake check ---------------------------------------------------- */

static void
query_unlink(struct policy_query *q)
{
	for (size_t i = 0; i < W.nqueries; i++)
		if (W.queries[i] == q) {
			memmove(W.queries + i, W.queries + i + 1,
				(W.nqueries - i - 1) * sizeof(*W.queries));
			W.nqueries--;
			return;
		}
}

/* A RCPT it lets through goes where it says: itself. */
static void
route_rcpt(struct policy_query *q)
{
	struct policy_txn *t = q->txn;

	if (q->stage != POLICY_STAGE_RCPT || t->routed)
		return;
	policy_txn_rcpt_reset(t);
	t->expansion.targets = calloc(1, sizeof(*t->expansion.targets));
	CHECK(t->expansion.targets != NULL);
	t->expansion.targets[0].addr = strdup(t->rcpt.mailbox);
	CHECK(t->expansion.targets[0].addr != NULL);
	t->expansion.ntargets = 1;
	t->routed = 1;
}

/* how: the action (0-5), then a score (bits 3-4) and a tag (bit 5). */
static void
fake_answer(struct policy_query *q, uint8_t how)
{
	static const enum policy_action acts[] = { POLICY_CONTINUE, POLICY_CONTINUE,
		POLICY_ACCEPT, POLICY_TEMPFAIL, POLICY_REJECT, POLICY_DISCARD };
	static struct policy_verdict v;	/* big: not on the stack */
	enum policy_action a = acts[(how & 7) % 6];

	switch (a) {
	case POLICY_TEMPFAIL:
		policy_verdict_set(&v, a, COND_RCPT_NOT_ROUTED);
		break;
	case POLICY_REJECT:
		policy_verdict_set(&v, a, COND_ACCESS_RELAY_DENIED);
		break;
	default:
		if (a == POLICY_DISCARD)
			W.discarded = 1;
		policy_verdict_set(&v, a, COND__COUNT);
		route_rcpt(q);
		break;
	}
	if (v.cond != COND__COUNT) {
		CHECK(policy_verdict_param(&v, "client", "fuzz", 4) == 0);
		CHECK(policy_verdict_param(&v, "rcpt", "c@d", 3) == 0);
	}
	v.score = (how >> 3) & 3;
	if ((how >> 5) & 1)
		CHECK(policy_verdict_tag(&v, "X-Fuzz: tagged") == 0);
	policy_answer(q, &v);
}

static void
fake_ask(struct policy_query *q)
{
	if (W.auto_answer) {
		route_rcpt(q);
		policy_answer_continue(q);
		return;
	}
	CHECK(W.nqueries == 0);	/* at most one pending run, one query */
	W.queries[W.nqueries++] = q;
}

static void
fake_cancel(struct policy_query *q)
{
	query_unlink(q);
}

static const struct policy_check fake_check = {
	.name = "fake",
	.ask = { fake_ask, fake_ask, fake_ask, fake_ask, fake_ask, fake_ask },
	.cancel = fake_cancel,
};

/* The fake check, and the real checks that answer at once and need
 * nothing but the configuration. */
static const struct policy_check *const registry[] = {
	&fake_check, &policy_check_tls_required, &policy_check_auth_required,
	&policy_check_antispoof, &policy_check_size, &policy_check_limits,
	&policy_check_relay, &policy_check_content,
};

/* Stage st's list: the fake check where bit st of mask says so, and with
 * real (bit 6 of mask) the real checks of that stage around it. */
static void
chain_stage(struct policy_chain *c, enum policy_stage st, uint8_t mask)
{
	const char *names[8];
	size_t n = 0;
	int real = (mask >> 6) & 1;
	const char *err;
	size_t bad;

	if (real && st == POLICY_STAGE_MAIL) {
		names[n++] = "tls_required";
		names[n++] = "auth_required";
		names[n++] = "antispoof";
		names[n++] = "size";
	}
	if (real && st == POLICY_STAGE_RCPT)
		names[n++] = "limits";
	if ((mask >> st) & 1)
		names[n++] = "fake";
	if (real && st == POLICY_STAGE_RCPT)
		names[n++] = "relay";
	if (real && st == POLICY_STAGE_END_OF_DATA) {
		names[n++] = "size";
		names[n++] = "content";
	}
	if (n > 0 && policy_chain_set(c, st, names, n, &err, &bad) < 0) {
		fprintf(stderr, "chain: %s (%s)\n", err, names[bad]);
		__builtin_trap();
	}
}

/* ---- the client ------------------------------------------------------ */

static int
is_committed(const char *qid, size_t len)
{
	for (size_t i = 0; i < W.ncommitted && i < QIDS_MAX; i++)
		if (strlen(W.committed[i]) == len && memcmp(W.committed[i], qid, len) == 0) {
			W.committed[i][0] = '\0';	/* one 250 per commit */
			return 1;
		}
	return 0;
}

static int
was_started(const char *qid, size_t len)
{
	for (size_t i = 0; i < W.nstarted && i < QIDS_MAX; i++)
		if (strlen(W.started[i]) == len && memcmp(W.started[i], qid, len) == 0)
			return 1;
	return 0;
}

static void
reply_line_check(const char *l, size_t n)
{
	static const char q[] = "queued as ";

	if (W.trace)
		fprintf(stderr, "S: %.*s", (int)n, l);
	CHECK(n >= 5 && l[n - 2] == '\r');
	CHECK(l[0] >= '2' && l[0] <= '5' && l[1] >= '0' && l[1] <= '9' && l[2] >= '0' &&
	      l[2] <= '9' && (l[3] == ' ' || l[3] == '-'));
	if (n >= 4 && memcmp(l, "250 ", 4) == 0) {
		const char *at = memmem(l, n, q, sizeof(q) - 1);
		if (at != NULL) {
			const char *id = at + sizeof(q) - 1;
			size_t len = (size_t)(l + n - 2 - id);
			CHECK(is_committed(id, len) || (W.discarded && !was_started(id, len)));
		}
	}
}

/* Reads what the session wrote; checks every line. */
static void
client_read(void)
{
	char b[4096];

	while (W.client >= 0 && !W.eof) {
		ssize_t r = recv(W.client, b, sizeof(b), MSG_DONTWAIT);
		if (r == 0) {
			W.eof = 1;
			CHECK(W.line_len == 0);	/* the last reply was whole */
			break;
		}
		if (r < 0) {
			CHECK(errno == EAGAIN || errno == ECONNRESET);
			break;
		}
		for (ssize_t i = 0; i < r; i++) {
			CHECK(W.line_len < REPLY_LINE_MAX);
			W.line[W.line_len++] = b[i];
			if (b[i] == '\n') {
				reply_line_check(W.line, W.line_len);
				W.line_len = 0;
			}
		}
	}
}

static void
client_send(const void *p, size_t n)
{
	if (W.client < 0 || n == 0)
		return;
	/* A full socket drops the rest: the client is as rude as it likes. */
	(void)send(W.client, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* Runs the loop until nothing is left to do (bounded). */
static void
run_idle(void)
{
	for (int i = 0; i < 1000; i++) {
		client_read();
		int r = loop_step(W.loop);
		CHECK(r >= 0);
		if (r == 0)
			break;
	}
	client_read();
	CHECK(W.nqueries <= 1);
	CHECK(W.sinks_open <= 1 && W.commits <= 1);
}

/* ---- the server side ------------------------------------------------- */

static struct config *
config_get(void *server)
{
	(void)server;
	return config_ref(W.cfg[W.cfg_pick]);
}

static void
on_end(struct smtp_env *env, const struct sockaddr_storage *peer)
{
	(void)env;
	(void)peer;
	CHECK(!W.ended);
	W.ended = 1;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const small[] = {
		"limits.message_size=1024", "limits.line_length=998", "limits.errors=3",
		"limits.junk_commands=4", "limits.command_line=512",
		"limits.messages_per_session=2", "smtp.bare_lf=reject",
	};
	struct diag d;

	(void)argc;
	(void)argv;
	W.trace = getenv("FUZZ_TRACE") != NULL;
	log_set_min(W.trace ? LOG_SEV_INFO : LOG_SEV_CRIT);
	diag_init(&d);
	W.cfg[0] = config_load(NULL, NULL, 0, &d);
	W.cfg[1] = config_load(NULL, small, sizeof(small) / sizeof(small[0]), &d);
	if (W.cfg[0] == NULL || W.cfg[1] == NULL) {
		diag_print(&d, stderr);
		abort();
	}
	diag_fini(&d);
	return 0;
}

/* Canned commands, so the fuzzer reaches deep states quickly. */
static const char *const canned[] = {
	"EHLO client.example\r\n", "HELO client.example\r\n",
	"MAIL FROM:<a@example.org>\r\n", "MAIL FROM:<a@example.org> SIZE=100 BODY=8BITMIME\r\n",
	"RCPT TO:<b@example.com>\r\n", "RCPT TO:<c@example.net> NOTIFY=NEVER\r\n",
	"DATA\r\n", "Subject: x\r\n\r\nbody\r\n.\r\n", ".\r\n", "line\r\n",
	"BDAT 5\r\nhello", "BDAT 0 LAST\r\n", "BDAT 7 LAST\r\nabc\r\n.\r\n",
	"RSET\r\n", "NOOP\r\n", "QUIT\r\n", "STARTTLS\r\n", "AUTH PLAIN AGFAAGI=\r\n",
	"VRFY x\r\n", "HELP\r\n", "MAIL FROM:<>\r\n", "RCPT TO:<postmaster>\r\n",
};

static const uint64_t advances[] = { 1, 100, 1000, 5000, 30000, 61000, 301000, 600000 };

/* One operation at p (n bytes left); returns the bytes it took. */
static size_t
op_run(const uint8_t *p, size_t n)
{
	uint8_t op = p[0] % 13;
	uint8_t a = n > 1 ? p[1] : 0;
	size_t used = 2;

	switch (op) {
	case 0:		/* send a bytes of the script */
		used = 2 + (a < n - 2 ? a : n - 2);
		client_send(p + 2, used - 2);
		break;
	case 1:		/* send a canned command */
	case 2:
		client_send(canned[a % (sizeof(canned) / sizeof(canned[0]))],
			    strlen(canned[a % (sizeof(canned) / sizeof(canned[0]))]));
		break;
	case 3:		/* run the loop until idle */
		used = 1;
		run_idle();
		break;
	case 4:		/* release the oldest job */
		if (W.njobs > 0)
			job_release(0, a);
		break;
	case 5:		/* release the newest job */
		if (W.njobs > 0)
			job_release(W.njobs - 1, a);
		break;
	case 6:		/* the pending check answers */
		if (W.nqueries > 0) {
			struct policy_query *q = W.queries[0];
			query_unlink(q);
			fake_answer(q, a);
		}
		break;
	case 7:		/* the clock moves */
		W.now += advances[a % 8];
		loop_clock_pin(W.now);
		break;
	case 8:		/* the client half-closes (no more input) */
		used = 1;
		if (W.client >= 0)
			(void)shutdown(W.client, SHUT_WR);
		break;
	case 9:		/* the open sink fails its writes from now on */
		used = 1;
		if (W.open != NULL)
			W.open->write_fail = 1;
		break;
	case 10:	/* the check answers at once, or waits */
		W.auto_answer = a & 1;
		break;
	case 12:	/* release a chosen job (a: which, then the result) */
		if (W.njobs > 0 && n > 2) {
			job_release(a % W.njobs, p[2]);
			used = 3;
		}
		break;
	case 11:	/* the client goes away */
		if (W.client >= 0 && (a & 1)) {
			close(W.client);
			W.client = -1;
		}
		break;
	}
	return used < n ? used : n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *p, size_t n)
{
	static const enum config_role roles[] = { CONFIG_ROLE_MX, CONFIG_ROLE_SUBMISSION,
						  CONFIG_ROLE_MX, CONFIG_ROLE_SUBMISSIONS };
	int sv[2];

	if (n < 2)
		return 0;
	memset(&W.env, 0, sizeof(W.env));
	W.cfg_pick = (p[0] >> 2) & 1;
	W.auto_answer = (p[0] >> 3) & 1;
	W.ended = W.eof = W.discarded = 0;
	W.open = NULL;
	W.njobs = W.nqueries = W.sinks_open = W.commits = W.ncommitted = W.nstarted = 0;
	W.line_len = 0;
	W.now = 1000000;
	loop_clock_pin(W.now);
	memset(&W.lst, 0, sizeof(W.lst));
	W.lst.name = (char *)"fuzz";
	W.lst.role = roles[p[0] & 3];
	W.lst.plaintext_on_loopback = -1;
	W.loop = loop_new();
	CHECK(W.loop != NULL);
	/* Which stages ask the fake check (bits 0-5 of p[1]) and whether
	 * the real checks join (bit 6); bit 7 sets a score limit. */
	W.chain = policy_chain_new(registry, sizeof(registry) / sizeof(registry[0]), 2000,
				   COND_POLICY_CHECK_TIMEOUT);
	for (int st = 0; st < POLICY_STAGE__COUNT; st++)
		chain_stage(W.chain, (enum policy_stage)st, p[1]);
	if (p[1] & 0x80)
		policy_chain_set_score_limit(W.chain, 1, COND_POLICY_SCORE_REJECT);
	W.env.loop = W.loop;
	W.env.config_get = config_get;
	W.env.on_end = on_end;
	W.env.chain = W.chain;
	W.env.sink_new = sink_new;
	loop_set_data(W.loop, &W.env);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
	W.client = sv[0];
	smtp_session_start(&W.env, sv[1], &W.lst, 1);
	run_idle();

	for (size_t i = 2; i < n;) {
		i += op_run(p + i, n - i);
		client_read();
		CHECK(W.nqueries <= 1);
	}

	/* The end: the client leaves, every job and check is let go, the
	 * clock runs past every deadline; the session must end and free. */
	W.auto_answer = 1;
	if (W.client >= 0)
		(void)shutdown(W.client, SHUT_WR);
	for (int round = 0; round < 50 && (W.env.table.live > 0 || W.njobs > 0); round++) {
		while (W.nqueries > 0) {
			struct policy_query *q = W.queries[0];
			query_unlink(q);
			fake_answer(q, 0);
		}
		while (W.njobs > 0)
			job_release(0, 0);
		run_idle();
		W.now += 600000;
		loop_clock_pin(W.now);
		run_idle();
	}
	CHECK(W.env.table.live == 0);
	CHECK(W.ended);
	run_idle();
	CHECK(W.njobs == 0 && W.sinks_open == 0 && W.commits == 0);
	if (W.client >= 0)
		close(W.client);
	smtp_env_fini(&W.env);
	policy_chain_free(&W.chain);
	loop_free(&W.loop);
	loop_clock_pin(0);
	return 0;
}
