/*
 * directory_config.c - loads the accounts directory into a configuration
 * snapshot (see directory_config.h). Runs where configurations are loaded:
 * at start, on SIGHUP (the server's reload thread) and in `postern check`.
 */
#include "directory_config.h"
#include "directory_srs.h"

static void
accounts_free(struct directory **dirp)
{
	directory_free(dirp);
}

void
directory_attach(struct config *cfg, struct config_load *ld, struct diag *diags)
{
	if (cfg->local_accounts[0] == '\0')
		cfg->accounts = directory_empty();
	else
		cfg->accounts = directory_load(cfg->local_accounts, diags);
	if (cfg->accounts == NULL)
		cfg->accounts = directory_empty();
	cfg->accounts_free = accounts_free;
	directory_set_domains(cfg->accounts, cfg->local_domains.v, cfg->local_domains.n,
			      cfg->local_disabled_domains.v, cfg->local_disabled_domains.n);
	/* each file's errors are in diags; both files are always read */
	if (cfg->local_aliases[0] != '\0' &&
	    directory_load_aliases(cfg->accounts, cfg->local_aliases, diags) < 0) {
		/* reported in diags */
	}
	if (cfg->local_lists[0] != '\0' &&
	    directory_load_lists(cfg->accounts, cfg->local_lists, diags) < 0) {
		/* reported in diags */
	}
	directory_srs_attach(cfg, ld);
}

struct config *
directory_config_load(const char *path, const char *const *overrides, size_t noverrides,
		      struct diag *diags)
{
	return config_load_with(path, overrides, noverrides, diags, directory_attach);
}
