/*
 * test_sasl.c - SASL response decoding (smtp/smtp_sasl.c): strict base64,
 * the response line rules of RFC 4954 and LOGIN steps (PLAIN itself is
 * tests/unit/test_sasl_plain.c).
 * Tables of named cases; every error the decoder can return.
 */
#include "smtp_sasl.h"

#include <stdlib.h>
#include <string.h>

#include "testing.h"

struct b64_case {
	const char *name;
	const char *in;
	enum sasl_result want;
	const char *out;	/* decoded, when want is SASL_OK */
	size_t outlen;
};

static const struct b64_case b64_cases[] = {
	{ "empty", "", SASL_OK, "", 0 },
	{ "one octet", "YQ==", SASL_OK, "a", 1 },
	{ "two octets", "YWI=", SASL_OK, "ab", 2 },
	{ "three octets", "YWJj", SASL_OK, "abc", 3 },
	{ "username", "VXNlcm5hbWU6", SASL_OK, "Username:", 9 },
	{ "plain with NULs", "AGFsaWNlAHB3", SASL_OK, "\0alice\0pw", 9 },
	{ "plus and slash", "+/+/", SASL_OK, "\xfb\xff\xbf", 3 },
	{ "length not multiple of 4", "YWJ", SASL_BAD_BASE64, NULL, 0 },
	{ "missing padding", "YQ", SASL_BAD_BASE64, NULL, 0 },
	{ "bad character", "YW*j", SASL_BAD_BASE64, NULL, 0 },
	{ "space inside", "YW j", SASL_BAD_BASE64, NULL, 0 },
	{ "trailing space", "YWJj ", SASL_BAD_BASE64, NULL, 0 },
	{ "url-safe alphabet", "-_-_", SASL_BAD_BASE64, NULL, 0 },
	{ "padding in the middle", "YQ==YWJj", SASL_BAD_BASE64, NULL, 0 },
	{ "three pads", "Y===", SASL_BAD_BASE64, NULL, 0 },
	{ "four pads", "====", SASL_BAD_BASE64, NULL, 0 },
	{ "data after pad", "YQ=j", SASL_BAD_BASE64, NULL, 0 },
	{ "non-canonical 1 pad", "YWJ=", SASL_BAD_BASE64, NULL, 0 },
	{ "non-canonical 2 pads", "YR==", SASL_BAD_BASE64, NULL, 0 },
	{ "8-bit octet", "YW\xc3\xa9", SASL_BAD_BASE64, NULL, 0 },
	{ "NUL octet", "YW\0j", SASL_BAD_BASE64, NULL, 0 },
};

static void
test_b64(void)
{
	for (size_t i = 0; i < sizeof(b64_cases) / sizeof(b64_cases[0]); i++) {
		const struct b64_case *c = &b64_cases[i];
		uint8_t out[64];
		size_t n = 99;
		size_t inlen = strcmp(c->name, "NUL octet") == 0 ? 4 : strlen(c->in);

		TEST_CASE(c->name);
		CHECK_INT(sasl_b64_decode((const uint8_t *)c->in, inlen, out, sizeof(out), &n),
			  c->want);
		if (c->want == SASL_OK) {
			CHECK_INT(n, c->outlen);
			CHECK(memcmp(out, c->out, c->outlen) == 0);
		} else {
			CHECK_INT(n, 0);
		}
	}

	TEST_CASE("output too small");
	uint8_t small[2];
	size_t n;
	CHECK_INT(sasl_b64_decode((const uint8_t *)"YWJj", 4, small, sizeof(small), &n),
		  SASL_TOO_LONG);

	TEST_CASE("encode round trip, every length 0..40");
	uint8_t raw[40], back[40];
	char enc[64];
	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = (uint8_t)(i * 37 + 11);
	for (size_t len = 0; len <= sizeof(raw); len++) {
		size_t e = sasl_b64_encode(raw, len, enc, sizeof(enc));
		CHECK_INT(e, (len + 2) / 3 * 4);
		CHECK_INT(sasl_b64_decode((const uint8_t *)enc, e, back, sizeof(back), &n), SASL_OK);
		CHECK_INT(n, len);
		CHECK(memcmp(raw, back, len) == 0);
	}
	TEST_CASE("encode into too small a buffer");
	CHECK_INT(sasl_b64_encode(raw, 3, enc, 3), 0);
	TEST_CASE("encode known");
	CHECK_INT(sasl_b64_encode((const uint8_t *)"Password:", 9, enc, sizeof(enc)), 12);
	CHECK_MEM(enc, 12, "UGFzc3dvcmQ6");
}

