/*
 * smtp_client.h - the SMTP client protocol engine: one connection to one
 * already-chosen peer address, on the event loop, carrying one or more
 * transactions.
 *
 * Owns the client's protocol: connect, greeting, EHLO (HELO when EHLO
 * gets a 5xx), STARTTLS, AUTH, MAIL/RCPT/DATA or BDAT with PIPELINING,
 * streaming the spooled data (dot-stuffed for DATA), QUIT, the stage
 * timeouts of RFC 5321 4.5.3.2 and the bounds on what the peer sends.
 * Routes, MX hosts, the connection cache, retries and the per-recipient
 * delivery log are the caller's (the outbound engine): it reads the
 * result and decides. Loop thread only (the spool reads that would block
 * run on the pool's "spool-read" class).
 *
 * Which failure is whose (issue 8): see the flags of struct
 * smtp_client_result. Per recipient, rcpt[i].code says it all: 2xx sent,
 * 4xx or 0 (no answer) deferred, 5xx failed.
 */
#ifndef POSTERN_SMTP_CLIENT_H
#define POSTERN_SMTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"
#include "catalog.h"
#include "loop.h"
#include "net_session.h"
#include "net_tls.h"
#include "smtp_client_reply.h"
#include "workpool.h"

struct smtp_client;

/* NONE: never STARTTLS. MAY: STARTTLS when offered, the certificate is
 * not checked; a failed handshake reconnects once in clear to the same
 * address (Postfix's "may"). ENCRYPT: STARTTLS required, not checked.
 * VERIFY: required, and the chain and host name are checked (tls_ctx
 * from tls_client_new). For MAY and ENCRYPT give a context from
 * tls_client_new_noverify. A NULL tls_ctx makes MAY mean NONE, and
 * ENCRYPT/VERIFY fail with DELIVERY-TLS-FAILED. */
enum smtp_client_tls { SMTP_CLIENT_TLS_NONE, SMTP_CLIENT_TLS_MAY, SMTP_CLIENT_TLS_ENCRYPT,
		       SMTP_CLIENT_TLS_VERIFY };

/* Milliseconds; 0 takes the default of RFC 5321 4.5.3.2 (connect 30 s,
 * greeting 5 min, HELO 5 min, STARTTLS 5 min, AUTH 5 min, MAIL 5 min,
 * RCPT 5 min, DATA 2 min, a block of data 3 min, the final dot 10 min,
 * QUIT 5 min). */
struct smtp_client_timeouts {
	unsigned connect_ms, greeting_ms, helo_ms, starttls_ms, auth_ms, mail_ms, rcpt_ms,
		data_ms, block_ms, dot_ms, quit_ms;
};

struct smtp_client_params {
	const struct sockaddr *sa;
	socklen_t salen;		/* the peer */
	const struct sockaddr *bind;
	socklen_t bindlen;		/* our source address, or NULL */
	const char *host;		/* the peer's name: SNI, verify, logs */
	const char *helo;		/* our EHLO name */
	const char *self;		/* server.hostname: a greeting or EHLO
					 * reply naming it is a loop; NULL: none */
	enum smtp_client_tls tls;
	struct tls_client *tls_ctx;	/* borrowed; referenced while used */
	const char *auth_user, *auth_pass;	/* AUTH PLAIN/LOGIN over TLS only;
						 * NULL: no AUTH */
	struct smtp_client_timeouts t;
	const char *sid;		/* for log lines; copied */
	int read_cls;			/* the pool class for spool reads that
					 * would block (smtp_client_class_new) */
};

/* DSN values as the SMTP server keeps them (smtp_parse.h's). */
#define SMTP_CLIENT_RET_NONE 0
#define SMTP_CLIENT_RET_FULL 1
#define SMTP_CLIENT_RET_HDRS 2
#define SMTP_CLIENT_NOTIFY_NEVER   0x1u
#define SMTP_CLIENT_NOTIFY_SUCCESS 0x2u
#define SMTP_CLIENT_NOTIFY_FAILURE 0x4u
#define SMTP_CLIENT_NOTIFY_DELAY   0x8u

struct smtp_client_rcpt {
	const char *addr;		/* mailbox without <> */
	const char *orcpt;		/* ORCPT= value as received, or NULL */
	unsigned notify;		/* SMTP_CLIENT_NOTIFY_*, 0 = not given */
};

/* One message. Every pointer is borrowed until done runs. */
struct smtp_client_msg {
	const char *from;		/* "" for <> */
	int ret;			/* SMTP_CLIENT_RET_* */
	const char *envid;		/* as received (xtext), or NULL */
	int body_8bit, smtputf8;
	uint64_t size;			/* SIZE= declared */
	int fd;				/* the spool file (kept open until done) */
	uint64_t off, len;		/* the data: len octets at off */
	uint32_t crc;			/* their CRC32C (spool_msg.body_crc) */
	const struct buf *tags;		/* header fields sent before the data, or NULL */
	const struct smtp_client_rcpt *rcpts;
	size_t n;
};

