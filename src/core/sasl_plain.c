/*
 * sasl_plain.c - the SASL PLAIN message (see sasl_plain.h).
 */
#include "sasl_plain.h"

#include <string.h>

int
sasl_plain_parse(const uint8_t *msg, size_t len, struct sasl_plain *out)
{
	const uint8_t *nul1, *nul2;

	memset(out, 0, sizeof(*out));
	if (msg == NULL || len == 0)
		return -1;
	nul1 = memchr(msg, '\0', len);
	if (nul1 == NULL)
		return -1;
	size_t rest = len - (size_t)(nul1 + 1 - msg);
	nul2 = rest > 0 ? memchr(nul1 + 1, '\0', rest) : NULL;
	if (nul2 == NULL)
		return -1;
	out->authzid = (struct slice){ msg, (size_t)(nul1 - msg) };
	out->authcid = (struct slice){ nul1 + 1, (size_t)(nul2 - nul1 - 1) };
	out->passwd = (struct slice){ nul2 + 1, len - (size_t)(nul2 + 1 - msg) };
	/* RFC 4616 2: no third NUL; lengths 0..255 / 1..255 / 1..255 */
	if (memchr(out->passwd.p, '\0', out->passwd.len) != NULL ||
	    out->authzid.len > SASL_FIELD_MAX || out->authcid.len == 0 ||
	    out->authcid.len > SASL_FIELD_MAX || out->passwd.len == 0 ||
	    out->passwd.len > SASL_FIELD_MAX) {
		memset(out, 0, sizeof(*out));
		return -1;
	}
	return 0;
}
