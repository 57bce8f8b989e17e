/*
 * state_redis.c - the Redis (or Valkey) back end of the state store
 * (state.h), on hiredis 0.14's asynchronous API driven by our own loops.
 *
 * Owns: the back end (the server's address, resolved once at open), one
 * connection per loop (struct rconn, made on that loop's first request and
 * touched only by that loop's thread), the adapter that gives hiredis our
 * loop (its ev.addRead/delRead/addWrite/delWrite/cleanup hooks over
 * loop_add_fd/loop_mod_fd/loop_del_fd), the timer of each request (hiredis
 * 0.14 has none), the back-off between connection attempts, and the log of
 * the server going away and coming back (rate-limited, shared by the loops).
 *
 * A request's operations go out pipelined (state_redis_ops.c maps them to
 * commands); it ends when the last reply came, or failed when its timer
 * fires, the connection breaks, or the server is known to be away (then
 * at once: nothing waits for a server that is not there, and at most
 * REDIS_INFLIGHT_MAX requests wait on one connection). A connection whose
 * request timed out is dropped, so a late reply can never be taken for
 * another request's; the next connection is opened after the back-off.
 * done always runs from a deferred call of the loop, never inside hiredis
 * nor inside state_submit.
 *
 * hiredis ordering: we never free a context from inside one of its
 * callbacks. A context hiredis frees itself (an error, the server gone)
 * is noticed in the cleanup hook, which hiredis calls after it ran the
 * pending callbacks with no reply (those we ignore) and before it frees
 * the context. Callbacks of a context we dropped see that it is no longer
 * their connection's and do nothing.
 */
#include "state_private.h"
#include "state_redis.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <hiredis/async.h>

#include "catalog.h"
#include "log.h"

#define REDIS_INFLIGHT_MAX 1024		/* requests waiting on one connection */
#define REDIS_BACKOFF_MIN_MS 200	/* first wait after a failure, doubling */
#define REDIS_BACKOFF_MAX_MS 5000
#define REDIS_LOG_EVERY_MS 60000	/* STORE-STATE-REDIS-DOWN while down */

struct rconn;
struct rreq;

/* One hiredis context's registration on the loop (its ev.data). It
 * outlives the context until the next deferred flush, so an I/O callback
 * during which hiredis freed the context reads `closed`, not freed memory. */
struct rlink {
	struct rconn *c;
	redisAsyncContext *ac;
	int fd;
	unsigned events;
	int registered;
	int closed;
	struct rlink *next;		/* the connection's graveyard */
};

/* One command's reply: which request, which operation, which command. */
struct rslot {
	struct rreq *r;
	unsigned op;
	unsigned part;
};

struct rreq {
	struct state_req *req;
	struct rconn *c;
	struct rreq *prev, *next;	/* the connection's requests in flight */
	struct loop_timer timer;
	unsigned pending;		/* replies still to come */
	struct rslot slots[STATE_OPS_MAX * REDIS_OP_CMDS];
};

struct redis_be;

/* One loop's connection. */
struct rconn {
	struct redis_be *be;
	struct loop *loop;
	redisAsyncContext *ac;		/* NULL: none */
	int answered;			/* ac gave a reply */
	uint64_t retry_at;		/* loop ms before which we do not connect */
	unsigned backoff_ms;		/* the next wait after a failure */
	struct rreq *head, *tail;
	size_t ninflight;
	struct state_req *done_head, *done_tail;	/* through req->next */
	struct rlink *graveyard;
	int flush_set;			/* conn_flush is deferred */
};

struct redis_be {
	char addr[256];			/* state.redis, for the log */
	char what[272];			/* "redis <addr>", err's prefix */
	char host[INET6_ADDRSTRLEN];	/* numeric; or */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int port;
	unsigned timeout_ms;
	int closing;			/* state_close runs: no more requests */
	pthread_mutex_t lock;		/* conns, and the log's view below */
	struct rconn **conns;
	size_t nconns;
	int down;
	uint64_t down_since_ms, logged_ms;
	unsigned suppressed;		/* failures not logged since logged_ms */
};

/* ---- the log: down (rate-limited) and up again -------------------------- */

