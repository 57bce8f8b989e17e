/*
 * server_private.h - what the server's own files share (server.c runs the
 * process, server_accept.c takes connections): the server, its loops and
 * their listening sockets.
 */
#ifndef POSTERN_SERVER_PRIVATE_H
#define POSTERN_SERVER_PRIVATE_H

#include <pthread.h>
#include <stddef.h>
#include <time.h>

#include "config.h"
#include "loop.h"
#include "net_tls.h"
#include "pop3.h"
#include "server_ipcount.h"
#include "server_metrics.h"
#include "server_rate.h"
#include "server_runtime.h"
#include "smtp_session.h"

#define STOP_HARD_MS 5000	/* after the grace: time for the last 421s */

struct server;

struct listen_sock {
	int fd;
	const struct config_listener *lst;
	struct loop_timer pause;
	struct server_loop *owner;
};

struct server_loop {
	struct server *srv;
	unsigned index;
	struct loop *loop;
	struct smtp_env env;
	struct pop3_env penv;		/* POP3 sessions of this loop */
	struct metrics_http metrics;	/* /metrics requests of this loop */
	struct dns_resolver *dns;	/* this loop's resolver (net/dns.h) */
	struct listen_sock *socks;	/* one per listener */
	size_t nsocks;
	pthread_t thread;
	int started;
	int done;			/* atomic: thread left loop_run */
};

struct server {
	pthread_mutex_t cfg_lock;
	struct config *cfg;		/* now in force */
	struct config *boot_cfg;	/* the listeners point into this one */
	struct tls_server *tls;		/* under cfg_lock; NULL: TLS off or broken */
	const char *path;
	const char *const *overrides;
	size_t noverrides;
	struct server_loop *loops;
	size_t nloops;
	/* DNS: one cache for all, one resolver per loop thread;
	 * resolvers[i] is loops[i].dns (to hand to outbound delivery). */
	struct dns_cache *dns_cache;
	struct dns_resolver **resolvers;
	struct outbound *outbound;	/* on loops[0] (deliver/outbound.h) */
	struct spool *spool;
	struct deliver *deliver;
	struct workpool *pool;		/* every blocking job: one pool */
	struct state *state;		/* shared state: greylisting, failed logins, ... */
	int qlock;			/* spool/queue.lock, held while serving */
	struct server_control *control;	/* state/control: postern queue */
	struct pop3_service *pop3;	/* POP3 workers, locks, failed logins */
	unsigned long sessions;		/* atomic */
	struct ip_counts ips;		/* sessions per client address */
	struct conn_rates rates;	/* new connections per second */
	time_t started;
	struct server_pidfile pidfile;
};

/* The configuration and TLS context in force, referenced (server.c). */
struct config *server_config_get(void *arg);
struct tls_server *server_tls_get(void *arg);

/* ---- server_accept.c ---------------------------------------------------- */

/* The loop stops once it drains and has neither SMTP nor POP3 sessions. */
void server_loop_stop_if_idle(struct server_loop *sl);
/* The sessions' environment callbacks: a session ended (its slot
 * released), a session behind PROXY admitted once its client is known. */
void server_session_ended(struct smtp_env *env, const struct sockaddr_storage *peer);
enum cond_id server_session_admit(struct smtp_env *env, const struct sockaddr_storage *client,
				  const char *text, struct kv kv[3]);
void server_pop3_session_ended(struct pop3_env *env, const struct sockaddr_storage *peer);
enum cond_id server_pop3_session_admit(struct pop3_env *env,
				       const struct sockaddr_storage *client, const char *text,
				       struct kv kv[3]);
/* A listening socket is readable: accepts a batch (pausing the listener
 * on an error such as EMFILE); resume is the pause timer's callback. */
void server_accept_ready(struct loop *loop, int fd, unsigned events, void *arg);
void server_accept_resume(struct loop *loop, void *arg);

#endif
