/*
 * deliver_report.c - what a delivery pass tells the sender (see
 * deliver_report.h): failed and deferred records with their detail, the
 * queue lifetime, delay warnings and the DSNs (dsn.c) due after a pass.
 */
#include "deliver_report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dsn.h"
#include "log.h"
#include "metrics.h"

#define REPORT_DSN_RETRY_S 30u	/* a DSN that could not be written */

/* A detail's status when none was given: cond's row, else none. */
static const char *
row_status(enum cond_id cond)
{
	return cond < COND__COUNT && catalog_get(cond)->esc[0] != '\0' ? catalog_get(cond)->esc
								      : NULL;
}

/* Keeps detail d as the recipient's last (for a DSN in this pass). */
static void
keep_last(struct spool_rcpt *r, const struct spool_detail *d)
{
	struct buf t;

	buf_init(&t, SPOOL_MAX_FIELD);
	free(r->last);
	r->last = NULL;
	if (spool_detail_format(&t, d) == 0)
		r->last = xstrdup(buf_cstr(&t));
	buf_fini(&t);
}

/* The detail of a failure or deferral: status, else cond's row's. */
static struct spool_detail
detail_of(enum cond_id cond, const char *status, const char *mta, const char *diag)
{
	struct spool_detail d = {
		.status = status != NULL ? status : row_status(cond),
		.cond = cond < COND__COUNT ? catalog_get(cond)->id : NULL,
		.mta = mta, .diag = diag,
	};

	return d;
}

void
deliver_report_fail(const struct config *cfg, struct spool_msg *msg, size_t idx,
		    enum cond_id cond, const char *status, const char *mta, const char *diag,
		    struct buf *recs)
{
	struct spool_rcpt *r = &msg->rcpts[idx];
	struct spool_detail d = detail_of(cond, status, mta, diag);
	struct log_ctx ctx = { .qid = msg->qid };
	struct buf reply;

	r->failed = 1;
	keep_last(r, &d);
	(void)spool_state_failed(recs, idx, &d);	/* past 16 MiB: retried, then failed again */
	buf_init(&reply, 1024);
	if (diag == NULL)
		(void)dsn_render(&reply, cfg, msg, idx, cond);
	struct kv kvs[] = {
		KVA("rcpt", r->addr, strlen(r->addr)),
		KV("status", d.status != NULL ? d.status : "5.0.0"),
		KV("cause", d.cond != NULL ? d.cond : "-"),
		KV("reply", diag != NULL ? diag : buf_cstr(&reply)),
	};
	catalog_log(COND_DELIVERY_FAILED, &ctx, kvs, ARRAY_LEN(kvs));
	metrics_inc(METRICS_MSG_BOUNCED);
	buf_fini(&reply);
}

int
deliver_report_defer(struct spool_msg *msg, size_t idx, unsigned attempts, int64_t next,
		     enum cond_id cond, const char *status, const char *mta, const char *diag,
		     struct buf *recs)
{
	struct spool_rcpt *r = &msg->rcpts[idx];
	struct spool_detail d = detail_of(cond, status, mta, diag);

	keep_last(r, &d);
	return spool_state_deferred(recs, idx, attempts, next, r->last != NULL ? r->last : "");
}

void
deliver_report_relayed(struct spool_msg *msg, size_t idx, const char *mta, const char *reply,
		       int peer_offers_dsn, struct buf *recs)
{
	struct spool_rcpt *r = &msg->rcpts[idx];
	struct spool_detail d = { .status = "2.0.0", .cond = NULL, .mta = mta, .diag = reply };

	keep_last(r, &d);
	if (peer_offers_dsn) {
		r->dsn_sent |= SPOOL_DSN_DELIVERED | SPOOL_DSN_RELAYED;
		(void)spool_state_dsn(recs, idx, SPOOL_DSN_DELIVERED | SPOOL_DSN_RELAYED);
	}
}

/* ---- after a pass ----------------------------------------------------- */

/* One report per recipient, with the strings it points to. */
struct report_set {
	struct dsn_report *r;
	char **scratch;		/* owned: per report, its parsed detail */
	char **diag;		/* owned: per report, a rendered reply */
	size_t n;
};

static void
set_fini(struct report_set *s)
{
	for (size_t k = 0; k < s->n; k++) {
		free(s->scratch[k]);
		free(s->diag[k]);
	}
	s->n = 0;
}

/* Adds a report for recipient i from its last detail (room for every
 * recipient, made at the first). */
