/*
 * server_config.h - loads a whole configuration snapshot: the options
 * (config/), the accounts directory (directory/) and the policy chains
 * (policy/), each layer attaching what its options name. `postern serve`,
 * SIGHUP, `postern check` and `postern make-cert` all load through here.
 */
#ifndef POSTERN_SERVER_CONFIG_H
#define POSTERN_SERVER_CONFIG_H

#include "config.h"

/* NULL, with every error of every layer in diags as FILE:LINE: message,
 * if anything failed. */
struct config *server_config_load(const char *path, const char *const *overrides,
				  size_t noverrides, struct diag *diags) WARN_UNUSED;
/* Same, for the one-shot commands (`postern dns`, `postern spf`): the
 * diagnostics are printed on stderr; NULL after an error. */
struct config *server_config_load_print(const char *path, const char *const *overrides,
					size_t noverrides);

#endif
