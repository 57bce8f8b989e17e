/*
 * testing.h - the unit-test harness: tables of named cases, failures print
 * file:line, the case, and want vs got. Each test program ends with
 * TEST_DONE(), which prints "N passed, N failed" and sets the exit code.
 */
#ifndef POSTERN_TESTING_H
#define POSTERN_TESTING_H

#include <stdio.h>
#include <string.h>

static int testing_passed, testing_failed;
static const char *testing_case = "";

#define TEST_CASE(name) (testing_case = (name))
#define CHECK(cond)                                                          \
	do {                                                                 \
		if (cond) {                                                  \
			testing_passed++;                                    \
		} else {                                                     \
			testing_failed++;                                    \
			fprintf(stderr, "%s:%d: [%s] check failed: %s\n",    \
				__FILE__, __LINE__, testing_case, #cond);    \
		}                                                            \
	} while (0)
#define CHECK_INT(got, want)                                                 \
	do {                                                                 \
		long long g_ = (long long)(got), w_ = (long long)(want);     \
		if (g_ == w_) {                                              \
			testing_passed++;                                    \
		} else {                                                     \
			testing_failed++;                                    \
			fprintf(stderr, "%s:%d: [%s] %s: want %lld, got %lld\n", \
				__FILE__, __LINE__, testing_case, #got, w_, g_); \
		}                                                            \
	} while (0)
#define CHECK_STR(got, want)                                                 \
	do {                                                                 \
		const char *g_ = (got), *w_ = (want);                        \
		if (g_ && w_ && strcmp(g_, w_) == 0) {                       \
			testing_passed++;                                    \
		} else {                                                     \
			testing_failed++;                                    \
			fprintf(stderr, "%s:%d: [%s] %s: want \"%s\", got \"%s\"\n", \
				__FILE__, __LINE__, testing_case, #got,      \
				w_ ? w_ : "(null)", g_ ? g_ : "(null)");     \
		}                                                            \
	} while (0)
#define CHECK_MEM(got, gotlen, want)                                         \
	do {                                                                 \
		size_t wl_ = strlen(want);                                   \
		if ((size_t)(gotlen) == wl_ && memcmp((got), (want), wl_) == 0) { \
			testing_passed++;                                    \
		} else {                                                     \
			testing_failed++;                                    \
			fprintf(stderr, "%s:%d: [%s] %s: want \"%s\", got \"%.*s\"\n", \
				__FILE__, __LINE__, testing_case, #got, (want), \
				(int)(gotlen), (const char *)(got));         \
		}                                                            \
	} while (0)
/* Removes a test's temporary folder when every check passed (and KEEP is
 * not set); else says where it is kept. */
#define testing_remove_dir(dir)                                              \
	do {                                                                 \
		char cmd_[600];                                              \
		if (testing_failed == 0 && getenv("KEEP") == NULL) {         \
			if (snprintf(cmd_, sizeof(cmd_), "rm -rf '%s'", (dir)) < \
			    (int)sizeof(cmd_))                               \
				(void)!system(cmd_);                         \
		} else {                                                     \
			fprintf(stderr, "files kept in %s\n", (dir));        \
		}                                                            \
	} while (0)
#define TEST_DONE()                                                          \
	(printf("%d passed, %d failed\n", testing_passed, testing_failed),   \
	 testing_failed ? 1 : 0)

#endif
