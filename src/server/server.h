/*
 * server.h - `postern serve`: the daemon's life from start to exit.
 *
 * Owns the event-loop threads, their listening sockets, connection
 * accounting (total and per client address), the current configuration
 * snapshot, signals (SIGTERM/SIGINT stop, SIGHUP reload), privilege drop
 * and the pid file. Sessions are smtp/'s; the spool and delivery are
 * store/'s and deliver/'s.
 */
#ifndef POSTERN_SERVER_H
#define POSTERN_SERVER_H

#include <stddef.h>

/* Runs the daemon in the foreground. Returns the process exit code: 0
 * after a clean stop, 1 on a start-up failure, 78 on a configuration
 * error (EX_CONFIG). */
int server_run(const char *config_path, const char *const *overrides, size_t noverrides);

/* `postern check`: 0 when every listener that needs TLS (submissions,
 * pop3s, require_tls) has a usable certificate; else -1, with their
 * names (comma-separated) and the reason filled. */
struct config;
int server_tls_check(const struct config *cfg, char *names, size_t names_size, char *why,
		     size_t why_size);

/* `postern dns [-c FILE] [-o ...] TYPE NAME` (server_cmd_dns.c): one
 * lookup through the resolver; exit 0 ok, 2 nxdomain/nodata, 75
 * tempfail. */
int server_cmd_dns(int argc, char **argv);
/* `postern spf [-c FILE] [-o ...] --ip IP --helo NAME --from ADDR`
 * (server_cmd_spf.c): one SPF evaluation, its result printed. */
int server_cmd_spf(int argc, char **argv);
/* `postern simulate ...` (server_cmd_simulate.c): one transaction through
 * the policy chain, no mail sent; each check's verdict printed. */
int server_cmd_simulate(int argc, char **argv);

#endif
