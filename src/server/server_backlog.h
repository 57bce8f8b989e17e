/*
 * server_backlog.h - the listen() backlog every listener uses:
 * server.listen_backlog, capped by the kernel's net.core.somaxconn.
 */
#ifndef POSTERN_SERVER_BACKLOG_H
#define POSTERN_SERVER_BACKLOG_H

#include "config.h"

/* Where the kernel's cap is read; a test may point elsewhere. */
#define SERVER_SOMAXCONN_PATH "/proc/sys/net/core/somaxconn"

/* Parses the text of the somaxconn file (a decimal number, then
 * optional white space). Returns the value, or 0 if the text is not one
 * in 1..INT_MAX. */
unsigned long server_backlog_parse(const char *text, size_t len);

/* The backlog to pass to listen(): cfg->server_listen_backlog, or the
 * value in the file at path when that is smaller (then logs
 * NET-LISTEN-BACKLOG-CAPPED once). A file that cannot be read leaves the
 * option as it is (the kernel caps silently). Start-up only: it reads a
 * file, so never on a loop thread. */
int server_backlog_effective(const struct config *cfg, const char *path);

#endif
