/*
 * net_session.h - the session core every protocol session runs on (SMTP
 * and POP3 servers today, the SMTP client next).
 *
 * Owns what a protocol session needs from the loop and the socket but
 * that has nothing to do with its protocol: the table of sessions of one
 * loop and the (slot, generation) handles that find a session again when
 * a worker completes; the stage before the greeting where a transport
 * header may be read (net_preface_fn; the PROXY protocol, later); the
 * non-blocking outbound connect with its deadline; the TLS handshake
 * driver (server and client side, bounded by a deadline); reading into
 * and flushing from the session's buffers and keeping the epoll mask
 * (read paused while the protocol says so, write wanted while output
 * remains); the deadline timer; releasing the buffers while the session
 * idles; and the deferred free.
 *
 * The connection and the two buffers live in the protocol's session
 * struct (their names are used all over the command code); the core
 * drives them through the pointers given to net_session_init(). The
 * protocol keeps its states, commands and replies, and is called back
 * through struct net_session_ops. Loop thread only.
 */
#ifndef POSTERN_NET_SESSION_H
#define POSTERN_NET_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "catalog.h"
#include "buf.h"
#include "loop.h"
#include "net_conn.h"
#include "net_tls.h"

struct net_session;
struct config_listener;

/* The sessions of one loop. Zero-initialised is empty. */
struct net_table {
	struct net_session **v;		/* slot table, NULL = free */
	unsigned *gens;			/* generation per slot */
	size_t n;
	size_t live;			/* sessions open */
	struct net_session *grave;	/* ended, waiting for the deferred free */
	int sweep_queued;
};

/* Frees what the table holds once its loop has stopped: each session
 * still open is handed to drop(owner) (which closes and frees it), then
 * the deferred frees that never ran are done. */
void net_table_fini(struct net_table *t, void (*drop)(void *owner));
/* The owner of the session a handle names, or NULL if it ended. */
void *net_table_find(const struct net_table *t, uintptr_t handle);
/* The owner in slot i (i < t->n), or NULL; for walking every session. */
void *net_table_at(const struct net_table *t, size_t i);

/* The stage before the greeting: reads a transport header from the
 * socket (ns->conn->fd) before TLS or the protocol sees a byte. It must
 * not read past the header (recv with MSG_PEEK, then exactly the
 * header's octets), so the bytes after it stay in the socket.
 * NET_PREFACE_MORE waits for the socket to be readable again (bounded by
 * the preface deadline); NET_PREFACE_ERROR ends the session with
 * ns->preface_cause (the hook logged why). timed_out: the deadline
 * passed; the hook logs that and returns NET_PREFACE_ERROR. */
enum net_preface { NET_PREFACE_DONE, NET_PREFACE_MORE, NET_PREFACE_ERROR };
typedef enum net_preface (*net_preface_fn)(struct net_session *ns, int timed_out);

/* The hook a listener enables: the PROXY protocol's (net_proxy.h) on a
 * listener with proxy_protocol = yes, else NULL. */
net_preface_fn net_preface_of(const struct config_listener *lst);

struct net_session_ops {
	/* The connection is ready for the protocol: after the preface (and
	 * on an outbound session, once connected). Greets, for a server. */
	void (*start)(void *owner);
	/* Input came, or the output drained: take whatever there is and
	 * finish with net_session_flush(). */
	void (*process)(void *owner);
	/* After process() took what came before it: the peer closed (err
	 * 0) or reading failed (errno); on an outbound session, also the
	 * connection could not be made (ETIMEDOUT past its deadline). */
	void (*closed)(void *owner, int err);
	/* The deadline set by net_session_deadline() passed. */
	void (*timeout)(void *owner);
	/* The core cannot go on (a failed handshake, already logged for a
	 * server; an epoll error): end the session with cause. */
	void (*fail)(void *owner, enum cond_id cause);
	/* The TLS handshake finished; the session is on TLS (ns->tls). */
	void (*tls_ready)(void *owner);
	/* From the deferred call after net_session_release(): free it all. */
	void (*free)(void *owner);
};

enum net_phase {
	NET_PHASE_NEW,		/* not on the loop yet */
	NET_PHASE_PREFACE,	/* reading a transport header */
	NET_PHASE_CONNECT,	/* outbound connect under way */
	NET_PHASE_TLS,		/* TLS handshake under way: it owns the socket */
	NET_PHASE_OPEN,		/* the protocol's */
	NET_PHASE_CLOSED,	/* stopped; freed by a deferred call */
};

struct net_session {
	const struct net_session_ops *ops;
	void *owner;
	struct net_table *table;
	struct loop *loop;
	const char *sid;		/* for the core's own log lines */
	struct conn *conn;		/* the protocol session's */
	struct buf *in;
	size_t *in_off;			/* bytes of in already taken */
	struct buf *out;
	int wipe_input;			/* zero the input before its memory goes */
	size_t out_high;		/* stop reading while out holds this much */
	size_t slot;
	unsigned gen;
	enum net_phase phase;
	int paused;			/* not reading */
	int read_held;			/* paused, and read interest dropped too */
	int want_write;			/* -1: the event mask must be set again */
	int pending_queued;		/* a TLS pending-bytes call is deferred */
	int tls;			/* the handshake is done */
	int tls_client;			/* outbound: the client side */
	struct tls_server *tls_ctx;	/* reference while a handshake runs */
	struct tls_client *tls_cctx;	/* reference while a handshake runs */
	uint64_t tls_started_ms;
	unsigned tls_timeout_ms;
	char tls_err[256];		/* why the handshake failed */
	net_preface_fn preface;
	unsigned preface_timeout_ms;
	uint64_t preface_started_ms;
	enum cond_id preface_cause;	/* set by the hook on NET_PREFACE_ERROR */
	/* proxy.networks of the session's configuration (the owner sets it
	 * before net_session_accept on a proxy_protocol listener). */
	const struct cidr_list *proxy_networks;
	struct loop_timer deadline;
	struct net_session *grave_next;
};

