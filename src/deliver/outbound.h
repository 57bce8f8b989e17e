/*
 * outbound.h - outbound delivery over SMTP: the engine on an event loop
 * that takes one job (the recipients of one message that share a next
 * hop), finds where they go (route, MX, addresses), keeps each
 * destination within its concurrency, rate and back-off, reuses cached
 * connections, and runs the transaction through the SMTP client
 * (smtp_client.h). It answers per recipient: done, deferred or failed,
 * with the status, the reply and the relay; the queue manager
 * (deliver.c, deliver_remote.c) records that in the spool and bounces.
 *
 * Jobs are submitted from any thread (posted to the engine's loop); the
 * done callback runs on that loop, and the owner takes the job back.
 * Everything else is loop-thread only.
 */
#ifndef POSTERN_OUTBOUND_H
#define POSTERN_OUTBOUND_H

#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "config.h"
#include "loop.h"
#include "spool.h"

enum outbound_kind {
	OUTBOUND_DEFERRED,	/* temporary: try again later */
	OUTBOUND_DONE,		/* the peer took it */
	OUTBOUND_FAILED,	/* permanent: bounce */
};

#define OUTBOUND_REPLY_MAX 544	/* a client reply: code, enhanced code, text */
#define OUTBOUND_RELAY_MAX 320

struct outbound_result {
	enum outbound_kind kind;
	enum cond_id cond;			/* the catalog row that says why */
	char status[16];			/* enhanced status, "2.0.0" */
	char reply[OUTBOUND_REPLY_MAX];		/* the peer's reply, or our text */
	char relay[OUTBOUND_RELAY_MAX];		/* "host[addr]:port", or "none" */
	int dsn_offered;			/* the peer offered DSN (relayed notices) */
};

struct ob_target;
struct ob_dest;
struct smtp_client_rcpt;
struct ob_resolve;

struct outbound_job {
	/* Set by the owner. */
	char qid[SPOOL_QID_SIZE];
	char *domain;			/* owned: the recipients' domain */
	struct config *cfg;		/* a reference: route and options */
	const struct config_route *route;	/* in cfg */
	char *from;			/* owned: the reverse-path, "" for <> */
	char *envid;			/* owned or NULL */
	int ret, body_8bit, smtputf8;
	uint64_t size;			/* as delivered: tags + data */
	int fd;				/* owned: the spool file, read-only */
	uint64_t off, len;
	uint32_t crc;
	struct buf tags;		/* owned copy of the checks' fields */
	struct smtp_client_rcpt *rcpts;	/* n, owned strings */
	size_t *idx;			/* n: each recipient's index in the message */
	size_t n;
	int64_t received_at;		/* unix seconds */
	void (*done)(struct outbound_job *job);	/* on the engine's loop */
	void *owner;

	/* Filled by the engine before done. */
	struct outbound_result *res;	/* n */
	int corrupt;			/* the data failed its checksum */
	uint64_t connect_ms, transfer_ms;	/* for the log's delays */

	/* The engine's. */
	struct outbound_job *next;
	struct outbound *ob;
	struct ob_dest *dest;
	struct ob_resolve *rs;		/* while resolving */
	struct ob_target *targets;	/* where to try, in order */
	size_t ntargets, ti;
	unsigned lookups;		/* DNS queries outstanding */
	int dns_temp;			/* a lookup could not find out */
	int pruned;			/* hosts dropped (loopback, ours) */
	int self_seen;			/* an MX host is us */
	uint64_t started_ms;
	size_t *pend;			/* recipients still to send (452) */
	size_t npend;
	struct smtp_client_rcpt *sending;	/* the transaction under way */
	size_t nsending;
	struct outbound_job *aprev, *anext;	/* every job in the engine */
};

struct outbound;
struct dns_resolver;
struct workpool;
struct tls_client;

/* An engine on loop (its thread runs every job), resolving through dns. */
struct outbound *outbound_new(struct loop *loop, struct dns_resolver *dns, struct workpool *wp,
			      struct config *cfg);
/* After the loop stopped: jobs still in the engine end through done
 * with every recipient deferred (shutdown; nothing is recorded). */
void outbound_free(struct outbound **obp);
/* A new configuration for later jobs (any thread). */
void outbound_set_config(struct outbound *ob, struct config *cfg);
/* Hands job to the engine (any thread). job->res is allocated here. */
void outbound_submit(struct outbound *ob, struct outbound_job *job);
/* Frees what a job owns (not the struct). */
void outbound_job_fini(struct outbound_job *job);

/* For `postern queue` and tests: destinations known, with their state,
 * written as text lines into out (loop thread of the engine). */
void outbound_describe(struct outbound *ob, struct buf *out);

#endif
