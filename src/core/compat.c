/*
 * compat.c - the always-on assertion handler.
 */
#include "compat.h"

#include <stdio.h>
#include <stdlib.h>

void
compat_assert_fail(const char *expr, const char *file, int line)
{
	fprintf(stderr, "sev=crit event=INTERNAL-ERROR where=%s:%d detail=\"assertion failed: %s\"\n",
		file, line, expr);
	fflush(stderr);
	abort();
}
