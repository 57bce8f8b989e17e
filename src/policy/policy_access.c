/*
 * policy_access.c - check "access": the access map (access.file, see
 * access_map.h) asked at connect (Connect: keys), HELO (Helo:), MAIL
 * (From:, Connect:From:) and RCPT (To:, Connect:To:, From:To:).
 *
 * The first matching line decides: REJECT and TEMPFAIL refuse with the
 * line's text (or the row's), DISCARD takes the message and delivers it
 * nowhere, OK decides the stage (the checks after "access" in that
 * stage's list are skipped) and marks the session (connect, HELO) or the
 * transaction (MAIL) as allowed, so that later stages' "access" decides
 * at once too. At RCPT an OK never skips routing: before a recipient is
 * routed it only marks; the default list asks "access" after recipient
 * and relay, so an OK never opens a relay. No key matching: continue.
 * A Connect: pattern that may match the client's name waits for the
 * session's one lookup of its verified name (peername.h).
 */
#include "policy_checks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access_map.h"
#include "peername.h"

static const unsigned stage_tags[POLICY_STAGE__COUNT] = {
	[POLICY_STAGE_CONNECT] = ACCESS_MASK(ACCESS_TAG_CONNECT),
	[POLICY_STAGE_HELO] = ACCESS_MASK(ACCESS_TAG_HELO),
	[POLICY_STAGE_MAIL] = ACCESS_MASK(ACCESS_TAG_FROM) | ACCESS_MASK(ACCESS_TAG_CONNECT_FROM),
	[POLICY_STAGE_RCPT] = ACCESS_MASK(ACCESS_TAG_TO) | ACCESS_MASK(ACCESS_TAG_CONNECT_TO) |
			      ACCESS_MASK(ACCESS_TAG_FROM_TO),
};

/* OK: the stage is decided, except a RCPT not yet routed. */
static void
access_allow(struct policy_query *q)
{
	if (q->stage == POLICY_STAGE_RCPT && !q->txn->routed)
		policy_answer_continue(q);
	else
		policy_answer_cond(q, POLICY_ACCEPT, COND_POLICY_ACCESS_ALLOW, NULL, 0);
}

static void
access_refuse(struct policy_query *q, const struct access_entry *e, enum access_action act)
{
	struct policy_txn *t = q->txn;
	const char *from = t->sender.mailbox != NULL ? t->sender.mailbox : "";
	const char *text = access_entry_text(e);
	const char *key = access_entry_key(e);
	unsigned line = access_entry_line(e);
	struct kv kv[POLICY_PARAMS_MAX];
	size_t n = 0;
	enum cond_id c;

	if (act == ACCESS_TEMPFAIL) {
		c = q->stage == POLICY_STAGE_CONNECT ? COND_POLICY_ACCESS_CONNECT_TEMPFAIL
		    : COND_POLICY_ACCESS_TEMPFAIL;
		kv[n++] = KV("client", t->client);
		kv[n++] = KV("stage", policy_stage_name(q->stage));
		kv[n++] = KV("key", key);
		kv[n++] = KVU("line", line);
		kv[n++] = KV("text", text[0] ? text : "Try again later");
		policy_answer_cond(q, POLICY_TEMPFAIL, c, kv, n);
		return;
	}
	kv[n++] = KV("client", t->client);
	if (q->stage == POLICY_STAGE_MAIL || q->stage == POLICY_STAGE_RCPT)
		kv[n++] = KVA("from", from, strlen(from));
	if (q->stage == POLICY_STAGE_RCPT)
		kv[n++] = KVA("rcpt", t->rcpt.mailbox, strlen(t->rcpt.mailbox));
	kv[n++] = KV("key", key);
	kv[n++] = KVU("line", line);
	kv[n++] = KV("text", text[0] ? text : "Access denied");
	c = q->stage == POLICY_STAGE_RCPT ? COND_POLICY_ACCESS_RCPT_REJECT
	    : q->stage == POLICY_STAGE_MAIL ? COND_POLICY_ACCESS_SENDER_REJECT
	    : COND_ACCESS_IP_DENIED;
	policy_answer_cond(q, POLICY_REJECT, c, kv, n);
}

