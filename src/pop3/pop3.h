/*
 * pop3.h - the POP3 service (RFC 1939, 2449, 3206, 5034): what the server
 * layer needs to run POP3 listeners.
 *
 * A pop3_service is process-wide: its worker threads do every disk and
 * password operation (Maildir scans, reads, the QUIT update, crypt checks),
 * so no loop thread blocks; it also holds the mailbox locks (one session
 * per mailbox) and the failed-login table. A pop3_env is per event loop,
 * like smtp_env.
 */
#ifndef POSTERN_POP3_H
#define POSTERN_POP3_H

#include <stddef.h>
#include <sys/socket.h>

#include "catalog.h"
#include "config.h"
#include "loop.h"
#include "net_session.h"

struct pop3_service;
struct tls_server;

struct workpool;
struct state;
/* Adds the "pop3" class (workers concurrent jobs) to wp; failed logins
 * go to state (store/authfail.h, borrowed; NULL: not counted). */
struct pop3_service *pop3_service_new(struct workpool *wp, struct state *state,
				      unsigned workers);
/* Stops the workers; call after every loop has stopped. */
void pop3_service_free(struct pop3_service **svcp);

struct pop3_env {
	struct loop *loop;
	struct pop3_service *svc;
	struct config *(*config_get)(void *server);	/* returns a reference */
	void *server;
	/* The TLS context in force (a reference), or NULL when TLS is off
	 * or broken; asked per CAPA, STLS and implicit-TLS connection. */
	struct tls_server *(*tls_get)(void *server);
	/* Called once when a session ends, before it is freed; peer is the
	 * address whose limits.connections_per_ip slot the session holds, or
	 * NULL (as smtp_env's). */
	void (*on_end)(struct pop3_env *env, const struct sockaddr_storage *peer);
	/* On a proxy_protocol listener, once a PROXY header named the client:
	 * its limits.connections_per_ip admission. COND__COUNT admits (a slot
	 * taken); else the refusal to send, its keys in kv. NULL: none. */
	enum cond_id (*admit)(struct pop3_env *env, const struct sockaddr_storage *client,
			      const char *client_text, struct kv kv[3]);
	/* Sessions of this loop (handles, shutdown); table.live counts them. */
	struct net_table table;
	int draining;		/* shutdown: take no new work */
};

/* Starts a session on an accepted non-blocking fd of listener lst: sends
 * the greeting, or on a pop3s listener (RFC 8314) runs the TLS handshake
 * first and greets over TLS. lst is read only here. */
void pop3_session_start(struct pop3_env *env, int fd, const struct config_listener *lst,
			unsigned long sessions_now);

/* Refuses a connection before any session exists: "-ERR [SYS/TEMP] ..."
 * for cond, then closes fd. Logs cond with the given keys. */
void pop3_refuse_connection(int fd, enum cond_id cond, const struct kv *kvs, size_t nkv);

/* Shutdown grace over: every session gets -ERR and is closed, without
 * the UPDATE state (RFC 1939 6: no deletions on an unclean end). */
void pop3_env_stop_sessions(struct pop3_env *env, int signo);
void pop3_env_fini(struct pop3_env *env);

#endif
