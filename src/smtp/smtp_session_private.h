/*
 * smtp_session_private.h - the SMTP session's insides, shared only by the
 * files of src/smtp/ (smtp_session.c, smtp_cmd.c, smtp_cmd_auth.c).
 *
 * Everything outside src/smtp/ uses smtp_session.h.
 */
#ifndef POSTERN_SMTP_SESSION_PRIVATE_H
#define POSTERN_SMTP_SESSION_PRIVATE_H

#include <stdint.h>

#include "metrics.h"
#include "catalog.h"
#include "buf.h"
#include "hash.h"
#include "log.h"
#include "directory.h"
#include "net_conn.h"
#include "net_session.h"
#include "net_tls.h"
#include "peername.h"
#include "policy.h"
#include "smtp_data.h"
#include "smtp_parse.h"
#include "smtp_session.h"
#include "uri_scan.h"
#include "body_sink.h"

#define OUT_HIGH_WATER (256 * 1024)	/* stop reading commands past this */
#define OUT_MAX (1024 * 1024)
#define REPLY_MAX 1024
#define FLAGS_MAX 128

enum smtp_state {
	SMTP_STATE_INIT,	/* greeted; no HELO/EHLO yet */
	SMTP_STATE_READY,	/* HELO/EHLO done; no transaction */
	SMTP_STATE_MAIL,	/* MAIL accepted; RCPT, DATA, BDAT may follow */
	SMTP_STATE_DATA,	/* receiving DATA */
	SMTP_STATE_BDAT,	/* receiving a BDAT chunk */
	SMTP_STATE_COMMIT,	/* waiting for the spool */
	SMTP_STATE_CLOSING,	/* last reply queued; close once flushed */
	SMTP_STATE_TLS,		/* TLS handshake under way */
	SMTP_STATE__COUNT
};


struct txn {
	char tid[40];
	struct spool_msg *msg;	/* owned until handed to the spool */
	unsigned nrcpt_ok;
	unsigned nrcpt_bad;
	unsigned nrcpt_tried;
	int smtputf8;
	int chunking;		/* BDAT seen in this transaction */
	int data_started;	/* DATA or first BDAT accepted */
	size_t hdr_len;		/* length of our Received field in the data */
	uint64_t message_size;	/* counted message octets (DATA or BDAT) */
	struct smtp_data dec;
	struct smtp_scan scan;
	struct uri_scan *uris;	/* owned: the links, for check uribl; NULL: none */
	uint64_t bdat_left;	/* octets of the current chunk still to read */
	uint64_t bdat_chunk;	/* size of the current chunk */
	int bdat_last;
	int bdat_discard;	/* refused chunk: read and drop */
	enum cond_id bdat_refusal;
	uint64_t started_ms;
	struct buf rcpt_list;	/* "<a@x>,<b@y>" for SESSION-MESSAGE */
	struct hash targets;	/* msg->rcpts by address: de-duplication */
	int discard;		/* a check said discard: 250, then drop it */
	int bdat_by_policy;	/* the refused chunk's reply is s->run's verdict */
	/* The data streams to a body sink (the spool's file) through body,
	 * a bounded buffer: no message is ever whole in memory. */
	struct body_sink *sink;	/* owned until committed */
	struct buf body;	/* decoded data not yet written (bounded) */
	uint64_t body_stored;	/* data bytes handed to the sink */
	uint64_t body_max;	/* data bytes the message may hold */
	void (*opened)(struct smtp_session *s, int status, enum cond_id cond);
	int sink_failed;	/* BDAT: the sink did not open; reply cond */
};

/* The parts of the MAIL or RCPT being judged that the checks do not see
 * but the reply, the summary and the spool need: copied from the command
 * before the chain runs, so nothing borrows the input buffer meanwhile. */
struct smtp_pending {
	int body;		/* SMTP_BODY_* */
	int ret;		/* SMTP_RET_* */
	char *envid;		/* owned, NULL if none */
	unsigned notify;	/* SMTP_NOTIFY_* */
	char *orcpt;		/* owned, NULL if none */
};

