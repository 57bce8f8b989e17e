/*
 * net_session.c - the session core SMTP and POP3 run on (net_session.h):
 * slot table and handles, preface stage, outbound connect, TLS handshake
 * driver, reading, flushing and the event mask, deadline, idle buffer
 * release, deferred free.
 *
 * Invariants: a session is freed only from a deferred call (the grave
 * sweep), never inside its own callback stack; a handle names a slot and
 * the slot's generation, which changes when the session is released, so
 * a late completion finds nothing rather than a stranger; while the
 * handshake, the preface or the connect runs, the protocol sees no event.
 */
#include "net_session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "net_proxy.h"

static void ns_io(struct loop *loop, int fd, unsigned events, void *arg);

/* ---- the table ---------------------------------------------------------- */

static size_t
table_take(struct net_table *t, struct net_session *ns)
{
	for (size_t i = 0; i < t->n; i++) {
		if (t->v[i] == NULL) {
			t->v[i] = ns;
			return i;
		}
	}
	size_t n = t->n ? t->n * 2 : 64;
	t->v = xrealloc(t->v, n * sizeof(*t->v));
	t->gens = xrealloc(t->gens, n * sizeof(*t->gens));
	for (size_t i = t->n; i < n; i++) {
		t->v[i] = NULL;
		t->gens[i] = 1;
	}
	size_t slot = t->n;
	t->n = n;
	t->v[slot] = ns;
	return slot;
}

static void
table_join(struct net_table *t, struct net_session *ns)
{
	ns->table = t;
	ns->slot = table_take(t, ns);
	ns->gen = t->gens[ns->slot];
	t->live++;
}

static void
grave_sweep(struct loop *loop, void *arg)
{
	struct net_table *t = arg;

	(void)loop;
	t->sweep_queued = 0;
	while (t->grave != NULL) {
		struct net_session *ns = t->grave;
		t->grave = ns->grave_next;
		ns->ops->free(ns->owner);
	}
}

void
net_table_fini(struct net_table *t, void (*drop)(void *owner))
{
	for (size_t i = 0; i < t->n; i++) {
		struct net_session *ns = t->v[i];
		if (ns == NULL)
			continue;
		t->v[i] = NULL;
		if (drop != NULL)
			drop(ns->owner);
	}
	grave_sweep(NULL, t);
	free(t->v);
	free(t->gens);
	memset(t, 0, sizeof(*t));
}

void *
net_table_find(const struct net_table *t, uintptr_t handle)
{
	size_t slot = (size_t)(handle >> 32);
	unsigned gen = (unsigned)(handle & 0xffffffffu);

	if (slot >= t->n || t->v[slot] == NULL || t->gens[slot] != gen)
		return NULL;
	return t->v[slot]->owner;
}

void *
net_table_at(const struct net_table *t, size_t i)
{
	return i < t->n && t->v[i] != NULL ? t->v[i]->owner : NULL;
}

uintptr_t
net_session_handle(const struct net_session *ns)
{
	return ((uintptr_t)ns->slot << 32) | ns->gen;
}

net_preface_fn
net_preface_of(const struct config_listener *lst)
{
	return lst != NULL && lst->proxy_protocol ? net_proxy_preface : NULL;
}

/* ---- set-up ------------------------------------------------------------- */

