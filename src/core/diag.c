/*
 * diag.c - collected FILE:LINE diagnostics (see diag.h).
 */
#include "diag.h"

#include <stdarg.h>
#include <stdlib.h>

#include "buf.h"

void
diag_init(struct diag *d)
{
	d->msgs = NULL;
	d->n = 0;
	d->cap = 0;
}

void
diag_fini(struct diag *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->msgs[i]);
	free(d->msgs);
	diag_init(d);
}

void
diag_add(struct diag *d, const char *file, unsigned line, const char *fmt, ...)
{
	struct buf b;
	va_list ap;

	int r;

	buf_init(&b, 4096);	/* a message, not data: 4 KiB is plenty */
	if (line > 0)
		r = buf_appendf(&b, "%s:%u: ", file, line);
	else
		r = buf_appendf(&b, "%s: ", file);
	if (r == 0) {
		va_start(ap, fmt);
		r = buf_vappendf(&b, fmt, ap);
		va_end(ap);
	}
	if (r < 0) {
		buf_reset(&b);
		if (buf_appendf(&b, "%.200s:%u: (message too long)", file, line) < 0)
			buf_reset(&b);
	}
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 8;
		d->msgs = xrealloc(d->msgs, d->cap * sizeof(*d->msgs));
	}
	d->msgs[d->n++] = xstrdup(buf_cstr(&b));
	buf_fini(&b);
}

void
diag_print(const struct diag *d, FILE *out)
{
	for (size_t i = 0; i < d->n; i++)
		fprintf(out, "%s\n", d->msgs[i]);
}
