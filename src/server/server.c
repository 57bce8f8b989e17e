/*
 * server.c - the daemon: start-up, loop threads, accept, signals, reload,
 * shutdown (see server.h).
 *
 * Start-up order matters: read the configuration; bind every listener
 * (one socket per loop and listener, SO_REUSEPORT) while still root; give
 * the data folders to server.user and drop privileges; only then start
 * threads (spool, delivery, loops), recover the spool and serve. The main
 * thread then only waits for signals.
 *
 * Shared between threads: the configuration pointer (under cfg_lock, each
 * user takes a reference), the session counters (atomics) and the
 * per-address tables (server_ipcount.c, touched once at accept and once at
 * close; server_rate.c, once at accept). Everything else belongs to one loop.
 */
#include "server.h"
#include "server_backlog.h"
#include "server_ipcount.h"
#include "server_rate.h"
#include "server_tls.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "catalog.h"
#include "config.h"
#include "server_config.h"
#include "cidr.h"
#include "log.h"
#include "loop.h"
#include "workpool.h"
#include "deliver.h"
#include "deliver_quota.h"
#include "deliver_space.h"
#include "directory_srs.h"
#include "dns.h"
#include "outbound.h"
#include "regdomain.h"
#include "net_conn.h"
#include "net_tls.h"
#include "net_tls_ticket.h"
#include "policy_checks.h"
#include "pop3.h"
#include "smtp_auth.h"
#include "smtp_session.h"
#include "state.h"
#include "authfail.h"
#include "spool.h"
#include "server_control.h"
#include "deliver_admin.h"
#include "server_runtime.h"
#include "server_metrics.h"
#include "metrics.h"
#include "server_private.h"

#define EX_CONFIG 78
/* ---- configuration snapshot ------------------------------------------ */

struct config *
server_config_get(void *arg)
{
	struct server *srv = arg;
	struct config *cfg;

	pthread_mutex_lock(&srv->cfg_lock);
	cfg = config_ref(srv->cfg);
	pthread_mutex_unlock(&srv->cfg_lock);
	return cfg;
}

struct tls_server *
server_tls_get(void *arg)
{
	struct server *srv = arg;
	struct tls_server *t;

	pthread_mutex_lock(&srv->cfg_lock);
	t = tls_server_ref(srv->tls);
	pthread_mutex_unlock(&srv->cfg_lock);
	return t;
}

/* ---- loop threads ----------------------------------------------------- */

