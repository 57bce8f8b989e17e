/*
 * compat.h - compiler attributes and tiny macros used everywhere.
 *
 * Owns nothing at run time. Everything here is header-only.
 */
#ifndef POSTERN_COMPAT_H
#define POSTERN_COMPAT_H

#include <stddef.h>

#define WARN_UNUSED __attribute__((warn_unused_result))
#define PRINTF(f, a) __attribute__((format(printf, f, a)))
#define NORETURN __attribute__((noreturn))
#define UNUSED __attribute__((unused))
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ASSERT is always compiled in: it logs file:line and aborts. */
void compat_assert_fail(const char *expr, const char *file, int line) NORETURN;
#define ASSERT(e) ((e) ? (void)0 : compat_assert_fail(#e, __FILE__, __LINE__))
#define PANIC(msg) compat_assert_fail(msg, __FILE__, __LINE__)

#endif
