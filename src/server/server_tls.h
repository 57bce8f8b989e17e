/*
 * server_tls.h - the daemon's TLS server context (server_tls.c).
 */
#ifndef POSTERN_SERVER_TLS_H
#define POSTERN_SERVER_TLS_H

#include <stddef.h>

#include "config.h"
#include "net_tls.h"

/* The TLS context of cfg; NULL with why filled when TLS is off or the pair
 * is unusable. */
struct tls_server *server_tls_try(const struct config *cfg, char *why, size_t why_size);
/* The same, a failure logged (TLS-CONTEXT-INIT-FAILED) when TLS is on. */
struct tls_server *server_tls_build(const struct config *cfg);
/* Names of the listeners that need TLS (submissions, pop3s, require_tls),
 * comma-separated into names (cut to fit); their count. */
size_t server_tls_listeners(const struct config *cfg, char *names, size_t size);

#endif
