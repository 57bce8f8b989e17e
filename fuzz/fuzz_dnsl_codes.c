/*
 * fuzz_dnsl_codes.c - libFuzzer target for config/config_dnsl.c: the
 * parser of a DNS list's codes value ([dnsbl.NAME] codes = ...) and the
 * match of an A answer against the parsed codes.
 *
 * Input: the value (NUL-terminated copy, cut at the first NUL). Checks,
 * besides the sanitizers: a parse that succeeds gives 1..max entries,
 * each a contiguous mask with no bits outside it and at least one that
 * includes; an entry's own network matches unless some exclusion covers
 * it; a failed parse says why.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "config.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config_dnsl l;
	char v[1024], err[160];
	size_t n = size < sizeof(v) - 1 ? size : sizeof(v) - 1, k = 99, includes = 0;

	memcpy(v, data, n);
	v[n] = '\0';
	err[0] = '\0';
	if (config_dnsl_parse_codes(v, l.codes, CONFIG_DNSL_CODES_MAX, &k, err, sizeof(err)) < 0) {
		check(err[0] != '\0' && memchr(err, '\0', sizeof(err)) != NULL);
		return 0;
	}
	check(k >= 1 && k <= CONFIG_DNSL_CODES_MAX);
	l.ncodes = k;
	for (size_t i = 0; i < k; i++) {
		uint32_t m = l.codes[i].mask;

		check((~m & (~m + 1u)) == 0);	/* a prefix: ones, then zeros */
		check((l.codes[i].net & ~m) == 0);
		includes += !l.codes[i].exclude;
	}
	check(includes >= 1);
	for (size_t i = 0; i < k; i++) {
		int excluded = 0;

		for (size_t j = 0; j < k; j++)
			if (l.codes[j].exclude && (l.codes[i].net & l.codes[j].mask) == l.codes[j].net)
				excluded = 1;
		if (!l.codes[i].exclude)
			check(config_dnsl_code_match(&l, l.codes[i].net) == !excluded);
		else
			check(config_dnsl_code_match(&l, l.codes[i].net) == 0);
	}
	return 0;
}
