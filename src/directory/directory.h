/*
 * directory.h - local accounts: the passwd-file (Dovecot format) and
 * password hashing.
 *
 * File format, one account per line (blank lines and '#' comments ok):
 *   user@domain:{SCHEME}hash[:uid:gid:gecos:home:shell:extra fields]
 * SCHEME is CRYPT (any crypt(3) hash, e.g. yescrypt $y$), BLF-CRYPT
 * ($2b$) or SHA512-CRYPT ($6$). Lookups are ASCII case-insensitive.
 */
#ifndef POSTERN_DIRECTORY_H
#define POSTERN_DIRECTORY_H

#include <stddef.h>

#include "core/compat.h"
#include "core/diag.h"

struct directory;

struct account {
	char *local;		/* lower-cased ASCII; UTF-8 kept as is */
	char *domain;		/* lower-cased */
	char *password;		/* "{SCHEME}hash", may be empty (no login) */
	char *extra;		/* the rest of the line after the password, or "" */
};

/* Limits of the accounts file: longer lines and larger files are errors. */
#define DIRECTORY_LINE_MAX 4096
#define DIRECTORY_FILE_MAX ((size_t)512 * 1024 * 1024)

/* Loads path; errors go to diags as FILE:LINE: message; NULL on error. */
struct directory *directory_load(const char *path, struct diag *diags) WARN_UNUSED;
/* An empty directory (no accounts file configured). */
struct directory *directory_empty(void);
void directory_free(struct directory **dirp);

/* Finds local@domain; NULL if none. */
const struct account *directory_find(const struct directory *dir,
				     const char *local, size_t local_len,
				     const char *domain, size_t domain_len);
size_t directory_count(const struct directory *dir);

/* Checks a password against the account's hash with crypt_r(3). 1 match,
 * 0 no match, -1 unusable hash. May be slow (yescrypt): never call it on
 * an event-loop thread. */
int directory_verify_password(const struct account *acct, const char *password) WARN_UNUSED;

/* Makes "{SCHEME}hash" for password: scheme "yescrypt" (default, shown
 * as {CRYPT}), "bcrypt" ({BLF-CRYPT}) or "sha512-crypt" ({SHA512-CRYPT}).
 * Returns a malloc'ed string or NULL. */
char *directory_hash_password(const char *password, const char *scheme) WARN_UNUSED;

/* 1 if s (len octets) is a domain name in ASCII (A-labels for IDN):
 * labels of letters, digits and '-' (not at either end), 1..63 octets,
 * 253 in all, no trailing dot. Shared with config (local.domains). */
int directory_domain_valid(const char *s, size_t len);
/* 1 if s is a usable local part: dot-atom (RFC 5321 4.1.2) with UTF-8
 * octets allowed (RFC 6531), 1..64 octets. */
int directory_local_valid(const char *s, size_t len);

#endif