static void
be_note_down(struct redis_be *be, const char *why)
{
	uint64_t now = loop_clock_ms();
	unsigned suppressed = 0;
	int log_it = 0;
	char nsup[16];

	pthread_mutex_lock(&be->lock);
	if (!be->down) {
		be->down = 1;
		be->down_since_ms = now;
		log_it = 1;
	} else if (now - be->logged_ms >= REDIS_LOG_EVERY_MS) {
		log_it = 1;
	}
	if (log_it) {
		suppressed = be->suppressed;
		be->suppressed = 0;
		be->logged_ms = now;
	} else {
		be->suppressed++;
	}
	pthread_mutex_unlock(&be->lock);
	if (!log_it)
		return;
	if (snprintf(nsup, sizeof(nsup), "%u", suppressed) < 0)
		nsup[0] = '\0';
	struct kv kv[] = { KV("server", be->addr), KV("err", why), KV("suppressed", nsup) };
	catalog_log(COND_STORE_STATE_REDIS_DOWN, NULL, kv, ARRAY_LEN(kv));
}

static void
be_note_up(struct redis_be *be)
{
	uint64_t now = loop_clock_ms(), since = 0;
	int was_down;
	char down_ms[24];

	pthread_mutex_lock(&be->lock);
	was_down = be->down;
	if (was_down) {
		since = be->down_since_ms;
		be->down = 0;
		be->suppressed = 0;
	}
	pthread_mutex_unlock(&be->lock);
	if (!was_down)
		return;
	if (snprintf(down_ms, sizeof(down_ms), "%llu", (unsigned long long)(now - since)) < 0)
		down_ms[0] = '\0';
	struct kv kv[] = { KV("server", be->addr), KV("down_ms", down_ms) };
	catalog_log(COND_STORE_STATE_REDIS_UP, NULL, kv, ARRAY_LEN(kv));
}

/* ---- ending requests ------------------------------------------------------ */

static void
link_free_all(struct rlink **list)
{
	while (*list != NULL) {
		struct rlink *l = *list;

		*list = l->next;
		free(l);
	}
}

/* Deferred: the ended requests' done, then the dead links. */
static void
conn_flush(struct loop *loop, void *arg)
{
	struct rconn *c = arg;
	struct state_req *req = c->done_head;

	(void)loop;
	c->flush_set = 0;
	c->done_head = c->done_tail = NULL;
	link_free_all(&c->graveyard);
	while (req != NULL) {
		struct state_req *next = req->next;

		req->next = NULL;
		req->done(req);	/* may submit again: a new list */
		req = next;
	}
}

static void
conn_schedule_flush(struct rconn *c)
{
	if (c->flush_set || c->be->closing)
		return;
	c->flush_set = 1;
	loop_defer(c->loop, conn_flush, c);
}

static void
req_finish(struct rconn *c, struct state_req *req)
{
	req->next = NULL;
	if (c->done_tail != NULL)
		c->done_tail->next = req;
	else
		c->done_head = req;
	c->done_tail = req;
	conn_schedule_flush(c);
}

static void
rreq_end(struct rreq *r)
{
	struct rconn *c = r->c;

	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		c->head = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	else
		c->tail = r->prev;
	c->ninflight--;
	loop_timer_cancel(c->loop, &r->timer);
	req_finish(c, r->req);
	free(r);
}

/* Every request in flight on c ends failed (those failed already keep
 * their reason). */
static void
conn_fail_all(struct rconn *c, const char *why)
{
	while (c->head != NULL) {
		struct rreq *r = c->head;

		if (!r->req->failed)
			state_req_fail(r->req, c->be->what, why);
		rreq_end(r);
	}
}

/* The connection failed: the next attempt waits a while (doubling). */
static void
conn_down(struct rconn *c, const char *why)
{
	if (c->backoff_ms < REDIS_BACKOFF_MIN_MS)
		c->backoff_ms = REDIS_BACKOFF_MIN_MS;
	c->retry_at = loop_clock_ms() + c->backoff_ms;
	c->backoff_ms = c->backoff_ms * 2 > REDIS_BACKOFF_MAX_MS ? REDIS_BACKOFF_MAX_MS :
								   c->backoff_ms * 2;
	c->answered = 0;
	be_note_down(c->be, why);
}

