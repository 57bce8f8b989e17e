/*
 * server_accept.c - taking connections: each loop's listening sockets
 * (accept4 in batches, a pause after an accept error such as EMFILE), the
 * server-wide limits a new connection meets (limits.connections, the
 * per-address and connection-rate admission, done again once a PROXY
 * header names the client), and the start and end of each session.
 */
#include "server_private.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "catalog.h"
#include "log.h"
#include "metrics.h"
#include "net_conn.h"

#define ACCEPT_BATCH 64
#define ACCEPT_PAUSE_MS 100

void
server_loop_stop_if_idle(struct server_loop *sl)
{
	if (sl->env.draining && sl->env.table.live == 0 && sl->penv.table.live == 0)
		loop_stop(sl->loop);
}

void
server_session_ended(struct smtp_env *env, const struct sockaddr_storage *peer)
{
	struct server *srv = env->server;
	struct server_loop *sl = (struct server_loop *)((char *)env -
							offsetof(struct server_loop, env));

	if (peer != NULL)
		ip_counts_release(&srv->ips, peer);
	__atomic_sub_fetch(&srv->sessions, 1, __ATOMIC_RELAXED);
	metrics_gauge_add(METRICS_OPEN_SMTP, -1);
	server_loop_stop_if_idle(sl);
}

/* A session behind a proxy_protocol listener, once the PROXY header
 * named its client: admitted as accept_one admits the others (rated: the
 * connection rates too, SMTP only). */
static enum cond_id
admit_proxied(struct server *srv, const struct sockaddr_storage *client, const char *text,
	      int rated, struct kv kv[3])
{
	struct config *cfg = server_config_get(srv);
	enum cond_id c = server_admit(&srv->ips, &srv->rates, cfg, client, text, rated,
				      cfg->limits_connections_per_ip, kv);

	config_unref(&cfg);
	return c;
}

enum cond_id
server_session_admit(struct smtp_env *env, const struct sockaddr_storage *client, const char *text,
	      struct kv kv[3])
{
	return admit_proxied(env->server, client, text, 1, kv);
}

enum cond_id
server_pop3_session_admit(struct pop3_env *env, const struct sockaddr_storage *client,
		   const char *text, struct kv kv[3])
{
	enum cond_id c = admit_proxied(env->server, client, text, 0, kv);

	return c == COND_POLICY_CONCURRENCY_LIMIT ? COND_POP3_TOO_MANY_CONNECTIONS : c;
}

void
server_pop3_session_ended(struct pop3_env *env, const struct sockaddr_storage *peer)
{
	struct server *srv = env->server;
	struct server_loop *sl = (struct server_loop *)((char *)env -
							offsetof(struct server_loop, penv));

	if (peer != NULL)
		ip_counts_release(&srv->ips, peer);
	__atomic_sub_fetch(&srv->sessions, 1, __ATOMIC_RELAXED);
	metrics_gauge_add(METRICS_OPEN_POP3, -1);
	server_loop_stop_if_idle(sl);
}

/* ---- accepting -------------------------------------------------------- */

void
server_accept_resume(struct loop *loop, void *arg)
{
	struct listen_sock *ls = arg;

	if (ls->fd >= 0 && loop_mod_fd(loop, ls->fd, LOOP_READ) < 0)
		PANIC("cannot resume listener");
}

static void
accept_pause(struct loop *loop, struct listen_sock *ls)
{
	if (loop_mod_fd(loop, ls->fd, 0) < 0)
		PANIC("cannot pause listener");
	loop_timer_set(loop, &ls->pause, ACCEPT_PAUSE_MS);
}

/* fd was accepted from peer (plen octets of it). */
static void
accept_one(struct server_loop *sl, const struct listen_sock *ls, int fd,
	   const struct sockaddr_storage *peer, socklen_t plen)
{
	int pop3 = ls->lst->role == CONFIG_ROLE_POP3 || ls->lst->role == CONFIG_ROLE_POP3S;
	struct server *srv = sl->srv;
	struct config *cfg = server_config_get(srv);
	char client[NET_ADDR_TEXT];

	if (ls->lst->role == CONFIG_ROLE_METRICS) {	/* not a mail session */
		server_metrics_accept(&sl->metrics, fd, cfg, ls->lst->address);
		config_unref(&cfg);
		return;
	}
	if (plen == 0 || plen > sizeof(*peer) ||
	    sockaddr_format((const struct sockaddr *)peer, client, sizeof(client), 0) < 0)
		client[0] = '\0';
	unsigned long now = __atomic_add_fetch(&srv->sessions, 1, __ATOMIC_RELAXED);
	if (now > cfg->limits_connections) {
		__atomic_sub_fetch(&srv->sessions, 1, __ATOMIC_RELAXED);
		struct kv kv[] = { KV("client", client), KVU("sessions", now - 1),
				   KVU("limit", cfg->limits_connections) };
		if (pop3)
			pop3_refuse_connection(fd, COND_POP3_SERVER_BUSY, kv, ARRAY_LEN(kv));
		else
			smtp_refuse_connection(fd, COND_NET_SERVER_BUSY, cfg->hostname, kv,
					       ARRAY_LEN(kv));
		config_unref(&cfg);
		return;
	}
	/* Behind a PROXY protocol proxy every client shares its address: a
	 * session is admitted once its header named the client
	 * (server_session_admit, server_pop3_session_admit). */
	if (!ls->lst->proxy_protocol) {
		struct kv kv[3];
		enum cond_id c = server_admit(&srv->ips, &srv->rates, cfg, peer, client, !pop3,
					      cfg->limits_connections_per_ip, kv);

		if (c != COND__COUNT) {
			__atomic_sub_fetch(&srv->sessions, 1, __ATOMIC_RELAXED);
			if (pop3)
				pop3_refuse_connection(fd, COND_POP3_TOO_MANY_CONNECTIONS, kv, 3);
			else
				smtp_refuse_connection(fd, c, cfg->hostname, kv, 3);
			config_unref(&cfg);
			return;
		}
	}
	config_unref(&cfg);
	metrics_inc(pop3 ? METRICS_SESSIONS_POP3 : METRICS_SESSIONS_SMTP);
	metrics_gauge_add(pop3 ? METRICS_OPEN_POP3 : METRICS_OPEN_SMTP, 1);
	if (pop3)
		pop3_session_start(&sl->penv, fd, ls->lst, now);
	else
		smtp_session_start(&sl->env, fd, ls->lst, now);
}

void
server_accept_ready(struct loop *loop, int fd, unsigned events, void *arg)
{
	struct listen_sock *ls = arg;
	struct server_loop *sl = ls->owner;

	(void)events;
	for (int i = 0; i < ACCEPT_BATCH && !sl->env.draining; i++) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		int c = accept4(fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c >= 0) {
			accept_one(sl, ls, c, &peer, plen);
			continue;
		}
		int e = errno;
		if (e == EAGAIN || e == EWOULDBLOCK)
			return;
		if (e == EINTR || e == ECONNABORTED || e == EPROTO)
			continue;
		struct kv kv[] = { KV("local", ls->lst->address), KV("errno", log_errno_name(e)),
				   KV("err", strerror(e)) };
		if (e == EMFILE || e == ENFILE)
			catalog_log(COND_RESOURCE_FD_EXHAUSTED, NULL, kv, 2);
		else
			catalog_log(COND_NET_ACCEPT_FAILED, NULL, kv, ARRAY_LEN(kv));
		accept_pause(loop, ls);
		return;
	}
}
