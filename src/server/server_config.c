/*
 * server_config.c - a configuration snapshot with everything attached
 * (see server_config.h).
 */
#include "server_config.h"

#include <stdio.h>

#include "directory_config.h"
#include "dns.h"
#include "policy.h"
#include "policy_checks.h"

static void
server_attach(struct config *cfg, struct config_load *ld, struct diag *diags)
{
	directory_attach(cfg, ld, diags);
	policy_attach(cfg, ld, diags);
	dns_config_check(cfg, ld, diags);
	spf_config_check(cfg, ld, diags);
	greylist_config_check(cfg, ld, diags);
	state_config_check(cfg, ld, diags);
	rates_config_check(cfg, ld, diags);
}

struct config *
server_config_load(const char *path, const char *const *overrides, size_t noverrides,
		   struct diag *diags)
{
	return config_load_with(path, overrides, noverrides, diags, server_attach);
}

struct config *
server_config_load_print(const char *path, const char *const *overrides, size_t noverrides)
{
	struct diag d;

	diag_init(&d);
	struct config *cfg = server_config_load(path, overrides, noverrides, &d);
	if (cfg == NULL)
		diag_print(&d, stderr);
	diag_fini(&d);
	return cfg;
}
