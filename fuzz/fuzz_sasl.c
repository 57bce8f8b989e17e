/*
 * fuzz_sasl.c - libFuzzer target for smtp/smtp_sasl.c and core/sasl_plain.c.
 *
 * Input: byte 0 chooses initial (bit 0) and an output capacity (the other
 * bits, to reach SASL_TOO_LONG), the rest is a response line. Checks,
 * besides the sanitizers: decoding is deterministic; the output length is
 * within the capacity and 3/4 of the input; a decoded line re-encodes to
 * exactly the input (strict base64 has one spelling); PLAIN's slices lie
 * inside the message, within 255 octets, without NUL; LOGIN agrees with
 * its own rules.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "smtp_sasl.h"

static void
check_field(struct slice f, const uint8_t *msg, size_t len, int may_be_empty)
{
	check(f.p >= msg && f.p + f.len <= msg + len);
	check(f.len <= SASL_FIELD_MAX);
	check(may_be_empty || f.len > 0);
	check(memchr(f.p, '\0', f.len) == NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[SASL_DECODED_MAX], out2[SASL_DECODED_MAX];
	static char enc[SASL_LINE_MAX + 4];
	size_t n = 0, n2 = 0;

	if (size < 1)
		return 0;
	int initial = data[0] & 1;
	size_t cap = (data[0] >> 1) == 0 ? sizeof(out) : (size_t)(data[0] >> 1);
	const uint8_t *line = data + 1;
	size_t len = size - 1;

	enum sasl_result r = sasl_response_decode(line, len, initial, out, cap, &n);
	enum sasl_result r2 = sasl_response_decode(line, len, initial, out2, cap, &n2);
	check(r == r2 && n == n2 && memcmp(out, out2, n) == 0);
	check(n <= cap);
	check(r != SASL_BAD_MESSAGE);
	if (r != SASL_OK) {
		check(n == 0);
		return 0;
	}
	check(n <= len / 4 * 3);
	if (!(len == 1 && line[0] == '=')) {
		size_t e = sasl_b64_encode(out, n, enc, sizeof(enc));
		check(e == len && memcmp(enc, line, len) == 0);
	}

	struct sasl_plain p;
	if (sasl_plain_parse(out, n, &p) == 0) {
		check_field(p.authzid, out, n, 1);
		check_field(p.authcid, out, n, 0);
		check_field(p.passwd, out, n, 0);
		check(p.authzid.len + p.authcid.len + p.passwd.len + 2 == n);
	} else {
		check(p.authcid.p == NULL);
	}
	enum sasl_result l = sasl_login_check(out, n);
	check((l == SASL_OK) ==
	      (n > 0 && n <= SASL_FIELD_MAX && memchr(out, '\0', n) == NULL));
	return 0;
}
