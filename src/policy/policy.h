/*
 * policy.h - the policy chain: ordered check modules asked at each stage
 * of a session, answering at once or later, within a deadline.
 *
 * A check is a module with one entry point per stage it cares about
 * (struct policy_check). A chain holds, for one configuration generation,
 * the ordered checks of every stage. A run asks one stage's checks in
 * order for one command and ends with one result: the first verdict that
 * decides (accept, tempfail, reject, discard), or none. The session knows
 * no check: it copies the command into its transaction, starts a run, and
 * sends the reply the result names when the run is done.
 *
 * Threads: everything here runs on the loop thread of the run. A check
 * that works elsewhere (a worker, a DNS query) keeps its query and answers
 * later on that loop thread; the chain arms a deadline meanwhile.
 */
#ifndef POSTERN_POLICY_H
#define POSTERN_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "config.h"
#include "buf.h"
#include "kv.h"
#include "loop.h"
#include "directory.h"

struct dns_resolver;
struct peername;
struct sockaddr_storage;
struct uri_scan;

enum policy_stage {
	POLICY_STAGE_CONNECT,	/* before the greeting */
	POLICY_STAGE_HELO,
	POLICY_STAGE_MAIL,
	POLICY_STAGE_RCPT,
	POLICY_STAGE_DATA,	/* DATA or the first BDAT */
	POLICY_STAGE_END_OF_DATA,
	POLICY_STAGE__COUNT
};

/* "connect", "helo", "mail", "rcpt", "data", "end_of_data". */
const char *policy_stage_name(enum policy_stage stage);

enum policy_action {
	POLICY_CONTINUE,	/* no decision: ask the next check */
	POLICY_ACCEPT,		/* this stage is decided: the rest are skipped */
	POLICY_TEMPFAIL,	/* 4xx with the verdict's condition */
	POLICY_REJECT,		/* 5xx with the verdict's condition */
	POLICY_DISCARD,		/* take the message, deliver it nowhere */
};

const char *policy_action_name(enum policy_action action);

#define POLICY_PARAMS_MAX 6
#define POLICY_TEXT_MAX 1536	/* param values and the header, NUL-ended */
#define POLICY_HEADER_MAX 998	/* RFC 5322 2.1.1, CRLF excluded */
#define POLICY_HEADERS_MAX 16384	/* all tags of one transaction */

/* What one check says. Besides its action a verdict may tag (a header
 * field to add to the message) and score (points added to the
 * transaction; the chain turns a sum past its limit into a reject).
 * Parameter values and the header are copied into text, so a verdict
 * outlives whatever it was made from; a value that no longer fits is cut
 * (the catalog cuts each to 256 octets anyway). */
struct policy_verdict {
	enum policy_action action;
	enum cond_id cond;	/* reply and log row; COND__COUNT: none */
	int score;
	size_t nparams;
	const char *keys[POLICY_PARAMS_MAX];	/* static: catalog param names */
	uint16_t values[POLICY_PARAMS_MAX];	/* offsets into text */
	uint16_t lens[POLICY_PARAMS_MAX];
	uint8_t kinds[POLICY_PARAMS_MAX];	/* POLICY_PARAM_* */
	uint16_t header;	/* offset into text; 0: no header */
	uint16_t used;		/* octets of text in use */
	char text[POLICY_TEXT_MAX];
};

#define POLICY_PARAM_TEXT 0
#define POLICY_PARAM_ADDR 1	/* shown in angle brackets (KV_ADDR) */
#define POLICY_PARAM_NONE 2	/* absent (KV_STR with NULL): not logged */

/* Sets action and cond; clears params, score and header. */
void policy_verdict_set(struct policy_verdict *v, enum policy_action action,
			enum cond_id cond);
/* Adds a parameter (value copied; cut to what text has left, at most 256
 * octets). -1 when POLICY_PARAMS_MAX are already there. */
int policy_verdict_param(struct policy_verdict *v, const char *key, const char *value,
			 size_t len) WARN_UNUSED;
int policy_verdict_param_u64(struct policy_verdict *v, const char *key,
			     uint64_t value) WARN_UNUSED;
/* Adds every kv as a parameter, keeping its kind (numbers as text). -1
 * when they are more than POLICY_PARAMS_MAX. */
