/*
 * smtp_session.h - the SMTP server session: one state machine per client.
 *
 * The server layer accepts connections and hands each to
 * smtp_session_start() with a struct smtp_env, its link to the loop, the
 * spool and the current configuration. The session owns the connection
 * from then on and tells the server when it ends (env->on_end).
 */
#ifndef POSTERN_SMTP_SESSION_H
#define POSTERN_SMTP_SESSION_H

#include <stddef.h>
#include <sys/socket.h>

#include "catalog.h"
#include "config.h"
#include "loop.h"
#include "net_session.h"
#include "spool.h"

struct smtp_session;
struct policy_chain;
struct body_sink;
struct spool_msg;

/* One per event loop; owned by the server layer. */
struct dns_resolver;

struct smtp_env {
	struct loop *loop;
	struct spool *spool;
	/* Returns a reference to the configuration now in force. */
	struct config *(*config_get)(void *server);
	void *server;
	/* Called once when a session ends, before it is freed; peer is the
	 * address whose limits.connections_per_ip slot the session holds
	 * (the socket's peer, or the PROXY header's client once admitted),
	 * NULL when it holds none. */
	void (*on_end)(struct smtp_env *env, const struct sockaddr_storage *peer);
	/* On a proxy_protocol listener, once a PROXY header named the client:
	 * its admission (connection rates, limits.connections_per_ip), which
	 * the server makes at accept on other listeners. COND__COUNT admits
	 * (a slot taken); else the 421 to send, its keys in kv. NULL: none. */
	enum cond_id (*admit)(struct smtp_env *env, const struct sockaddr_storage *client,
			      const char *client_text, struct kv kv[3]);
	/* Returns a reference to the TLS context now in force, or NULL when
	 * TLS is off or its context failed to build. */
	struct tls_server *(*tls_get)(void *server);
	/* Sessions of this loop (handles, shutdown); table.live counts them. */
	struct net_table table;
	int draining;			/* shutdown: finish, take no new work */
	/* Seams for the session fuzz target (fuzz/fuzz_smtp_session.c); NULL
	 * in the server. chain: asked instead of the configuration's chain;
	 * sink_new: where a message's data goes instead of the spool's body
	 * sink (spool_body_sink). */
	const struct policy_chain *chain;
	struct body_sink *(*sink_new)(struct smtp_env *env, struct spool_msg *m);
	/* This loop's resolver, for the policy checks (policy_txn.dns). */
	struct dns_resolver *dns;
};

/* Starts a session on an accepted, non-blocking fd: sends the greeting.
 * sessions_now is the server-wide session count (for SESSION-START). */
void smtp_session_start(struct smtp_env *env, int fd, const struct config_listener *lst,
			unsigned long sessions_now);

/* Refuses a connection before any session exists: sends the reply for
 * cond (a 421) and closes fd. Logs cond with the given keys. */
void smtp_refuse_connection(int fd, enum cond_id cond, const char *hostname,
			    const struct kv *kvs, size_t nkv);

/* Shutdown grace over: every session of env gets 421 (SIGNAL-STOP-SESSIONS)
 * and is closed; sessions waiting on a spool commit close after it. */
void smtp_env_stop_sessions(struct smtp_env *env, int signo);
/* After the loop stopped: frees the sessions and the table. */
void smtp_env_fini(struct smtp_env *env);

#endif
