/*
 * deliver_remote.c - the queue manager's side of outbound delivery (see
 * deliver_remote.h): which recipients of a message leave the machine,
 * grouped into one job per next hop with everything the engine needs
 * (the envelope, an open descriptor of the spool file, where the data
 * lies in it); and, when the jobs come back, the state records, the log
 * lines and the retry times their results mean. Worker threads.
 */
#include "deliver_remote.h"
#include "deliver_private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "directory_srs.h"
#include "log.h"
#include "deliver_report.h"
#include "smtp_client.h"

unsigned
remote_retry_delay(const struct config *cfg, unsigned attempts)
{
	const struct config_durations *rs = &cfg->outbound_retry_schedule;
	size_t i;

	if (rs->n == 0)
		return 300;
	i = attempts > 0 ? attempts - 1 : 0;
	if (i >= rs->n)
		i = rs->n - 1;
	return rs->v[i] > 0 ? rs->v[i] : 1;
}

/* The domain of a recipient, or NULL. */
static const char *
rcpt_domain(const struct spool_rcpt *r)
{
	const char *at = strrchr(r->addr, '@');

	return at != NULL && at[1] != '\0' ? at + 1 : NULL;
}

/* 1 if the client address text of a message is in server.trusted_networks;
 * a message with no client address (made here) counts as trusted. */
static int
client_trusted(const struct config *cfg, const char *client)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (client == NULL || client[0] == '\0')
		return 1;
	if (inet_pton(AF_INET, client, &sin->sin_addr) == 1)
		sin->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, client, &sin6->sin6_addr) == 1)
		sin6->sin6_family = AF_INET6;
	else
		return 1;
	return cidr_list_match(&cfg->server_trusted_networks, (struct sockaddr *)&ss);
}

/* The envelope sender the message leaves with: its own, or with SRS
 * (srs.enabled) when it can only be leaving because a forward, alias or
 * catch-all of ours sent it on: not <>, not local, not from a trusted
 * client (docs/design.md, "SRS"). Owned by the caller. */
static char *
remote_sender(const struct config *cfg, const struct spool_msg *msg)
{
	const char *from = msg->from != NULL ? msg->from : "";
	const char *at = strrchr(from, '@');
	const struct srs *srs = directory_srs(cfg);
	char out[SRS_ADDR_MAX];

	if (srs == NULL || at == NULL || config_is_local_domain(cfg, at + 1, strlen(at + 1)) ||
	    client_trusted(cfg, msg->client))
		return xstrdup(from);
	if (srs_forward(srs, from, time(NULL), out, sizeof(out)) != 1)
		return xstrdup(from);	/* ours already, or too long to wrap */
	return xstrdup(out);
}

static struct outbound_job *
job_new(struct config *cfg, const struct spool_msg *msg, const struct config_route *rt,
	const char *domain, size_t cap)
{
	struct outbound_job *job = xcalloc(1, sizeof(*job));

	memcpy(job->qid, msg->qid, sizeof(job->qid));
	job->domain = xstrdup(domain);
	job->cfg = config_ref(cfg);
	job->route = rt;
	job->from = remote_sender(cfg, msg);
	job->envid = msg->envid != NULL ? xstrdup(msg->envid) : NULL;
	job->ret = msg->ret;
	job->body_8bit = msg->body_8bit;
	job->smtputf8 = msg->smtputf8;
	job->size = spool_msg_size(msg);
	job->fd = -1;
	job->off = msg->body_off;
	job->len = msg->body_len;
	job->crc = msg->body_crc;
	buf_init(&job->tags, SPOOL_MAX_TAGS);
	if (msg->tags.len > 0 && buf_append(&job->tags, msg->tags.data, msg->tags.len) < 0) {
		outbound_job_fini(job);
		free(job);
		return NULL;
	}
	job->received_at = msg->received_at;
	job->rcpts = xcalloc(cap, sizeof(*job->rcpts));
	job->idx = xcalloc(cap, sizeof(*job->idx));
	return job;
}

/* A wanted recipient and its next hop, for grouping. */
struct hop {
	size_t idx;			/* in the message */
	const struct config_route *rt;
	const char *domain;		/* "" when none */
};

/* Orders by next hop: the route, then (MX routes) the domain, then the
 * recipient's place in the message, so each hop's recipients are one
 * run in their own order. */
static int
hop_cmp(const void *a, const void *b)
{
	const struct hop *x = a, *y = b;
	int c;

	if (x->rt != y->rt)
		return (uintptr_t)x->rt < (uintptr_t)y->rt ? -1 : 1;
	if (x->rt->via == ROUTE_VIA_MX && (c = strcasecmp(x->domain, y->domain)) != 0)
		return c;
	return (x->idx > y->idx) - (x->idx < y->idx);
}

static int
same_hop(const struct hop *x, const struct hop *y)
{
	return x->rt == y->rt && (x->rt->via != ROUTE_VIA_MX || strcasecmp(x->domain, y->domain) == 0);
}

