/*
 * smtp_sasl.c - SASL response decoding for SMTP AUTH (see smtp_sasl.h).
 *
 * Pure functions over caller-owned memory; every write into out is checked
 * against cap first.
 */
#include "smtp_sasl.h"

#include <string.h>

#include "base64.h"

const char *
sasl_result_name(enum sasl_result r)
{
	switch (r) {
	case SASL_OK:
		return "ok";
	case SASL_CANCEL:
		return "cancel";
	case SASL_BAD_BASE64:
		return "base64";
	case SASL_BAD_MESSAGE:
		return "message";
	case SASL_TOO_LONG:
		return "too_long";
	}
	return "unknown";
}


enum sasl_result
sasl_b64_decode(const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
	switch (base64_decode(in, len, out, cap, out_len)) {
	case 0:
		return SASL_OK;
	case -2:
		return SASL_TOO_LONG;
	default:
		return SASL_BAD_BASE64;
	}
}

size_t
sasl_b64_encode(const uint8_t *in, size_t n, char *out, size_t cap)
{
	return base64_encode(in, n, out, cap);
}

enum sasl_result
sasl_response_decode(const uint8_t *line, size_t len, int initial, uint8_t *out, size_t cap,
		     size_t *out_len)
{
	*out_len = 0;
	if (len > SASL_LINE_MAX)
		return SASL_TOO_LONG;
	/* RFC 4954 4: "*" cancels; "=" is a zero-length initial response */
	if (len == 1 && line[0] == '*')
		return SASL_CANCEL;
	if (len == 1 && line[0] == '=')
		return initial ? SASL_OK : SASL_BAD_BASE64;
	return sasl_b64_decode(line, len, out, cap, out_len);
}

enum sasl_result
sasl_login_check(const uint8_t *msg, size_t len)
{
	if (len == 0 || len > SASL_FIELD_MAX || memchr(msg, '\0', len) != NULL)
		return SASL_BAD_MESSAGE;
	return SASL_OK;
}