int policy_verdict_kvs_add(struct policy_verdict *v, const struct kv *kvs, size_t n) WARN_UNUSED;
/* The header field to add; -1 if too long, not one line, or no room. */
int policy_verdict_tag(struct policy_verdict *v, const char *field) WARN_UNUSED;
/* The parameters as kvs for catalog_reply/catalog_log; returns the count.
 * The kvs borrow from v. */
const char *policy_verdict_value(const struct policy_verdict *v, size_t i);
/* The header field to add, or NULL. */
const char *policy_verdict_header(const struct policy_verdict *v);
size_t policy_verdict_kvs(const struct policy_verdict *v, struct kv out[POLICY_PARAMS_MAX]);

/* A path (MAIL FROM, RCPT TO) as the transaction keeps it: copied from
 * the command before any check runs, so nothing borrows the input. */
struct policy_path {
	char *mailbox;		/* owned: "local@domain" as given, "" for <> */
	char *local;		/* owned: the local part, unquoted */
	char *domain;		/* owned: "" when none (<postmaster>, <>) */
	int is_null;		/* <> */
	int is_postmaster;	/* <postmaster> without a domain */
	int non_ascii;		/* UTF-8 in the address */
};

/* What the DATA decoder counted, for the end-of-data checks. */
struct policy_content {
	uint64_t size;		/* message octets (after dot-unstuffing) */
	uint64_t bare_lf;	/* bare LFs seen (normalised or not) */
	uint64_t first_bare_lf;	/* offset of the first one */
	int line_too_long;	/* a line past limits.line_length */
	uint64_t longest_line;
	unsigned received;	/* Received: fields in the header */
	char msgid[256];	/* Message-ID, "" if none */
	const struct uri_scan *uris;	/* the links' domains (uri_scan.h), borrowed
					 * from the session; NULL: not scanned */
};

/* A final destination of an accepted recipient, in the order the session
 * added it to the message (the spool's recipient order). An end-of-data
 * check sets drop to take it out of the message before the commit: the
 * client still gets 250 for the message; a message whose destinations
 * are all dropped is discarded (the check answers discard). */
struct policy_dest {
	char *addr;		/* owned: "local@domain" */
	int drop;
};

/* Work a check leaves for when the message's fate is known (policy_txn_
 * after): fn(arg, 1) once the message is durable in the spool, fn(arg, 0)
 * when it is not (refused, discarded, the commit failed, the transaction
 * ended). fn owns arg. It runs on the loop thread of the session, maybe
 * after the session ended. */
typedef void (*policy_after_fn)(void *arg, int committed);
#define POLICY_AFTER_MAX 4
struct policy_afters {
	size_t n;
	policy_after_fn fn[POLICY_AFTER_MAX];
	void *arg[POLICY_AFTER_MAX];
};

/* One check asked at one stage, as the message summary line shows it
 * (SESSION-MESSAGE checks=). At most POLICY_TRACE_MAX per transaction;
 * later ones are only counted. */
#define POLICY_TRACE_MAX 32
#define POLICY_TRACE_TEXT_MAX 2048	/* the formatted list, NUL included */

struct policy_trace {
	const char *check;	/* static: the check's name */
	uint32_t ms;		/* from asking to the answer, loop time */
	int score;		/* points it added */
	uint8_t stage;		/* enum policy_stage */
	uint8_t action;		/* enum policy_action */
	uint8_t tagged;		/* it added a header field */
};

/* The transaction as checks see it. The session owns it and fills it
 * before each stage; checks read it and fill its output slots (the
 * recipient's expansion and route); the chain adds up scores and tags. */
