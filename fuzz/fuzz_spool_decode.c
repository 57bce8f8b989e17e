/*
 * fuzz_spool_decode.c - libFuzzer target for the spool file decoder.
 *
 * Spool files are read back at start after a crash, so their decoder must
 * be safe on any bytes (a torn write, a damaged disk). Whatever decodes
 * must encode back to exactly the same bytes up to its state log (version
 * 2; the encoder writes no state records); a version-1 file
 * encodes as version 2 and decodes back to the same data.
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
		int v2 = n >= 16 && memcmp(p, "POSTERN-SPOOL 2\n", 16) == 0;

		if (spool_encode(m, &b) == 0) {
			if (v2 && (b.len != m->log_off || memcmp(b.data, p, b.len) != 0))
				__builtin_trap();
			if (!v2) {
				struct spool_msg *up = spool_decode(b.data, b.len, &reason);

				if (up == NULL || up->data.len != m->data.len ||
				    memcmp(up->data.data, m->data.data, m->data.len) != 0)
					__builtin_trap();
				spool_msg_free(&up);
			}
		}
		buf_fini(&b);
	} else if (reason == NULL) {
		__builtin_trap();	/* a refusal always says why */
	}
	spool_msg_free(&m);
	return 0;
}
