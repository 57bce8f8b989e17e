/*
 * outbound.c - the outbound engine (see outbound.h): jobs, destinations
 * and connections on one event loop.
 *
 * A job is resolved (outbound_mx.c) into the addresses to try, then
 * queued on its destination: the recipients' domain, or the registered
 * domain of its first MX host (outbound.destination_key = mx_domain: all
 * of one provider's MX hosts are one destination). A destination holds
 * at most outbound.destination_concurrency connections, starts at most
 * the route's rate of messages a minute, and after a 421 or a 4.7.x at
 * greeting, EHLO or MAIL is backed off as a whole: what waits for it is
 * deferred at once instead of knocking again. A connection that ends a
 * transaction well takes the destination's next job, or waits idle
 * (outbound.connection_cache_time) for one, up to
 * outbound.connection_reuse_limit transactions.
 *
 * Which failure is whose (issue 8): a connection failure or a 4xx/5xx
 * greeting or EHLO moves on to the next address; a 421 or 4.7.x backs
 * off the destination; a 4xx to RCPT defers that recipient only; a 5xx
 * to MAIL or DATA fails the transaction's recipients, a 5xx to RCPT that
 * recipient; a 452 4.5.3 (too many recipients) sends the rest in a new
 * transaction at once.
 */
#include "outbound_private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "dns.h"
#include "log.h"
#include "net_session.h"
#include "net_tls.h"
#include "regdomain.h"

#define OB_DEST_KEY_MAX 256
#define OB_DESTS_KEEP 1024	/* destinations kept while idle, at most */

struct ob_conn {
	struct outbound *ob;
	struct ob_dest *dest;
	struct smtp_client *c;		/* NULL while connecting fails over */
	struct outbound_job *job;	/* in progress, or NULL: idle */
	struct ob_conn *next;		/* the destination's idle list */
	struct ob_conn *aprev, *anext;	/* every connection of the engine */
	unsigned uses;
	int dsn;			/* the peer offers DSN */
	char relay[OUTBOUND_RELAY_MAX];
};

struct ob_dest {
	char key[OB_DEST_KEY_MAX];
	struct outbound_job *head, *tail;	/* waiting for a connection */
	size_t queued;
	unsigned active;		/* connections, opening, busy or idle */
	struct ob_conn *idle;
	uint64_t backoff_until;		/* loop ms; 0 = none */
	char backoff_reply[OUTBOUND_REPLY_MAX];
	uint64_t next_start;		/* rate: the next start allowed */
	struct loop_timer wake;		/* rate or back-off end */
	struct ob_dest *next;
	struct outbound *ob;
	unsigned pumping;		/* dest_pump frames on the stack */
	unsigned long sent, deferred, failed;
};


static void dest_pump(struct ob_dest *d);
static void dest_start(struct ob_dest *d);
static void conn_send(struct ob_conn *cn, struct outbound_job *job);

/* ---- jobs out ----------------------------------------------------------- */

/* The job leaves the engine: its owner takes it back. */
static void
job_finish(struct outbound_job *job)
{
	struct outbound *ob = job->ob;

	if (job->aprev != NULL)
		job->aprev->anext = job->anext;
	else if (ob->jobs == job)
		ob->jobs = job->anext;
	if (job->anext != NULL)
		job->anext->aprev = job->aprev;
	job->aprev = job->anext = NULL;
	outbound_mx_fini(job);
	free(job->pend);
	job->pend = NULL;
	job->npend = 0;
	job->done(job);
}

void
outbound_job_finish_all(struct outbound_job *job, enum outbound_kind kind, enum cond_id cond,
			const char *status, const char *reply)
{
	for (size_t i = 0; i < job->n; i++)
		if (job->res[i].cond == COND__COUNT)
			outbound_result_set(&job->res[i], kind, cond, status, reply, NULL);
	job_finish(job);
}

/* ---- destinations --------------------------------------------------------- */

