/*
 * directory.h - local addresses: the accounts of the passwd-file (Dovecot
 * format), password hashing, and address resolution over accounts,
 * aliases, distribution lists, catch-alls, forwards and disabled domains.
 *
 * Accounts file, one account per line (blank lines and '#' comments ok):
 *   user@domain:{SCHEME}hash[:uid:gid:gecos:home:shell:extra fields]
 * SCHEME is CRYPT (any crypt(3) hash, e.g. yescrypt $y$), BLF-CRYPT
 * ($2b$) or SHA512-CRYPT ($6$). Lookups are ASCII case-insensitive.
 * Extra fields (everything after the 7th ':'), space-separated, Dovecot
 * style; Postern reads these and ignores any other (Dovecot's own):
 *   disabled[=yes|no]  spamtrap[=yes|no]  pop3=yes|no
 *   quota=SIZE (bytes, suffix K/M/G/T)  quota_messages=N  (0 = none)
 *   forward=a@x,b@y (or a bare local part: same domain)  forward_keep=yes|no
 *
 * The aliases file (local.aliases) and the lists file (local.lists) are
 * described in directory_alias.c and in docs/configuration.md.
 */
#ifndef POSTERN_DIRECTORY_H
#define POSTERN_DIRECTORY_H

#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "compat.h"
#include "diag.h"

struct directory;

struct account {
	char *local;		/* lower-cased ASCII; UTF-8 kept as is */
	char *domain;		/* lower-cased */
	char *password;		/* "{SCHEME}hash", may be empty (no login) */
	char *extra;		/* the rest of the line after the password, or "" */
	/* From the extra fields (see above): */
	int disabled;		/* refuses mail (RCPT-MAILBOX-DISABLED) */
	int spamtrap;		/* accepts nothing (RCPT-SPAMTRAP) */
	int pop3;		/* POP3 allowed, default 1 */
	uint64_t quota_bytes;	/* 0 = none */
	uint64_t quota_messages;	/* 0 = none */
	char *forward;		/* NULL or "a@x,b@y" (domains lower-cased) */
	int forward_keep;	/* with forward: also keep a local copy */
};

/* Limits of the accounts file: longer lines and larger files are errors. */
#define DIRECTORY_LINE_MAX 4096
#define DIRECTORY_FILE_MAX ((size_t)512 * 1024 * 1024)
/* Limits of the aliases and lists files. */
#define DIRECTORY_ALIASES_MAX 5000000u		/* aliases + lists in all */
#define DIRECTORY_TARGETS_MAX 1000u		/* targets of one alias */
#define DIRECTORY_MEMBERS_MAX 1000u		/* members of one list */
#define DIRECTORY_SENDERS_MAX 1000u		/* listed senders of one list */
#define DIRECTORY_FORWARDS_MAX 100u		/* forward= addresses */

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

/* ---- aliases, lists, domains ----------------------------------------- */

/* Tells the directory which domains are local (local.domains) and which
 * of them are disabled (local.disabled_domains); both are copied. Call it
 * before loading the aliases and lists files: their entries must be in a
 * local domain. */
void directory_set_domains(struct directory *dir, char *const *local, size_t nlocal,
			   char *const *disabled, size_t ndisabled);
/* Loads the aliases / lists file into dir (after the accounts). Errors go
 * to diags as FILE:LINE: message; returns 0, or -1 if there was any. */
int directory_load_aliases(struct directory *dir, const char *path,
			   struct diag *diags) WARN_UNUSED;
int directory_load_lists(struct directory *dir, const char *path,
			 struct diag *diags) WARN_UNUSED;
/* Numbers of aliases (catch-alls included) and lists. */
size_t directory_alias_count(const struct directory *dir);
size_t directory_list_count(const struct directory *dir);
/* 1 if domain is in local.disabled_domains (ASCII case ignored). */
int directory_domain_disabled(const struct directory *dir, const char *domain, size_t len);

