/*
 * smtp_sasl.h - pure decoding of SASL responses for SMTP AUTH: base64
 * (RFC 4648 section 4, as RFC 4954 requires) and the LOGIN steps. The
 * PLAIN message (RFC 4616) is core/sasl_plain.h, shared with POP3.
 *
 * No I/O, no globals, no allocation: the caller gives the output buffer,
 * and results are slices into it. Fuzzed by fuzz/fuzz_sasl.c.
 *
 * Choices (tested in tests/unit/test_sasl.c):
 * - Base64 is strict: the alphabet of RFC 4648 section 4, length a multiple
 *   of 4, '=' only as the last one or two characters, no spaces or line
 *   breaks, and the unused bits of the last group must be zero (a
 *   non-canonical encoding is refused, so one string has one meaning).
 * - "*" alone cancels the exchange (RFC 4954 section 4). "=" alone is an
 *   empty initial response, allowed only on the AUTH command line; an empty
 *   continuation line is an empty response.
 * - LOGIN: each step is one value of 1..255 octets without NUL.
 */
#ifndef POSTERN_SMTP_SASL_H
#define POSTERN_SMTP_SASL_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "sasl_plain.h"

/* RFC 4954 section 4: a server must accept responses of 12288 octets
 * (base64, CRLF excluded). Decoded, that is at most 9216 octets. */
#define SASL_LINE_MAX 12288u
#define SASL_DECODED_MAX (SASL_LINE_MAX / 4u * 3u)

enum sasl_result {
	SASL_OK = 0,
	SASL_CANCEL,		/* the client sent "*" */
	SASL_BAD_BASE64,	/* not strict base64 */
	SASL_BAD_MESSAGE,	/* decodes, but not as the mechanism's message */
	SASL_TOO_LONG,		/* line over SASL_LINE_MAX, or output too small */
};

/* Short names for logs: "ok", "cancel", "base64", "message", "too_long". */
const char *sasl_result_name(enum sasl_result r);

/* Decodes strict base64 (see above) into out (cap octets). An empty input
 * decodes to nothing. Returns SASL_OK with *out_len set, SASL_BAD_BASE64,
 * or SASL_TOO_LONG when out is too small. */
enum sasl_result sasl_b64_decode(const uint8_t *in, size_t len, uint8_t *out, size_t cap,
				 size_t *out_len);

/* Encodes n octets as base64 with padding into out (no NUL added). Returns
 * the encoded length, or 0 and writes nothing when cap is too small (the
 * encoding of n octets takes 4 * ((n + 2) / 3)). */
size_t sasl_b64_encode(const uint8_t *in, size_t n, char *out, size_t cap);

/* One client response line (CRLF removed): "*" is SASL_CANCEL, "=" is an
 * empty response when initial is set (the AUTH command's argument), lines
 * over SASL_LINE_MAX are SASL_TOO_LONG, else base64 into out. */
enum sasl_result sasl_response_decode(const uint8_t *line, size_t len, int initial,
				      uint8_t *out, size_t cap, size_t *out_len);

/* Checks a decoded LOGIN step (user name or password): 1..255 octets, no
 * NUL. */
enum sasl_result sasl_login_check(const uint8_t *msg, size_t len);

#endif
