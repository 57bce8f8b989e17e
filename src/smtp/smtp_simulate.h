/*
 * smtp_simulate.h - one SMTP transaction run through the policy chain
 * without a client, a spool or a reply on the wire (`postern simulate`,
 * as Exim's -bh): each stage's command is parsed and copied into the
 * transaction as the session does it, the chain is asked, and the
 * session's own rule for a recipient no check routed applies; without an
 * accepted recipient the transaction ends before DATA, as a client ends it. Checks see txn->simulate and write no state.
 *
 * Threads: smtp_simulate runs the given loop itself, stage by stage (the
 * loop must not be running); call it from the thread that owns the loop.
 */
#ifndef POSTERN_SMTP_SIMULATE_H
#define POSTERN_SMTP_SIMULATE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "loop.h"
#include "policy.h"

/* The longest HELO name or address the caller gives (the command built
 * around it must fit a line). */
#define SMTP_SIM_ARG_MAX 1000

struct dns_resolver;
struct sockaddr_storage;

/* What one stage ended with, as the client would see it. */
struct smtp_sim_stage {
	enum policy_stage stage;
	const char *rcpt;		/* RCPT: the recipient as given; else NULL */
	enum policy_action action;	/* the chain's result (CONTINUE: nobody
					 * decided); for a refusal made before or
					 * after the chain, TEMPFAIL or REJECT */
	int refused;			/* the stage refused the command */
	const char *decided_by;		/* the check that decided, or NULL */
	enum cond_id cond;		/* the reply's catalog row */
	const char *reply;		/* the reply line: "250 2.1.5 ..." */
	uint64_t ms;			/* the stage's time, loop clock */
};

enum smtp_sim_result {
	SMTP_SIM_ACCEPTED,	/* every stage passed, every recipient accepted */
	SMTP_SIM_DISCARDED,	/* accepted, and a check said discard */
	SMTP_SIM_TEMPFAILED,	/* something got a 4xx (nothing a 5xx) */
	SMTP_SIM_REJECTED,	/* something got a 5xx */
};

struct smtp_sim {
	const struct config *cfg;
	const struct config_listener *lst;	/* whose chain; NULL: [policy] */
	const struct sockaddr_storage *peer;	/* the client */
	const char *client;			/* its address as text */
	const char *helo;			/* the EHLO argument */
	const char *from;			/* "" for <>; these and to[]: at
						 * most SMTP_SIM_ARG_MAX octets */
	const char *const *to;
	size_t nto;
	const struct policy_content *content;	/* NULL: no message (the
						 * simulation ends after DATA) */
	const char *auth_user;			/* "" if none */
	int tls;
	struct loop *loop;
	struct dns_resolver *dns;
	/* every check's answer, then the stage's end */
	policy_observe_fn on_check;
	void (*on_stage)(void *arg, const struct smtp_sim_stage *st);
	void *arg;
};

/* Runs the transaction; stops at a refused connect, HELO, MAIL, DATA or
 * end of data (a refused recipient only drops that recipient), and before
 * DATA when no recipient was accepted. */
enum smtp_sim_result smtp_simulate(const struct smtp_sim *sim);

/* Reads a message file as a client sends it (every line ended by CRLF,
 * a lone LF turned into CRLF) through the DATA decoder's scanner, in
 * bounded pieces: out gets what the end-of-data checks see, with the
 * links for the URI lists when one is configured (out->uris, also in
 * *uris_out: the caller's to free with uri_scan_free, even on -1). 0, or
 * -1 with errno on a read error. */
int smtp_sim_scan_file(FILE *f, const struct config *cfg, struct policy_content *out,
		       struct uri_scan **uris_out);

#endif
