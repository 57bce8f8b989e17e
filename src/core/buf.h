/*
 * buf.h - the one owned byte buffer (struct buf) and borrowed slice.
 *
 * Every buffer has a hard maximum. Growth past it fails with -1 and leaves
 * the buffer unchanged: callers map that to a catalog condition; nothing
 * truncates silently. Appends return a status, never a moved pointer, so
 * code that must point into a buffer across an append keeps offsets.
 * Allocation failure aborts (xalloc).
 */
#ifndef POSTERN_BUF_H
#define POSTERN_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "compat.h"

struct buf {
	uint8_t *data;	/* owned; NUL-terminated past len when len < cap */
	size_t len;
	size_t cap;
	size_t max;	/* hard limit on len */
};

struct slice {
	const uint8_t *p;	/* borrowed */
	size_t len;
};

#define SLICE_LIT(s) ((struct slice){ (const uint8_t *)(s), sizeof(s) - 1 })

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) PRINTF(1, 2);

/* A buffer that may grow to max bytes; starts empty without allocating. */
void buf_init(struct buf *b, size_t max);
void buf_fini(struct buf *b);
void buf_reset(struct buf *b);		/* len = 0, keeps memory */
int buf_reserve(struct buf *b, size_t extra) WARN_UNUSED;
int buf_append(struct buf *b, const void *p, size_t n) WARN_UNUSED;
int buf_append_str(struct buf *b, const char *s) WARN_UNUSED;
int buf_append_byte(struct buf *b, uint8_t c) WARN_UNUSED;
int buf_appendf(struct buf *b, const char *fmt, ...) PRINTF(2, 3) WARN_UNUSED;
int buf_vappendf(struct buf *b, const char *fmt, va_list ap) PRINTF(2, 0) WARN_UNUSED;
/* Removes the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);
/* Input read through an offset: the bytes before *off are consumed, so a
 * reader takes many lines without moving any. buf_compact drops them with
 * one move (before a read appends) and sets *off to 0. */
void buf_compact(struct buf *b, size_t *off);
/* The unconsumed bytes from off on (off <= len). */
struct slice buf_unread(const struct buf *b, size_t off);
/* Returns data as a NUL-terminated C string (reserves the byte). */
const char *buf_cstr(struct buf *b);
struct slice buf_slice(const struct buf *b);

struct slice slice_from_cstr(const char *s);
int slice_eq_nocase(struct slice a, const char *s);
int slice_starts_nocase(struct slice a, const char *prefix);
/* Parses a decimal number without sign; -1 on junk or overflow past max. */
int slice_to_u64(struct slice s, uint64_t max, uint64_t *out) WARN_UNUSED;
/* Copies into a fixed array with NUL; -1 (and empty dst) if it does not fit. */
int slice_copy(struct slice s, char *dst, size_t dstsize) WARN_UNUSED;

#endif