struct outbound_job *
remote_plan(struct config *cfg, const struct spool_msg *msg, const unsigned char *want,
	    const char **why)
{
	struct outbound_job *head = NULL, **tail = &head;
	struct hop *hops;
	size_t n = 0;

	*why = NULL;
	if (msg->file == NULL) {
		*why = "the message has no spool file to stream from";
		return NULL;
	}
	/* One route lookup per recipient, then O(n log n) grouping. */
	hops = xcalloc(msg->nrcpts ? msg->nrcpts : 1, sizeof(*hops));
	for (size_t i = 0; i < msg->nrcpts; i++) {
		const char *dom = rcpt_domain(&msg->rcpts[i]);

		if (!want[i])
			continue;
		hops[n].idx = i;
		hops[n].domain = dom != NULL ? dom : "";
		hops[n].rt = config_route_for(cfg, hops[n].domain);
		n++;
	}
	qsort(hops, n, sizeof(*hops), hop_cmp);
	for (size_t i = 0, end; i < n; i = end) {
		struct outbound_job *job;
		int fd;

		for (end = i + 1; end < n && same_hop(&hops[i], &hops[end]); end++)
			;
		job = job_new(cfg, msg, hops[i].rt, hops[i].domain, end - i);
		if (job == NULL)
			break;
		for (size_t k = i; k < end; k++) {
			const struct spool_rcpt *r = &msg->rcpts[hops[k].idx];

			job->rcpts[job->n].addr = xstrdup(r->addr);
			job->rcpts[job->n].orcpt = r->orcpt != NULL ? xstrdup(r->orcpt) : NULL;
			job->rcpts[job->n].notify = r->notify;
			job->idx[job->n++] = hops[k].idx;
		}
		/* One descriptor per job: the engine closes it when done. */
		fd = open(msg->file, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			*why = strerror(errno);
			outbound_job_fini(job);
			free(job);
			break;
		}
		job->fd = fd;
		*tail = job;
		tail = &job->next;
	}
	free(hops);
	if (*why != NULL) {	/* all or nothing: the pass retries later */
		remote_jobs_free(&head);
		return NULL;
	}
	return head;
}

void
remote_jobs_free(struct outbound_job **headp)
{
	struct outbound_job *job = *headp;

	while (job != NULL) {
		struct outbound_job *next = job->next;

		outbound_job_fini(job);
		free(job);
		job = next;
	}
	*headp = NULL;
}

static const char *
kind_name(enum outbound_kind k)
{
	return k == OUTBOUND_DONE ? "sent" : k == OUTBOUND_FAILED ? "bounced" : "deferred";
}

void
remote_log(const struct outbound_job *job, size_t k, unsigned retry_s, int64_t now)
{
	const struct outbound_result *res = &job->res[k];
	struct log_ctx ctx = { .qid = job->qid };
	const char *rcpt = job->rcpts[k].addr;
	uint64_t age = now > job->received_at ? (uint64_t)(now - job->received_at) : 0;
	char delays[96];
	enum cond_id row = res->kind == OUTBOUND_DONE	  ? COND_DELIVERY_REMOTE_SENT
			   : res->kind == OUTBOUND_FAILED ? COND_DELIVERY_REMOTE_REJECTED
							  : COND_DELIVERY_DEFERRED;
	uint64_t spent_ms = job->connect_ms + job->transfer_ms;
	uint64_t queued_s = age > spent_ms / 1000u ? age - spent_ms / 1000u : 0;

	/* queued before this attempt / connecting / the transaction */
	snprintf(delays, sizeof(delays), "%llu/%llu.%02llu/%llu.%02llu",
		 (unsigned long long)queued_s,
		 (unsigned long long)(job->connect_ms / 1000u),
		 (unsigned long long)(job->connect_ms % 1000u / 10u),
		 (unsigned long long)(job->transfer_ms / 1000u),
		 (unsigned long long)(job->transfer_ms % 1000u / 10u));
	if (row == COND_DELIVERY_DEFERRED) {
		struct kv kvs[] = {
			KVA("rcpt", rcpt, strlen(rcpt)), KV("relay", res->relay), KVU("delay", age),
			KV("delays", delays), KV("dsn", res->status), KV("status", kind_name(res->kind)),
			KV("reply", res->reply), KV("cause", catalog_get(res->cond)->id),
			KVU("retry_s", retry_s),
		};

		catalog_log(row, &ctx, kvs, ARRAY_LEN(kvs));
		metrics_inc(METRICS_MSG_DEFERRED);
	} else {
		struct kv kvs[] = {
			KVA("rcpt", rcpt, strlen(rcpt)), KV("relay", res->relay), KVU("delay", age),
			KV("delays", delays), KV("dsn", res->status), KV("status", kind_name(res->kind)),
			KV("reply", res->reply),
		};

		catalog_log(row, &ctx, kvs, ARRAY_LEN(kvs));
		if (row == COND_DELIVERY_REMOTE_SENT)
			deliver_metrics_delivered(job->qid);
	}
}