/* Sets ns up for owner; conn, in, in_off and out are the owner's and
 * stay where they are for the session's life. Buffers start unallocated
 * (buf_init with their max) and the core releases them while idle. */
void net_session_init(struct net_session *ns, const struct net_session_ops *ops, void *owner,
		      const char *sid, struct conn *conn, struct buf *in, size_t *in_off,
		      struct buf *out);

/* Server side: the owner put the accepted non-blocking fd in its conn
 * (conn_init); this takes a slot of t and watches the fd on loop. With
 * preface, the transport header is read first (within preface_ms); then
 * ops->start runs. -1 when the fd could not be watched (the session
 * holds its slot: end it as usual). */
int net_session_accept(struct net_session *ns, struct net_table *t, struct loop *loop,
		       net_preface_fn preface, unsigned preface_ms) WARN_UNUSED;

/* Client side: a non-blocking connect to sa with a deadline; ops->start
 * when connected, ops->closed(err) when not. -1 with errno when no
 * socket could be made (nothing to end then: ns holds no slot). */
int net_session_connect(struct net_session *ns, struct net_table *t, struct loop *loop,
			const struct sockaddr *sa, socklen_t len, unsigned timeout_ms) WARN_UNUSED;

/* The same from a source address (bound before the connect), or from
 * the system's choice when from is NULL. */
int net_session_connect_from(struct net_session *ns, struct net_table *t, struct loop *loop,
			     const struct sockaddr *sa, socklen_t len, const struct sockaddr *from,
			     socklen_t fromlen, unsigned timeout_ms) WARN_UNUSED;

/* Puts the connection on TLS as the server (implicit TLS, STARTTLS,
 * STLS) with a reference to ctx; the handshake runs within timeout_ms
 * from the next event. A failure is logged (TLS-HANDSHAKE-FAILED) and
 * ends in ops->fail; success in ops->tls_ready (TLS-ESTABLISHED logged).
 * -1 (and a TLS-HANDSHAKE-FAILED logged with err) when ctx is NULL or
 * the connection cannot take TLS: the caller ends the session. */
int net_session_tls_accept(struct net_session *ns, struct tls_server *ctx, unsigned timeout_ms,
			   const char *err) WARN_UNUSED;
/* Puts an outbound connection on TLS as the client, verifying the
 * server's certificate for host (also sent as SNI). Nothing is logged:
 * ops->fail(COND_TLS_HANDSHAKE_FAILED) with the reason in ns->tls_err,
 * or ops->tls_ready. -1 when the connection cannot take TLS. */
int net_session_tls_connect(struct net_session *ns, struct tls_client *ctx, const char *host,
			    unsigned timeout_ms) WARN_UNUSED;
/* Steps the handshake now (after net_session_tls_*, when the peer may
 * already have spoken: implicit TLS right after accept). */
void net_session_tls_step(struct net_session *ns);

/* Writes what out holds and sets the event mask: reading unless pause
 * (the protocol waits on something), out holds out_high or more, or in
 * holds its max unread; writing while bytes remain. Input fully taken and output empty while
 * not paused: the session waits for the peer, so both buffers' memory
 * is released. CONN_IO_OK (out empty), CONN_IO_AGAIN (bytes remain) or
 * CONN_IO_ERROR (errno kept; the mask is left alone). A failure to set
 * the mask ends in ops->fail(COND_NET_CLIENT_WRITE_ERROR); check
 * net_session_closed() after. */
enum conn_io net_session_flush(struct net_session *ns, int pause);
/* Writes out without touching the mask (a reply that must go before
 * the transport changes); CONN_IO_OK when all went. */
enum conn_io net_session_write(struct net_session *ns);
/* Drops unread input (STARTTLS: nothing sent in clear may count as sent
 * over TLS), wiped if wipe_input. */
void net_session_drop_input(struct net_session *ns);

/* (Re)arms the deadline to fire after ms, or cancels it. */
void net_session_deadline(struct net_session *ns, uint64_t ms);
void net_session_deadline_cancel(struct net_session *ns);

/* The session is ending: the deadline is cancelled, the fd leaves the
 * loop, and whatever out holds gets one last try (a final 421). The
 * protocol logs its summary after this, then calls release. */
void net_session_stop(struct net_session *ns);
/* Closes the connection, frees the slot (its handle finds nothing from
 * now on) and queues ops->free for a deferred call. */
void net_session_release(struct net_session *ns);
static inline int
net_session_closed(const struct net_session *ns)
{
	return ns->phase == NET_PHASE_CLOSED;
}

/* A value for posting work to a thread and finding the session again
 * with net_table_find() when it comes back. */
uintptr_t net_session_handle(const struct net_session *ns);

#endif
