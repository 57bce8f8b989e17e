/*
 * fuzz_spool_decode.c - libFuzzer target for the spool file decoder.
 *
 * Spool files are read back at start after a crash, so their decoder must
 * be safe on any bytes (a torn write, a damaged disk). Whatever decodes
 * must encode back to exactly the same bytes.
 */
#include <stdint.h>
#include <string.h>

#include "spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *p, size_t n);

int
LLVMFuzzerTestOneInput(const uint8_t *p, size_t n)
{
	const char *reason = NULL;
	struct spool_msg *m = spool_decode(p, n, &reason);

	if (m != NULL) {
		struct buf b;
		buf_init(&b, (size_t)1 << 30);
		if (spool_encode(m, &b) == 0 && (b.len != n || memcmp(b.data, p, n) != 0))
			__builtin_trap();
		buf_fini(&b);
	} else if (reason == NULL) {
		__builtin_trap();	/* a refusal always says why */
	}
	spool_msg_free(&m);
	return 0;
}
