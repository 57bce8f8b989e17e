/*
 * diag.h - a list of "FILE:LINE: message" diagnostics, collected while
 * reading configuration and map files so that all of them are reported at
 * once (postern check), not just the first.
 */
#ifndef POSTERN_DIAG_H
#define POSTERN_DIAG_H

#include <stddef.h>
#include <stdio.h>

#include "compat.h"

/* What kind of problem a diagnostic is, for callers that log it. */
enum diag_kind {
	DIAG_INVALID,		/* a bad line or value */
	DIAG_OPEN_FAILED,	/* a named file cannot be opened or read */
};

struct diag {
	char **msgs;	/* owned, each "FILE:LINE: message" or "FILE: message" */
	enum diag_kind *kinds;
	int *errnos;	/* errno for DIAG_OPEN_FAILED, else 0 */
	char **paths;	/* owned: the file each message is about */
	unsigned *lines;	/* its line, 0 when none */
	char **options;	/* owned or NULL: the option that named the file */
	size_t n;
	size_t cap;
};

void diag_init(struct diag *d);
void diag_fini(struct diag *d);
/* line 0 means no line number. */
void diag_add(struct diag *d, const char *file, unsigned line, const char *fmt, ...) PRINTF(4, 5);
/* A file that cannot be opened: kind DIAG_OPEN_FAILED, errno kept. */
void diag_add_open_failed(struct diag *d, const char *file, const char *option, int err);
void diag_print(const struct diag *d, FILE *out);
/* Reads a whole small file (a configuration, an accounts or aliases file)
 * into a NUL-terminated malloc'ed buffer of *len_out octets; NULL with
 * the reason in d when it cannot be opened (option: the option that named
 * it, or NULL), read, or is larger than max. */
char *diag_read_file(const char *path, const char *option, size_t max, size_t *len_out,
		     struct diag *d) WARN_UNUSED;

#endif
