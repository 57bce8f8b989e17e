/*
 * base64.c - strict base64 (RFC 4648 4) decoding and encoding, shared by
 * SMTP AUTH and POP3 AUTH. No mail knowledge.
 */
#include "base64.h"

#include <stdint.h>

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int
base64_value(uint8_t c)
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

int
base64_decode(const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
	size_t o = 0;

	*out_len = 0;
	if (len % 4 != 0)
		return -1;
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
					return -1;
				pad++;
				v[k] = 0;
				continue;
			}
			if (pad > 0)
				return -1;	/* data after '=' */
			v[k] = base64_value(c);
			if (v[k] < 0)
				return -1;
		}
		/* RFC 4648 3.5: the bits left over must be zero */
		if (pad == 2 && (v[1] & 0x0f) != 0)
			return -1;
		if (pad == 1 && (v[2] & 0x03) != 0)
			return -1;
		size_t n = 3 - pad;
		if (cap - o < n)
			return -2;
		uint32_t w = ((uint32_t)v[0] << 18) | ((uint32_t)v[1] << 12) |
			     ((uint32_t)v[2] << 6) | (uint32_t)v[3];
		out[o++] = (uint8_t)(w >> 16);
		if (n > 1)
			out[o++] = (uint8_t)(w >> 8);
		if (n > 2)
			out[o++] = (uint8_t)w;
	}
	*out_len = o;
	return 0;
}

size_t
base64_encode(const uint8_t *in, size_t n, char *out, size_t cap)
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