static void
dest_wake(struct loop *loop, void *arg)
{
	(void)loop;
	dest_pump(arg);
}

static struct ob_dest *
dest_get(struct outbound *ob, const char *key)
{
	struct ob_dest *d;

	for (d = ob->dests; d != NULL; d = d->next)
		if (strcasecmp(d->key, key) == 0)
			return d;
	d = xcalloc(1, sizeof(*d));
	snprintf(d->key, sizeof(d->key), "%s", key);
	d->ob = ob;
	loop_timer_init(&d->wake, dest_wake, d);
	d->next = ob->dests;
	ob->dests = d;
	ob->ndests++;
	return d;
}

/* The destination a resolved job belongs to. */
static void
dest_key(const struct outbound_job *job, char *out, size_t len)
{
	const char *how = job->cfg->outbound_destination_key;

	if (job->route->via == ROUTE_VIA_HOSTS) {
		snprintf(out, len, "route:%s", job->route->name);
		return;
	}
	if (how != NULL && strcmp(how, "domain") == 0) {
		snprintf(out, len, "%s", job->domain);
		return;
	}
	if (!job->targets[0].tls_name ||
	    regdomain_of(job->targets[0].host, out, len) < 0)
		snprintf(out, len, "%s", job->targets[0].host);
}

/* Defers everything the destination holds: it is backed off. */
static void
dest_defer_queued(struct ob_dest *d)
{
	struct outbound_job *job;

	while ((job = d->head) != NULL) {
		d->head = job->next;
		d->queued--;
		d->deferred++;
		outbound_job_finish_all(job, OUTBOUND_DEFERRED, COND_DELIVERY_DESTINATION_BACKOFF,
					"4.4.5", d->backoff_reply);
	}
	d->tail = NULL;
}

static void
dest_backoff(struct ob_dest *d, const char *reply)
{
	struct config *cfg = d->ob->cfg;
	unsigned s = cfg->outbound_retry_schedule.n > 0 ? cfg->outbound_retry_schedule.v[0] : 300;
	struct kv kvs[] = { KV("destination", d->key), KVU("seconds", s), KV("reply", reply) };

	d->backoff_until = loop_now_ms(d->ob->loop) + (uint64_t)s * 1000u;
	/* wakes at its end: what queued meanwhile goes */
	loop_timer_set(d->ob->loop, &d->wake, (uint64_t)s * 1000u);
	snprintf(d->backoff_reply, sizeof(d->backoff_reply), "%s", reply);
	catalog_log(COND_DELIVERY_DESTINATION_BACKOFF, NULL, kvs, ARRAY_LEN(kvs));
	dest_defer_queued(d);
}

static struct tls_client *
tls_for(struct outbound *ob, const struct config_route *rt)
{
	const char *ca = rt->tls_ca_file;
	char err[256];

	if (rt->tls != ROUTE_TLS_VERIFY) {
		if (ob->tls_any == NULL)
			ob->tls_any = tls_client_new_noverify(err, sizeof(err));
		return ob->tls_any;
	}
	if (ca == NULL || *ca == '\0') {
		if (ob->tls == NULL)
			ob->tls = tls_client_new(NULL, err, sizeof(err));
		return ob->tls;
	}
	for (size_t i = 0; i < ob->ncas; i++)
		if (strcmp(ob->cas[i].ca, ca) == 0)
			return ob->cas[i].ctx;
	if (ob->ncas >= ARRAY_LEN(ob->cas))
		return ob->tls;
	ob->cas[ob->ncas].ca = xstrdup(ca);
	ob->cas[ob->ncas].ctx = tls_client_new(ca, err, sizeof(err));
	return ob->cas[ob->ncas++].ctx;
}

/* ---- connections -------------------------------------------------------- */

static void conn_ready(void *arg, struct smtp_client *c, const struct smtp_client_result *res);
static void conn_failover(struct ob_conn *cn, const struct smtp_client_result *res);