static void
ns_timeout(struct loop *loop, void *arg)
{
	struct net_session *ns = arg;

	(void)loop;
	switch (ns->phase) {
	case NET_PHASE_TLS:
		if (snprintf(ns->tls_err, sizeof(ns->tls_err), "handshake timeout") < 0)
			ns->tls_err[0] = '\0';
		if (!ns->tls_client) {
			struct log_ctx ctx = { .sid = ns->sid };
			struct kv kv[] = { KV("client", ns->conn->peer_text), KV("err", ns->tls_err),
					   KVU("elapsed_ms", loop_clock_ms() - ns->tls_started_ms) };
			catalog_log(COND_TLS_HANDSHAKE_FAILED, &ctx, kv, ARRAY_LEN(kv));
		}
		buf_reset(ns->out);
		ns->ops->fail(ns->owner, COND_TLS_HANDSHAKE_FAILED);
		return;
	case NET_PHASE_PREFACE:
		ns->preface_cause = COND_NET_CLIENT_READ_ERROR;
		(void)ns->preface(ns, 1);
		ns->ops->fail(ns->owner, ns->preface_cause);
		return;
	case NET_PHASE_CONNECT:
		ns->ops->closed(ns->owner, ETIMEDOUT);
		return;
	case NET_PHASE_OPEN:
		ns->ops->timeout(ns->owner);
		return;
	default:
		return;
	}
}

void
net_session_init(struct net_session *ns, const struct net_session_ops *ops, void *owner,
		 const char *sid, struct conn *conn, struct buf *in, size_t *in_off,
		 struct buf *out)
{
	memset(ns, 0, sizeof(*ns));
	ns->ops = ops;
	ns->owner = owner;
	ns->sid = sid;
	ns->conn = conn;
	ns->in = in;
	ns->in_off = in_off;
	ns->out = out;
	ns->phase = NET_PHASE_NEW;
	loop_timer_init(&ns->deadline, ns_timeout, ns);
}

static void
preface_step(struct net_session *ns)
{
	ns->preface_cause = COND_NET_CLIENT_READ_ERROR;
	switch (ns->preface(ns, 0)) {
	case NET_PREFACE_MORE:
		return;
	case NET_PREFACE_ERROR:
		ns->ops->fail(ns->owner, ns->preface_cause);
		return;
	case NET_PREFACE_DONE:
		break;
	}
	loop_timer_cancel(ns->loop, &ns->deadline);
	ns->phase = NET_PHASE_OPEN;
	ns->ops->start(ns->owner);
}

int
net_session_accept(struct net_session *ns, struct net_table *t, struct loop *loop,
		   net_preface_fn preface, unsigned preface_ms)
{
	int fd = ns->conn->fd;

	ns->loop = loop;
	table_join(t, ns);
	ns->want_write = 0;
	if (loop_add_fd(loop, fd, LOOP_READ, ns_io, ns) < 0)
		return -1;
	if (preface != NULL) {
		ns->preface = preface;
		ns->preface_timeout_ms = preface_ms;
		ns->preface_started_ms = loop_clock_ms();
		ns->phase = NET_PHASE_PREFACE;
		loop_timer_set(loop, &ns->deadline, preface_ms);
		preface_step(ns);
		return 0;
	}
	ns->phase = NET_PHASE_OPEN;
	ns->ops->start(ns->owner);
	return 0;
}

int
net_session_connect(struct net_session *ns, struct net_table *t, struct loop *loop,
		    const struct sockaddr *sa, socklen_t len, unsigned timeout_ms)
{
	return net_session_connect_from(ns, t, loop, sa, len, NULL, 0, timeout_ms);
}

int
net_session_connect_from(struct net_session *ns, struct net_table *t, struct loop *loop,
			 const struct sockaddr *sa, socklen_t len, const struct sockaddr *from,
			 socklen_t fromlen, unsigned timeout_ms)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if ((from != NULL && bind(fd, from, fromlen) < 0) ||
	    (connect(fd, sa, len) < 0 && errno != EINPROGRESS)) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	ns->loop = loop;
	conn_init(ns->conn, fd);	/* again once connected, for the addresses */
	table_join(t, ns);
	ns->phase = NET_PHASE_CONNECT;
	ns->want_write = 1;
	if (loop_add_fd(loop, fd, LOOP_WRITE, ns_io, ns) < 0) {
		int e = errno;
		conn_close(ns->conn);
		t->v[ns->slot] = NULL;
		t->gens[ns->slot]++;
		t->live--;
		ns->phase = NET_PHASE_NEW;
		errno = e;
		return -1;
	}
	loop_timer_set(loop, &ns->deadline, timeout_ms);
	return 0;
}

