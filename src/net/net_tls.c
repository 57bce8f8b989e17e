/*
 * net_tls.c - OpenSSL server contexts and the TLS conn transport
 * (net_tls.h).
 *
 * Owns SSL_CTX objects, server and client (refcounted: a reload builds a
 * new one while sessions finish on the old) and one SSL per connection in
 * conn->transport. OpenSSL's want-read/want-write answers become EAGAIN
 * for the conn layer, with want_write remembered so the session can ask
 * the loop for the right readiness.
 */
#include "net_tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "buf.h"
#include "net_tls_ticket.h"

/* Mozilla "intermediate" TLS 1.2 ciphers; TLS 1.3 keeps OpenSSL's suites. */
#define TLS_CIPHERS                                                            \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"           \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"           \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"           \
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:"                 \
	"DHE-RSA-CHACHA20-POLY1305"

struct tls_server {
	SSL_CTX *ctx;
	int refs;	/* atomic */
};

struct tls_client {
	SSL_CTX *ctx;
	int refs;	/* atomic */
};

struct tls_conn {
	SSL *ssl;
	struct tls_server *server;	/* reference (server side) */
	struct tls_client *client;	/* reference (client side) */
	int want_write;
	int done;			/* handshake finished */
};

static void
err_text(char *err, size_t size, const char *what)
{
	unsigned long e = ERR_get_error();
	char lib[256] = "";

	if (e != 0)
		ERR_error_string_n(e, lib, sizeof(lib));
	if (snprintf(err, size, "%s%s%s", what, lib[0] ? ": " : "", lib) < 0 && size > 0)
		err[0] = '\0';
	ERR_clear_error();
}

struct tls_server *
tls_server_new(const char *cert_file, const char *key_file, char *err, size_t err_size)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL) {
		err_text(err, err_size, "cannot create TLS context");
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS) != 1) {
		err_text(err, err_size, "TLS policy refused");
		SSL_CTX_free(ctx);
		return NULL;
	}
	/* Sessions resume through tickets (net_tls_ticket.c), never a
	 * server-side cache: nothing per client is kept here. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
			      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	(void)SSL_CTX_set_dh_auto(ctx, 1);
	if (tls_ticket_setup(ctx) < 0) {
		err_text(err, err_size, "cannot set up session tickets");
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		err_text(err, err_size, "cannot load the certificate");
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		err_text(err, err_size, "cannot load the private key");
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		err_text(err, err_size, "the key does not match the certificate");
		SSL_CTX_free(ctx);
		return NULL;
	}
	struct tls_server *t = xcalloc(1, sizeof(*t));
	t->ctx = ctx;
	t->refs = 1;
	return t;
}

struct tls_server *
tls_server_ref(struct tls_server *t)
{
	if (t != NULL)
		__atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED);
	return t;
}

void
tls_server_unref(struct tls_server **tp)
{
	struct tls_server *t = *tp;

	*tp = NULL;
	if (t == NULL || __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	SSL_CTX_free(t->ctx);
	free(t);
}

/* ---- the transport ---------------------------------------------------- */

static ssize_t
tls_io_result(struct tls_conn *tc, int ret, size_t done)
{
	if (ret == 1)
		return (ssize_t)done;
	switch (SSL_get_error(tc->ssl, ret)) {
	case SSL_ERROR_WANT_READ:
		tc->want_write = 0;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_WANT_WRITE:
		tc->want_write = 1;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;	/* close_notify: end of stream */
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		if (errno == 0)
			return 0;	/* EOF without close_notify */
		return -1;
	default:
		ERR_clear_error();
		errno = EPROTO;
		return -1;
	}
}

static ssize_t
tls_read(struct conn *c, void *p, size_t n)
{
	struct tls_conn *tc = c->transport;
	size_t got = 0;

	errno = 0;
	int r = SSL_read_ex(tc->ssl, p, n, &got);	/* before got is read */
	return tls_io_result(tc, r, got);
}

static ssize_t
tls_write(struct conn *c, const void *p, size_t n)
{
	struct tls_conn *tc = c->transport;
	size_t put = 0;

	errno = 0;
	int r = SSL_write_ex(tc->ssl, p, n, &put);	/* before put is read */
	return tls_io_result(tc, r, put);
}