struct policy_txn {
	/* the session: set at connect, updated by HELO, STARTTLS, AUTH */
	const struct config *cfg;	/* the generation the transaction began with */
	const struct config_listener *lst;	/* NULL: none (tests) */
	const char *client;		/* the client's address as text */
	const struct sockaddr_storage *peer;	/* the client's address, or NULL */
	struct dns_resolver *dns;	/* the session's loop's resolver (net/dns.h),
					 * for checks that ask the DNS; NULL: none */
	const char *sid;		/* the session's id for log lines, or NULL */
	struct peername *peername;	/* the client's verified name (peername.h),
					 * the session's; NULL: none (tests) */
	int trusted;			/* in server.trusted_networks */
	int dnswl;			/* listed at a [dnswl.NAME] list (policy_dnsl.c):
					 * checks that honour allow lists skip */
	int tls;			/* TLS is on */
	const char *auth_user;		/* authenticated identity, "" if none */
	const char *helo;		/* HELO/EHLO argument, "" before it */
	int access_ok;			/* an access-map OK (policy_access.c): 1 at
					 * connect or HELO (the session), 2 at MAIL
					 * (this transaction; reset clears it) */
	int access_discard;		/* an access-map DISCARD at connect or HELO:
					 * the session's messages are discarded */
	unsigned messages;		/* messages accepted in this session */
	int simulate;			/* postern simulate: checks write no state */
	/* MAIL */
	struct policy_path sender;
	int has_size;
	uint64_t size;			/* SIZE= */
	int smtputf8;
	/* RCPT: the one being judged, and how many were accepted */
	struct policy_path rcpt;
	unsigned nrcpt_ok;
	unsigned nrcpt_exempt;		/* of those, exempt from DNS lists
					 * (policy_rcpt_exempt) */
	/* RCPT output slots: where the recipient goes (a check that routes
	 * it fills expansion, with cond COND__COUNT, and route) */
	struct resolve_result expansion;
	int routed;
	char route[40];
	const char *flag;	/* a word for the session's flags, or NULL */
	/* local mailboxes of the accepted recipients (end-of-data quota);
	 * accounts belong to cfg */
	const struct account **local_accts;	/* owned array */
	char **local_boxes;			/* owned */
	size_t nlocal;
	/* the accepted recipients' final destinations (end of data may drop
	 * some before the commit) */
	struct policy_dest *dests;	/* owned array */
	size_t ndests;
	/* end of data */
	struct policy_content content;
	struct policy_afters after;	/* to run when the message's fate is known */
	/* SPF said pass for the MAIL FROM identity (policy_spf.c) */
	int spf_pass;
	/* DNS block lists tagged or scored this transaction (once) */
	int dnsbl_counted;
	/* added up by the chain */
	int score;
	struct policy_trace trace[POLICY_TRACE_MAX];	/* checks asked, in order */
	size_t ntrace;
	unsigned trace_dropped;		/* asked past POLICY_TRACE_MAX */
	struct buf headers;	/* tags: "Name: value\r\n", at most POLICY_HEADERS_MAX */
};

void policy_txn_init(struct policy_txn *txn);
void policy_txn_fini(struct policy_txn *txn);
/* A new transaction (MAIL, after RSET or a message): the envelope, the
 * recipients, the content, the score and the tags are cleared; the
 * session fields stay. */
void policy_txn_reset(struct policy_txn *txn);
/* Copies a path into the transaction's slot (frees what was there). */
void policy_path_set(struct policy_path *p, const char *mailbox, size_t mailbox_len,
		     const char *local, size_t local_len, const char *domain,
		     size_t domain_len);
void policy_path_clear(struct policy_path *p);
/* Clears the RCPT output slots before the next RCPT. */
void policy_txn_rcpt_reset(struct policy_txn *txn);
/* Records one check's answer (the chain calls it for every answer). */
void policy_txn_trace_add(struct policy_txn *txn, enum policy_stage stage, const char *check,
			  enum policy_action action, uint64_t ms, int score, int tagged);
/* The recorded answers as "stage:check=verdict[+tag][+scoreN]/Nms,...",
 * stages connect, helo, mail, rcpt, data, eod, then ",dropped:N" when
 * some were not recorded or did not fit; always NUL-ended within size.
 * Returns the length. */
size_t policy_txn_trace_format(const struct policy_txn *txn, char *out, size_t size);
/* 1 when the recipient is <postmaster>, or postmaster@ or abuse@ of a
 * local domain: exempt from DNS lists, greylisting and SPF refusals
 * (RFC 5321 4.5.1). */
int policy_rcpt_exempt(const struct policy_txn *t);
struct state;
struct policy_query;
/* The shared state store (store/state.h) of the checks that keep state
 * (greylisting, rates, duplicates): set once before the loops run, NULL
 * after state_close. Without one those checks pass everything. */
void policy_state_set(struct state *st);
struct state *policy_state(void);
/* What a check does when its state request failed (policy_state.c):
 * logs nothing; returns 1 when it fails closed (per_check: the check's
 * on_state_error option, "" to follow state.on_error), and then answers
 * q with 451 4.3.0 POLICY-STATE-UNAVAILABLE; 0 when it fails open (the
 * caller goes on as if nothing was found). */
