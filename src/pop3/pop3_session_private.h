/*
 * pop3_session_private.h - the POP3 session's insides, shared only by the
 * files that implement it: pop3_session.c (the session on the core:
 * replies, the verb table, input, TLS, lifecycle), pop3_cmd_auth.c (the
 * AUTHORIZATION state: USER, PASS, AUTH PLAIN, the login job) and
 * pop3_cmd_trans.c (TRANSACTION and UPDATE: STAT, LIST, UIDL, RETR, TOP,
 * DELE, RSET, NOOP, QUIT). Everything outside src/pop3/ uses pop3.h.
 */
#ifndef POSTERN_POP3_SESSION_PRIVATE_H
#define POSTERN_POP3_SESSION_PRIVATE_H

#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "buf.h"
#include "log.h"
#include "net_conn.h"
#include "net_session.h"
#include "pop3.h"
#include "pop3_parse.h"
#include "pop3_private.h"

#define OUT_MAX (1024 * 1024)
#define OUT_HIGH_WATER (256 * 1024)	/* stop producing output past this */
#define STREAM_LOW (128 * 1024)		/* read the next chunk below this */
#define REPLY_MAX 1024
#define SASL_LINE_MAX 2048		/* an AUTH continuation line */
#define SASL_DECODED_MAX 1024
#define USER_MAX 256
#define FAIL_DELAY_SHIFT_MAX 4		/* the delay grows to 16 x */

enum pop3_state {
	POP3_STATE_AUTH,	/* AUTHORIZATION */
	POP3_STATE_TRANS,	/* TRANSACTION */
	POP3_STATE_CLOSING,	/* last reply queued; close once flushed */
	POP3_STATE_TLS,		/* TLS handshake; it owns the socket */
	POP3_STATE__COUNT
};

/* What the session waits for before it reads the next command. */
enum pop3_wait {
	WAIT_NONE,
	WAIT_CHECK,	/* the lockout check before the greeting */
	WAIT_LOGIN,	/* a login job */
	WAIT_DELAY,	/* the delay before a failed login's answer */
	WAIT_SASL,	/* the client's AUTH continuation line */
	WAIT_RETR,	/* a message being streamed */
	WAIT_LIST,	/* a LIST/UIDL listing being produced */
	WAIT_UPDATE,	/* the UPDATE job */
};

struct pop3_session {
	struct pop3_env *env;
	struct config *cfg;		/* reference, for the whole session */
	/* The session core (net/net_session.h) drives conn, in, in_off and
	 * out: reading, flushing, the event mask, the deadline, TLS. */
	struct net_session ns;
	struct conn conn;
	char sid[POP3_SID_SIZE];
	enum pop3_state state;
	enum pop3_wait wait;
	int dead;
	int tls;			/* the handshake is done */
	int tls_implicit;		/* pop3s: handshake before the greeting */
	int require_tls;		/* listen.NAME.require_tls */
	const struct config_listener *lst;	/* the listener (boot config) */
	struct buf in;			/* released by the core while idle */
	size_t in_off;			/* bytes of in already taken (buf_unread) */
	struct buf out;			/* released by the core while idle */
	struct loop_timer delay;
	uint64_t started_ms;
	unsigned long sessions_now;	/* for SESSION-START, logged after the preface */
	int ip_slot;		/* holds a limits.connections_per_ip slot for conn.peer */
	char user[USER_MAX];		/* USER argument or authcid, as given */
	int have_user;			/* USER accepted, PASS may follow */
	const char *mech;		/* "USER" or "PLAIN" */
	char mailbox[USER_MAX + 64];	/* "local@domain" once logged in */
	int locked;			/* holds the mailbox lock */
	struct pop3_maildrop drop;
	unsigned errors;
	unsigned rejects;
	unsigned retr;
	size_t dele;
	char last_reject[REPLY_MAX];
	enum cond_id end_cause;
	/* WAIT_DELAY: the failures counted for the answer */
	unsigned delayed_count;
	/* WAIT_RETR */
	int top;
	size_t msgi;
	int fd;				/* the message file, when no job has it */
	uint64_t offset;
	struct pop3_enc enc;
	int chunk_pending;
	int streaming;			/* the +OK line went out */
	/* WAIT_LIST */
	int list_uidl;
	size_t list_next;
};

/* ---- pop3_session.c ------------------------------------------------------ */

/* Queues the reply of cond; refusals ("-ERR") are logged as their own
 * event with the reply. */
void pop3_session_reply(struct pop3_session *s, enum cond_id cond, const struct kv *kvs,
			size_t nkv);
/* The same, then counts it toward limits.errors (protocol errors only). */
void pop3_session_refuse(struct pop3_session *s, enum cond_id cond, const struct kv *kvs,
			 size_t nkv);
/* Appends one line of a multi-line response (CAPA, LIST, UIDL). */
void pop3_session_line(struct pop3_session *s, const char *fmt, ...) PRINTF(2, 3);
void pop3_session_log_ctx(const struct pop3_session *s, struct log_ctx *ctx);
/* Handles whatever complete input there is, in order, then flushes. */
void pop3_session_process(struct pop3_session *s);
void pop3_session_end(struct pop3_session *s, enum cond_id cause);
/* For jobs: a handle, and the session it names (NULL once it ended). */
uintptr_t pop3_session_handle(const struct pop3_session *s);
struct pop3_session *pop3_session_by_handle(struct pop3_env *env, uintptr_t handle);

/* ---- pop3_cmd_auth.c ----------------------------------------------------- */

/* RFC 2595 2.1: COND__COUNT when a plaintext login may run now, else
 * the refusal (POP3-TLS-REQUIRED, POP3-PLAINTEXT-DISABLED). */
enum cond_id pop3_plaintext_refusal(const struct pop3_session *s);
void pop3_cmd_user(struct pop3_session *s, const struct pop3_cmd *cmd);
void pop3_cmd_pass(struct pop3_session *s, const struct pop3_cmd *cmd);
void pop3_cmd_auth(struct pop3_session *s, const struct pop3_cmd *cmd);
/* The line after "+ " (WAIT_SASL): the client's response, or "*". */
void pop3_sasl_response(struct pop3_session *s, const uint8_t *line, size_t len,
			size_t linelen);
/* s->delay fired: the answer to a failed login goes out. */
void pop3_delay_fire(struct loop *loop, void *arg);

/* ---- pop3_cmd_trans.c ---------------------------------------------------- */

/* Messages not deleted and their octets. */
void pop3_session_totals(const struct pop3_session *s, size_t *count, uint64_t *size);
void pop3_cmd_stat(struct pop3_session *s, const struct pop3_cmd *cmd);
void pop3_cmd_list(struct pop3_session *s, const struct pop3_cmd *cmd);
void pop3_cmd_retr(struct pop3_session *s, const struct pop3_cmd *cmd);
void pop3_cmd_dele(struct pop3_session *s, const struct pop3_cmd *cmd);
void pop3_cmd_rset(struct pop3_session *s, const struct pop3_cmd *cmd);
void pop3_cmd_noop(struct pop3_session *s, const struct pop3_cmd *cmd);
/* AUTHORIZATION: closes; TRANSACTION: the UPDATE state, on a worker. */
void pop3_cmd_quit(struct pop3_session *s, const struct pop3_cmd *cmd);
/* WAIT_LIST: produces listing lines until the output is full or the
 * list ends. */
void pop3_list_more(struct pop3_session *s);
/* WAIT_RETR: asks a worker for the next chunk of the message. */
void pop3_chunk_request(struct pop3_session *s);

#endif
