/*
 * server_tls.c - the daemon's TLS server context: built from tls.cert_file
 * and tls.key_file at start and at every reload (renewed certificates need
 * no restart), and the listeners that cannot serve without it (see
 * server_tls.h).
 */
#include "server_tls.h"

#include <stdio.h>

#include "catalog.h"
#include "log.h"
#include "server.h"

/* Builds the TLS context of cfg; NULL with why filled when TLS is off or
 * the pair is unusable. */
struct tls_server *
server_tls_try(const struct config *cfg, char *why, size_t why_size)
{
	if (cfg->tls_cert_file[0] == '\0' || cfg->tls_key_file[0] == '\0') {
		if (snprintf(why, why_size, "tls.cert_file and tls.key_file are not set") < 0 &&
		    why_size)
			why[0] = '\0';
		return NULL;
	}
	return tls_server_new(cfg->tls_cert_file, cfg->tls_key_file, why, why_size);
}

/* Builds the TLS context of cfg (NULL when TLS is off or it fails, then
 * logged). */
struct tls_server *
server_tls_build(const struct config *cfg)
{
	char err[512];
	struct tls_server *t = server_tls_try(cfg, err, sizeof(err));

	if (t == NULL && cfg->tls_cert_file[0] != '\0' && cfg->tls_key_file[0] != '\0') {
		struct kv kv[] = { KV("cert", cfg->tls_cert_file), KV("key", cfg->tls_key_file),
				   KV("err", err) };
		catalog_log(COND_TLS_CONTEXT_INIT_FAILED, NULL, kv, ARRAY_LEN(kv));
	}
	return t;
}

/* Names of the listeners that need TLS (submissions, pop3s, require_tls),
 * comma-separated into names (truncated to fit); their count. */
size_t
server_tls_listeners(const struct config *cfg, char *names, size_t size)
{
	size_t n = 0, used = 0;

	if (size)
		names[0] = '\0';
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		if (!config_listener_needs_tls(&cfg->listeners[i]))
			continue;
		int w = snprintf(names + used, size - used, "%s%s", n ? "," : "",
				 cfg->listeners[i].name);
		if (w > 0 && (size_t)w < size - used)
			used += (size_t)w;
		n++;
	}
	return n;
}

int
server_tls_check(const struct config *cfg, char *names, size_t names_size, char *why,
		 size_t why_size)
{
	if (server_tls_listeners(cfg, names, names_size) == 0)
		return 0;
	struct tls_server *t = server_tls_try(cfg, why, why_size);
	if (t == NULL)
		return -1;
	tls_server_unref(&t);
	return 0;
}
