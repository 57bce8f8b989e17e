/*
 * directory_srs.h - the SRS keys of a configuration snapshot (srs.h):
 * loaded with the accounts directory from srs.secret_file, the secret
 * file created at start when missing, and the keys handed to outbound
 * delivery (signing forwarded senders) and to the recipient check
 * (reversing SRS addresses at srs.domain).
 */
#ifndef POSTERN_DIRECTORY_SRS_H
#define POSTERN_DIRECTORY_SRS_H

#include "config.h"
#include "srs.h"

/* The snapshot's SRS keys, or NULL when srs.enabled is no or the secret
 * file is not there yet. Any thread. */
const struct srs *directory_srs(const struct config *cfg);

/* Part of directory_attach(): with srs.enabled, reads srs.secret_file
 * (default <server.state>/srs.secret) into cfg->accounts; a missing file
 * is no error (directory_srs_prepare makes it), an unusable one is. */
void directory_srs_attach(struct config *cfg, struct config_load *ld);

/* At start and before a reloaded snapshot is used, on a thread that may
 * block (never an event loop): with srs.enabled and no keys loaded,
 * creates the secret file (SRS-SECRET-CREATED) and loads it. 0, or -1
 * after logging SRS-SECRET-FAILED. cfg must not be shared yet. */
int directory_srs_prepare(struct config *cfg);

/* The secret file's path for cfg into out. -1 if it does not fit. */
int directory_srs_path(const struct config *cfg, char *out, size_t outsize) WARN_UNUSED;

#endif