/* The rows that decide for a whole job, logged once with the domain. */
void
remote_log_job(const struct outbound_job *job)
{
	struct log_ctx ctx = { .qid = job->qid };
	const struct outbound_result *res;

	if (job->n == 0)
		return;
	res = &job->res[0];
	switch (res->cond) {
	case COND_DELIVERY_DNS_NXDOMAIN:
	case COND_DELIVERY_DNS_NULL_MX:
	case COND_DELIVERY_DNS_TEMPFAIL:
	case COND_DELIVERY_MX_UNUSABLE:
	case COND_DELIVERY_ROUTE_REFUSED: {
		struct kv kvs[] = {
			KV("domain", job->domain), KV("status", res->status), KV("reply", res->reply),
		};

		catalog_log(res->cond, &ctx, kvs, ARRAY_LEN(kvs));
		break;
	}
	default:
		break;
	}
}

/* ---- a pass's outbound side (deliver_private.h) --------------------------- */

int
remote_enabled(struct deliver *d)
{
	int on;

	pthread_mutex_lock(&d->mu);
	on = d->ob != NULL;
	pthread_mutex_unlock(&d->mu);
	return on;
}

/* The results of the item's outbound jobs, recorded in this pass: done
 * (flushed with the pass's other done records), failed, or deferred
 * until the retry schedule's next interval. */
void
remote_results(struct deliver_item *it, struct config *cfg, unsigned char *kind, int64_t now)
{
	struct spool_msg *msg = it->msg;
	struct deliver_pass *p = it->pass;

	for (struct outbound_job *job = it->results; job != NULL; job = job->next) {
		if (job->corrupt)
			p->corrupt = 1;
		remote_log_job(job);
		for (size_t k = 0; k < job->n; k++) {
			const struct outbound_result *res = &job->res[k];
			size_t i = job->idx[k];
			struct spool_rcpt *r;
			unsigned retry = 0;

			if (i >= msg->nrcpts)
				continue;
			r = &msg->rcpts[i];
			if (r->done || r->failed)
				continue;	/* recorded already */
			if (res->kind == OUTBOUND_DONE) {
				r->done = 1;
				p->rf[i] |= RF_PASS_DONE;
				p->newly_done++;
				/* "relayed" for NOTIFY=SUCCESS, unless the peer
				 * took the DSN duty over (it offered DSN) */
				deliver_report_relayed(msg, i, res->relay, res->reply, res->dsn_offered,
						       &p->recs);
			} else if (res->kind == OUTBOUND_FAILED) {
				deliver_report_fail(cfg, msg, i, res->cond, res->status, res->relay,
						    res->reply, &p->recs);
			} else {
				r->attempts++;
				retry = cfg != NULL ? remote_retry_delay(cfg, r->attempts) : 300;
				r->next_try = now + (int64_t)retry;
				(void)deliver_report_defer(msg, i, r->attempts, r->next_try, res->cond,
							   res->status, res->relay, res->reply,
							   &p->recs);
				kind[i] = OUT_REMOTE;
			}
			remote_log(job, k, retry, now);
		}
	}
}

/* On the engine's loop: a job is back. The last one sends the item to
 * the pool again, where a pass records the results. */
static void
remote_job_done(struct outbound_job *job)
{
	struct deliver_item *it = job->owner;
	struct deliver *d = it->d;
	int last, on;

	pthread_mutex_lock(&d->mu);
	job->next = it->results;
	it->results = job;
	last = --it->inflight == 0;
	on = d->ob != NULL;
	pthread_mutex_unlock(&d->mu);
	if (!last)
		return;
	/* Stopping: nothing is recorded; the spool keeps the message. */
	if (!on || workpool_submit_after(d->wp, d->cls, &it->wj, NULL, 0) < 0) {
		item_free(&it);
		d->pending--;
	}
}

/* After a pass planned jobs: they go to the engine; the item waits for
 * them (remote_job_done), off the pool's heap. */
int
remote_send(struct deliver *d, struct deliver_item *it)
{
	struct outbound_job *jobs = it->jobs, *job;
	struct outbound *ob;
	unsigned n = 0;

	pthread_mutex_lock(&d->mu);
	ob = d->ob;
	for (job = jobs; job != NULL; job = job->next)
		n++;
	if (ob != NULL)
		it->inflight = (uint16_t)n;
	pthread_mutex_unlock(&d->mu);
	if (ob == NULL)
		return -1;
	it->jobs = NULL;
	while (jobs != NULL) {
		job = jobs;
		jobs = job->next;
		job->next = NULL;
		job->owner = it;
		job->done = remote_job_done;
		outbound_submit(ob, job);
	}
	return 0;
}
