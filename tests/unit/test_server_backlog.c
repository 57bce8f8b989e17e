/*
 * test_server_backlog.c - the listen() backlog (server_backlog.c): the
 * somaxconn file's text, and the option capped by it only when larger.
 */
#include "server_backlog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testing.h"

/* Writes text to a fresh temporary file; its name goes to path. */
static void
cap_file(char *path, size_t size, const char *text)
{
	snprintf(path, size, "/tmp/test_backlog_XXXXXX");
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK_INT((int)write(fd, text, strlen(text)), (int)strlen(text));
	CHECK_INT(close(fd), 0);
}

int
main(void)
{
	struct config *cfg = calloc(1, sizeof(*cfg));
	char path[64];

	if (cfg == NULL)
		return 1;
	TEST_CASE("the file's text: a number and a newline, nothing else");
	CHECK_INT((int)server_backlog_parse("4096\n", 5), 4096);
	CHECK_INT((int)server_backlog_parse("128", 3), 128);
	CHECK_INT((int)server_backlog_parse("", 0), 0);
	CHECK_INT((int)server_backlog_parse("x1\n", 3), 0);
	CHECK_INT((int)server_backlog_parse("12x\n", 4), 0);
	CHECK_INT((int)server_backlog_parse("99999999999\n", 12), 0);

	TEST_CASE("the option below the cap is kept; above it, the cap is used");
	cap_file(path, sizeof(path), "4096\n");
	cfg->server_listen_backlog = 1000;
	CHECK_INT(server_backlog_effective(cfg, path), 1000);
	cfg->server_listen_backlog = 65536;
	CHECK_INT(server_backlog_effective(cfg, path), 4096);
	CHECK_INT(unlink(path), 0);

	TEST_CASE("no readable cap: the option as it is (the kernel caps it)");
	cfg->server_listen_backlog = 65536;
	CHECK_INT(server_backlog_effective(cfg, "/nonexistent/somaxconn"), 65536);

	free(cfg);
	return TEST_DONE();
}