static void access_lookup(struct policy_query *q);

/* The client's name is known: the map is asked. */
static void
access_name_known(void *arg)
{
	struct policy_query *q = arg;

	free(q->check_data);
	q->check_data = NULL;
	access_lookup(q);
}

/* A map with Connect: name patterns for this stage's keys waits for the
 * session's one lookup of the client's name (peername.h); others are
 * asked at once (a name that is not known yet matches nothing). */
static void
access_ask(struct policy_query *q)
{
	struct policy_txn *t = q->txn;
	struct peername_wait *w;

	if (t->peername != NULL && t->access_ok == 0 &&
	    access_map_needs_name(policy_access_map(t->cfg), stage_tags[q->stage])) {
		w = xcalloc(1, sizeof(*w));
		if (!peername_need(t->peername, w, access_name_known, q)) {
			q->check_data = w;
			return;
		}
		free(w);
	}
	access_lookup(q);
}

static void
access_cancel(struct policy_query *q)
{
	struct peername_wait *w = q->check_data;

	if (w == NULL)
		return;
	peername_unwait(q->txn->peername, w);
	free(w);
	q->check_data = NULL;
}

static void
access_lookup(struct policy_query *q)
{
	struct policy_txn *t = q->txn;
	const struct access_map *m = policy_access_map(t->cfg);
	struct access_subject s = {
		.client = t->client,
		.peer = (const struct sockaddr *)t->peer,
		.name = t->peername != NULL ? peername_verified(t->peername) : NULL,
		.helo = t->helo != NULL && t->helo[0] ? t->helo : NULL,
		.from = q->stage >= POLICY_STAGE_MAIL ? t->sender.mailbox : NULL,
		.rcpt = q->stage == POLICY_STAGE_RCPT ? t->rcpt.mailbox : NULL,
	};
	const struct access_entry *e;

	if (q->stage == POLICY_STAGE_MAIL && t->access_discard) {
		policy_answer_cond(q, POLICY_DISCARD, COND_POLICY_ACCESS_DISCARD, NULL, 0);
		return;
	}
	if (t->access_ok != 0) {
		access_allow(q);
		return;
	}
	e = access_map_find(m, stage_tags[q->stage], &s);
	if (e == NULL) {
		policy_answer_continue(q);
		return;
	}
	enum access_action act = access_entry_action(e);
	struct kv kv[] = { KV("client", t->client), KV("stage", policy_stage_name(q->stage)),
			   KV("key", access_entry_key(e)), KVU("line", access_entry_line(e)) };

	switch (act) {
	case ACCESS_OK:
		catalog_log(COND_POLICY_ACCESS_ALLOW, NULL, kv, ARRAY_LEN(kv));
		if (q->stage == POLICY_STAGE_CONNECT || q->stage == POLICY_STAGE_HELO)
			t->access_ok = 1;
		else if (q->stage == POLICY_STAGE_MAIL)
			t->access_ok = 2;
		access_allow(q);
		return;
	case ACCESS_DISCARD:
		catalog_log(COND_POLICY_ACCESS_DISCARD, NULL, kv, ARRAY_LEN(kv));
		if (q->stage == POLICY_STAGE_CONNECT || q->stage == POLICY_STAGE_HELO) {
			t->access_discard = 1;
			policy_answer_continue(q);
		} else {
			policy_answer_cond(q, POLICY_DISCARD, COND_POLICY_ACCESS_DISCARD, kv,
					   ARRAY_LEN(kv));
		}
		return;
	case ACCESS_REJECT:
	case ACCESS_TEMPFAIL:
		access_refuse(q, e, act);
		return;
	}
	policy_answer_continue(q);
}

const struct policy_check policy_check_access = {
	.name = "access",
	.ask = {
		[POLICY_STAGE_CONNECT] = access_ask,
		[POLICY_STAGE_HELO] = access_ask,
		[POLICY_STAGE_MAIL] = access_ask,
		[POLICY_STAGE_RCPT] = access_ask,
	},
	.cancel = access_cancel,
};