struct resp_case {
	const char *name;
	const char *line;
	int initial;
	enum sasl_result want;
	size_t outlen;
};

static const struct resp_case resp_cases[] = {
	{ "cancel", "*", 0, SASL_CANCEL, 0 },
	{ "cancel as initial response", "*", 1, SASL_CANCEL, 0 },
	{ "= as initial response is empty", "=", 1, SASL_OK, 0 },
	{ "= in a continuation is not base64", "=", 0, SASL_BAD_BASE64, 0 },
	{ "empty continuation", "", 0, SASL_OK, 0 },
	{ "** is not a cancel", "**", 0, SASL_BAD_BASE64, 0 },
	{ "base64", "YWJj", 0, SASL_OK, 3 },
	{ "bad base64", "YWJ", 0, SASL_BAD_BASE64, 0 },
};

static void
test_response(void)
{
	uint8_t out[SASL_DECODED_MAX];
	size_t n;

	for (size_t i = 0; i < sizeof(resp_cases) / sizeof(resp_cases[0]); i++) {
		const struct resp_case *c = &resp_cases[i];
		TEST_CASE(c->name);
		CHECK_INT(sasl_response_decode((const uint8_t *)c->line, strlen(c->line), c->initial,
					       out, sizeof(out), &n), c->want);
		CHECK_INT(n, c->outlen);
	}

	/* RFC 4954 4: 12288 octets must be accepted; one more is too long. */
	char *big = malloc(SASL_LINE_MAX + 4);
	memset(big, 'A', SASL_LINE_MAX + 4);
	TEST_CASE("12288 octets accepted");
	CHECK_INT(sasl_response_decode((const uint8_t *)big, SASL_LINE_MAX, 0, out, sizeof(out), &n),
		  SASL_OK);
	CHECK_INT(n, SASL_DECODED_MAX);
	TEST_CASE("12289 octets too long");
	CHECK_INT(sasl_response_decode((const uint8_t *)big, SASL_LINE_MAX + 1, 0, out, sizeof(out),
				       &n), SASL_TOO_LONG);
	TEST_CASE("12292 octets too long (multiple of 4)");
	CHECK_INT(sasl_response_decode((const uint8_t *)big, SASL_LINE_MAX + 4, 1, out, sizeof(out),
				       &n), SASL_TOO_LONG);
	free(big);
}

static void
test_login(void)
{
	uint8_t big[300];

	memset(big, 'u', sizeof(big));
	TEST_CASE("login name");
	CHECK_INT(sasl_login_check((const uint8_t *)"alice@example.test", 18), SASL_OK);
	TEST_CASE("login empty");
	CHECK_INT(sasl_login_check((const uint8_t *)"", 0), SASL_BAD_MESSAGE);
	TEST_CASE("login with NUL");
	CHECK_INT(sasl_login_check((const uint8_t *)"al\0ice", 6), SASL_BAD_MESSAGE);
	TEST_CASE("login 255");
	CHECK_INT(sasl_login_check(big, 255), SASL_OK);
	TEST_CASE("login 256");
	CHECK_INT(sasl_login_check(big, 256), SASL_BAD_MESSAGE);
	TEST_CASE("result names");
	CHECK_STR(sasl_result_name(SASL_OK), "ok");
	CHECK_STR(sasl_result_name(SASL_CANCEL), "cancel");
	CHECK_STR(sasl_result_name(SASL_BAD_BASE64), "base64");
	CHECK_STR(sasl_result_name(SASL_BAD_MESSAGE), "message");
	CHECK_STR(sasl_result_name(SASL_TOO_LONG), "too_long");
}

int
main(void)
{
	test_b64();
	test_response();
	test_login();
	return TEST_DONE();
}
