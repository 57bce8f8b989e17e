/*
 * smtp_sasl.c - SASL response decoding for SMTP AUTH (see smtp_sasl.h).
 *
 * Pure functions over caller-owned memory; every write into out is checked
 * against cap first.
 */
#include "smtp/smtp_sasl.h"

#include <string.h>

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

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

/* 0..63 for an alphabet character, -1 otherwise. */
static int
b64_value(uint8_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

enum sasl_result
sasl_b64_decode(const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
	size_t o = 0;

	*out_len = 0;
	if (len % 4 != 0)
		return SASL_BAD_BASE64;
	for (size_t i = 0; i < len; i += 4) {
		int v[4];
		size_t pad = 0;
		int last = i + 4 == len;

		for (size_t k = 0; k < 4; k++) {
			uint8_t c = in[i + k];
			if (c == '=') {
				/* padding: only in the last group, only at its
				 * end, at most two */
				if (!last || k < 2)
					return SASL_BAD_BASE64;
				pad++;
				v[k] = 0;
				continue;
			}
			if (pad > 0)
				return SASL_BAD_BASE64;	/* data after '=' */
			v[k] = b64_value(c);
			if (v[k] < 0)
				return SASL_BAD_BASE64;
		}
		/* RFC 4648 3.5: the bits left over must be zero */
		if (pad == 2 && (v[1] & 0x0f) != 0)
			return SASL_BAD_BASE64;
		if (pad == 1 && (v[2] & 0x03) != 0)
			return SASL_BAD_BASE64;
		size_t n = 3 - pad;
		if (cap - o < n)
			return SASL_TOO_LONG;
		uint32_t w = ((uint32_t)v[0] << 18) | ((uint32_t)v[1] << 12) |
			     ((uint32_t)v[2] << 6) | (uint32_t)v[3];
		out[o++] = (uint8_t)(w >> 16);
		if (n > 1)
			out[o++] = (uint8_t)(w >> 8);
		if (n > 2)
			out[o++] = (uint8_t)w;
	}
	*out_len = o;
	return SASL_OK;
}

size_t
sasl_b64_encode(const uint8_t *in, size_t n, char *out, size_t cap)
{
	size_t need = (n + 2) / 3 * 4;
	size_t o = 0;

	if (n > (SIZE_MAX / 4) * 3 - 2 || need > cap)
		return 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t w = (uint32_t)in[i] << 16;
		size_t left = n - i;
		if (left > 1)
			w |= (uint32_t)in[i + 1] << 8;
		if (left > 2)
			w |= in[i + 2];
		out[o++] = b64_alphabet[(w >> 18) & 63];
		out[o++] = b64_alphabet[(w >> 12) & 63];
		out[o++] = left > 1 ? b64_alphabet[(w >> 6) & 63] : '=';
		out[o++] = left > 2 ? b64_alphabet[w & 63] : '=';
	}
	return o;
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
sasl_plain_parse(const uint8_t *msg, size_t len, struct sasl_plain *out)
{
	const uint8_t *nul1, *nul2;

	memset(out, 0, sizeof(*out));
	if (len == 0)
		return SASL_BAD_MESSAGE;
	nul1 = memchr(msg, '\0', len);
	if (nul1 == NULL)
		return SASL_BAD_MESSAGE;
	size_t rest = len - (size_t)(nul1 + 1 - msg);
	nul2 = rest > 0 ? memchr(nul1 + 1, '\0', rest) : NULL;
	if (nul2 == NULL)
		return SASL_BAD_MESSAGE;
	out->authzid = (struct slice){ msg, (size_t)(nul1 - msg) };
	out->authcid = (struct slice){ nul1 + 1, (size_t)(nul2 - nul1 - 1) };
	out->passwd = (struct slice){ nul2 + 1, len - (size_t)(nul2 + 1 - msg) };
	/* RFC 4616 2: no third NUL; lengths 0..255 / 1..255 / 1..255 */
	if (memchr(out->passwd.p, '\0', out->passwd.len) != NULL ||
	    out->authzid.len > SASL_FIELD_MAX || out->authcid.len == 0 ||
	    out->authcid.len > SASL_FIELD_MAX || out->passwd.len == 0 ||
	    out->passwd.len > SASL_FIELD_MAX) {
		memset(out, 0, sizeof(*out));
		return SASL_BAD_MESSAGE;
	}
	return SASL_OK;
}

enum sasl_result
sasl_login_check(const uint8_t *msg, size_t len)
{
	if (len == 0 || len > SASL_FIELD_MAX || memchr(msg, '\0', len) != NULL)
		return SASL_BAD_MESSAGE;
	return SASL_OK;
}