static void *
loop_thread(void *arg)
{
	struct server_loop *sl = arg;

	if (loop_run(sl->loop) < 0)
		PANIC("event loop failed");
	__atomic_store_n(&sl->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Posted to each loop at SIGTERM: close listeners, take no new sessions. */
static void
loop_drain(struct loop *loop, void *arg)
{
	struct server_loop *sl = arg;

	sl->env.draining = 1;
	sl->penv.draining = 1;
	for (size_t i = 0; i < sl->nsocks; i++) {
		if (sl->socks[i].fd < 0)
			continue;
		loop_timer_cancel(loop, &sl->socks[i].pause);
		loop_del_fd(loop, sl->socks[i].fd);
		close(sl->socks[i].fd);
		sl->socks[i].fd = -1;
	}
	(void)loop;
	server_loop_stop_if_idle(sl);
}

static int stop_signal = SIGTERM;

static void
loop_stop_sessions(struct loop *loop, void *arg)
{
	struct server_loop *sl = arg;

	(void)loop;
	smtp_env_stop_sessions(&sl->env, stop_signal);
	pop3_env_stop_sessions(&sl->penv, stop_signal);
	server_loop_stop_if_idle(sl);
}

static const char *
role_name(enum config_role r)
{
	const char *n = config_role_name(r);

	return n ? n : "?";
}

/* Binds every listener once per loop. */
static int
open_listeners(struct server *srv)
{
	const struct config *cfg = srv->cfg;
	int backlog = server_backlog_effective(cfg, SERVER_SOMAXCONN_PATH);

	for (size_t l = 0; l < srv->nloops; l++) {
		struct server_loop *sl = &srv->loops[l];
		sl->nsocks = cfg->nlisteners;
		sl->socks = xcalloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(*sl->socks));
		for (size_t i = 0; i < cfg->nlisteners; i++) {
			const struct config_listener *lst = &cfg->listeners[i];
			struct listen_sock *ls = &sl->socks[i];
			ls->lst = lst;
			ls->owner = sl;
			ls->fd = net_listen((const struct sockaddr *)&lst->addr, lst->addrlen, backlog);
			if (ls->fd < 0) {
				int e = errno;
				struct kv kv[] = { KV("local", lst->address), KV("role", role_name(lst->role)),
						   KV("errno", log_errno_name(e)), KV("err", strerror(e)) };
				catalog_log(COND_NET_LISTEN_FAILED, NULL, kv, ARRAY_LEN(kv));
				return -1;
			}
			struct kv kv[] = { KV("local", lst->address), KV("role", role_name(lst->role)),
					   KVU("loop", l) };
			catalog_log(COND_NET_LISTEN_READY, NULL, kv, ARRAY_LEN(kv));
		}
	}
	return 0;
}

/* ---- reload ----------------------------------------------------------- */

static void
restart_needed(const char *option, void *arg)
{
	struct kv kv[] = { KV("option", option) };

	(void)arg;
	catalog_log(COND_CONFIG_RESTART_NEEDED, NULL, kv, 1);
}

/* Each configuration problem as an event: a map file that cannot be
 * opened is CONFIG-MAP-OPEN-FAILED, anything else CONFIG-INVALID. */
static void
log_diags(const struct diag *d, const char *config_path)
{
	for (size_t i = 0; i < d->n; i++) {
		if (d->kinds[i] == DIAG_OPEN_FAILED && strcmp(d->paths[i], config_path) != 0) {
			int e = d->errnos[i];
			const char *opt = d->options[i];
			struct kv kv[] = { KV("option", opt), KV("path", d->paths[i]),
					   KV("errno", log_errno_name(e)), KV("err", strerror(e)) };
			catalog_log(COND_CONFIG_MAP_OPEN_FAILED, NULL, kv, ARRAY_LEN(kv));
			continue;
		}
		struct kv kv[] = { KV("path", d->paths[i]),
				   d->lines[i] ? KVU("line", d->lines[i]) : KV("line", NULL),
				   KV("err", d->msgs[i]) };
		catalog_log(COND_CONFIG_INVALID, NULL, kv, ARRAY_LEN(kv));
	}
}

/* On each loop's thread: the resolver takes the new dns.* options. */
static void
loop_dns_reload(struct loop *loop, void *arg)
{
	struct server_loop *sl = arg;
	struct config *cfg = server_config_get(sl->srv);

	(void)loop;
	if (dns_resolver_set_config(sl->dns, cfg) < 0) {
		/* the old servers stay; the options were checked at load */
	}
	config_unref(&cfg);
}

static void
server_reload(struct server *srv)
{
	struct diag d;

	diag_init(&d);
	struct config *next = server_config_load(srv->path, srv->overrides, srv->noverrides, &d);
	if (next == NULL) {
		log_diags(&d, srv->path);
		struct kv kv[] = { KV("path", srv->path), KVU("errors", d.n) };
		catalog_log(COND_CONFIG_RELOAD_FAILED, NULL, kv, ARRAY_LEN(kv));
		diag_fini(&d);
		return;
	}
	diag_fini(&d);
	if (directory_srs_prepare(next) < 0) {
		struct kv kv[] = { KV("path", srv->path), KVU("errors", 1) };
		catalog_log(COND_CONFIG_RELOAD_FAILED, NULL, kv, ARRAY_LEN(kv));
		config_unref(&next);
		return;
	}
	/* Certificates are read again on every reload (renewals need no
	 * restart); a broken new pair keeps the old context. */
	tls_ticket_set_rotation(next->tls_ticket_key_rotation);	/* keys outlive contexts */
	struct tls_server *tls = server_tls_build(next);
	pthread_mutex_lock(&srv->cfg_lock);
	struct config *old = srv->cfg;
	next->generation = old->generation + 1;
	config_diff_restart(old, next, restart_needed, NULL);
	srv->cfg = next;
	char names[256];
	if (tls != NULL ||
	    (next->tls_cert_file[0] == '\0' && server_tls_listeners(next, names, sizeof(names)) == 0)) {
		struct tls_server *prev = srv->tls;
		srv->tls = tls;
		tls = prev;
	}
	pthread_mutex_unlock(&srv->cfg_lock);
	tls_server_unref(&tls);
	enum log_sev sev;
	if (log_sev_parse(next->log_level, &sev) == 0)
		log_set_min(sev);
	deliver_set_config(srv->deliver, next);
	if (srv->outbound != NULL)
		outbound_set_config(srv->outbound, next);
	for (size_t i = 0; i < srv->nloops; i++)
		if (srv->loops[i].dns != NULL)
			loop_post(srv->loops[i].loop, loop_dns_reload, &srv->loops[i]);
	struct kv kv[] = { KV("path", srv->path), KVU("generation", next->generation) };
	catalog_log(COND_CONFIG_RELOADED, NULL, kv, ARRAY_LEN(kv));
	/* Sessions hold their own references; listeners point into boot_cfg. */
	config_unref(&old);
}

/* ---- shutdown --------------------------------------------------------- */

static int
all_loops_done(struct server *srv)
{
	for (size_t i = 0; i < srv->nloops; i++)
		if (srv->loops[i].started && !__atomic_load_n(&srv->loops[i].done, __ATOMIC_ACQUIRE))
			return 0;
	return 1;
}

static void
wait_loops(struct server *srv, uint64_t ms)
{
	uint64_t end = loop_clock_ms() + ms;

	while (!all_loops_done(srv) && loop_clock_ms() < end) {
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

static void
server_shutdown(struct server *srv, int signo)
{
	unsigned grace = srv->cfg->server_shutdown_grace;
	char sig[16];

	stop_signal = signo;
	if (snprintf(sig, sizeof(sig), "%s", signo == SIGINT ? "SIGINT" : "SIGTERM") < 0)
		sig[0] = '\0';
	struct kv kv[] = { KV("signal", sig),
			   KVU("sessions", __atomic_load_n(&srv->sessions, __ATOMIC_RELAXED)),
			   KVU("grace_s", grace) };
	catalog_log(COND_SIGNAL_SLOW_QUIT, NULL, kv, ARRAY_LEN(kv));
	for (size_t i = 0; i < srv->nloops; i++)
		loop_post(srv->loops[i].loop, loop_drain, &srv->loops[i]);
	wait_loops(srv, (uint64_t)grace * 1000u);
	if (!all_loops_done(srv)) {
		for (size_t i = 0; i < srv->nloops; i++)
			if (!__atomic_load_n(&srv->loops[i].done, __ATOMIC_ACQUIRE))
				loop_post(srv->loops[i].loop, loop_stop_sessions, &srv->loops[i]);
		wait_loops(srv, STOP_HARD_MS);
	}
	for (size_t i = 0; i < srv->nloops; i++)
		loop_stop(srv->loops[i].loop);
	for (size_t i = 0; i < srv->nloops; i++)
		if (srv->loops[i].started)
			pthread_join(srv->loops[i].thread, NULL);
}

/* ---- main ------------------------------------------------------------- */

/* The control socket's status: messages in the delivery queue. */
static unsigned long
server_pending(void *arg)
{
	struct server *srv = arg;

	return deliver_pending(srv->deliver);
}

static void
describe_outbound(void *arg, struct buf *out)
{
	outbound_describe(arg, out);
}

/* The control socket's status: the outbound engine's destinations, read
 * on its loop. */
static void
server_destinations(void *arg, struct buf *out)
{
	struct server *srv = arg;

	if (srv->outbound != NULL)
		server_control_on_loop(srv->loops[0].loop, describe_outbound, srv->outbound, out);
}

static unsigned
loop_count(const struct config *cfg)
{
	long n;

	if (cfg->server_loops > 0)
		return cfg->server_loops;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 && n < 256 ? (unsigned)n : 1;
}

int
server_run(const char *config_path, const char *const *overrides, size_t noverrides)
{
	struct server *srv = xcalloc(1, sizeof(*srv));
	struct diag d;
	sigset_t set;
	int rc = 1;

	diag_init(&d);
	srv->cfg = server_config_load(config_path, overrides, noverrides, &d);
	if (srv->cfg == NULL) {
		/* Logged as events (to stderr: the log target is not known). */
		log_diags(&d, config_path);
		diag_fini(&d);
		free(srv);
		return EX_CONFIG;
	}
	diag_fini(&d);
	srv->cfg->generation = 1;
	srv->boot_cfg = config_ref(srv->cfg);
	srv->path = config_path;
	srv->overrides = overrides;
	srv->noverrides = noverrides;
	srv->started = time(NULL);
	srv->pidfile.fd = -1;
	srv->qlock = -1;
	pthread_mutex_init(&srv->cfg_lock, NULL);
	ip_counts_init(&srv->ips);
	conn_rates_init(&srv->rates);

	enum log_sev sev = LOG_SEV_INFO;
	if (log_sev_parse(srv->cfg->log_level, &sev) < 0)
		sev = LOG_SEV_INFO;
	log_set_queue_lines(srv->cfg->log_queue_lines);
	log_set_drop_report(server_log_drops);
	if (log_open(srv->cfg->log_target, sev) < 0) {
		fprintf(stderr, "%s: cannot open log target %s: %s\n", config_path,
			srv->cfg->log_target, strerror(errno));
		return EX_CONFIG;
	}
	struct kv vkv[] = { KV("version", POSTERN_VERSION),
			    KV("openssl", OpenSSL_version(OPENSSL_VERSION)),
			    KV("sqlite", sqlite3_libversion()) };
	catalog_log(COND_STARTUP_VERSION, NULL, vkv, ARRAY_LEN(vkv));

	/* Signals: handled synchronously by this thread; every other thread
	 * inherits the mask. A write past RLIMIT_FSIZE must fail with EFBIG,
	 * not kill the process; a closed client socket must give EPIPE. */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGQUIT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	server_nofile_raise(srv->cfg, loop_count(srv->cfg));
	tls_ticket_set_rotation(srv->cfg->tls_ticket_key_rotation);
	const char *dirs[] = { srv->cfg->server_spool, srv->cfg->server_state,
			       srv->cfg->server_mail_root };
	for (size_t i = 0; i < ARRAY_LEN(dirs); i++) {
		if (server_mkdir_p(dirs[i], 0700) < 0) {
			server_init_failed("storage", dirs[i], errno);
			goto out;
		}
	}
	if (server_pidfile_open(&srv->pidfile, srv->cfg->server_pid_file) < 0)
		goto out;
	if ((srv->qlock = server_queue_lock(srv->cfg->server_spool)) < 0)
		goto out;
	/* Before the privilege drop: the key may be readable by root only.
	 * A listener that needs TLS does not start without it. */
	char names[256], why[512];
	if (server_tls_listeners(srv->cfg, names, sizeof(names)) > 0) {
		srv->tls = server_tls_try(srv->cfg, why, sizeof(why));
		if (srv->tls == NULL) {
			struct kv kv[] = { KV("listeners", names),
					   KV("cert", srv->cfg->tls_cert_file),
					   KV("err", why) };
			catalog_log(COND_STARTUP_LISTENER_NEEDS_TLS, NULL, kv, ARRAY_LEN(kv));
			rc = EX_CONFIG;
			goto out;
		}
	} else {
		srv->tls = server_tls_build(srv->cfg);
	}
	srv->nloops = loop_count(srv->cfg);
	srv->loops = xcalloc(srv->nloops, sizeof(*srv->loops));
	if (open_listeners(srv) < 0)
		goto out;
	if (server_drop_privileges(srv->cfg, &srv->pidfile, srv->qlock) < 0) {
		rc = EX_CONFIG;
		goto out;
	}
	/* After the drop: the secret file belongs to the server's user. */
	if (directory_srs_prepare(srv->cfg) < 0) {
		rc = EX_CONFIG;
		goto out;
	}
	/* One worker pool; each user adds its class with its own cap
	 * (server.workers each for commits, deliveries, POP3 and AUTH, one
	 * quota scan and one statvfs refresh at a time), so no class ever
	 * waits behind another. */
	srv->pool = workpool_new();
	srv->spool = spool_open(srv->cfg->server_spool, srv->pool, srv->cfg->server_workers);
	if (srv->spool == NULL)
		goto out;
	if (quota_start(srv->pool) < 0) {
		server_init_failed("quota", "-", EAGAIN);
		goto out;
	}
	const char *space_paths[] = { srv->cfg->server_spool, srv->cfg->server_mail_root };
	if (space_start(srv->pool, space_paths, ARRAY_LEN(space_paths)) < 0) {
		server_init_failed("space", "-", EAGAIN);
		goto out;
	}
	srv->deliver = deliver_new(srv->spool, srv->cfg, srv->pool, srv->cfg->server_workers);
	spool_set_sink(srv->spool, deliver_enqueue, srv->deliver);
	/* Recovery runs on the pool while the listeners serve. */
	if (spool_recover_start(srv->spool) < 0) {
		server_init_failed("spool", srv->cfg->server_spool, EAGAIN);
		goto out;
	}
	/* After the privilege drop, before the loops: the shared state store
	 * (a SQLite one that cannot open is logged and kept in memory), then
	 * what uses it: the checks, POP3 and AUTH. */
	{
		struct state_params sp = { .backend = srv->cfg->state_backend,
					   .dir = srv->cfg->server_state,
					   .redis = srv->cfg->state_redis,
					   .timeout_ms = srv->cfg->state_redis_timeout,
					   .workers = srv->cfg->server_workers };
		const char *state_err = "";

		srv->state = state_open(&sp, srv->pool, &state_err);
		if (srv->state == NULL) {
			server_init_failed("state", state_err, EINVAL);
			goto out;
		}
	}
	policy_state_set(srv->state);
	srv->pop3 = pop3_service_new(srv->pool, srv->state, srv->cfg->server_workers);
	if (smtp_auth_init(srv->state, srv->pool, srv->cfg->server_workers) < 0) {
		/* AUTH answers 454 AUTH-SASL-INIT-FAILED; mail still flows */
	}

	(void)regdomain_init();	/* the public suffix list, read once here */
	srv->dns_cache = dns_cache_new(srv->cfg->dns_cache_size);
	srv->resolvers = xcalloc(srv->nloops, sizeof(*srv->resolvers));
	for (size_t i = 0; i < srv->nloops; i++) {
		struct server_loop *sl = &srv->loops[i];
		sl->srv = srv;
		sl->index = (unsigned)i;
		sl->loop = loop_new();
		if (sl->loop == NULL) {
			server_init_failed("loop", "-", errno);
			goto stop;
		}
		/* before the thread: with no dns.servers it reads resolv.conf */
		sl->dns = srv->resolvers[i] = dns_resolver_new(sl->loop, srv->cfg, srv->dns_cache);
		if (sl->dns == NULL) {
			server_init_failed("dns", "-", EAGAIN);
			goto stop;
		}
		sl->env.loop = sl->loop;
		sl->env.dns = sl->dns;
		sl->env.spool = srv->spool;
		sl->env.config_get = server_config_get;
		sl->env.tls_get = server_tls_get;
		sl->env.server = srv;
		sl->env.on_end = server_session_ended;
		sl->env.admit = server_session_admit;
		sl->penv.loop = sl->loop;
		sl->metrics.loop = sl->loop;
		sl->penv.svc = srv->pop3;
		sl->penv.config_get = server_config_get;
		sl->penv.server = srv;
		sl->penv.tls_get = server_tls_get;
		sl->penv.on_end = server_pop3_session_ended;
		sl->penv.admit = server_pop3_session_admit;
		loop_set_data(sl->loop, &sl->env);
		for (size_t j = 0; j < sl->nsocks; j++) {
			loop_timer_init(&sl->socks[j].pause, server_accept_resume, &sl->socks[j]);
			if (loop_add_fd(sl->loop, sl->socks[j].fd, LOOP_READ, server_accept_ready,
					&sl->socks[j]) < 0) {
				server_init_failed("loop", "-", errno);
				goto stop;
			}
		}
		int e = pthread_create(&sl->thread, NULL, loop_thread, sl);
		if (e != 0) {
			server_init_failed("loop", "-", e);
			goto stop;
		}
		sl->started = 1;
	}
	/* Outbound delivery runs on the first loop (docs/design.md); what
	 * waited for it (recovered messages) is due now. */
	srv->outbound = outbound_new(srv->loops[0].loop, srv->loops[0].dns, srv->pool, srv->cfg);
	if (srv->outbound == NULL) {
		server_init_failed("outbound", "-", EAGAIN);
		goto stop;
	}
	deliver_set_outbound(srv->deliver, srv->outbound);
	/* postern queue on the running daemon (server_control.h) */
	struct control_ops cops = {
		.arg = deliver_admin_of(srv->deliver), .flush = deliver_admin_flush,
		.hold = deliver_admin_hold, .remove = deliver_admin_delete,
		.bounce = deliver_admin_bounce, .status_arg = srv,
		.pending = server_pending, .destinations = server_destinations,
	};
	srv->control = server_control_start(srv->cfg->server_state, &cops);
	struct kv rkv[] = { KVU("listeners", srv->cfg->nlisteners), KVU("loops", srv->nloops),
			    KVU("pid", getpid()) };
	catalog_log(COND_STARTUP_READY, NULL, rkv, ARRAY_LEN(rkv));

	for (;;) {
		siginfo_t si;
		int signo = sigwaitinfo(&set, &si);
		if (signo < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (signo == SIGHUP) {
			server_reload(srv);
			continue;
		}
		if (signo == SIGTERM || signo == SIGINT) {
			rc = 0;
			break;
		}
		struct kv kv[] = { KV("signal", sigabbrev_np(signo) ? sigabbrev_np(signo) : "?") };
		catalog_log(COND_SIGNAL_UNEXPECTED, NULL, kv, 1);
	}
stop:
	server_control_stop(&srv->control);	/* its hooks need loop 0 */
	server_shutdown(srv, stop_signal == SIGINT ? SIGINT : SIGTERM);
out:
	/* Order matters: delivery calls back into the spool. */
	server_control_stop(&srv->control);
	if (srv->spool != NULL)
		spool_set_sink(srv->spool, NULL, NULL);
	/* The loops have stopped: outbound jobs come back unrecorded (their
	 * messages stay in the spool) before delivery stops. */
	if (srv->deliver != NULL)
		deliver_set_outbound(srv->deliver, NULL);
	outbound_free(&srv->outbound);
	deliver_free(&srv->deliver);
	spool_close(&srv->spool);
	/* The loops have stopped: sessions left are dropped (POP3: no
	 * UPDATE), then the workers stop and jobs nobody collected are freed. */
	for (size_t i = 0; srv->loops && i < srv->nloops; i++) {
		smtp_env_fini(&srv->loops[i].env);
		pop3_env_fini(&srv->loops[i].penv);
		server_metrics_fini(&srv->loops[i].metrics);
	}
	pop3_service_free(&srv->pop3);
	smtp_auth_shutdown();
	policy_state_set(NULL);
	state_close(&srv->state);
	quota_fini();
	space_stop();
	/* Every class has stopped: the threads end (after the loops, before
	 * they are freed: the pool's outboxes name them). */
	workpool_free(&srv->pool);
	for (size_t i = 0; srv->loops && i < srv->nloops; i++) {
		for (size_t j = 0; j < srv->loops[i].nsocks; j++)
			if (srv->loops[i].socks[j].fd >= 0)
				close(srv->loops[i].socks[j].fd);
		free(srv->loops[i].socks);
		dns_resolver_free(&srv->loops[i].dns);
		loop_free(&srv->loops[i].loop);
	}
	free(srv->loops);
	free(srv->resolvers);
	dns_cache_free(&srv->dns_cache);
	server_pidfile_remove(&srv->pidfile);
	if (srv->qlock >= 0)
		close(srv->qlock);
	struct kv skv[] = { KVU("uptime_s", (uint64_t)(time(NULL) - srv->started)) };
	catalog_log(COND_SHUTDOWN_COMPLETE, NULL, skv, 1);
	config_unref(&srv->cfg);
	config_unref(&srv->boot_cfg);
	tls_server_unref(&srv->tls);
	ip_counts_fini(&srv->ips);
	conn_rates_fini(&srv->rates);
	free(srv);
	log_close();
	return rc;
}
