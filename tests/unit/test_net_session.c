/*
 * test_net_session.c - the session core on one loop in this process: an
 * outbound session connects (non-blocking, with a deadline) and runs TLS
 * as the client against a server session of the same core on loopback
 * (implicit TLS, the test's own self-signed certificate as the CA):
 * verification succeeds for the certificate's name and fails for a
 * wrong one; a refused connect and a handshake nobody answers end with
 * the right errors; the preface stage reads exactly its header; an idle
 * session holds no buffer memory; handles of ended sessions find nothing.
 *
 * With arguments "client ADDR PORT CAFILE NAME" it is instead a client of
 * a running daemon's implicit-TLS port (tests/e2e/test_net_client.py):
 * it prints "ok <first line>" or "fail <reason>" and exits 0 or 1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net_session.h"
#include "testing.h"

struct peer {
	struct net_session ns;
	struct conn conn;
	struct buf in, out;
	size_t in_off;
	int server;
	struct tls_server *sctx;	/* server: implicit TLS with this */
	struct tls_client *cctx;	/* client: TLS with this */
	const char *host;
	const char *preface_send;	/* client: written on connect */
	int started, tls_ready, failed, closed_err, freed;
	enum cond_id fail_cause;
	char got[256];			/* first line received */
	struct loop *loop;
	int done;
	void (*on_line)(struct peer *p);	/* client: checks while connected */
};

static struct net_table table;
static struct peer *server_peer;
static char preface_seen[64];
static struct loop_timer settle_timer;

static void peer_end(struct peer *p);

/* The client's result is in: it leaves, and the loop runs on briefly so
 * the server sees its end and the deferred frees are done. */
static void
client_done(struct peer *p)
{
	if (p->server || p->done)
		return;
	p->done = 1;
	peer_end(p);
	loop_timer_set(p->loop, &settle_timer, 100);
}

static void
peer_free(void *arg)
{
	struct peer *p = arg;

	buf_fini(&p->in);
	buf_fini(&p->out);
	p->freed = 1;
}

static void
peer_end(struct peer *p)
{
	if (net_session_closed(&p->ns))
		return;
	net_session_stop(&p->ns);
	net_session_release(&p->ns);
}

static void
peer_process(void *arg)
{
	struct peer *p = arg;
	struct slice u = buf_unread(&p->in, p->in_off);
	const uint8_t *lf = u.len ? memchr(u.p, '\n', u.len) : NULL;

	if (lf != NULL && p->got[0] == '\0') {
		size_t n = (size_t)(lf - u.p);
		if (n >= sizeof(p->got))
			n = sizeof(p->got) - 1;
		memcpy(p->got, u.p, n);
		p->got[n] = '\0';
		if (n > 0 && p->got[n - 1] == '\r')
			p->got[n - 1] = '\0';
		p->in_off += (size_t)(lf - u.p) + 1;
	}
	if (net_session_flush(&p->ns, 0) == CONN_IO_ERROR) {
		peer_end(p);
		return;
	}
	if (!p->server && p->got[0]) {
		if (p->on_line != NULL)
			p->on_line(p);
		client_done(p);
	}
}

static void
peer_greet(struct peer *p, const char *line)
{
	if (buf_append_str(&p->out, line) < 0)
		return;
	peer_process(p);
}

static void
peer_start(void *arg)
{
	struct peer *p = arg;

	p->started = 1;
	if (p->server && p->sctx != NULL) {
		if (net_session_tls_accept(&p->ns, tls_server_ref(p->sctx), 5000, "no context") < 0) {
			peer_end(p);
			return;
		}
		net_session_tls_step(&p->ns);
		return;
	}
	if (p->server) {
		peer_greet(p, "220 plain\r\n");
		return;
	}
	if (p->preface_send != NULL && buf_append_str(&p->out, p->preface_send) < 0)
		return;
	if (p->cctx != NULL) {
		if (net_session_tls_connect(&p->ns, p->cctx, p->host, 2000) < 0) {
			p->failed = 1;
			client_done(p);
		}
		return;
	}
	peer_process(p);
}

static void
peer_closed(void *arg, int err)
{
	struct peer *p = arg;

	p->closed_err = err ? err : -1;
	peer_end(p);
	client_done(p);
}

static void
peer_timeout(void *arg)
{
	peer_end(arg);
}

static void
peer_fail(void *arg, enum cond_id cause)
{
	struct peer *p = arg;

	p->failed = 1;
	p->fail_cause = cause;
	peer_end(p);
	client_done(p);
}

static void
peer_tls_ready(void *arg)
{
	struct peer *p = arg;

	p->tls_ready = 1;
	if (p->server)
		peer_greet(p, "220 over tls\r\n");
	else
		peer_process(p);
}

static const struct net_session_ops peer_ops = {
	.start = peer_start,
	.process = peer_process,
	.closed = peer_closed,
	.timeout = peer_timeout,
	.fail = peer_fail,
	.tls_ready = peer_tls_ready,
	.free = peer_free,
};