static struct dsn_report *
set_add(struct report_set *s, const struct spool_msg *msg, size_t i, enum dsn_action a,
	struct spool_detail *d)
{
	if (s->r == NULL) {
		s->r = xcalloc(msg->nrcpts, sizeof(*s->r));
		s->scratch = xcalloc(msg->nrcpts, sizeof(char *));
		s->diag = xcalloc(msg->nrcpts, sizeof(char *));
	}
	struct dsn_report *x = &s->r[s->n];
	const char *last = msg->rcpts[i].last != NULL ? msg->rcpts[i].last : "";
	size_t len = strlen(last) + 1;

	s->scratch[s->n] = xmalloc(len);
	s->diag[s->n] = NULL;
	spool_detail_parse(last, s->scratch[s->n], len, d);
	memset(x, 0, sizeof(*x));
	x->idx = i;
	x->action = a;
	x->cond = COND__COUNT;
	if (d->cond != NULL && catalog_find(d->cond, &x->cond) < 0)
		x->cond = COND__COUNT;
	x->status = d->status;
	x->remote_mta = d->mta;
	x->diagnostic = d->diag;
	x->last_attempt = (int64_t)time(NULL);
	s->n++;
	return x;
}

/* The last deferral's reply, rendered from its row when no peer spoke. */
static const char *
render_last(struct report_set *s, struct dsn_report *x, const struct config *cfg,
	    const struct spool_msg *msg, enum cond_id last)
{
	struct buf b;

	buf_init(&b, 2048);
	if (dsn_render(&b, cfg, msg, x->idx, last) < 0) {
		buf_fini(&b);
		return NULL;
	}
	s->diag[s->n - 1] = xstrdup(buf_cstr(&b));
	buf_fini(&b);
	return s->diag[s->n - 1];
}

/* Sends one DSN for the reports of s; on success (or none needed) their
 * dsn records go into recs. 0, or -1 (to be retried). */
static int
set_send(struct report_set *s, struct spool *sp, const struct config *cfg,
	 struct spool_msg *msg, struct buf *recs, char *dsn_qid)
{
	if (s->n == 0)
		return 0;
	if (dsn_send(sp, cfg, msg, s->r, s->n, dsn_qid) < 0)
		return -1;
	for (size_t k = 0; k < s->n; k++) {
		unsigned bit = dsn_action_bit(s->r[k].action);

		msg->rcpts[s->r[k].idx].dsn_sent |= bit;
		(void)spool_state_dsn(recs, s->r[k].idx, bit);
	}
	return 0;
}

/* Fails recipient i: deferred past the queue lifetime. */
static void
expire(const struct config *cfg, struct spool_msg *msg, size_t i, int64_t age,
       struct buf *recs)
{
	struct spool_rcpt *r = &msg->rcpts[i];
	const char *last = r->last != NULL ? r->last : "";
	size_t len = strlen(last) + 1;
	char *scratch = xmalloc(len);
	struct spool_detail d;
	struct log_ctx ctx = { .qid = msg->qid };
	enum cond_id lc = COND__COUNT;

	spool_detail_parse(last, scratch, len, &d);
	if (d.cond != NULL && catalog_find(d.cond, &lc) < 0)
		lc = COND__COUNT;
	struct kv kvs[] = {
		KVA("rcpt", r->addr, strlen(r->addr)), KVI("age_s", age),
		KV("last", d.cond != NULL ? d.cond : "-"),
	};
	catalog_log(COND_DELIVERY_EXPIRED, &ctx, kvs, ARRAY_LEN(kvs));
	/* the last status it waited with (4.2.2 over quota), else 4.4.7;
	 * the peer's last reply, else the last cause's own reply */
	struct buf reply;
	buf_init(&reply, 2048);
	if (d.diag == NULL)
		(void)dsn_render(&reply, cfg, msg, i, lc);
	const char *diag = d.diag != NULL ? d.diag : reply.len > 0 ? buf_cstr(&reply) : NULL;
	deliver_report_fail(cfg, msg, i, COND_DELIVERY_EXPIRED, d.status, d.mta, diag, recs);
	buf_fini(&reply);
	free(scratch);
}

/* The next pass no later than when a warning or the expiry is due. */
static void
cap_retry(unsigned *retry_s, int64_t due_in)
{
	unsigned v = due_in < 1 ? 1u : due_in > 65535 ? 65535u : (unsigned)due_in;

	if (*retry_s == 0 || v < *retry_s)
		*retry_s = v;
}

