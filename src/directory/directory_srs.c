/*
 * directory_srs.c - the SRS keys of a configuration snapshot (see
 * directory_srs.h): kept in its accounts directory, read at load, the
 * secret file made at start.
 */
#include "directory_srs.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "directory_private.h"
#include "domain.h"
#include "log.h"

void
directory_srs_free(struct directory *dir)
{
	if (dir->srs != NULL) {
		srs_fini(dir->srs);
		free(dir->srs);
		dir->srs = NULL;
	}
}

const struct srs *
directory_srs(const struct config *cfg)
{
	return cfg->srs_enabled && cfg->accounts != NULL ? cfg->accounts->srs : NULL;
}

int
directory_srs_path(const struct config *cfg, char *out, size_t outsize)
{
	int n = cfg->srs_secret_file[0] != '\0'
			? snprintf(out, outsize, "%s", cfg->srs_secret_file)
			: snprintf(out, outsize, "%s/srs.secret", cfg->server_state);

	return n > 0 && (size_t)n < outsize ? 0 : -1;
}

/* Reads the secret file into a new struct srs for cfg: 0 with *out set,
 * 1 if the file is missing, -1 with the reason in err. */
static int
srs_keys_read(const struct config *cfg, struct srs **out, char *err, size_t errlen)
{
	struct srs *srs = xcalloc(1, sizeof(*srs));
	const char *dom = cfg->srs_domain[0] != '\0' ? cfg->srs_domain : cfg->hostname;
	char path[PATH_MAX];
	int rc;

	*out = NULL;
	if (directory_srs_path(cfg, path, sizeof(path)) < 0) {
		snprintf(err, errlen, "the path is too long");
		free(srs);
		return -1;
	}
	rc = srs_secrets_load(srs, path, err, errlen);
	if (rc != 0) {
		srs_fini(srs);
		free(srs);
		return rc;
	}
	srs->domain = xstrdup(dom != NULL ? dom : "");
	for (char *p = srs->domain; *p != '\0'; p++)
		*p = (char)dir_lower((unsigned char)*p);
	if (srs->domain[0] != '\0' && srs->domain[strlen(srs->domain) - 1] == '.')
		srs->domain[strlen(srs->domain) - 1] = '\0';
	srs->max_age_days = cfg->srs_max_age / SRS_DAY > 0 ? cfg->srs_max_age / SRS_DAY : 1;
	*out = srs;
	return 0;
}

void
directory_srs_attach(struct config *cfg, struct config_load *ld)
{
	char err[PATH_MAX + 128];
	struct srs *srs;

	if (!cfg->srs_enabled || cfg->accounts == NULL)
		return;
	if (cfg->srs_domain[0] != '\0' &&
	    !domain_name_valid(cfg->srs_domain, strlen(cfg->srs_domain)))
		config_option_diag(ld, "srs.domain", "srs.domain: \"%s\" is not a domain name",
				   cfg->srs_domain);
	if (srs_keys_read(cfg, &srs, err, sizeof(err)) < 0) {
		config_option_diag(ld, "srs.secret_file", "srs.secret_file: %s", err);
		return;
	}
	directory_srs_free(cfg->accounts);
	cfg->accounts->srs = srs;	/* NULL while the file is missing */
}

int
directory_srs_prepare(struct config *cfg)
{
	char path[PATH_MAX], err[PATH_MAX + 128];
	struct srs *srs = NULL;
	int rc;

	if (!cfg->srs_enabled || cfg->accounts == NULL || cfg->accounts->srs != NULL)
		return 0;
	if (directory_srs_path(cfg, path, sizeof(path)) < 0) {
		snprintf(err, sizeof(err), "the path is too long");
		rc = -1;
	} else {
		rc = srs_secret_create(path);
		if (rc < 0)
			snprintf(err, sizeof(err), "cannot create it: %s", strerror(errno));
	}
	if (rc == 0) {
		struct kv kv[] = { KV("path", path) };

		catalog_log(COND_SRS_SECRET_CREATED, NULL, kv, ARRAY_LEN(kv));
	}
	if (rc >= 0) {
		rc = srs_keys_read(cfg, &srs, err, sizeof(err));
		if (rc == 1) {
			snprintf(err, sizeof(err), "it vanished after its creation");
			rc = -1;
		}
	}
	if (rc < 0) {
		struct kv kv[] = { KV("path", path), KV("err", err) };

		catalog_log(COND_SRS_SECRET_FAILED, NULL, kv, ARRAY_LEN(kv));
		return -1;
	}
	cfg->accounts->srs = srs;
	return 0;
}