int policy_state_fail(struct policy_query *q, const char *check, const char *per_check,
		      const char *err);

/* Remembers a final destination of an accepted recipient (txn->dests). */
void policy_txn_add_dest(struct policy_txn *txn, const char *addr);
/* Leaves fn(arg, committed) for when the message's fate is known. -1 when
 * POLICY_AFTER_MAX are already there: fn will not run, arg stays the
 * caller's. */
int policy_txn_after(struct policy_txn *txn, policy_after_fn fn, void *arg) WARN_UNUSED;
/* Moves txn's afters to *out (the commit runs them later); txn has none. */
void policy_afters_take(struct policy_txn *txn, struct policy_afters *out);
/* Runs every after of a with committed, and forgets them. */
void policy_afters_run(struct policy_afters *a, int committed);
struct state_req;
struct state_op;
/* A state request's cancel for a job that is one allocation, req's arg:
 * frees it (the store closed with the request pending, at shutdown). */
void policy_state_drop(struct state_req *req);
/* Submits a check's read for q on q's loop: req gets ops, done, job (its
 * arg) and policy_state_drop as its cancel, and q->check_data = job while
 * it is out. -1 when the store
 * refused it (nothing submitted, check_data cleared): the caller frees
 * job and answers q itself. */
int policy_state_submit(struct policy_query *q, struct state_req *req, struct state_op *ops,
			size_t nops, void (*done)(struct state_req *req), void *job) WARN_UNUSED;

/* Remembers a local mailbox of an accepted recipient (end-of-data quota). */
void policy_txn_add_local(struct policy_txn *txn, const struct account *acct,
			  const char *mailbox);

struct policy_run;

/* One question to one check at one stage. The check answers it exactly
 * once with policy_answer(), either before its entry point returns or
 * later on the same loop thread, unless the chain cancels it first. */
struct policy_query {
	struct policy_run *run;
	enum policy_stage stage;
	struct policy_txn *txn;
	void *session;		/* the protocol side's context (opaque here) */
	void *check_data;	/* the check's own, while the query is pending */
	int pending;		/* asked and not yet answered or cancelled */
};

/* What the session tells the chain once it took something (after its
 * 250), for checks that count what was accepted, not what was asked. */
enum policy_event {
	POLICY_EVENT_RCPT_ACCEPTED,	/* txn->rcpt was accepted */
	POLICY_EVENT_MESSAGE_ACCEPTED,	/* the message is committed (or discarded) */
};

struct policy_check {
	const char *name;	/* as written in the [policy] lists */
	/* One entry point per stage; NULL where the check has nothing to say
	 * (naming it in that stage's list is then a configuration error). */
	void (*ask[POLICY_STAGE__COUNT])(struct policy_query *q);
	/* The chain gives up on a pending q (deadline, session end): after
	 * this returns the check must not answer q. NULL for checks that
	 * always answer before their entry point returns. */
	void (*cancel)(struct policy_query *q);
	/* What a deadline means: 0 tempfails the command with the chain's
	 * deadline condition; 1 (fail open, for advisory checks) goes on to
	 * the next check as if this one had said continue. */
	int fail_open;
	/* The session accepted something (ev) in txn, on loop; NULL for
	 * checks that count nothing. Called only for checks in some stage of
	 * the session's chain; must not block (a state write is queued). */
	void (*accepted)(struct policy_txn *txn, enum policy_event ev, struct loop *loop);
};

/* Answers q. Ignored when q is not pending (answered or cancelled). */
void policy_answer(struct policy_query *q, const struct policy_verdict *v);
/* Answers q with action and cond, its params from kvs (at most
 * POLICY_PARAMS_MAX). */
void policy_answer_cond(struct policy_query *q, enum policy_action action, enum cond_id cond,
			const struct kv *kvs, size_t n);
/* Answers q with a refusal: tempfail when cond's reply is 4xx, reject
 * when 5xx. */
void policy_refuse(struct policy_query *q, enum cond_id cond, const struct kv *kvs, size_t n);
/* Answers q: continue. */
void policy_answer_continue(struct policy_query *q);

/* ---- chains ----------------------------------------------------------- */

struct policy_chain;

/* An empty chain over the checks of registry (borrowed, static). Queries
 * not answered within deadline_ms end as the check's on_deadline says,
 * with deadline_cond (params: check, stage). */