/* We drop c's context (not from inside a hiredis callback): its pending
 * callbacks run now with no reply and find it is no longer c's. */
static void
conn_drop(struct rconn *c, const char *why)
{
	redisAsyncContext *ac = c->ac;

	if (ac == NULL)
		return;
	c->ac = NULL;
	redisAsyncFree(ac);
	conn_fail_all(c, why);
}

/* ---- the adapter: hiredis on our loop --------------------------------------- */

static void
link_io(struct loop *loop, int fd, unsigned events, void *arg)
{
	struct rlink *l = arg;

	(void)loop;
	(void)fd;
	if ((events & LOOP_READ) && !l->closed)
		redisAsyncHandleRead(l->ac);
	if ((events & LOOP_WRITE) && !l->closed)
		redisAsyncHandleWrite(l->ac);
}

/* A registration that fails leaves the request to its timer. */
static void
link_apply(struct rlink *l)
{
	if (l->closed)
		return;
	if (!l->registered) {
		if (loop_add_fd(l->c->loop, l->fd, l->events, link_io, l) == 0)
			l->registered = 1;
	} else if (loop_mod_fd(l->c->loop, l->fd, l->events) < 0) {
		l->events = 0;
	}
}

static void
ev_add_read(void *p)
{
	struct rlink *l = p;

	l->events |= LOOP_READ;
	link_apply(l);
}

static void
ev_del_read(void *p)
{
	struct rlink *l = p;

	l->events &= ~LOOP_READ;
	link_apply(l);
}

static void
ev_add_write(void *p)
{
	struct rlink *l = p;

	l->events |= LOOP_WRITE;
	link_apply(l);
}

static void
ev_del_write(void *p)
{
	struct rlink *l = p;

	l->events &= ~LOOP_WRITE;
	link_apply(l);
}

/* hiredis is freeing the context (we asked, or it met an error or the
 * end of the stream): off the loop; if it was still c's, c went down. */
static void
ev_cleanup(void *p)
{
	struct rlink *l = p;
	struct rconn *c = l->c;

	if (l->registered)
		loop_del_fd(c->loop, l->fd);
	l->registered = 0;
	l->closed = 1;
	l->next = c->graveyard;
	c->graveyard = l;
	conn_schedule_flush(c);
	if (c->ac == l->ac) {
		char why[128];
		const char *e = l->ac->errstr != NULL && l->ac->errstr[0] != '\0' ?
					l->ac->errstr : l->ac->c.errstr;

		if (slice_copy(slice_from_cstr(e[0] != '\0' ? e : "connection closed"),
			       why, sizeof(why)) < 0)
			why[0] = '\0';
		c->ac = NULL;
		conn_fail_all(c, why);
		conn_down(c, why);
	}
}

static void
on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct rconn *c = ac->data;
	struct rslot *s = priv;
	char err[128];

	/* a context we dropped, or one hiredis is freeing (ev_cleanup ends
	 * its requests) */
	if (c == NULL || c->ac != ac || reply == NULL)
		return;
	if (!c->answered) {
		c->answered = 1;
		c->backoff_ms = 0;
		be_note_up(c->be);
	}
	struct rreq *r = s->r;
	struct state_req *req = r->req;

	if (!req->failed && redis_op_reply(&req->ops[s->op], s->part, reply, err, sizeof(err)) < 0)
		state_req_fail(req, c->be->what, err);
	if (--r->pending == 0)
		rreq_end(r);
}

