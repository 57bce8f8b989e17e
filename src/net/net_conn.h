/*
 * net_conn.h - one client connection's byte transport.
 *
 * Owns the socket and the transport (plain now; TLS later plugs in as
 * another struct conn_ops). Knows nothing of SMTP: it moves bytes between
 * the socket and the caller's bounded buffers, never blocking.
 */
#ifndef POSTERN_NET_CONN_H
#define POSTERN_NET_CONN_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "buf.h"

#define NET_ADDR_TEXT 64

struct conn;

struct conn_ops {
	ssize_t (*read)(struct conn *c, void *p, size_t n);
	ssize_t (*write)(struct conn *c, const void *p, size_t n);
	void (*close)(struct conn *c);
};

struct conn {
	int fd;
	const struct conn_ops *ops;
	void *transport;		/* TLS state later */
	struct sockaddr_storage peer;
	struct sockaddr_storage local;
	char peer_text[NET_ADDR_TEXT];	/* "192.0.2.7" */
	unsigned peer_port;
	char local_text[NET_ADDR_TEXT + 8];	/* "127.0.0.1:2525" */
	unsigned long long bytes_in;
	unsigned long long bytes_out;
	int read_short;			/* the last conn_read did not fill its room */
	/* Behind a PROXY protocol proxy (conn_set_client): the proxy's
	 * address; peer is the client's from the header. */
	int proxied;
	struct sockaddr_storage proxy_peer;
	char proxy_text[NET_ADDR_TEXT];
};

/* Takes fd (non-blocking, connected); fills addresses. */
void conn_init(struct conn *c, int fd);
void conn_close(struct conn *c);
/* The client is src (from a PROXY header), not the socket's peer: the
 * peer moves to proxy_peer and src takes its place in peer, peer_text
 * and peer_port. */
void conn_set_client(struct conn *c, const struct sockaddr_storage *src);
/* The address the socket was accepted from (the proxy's, if proxied). */
static inline const struct sockaddr_storage *
conn_accepted_peer(const struct conn *c)
{
	return c->proxied ? &c->proxy_peer : &c->peer;
}

enum conn_io { CONN_IO_OK, CONN_IO_AGAIN, CONN_IO_EOF, CONN_IO_ERROR, CONN_IO_FULL };

/* Reads what is available into in, up to its max. CONN_IO_OK when bytes
 * were added, CONN_IO_FULL when in is at its max, AGAIN, EOF or ERROR
 * (errno kept). */
enum conn_io conn_read(struct conn *c, struct buf *in);
/* Writes from the front of out and consumes what was written. OK when out
 * is empty, AGAIN when bytes remain, ERROR (errno kept). */
enum conn_io conn_flush(struct conn *c, struct buf *out);

/* Makes a listening socket for sa: non-blocking, CLOEXEC, SO_REUSEADDR,
 * SO_REUSEPORT (each loop binds its own), IPV6_V6ONLY for v6. Returns the
 * fd, or -1 with errno. */
int net_listen(const struct sockaddr *sa, socklen_t len, int backlog);


#endif