static void
conn_free(struct ob_conn *cn)
{
	struct ob_dest *d = cn->dest;

	if (d != NULL && d->active > 0)
		d->active--;
	if (cn->aprev != NULL)
		cn->aprev->anext = cn->anext;
	else
		cn->ob->conns = cn->anext;
	if (cn->anext != NULL)
		cn->anext->aprev = cn->aprev;
	free(cn);
}

static void
relay_format(const struct ob_target *t, char *out, size_t len)
{
	char addr[INET6_ADDRSTRLEN + 8];
	uint16_t port = t->sa.ss_family == AF_INET6
				? ntohs(((const struct sockaddr_in6 *)&t->sa)->sin6_port)
				: ntohs(((const struct sockaddr_in *)&t->sa)->sin_port);

	if (sockaddr_format((const struct sockaddr *)&t->sa, addr, sizeof(addr), 0) < 0)
		snprintf(addr, sizeof(addr), "?");
	snprintf(out, len, "%s[%s]:%u", t->host, addr, (unsigned)port);
}

static void
timeouts_of(const struct config *cfg, struct smtp_client_timeouts *t)
{
	t->connect_ms = cfg->outbound_connect_timeout * 1000u;
	t->greeting_ms = cfg->outbound_greeting_timeout * 1000u;
	t->helo_ms = cfg->outbound_helo_timeout * 1000u;
	t->starttls_ms = cfg->outbound_starttls_timeout * 1000u;
	t->auth_ms = cfg->outbound_helo_timeout * 1000u;
	t->mail_ms = cfg->outbound_mail_timeout * 1000u;
	t->rcpt_ms = cfg->outbound_rcpt_timeout * 1000u;
	t->data_ms = cfg->outbound_data_timeout * 1000u;
	t->block_ms = cfg->outbound_data_block_timeout * 1000u;
	t->dot_ms = cfg->outbound_data_done_timeout * 1000u;
	t->quit_ms = cfg->outbound_quit_timeout * 1000u;
}

/* Opens a connection for job to its current target. */
static void
conn_open(struct ob_conn *cn, struct outbound_job *job)
{
	struct outbound *ob = cn->ob;
	const struct config *cfg = job->cfg;
	const struct config_route *rt = job->route;
	const struct ob_target *t = &job->targets[job->ti];
	struct smtp_client_params p = { 0 };
	struct sockaddr_storage bind;
	const char *bind_s = t->sa.ss_family == AF_INET6 ? cfg->outbound_bind_address6
							: cfg->outbound_bind_address;

	cn->job = job;
	relay_format(t, cn->relay, sizeof(cn->relay));
	p.sa = (const struct sockaddr *)&t->sa;
	p.salen = t->salen;
	memset(&bind, 0, sizeof(bind));
	if (bind_s != NULL && *bind_s != '\0') {
		struct sockaddr_in *in = (struct sockaddr_in *)&bind;
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&bind;

		/* checked at load: an address of the family, no port */
		if (t->sa.ss_family == AF_INET6 && inet_pton(AF_INET6, bind_s, &in6->sin6_addr) == 1) {
			in6->sin6_family = AF_INET6;
			p.bind = (const struct sockaddr *)&bind;
			p.bindlen = sizeof(*in6);
		} else if (t->sa.ss_family == AF_INET && inet_pton(AF_INET, bind_s, &in->sin_addr) == 1) {
			in->sin_family = AF_INET;
			p.bind = (const struct sockaddr *)&bind;
			p.bindlen = sizeof(*in);
		}
	}
	p.host = t->host;
	p.helo = cfg->outbound_helo_name != NULL && *cfg->outbound_helo_name != '\0'
			 ? cfg->outbound_helo_name : cfg->hostname;
	p.self = cfg->hostname;
	p.tls = (enum smtp_client_tls)rt->tls;
	p.tls_ctx = tls_for(ob, rt);
	p.auth_user = rt->auth_user;
	p.auth_pass = rt->auth_pass;
	p.sid = job->qid;
	p.read_cls = ob->read_cls;
	timeouts_of(cfg, &p.t);
	job->started_ms = loop_now_ms(ob->loop);
	cn->c = NULL;
	if (smtp_client_open(&ob->table, ob->loop, ob->wp, &p, conn_ready, cn) == NULL) {
		struct smtp_client_result res = { .cond = COND_DELIVERY_CONNECT_FAILED,
						  .next_host = 1 };

		snprintf(res.reply.text, sizeof(res.reply.text), "no socket: %s",
			 strerror(errno));
		job->ti = job->ntargets;	/* no other address does better now */
		conn_failover(cn, &res);
	}
}

