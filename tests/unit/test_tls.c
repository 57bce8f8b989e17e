/*
 * test_tls.c - the TLS transport: a self-signed pair is made, a server
 * conn does a non-blocking handshake against a blocking OpenSSL client on
 * a socketpair, bytes cross both ways, and the policy holds (no TLS 1.1).
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "net_tls.h"
#include "testing.h"

struct client {
	int fd;
	int max_version;
	int handshake_ok;
	char got[64];
};

static void *
client_main(void *arg)
{
	struct client *cl = arg;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_max_proto_version(ctx, cl->max_version);
	SSL_CTX_set_min_proto_version(ctx, 0);
	SSL_CTX_set_security_level(ctx, 0);
	SSL *ssl = SSL_new(ctx);
	SSL_set_fd(ssl, cl->fd);
	if (SSL_connect(ssl) == 1) {
		cl->handshake_ok = 1;
		size_t n = 0;
		if (SSL_write_ex(ssl, "hello server", 12, &n) == 1 &&
		    SSL_read_ex(ssl, cl->got, sizeof(cl->got) - 1, &n) == 1)
			cl->got[n] = '\0';
	}
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(cl->fd);
	return NULL;
}

/* Runs one handshake; returns the final handshake status. */
static enum conn_io
run(struct tls_server *t, int max_version, struct client *cl, char *server_got)
{
	int sv[2];
	struct conn c;
	pthread_t th;
	char err[256] = "";
	enum conn_io io = CONN_IO_ERROR;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return CONN_IO_ERROR;
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	memset(cl, 0, sizeof(*cl));
	cl->fd = sv[1];
	cl->max_version = max_version;
	conn_init(&c, sv[0]);
	if (tls_conn_start(&c, t) < 0)
		return CONN_IO_ERROR;
	pthread_create(&th, NULL, client_main, cl);
	for (int i = 0; i < 1000; i++) {
		io = tls_conn_handshake(&c, err, sizeof(err));
		if (io != CONN_IO_AGAIN)
			break;
		struct pollfd p = { sv[0], tls_conn_wants_write(&c) ? POLLOUT : POLLIN, 0 };
		poll(&p, 1, 1000);
	}
	if (io == CONN_IO_OK) {
		struct buf in, out;
		buf_init(&in, 1024);
		buf_init(&out, 1024);
		for (int i = 0; i < 100 && in.len < 12; i++) {
			if (conn_read(&c, &in) == CONN_IO_AGAIN) {
				struct pollfd p = { sv[0], POLLIN, 0 };
				poll(&p, 1, 1000);
			}
		}
		memcpy(server_got, in.data ? (char *)in.data : "", in.len);
		server_got[in.len] = '\0';
		CHECK(buf_append_str(&out, "hello client") == 0);
		for (int i = 0; i < 100 && conn_flush(&c, &out) == CONN_IO_AGAIN; i++) {
			struct pollfd p = { sv[0], POLLOUT, 0 };
			poll(&p, 1, 1000);
		}
		buf_fini(&in);
		buf_fini(&out);
	}
	pthread_join(th, NULL);
	conn_close(&c);
	return io;
}

int
main(void)
{
	char dir[] = "/tmp/postern-tls-XXXXXX";
	char cert[256], key[256], err[256];
	struct client cl;
	char server_got[64];

	signal(SIGPIPE, SIG_IGN);	/* as the daemon does */
	TEST_CASE("self-signed pair");
	CHECK(mkdtemp(dir) != NULL);
	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	CHECK_INT(tls_make_self_signed("mx.example.test", cert, key, err, sizeof(err)), 0);
	CHECK_INT(tls_make_self_signed("mx.example.test", cert, key, err, sizeof(err)), -1);

	TEST_CASE("context from the pair");
	struct tls_server *t = tls_server_new(cert, key, err, sizeof(err));
	CHECK(t != NULL);

	TEST_CASE("mismatched files are refused with a reason");
	CHECK(tls_server_new(cert, cert, err, sizeof(err)) == NULL);
	CHECK(err[0] != '\0');
	CHECK(tls_server_new("/nonexistent", key, err, sizeof(err)) == NULL);

	TEST_CASE("TLS 1.3 handshake and data both ways");
	CHECK_INT(run(t, TLS1_3_VERSION, &cl, server_got), CONN_IO_OK);
	CHECK(cl.handshake_ok);
	CHECK_STR(server_got, "hello server");
	CHECK_STR(cl.got, "hello client");

	TEST_CASE("TLS 1.2 still accepted");
	CHECK_INT(run(t, TLS1_2_VERSION, &cl, server_got), CONN_IO_OK);
	CHECK_STR(cl.got, "hello client");

	TEST_CASE("TLS 1.1 refused");
	CHECK_INT(run(t, TLS1_1_VERSION, &cl, server_got), CONN_IO_ERROR);
	CHECK(!cl.handshake_ok);

	tls_server_unref(&t);
	unlink(cert);
	unlink(key);
	rmdir(dir);
	return TEST_DONE();
}