enum smtp_client_stage {
	SMTP_CLIENT_CONNECT, SMTP_CLIENT_GREETING, SMTP_CLIENT_EHLO, SMTP_CLIENT_STARTTLS,
	SMTP_CLIENT_AUTH, SMTP_CLIENT_MAIL, SMTP_CLIENT_RCPT, SMTP_CLIENT_DATA,
	SMTP_CLIENT_BODY, SMTP_CLIENT_DOT, SMTP_CLIENT_RSET, SMTP_CLIENT_QUIT,
	SMTP_CLIENT_IDLE,
};
const char *smtp_client_stage_name(enum smtp_client_stage s);

struct smtp_client_result {
	enum smtp_client_stage stage;	/* where it ended */
	enum cond_id cond;		/* the catalog row of a failure, COND__COUNT if fine */
	struct smtp_client_reply reply;	/* the transaction-level reply (greeting, EHLO,
					 * MAIL, DATA, the end of data); code 0: none */
	struct smtp_client_reply *rcpt;	/* send: one per recipient of the message (n),
					 * valid during the callback; NULL for open */
	size_t naccepted;		/* recipients the peer took (2xx at the end) */
	int loop;			/* the peer is us */
	int backoff_destination;	/* 421 anywhere, or 4.7.x at greeting/EHLO/MAIL */
	int next_host;			/* connection failure or loss, a timeout, a
					 * 4xx/5xx greeting or EHLO, TLS failure */
	int reusable;			/* idle and may carry another transaction */
	int tls;			/* the connection is on TLS */
	char tls_version[16];		/* "TLSv1.3", "" */
	char tls_cipher[64];
	int tls_verified;		/* the chain and name were checked */
	struct smtp_client_ext ext;	/* what the peer offered */
	char peer_text[NET_ADDR_TEXT + 8];	/* "192.0.2.1:25" */
	char local_text[NET_ADDR_TEXT + 8];	/* our side */
	int err;			/* errno of a connection failure, 0 */
	uint64_t connect_ms;		/* open: connect to ready */
	uint64_t transfer_ms;		/* send: MAIL to the last reply */
};

typedef void (*smtp_client_fn)(void *arg, struct smtp_client *c,
			       const struct smtp_client_result *res);

/* Adds the pool class the engine reads spool data on when it is not in
 * the page cache; its id goes in params.read_cls. -1 on failure. */
int smtp_client_class_new(struct workpool *wp) WARN_UNUSED;

/* Connects, reads the greeting, EHLO (HELO after a 5xx to EHLO),
 * STARTTLS per p->tls, AUTH if asked (never in clear: AUTH without TLS
 * fails with DELIVERY-AUTH-NO-TLS, deferred), then ready(arg, c, res)
 * with res.reusable set. On failure ready runs with c NULL: the
 * connection is already closed and res says why. ready never runs
 * before smtp_client_open returns. NULL only when no memory/socket could
 * be had at all (errno; nothing runs then). p is copied (strings too). */
struct smtp_client *smtp_client_open(struct net_table *t, struct loop *loop,
				     struct workpool *wp, const struct smtp_client_params *p,
				     smtp_client_fn ready, void *arg);

/* One transaction on a ready, idle connection: MAIL (SIZE, BODY=8BITMIME,
 * SMTPUTF8, RET/ENVID when offered), the RCPTs (NOTIFY/ORCPT when DSN is
 * offered), DATA or BDAT (CHUNKING), the data, the end. PIPELINING when
 * offered (MAIL, RCPTs and DATA in one write). A message that needs
 * SMTPUTF8 to a peer without it, or over the peer's SIZE limit, fails
 * every recipient with a 5xx of its own row, no byte sent, the
 * connection stays reusable. The end of data goes out with the last
 * block of the data. A CRC mismatch of the data ends the connection
 * without the last block and the end of data (res.cond
 * QUEUE-SPOOL-CORRUPT; a spool read error: QUEUE-SPOOL-READ-FAILED with
 * res.err; nothing logged: the owner knows the file). done runs once,
 * never before smtp_client_send returns; with res.reusable the
 * connection is idle again, otherwise it is closed and freed after done
 * returns (c must not be used then). -1 when c is not idle, or (EINVAL)
 * an envelope string is longer than 4096 octets (nothing runs). */
int smtp_client_send(struct smtp_client *c, const struct smtp_client_msg *m,
		     smtp_client_fn done, void *arg) WARN_UNUSED;

/* While idle (cached): the peer closed, sent something, or idle_ms
 * passed (0: no limit): the connection is closed (QUIT first after the
 * idle limit), closed(arg, c) runs, then c is freed. Without this call
 * the connection is closed the same way but c stays the owner's: send
 * fails on it, quit or abort frees it. */
void smtp_client_on_idle(struct smtp_client *c, unsigned idle_ms,
			 void (*closed)(void *arg, struct smtp_client *c), void *arg);

/* On an idle connection: QUIT then close (quit), or close (abort; any
 * state). Both free c; no callback runs after. */
void smtp_client_quit(struct smtp_client *c);
void smtp_client_abort(struct smtp_client *c);

/* The peer as "address:port", for logs. */
const char *smtp_client_peer(const struct smtp_client *c);

#endif
