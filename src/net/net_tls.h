/*
 * net_tls.h - TLS for server and client connections (OpenSSL 3), as a
 * conn transport.
 *
 * Owns the server TLS context (certificate, key, protocol and cipher
 * policy) and the per-connection TLS state. A connection switches to TLS
 * with tls_conn_start(); from then on conn_read/conn_flush go through
 * OpenSSL, and the session code above does not change. Nothing here
 * blocks: the handshake is driven by tls_conn_handshake() from the loop.
 *
 * Policy (the Mozilla "intermediate" profile): TLS 1.2 and 1.3 only,
 * ECDHE/DHE with AEAD ciphers for 1.2, no compression, no renegotiation,
 * session resumption by tickets whose keys rotate (net_tls_ticket.h) and
 * survive reloads.
 */
#ifndef POSTERN_NET_TLS_H
#define POSTERN_NET_TLS_H

#include <stddef.h>

#include "compat.h"
#include "net_conn.h"

struct tls_server;
struct tls_client;

/* Builds a server context from PEM files. NULL with a reason in err
 * (err_size bytes) when the files are unreadable, do not match, or the
 * library refuses the policy. Thread-safe once built; refcounted. */
struct tls_server *tls_server_new(const char *cert_file, const char *key_file,
				  char *err, size_t err_size);
struct tls_server *tls_server_ref(struct tls_server *t);
void tls_server_unref(struct tls_server **tp);

/* Puts c on TLS as the server side; the handshake starts with the next
 * tls_conn_handshake(). Returns -1 (and c unchanged) on failure. */
int tls_conn_start(struct conn *c, struct tls_server *t) WARN_UNUSED;

/* Drives the handshake: CONN_IO_OK when done, CONN_IO_AGAIN when it waits
 * for the socket (tls_conn_wants_write() says which way), CONN_IO_ERROR
 * with the library's reason in err. */
enum conn_io tls_conn_handshake(struct conn *c, char *err, size_t err_size);

/* 1 while the TLS layer needs the socket writable to go on (a read that
 * must first flush, or a handshake step). */
int tls_conn_wants_write(const struct conn *c);
/* 1 when c is on TLS and its handshake is done. */
int tls_conn_active(const struct conn *c);
/* "TLSv1.3", "TLS_AES_256_GCM_SHA384", bits; "" / 0 when not on TLS. */
const char *tls_conn_version(const struct conn *c);
const char *tls_conn_cipher(const struct conn *c);
int tls_conn_bits(const struct conn *c);
/* Bytes OpenSSL has already decrypted and holds for the next read. */
size_t tls_conn_pending(const struct conn *c);

/* Client side (outbound connections): a context that verifies the
 * server's certificate against ca_file, or the system store when ca_file
 * is NULL or "". NULL with a reason in err. Refcounted like the server's. */
struct tls_client *tls_client_new(const char *ca_file, char *err, size_t err_size);
/* The same without enforcing verification (opportunistic TLS: any
 * certificate is taken; tls_conn_verified says whether it checked out). */
struct tls_client *tls_client_new_noverify(char *err, size_t err_size);
struct tls_client *tls_client_ref(struct tls_client *t);
void tls_client_unref(struct tls_client **tp);
/* Puts c on TLS as the client side for host: SNI is host, and the
 * handshake fails unless the certificate chains to the context's CAs and
 * names host. tls_conn_handshake() drives it; a verification failure
 * says why in its err. -1 (and c unchanged) on failure. */
int tls_conn_start_client(struct conn *c, struct tls_client *t, const char *host) WARN_UNUSED;

/* 1 when c is a client connection whose peer certificate chained to the
 * context's CAs and named the host. */
int tls_conn_verified(const struct conn *c);

/* Writes a self-signed certificate and key for host (RSA 2048, 10
 * years) into the two files; used by `make run` when the default
 * configuration's files are missing. 0 or -1 with err. */
int tls_make_self_signed(const char *host, const char *cert_file, const char *key_file,
			 char *err, size_t err_size) WARN_UNUSED;

#endif
