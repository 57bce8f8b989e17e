/*
 * diag.c - collected FILE:LINE diagnostics (see diag.h).
 */
#include "diag.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

void
diag_init(struct diag *d)
{
	d->msgs = NULL;
	d->kinds = NULL;
	d->errnos = NULL;
	d->paths = NULL;
	d->lines = NULL;
	d->options = NULL;
	d->n = 0;
	d->cap = 0;
}

void
diag_fini(struct diag *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->msgs[i]);
		free(d->paths[i]);
	}
	free(d->msgs);
	free(d->kinds);
	free(d->errnos);
	free(d->paths);
	free(d->lines);
	if (d->options != NULL)
		for (size_t i = 0; i < d->n; i++)
			free(d->options[i]);
	free(d->options);
	diag_init(d);
}

static void
diag_push(struct diag *d, const char *file, unsigned line, enum diag_kind kind, int err,
	  char *msg)
{
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 8;
		d->msgs = xrealloc(d->msgs, d->cap * sizeof(*d->msgs));
		d->kinds = xrealloc(d->kinds, d->cap * sizeof(*d->kinds));
		d->errnos = xrealloc(d->errnos, d->cap * sizeof(*d->errnos));
		d->paths = xrealloc(d->paths, d->cap * sizeof(*d->paths));
		d->lines = xrealloc(d->lines, d->cap * sizeof(*d->lines));
		d->options = xrealloc(d->options, d->cap * sizeof(*d->options));
	}
	d->options[d->n] = NULL;
	d->lines[d->n] = line;
	d->msgs[d->n] = msg;
	d->kinds[d->n] = kind;
	d->errnos[d->n] = err;
	d->paths[d->n] = xstrdup(file);
	d->n++;
}

void
diag_add_open_failed(struct diag *d, const char *file, const char *option, int err)
{
	diag_push(d, file, 0, DIAG_OPEN_FAILED, err,
		  xasprintf("%s: cannot open: %s", file, strerror(err)));
	if (option != NULL)
		d->options[d->n - 1] = xstrdup(option);
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
	diag_push(d, file, line, DIAG_INVALID, 0, xstrdup(buf_cstr(&b)));
	buf_fini(&b);
}

void
diag_print(const struct diag *d, FILE *out)
{
	for (size_t i = 0; i < d->n; i++)
		fprintf(out, "%s\n", d->msgs[i]);
}

char *
diag_read_file(const char *path, const char *option, size_t max, size_t *len_out,
	      struct diag *diags)
{
	FILE *f = fopen(path, "rb");
	struct buf b;
	char chunk[65536];
	size_t n;

	if (f == NULL) {
		diag_add_open_failed(diags, path, option, errno);
		return NULL;
	}
	buf_init(&b, max);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (buf_append(&b, chunk, n) < 0) {
			diag_add(diags, path, 0, "file too large (more than %zu bytes)", max);
			buf_fini(&b);
			fclose(f);
			return NULL;
		}
	}
	if (ferror(f)) {
		diag_add(diags, path, 0, "cannot read: %s", strerror(errno));
		buf_fini(&b);
		fclose(f);
		return NULL;
	}
	fclose(f);
	*len_out = b.len;
	buf_cstr(&b);	/* make sure there is a buffer and a NUL */
	return (char *)b.data;
}
