/*
 * server_metrics.c - the /metrics endpoint (see server_metrics.h): the
 * allow-list check at accept, reading one request head through the
 * bounded parser (net/http_request.h) within metrics.timeout, the answer
 * (200 with the exposition text, or 400/403/404/405/408/414/431/503/505,
 * each logged), and a lingering close so the client reads it. Owns its
 * connections; the counters it renders belong to core/metrics.c and the
 * catalog.
 */
#include "server_metrics.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "catalog.h"
#include "cidr.h"
#include "config.h"
#include "http_request.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "net_conn.h"

#define METRICS_CONNS_MAX 64		/* open requests per loop */
#define METRICS_BODY_MAX ((size_t)4 << 20)
#define METRICS_LINGER_MS 2000		/* reading on after the answer */
#define METRICS_LINGER_MAX 65536	/* octets discarded meanwhile */

enum mc_phase { MC_READ, MC_WRITE, MC_LINGER };

struct metrics_conn {
	struct metrics_http *h;
	struct metrics_conn *prev, *next;
	int fd;
	enum mc_phase phase;
	uint8_t in[HTTP_HEAD_MAX];
	size_t inlen;
	size_t discarded;		/* while lingering */
	struct buf out;
	size_t out_off;
	struct loop_timer deadline;
	char client[NET_ADDR_TEXT];
};

/* ---- the body --------------------------------------------------------- */

int
server_metrics_render(struct buf *out)
{
	if (metrics_render(out) < 0)
		return -1;
	if (buf_append_str(out, "# HELP postern_events_total Catalog conditions (postern explain ID) "
				"logged or replied since the daemon started, per ID.\n"
				"# TYPE postern_events_total counter\n") < 0)
		return -1;
	for (unsigned id = 0; id < COND__COUNT; id++)
		if (buf_appendf(out, "postern_events_total{id=\"%s\"} %llu\n",
				catalog_get((enum cond_id)id)->id,
				(unsigned long long)catalog_count_get((enum cond_id)id)) < 0)
			return -1;
	return 0;
}

/* ---- answers ---------------------------------------------------------- */

/* Status line, fields and body into out (HEAD: no body). */
static int
answer_build(struct buf *out, int status, const char *type, const struct buf *body, int head)
{
	if (buf_appendf(out,
			"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
			"Cache-Control: no-store\r\nConnection: close\r\n\r\n",
			status, http_status_text(status), type, body->len,
			status == 405 ? "Allow: GET, HEAD\r\n" : "") < 0)
		return -1;
	if (!head && buf_append(out, body->data, body->len) < 0)
		return -1;
	return 0;
}

/* An error answer: the status and why, as plain text. */
static void
answer_error(struct buf *out, int status, const char *reason)
{
	struct buf body;

	buf_init(&body, 512);
	if (buf_appendf(&body, "%d %s: %s [%s]\n", status, http_status_text(status), reason,
			catalog_get(status == 403 ? COND_METRICS_ADDRESS_REFUSED
						  : COND_METRICS_BAD_REQUEST)->id) < 0)
		buf_reset(&body);
	if (answer_build(out, status, "text/plain; charset=utf-8", &body, 0) < 0)
		buf_reset(out);
	buf_fini(&body);
}

static void
log_bad(const char *client, int status, const char *reason, size_t bytes)
{
	struct kv kv[] = { KV("client", client), KVU("status", status), KV("reason", reason),
			   KVU("bytes", bytes) };

	catalog_log(COND_METRICS_BAD_REQUEST, NULL, kv, ARRAY_LEN(kv));
}