/* The recipients of job still to send. */
static void
job_pending_all(struct outbound_job *job)
{
	if (job->pend == NULL)
		job->pend = xcalloc(job->n ? job->n : 1, sizeof(*job->pend));
	job->npend = 0;
	for (size_t i = 0; i < job->n; i++)
		if (job->res[i].cond == COND__COUNT)
			job->pend[job->npend++] = i;
}

/* Where a connection could not be opened or greeted: the next address,
 * or the end of the job. */
static void
conn_failover(struct ob_conn *cn, const struct smtp_client_result *res)
{
	struct outbound_job *job = cn->job;
	struct ob_dest *d = cn->dest;
	char status[16], text[OUTBOUND_REPLY_MAX];

	if (res->reply.code == 0 && res->reply.text[0] == '\0' && res->err != 0)
		snprintf(text, sizeof(text), "%s at %s: %s", smtp_client_stage_name(res->stage),
			 cn->relay, strerror(res->err));
	else if (res->reply.code == 0 && res->reply.text[0] == '\0' && res->cond != COND__COUNT)
		snprintf(text, sizeof(text), "%s at %s: %s", smtp_client_stage_name(res->stage),
			 cn->relay, catalog_get(res->cond)->logtext);
	else
		outbound_reply_text(&res->reply, text, sizeof(text));
	if (res->cond == COND_DELIVERY_CONNECT_FAILED) {
		struct log_ctx ctx = { .qid = job->qid };
		struct kv kvs[] = {
			KV("host", job->targets[job->ti].host), KV("peer", cn->relay),
			KV("local", res->local_text[0] != '\0' ? res->local_text : "-"),
			KV("stage", smtp_client_stage_name(res->stage)),
			KV("errno", log_errno_name(res->err)), KV("err", text),
		};

		catalog_log(COND_DELIVERY_CONNECT_FAILED, &ctx, kvs, ARRAY_LEN(kvs));
	}
	if (res->loop) {
		cn->job = NULL;
		conn_free(cn);
		d->failed++;
		outbound_job_finish_all(job, OUTBOUND_FAILED, COND_DELIVERY_LOOP_TO_SELF, "5.3.5",
					"the peer names itself as this server: mail loops back");
		dest_pump(d);
		return;
	}
	if (res->backoff_destination) {
		cn->job = NULL;
		conn_free(cn);
		dest_backoff(d, text);
		d->deferred++;
		outbound_job_finish_all(job, OUTBOUND_DEFERRED, COND_DELIVERY_DESTINATION_BACKOFF,
					outbound_reply_status(&res->reply, status, sizeof(status)), text);
		dest_pump(d);
		return;
	}
	if (job->ti + 1 < job->ntargets) {
		job->ti++;
		conn_open(cn, job);	/* the same slot, the next address */
		return;
	}
	d->deferred++;
	for (size_t i = 0; i < job->n; i++)
		if (job->res[i].cond == COND__COUNT)
			outbound_result_set(&job->res[i], OUTBOUND_DEFERRED,
				   res->cond != COND__COUNT ? res->cond : COND_DELIVERY_CONNECT_FAILED,
				   res->reply.code >= 400 ? outbound_reply_status(&res->reply, status, sizeof(status))
							 : "4.4.1",
				   text, cn->relay);
	cn->job = NULL;
	conn_free(cn);
	job_finish(job);
	dest_pump(d);
}

