/*
 * regdomain.c - registered domains from the public suffix list (see
 * regdomain.h). Owns the one libpsl context of the process, loaded once
 * and kept until exit (libpsl's lookups on it are read-only and
 * thread-safe).
 */
#include "regdomain.h"

#include <arpa/inet.h>
#include <libpsl.h>
#include <pthread.h>
#include <string.h>

static pthread_once_t regdomain_once = PTHREAD_ONCE_INIT;
static const psl_ctx_t *regdomain_psl;

static void
regdomain_load(void)
{
	/* psl_latest: the newer of the distribution's file and the built-in
	 * list (Debian 12's libpsl has both; the file comes with the
	 * publicsuffix package and its updates) */
	const psl_ctx_t *ctx = psl_latest(NULL);

	if (ctx == NULL)
		ctx = psl_builtin();
	regdomain_psl = ctx;
}

int
regdomain_init(void)
{
	if (pthread_once(&regdomain_once, regdomain_load) != 0)
		return -1;
	return regdomain_psl != NULL ? 0 : -1;
}

/* 1 if h (lower case, NUL-terminated) is an IP address, bracketed or
 * not. */
static int
is_address(const char *h)
{
	unsigned char a[16];

	if (h[0] == '[' || strchr(h, ':') != NULL)
		return 1;
	return inet_pton(AF_INET, h, a) == 1;
}

int
regdomain_of(const char *host, char *out, size_t outlen)
{
	char h[256];
	size_t n = strlen(host);
	const char *reg = NULL;

	if (n > 0 && host[n - 1] == '.')
		n--;
	if (n == 0 || n > 253)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char c = host[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c + 32);
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		      c == '.' || c == ':' || c == '[' || c == ']'))
			return -1;
		h[i] = c;
	}
	h[n] = '\0';
	if (!is_address(h) && strchr(h, '.') != NULL && h[0] != '.' &&
	    strstr(h, "..") == NULL) {
		if (regdomain_init() == 0) {
			reg = psl_registrable_domain(regdomain_psl, h);
		} else {
			/* no list at all: the last two labels */
			const char *p = h + n;
			int dots = 0;

			while (p > h && dots < 2)
				if (*--p == '.')
					dots++;
			reg = dots == 2 ? p + 1 : h;
		}
	}
	if (reg == NULL)
		reg = h;
	n = strlen(reg);
	if (n + 1 > outlen)
		return -1;
	memcpy(out, reg, n + 1);
	return (int)n;
}
