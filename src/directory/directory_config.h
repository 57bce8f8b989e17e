/*
 * directory_config.h - a configuration snapshot with its accounts directory.
 *
 * config/ knows options only; the directory sits above it. Every program
 * that needs the accounts (serve, check, make-cert) loads its snapshot here,
 * so the accounts, aliases and lists files named by the options are read
 * into cfg->accounts in the same pass and their errors join the options'.
 */
#ifndef POSTERN_DIRECTORY_CONFIG_H
#define POSTERN_DIRECTORY_CONFIG_H

#include "config.h"
#include "directory.h"

/* config_load() followed by directory_attach(): NULL, with every error in
 * diags as FILE:LINE: message, if the options or any of the files failed. */
struct config *directory_config_load(const char *path, const char *const *overrides,
				     size_t noverrides, struct diag *diags) WARN_UNUSED;

/* The config_attach_fn: loads local.accounts (or an empty directory), then
 * the aliases and lists files, into cfg->accounts. When the accounts file
 * fails the other files are still read, so all errors show at once. */
void directory_attach(struct config *cfg, struct config_load *ld, struct diag *diags);

#endif