static void
log_delay_notices(const struct spool_msg *msg, const struct report_set *s, int64_t age,
		  const char *dsn_qid)
{
	struct log_ctx ctx = { .qid = msg->qid };

	for (size_t k = 0; k < s->n; k++) {
		const char *a = msg->rcpts[s->r[k].idx].addr;
		struct kv kvs[] = { KVA("rcpt", a, strlen(a)), KVI("age_s", age),
				    KV("dsn_qid", dsn_qid[0] != '\0' ? dsn_qid : "-") };

		if (msg->from[0] != '\0' &&
		    dsn_notify_wants(msg->rcpts[s->r[k].idx].notify, DSN_DELAYED))
			catalog_log(COND_DELIVERY_DELAY_NOTICE, &ctx, kvs, ARRAY_LEN(kvs));
	}
}

int
deliver_report(struct spool *sp, const struct config *cfg, struct spool_msg *msg,
	       struct buf *recs, unsigned *retry_s, int *reported)
{
	int64_t now = (int64_t)time(NULL), age = now - msg->received_at;
	int64_t life = (int64_t)cfg->outbound_max_queue_lifetime;
	int64_t warn = (int64_t)cfg->outbound_delay_warning;
	size_t n = msg->nrcpts, waiting = 0;
	struct report_set fail = { 0 }, delay = { 0 }, ok = { 0 };
	char dsn_qid[SPOOL_QID_SIZE];
	int pending = 0;
	size_t recs_len = recs->len;

	if (age < 0)
		age = 0;
	/* 1. past the queue lifetime: every waiting recipient fails */
	for (size_t i = 0; i < n; i++) {
		struct spool_rcpt *r = &msg->rcpts[i];

		if (r->done || r->failed)
			continue;
		if (life > 0 && age >= life)
			expire(cfg, msg, i, age, recs);
		else
			waiting++;
	}
	struct report_set *sets[] = { &fail, &delay, &ok };
	/* 2. the DSNs due: failures, delay warnings, successes */
	for (size_t i = 0; i < n; i++) {
		struct spool_rcpt *r = &msg->rcpts[i];
		struct spool_detail d;

		if (r->failed && !(r->dsn_sent & SPOOL_DSN_FAILED)) {
			struct dsn_report *x = set_add(&fail, msg, i, DSN_FAILED, &d);

			if (x->cond == COND_DELIVERY_EXPIRED && x->diagnostic == NULL)
				x->diagnostic = render_last(&fail, x, cfg, msg, x->cond);
		} else if (!r->done && !r->failed && warn > 0 && age >= warn &&
			   !(r->dsn_sent & SPOOL_DSN_DELAYED)) {
			struct dsn_report *x = set_add(&delay, msg, i, DSN_DELAYED, &d);
			enum cond_id lc = x->cond;

			if (x->diagnostic == NULL)
				x->diagnostic = render_last(&delay, x, cfg, msg, lc);
			x->retry_until = msg->received_at + life;
		} else if (r->done && dsn_notify_wants(r->notify, DSN_DELIVERED) &&
			   !(r->dsn_sent & (SPOOL_DSN_DELIVERED | SPOOL_DSN_RELAYED))) {
			/* into a Maildir: delivered; to a peer without DSN:
			 * relayed, with its name and reply */
			struct dsn_report *x = set_add(&ok, msg, i, DSN_DELIVERED, &d);

			x->status = "2.0.0";
			if (d.mta != NULL) {
				x->action = DSN_RELAYED;
			} else {
				x->cond = COND_DELIVERY_SUCCESS;
				x->diagnostic = NULL;
			}
		}
	}
	if (set_send(&fail, sp, cfg, msg, recs, dsn_qid) < 0)
		pending = 1;
	if (set_send(&delay, sp, cfg, msg, recs, dsn_qid) < 0)
		pending = 1;
	else if (delay.n > 0)
		log_delay_notices(msg, &delay, age, dsn_qid);
	if (set_send(&ok, sp, cfg, msg, recs, dsn_qid) < 0)
		pending = 1;
	for (size_t k = 0; k < ARRAY_LEN(sets); k++) {
		set_fini(sets[k]);
		free(sets[k]->r);
		free(sets[k]->scratch);
		free(sets[k]->diag);
	}
	*reported = recs->len != recs_len;
	if (waiting == 0 && !pending)
		return 1;
	if (pending)
		cap_retry(retry_s, REPORT_DSN_RETRY_S);
	if (waiting > 0) {
		if (warn > 0 && age < warn)
			cap_retry(retry_s, warn - age);
		if (life > 0)
			cap_retry(retry_s, life - age);
	}
	return 0;
}