/* ---- resolution ------------------------------------------------------- */

#define RESOLVE_MAX_TARGETS 1000	/* final destinations of one RCPT */

struct resolve_target {
	char *addr;		/* owned: "local@domain", domain lower-cased;
				 * local part lower-cased for local mailboxes */
	int local;		/* 1 = a local mailbox (Maildir) */
	const struct account *acct;	/* local: the account; NULL for the
					 * implicit postmaster@domain mailbox */
};

struct resolve_ctx {
	/* 1 if domain is local (local.domains); NULL: the directory's own
	 * list from directory_set_domains(). */
	int (*is_local)(void *arg, const char *domain, size_t len);
	void *arg;
	const char *sender;	/* envelope sender, "" for <> */
	size_t sender_len;
	int plus_addressing;	/* local.plus_addressing */
	char plus_sep;		/* local.plus_separator, e.g. '+' */
	unsigned max_depth;	/* local.alias_max_depth; 0 means 20 */
};

struct resolve_result {
	enum cond_id cond;	/* COND__COUNT: accepted; else the refusal */
	struct resolve_target *targets;	/* owned; deduplicated destinations */
	size_t ntargets;
	char detail[256];	/* for logs: the chain, the list, the kind... */
	const char *detail_key;	/* the refusal's log key that detail fills:
				 * "chain", "target", "kind", "domain" or
				 * NULL; on acceptance "route" (detail is
				 * "local", "alias", "list", "forward",
				 * "catchall" or "postmaster") */
	unsigned depth;		/* expansion depth reached */
};

/* Resolves local@domain (the RCPT address, local part unquoted) into its
 * final destinations. The domain should be local; a non-local one comes
 * back as itself, one remote target. Refusals (out->cond):
 * RCPT_UNKNOWN_USER, RCPT_MAILBOX_DISABLED, RCPT_ALIAS_DISABLED (kind
 * alias or list), RCPT_DOMAIN_DISABLED, RCPT_SPAMTRAP, RCPT_ALIAS_LOOP
 * (cycle or depth past max_depth), RCPT_ALIAS_DANGLING (an alias, list,
 * forward or catch-all names a local address that does not exist),
 * RCPT_LIST_NOT_AUTHORIZED, RCPT_LIST_EMPTY, RCPT_EXPANSION_TOO_LARGE
 * (more than RESOLVE_MAX_TARGETS destinations). postmaster@<local domain>
 * always resolves (RFC 5321 4.5.1): to its account, alias or list if one
 * exists, else to the mailbox postmaster@domain (acct NULL).
 * Pure (no I/O), hash lookups only: fit for the event-loop thread.
 * out is always initialised (free it with resolve_result_fini). Returns 0,
 * or -1 on an internal error (bad arguments). */
int directory_resolve(const struct directory *dir, const struct resolve_ctx *ctx,
		      const char *local, size_t local_len, const char *domain, size_t domain_len,
		      struct resolve_result *out) WARN_UNUSED;
void resolve_result_fini(struct resolve_result *r);

/* Checks a password against the account's hash with crypt_r(3). 1 match,
 * 0 no match, -1 unusable hash. May be slow (yescrypt): never call it on
 * an event-loop thread. */
int directory_verify_password(const struct account *acct, const char *password) WARN_UNUSED;

/* Makes "{SCHEME}hash" for password: scheme "yescrypt" (default, shown
 * as {CRYPT}), "bcrypt" ({BLF-CRYPT}) or "sha512-crypt" ({SHA512-CRYPT}).
 * Returns a malloc'ed string or NULL. */
char *directory_hash_password(const char *password, const char *scheme) WARN_UNUSED;

/* 1 if s is a usable local part: dot-atom (RFC 5321 4.1.2) with UTF-8
 * octets allowed (RFC 6531), 1..64 octets. */
int directory_local_valid(const char *s, size_t len);

#endif