struct policy_chain *policy_chain_new(const struct policy_check *const *registry,
				      size_t nregistry, uint64_t deadline_ms,
				      enum cond_id deadline_cond);
void policy_chain_free(struct policy_chain **chainp);

/* Sets stage's checks, in order, by name. -1 with *error_out (static text
 * naming the problem) and *bad_out (the index of the name) for an unknown
 * name, a check that has no entry for the stage, or a name given twice;
 * the stage is then unchanged. */
int policy_chain_set(struct policy_chain *chain, enum policy_stage stage,
		     const char *const *names, size_t n, const char **error_out,
		     size_t *bad_out) WARN_UNUSED;
/* Tells every check of the chain that has an accepted entry (once each,
 * whatever its stages) that the session accepted ev in txn. */
void policy_chain_accepted(const struct policy_chain *chain, struct policy_txn *txn,
			   enum policy_event ev, struct loop *loop);
/* Number of checks at stage. */
size_t policy_chain_count(const struct policy_chain *chain, enum policy_stage stage);

/* A transaction whose score reaches limit is refused with cond (params:
 * score, limit) at the stage that reached it. 0 turns it off (default). */
void policy_chain_set_score_limit(struct policy_chain *chain, int limit, enum cond_id cond);

/* ---- configuration -------------------------------------------------- */

/* The config_attach_fn of this layer: builds the chain of the [policy]
 * lists, and one per listener with policy_<stage> keys, into cfg->policy;
 * a list naming an unknown check, or a check at a stage it has nothing to
 * say at, is an error at that option's line. The stage order is the
 * enum's, which config_policy_stages follows. */
void policy_attach(struct config *cfg, struct config_load *ld, struct diag *diags);
/* The chain for a session of lst under cfg (cfg->policy must be set). */
const struct policy_chain *policy_chain_of(const struct config *cfg,
					   const struct config_listener *lst);

/* ---- runs ------------------------------------------------------------- */

typedef void (*policy_done_fn)(struct policy_run *run, void *arg);
/* Sees every answer a run takes, in order, before it counts (postern
 * simulate): the check's name, its verdict, and its time in ms. */
typedef void (*policy_observe_fn)(void *arg, enum policy_stage stage, const char *check,
				  const struct policy_verdict *v, uint64_t ms);

/* One stage's pass over the chain. Embedded in the session; touch only
 * through the functions below, except to read the result when done. */
struct policy_run {
	/* result, valid in the done callback and until the next start */
	enum policy_action action;	/* POLICY_CONTINUE: nobody decided */
	struct policy_verdict verdict;	/* the deciding verdict */
	const char *decided_by;		/* its check's name, NULL if none */
	/* private */
	const struct policy_chain *chain;
	struct loop *loop;
	enum policy_stage stage;
	size_t next;		/* index of the check being asked */
	uint64_t asked_ms;	/* loop time it was asked at */
	int running;
	int asking;		/* inside a check's entry point */
	int answered;		/* the current query was answered in it */
	struct policy_query query;
	struct loop_timer deadline;
	policy_done_fn done;
	void *arg;
	policy_observe_fn observe;	/* NULL: none (policy_run_observe) */
	void *observe_arg;
};

void policy_run_init(struct policy_run *run);
/* Asks stage's checks in order for txn. done(run, arg) runs once when a
 * check decides or every check said continue; it may run before this
 * returns when every check answers at once. The chain must outlive the
 * run. */
void policy_run_start(struct policy_run *run, struct loop *loop,
		      const struct policy_chain *chain, enum policy_stage stage,
		      struct policy_txn *txn, void *session, policy_done_fn done, void *arg);
/* Stops a running run without calling done (the session is ending): a
 * pending check is cancelled. No-op when not running. */
void policy_run_cancel(struct policy_run *run);
int policy_run_running(const struct policy_run *run);
/* Every answer the run takes from now on is shown to fn (NULL: none). */
void policy_run_observe(struct policy_run *run, policy_observe_fn fn, void *arg);
/* 1 if the run refused (tempfail or reject). */
int policy_run_refused(const struct policy_run *run);
/* The deciding verdict's condition and its params as kvs (borrowing from
 * run): a check that refused without naming a condition is a bug, shown
 * as INTERNAL-ERROR (params where, detail). */
enum cond_id policy_run_cond(const struct policy_run *run, struct kv kvs[POLICY_PARAMS_MAX],
			     size_t *n);

#endif