/* Opens c's context, not blocking (the address is numeric). */
static int
conn_connect(struct rconn *c, char *why, size_t whysize)
{
	struct redis_be *be = c->be;
	redisAsyncContext *ac = be->path[0] != '\0' ? redisAsyncConnectUnix(be->path) :
						      redisAsyncConnect(be->host, be->port);

	if (ac == NULL || ac->err) {
		const char *e = ac != NULL && ac->errstr != NULL ? ac->errstr : "out of memory";

		if (slice_copy(slice_from_cstr(e), why, whysize) < 0)
			why[0] = '\0';
		if (ac != NULL)
			redisAsyncFree(ac);
		conn_down(c, why);
		return -1;
	}
	struct rlink *l = xcalloc(1, sizeof(*l));

	l->c = c;
	l->ac = ac;
	l->fd = ac->c.fd;
	ac->data = c;
	ac->ev.data = l;
	ac->ev.addRead = ev_add_read;
	ac->ev.delRead = ev_del_read;
	ac->ev.addWrite = ev_add_write;
	ac->ev.delWrite = ev_del_write;
	ac->ev.cleanup = ev_cleanup;
	c->ac = ac;
	c->answered = 0;
	return 0;
}

static struct rconn *
conn_for(struct redis_be *be, struct loop *loop)
{
	struct rconn *c = NULL;

	pthread_mutex_lock(&be->lock);
	for (size_t i = 0; i < be->nconns && c == NULL; i++)
		if (be->conns[i]->loop == loop)
			c = be->conns[i];
	if (c == NULL) {
		c = xcalloc(1, sizeof(*c));
		c->be = be;
		c->loop = loop;
		be->conns = xrealloc(be->conns, (be->nconns + 1) * sizeof(*be->conns));
		be->conns[be->nconns++] = c;
	}
	pthread_mutex_unlock(&be->lock);
	return c;
}

/* ---- requests ---------------------------------------------------------------- */

static void
rreq_timeout(struct loop *loop, void *arg)
{
	struct rreq *r = arg;
	struct rconn *c = r->c;
	char why[64];

	(void)loop;
	if (snprintf(why, sizeof(why), "no reply in %u ms", c->be->timeout_ms) < 0)
		why[0] = '\0';
	state_req_fail(r->req, c->be->what, why);
	/* the late reply must not meet another request: a new connection */
	conn_drop(c, "connection dropped after a request timed out");
	conn_down(c, why);
}

static void
fail_now(struct rconn *c, struct state_req *req, const char *why)
{
	state_req_fail(req, c->be->what, why);
	req_finish(c, req);
}

static int
redis_submit(struct state *st, struct state_req *req)
{
	struct redis_be *be = st->priv;
	struct rconn *c;
	char why[128];

	if (be->closing)
		return -1;
	c = conn_for(be, req->loop);
	req->backend = c;
	if (c->ac == NULL) {
		uint64_t now = loop_clock_ms();

		if (now < c->retry_at) {
			if (snprintf(why, sizeof(why), "unreachable, next attempt in %llu ms",
				     (unsigned long long)(c->retry_at - now)) < 0)
				why[0] = '\0';
			fail_now(c, req, why);
			return 0;
		}
		if (conn_connect(c, why, sizeof(why)) < 0) {
			fail_now(c, req, why);
			return 0;
		}
	}
	if (c->ninflight >= REDIS_INFLIGHT_MAX) {
		fail_now(c, req, "too many requests in flight");
		return 0;
	}
	struct rreq *r = xcalloc(1, sizeof(*r));

	r->req = req;
	r->c = c;
	r->prev = c->tail;
	if (c->tail != NULL)
		c->tail->next = r;
	else
		c->head = r;
	c->tail = r;
	c->ninflight++;
	loop_timer_init(&r->timer, rreq_timeout, r);
	loop_timer_set(c->loop, &r->timer, be->timeout_ms);
	for (size_t i = 0; i < req->nops; i++) {
		struct redis_cmd cmds[REDIS_OP_CMDS];
		int n = redis_op_cmds(&req->ops[i], cmds);

		for (int k = 0; k < n; k++) {
			struct rslot *s = &r->slots[r->pending];

			s->r = r;
			s->op = (unsigned)i;
			s->part = (unsigned)k;
			if (redisAsyncCommandArgv(c->ac, on_reply, s, cmds[k].argc, cmds[k].argv,
						  cmds[k].len) != REDIS_OK) {
				/* replies already due would be misread: a new connection */
				state_req_fail(req, be->what, "cannot queue a command");
				conn_drop(c, "connection dropped after a command could not be queued");
				conn_down(c, "a command could not be queued");
				return 0;
			}
			r->pending++;
		}
	}
	return 0;
}

