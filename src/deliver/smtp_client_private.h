/*
 * smtp_client_private.h - what smtp_client.c (the protocol) and
 * smtp_client_body.c (the data stream) share: the client's struct.
 */
#ifndef POSTERN_SMTP_CLIENT_PRIVATE_H
#define POSTERN_SMTP_CLIENT_PRIVATE_H

#include "smtp_client.h"

#define SC_CHUNK (64 * 1024)		/* one read of the data */
#define SC_OUT_MAX (1024 * 1024)	/* commands of a pipelined transaction, or a
					 * transformed chunk (at most twice its size) */
#define SC_IN_MAX (2 * SMTP_CLIENT_LINE_MAX)
#define SC_FIELD_MAX 4096		/* an envelope string (SPOOL_MAX_FIELD) */

/* The part the session core owns and frees (deferred) once released. */
struct sc_conn {
	struct net_session ns;
	struct conn conn;
	struct buf in, out;
	size_t in_off;
	struct smtp_client *c;		/* NULL once released */
};

struct sc_read;

/* The data stream of one transaction (smtp_client_body.c). */
struct sc_body {
	uint8_t *chunk;			/* SC_CHUNK octets; with the job while it reads */
	uint64_t off, left;		/* the data still to read */
	size_t tags_off;		/* tags already sent */
	uint32_t crc;
	int bol, prev_cr;		/* the transform: at a line start, after CR */
	int bdat;			/* BDAT chunks, not DATA */
	int reading;			/* a pool job reads a chunk */
	int ended;			/* the end of data went out */
	unsigned pending;		/* BDAT replies due */
	int failed;			/* a BDAT was refused */
};

struct smtp_client {
	struct sc_conn *cn;
	struct net_table *table;
	struct loop *loop;
	struct workpool *wp;
	struct smtp_client_params p;	/* strings point into the copies below */
	char *host, *helo, *self, *user, *pass;
	char sid[40];
	struct sockaddr_storage sa, bind;
	enum smtp_client_stage stage;
	int hold;			/* entry points on the stack */
	int dead;			/* ended: free when hold drops to 0 */
	int ended;			/* the connection is released */
	int busy;			/* in a transaction or opening */
	int notls;			/* MAY: the handshake failed, in clear now */
	int helo_used;			/* EHLO got 5xx: HELO */
	int auth_step;			/* LOGIN: 0 user, 1 password */
	struct smtp_client_rparse rp;
	struct smtp_client_ext ext;
	struct smtp_client_result res;
	smtp_client_fn cb;
	void *arg;
	uint64_t t0;
	/* the transaction */
	struct smtp_client_msg m;
	struct smtp_client_reply *rr;	/* m.n replies */
	size_t ri;			/* the next RCPT reply expected */
	size_t rsent;			/* RCPTs written */
	int pipelined, mail_ok, data_sent, synth;
	size_t nok;			/* RCPTs accepted */
	struct sc_body body;
	/* while idle */
	void (*idle_fn)(void *arg, struct smtp_client *c);
	void *idle_arg;
	unsigned idle_ms;
};

/* smtp_client_body.c */
enum sc_pump { SC_PUMP_MORE, SC_PUMP_WAIT, SC_PUMP_END, SC_PUMP_ERROR };
void sc_body_start(struct smtp_client *c, int bdat);
/* Adds the next piece of the data to out; SC_PUMP_ERROR with c->res.cond
 * set (the spool read failed, or the CRC did not match). */
enum sc_pump sc_body_pump(struct smtp_client *c);
void sc_body_fini(struct sc_body *b);

/* smtp_client.c: the connection */
void sc_hold(struct smtp_client *c);
void sc_unhold(struct smtp_client *c);
/* Ends the connection with res saying why (a QUIT first when quit),
 * reports, and frees c once no entry point holds it. */
void sc_end(struct smtp_client *c, int quit);
void sc_protocol_error(struct smtp_client *c, const char *err, size_t len, size_t limit);
/* Enters stage s: its timeout runs from now. */
void sc_stage(struct smtp_client *c, enum smtp_client_stage s);
/* The next reply starts (ehlo: with EHLO keywords). */
void sc_expect(struct smtp_client *c, int ehlo);
/* Appends a command to out; -1 (the connection ended) if it does not fit. */
int sc_cmd(struct smtp_client *c, const char *fmt, ...) PRINTF(2, 3);
void sc_tls_note(struct smtp_client *c);
/* Runs the pending callback once with pass as its client. */
void sc_report(struct smtp_client *c, struct smtp_client *pass);
/* Writes out and keeps the data stream going while the socket takes it. */
void sc_flush(struct smtp_client *c);
unsigned sc_dflt(unsigned v, unsigned d);

/* smtp_client_txn.c: the transaction */
void sc_txn_reply(struct smtp_client *c);
/* The transaction is over, the connection idle: done runs. */
void sc_txn_done(struct smtp_client *c);
/* Adds the next blocks of the data to out while the peer keeps up. */
void sc_pump(struct smtp_client *c);
/* The data stream made progress (or failed): go on. */
void sc_body_continue(struct smtp_client *c);

#endif
