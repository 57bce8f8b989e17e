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

struct diag {
	char **msgs;	/* owned, each "FILE:LINE: message" or "FILE: message" */
	size_t n;
	size_t cap;
};

void diag_init(struct diag *d);
void diag_fini(struct diag *d);
/* line 0 means no line number. */
void diag_add(struct diag *d, const char *file, unsigned line, const char *fmt, ...) PRINTF(4, 5);
void diag_print(const struct diag *d, FILE *out);

#endif
