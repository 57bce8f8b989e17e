/*
 * buf.c - bounded byte buffers, slices and the aborting allocators.
 *
 * Invariant: len <= max and, once anything is allocated, len < cap so
 * data[len] can hold a NUL for buf_cstr().
 */
#include "buf.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void NORETURN
alloc_fail(size_t n)
{
	fprintf(stderr, "sev=crit event=RESOURCE-OUT-OF-MEMORY size=%zu msg=\"out of memory\"\n", n);
	fflush(stderr);
	abort();
}

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		alloc_fail(n);
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		alloc_fail(n * size);
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (q == NULL)
		alloc_fail(n);
	return q;
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&p, fmt, ap);
	va_end(ap);
	if (n < 0)
		alloc_fail(0);
	return p;
}

void
buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void
buf_fini(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

int
buf_reserve(struct buf *b, size_t extra)
{
	size_t need, ncap;

	if (extra > b->max - b->len)
		return -1;
	need = b->len + extra + 1;	/* room for the NUL */
	if (need <= b->cap)
		return 0;
	ncap = b->cap ? b->cap : 64;
	while (ncap < need)
		ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
	if (ncap > b->max + 1)
		ncap = b->max + 1;
	if (ncap < need)
		ncap = need;
	b->data = xrealloc(b->data, ncap);
	b->cap = ncap;
	return 0;
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
	if (buf_reserve(b, n) < 0)
		return -1;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int
buf_append_str(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int
buf_append_byte(struct buf *b, uint8_t c)
{
	return buf_append(b, &c, 1);
}

int
buf_vappendf(struct buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	char small[256];
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(small, sizeof(small), fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return -1;
	if ((size_t)n < sizeof(small))
		return buf_append(b, small, (size_t)n);
	if (buf_reserve(b, (size_t)n) < 0)
		return -1;
	if (vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap) != n)
		return -1;
	b->len += (size_t)n;
	return 0;
}

int
buf_appendf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = buf_vappendf(b, fmt, ap);
	va_end(ap);
	return r;
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

void
buf_compact(struct buf *b, size_t *off)
{
	if (*off == 0)
		return;
	buf_consume(b, *off);
	*off = 0;
}

struct slice
buf_unread(const struct buf *b, size_t off)
{
	if (off >= b->len)
		return (struct slice){ b->data ? b->data + b->len : NULL, 0 };
	return (struct slice){ b->data + off, b->len - off };
}

const char *
buf_cstr(struct buf *b)
{
	if (b->data == NULL) {
		if (buf_reserve(b, 0) < 0)
			return "";
		b->data[0] = '\0';
	}
	return (const char *)b->data;
}

struct slice
buf_slice(const struct buf *b)
{
	return (struct slice){ b->data, b->len };
}

struct slice
slice_from_cstr(const char *s)
{
	return (struct slice){ (const uint8_t *)s, strlen(s) };
}

int
slice_eq_nocase(struct slice a, const char *s)
{
	size_t n = strlen(s);

	return a.len == n && strncasecmp((const char *)a.p, s, n) == 0;
}

int
slice_starts_nocase(struct slice a, const char *prefix)
{
	size_t n = strlen(prefix);

	return a.len >= n && strncasecmp((const char *)a.p, prefix, n) == 0;
}

int
slice_to_u64(struct slice s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (s.len == 0 || s.len > 20)
		return -1;
	for (size_t i = 0; i < s.len; i++) {
		unsigned d;

		if (s.p[i] < '0' || s.p[i] > '9')
			return -1;
		d = (unsigned)(s.p[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

int
slice_copy(struct slice s, char *dst, size_t dstsize)
{
	if (dstsize == 0)
		return -1;
	if (s.len >= dstsize) {
		dst[0] = '\0';
		return -1;
	}
	if (s.len > 0)
		memcpy(dst, s.p, s.len);
	dst[s.len] = '\0';
	return 0;
}