static void
conn_ready(void *arg, struct smtp_client *c, const struct smtp_client_result *res)
{
	struct ob_conn *cn = arg;
	struct outbound_job *job = cn->job;

	job->connect_ms += loop_now_ms(cn->ob->loop) - job->started_ms;
	if (res->cond != COND__COUNT || c == NULL) {
		cn->c = NULL;
		conn_failover(cn, res);
		return;
	}
	cn->c = c;
	cn->dsn = (res->ext.flags & SMTP_EXT_DSN) != 0;
	job_pending_all(job);
	conn_send(cn, job);
}

static void conn_sent(void *arg, struct smtp_client *c, const struct smtp_client_result *res);

static void
conn_send(struct ob_conn *cn, struct outbound_job *job)
{
	struct smtp_client_msg m = { 0 };
	struct smtp_client_rcpt *rc;
	size_t n = job->npend;
	unsigned limit = job->cfg->outbound_recipient_limit;

	if (limit > 0 && n > limit)
		n = limit;
	rc = xcalloc(n ? n : 1, sizeof(*rc));
	for (size_t k = 0; k < n; k++)
		rc[k] = job->rcpts[job->pend[k]];
	cn->job = job;
	cn->uses++;
	m.from = job->from;
	m.ret = job->ret;
	m.envid = job->envid;
	m.body_8bit = job->body_8bit;
	m.smtputf8 = job->smtputf8;
	m.size = job->size;
	m.fd = job->fd;
	m.off = job->off;
	m.len = job->len;
	m.crc = job->crc;
	m.tags = &job->tags;
	m.rcpts = rc;
	m.n = n;
	job->sending = rc;
	job->nsending = n;
	job->started_ms = loop_now_ms(cn->ob->loop);
	if (smtp_client_send(cn->c, &m, conn_sent, cn) < 0) {
		struct smtp_client_result res = { .cond = COND_DELIVERY_CONNECT_FAILED };

		free(rc);
		job->sending = NULL;
		snprintf(res.reply.text, sizeof(res.reply.text), "connection lost");
		smtp_client_abort(cn->c);
		cn->c = NULL;
		conn_failover(cn, &res);
	}
}

/* A cached connection's idle time is up, or the peer closed it: the
 * client has closed it and frees it after this. */
static void
conn_idle_end(void *arg, struct smtp_client *c)
{
	struct ob_conn *cn = arg;
	struct ob_dest *d = cn->dest;
	struct ob_conn **pp;

	(void)c;
	for (pp = &d->idle; *pp != NULL; pp = &(*pp)->next)
		if (*pp == cn) {
			*pp = cn->next;
			break;
		}
	cn->c = NULL;
	conn_free(cn);
	dest_pump(d);
}

/* After a transaction: the next job on this connection, idle, or gone. */
static void
conn_after(struct ob_conn *cn, int reusable)
{
	struct ob_dest *d = cn->dest;
	const struct config *cfg = cn->ob->cfg;

	cn->job = NULL;
	if (!reusable || cn->ob->stopping || cn->uses >= cfg->outbound_connection_reuse_limit) {
		if (cn->c != NULL)
			smtp_client_quit(cn->c);
		cn->c = NULL;
		conn_free(cn);
		dest_pump(d);
		return;
	}
	cn->next = d->idle;
	d->idle = cn;
	smtp_client_on_idle(cn->c, cfg->outbound_connection_cache_time * 1000u, conn_idle_end, cn);
	dest_pump(d);
}

