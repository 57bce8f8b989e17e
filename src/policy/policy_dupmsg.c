/*
 * policy_dupmsg.c - check "duplicates" at end of data: duplicate
 * Message-ID suppression, as smtpf's dupmsg-ttl. A message is remembered
 * per final destination by a key over its Message-ID, its sender and that
 * destination ("dup:" and 32 hex digits of SHA-256), for duplicates.ttl.
 * A later message whose key is known is not stored for that destination
 * (txn->dests[i].drop, which the session honours before the commit;
 * POLICY-DUPLICATE per destination); one whose destinations are all known
 * is discarded. The client gets 250 either way.
 *
 * The keys live in the state store (store/state.h): read at end of data,
 * up to DUP_INFLIGHT requests of STATE_OPS_MAX keys out at once; written
 * (STATE_ADD with the TTL) only once the message is durable in the spool
 * (policy_txn_after), so a commit that failed with 4xx leaves nothing
 * behind to drop the client's retry. Nothing is written in a simulation.
 * Not checked: duplicates.ttl 0 (the default), a message without a
 * Message-ID, clients of server.trusted_networks (a content filter
 * re-injecting what it was given). A failing store fails open (logged)
 * unless duplicates.on_state_error (or state.on_error) says closed.
 */
#include "policy_checks.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "state.h"

#define DUP_DIGEST 16				/* octets of SHA-256 kept */
#define DUP_KEY_SIZE (4 + 2 * DUP_DIGEST + 1)	/* "dup:" hex NUL */
#define DUP_INFLIGHT 4				/* requests out at once */

struct dup_job;

/* One request: up to STATE_OPS_MAX destinations' keys. */
struct dup_batch {
	struct state_req req;
	struct state_op ops[STATE_OPS_MAX];
	char keys[STATE_OPS_MAX][DUP_KEY_SIZE];
	size_t idx[STATE_OPS_MAX];	/* the destination of each op */
	int busy;
	struct dup_job *job;
};

/* One message's lookup (at end of data), then its record (after the
 * commit). Owned by the query while reading, by the transaction's afters
 * while waiting for the commit, by itself while recording. */
struct dup_job {
	struct policy_query *q;		/* NULL once answered or cancelled */
	struct loop *loop;
	int adding;			/* recording, after the commit */
	unsigned ttl;
	size_t n;			/* destinations */
	uint8_t (*digest)[DUP_DIGEST];	/* n */
	uint8_t *found;			/* n: delivered before (dropped) */
	size_t next;			/* next destination to send */
	unsigned inflight;
	int failed;
	char err[128];
	size_t nadded;			/* destinations recorded */
	char sid[17];
	char client[64];
	char msgid[sizeof(((struct policy_content *)0)->msgid)];
	struct dup_batch batch[DUP_INFLIGHT];
};

static void
dup_free(struct dup_job *j)
{
	free(j->digest);
	free(j->found);
	free(j);
}

static void
dup_log_error(const struct dup_job *j, const char *op)
{
	struct log_ctx ctx = { .sid = j->sid[0] != '\0' ? j->sid : NULL };
	struct kv kv[] = { KV("client", j->client), KV("op", op), KV("err", j->err) };

	catalog_log(COND_POLICY_DUPLICATE_ERROR, &ctx, kv, ARRAY_LEN(kv));
}

static void dup_batch_done(struct state_req *req);

/* The store closed with the batch pending (shutdown; the session, and so
 * the query, went first): the job goes with its last batch. */
static void
dup_batch_dropped(struct state_req *req)
{
	struct dup_batch *ba = req->arg;
	struct dup_job *j = ba->job;

	ba->busy = 0;
	if (--j->inflight == 0)
		dup_free(j);
}
static void dup_phase_done(struct dup_job *j);

static void
dup_fail(struct dup_job *j, const char *err)
{
	if (!j->failed && slice_copy(slice_from_cstr(err), j->err, sizeof(j->err)) < 0)
		memcpy(j->err, "state request failed", sizeof("state request failed"));
	j->failed = 1;
}

/* Sends batches while there is room and work; when nothing is out and
 * nothing is left, the phase is done. */
