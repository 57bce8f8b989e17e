/*
 * smtp_session_private.h - the SMTP session's insides, shared only by the
 * files of src/smtp/ that implement commands (smtp_session.c, and command
 * handlers that grew their own file, such as smtp_cmd_auth.c).
 *
 * Everything outside src/smtp/ uses smtp_session.h.
 */
#ifndef POSTERN_SMTP_SESSION_PRIVATE_H
#define POSTERN_SMTP_SESSION_PRIVATE_H

#include <stdint.h>

#include "catalog/catalog.h"
#include "core/buf.h"
#include "core/hash.h"
#include "core/log.h"
#include "directory/directory.h"
#include "net/net_conn.h"
#include "net/net_tls.h"
#include "policy/policy.h"
#include "smtp/smtp_data.h"
#include "smtp/smtp_parse.h"
#include "smtp/smtp_session.h"
#include "store/body_sink.h"

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
	struct conn conn;
	size_t slot;
	unsigned gen;
	char sid[17];
	enum smtp_state state;
	int dead;		/* ended; freed by a deferred call */
	int paused;		/* not reading (commit or output backlog) */
	int want_write;
	struct buf in;
	size_t in_off;		/* bytes of in already taken (buf_unread) */
	struct buf out;
	struct loop_timer deadline;
	uint64_t started_ms;
	char helo[256];
	int ehlo;
	int trusted;
	unsigned errors;
	unsigned junk;		/* NOOP, RSET, HELP, VRFY since the last message */
	uint64_t active_ms;	/* last command that did work: the deadline's start */
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
	uint64_t tls_started_ms;
	struct tls_server *tls_ctx;	/* reference while a handshake runs */
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
};


/* ---- for command handlers in other files ------------------------------ */

/* Queues the reply for cond (refusals are logged as their own event). */
int smtp_session_reply(struct smtp_session *s, enum cond_id cond, const struct kv *kvs,
		       size_t nkv);
/* The same, then counts the refusal toward limits.errors. */
void smtp_session_refuse(struct smtp_session *s, enum cond_id cond, const struct kv *kvs,
			 size_t nkv);
void smtp_session_log_ctx(const struct smtp_session *s, struct log_ctx *ctx);
/* Adds a word to the session's flags (SESSION-END). */
void smtp_session_flag(struct smtp_session *s, const char *flag);
/* A value for posting work to a thread and finding the session again
 * when it comes back: NULL then if the session ended meanwhile. */
uintptr_t smtp_session_handle(const struct smtp_session *s);
struct smtp_session *smtp_session_by_handle(struct smtp_env *env, uintptr_t handle);
/* After s->busy went back to 0: handle waiting input and flush. */
void smtp_session_resume(struct smtp_session *s);

#endif