static void
conn_sent(void *arg, struct smtp_client *c, const struct smtp_client_result *res)
{
	struct ob_conn *cn = arg;
	struct outbound_job *job = cn->job;
	struct ob_dest *d = cn->dest;
	char ttext[OUTBOUND_REPLY_MAX];
	const struct smtp_client_reply *tr = &res->reply;	/* the transaction's */
	int txn_ok = res->cond == COND__COUNT && tr->code >= 200 && tr->code < 300;
	size_t again;

	(void)c;
	job->transfer_ms += loop_now_ms(cn->ob->loop) - job->started_ms;
	if (res->cond == COND_QUEUE_SPOOL_CORRUPT)
		job->corrupt = 1;
	again = outbound_results_map(job, res, cn->relay, cn->dsn, ttext, sizeof(ttext));
	free(job->sending);
	job->sending = NULL;
	/* Recipients past outbound.recipient_limit wait in pend too. */
	for (size_t k = job->nsending; k < job->npend; k++)
		job->pend[again++] = job->pend[k];
	job->npend = again;
	job->nsending = 0;
	if (res->backoff_destination)
		dest_backoff(d, ttext);
	if (job->npend > 0 && res->reusable && !job->corrupt) {
		conn_send(cn, job);	/* the rest, in a new transaction */
		return;
	}
	if (!res->reusable)
		cn->c = NULL;	/* the client frees it after this callback */
	for (size_t i = 0; i < job->n; i++)
		if (job->res[i].cond == COND__COUNT)
			outbound_result_set(&job->res[i], OUTBOUND_DEFERRED, COND_DELIVERY_REMOTE_TEMPFAIL,
				   "4.5.3", "too many recipients; the rest next time", cn->relay);
	if (txn_ok)
		d->sent++;
	else
		d->deferred++;
	job_finish(job);
	conn_after(cn, res->reusable);
}

/* Idle: nothing queued, no connection, no back-off or rate window. */
static int
dest_idle(const struct ob_dest *d, uint64_t now)
{
	return d->pumping == 0 && d->head == NULL && d->active == 0 && d->idle == NULL &&
	       d->backoff_until == 0 && !loop_timer_armed(&d->wake) && d->next_start <= now;
}

/* The engine keeps the destinations it met (their counts show in
 * `postern queue status`), but past OB_DESTS_KEEP it forgets the idle
 * ones, down to half of that: memory stays bounded however many
 * destinations it meets. */
static void
dest_sweep(struct outbound *ob)
{
	uint64_t now = loop_now_ms(ob->loop);
	struct ob_dest **pp = &ob->dests;

	if (ob->ndests <= OB_DESTS_KEEP)
		return;
	while (*pp != NULL && ob->ndests > OB_DESTS_KEEP / 2) {
		struct ob_dest *d = *pp;

		if (!dest_idle(d, now)) {
			pp = &d->next;
			continue;
		}
		*pp = d->next;
		ob->ndests--;
		free(d);
	}
}

/* Starts what the destination may start now; idle destinations past
 * OB_DESTS_KEEP may be forgotten after (d among them). */
static void
dest_pump(struct ob_dest *d)
{
	struct outbound *ob = d->ob;

	d->pumping++;
	dest_start(d);
	d->pumping--;
	dest_sweep(ob);
}

static void
dest_start(struct ob_dest *d)
{
	struct outbound *ob = d->ob;
	const struct config *cfg = ob->cfg;
	uint64_t now = loop_now_ms(ob->loop);

	if (d->backoff_until != 0 && now < d->backoff_until) {
		dest_defer_queued(d);
		return;
	}
	d->backoff_until = 0;
	while (d->head != NULL) {
		struct outbound_job *job = d->head;
		unsigned rate = job->route->rate_per_min;
		struct ob_conn *cn;

		if (rate > 0 && now < d->next_start) {
			loop_timer_set(ob->loop, &d->wake, d->next_start - now);
			return;
		}
		if (d->idle == NULL && d->active >= cfg->outbound_destination_concurrency)
			return;	/* a connection's end pumps again */
		d->head = job->next;
		if (d->head == NULL)
			d->tail = NULL;
		d->queued--;
		job->next = NULL;
		if (rate > 0)
			d->next_start = (d->next_start > now ? d->next_start : now) + 60000u / rate;
		if (d->idle != NULL) {
			cn = d->idle;
			d->idle = cn->next;
			cn->next = NULL;
			job_pending_all(job);
			conn_send(cn, job);
			continue;
		}
		cn = xcalloc(1, sizeof(*cn));
		cn->ob = ob;
		cn->dest = d;
		cn->anext = ob->conns;
		if (ob->conns != NULL)
			ob->conns->aprev = cn;
		ob->conns = cn;
		d->active++;
		conn_open(cn, job);
	}
}

