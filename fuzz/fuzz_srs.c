/*
 * fuzz_srs.c - libFuzzer target for directory/srs.c: the reversal of SRS
 * local parts, which runs on RCPT from any client, and the forward
 * rewrite.
 *
 * Input: the first 8 bytes are the clock (any value), the rest is used
 * twice: as a local part to reverse, and as a sender to rewrite. Checks,
 * besides the sanitizers: a valid reversal is a NUL-terminated address
 * inside the buffer with an '@'; a sender we rewrite to SRS0 comes back
 * to itself at the same time, and its SRS1 rewrites (another forwarder's
 * address) come back to that forwarder's address.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "srs.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char secret0[] = "fuzz-secret", secret1[] = "older-secret";
	static char domain[] = "fwd.example.net";
	struct srs srs = {
		.secrets = { secret0, secret1 }, .nsecrets = 2, .domain = domain, .max_age_days = 21,
	};
	char in[SRS_ADDR_MAX], out[SRS_ADDR_MAX], back[SRS_ADDR_MAX];
	int64_t now = 0;
	size_t n;
	int rc;

	if (size < 8)
		return 0;
	memcpy(&now, data, 8);
	now = now < 0 ? -(now + 1) : now;
	now %= (int64_t)SRS_DAY * 1000000;
	data += 8;
	size -= 8;
	n = size < sizeof(in) - 1 ? size : sizeof(in) - 1;
	memcpy(in, data, n);
	in[n] = '\0';

	if (srs_reverse(&srs, (const char *)data, size, now, out, sizeof(out)) == SRS_VALID) {
		check(memchr(out, '\0', sizeof(out)) != NULL);
		check(strchr(out, '@') != NULL);
	}
	if (memchr(in, '\0', n) != NULL)
		return 0;	/* senders hold no NUL */
	rc = srs_forward(&srs, in, now, out, sizeof(out));
	check(rc >= -1 && rc <= 1);
	if (rc == 1) {
		const char *at = strrchr(out, '@');

		check(at != NULL && strcmp(at + 1, domain) == 0);
		if (srs_reverse(&srs, out, (size_t)(at - out), now, back, sizeof(back)) == SRS_VALID &&
		    !srs_is_srs(in, strlen(in)))
			check(strcmp(back, in) == 0);
	}
	return 0;
}