static void
connect_step(struct net_session *ns)
{
	int err = 0;
	socklen_t elen = sizeof(err);

	if (getsockopt(ns->conn->fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
		err = errno;
	if (err == EINPROGRESS)
		return;
	if (err != 0) {
		ns->ops->closed(ns->owner, err);
		return;
	}
	unsigned long long in = ns->conn->bytes_in, out = ns->conn->bytes_out;
	conn_init(ns->conn, ns->conn->fd);
	ns->conn->bytes_in = in;
	ns->conn->bytes_out = out;
	loop_timer_cancel(ns->loop, &ns->deadline);
	ns->phase = NET_PHASE_OPEN;
	ns->want_write = -1;
	ns->ops->start(ns->owner);
}

/* ---- TLS ---------------------------------------------------------------- */

static void
tls_failed_log(struct net_session *ns, const char *err)
{
	struct log_ctx ctx = { .sid = ns->sid };
	struct kv kv[] = { KV("client", ns->conn->peer_text), KV("err", err),
			   KVU("elapsed_ms", ns->tls_started_ms ? loop_clock_ms() - ns->tls_started_ms : 0) };

	catalog_log(COND_TLS_HANDSHAKE_FAILED, &ctx, kv, ARRAY_LEN(kv));
}

/* The handshake waits for the peer from now: reading, within timeout. */
static int
tls_wait(struct net_session *ns, unsigned timeout_ms)
{
	ns->phase = NET_PHASE_TLS;
	ns->tls_started_ms = loop_clock_ms();
	ns->tls_timeout_ms = timeout_ms;
	ns->tls_err[0] = '\0';
	unsigned ev = ns->tls_client ? LOOP_WRITE : LOOP_READ;
	if (loop_mod_fd(ns->loop, ns->conn->fd, ev) < 0)
		return -1;
	ns->paused = 0;
	ns->read_held = 0;
	ns->want_write = -1;
	loop_timer_set(ns->loop, &ns->deadline, timeout_ms);
	return 0;
}

int
net_session_tls_accept(struct net_session *ns, struct tls_server *ctx, unsigned timeout_ms,
		       const char *err)
{
	ns->tls_client = 0;
	ns->tls_ctx = ctx;
	if (ctx == NULL || tls_conn_start(ns->conn, ctx) < 0 || tls_wait(ns, timeout_ms) < 0) {
		tls_server_unref(&ns->tls_ctx);
		tls_failed_log(ns, err);
		return -1;
	}
	ns->tls_started_ms = loop_clock_ms();
	return 0;
}

int
net_session_tls_connect(struct net_session *ns, struct tls_client *ctx, const char *host,
			unsigned timeout_ms)
{
	ns->tls_client = 1;
	if (ctx == NULL || tls_conn_start_client(ns->conn, ctx, host) < 0)
		return -1;
	ns->tls_cctx = tls_client_ref(ctx);
	if (tls_wait(ns, timeout_ms) < 0) {
		tls_client_unref(&ns->tls_cctx);
		return -1;
	}
	return 0;
}

void
net_session_tls_step(struct net_session *ns)
{
	char err[256] = "";
	enum conn_io io = tls_conn_handshake(ns->conn, err, sizeof(err));

	if (io == CONN_IO_AGAIN) {
		unsigned ev = tls_conn_wants_write(ns->conn) ? LOOP_WRITE : LOOP_READ;
		if (loop_mod_fd(ns->loop, ns->conn->fd, ev) < 0) {
			ns->ops->fail(ns->owner, COND_NET_CLIENT_READ_ERROR);
			return;
		}
		ns->paused = 0;
		ns->read_held = 0;
		ns->want_write = -1;
		loop_timer_set(ns->loop, &ns->deadline, ns->tls_timeout_ms);
		return;
	}
	tls_server_unref(&ns->tls_ctx);
	tls_client_unref(&ns->tls_cctx);
	if (io != CONN_IO_OK) {
		if (snprintf(ns->tls_err, sizeof(ns->tls_err), "%s",
			     err[0] ? err : "handshake failed") < 0)
			ns->tls_err[0] = '\0';
		if (!ns->tls_client)
			tls_failed_log(ns, ns->tls_err);
		buf_reset(ns->out);	/* nothing may go out in clear now */
		ns->ops->fail(ns->owner, COND_TLS_HANDSHAKE_FAILED);
		return;
	}
	ns->tls = 1;
	ns->phase = NET_PHASE_OPEN;
	ns->want_write = -1;	/* the event mask is set again */
	loop_timer_cancel(ns->loop, &ns->deadline);
	if (!ns->tls_client) {
		struct log_ctx ctx = { .sid = ns->sid };
		struct kv kv[] = { KV("client", ns->conn->peer_text),
				   KV("version", tls_conn_version(ns->conn)),
				   KV("cipher", tls_conn_cipher(ns->conn)),
				   KVU("bits", tls_conn_bits(ns->conn)),
				   KVU("elapsed_ms", loop_clock_ms() - ns->tls_started_ms) };
		catalog_log(COND_TLS_ESTABLISHED, &ctx, kv, ARRAY_LEN(kv));
	}
	ns->ops->tls_ready(ns->owner);
}

/* ---- input and output --------------------------------------------------- */

/* OpenSSL may hold decrypted bytes the socket no longer signals. */
static void
ns_pending(struct loop *loop, void *arg)
{
	struct net_session *ns = arg;

	ns->pending_queued = 0;
	if (ns->phase == NET_PHASE_OPEN && !ns->paused && tls_conn_pending(ns->conn) > 0)
		ns_io(loop, ns->conn->fd, LOOP_READ, ns);
}

static void
ns_io(struct loop *loop, int fd, unsigned events, void *arg)
{
	struct net_session *ns = arg;
	int eof = 0, err = 0;

	switch (ns->phase) {
	case NET_PHASE_PREFACE:
		preface_step(ns);
		return;
	case NET_PHASE_CONNECT:
		connect_step(ns);
		return;
	case NET_PHASE_TLS:
		net_session_tls_step(ns);
		return;
	case NET_PHASE_OPEN:
		break;
	default:
		return;
	}
	if ((events & LOOP_READ) && ns->paused && !ns->read_held) {
		/* Input while paused: only now does the read interest go (see
		 * net_session_flush). Without a write event this call is one
		 * an eager pause would not have had. */
		ns->read_held = 1;
		if (loop_mod_fd(loop, fd, ns->want_write == 1 ? LOOP_WRITE : 0) < 0) {
			ns->ops->fail(ns->owner, COND_NET_CLIENT_READ_ERROR);
			return;
		}
		if (!(events & LOOP_WRITE))
			return;
	}
	if ((events & LOOP_READ) && !ns->paused) {
		buf_compact(ns->in, ns->in_off);	/* one move per read, not per command */
		for (int i = 0; i < 4; i++) {
			enum conn_io io = conn_read(ns->conn, ns->in);
			/* A read that did not fill the room drained the socket:
			 * the next would only return EAGAIN (level-triggered, so
			 * anything arriving later wakes us again). */
			if (io == CONN_IO_OK && !ns->conn->read_short)
				continue;
			if (io == CONN_IO_EOF)
				eof = 1;
			else if (io == CONN_IO_ERROR)
				err = errno;
			break;
		}
	}
	ns->ops->process(ns->owner);
	if (ns->phase == NET_PHASE_CLOSED || !(eof || err))
		return;
	ns->ops->closed(ns->owner, err);
}

/* Gives the buffer's memory back; wiped first when it held input that
 * may carry a password. */
static void
buf_release(struct buf *b, int wipe)
{
	if (b->data == NULL)
		return;
	if (wipe)
		explicit_bzero(b->data, b->cap);
	buf_fini(b);
}

enum conn_io
net_session_write(struct net_session *ns)
{
	return conn_flush(ns->conn, ns->out);
}

void
net_session_drop_input(struct net_session *ns)
{
	if (ns->wipe_input && ns->in->data != NULL)
		explicit_bzero(ns->in->data, ns->in->cap);
	buf_reset(ns->in);
	*ns->in_off = 0;
}

enum conn_io
net_session_flush(struct net_session *ns, int pause)
{
	if (*ns->in_off > 0 && *ns->in_off >= ns->in->len) {
		buf_reset(ns->in);	/* all taken: start over, nothing to move */
		*ns->in_off = 0;
	}
	enum conn_io io = conn_flush(ns->conn, ns->out);
	if (io == CONN_IO_ERROR)
		return io;
	int want_write = io == CONN_IO_AGAIN;
	if ((ns->out_high > 0 && ns->out->len >= ns->out_high) ||
	    ns->in->len - *ns->in_off >= ns->in->max)
		pause = 1;	/* backlog: the peer reads first, or input is full */
	/* A pause keeps the read interest until input arrives while paused
	 * (ns_io drops it then): a session waiting for a worker while its
	 * client waits for the reply costs no epoll_ctl. loop_mod_fd makes
	 * no system call when the interest does not change. */
	if (!pause)
		ns->read_held = 0;
	unsigned ev = (pause && ns->read_held ? 0 : LOOP_READ) | (want_write ? LOOP_WRITE : 0);
	if (loop_mod_fd(ns->loop, ns->conn->fd, ev) < 0) {
		ns->ops->fail(ns->owner, COND_NET_CLIENT_WRITE_ERROR);
		return io;
	}
	ns->want_write = want_write;
	ns->paused = pause;
	if (!pause && io == CONN_IO_OK && ns->in->len == 0) {
		/* Waiting for the peer with nothing held: an idle session
		 * keeps no buffer memory. */
		buf_release(ns->in, ns->wipe_input);
		buf_release(ns->out, 0);
	}
	if (ns->tls && !ns->paused && !ns->pending_queued && tls_conn_pending(ns->conn) > 0) {
		ns->pending_queued = 1;
		loop_defer(ns->loop, ns_pending, ns);
	}
	return io;
}

void
net_session_deadline(struct net_session *ns, uint64_t ms)
{
	loop_timer_set(ns->loop, &ns->deadline, ms);
}

void
net_session_deadline_cancel(struct net_session *ns)
{
	loop_timer_cancel(ns->loop, &ns->deadline);
}

/* ---- the end ------------------------------------------------------------ */

void
net_session_stop(struct net_session *ns)
{
	enum net_phase was = ns->phase;

	ns->phase = NET_PHASE_CLOSED;
	if (ns->loop == NULL)
		return;
	loop_timer_cancel(ns->loop, &ns->deadline);
	if (ns->conn->fd >= 0 && was != NET_PHASE_NEW)
		loop_del_fd(ns->loop, ns->conn->fd);
	if (was == NET_PHASE_OPEN)
		(void)conn_flush(ns->conn, ns->out);	/* best effort for a last reply */
}

void
net_session_release(struct net_session *ns)
{
	struct net_table *t = ns->table;

	ns->phase = NET_PHASE_CLOSED;
	conn_close(ns->conn);
	tls_server_unref(&ns->tls_ctx);
	tls_client_unref(&ns->tls_cctx);
	buf_release(ns->in, ns->wipe_input);
	buf_release(ns->out, 0);
	if (t == NULL) {
		ns->ops->free(ns->owner);	/* never joined a table: nothing can find it */
		return;
	}
	t->v[ns->slot] = NULL;
	t->gens[ns->slot]++;
	t->live--;
	ns->grave_next = t->grave;
	t->grave = ns;
	if (!t->sweep_queued) {
		t->sweep_queued = 1;
		loop_defer(ns->loop, grave_sweep, t);
	}
}