/* outbound_mx.c found the addresses: the job joins its destination. */
void
outbound_job_resolved(struct outbound_job *job)
{
	char key[OB_DEST_KEY_MAX];
	struct ob_dest *d;

	outbound_mx_fini(job);
	dest_key(job, key, sizeof(key));
	d = dest_get(job->ob, key);
	job->dest = d;
	job->next = NULL;
	if (d->tail != NULL)
		d->tail->next = job;
	else
		d->head = job;
	d->tail = job;
	d->queued++;
	dest_pump(d);
}

/* ---- jobs in ------------------------------------------------------------ */

static void
job_start(struct outbound *ob, struct outbound_job *job)
{
	job->ob = ob;
	job->anext = ob->jobs;
	if (ob->jobs != NULL)
		ob->jobs->aprev = job;
	ob->jobs = job;
	if (ob->stopping) {
		outbound_job_finish_all(job, OUTBOUND_DEFERRED, COND_DELIVERY_DEFERRED, "4.3.2",
					"the server is stopping");
		return;
	}
	if (job->route->via == ROUTE_VIA_REFUSE) {
		outbound_job_finish_all(job, OUTBOUND_FAILED, COND_DELIVERY_ROUTE_REFUSED, "5.7.1",
					"the route for this domain refuses delivery");
		return;
	}
	outbound_mx_start(job);
}

static void
inbox_take(struct loop *loop, void *arg)
{
	struct outbound *ob = arg;
	struct outbound_job *list, *rev = NULL;

	(void)loop;
	pthread_mutex_lock(&ob->mu);
	list = ob->inbox;
	ob->inbox = NULL;
	ob->posted = 0;
	pthread_mutex_unlock(&ob->mu);
	while (list != NULL) {	/* the inbox is newest first */
		struct outbound_job *j = list;

		list = j->next;
		j->next = rev;
		rev = j;
	}
	while (rev != NULL) {
		struct outbound_job *j = rev;

		rev = j->next;
		j->next = NULL;
		job_start(ob, j);
	}
}

void
outbound_submit(struct outbound *ob, struct outbound_job *job)
{
	int post;

	job->res = xcalloc(job->n ? job->n : 1, sizeof(*job->res));
	for (size_t i = 0; i < job->n; i++)
		job->res[i].cond = COND__COUNT;
	job->corrupt = 0;
	pthread_mutex_lock(&ob->mu);
	job->next = ob->inbox;
	ob->inbox = job;
	post = !ob->posted;
	ob->posted = 1;
	pthread_mutex_unlock(&ob->mu);
	if (post)
		loop_post(ob->loop, inbox_take, ob);
}

void
outbound_job_fini(struct outbound_job *job)
{
	outbound_mx_fini(job);
	for (size_t i = 0; i < job->n; i++) {
		free((char *)job->rcpts[i].addr);
		free((char *)job->rcpts[i].orcpt);
	}
	free(job->rcpts);
	free(job->idx);
	free(job->res);
	free(job->targets);
	free(job->pend);
	free(job->sending);
	free(job->domain);
	free(job->from);
	free(job->envid);
	buf_fini(&job->tags);
	if (job->fd >= 0)
		(void)close(job->fd);
	job->fd = -1;
	if (job->cfg != NULL)
		config_unref(&job->cfg);
	memset(job, 0, sizeof(*job));
	job->fd = -1;
}

