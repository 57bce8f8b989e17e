/*
 * server_backlog.c - the listen() backlog: owns reading the kernel's
 * cap (net.core.somaxconn) at start and logging when it cuts
 * server.listen_backlog. Runs on the main thread before any loop starts.
 */
#include "server_backlog.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include "catalog.h"
#include "log.h"

unsigned long
server_backlog_parse(const char *text, size_t len)
{
	unsigned long v = 0;
	size_t i = 0;

	while (i < len && text[i] >= '0' && text[i] <= '9') {
		v = v * 10 + (unsigned long)(text[i] - '0');
		if (v > INT_MAX)
			return 0;
		i++;
	}
	if (i == 0)
		return 0;
	for (; i < len; i++)
		if (text[i] != '\n' && text[i] != ' ' && text[i] != '\t')
			return 0;
	return v;
}

/* The cap in the file at path, or 0 when it cannot be read. */
static unsigned long
read_cap(const char *path)
{
	char text[32];
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	ssize_t n;
	do
		n = read(fd, text, sizeof(text));
	while (n < 0 && errno == EINTR);
	if (close(fd) < 0 || n <= 0 || (size_t)n >= sizeof(text))
		return 0;
	return server_backlog_parse(text, (size_t)n);
}

int
server_backlog_effective(const struct config *cfg, const char *path)
{
	unsigned long want = cfg->server_listen_backlog;
	unsigned long cap = read_cap(path);

	if (want > INT_MAX)
		want = INT_MAX;
	if (cap > 0 && cap < want) {
		struct kv kv[] = { KVU("backlog", want), KVU("somaxconn", cap) };
		catalog_log(COND_NET_LISTEN_BACKLOG_CAPPED, NULL, kv, ARRAY_LEN(kv));
		want = cap;
	}
	return (int)want;
}