struct smtp_session {
	struct smtp_env *env;
	struct config *cfg;	/* reference, for the whole session */
	/* The session core (net/net_session.h) drives conn, in, in_off and
	 * out: reading, flushing, the event mask, the deadline, TLS. */
	struct net_session ns;
	struct conn conn;
	size_t slot;		/* ns.slot and ns.gen, for building handles */
	unsigned gen;
	char sid[17];
	enum smtp_state state;
	int dead;		/* ended; freed by a deferred call */
	struct buf in;		/* released by the core while idle */
	size_t in_off;		/* bytes of in already taken (buf_unread) */
	struct buf out;		/* released by the core while idle */
	uint64_t started_ms;
	unsigned long sessions_now;	/* for SESSION-START, logged after the preface */
	char helo[256];
	int ehlo;
	int trusted;
	int ip_slot;		/* holds a limits.connections_per_ip slot for conn.peer */
	int greet_wait;		/* smtp.greet_pause runs: the greeting waits */
	int triage;		/* the pre-greeting checks apply (smtp_triage.c) */
	int triage_asking;	/* the pass cache is asked: input is held */
	unsigned errors;
	unsigned junk;		/* NOOP, RSET, HELP, VRFY since the last message */
	uint64_t active_ms;	/* last command that did work: the deadline's start */
	uint64_t cmd_t0_us;	/* a command line (or the end of data) was complete at
				 * this time, its reply not queued yet; 0: none */
	unsigned txn_count;
	unsigned msgs_ok;
	unsigned msgs_tried;
	unsigned rcpts_ok;
	unsigned rcpts_bad;
	unsigned rejects;
	char flags[FLAGS_MAX];
	char last_reply[REPLY_MAX];
	char last_reject[REPLY_MAX];
	enum cond_id end_cause;
	struct txn txn;
	int in_txn;
	int busy;		/* a command waits on a worker: hold input */
	int tls;		/* TLS active (STARTTLS done or implicit) */
	int tls_implicit;	/* the listener speaks TLS from the start */
	const struct config_listener *lst;	/* the listener (boot config) */
	void *auth;		/* owned by smtp_cmd_auth.c: a SASL exchange */
	char auth_user[320];	/* authenticated identity, "" if none */
	/* The policy chain: the transaction as the checks see it, the run in
	 * progress (s->busy holds input while it waits), and what to do with
	 * its result. */
	const struct policy_chain *chain;
	struct policy_txn ptxn;
	struct policy_run run;
	void (*decided)(struct smtp_session *s);
	struct smtp_pending pend;
	/* The client's verified name (smtp.peername_lookup), started at
	 * connect; the data waits for it for our Received field. */
	struct peername peername;
	struct peername_wait data_wait;
};


/* ---- shared by the files of src/smtp/ --------------------------------- */

/* Pre-greeting triage (smtp_triage.c). begin: 1 when the greeting waits
 * smtp.greet_pause (the session's deadline is the pause's). input: the
 * pause runs and input came, so the client is refused (early talker);
 * 1 then. pause_over: the pause passed quietly; greets. line: before a
 * command line runs while s->triage: 1 when it was HELO/EHLO with more
 * input behind it (refused); a clean HELO/EHLO remembers the client. */
int smtp_triage_begin(struct smtp_session *s);
int smtp_triage_input(struct smtp_session *s);
void smtp_triage_pause_over(struct smtp_session *s);
int smtp_triage_line(struct smtp_session *s, const uint8_t *line, size_t len);

/* Replies (smtp_session.c). A refusal (4xx/5xx) is logged as its own
 * event; smtp_session_refuse also counts it toward limits.errors. */
int smtp_session_reply(struct smtp_session *s, enum cond_id cond, const struct kv *kvs,
		       size_t nkv);
void smtp_session_refuse(struct smtp_session *s, enum cond_id cond, const struct kv *kvs,
			 size_t nkv);
/* The reply for cond (more: a multi-line reply follows); log_refusal 0
 * for a failure already logged where it happened (the spool's). */
int smtp_reply_emit(struct smtp_session *s, enum cond_id cond, const struct kv *kvs, size_t nkv,
		    int more, int log_refusal);
/* The first line of a multi-line reply (more_follow) / one more line. */
int smtp_reply_more(struct smtp_session *s, enum cond_id cond, const struct kv *kvs, size_t nkv,
		    int more_follow);
void smtp_reply_line(struct smtp_session *s, int code, int more, const char *text);
/* Counts an error (limits.errors) / a junk command (limits.junk_commands);
 * 1 when the session is closing because of it. */
int smtp_count_error(struct smtp_session *s);
int smtp_count_junk(struct smtp_session *s);
/* Ends the session now (SESSION-END with cause); it is freed later. */
void smtp_session_end(struct smtp_session *s, enum cond_id cause);
/* A command that did work: the command deadline starts again. */
void smtp_session_active(struct smtp_session *s);
const char *smtp_state_name(enum smtp_state st);
void smtp_session_log_ctx(const struct smtp_session *s, struct log_ctx *ctx);
/* Adds a word to the session's flags (SESSION-END). */
void smtp_session_flag(struct smtp_session *s, const char *flag);
/* A value for posting work to a thread and finding the session again
 * when it comes back: NULL then if the session ended meanwhile. */
uintptr_t smtp_session_handle(const struct smtp_session *s);
struct smtp_session *smtp_session_by_handle(struct smtp_env *env, uintptr_t handle);
/* After s->busy went back to 0: handle waiting input and flush. */
void smtp_session_resume(struct smtp_session *s);