static void
dup_pump(struct dup_job *j)
{
	for (size_t b = 0; b < DUP_INFLIGHT && !j->failed && j->next < j->n; b++) {
		struct dup_batch *ba = &j->batch[b];
		size_t nops = 0;

		if (ba->busy)
			continue;
		while (nops < STATE_OPS_MAX && j->next < j->n) {
			size_t i = j->next++;
			char *key = ba->keys[nops];

			if (j->adding && j->found[i])
				continue;	/* dropped: not delivered now */
			memcpy(key, "dup:", 4);
			for (size_t k = 0; k < DUP_DIGEST; k++) {
				key[4 + 2 * k] = "0123456789abcdef"[j->digest[i][k] >> 4];
				key[5 + 2 * k] = "0123456789abcdef"[j->digest[i][k] & 15];
			}
			key[DUP_KEY_SIZE - 1] = '\0';
			ba->idx[nops] = i;
			if (j->adding)
				state_op_set(&ba->ops[nops], STATE_ADD, key, "1", 1, 0, j->ttl);
			else
				state_op_set(&ba->ops[nops], STATE_GET, key, NULL, 0, 0, 0);
			nops++;
		}
		if (nops == 0)
			break;
		memset(&ba->req, 0, sizeof(ba->req));
		ba->req.ops = ba->ops;
		ba->req.nops = nops;
		ba->req.done = dup_batch_done;
		ba->req.cancel = dup_batch_dropped;
		ba->req.arg = ba;
		ba->job = j;
		if (state_submit(policy_state(), j->loop, &ba->req) < 0) {
			dup_fail(j, "state store closed");
			break;
		}
		ba->busy = 1;
		j->inflight++;
	}
	if (j->inflight == 0)
		dup_phase_done(j);
}

static void
dup_batch_done(struct state_req *req)
{
	struct dup_batch *ba = req->arg;
	struct dup_job *j = ba->job;

	ba->busy = 0;
	j->inflight--;
	if (req->failed)
		dup_fail(j, req->err);
	else if (!j->adding)
		for (size_t k = 0; k < req->nops; k++)
			j->found[ba->idx[k]] = ba->ops[k].found != 0;
	else
		j->nadded += req->nops;
	if (!j->adding && j->q == NULL) {
		/* the chain gave up on the query: stop sending */
		if (j->inflight == 0)
			dup_free(j);
		return;
	}
	dup_pump(j);
}

/* After the commit: record the destinations delivered now. */
static void
dup_after(void *arg, int committed)
{
	struct dup_job *j = arg;

	if (!committed || policy_state() == NULL) {
		dup_free(j);
		return;
	}
	j->adding = 1;
	j->nadded = 0;
	j->next = 0;
	j->failed = 0;
	dup_pump(j);
}

/* The lookup is complete: drop the known destinations and answer. */
static void
dup_judged(struct dup_job *j)
{
	struct policy_query *q = j->q;
	struct policy_txn *t = q->txn;
	struct log_ctx ctx = { .sid = j->sid[0] != '\0' ? j->sid : NULL };
	const char *from = t->sender.mailbox != NULL ? t->sender.mailbox : "";
	size_t ndrop = 0;

	j->q = NULL;
	q->check_data = NULL;
	if (j->failed) {
		dup_log_error(j, "get");
		if (policy_state_fail(q, "duplicates", t->cfg->duplicates_on_state_error, j->err)) {
			dup_free(j);
			return;
		}
		memset(j->found, 0, j->n);	/* fail open: nothing dropped */
	}
	for (size_t i = 0; i < j->n && i < t->ndests; i++) {
		const char *to = t->dests[i].addr;

		if (!j->found[i])
			continue;
		struct kv kv[] = { KV("client", j->client), KV("msgid", t->content.msgid),
				   KVA("from", from, strlen(from)), KVA("to", to, strlen(to)),
				   KVU("ttl_s", j->ttl) };
		catalog_log(COND_POLICY_DUPLICATE, &ctx, kv, ARRAY_LEN(kv));
		t->dests[i].drop = 1;
		ndrop++;
	}
	if (ndrop == j->n) {
		dup_free(j);	/* every one delivered before: nothing to record */
		policy_answer_cond(q, POLICY_DISCARD, COND_POLICY_DUPLICATE, NULL, 0);
		return;
	}
	if (t->simulate || policy_txn_after(t, dup_after, j) < 0)
		dup_free(j);
	policy_answer_continue(q);
}

