/*
 * test_regdomain.c - unit tests for core/regdomain.c: registered domains
 * from the public suffix list, multi-label suffixes (co.uk), private
 * suffixes, and odd inputs (addresses, single labels, trailing dots,
 * upper case, over-long names, small buffers).
 */
#include "regdomain.h"

#include <string.h>

#include "testing.h"

struct rcase {
	const char *host;
	const char *want;	/* NULL: -1 */
};

static const struct rcase cases[] = {
	{ "mx1.mail.protection.outlook.com", "outlook.com" },
	{ "mx2.mail.protection.outlook.com", "outlook.com" },
	{ "mx.example.co.uk", "example.co.uk" },
	{ "a.b.mx.example.co.uk", "example.co.uk" },
	{ "example.co.uk", "example.co.uk" },
	{ "co.uk", "co.uk" },			/* a suffix is its own answer */
	{ "com", "com" },			/* single label */
	{ "localhost", "localhost" },
	{ "MX.Example.COM.", "example.com" },	/* case and trailing dot */
	{ "gmail-smtp-in.l.google.com", "google.com" },
	{ "mx.example.test", "example.test" },	/* unknown TLD: the "*" rule */
	{ "192.0.2.1", "192.0.2.1" },
	{ "[192.0.2.1]", "[192.0.2.1]" },
	{ "2001:db8::1", "2001:db8::1" },
	{ "[ipv6:2001:db8::1]", "[ipv6:2001:db8::1]" },
	{ "a..example.com", "a..example.com" },	/* not a name: itself */
	{ "", NULL },
	{ ".", NULL },
	{ "bad host.example.com", NULL },
	{ "x\xc3\xa9.example.com", NULL },
};

int
main(void)
{
	char out[256], longname[300];

	CHECK_INT(regdomain_init(), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int n;

		TEST_CASE(cases[i].host);
		n = regdomain_of(cases[i].host, out, sizeof(out));
		if (cases[i].want == NULL) {
			CHECK_INT(n, -1);
		} else {
			CHECK_INT(n, (long long)strlen(cases[i].want));
			if (n >= 0)
				CHECK_STR(out, cases[i].want);
		}
	}

	TEST_CASE("253 octets");
	memset(longname, 'a', sizeof(longname));
	for (size_t i = 63; i < 253; i += 64)
		longname[i] = '.';
	memcpy(longname + 253 - 4, ".com", 4);
	longname[253] = '\0';
	CHECK(regdomain_of(longname, out, sizeof(out)) > 0);
	CHECK(strlen(out) < 253 && strcmp(out + strlen(out) - 4, ".com") == 0);
	TEST_CASE("254 octets");
	longname[253] = 'a';
	longname[254] = '\0';
	CHECK_INT(regdomain_of(longname, out, sizeof(out)), -1);

	TEST_CASE("buffer too small");
	CHECK_INT(regdomain_of("mx.example.co.uk", out, 13), -1);	/* 13 + NUL */
	CHECK_INT(regdomain_of("mx.example.co.uk", out, 14), 13);
	CHECK_INT(regdomain_of("mx.example.co.uk", out, 0), -1);
	return TEST_DONE();
}