/* A request that ends because the store closes (the loops stopped, on
 * the closing thread): its cancel frees it, as the SQLite back end's
 * workpool cancel does (state.h). */
static void
req_end_closed(struct state_req *req)
{
	if (req->cancel != NULL)
		req->cancel(req);
}

/* After the loops stopped: every context is freed (its registration
 * taken off the stopped loop), every request ends failed here. */
static void
redis_close(struct state *st)
{
	struct redis_be *be = st->priv;

	be->closing = 1;
	for (size_t i = 0; i < be->nconns; i++) {
		struct rconn *c = be->conns[i];
		struct state_req *req;

		conn_drop(c, "the store closed");
		req = c->done_head;
		c->done_head = c->done_tail = NULL;
		while (req != NULL) {
			struct state_req *next = req->next;

			req->next = NULL;
			req_end_closed(req);
			req = next;
		}
		link_free_all(&c->graveyard);
		free(c);
	}
	free(be->conns);
	pthread_mutex_destroy(&be->lock);
	free(be);
	st->priv = NULL;
}

static const struct state_backend backend_redis = {
	.name = "redis", .submit = redis_submit, .close = redis_close,
};

/* ---- opening ------------------------------------------------------------------- */

/* "host:port", "[v6]:port" or "/path": into be (host resolved here, on
 * the main thread, so that no loop ever waits for DNS). */
static int
addr_parse(struct redis_be *be, const char *addr, const char **error_out)
{
	char host[256];
	const char *colon, *hend;
	uint64_t port;

	if (addr == NULL || addr[0] == '\0') {
		*error_out = "state.redis names no server";
		return -1;
	}
	if (addr[0] == '/') {
		if (slice_copy(slice_from_cstr(addr), be->path, sizeof(be->path)) < 0) {
			*error_out = "state.redis: the socket path is too long";
			return -1;
		}
		return 0;
	}
	if (addr[0] == '[') {
		hend = strchr(addr, ']');
		colon = hend != NULL && hend[1] == ':' ? hend + 1 : NULL;
		addr++;
	} else {
		colon = strrchr(addr, ':');
		hend = colon;
	}
	if (colon == NULL || hend == addr || (size_t)(hend - addr) >= sizeof(host) ||
	    slice_to_u64(slice_from_cstr(colon + 1), 65535, &port) < 0 || port == 0) {
		*error_out = "state.redis must be host:port, [IPv6]:port or a socket path";
		return -1;
	}
	memcpy(host, addr, (size_t)(hend - addr));
	host[hend - addr] = '\0';
	be->port = (int)port;

	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	int r = getaddrinfo(host, NULL, &hints, &res);
	const void *a = NULL;

	if (r == 0 && res != NULL) {
		if (res->ai_family == AF_INET)
			a = &((const struct sockaddr_in *)(const void *)res->ai_addr)->sin_addr;
		else if (res->ai_family == AF_INET6)
			a = &((const struct sockaddr_in6 *)(const void *)res->ai_addr)->sin6_addr;
	}
	if (a == NULL || inet_ntop(res->ai_family, a, be->host, sizeof(be->host)) == NULL) {
		if (res != NULL)
			freeaddrinfo(res);
		*error_out = "state.redis: the host name does not resolve";
		return -1;
	}
	freeaddrinfo(res);
	return 0;
}

int
state_redis_open(struct state *st, const struct state_params *p, const char **error_out)
{
	struct redis_be *be = xcalloc(1, sizeof(*be));

	if (addr_parse(be, p->redis, error_out) < 0) {
		free(be);
		return -1;
	}
	if (slice_copy(slice_from_cstr(p->redis), be->addr, sizeof(be->addr)) < 0)
		be->addr[0] = '\0';
	if (snprintf(be->what, sizeof(be->what), "redis %s", be->addr) < 0)
		be->what[0] = '\0';
	be->timeout_ms = p->timeout_ms > 0 ? p->timeout_ms : 500;
	pthread_mutex_init(&be->lock, NULL);
	st->priv = be;
	st->be = &backend_redis;
	return 0;
}