static void
dup_phase_done(struct dup_job *j)
{
	if (j->adding) {
		struct log_ctx ctx = { .sid = j->sid[0] != '\0' ? j->sid : NULL };
		struct kv kv[] = { KV("client", j->client), KV("msgid", j->msgid),
				   KVU("nrcpt", j->nadded), KVU("ttl_s", j->ttl) };

		if (j->failed)
			dup_log_error(j, "add");
		else
			catalog_log(COND_POLICY_DUPLICATE_RECORDED, &ctx, kv, ARRAY_LEN(kv));
		dup_free(j);
		return;
	}
	dup_judged(j);
}

/* ---- loop side ------------------------------------------------------------ */

/* Feeds s, ASCII lowercased when fold. 1 on success (OpenSSL's way). */
static int
dup_feed(EVP_MD_CTX *md, const char *s, int fold)
{
	char chunk[64];
	size_t len = strlen(s), off = 0;

	if (!fold)
		return EVP_DigestUpdate(md, s, len + 1);	/* with the NUL: a separator */
	while (off <= len) {
		size_t n = 0;

		while (n < sizeof(chunk) && off <= len) {
			char c = s[off++];
			chunk[n++] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
		}
		if (EVP_DigestUpdate(md, chunk, n) != 1)
			return 0;
	}
	return 1;
}

/* The digest of (Message-ID, sender, destination); -1 on an OpenSSL error. */
static int
dup_digest(EVP_MD_CTX *md, const char *msgid, const char *from, const char *to,
	   uint8_t out[DUP_DIGEST])
{
	unsigned char full[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 || dup_feed(md, msgid, 0) != 1 ||
	    dup_feed(md, from, 1) != 1 || dup_feed(md, to, 1) != 1 ||
	    EVP_DigestFinal_ex(md, full, &len) != 1 || len < DUP_DIGEST)
		return -1;
	memcpy(out, full, DUP_DIGEST);
	return 0;
}

static void
dup_ask(struct policy_query *q)
{
	struct policy_txn *t = q->txn;
	const char *from = t->sender.mailbox != NULL ? t->sender.mailbox : "";
	struct dup_job *j;
	EVP_MD_CTX *md;
	int bad = 0;

	if (t->cfg->duplicates_ttl == 0 || policy_state() == NULL || t->content.msgid[0] == '\0' ||
	    t->trusted || t->ndests == 0) {
		policy_answer_continue(q);
		return;
	}
	md = EVP_MD_CTX_new();
	if (md == NULL) {
		policy_answer_continue(q);
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->q = q;
	j->loop = q->run->loop;
	j->ttl = t->cfg->duplicates_ttl;
	j->n = t->ndests;
	j->digest = xcalloc(j->n, sizeof(*j->digest));
	j->found = xcalloc(j->n, 1);
	if (slice_copy(slice_from_cstr(t->sid != NULL ? t->sid : ""), j->sid, sizeof(j->sid)) < 0)
		j->sid[0] = '\0';
	if (slice_copy(slice_from_cstr(t->client != NULL ? t->client : ""), j->client,
		       sizeof(j->client)) < 0)
		j->client[0] = '\0';
	memcpy(j->msgid, t->content.msgid, sizeof(j->msgid));
	j->msgid[sizeof(j->msgid) - 1] = '\0';
	for (size_t i = 0; i < j->n && !bad; i++)
		bad = dup_digest(md, t->content.msgid, from, t->dests[i].addr, j->digest[i]) < 0;
	EVP_MD_CTX_free(md);
	if (bad) {
		dup_free(j);
		policy_answer_continue(q);
		return;
	}
	q->check_data = j;
	dup_pump(j);	/* answers at once if nothing could be sent */
}

static void
dup_cancel(struct policy_query *q)
{
	struct dup_job *j = q->check_data;

	if (j != NULL)
		j->q = NULL;	/* the store still has its batches: the last frees it */
	q->check_data = NULL;
}

const struct policy_check policy_check_duplicates = {
	.name = "duplicates",
	.ask = { [POLICY_STAGE_END_OF_DATA] = dup_ask },
	.cancel = dup_cancel,
	.fail_open = 1,
};