/* ---- the engine --------------------------------------------------------- */

struct outbound *
outbound_new(struct loop *loop, struct dns_resolver *dns, struct workpool *wp, struct config *cfg)
{
	struct outbound *ob = xcalloc(1, sizeof(*ob));

	ob->loop = loop;
	ob->dns = dns;
	ob->wp = wp;
	pthread_mutex_init(&ob->mu, NULL);
	ob->cfg = cfg != NULL ? config_ref(cfg) : NULL;
	ob->read_cls = smtp_client_class_new(wp);
	if (ob->read_cls < 0) {
		outbound_free(&ob);
		return NULL;
	}
	return ob;
}

struct ob_reload {
	struct outbound *ob;
	struct config *cfg;
};

static void
config_apply(struct loop *loop, void *arg)
{
	struct ob_reload *rl = arg;
	struct config *old = rl->ob->cfg;

	(void)loop;
	rl->ob->cfg = rl->cfg;
	if (old != NULL)
		config_unref(&old);
	free(rl);
}

void
outbound_set_config(struct outbound *ob, struct config *cfg)
{
	struct ob_reload *rl = xcalloc(1, sizeof(*rl));

	rl->ob = ob;
	rl->cfg = config_ref(cfg);
	loop_post(ob->loop, config_apply, rl);
}

static void
drop_session(void *owner)
{
	(void)owner;	/* the client frees its own session (smtp_client_abort) */
}

void
outbound_free(struct outbound **obp)
{
	struct outbound *ob = *obp;

	if (ob == NULL)
		return;
	ob->stopping = 1;
	/* The loop has stopped: what is still here ends deferred, unrecorded. */
	inbox_take(ob->loop, ob);
	/* Connections first (no callback after an abort), then every job
	 * still resolving, queued or sending ends deferred. */
	while (ob->conns != NULL) {
		struct ob_conn *cn = ob->conns;

		if (cn->c != NULL)
			smtp_client_abort(cn->c);
		cn->c = NULL;
		cn->dest = NULL;
		conn_free(cn);
	}
	while (ob->jobs != NULL)
		outbound_job_finish_all(ob->jobs, OUTBOUND_DEFERRED, COND_DELIVERY_DEFERRED,
					"4.3.2", "the server is stopping");
	for (struct ob_dest *d = ob->dests, *dn; d != NULL; d = dn) {
		dn = d->next;
		loop_timer_cancel(ob->loop, &d->wake);
		free(d);
	}
	net_table_fini(&ob->table, drop_session);
	if (ob->tls != NULL)
		tls_client_unref(&ob->tls);
	for (size_t i = 0; i < ob->ncas; i++) {
		free(ob->cas[i].ca);
		if (ob->cas[i].ctx != NULL)
			tls_client_unref(&ob->cas[i].ctx);
	}
	if (ob->tls_any != NULL)
		tls_client_unref(&ob->tls_any);
	if (ob->cfg != NULL)
		config_unref(&ob->cfg);
	pthread_mutex_destroy(&ob->mu);
	free(ob);
	*obp = NULL;
}

void
outbound_describe(struct outbound *ob, struct buf *out)
{
	char line[512];

	for (struct ob_dest *d = ob->dests; d != NULL; d = d->next) {
		int n = snprintf(line, sizeof(line),
				 "destination=%s queued=%zu active=%u sent=%lu deferred=%lu failed=%lu backoff=%s\n",
				 d->key, d->queued, d->active, d->sent, d->deferred, d->failed,
				 d->backoff_until != 0 ? "yes" : "no");

		if (n > 0 && buf_append(out, line, (size_t)n < sizeof(line) ? (size_t)n
									 : sizeof(line) - 1) < 0)
			return;	/* out is full */
	}
}
