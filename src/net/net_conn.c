/*
 * net_conn.c - plain-socket transport and listening sockets (net_conn.h).
 */
#include "net_conn.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

#include "cidr.h"

#define READ_CHUNK 16384

static ssize_t
plain_read(struct conn *c, void *p, size_t n)
{
	return recv(c->fd, p, n, 0);
}

static ssize_t
plain_write(struct conn *c, const void *p, size_t n)
{
	return send(c->fd, p, n, MSG_NOSIGNAL);
}

static void
plain_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static const struct conn_ops plain_ops = { plain_read, plain_write, plain_close };

void
conn_init(struct conn *c, int fd)
{
	socklen_t len;

	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->ops = &plain_ops;
	len = sizeof(c->peer);
	if (getpeername(fd, (struct sockaddr *)&c->peer, &len) < 0 ||
	    sockaddr_format((struct sockaddr *)&c->peer, c->peer_text, sizeof(c->peer_text), 0) < 0) {
		memset(&c->peer, 0, sizeof(c->peer));
		if (slice_copy(SLICE_LIT("unknown"), c->peer_text, sizeof(c->peer_text)) < 0)
			c->peer_text[0] = '\0';
	}
	if (c->peer.ss_family == AF_INET)
		c->peer_port = ntohs(((struct sockaddr_in *)&c->peer)->sin_port);
	else if (c->peer.ss_family == AF_INET6)
		c->peer_port = ntohs(((struct sockaddr_in6 *)&c->peer)->sin6_port);
	len = sizeof(c->local);
	if (getsockname(fd, (struct sockaddr *)&c->local, &len) < 0 ||
	    sockaddr_format((struct sockaddr *)&c->local, c->local_text, sizeof(c->local_text), 1) < 0)
		c->local_text[0] = '\0';
}

void
conn_set_client(struct conn *c, const struct sockaddr_storage *src)
{
	if (!c->proxied) {
		c->proxy_peer = c->peer;
		memcpy(c->proxy_text, c->peer_text, sizeof(c->proxy_text));
		c->proxied = 1;
	}
	c->peer = *src;
	if (sockaddr_format((const struct sockaddr *)&c->peer, c->peer_text, sizeof(c->peer_text),
			    0) < 0 &&
	    slice_copy(SLICE_LIT("unknown"), c->peer_text, sizeof(c->peer_text)) < 0)
		c->peer_text[0] = '\0';
	c->peer_port = 0;
	if (c->peer.ss_family == AF_INET)
		c->peer_port = ntohs(((const struct sockaddr_in *)&c->peer)->sin_port);
	else if (c->peer.ss_family == AF_INET6)
		c->peer_port = ntohs(((const struct sockaddr_in6 *)&c->peer)->sin6_port);
}

void
conn_close(struct conn *c)
{
	if (c->ops != NULL && c->fd >= 0)
		c->ops->close(c);
}

enum conn_io
conn_read(struct conn *c, struct buf *in)
{
	size_t room = in->max - in->len;
	ssize_t n;

	if (room == 0)
		return CONN_IO_FULL;
	if (room > READ_CHUNK)
		room = READ_CHUNK;
	if (buf_reserve(in, room) < 0)
		return CONN_IO_FULL;
	do
		n = c->ops->read(c, in->data + in->len, room);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? CONN_IO_AGAIN : CONN_IO_ERROR;
	if (n == 0)
		return CONN_IO_EOF;
	c->read_short = (size_t)n < room;
	in->len += (size_t)n;
	in->data[in->len] = '\0';
	c->bytes_in += (unsigned long long)n;
	return CONN_IO_OK;
}

enum conn_io
conn_flush(struct conn *c, struct buf *out)
{
	size_t off = 0;

	while (off < out->len) {
		ssize_t n = c->ops->write(c, out->data + off, out->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			buf_consume(out, off);
			errno = e;
			return e == EAGAIN || e == EWOULDBLOCK ? CONN_IO_AGAIN : CONN_IO_ERROR;
		}
		off += (size_t)n;
		c->bytes_out += (unsigned long long)n;
	}
	buf_reset(out);
	return CONN_IO_OK;
}

int
net_listen(const struct sockaddr *sa, socklen_t len, int backlog)
{
	int one = 1;
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    (sa->sa_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    bind(fd, sa, len) < 0 || listen(fd, backlog) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

