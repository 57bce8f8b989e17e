/*
 * directory_private.h - the inside of struct directory, shared by
 * directory.c (accounts), directory_alias.c (aliases and lists files) and
 * directory_resolve.c (address resolution). Not for other folders.
 */
#ifndef POSTERN_DIRECTORY_PRIVATE_H
#define POSTERN_DIRECTORY_PRIVATE_H

#include <stddef.h>
#include <stdint.h>

#include "hash.h"
#include "directory.h"

enum dir_kind {
	DIR_ALIAS,	/* an alias, or a catch-all (local "" ) */
	DIR_LIST,	/* a distribution list */
};

/* Who may post to a list. */
#define DIR_SENDERS_ANYONE 1u	/* default */
#define DIR_SENDERS_MEMBERS 2u	/* envelope sender is one of the members */
#define DIR_SENDERS_LISTED 4u	/* sender (or its @domain) in senders[] */

/* An alias, catch-all or list: one allocation per string, owned. */
struct dir_entry {
	enum dir_kind kind;
	char *local;		/* lower-cased; "" for a catch-all */
	char *domain;		/* lower-cased */
	unsigned line;		/* in its file */
	int disabled;
	int spamtrap;		/* alias ":spamtrap" */
	char **targets;		/* alias targets / list members: "local@domain",
				 * domain lower-cased, local part as written */
	size_t ntargets;
	unsigned senders_mode;	/* DIR_SENDERS_* bits (lists) */
	char **senders;		/* "local@domain" or "@domain" */
	size_t nsenders;
};

struct directory {
	struct account *accts;	/* owned; accts[i].local heads one allocation */
	unsigned *lines;	/* line of each account, for duplicate reports */
	size_t n, cap;
	struct hash index;	/* lower-cased local@domain -> account number */

	struct dir_entry *entries;	/* owned: aliases, catch-alls, lists */
	size_t nentries, centries;
	struct hash eindex;	/* lower-cased local@domain -> entry number */
	size_t naliases, nlists;

	char **local_domains;	/* owned, lower-cased, sorted; NULL = unset */
	size_t nlocal;
	char **disabled_domains;	/* owned, lower-cased, sorted */
	size_t ndisabled;

	struct srs *srs;	/* owned: SRS keys (directory_srs.c); NULL = off */
};

unsigned char dir_lower(unsigned char c);
/* Frees dir->srs (directory_srs.c). */
void directory_srs_free(struct directory *dir);
/* The hash of the lower-cased key local '@' domain (core/hash.h). */
uint64_t dir_key_hash(const char *local, size_t llen, const char *domain, size_t dlen);
/* A key looked up in dir->index or dir->eindex. */
struct dir_key {
	const char *local, *domain;
	size_t llen, dlen;
};
/* 1 if the stored lower-case local and domain are the key (any case). */
int dir_key_eq(const char *local, const char *domain, const struct dir_key *k);
/* 1 if the stored lower-case s equals p (any ASCII case), len octets. */
int dir_eq_lower(const char *s, const char *p, size_t len);
/* The next line of a file's text from *pos (counted in *lineno), its
 * trailing CR and blanks cut: 1 with the line, 0 at the end, -1 after a
 * diagnostic (too long, NUL byte). */
int dir_line_next(const char *text, size_t len, size_t *pos, unsigned *lineno, const char *path,
		  struct diag *diags, const char **line_out, size_t *n_out);
/* Entry (alias, catch-all with local "", or list) for local@domain. */
const struct dir_entry *dir_entry_find(const struct directory *dir, const char *local,
				       size_t llen, const char *domain, size_t dlen);
/* 1 if domain (any case) is in the sorted lower-case array v. */
int dir_domain_in(char *const *v, size_t n, const char *domain, size_t len);
/* The entry table: set up empty / freed (usable again after). */
void dir_entries_init(struct directory *dir);
void dir_entries_free(struct directory *dir);
void dir_domains_free(struct directory *dir);

#endif