static void
tls_close(struct conn *c)
{
	struct tls_conn *tc = c->transport;

	if (tc != NULL) {
		if (tc->done)
			(void)SSL_shutdown(tc->ssl);	/* one close_notify, no wait */
		ERR_clear_error();
		SSL_free(tc->ssl);
		tls_server_unref(&tc->server);
		tls_client_unref(&tc->client);
		free(tc);
		c->transport = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static const struct conn_ops tls_ops = { tls_read, tls_write, tls_close };

int
tls_conn_start(struct conn *c, struct tls_server *t)
{
	SSL *ssl;

	if (t == NULL || c->transport != NULL)
		return -1;
	ssl = SSL_new(t->ctx);
	if (ssl == NULL || SSL_set_fd(ssl, c->fd) != 1) {
		SSL_free(ssl);
		ERR_clear_error();
		return -1;
	}
	SSL_set_accept_state(ssl);
	struct tls_conn *tc = xcalloc(1, sizeof(*tc));
	tc->ssl = ssl;
	tc->server = tls_server_ref(t);
	c->transport = tc;
	c->ops = &tls_ops;
	return 0;
}

enum conn_io
tls_conn_handshake(struct conn *c, char *err, size_t err_size)
{
	struct tls_conn *tc = c->transport;

	if (tc == NULL)
		return CONN_IO_ERROR;
	if (tc->done)
		return CONN_IO_OK;
	errno = 0;
	int r = SSL_do_handshake(tc->ssl);
	if (r == 1) {
		tc->done = 1;
		tc->want_write = 0;
		return CONN_IO_OK;
	}
	switch (SSL_get_error(tc->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		tc->want_write = 0;
		return CONN_IO_AGAIN;
	case SSL_ERROR_WANT_WRITE:
		tc->want_write = 1;
		return CONN_IO_AGAIN;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_error() == 0) {
			if (snprintf(err, err_size, "%s", errno ? strerror(errno)
					: "connection closed during the handshake") < 0 && err_size)
				err[0] = '\0';
			return CONN_IO_ERROR;
		}
		err_text(err, err_size, "handshake failed");
		return CONN_IO_ERROR;
	default:
		if (tc->client != NULL && SSL_get_verify_result(tc->ssl) != X509_V_OK) {
			long v = SSL_get_verify_result(tc->ssl);
			ERR_clear_error();
			if (snprintf(err, err_size, "certificate verify failed: %s",
				     X509_verify_cert_error_string(v)) < 0 && err_size)
				err[0] = '\0';
			return CONN_IO_ERROR;
		}
		err_text(err, err_size, "handshake failed");
		return CONN_IO_ERROR;
	}
}

int
tls_conn_wants_write(const struct conn *c)
{
	const struct tls_conn *tc = c->ops == &tls_ops ? c->transport : NULL;

	return tc != NULL && tc->want_write;
}

int
tls_conn_active(const struct conn *c)
{
	const struct tls_conn *tc = c->ops == &tls_ops ? c->transport : NULL;

	return tc != NULL && tc->done;
}

const char *
tls_conn_version(const struct conn *c)
{
	return tls_conn_active(c) ? SSL_get_version(((struct tls_conn *)c->transport)->ssl) : "";
}

const char *
tls_conn_cipher(const struct conn *c)
{
	if (!tls_conn_active(c))
		return "";
	const char *n = SSL_get_cipher_name(((struct tls_conn *)c->transport)->ssl);
	return n ? n : "";
}

int
tls_conn_bits(const struct conn *c)
{
	if (!tls_conn_active(c))
		return 0;
	return SSL_get_cipher_bits(((struct tls_conn *)c->transport)->ssl, NULL);
}

size_t
tls_conn_pending(const struct conn *c)
{
	const struct tls_conn *tc = c->ops == &tls_ops ? c->transport : NULL;

	if (tc == NULL)
		return 0;
	int n = SSL_pending(tc->ssl);
	return n > 0 ? (size_t)n : 0;
}

/* ---- client side --------------------------------------------------------- */

static struct tls_client *client_new(const char *ca_file, int verify, char *err,
				      size_t err_size);

struct tls_client *
tls_client_new(const char *ca_file, char *err, size_t err_size)
{
	return client_new(ca_file, 1, err, err_size);
}

struct tls_client *
tls_client_new_noverify(char *err, size_t err_size)
{
	return client_new(NULL, 0, err, err_size);
}

static struct tls_client *
client_new(const char *ca_file, int verify, char *err, size_t err_size)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL) {
		err_text(err, err_size, "cannot create the TLS client context");
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		err_text(err, err_size, "TLS client policy refused");
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
			      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	/* Without verify the chain is still checked against the system
	 * store, only the result does not fail the handshake
	 * (tls_conn_verified tells). */
	SSL_CTX_set_verify(ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	int ok = ca_file != NULL && ca_file[0]
		 ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
		 : SSL_CTX_set_default_verify_paths(ctx);
	if (ok != 1) {
		err_text(err, err_size, ca_file != NULL && ca_file[0]
			 ? "cannot load the CA file" : "cannot load the system CA store");
		SSL_CTX_free(ctx);
		return NULL;
	}
	struct tls_client *t = xcalloc(1, sizeof(*t));
	t->ctx = ctx;
	t->refs = 1;
	return t;
}

struct tls_client *
tls_client_ref(struct tls_client *t)
{
	if (t != NULL)
		__atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED);
	return t;
}

void
tls_client_unref(struct tls_client **tp)
{
	struct tls_client *t = *tp;

	*tp = NULL;
	if (t == NULL || __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	SSL_CTX_free(t->ctx);
	free(t);
}

int
tls_conn_verified(const struct conn *c)
{
	const struct tls_conn *tc = c->ops == &tls_ops ? c->transport : NULL;

	return tc != NULL && tc->client != NULL && tc->done &&
	       SSL_get_verify_result(tc->ssl) == X509_V_OK;
}

int
tls_conn_start_client(struct conn *c, struct tls_client *t, const char *host)
{
	SSL *ssl;

	if (t == NULL || c->transport != NULL || host == NULL || host[0] == '\0')
		return -1;
	ssl = SSL_new(t->ctx);
	/* SNI, and the name the certificate must carry (RFC 6125). */
	if (ssl == NULL || SSL_set_fd(ssl, c->fd) != 1 ||
	    SSL_set_tlsext_host_name(ssl, host) != 1 || SSL_set1_host(ssl, host) != 1) {
		SSL_free(ssl);
		ERR_clear_error();
		return -1;
	}
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	SSL_set_connect_state(ssl);
	struct tls_conn *tc = xcalloc(1, sizeof(*tc));
	tc->ssl = ssl;
	tc->client = tls_client_ref(t);
	c->transport = tc;
	c->ops = &tls_ops;
	return 0;
}

/* ---- self-signed pair -------------------------------------------------- */

/* Adds subjectAltName DNS:host, which clients that ignore the CN (Go,
 * browsers, RFC 6125 6.4.4) need, and basicConstraints CA:FALSE.
 * 0 or -1. */
static int
cert_add_names(X509 *x, const char *host)
{
	GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
	BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
	int rc = -1;

	if (names == NULL || gn == NULL || ia5 == NULL || bc == NULL ||
	    ASN1_STRING_set(ia5, host, -1) != 1)
		goto out;
	GENERAL_NAME_set0_value(gn, GEN_DNS, ia5);
	ia5 = NULL;
	if (sk_GENERAL_NAME_push(names, gn) <= 0)
		goto out;
	gn = NULL;
	bc->ca = 0;
	if (X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT) != 1 ||
	    X509_add1_ext_i2d(x, NID_basic_constraints, bc, 1, X509V3_ADD_DEFAULT) != 1)
		goto out;
	rc = 0;
out:
	BASIC_CONSTRAINTS_free(bc);
	ASN1_IA5STRING_free(ia5);
	GENERAL_NAME_free(gn);
	GENERAL_NAMES_free(names);
	return rc;
}

int
tls_make_self_signed(const char *host, const char *cert_file, const char *key_file,
		     char *err, size_t err_size)
{
	EVP_PKEY *key = EVP_RSA_gen(2048);
	X509 *x = X509_new();
	FILE *f = NULL;
	int rc = -1;

	if (key == NULL || x == NULL) {
		err_text(err, err_size, "cannot make a key");
		goto out;
	}
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), (long)time(NULL));
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 24 * 3600);
	X509_set_pubkey(x, key);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)host, -1, -1, 0);
	X509_set_issuer_name(x, name);
	if (cert_add_names(x, host) < 0) {
		err_text(err, err_size, "cannot add the subjectAltName");
		goto out;
	}
	if (X509_sign(x, key, EVP_sha256()) == 0) {
		err_text(err, err_size, "cannot sign the certificate");
		goto out;
	}
	f = fopen(key_file, "wx");
	if (f == NULL || PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) != 1 ||
	    fclose(f) != 0) {
		f = NULL;
		if (snprintf(err, err_size, "cannot write %s: %s", key_file, strerror(errno)) < 0 &&
		    err_size)
			err[0] = '\0';
		goto out;
	}
	f = fopen(cert_file, "wx");
	if (f == NULL || PEM_write_X509(f, x) != 1 || fclose(f) != 0) {
		f = NULL;
		if (snprintf(err, err_size, "cannot write %s: %s", cert_file, strerror(errno)) < 0 &&
		    err_size)
			err[0] = '\0';
		goto out;
	}
	f = NULL;
	rc = 0;
out:
	if (f != NULL)
		fclose(f);
	X509_free(x);
	EVP_PKEY_free(key);
	return rc;
}