/* A connection we do not serve: one try at the answer, then close. */
static void
refuse_now(int fd, int status, const char *reason)
{
	struct buf out;

	buf_init(&out, 4096);
	answer_error(&out, status, reason);
	(void)!send(fd, out.data, out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
	buf_fini(&out);
	close(fd);
}

/* ---- connections ------------------------------------------------------ */

static void mc_io(struct loop *loop, int fd, unsigned events, void *arg);

static void
mc_free(struct metrics_conn *c)
{
	struct metrics_http *h = c->h;

	loop_timer_cancel(h->loop, &c->deadline);
	loop_del_fd(h->loop, c->fd);
	close(c->fd);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		h->head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	h->live--;
	metrics_gauge_add(METRICS_OPEN_HTTP, -1);
	buf_fini(&c->out);
	free(c);
}

/* The answer is written: stop writing, read on (and discard) a little
 * while, so that unread request octets do not reset the connection
 * before the client read the answer. */
static void
mc_linger(struct metrics_conn *c)
{
	c->phase = MC_LINGER;
	(void)shutdown(c->fd, SHUT_WR);
	if (loop_mod_fd(c->h->loop, c->fd, LOOP_READ) < 0) {
		mc_free(c);
		return;
	}
	loop_timer_set(c->h->loop, &c->deadline, METRICS_LINGER_MS);
}

static void
mc_flush(struct metrics_conn *c)
{
	while (c->out_off < c->out.len) {
		ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off,
				 MSG_NOSIGNAL);

		if (n > 0) {
			c->out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;	/* the loop says when to go on */
		mc_free(c);	/* the client left */
		return;
	}
	mc_linger(c);
}

/* Queues the answer in c->out and starts writing it. */
static void
mc_answer(struct metrics_conn *c)
{
	c->phase = MC_WRITE;
	if (loop_mod_fd(c->h->loop, c->fd, LOOP_WRITE) < 0) {
		mc_free(c);
		return;
	}
	mc_flush(c);
}

static void
mc_refuse(struct metrics_conn *c, int status, const char *reason)
{
	log_bad(c->client, status, reason, c->inlen);
	buf_reset(&c->out);
	answer_error(&c->out, status, reason);
	mc_answer(c);
}

/* A complete head: route it and answer. */
static void
mc_request(struct metrics_conn *c, const struct http_request *req)
{
	int head = strcmp(req->method, "HEAD") == 0;
	size_t plen = strcspn(req->target, "?");
	struct buf body;

	if (!head && strcmp(req->method, "GET") != 0) {
		mc_refuse(c, 405, "method not GET or HEAD");
		return;
	}
	if (plen != 8 || memcmp(req->target, "/metrics", 8) != 0) {
		mc_refuse(c, 404, "path not /metrics");
		return;
	}
	buf_init(&body, METRICS_BODY_MAX);
	if (server_metrics_render(&body) < 0 ||
	    answer_build(&c->out, 200, "text/plain; version=0.0.4; charset=utf-8", &body, head) < 0) {
		buf_fini(&body);
		PANIC("metrics body over METRICS_BODY_MAX");
	}
	buf_fini(&body);
	mc_answer(c);
}

static void
mc_read(struct metrics_conn *c)
{
	struct http_request req;

	for (;;) {
		ssize_t n = recv(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen, 0);

		if (n > 0) {
			c->inlen += (size_t)n;
			if (c->inlen < sizeof(c->in))
				continue;
			break;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		/* the client closed (or failed) before its head ended */
		if (c->inlen > 0)
			log_bad(c->client, 400, "closed before the request head ended", c->inlen);
		mc_free(c);
		return;
	}
	switch (http_request_parse(c->in, c->inlen, &req)) {
	case HTTP_PARSE_MORE:
		return;
	case HTTP_PARSE_ERROR:
		mc_refuse(c, req.status, req.reason);
		return;
	case HTTP_PARSE_DONE:
		mc_request(c, &req);
		return;
	}
}

static void
mc_discard(struct metrics_conn *c)
{
	uint8_t junk[4096];

	for (;;) {
		ssize_t n = recv(c->fd, junk, sizeof(junk), 0);

		if (n > 0) {
			c->discarded += (size_t)n;
			if (c->discarded > METRICS_LINGER_MAX)
				break;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		break;	/* end of file: the client read and closed */
	}
	mc_free(c);
}

static void
mc_io(struct loop *loop, int fd, unsigned events, void *arg)
{
	struct metrics_conn *c = arg;

	(void)loop;
	(void)fd;
	(void)events;
	switch (c->phase) {
	case MC_READ:
		mc_read(c);
		break;
	case MC_WRITE:
		mc_flush(c);
		break;
	case MC_LINGER:
		mc_discard(c);
		break;
	}
}

static void
mc_timeout(struct loop *loop, void *arg)
{
	struct metrics_conn *c = arg;

	(void)loop;
	if (c->phase != MC_READ) {
		mc_free(c);	/* not reading its answer, or lingering done */
		return;
	}
	mc_refuse(c, 408, "no complete request head within metrics.timeout");
}

void
server_metrics_accept(struct metrics_http *h, int fd, const struct config *cfg, const char *local)
{
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);
	char client[NET_ADDR_TEXT];

	if (getpeername(fd, (struct sockaddr *)&peer, &plen) < 0) {
		close(fd);	/* already gone */
		return;
	}
	if (sockaddr_format((struct sockaddr *)&peer, client, sizeof(client), 0) < 0)
		client[0] = '\0';
	if (!cidr_list_match(&cfg->metrics_allow, (struct sockaddr *)&peer)) {
		struct kv kv[] = { KV("client", client), KV("local", local) };

		catalog_log(COND_METRICS_ADDRESS_REFUSED, NULL, kv, ARRAY_LEN(kv));
		refuse_now(fd, 403, "address not in metrics.allow");
		return;
	}
	if (h->live >= METRICS_CONNS_MAX) {
		log_bad(client, 503, "too many open requests", 0);
		refuse_now(fd, 503, "too many open requests");
		return;
	}
	struct metrics_conn *c = xcalloc(1, sizeof(*c));

	c->h = h;
	c->fd = fd;
	c->phase = MC_READ;
	memcpy(c->client, client, sizeof(c->client));
	buf_init(&c->out, METRICS_BODY_MAX + 1024);
	loop_timer_init(&c->deadline, mc_timeout, c);
	if (loop_add_fd(h->loop, fd, LOOP_READ, mc_io, c) < 0) {
		buf_fini(&c->out);
		free(c);
		close(fd);
		return;
	}
	c->next = h->head;
	if (h->head != NULL)
		h->head->prev = c;
	h->head = c;
	h->live++;
	metrics_inc(METRICS_SESSIONS_HTTP);
	metrics_gauge_add(METRICS_OPEN_HTTP, 1);
	loop_timer_set(h->loop, &c->deadline, (uint64_t)cfg->metrics_timeout * 1000u);
}

void
server_metrics_fini(struct metrics_http *h)
{
	while (h->head != NULL)
		mc_free(h->head);
}