/* The policy chain and the transaction (smtp_cmd.c). smtp_ask runs
 * stage's checks; decided(s) runs with the result in s->run, at once or
 * later (input is held meanwhile). */
void smtp_ask(struct smtp_session *s, enum policy_stage stage,
	      void (*decided)(struct smtp_session *s));
int smtp_run_refused(const struct smtp_session *s);
enum cond_id smtp_run_cond(const struct smtp_session *s, struct kv kvs[POLICY_PARAMS_MAX],
			   size_t *n);
/* Refuses the command with the run's deciding verdict; returns its
 * condition. */
enum cond_id smtp_refuse_verdict(struct smtp_session *s);
/* A command's path copied into a transaction slot (unquoted local part);
 * -1 (the slot with the mailbox only) when it does not fit. */
int smtp_path_copy(struct policy_path *slot, const struct smtp_path *p);
/* What the DATA decoder and scanner counted, as the end-of-data checks see
 * it: size octets (past limit when the decoder stopped storing). */
void smtp_content_set(struct policy_content *c, const struct smtp_data *dec,
		      const struct smtp_scan *scan, uint64_t size, uint64_t limit);
/* 1 when a [dnsbl.NAME] list of type uri is configured; the scanner's
 * tap that feeds the link extractor (uri_scan.h) its octets. */
int smtp_uribl_configured(const struct config *cfg);
void smtp_uri_tap(void *arg, const uint8_t *p, size_t n);
/* The keys of a command the parser refused with err (at most 4; verb gets
 * the line's first octets); returns the count. */
size_t smtp_parse_refusal_kvs(const char *client, const char *state, const struct smtp_cmd *cmd,
			      enum cond_id err, const uint8_t *line, size_t len, char verb[17],
			      struct kv kv[4]);
/* The connect stage, then the greeting. */
void smtp_greet(struct smtp_session *s);
void smtp_pending_clear(struct smtp_pending *p);
void smtp_txn_begin(struct smtp_session *s);
void smtp_txn_free(struct smtp_session *s);
/* SESSION-MESSAGE for the transaction that just ended. */
void smtp_txn_summary(struct smtp_session *s, const char *verdict, enum cond_id cause);
/* SESSION-MAIL / SESSION-RCPT for a command refused before the checks. */
void smtp_mail_summary_cmd(struct smtp_session *s, const struct smtp_cmd *cmd, enum cond_id cause);
void smtp_rcpt_summary_cmd(struct smtp_session *s, const struct smtp_cmd *cmd, enum cond_id cause);
/* The message (smtp_message.c): SESSION-DATA; the data as it arrives in
 * DATA and BDAT states; a BDAT the parser refused (its chunk is read and
 * dropped, or, without a size, the session closes). */
void smtp_data_summary(struct smtp_session *s, enum cond_id cause);
void smtp_data_input(struct smtp_session *s);
void smtp_bdat_input(struct smtp_session *s);
void smtp_bdat_parse_refused(struct smtp_session *s, const struct smtp_cmd *cmd);
/* The ESMTP extensions this session offers (SMTP_EXT_* bits; none after
 * HELO), for the parser. */
unsigned smtp_offered_extensions(const struct smtp_session *s);
/* 1 when a TLS context is in force (checked per EHLO). */
int smtp_tls_available(struct smtp_session *s);

/* Command handlers: smtp_cmd.c, DATA/BDAT in smtp_message.c, STARTTLS in
 * smtp_session.c,
 * AUTH in smtp_cmd_auth.c. */
void smtp_cmd_helo(struct smtp_session *s, const struct smtp_cmd *cmd);
void smtp_cmd_mail(struct smtp_session *s, const struct smtp_cmd *cmd);
void smtp_cmd_rcpt(struct smtp_session *s, const struct smtp_cmd *cmd);
void smtp_cmd_data(struct smtp_session *s, const struct smtp_cmd *cmd);
void smtp_cmd_bdat(struct smtp_session *s, const struct smtp_cmd *cmd);
void smtp_cmd_starttls(struct smtp_session *s, const struct smtp_cmd *cmd);
void smtp_cmd_rset(struct smtp_session *s, const struct smtp_cmd *cmd);
void smtp_cmd_noop(struct smtp_session *s, const struct smtp_cmd *cmd);
void smtp_cmd_quit(struct smtp_session *s, const struct smtp_cmd *cmd);
void smtp_cmd_help(struct smtp_session *s, const struct smtp_cmd *cmd);
void smtp_cmd_vrfy(struct smtp_session *s, const struct smtp_cmd *cmd);
void smtp_cmd_expn(struct smtp_session *s, const struct smtp_cmd *cmd);
void smtp_cmd_not_implemented(struct smtp_session *s, const struct smtp_cmd *cmd);

#endif