static void
peer_init(struct peer *p, struct loop *loop, int server)
{
	memset(p, 0, sizeof(*p));
	p->loop = loop;
	p->server = server;
	buf_init(&p->in, 4096);
	buf_init(&p->out, 4096);
	net_session_init(&p->ns, &peer_ops, p, "0000000000000000", &p->conn, &p->in, &p->in_off,
			 &p->out);
}

/* A transport header "PROXY-TEST\r\n": read exactly, never past it. */
static enum net_preface
test_preface(struct net_session *ns, int timed_out)
{
	static const char hdr[] = "PROXY-TEST\r\n";
	char peek[sizeof(hdr)];
	ssize_t n;

	if (timed_out)
		return NET_PREFACE_ERROR;
	n = recv(ns->conn->fd, peek, sizeof(hdr) - 1, MSG_PEEK);
	if (n < 0)
		return errno == EAGAIN ? NET_PREFACE_MORE : NET_PREFACE_ERROR;
	if (n < (ssize_t)sizeof(hdr) - 1)
		return n == 0 ? NET_PREFACE_ERROR : NET_PREFACE_MORE;
	if (memcmp(peek, hdr, sizeof(hdr) - 1) != 0)
		return NET_PREFACE_ERROR;
	if (recv(ns->conn->fd, preface_seen, sizeof(hdr) - 1, 0) != (ssize_t)sizeof(hdr) - 1)
		return NET_PREFACE_ERROR;
	return NET_PREFACE_DONE;
}

struct listener {
	int fd;
	struct tls_server *sctx;
	net_preface_fn preface;
	struct peer srv;
};

static void
accept_ready(struct loop *loop, int fd, unsigned events, void *arg)
{
	struct listener *l = arg;
	int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	(void)events;
	if (c < 0)
		return;
	peer_init(&l->srv, loop, 1);
	l->srv.sctx = l->sctx;
	server_peer = &l->srv;
	conn_init(&l->srv.conn, c);
	if (net_session_accept(&l->srv.ns, &table, loop, l->preface, 2000) < 0)
		peer_end(&l->srv);
}

static void
give_up(struct loop *loop, void *arg)
{
	(void)arg;
	loop_stop(loop);
}

static int
listen_on(struct sockaddr_in *sa)
{
	socklen_t len = sizeof(*sa);

	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = net_listen((struct sockaddr *)sa, sizeof(*sa), 16);
	if (fd >= 0 && getsockname(fd, (struct sockaddr *)sa, &len) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* One client session to sa on a loop of its own (loop_stop is for
 * good), with l's listener on it when l is given, run to its end and
 * settled; bounded: 5 s. */
static void
run_client(struct peer *cl, struct listener *l, const struct sockaddr_in *sa)
{
	struct loop *loop = loop_new();
	struct loop_timer guard;

	cl->loop = loop;
	loop_timer_init(&guard, give_up, NULL);
	loop_timer_init(&settle_timer, give_up, NULL);
	loop_timer_set(loop, &guard, 5000);
	if (l != NULL && loop_add_fd(loop, l->fd, LOOP_READ, accept_ready, l) < 0)
		cl->failed = 1;
	if (net_session_connect(&cl->ns, &table, loop, (const struct sockaddr *)sa, sizeof(*sa),
				2000) < 0)
		cl->closed_err = errno;
	else if (loop_run(loop) < 0)
		cl->failed = 1;
	peer_end(cl);
	if (l != NULL)
		loop_del_fd(loop, l->fd);
	loop_timer_cancel(loop, &guard);
	loop_timer_cancel(loop, &settle_timer);
	loop_free(&loop);
}

static int
client_mode(const char *addr, const char *port, const char *ca, const char *name)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port)) };
	char err[256] = "";
	struct peer cl;

	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		return 2;
	peer_init(&cl, NULL, 0);
	cl.cctx = tls_client_new(ca, err, sizeof(err));
	cl.host = name;
	if (cl.cctx == NULL) {
		printf("fail %s\n", err);
		return 1;
	}
	run_client(&cl, NULL, &sa);
	int ok = cl.tls_ready && cl.got[0];
	if (ok)
		printf("ok %s\n", cl.got);
	else
		printf("fail %s\n", cl.ns.tls_err[0] ? cl.ns.tls_err : "no greeting");
	tls_client_unref(&cl.cctx);
	net_table_fini(&table, NULL);
	return ok ? 0 : 1;
}

static uintptr_t idle_handle;
static int idle_held_memory = -1;

/* While the client is connected and the server waits for it. */
static void
idle_check(struct peer *p)
{
	(void)p;
	idle_handle = net_session_handle(&server_peer->ns);
	idle_held_memory = server_peer->in.data != NULL || server_peer->out.data != NULL;
}

int
main(int argc, char **argv)
{
	if (argc == 6 && strcmp(argv[1], "client") == 0)
		return client_mode(argv[2], argv[3], argv[4], argv[5]);

	char dir[] = "/tmp/postern-ns-XXXXXX", cert[128], key[128], err[256] = "";
	char cert2[160], key2[160];
	struct sockaddr_in sa;
	struct listener l = { 0 };
	struct peer cl;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	snprintf(cert2, sizeof(cert2), "%s/other.pem", dir);
	snprintf(key2, sizeof(key2), "%s/otherkey.pem", dir);
	CHECK_INT(tls_make_self_signed("mx.example.test", cert, key, err, sizeof(err)), 0);
	CHECK_INT(tls_make_self_signed("mx.example.test", cert2, key2, err, sizeof(err)), 0);
	struct tls_server *sctx = tls_server_new(cert, key, err, sizeof(err));
	CHECK(sctx != NULL);
	l.sctx = sctx;
	l.fd = listen_on(&sa);
	CHECK(l.fd >= 0);

	TEST_CASE("tls client verifies the server's certificate and name");
	struct tls_client *cctx = tls_client_new(cert, err, sizeof(err));
	CHECK(cctx != NULL);
	peer_init(&cl, NULL, 0);
	cl.cctx = cctx;
	cl.host = "mx.example.test";
	run_client(&cl, &l, &sa);
	CHECK_INT(cl.tls_ready, 1);
	CHECK_INT(cl.failed, 0);
	CHECK_STR(cl.got, "220 over tls");
	CHECK_INT(server_peer->tls_ready, 1);
	CHECK_INT(cl.freed, 1);
	CHECK_INT(server_peer->freed, 1);

	TEST_CASE("a wrong name fails verification");
	peer_init(&cl, NULL, 0);
	cl.cctx = cctx;
	cl.host = "wrong.example.test";
	run_client(&cl, &l, &sa);
	CHECK_INT(cl.tls_ready, 0);
	CHECK_INT(cl.failed, 1);
	CHECK_INT(cl.fail_cause, COND_TLS_HANDSHAKE_FAILED);
	CHECK(strstr(cl.ns.tls_err, "hostname mismatch") != NULL);
	CHECK_INT(server_peer->tls_ready, 0);

	TEST_CASE("an unknown CA fails verification");
	struct tls_client *other = tls_client_new(cert2, err, sizeof(err));
	CHECK(other != NULL);
	peer_init(&cl, NULL, 0);
	cl.cctx = other;
	cl.host = "mx.example.test";
	run_client(&cl, &l, &sa);
	CHECK_INT(cl.tls_ready, 0);
	CHECK_INT(cl.failed, 1);
	CHECK(strstr(cl.ns.tls_err, "certificate verify failed") != NULL);
	tls_client_unref(&other);
	CHECK(tls_client_new("/nonexistent/ca.pem", err, sizeof(err)) == NULL);

	TEST_CASE("a refused connect reports its errno");
	struct sockaddr_in closed_sa;
	int cfd = listen_on(&closed_sa);
	CHECK(cfd >= 0);
	close(cfd);	/* the port is free now: nobody listens */
	peer_init(&cl, NULL, 0);
	run_client(&cl, NULL, &closed_sa);
	CHECK_INT(cl.closed_err, ECONNREFUSED);
	CHECK_INT(cl.started, 0);

	TEST_CASE("a handshake nobody answers ends at its deadline");
	struct sockaddr_in mute_sa;
	int mute = listen_on(&mute_sa);	/* never accepted: the backlog holds it */
	CHECK(mute >= 0);
	peer_init(&cl, NULL, 0);
	cl.cctx = cctx;
	cl.host = "mx.example.test";
	uint64_t t0 = loop_clock_ms();
	run_client(&cl, NULL, &mute_sa);
	CHECK_INT(cl.failed, 1);
	CHECK_STR(cl.ns.tls_err, "handshake timeout");
	CHECK(loop_clock_ms() - t0 >= 1900);
	close(mute);

	TEST_CASE("the preface stage reads its header and nothing after it");
	l.sctx = NULL;
	l.preface = test_preface;
	peer_init(&cl, NULL, 0);
	cl.preface_send = "PROXY-TEST\r\nEHLO after\r\n";
	run_client(&cl, &l, &sa);
	CHECK_STR(cl.got, "220 plain");
	CHECK_STR(preface_seen, "PROXY-TEST\r\n");
	CHECK_STR(server_peer->got, "EHLO after");

	TEST_CASE("an idle session holds no buffer memory; old handles find nothing");
	l.preface = NULL;
	peer_init(&cl, NULL, 0);
	cl.on_line = idle_check;
	run_client(&cl, &l, &sa);
	CHECK_STR(cl.got, "220 plain");
	CHECK_INT(idle_held_memory, 0);
	CHECK(idle_handle != 0);
	CHECK(net_table_find(&table, idle_handle) == NULL);
	CHECK_INT(server_peer->freed, 1);
	CHECK_INT(table.live, 0);

	tls_client_unref(&cctx);
	tls_server_unref(&sctx);
	close(l.fd);
	net_table_fini(&table, NULL);
	unlink(cert);
	unlink(key);
	unlink(cert2);
	unlink(key2);
	rmdir(dir);
	return TEST_DONE();
}
