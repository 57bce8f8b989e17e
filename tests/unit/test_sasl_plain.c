/*
 * test_sasl_plain.c - the one SASL PLAIN parser (core/sasl_plain.c) that
 * SMTP AUTH and POP3 AUTH share: well-formed messages, every malformed
 * shape, and the 255-octet field bounds of RFC 4616 section 2.
 */
#include "sasl_plain.h"

#include <stdlib.h>
#include <string.h>

#include "testing.h"

struct plain_case {
	const char *name;
	const char *msg;
	size_t len;
	int want;
	const char *authzid, *authcid, *passwd;
};

#define M(s) s, sizeof(s) - 1

static const struct plain_case plain_cases[] = {
	{ "no authzid", M("\0alice@example.test\0alice-pw"), 0,
	  "", "alice@example.test", "alice-pw" },
	{ "with authzid", M("alice\0alice\0secret"), 0, "alice", "alice", "secret" },
	{ "utf-8 password", M("\0bob\0p\xc3\xa4ss"), 0, "", "bob", "p\xc3\xa4ss" },
	{ "password with spaces", M("\0bob\0a b c"), 0, "", "bob", "a b c" },
	{ "empty message", M(""), -1, NULL, NULL, NULL },
	{ "no NUL", M("alicepassword"), -1, NULL, NULL, NULL },
	{ "one NUL", M("\0alice"), -1, NULL, NULL, NULL },
	{ "three NULs", M("\0alice\0pw\0x"), -1, NULL, NULL, NULL },
	{ "empty authcid", M("\0\0pw"), -1, NULL, NULL, NULL },
	{ "empty password", M("\0alice\0"), -1, NULL, NULL, NULL },
	{ "only NULs", M("\0\0"), -1, NULL, NULL, NULL },
};

static void
test_plain(void)
{
	struct sasl_plain p;

	for (size_t i = 0; i < sizeof(plain_cases) / sizeof(plain_cases[0]); i++) {
		const struct plain_case *c = &plain_cases[i];
		TEST_CASE(c->name);
		CHECK_INT(sasl_plain_parse((const uint8_t *)c->msg, c->len, &p), c->want);
		if (c->want == 0) {
			CHECK_MEM(p.authzid.p, p.authzid.len, c->authzid);
			CHECK_MEM(p.authcid.p, p.authcid.len, c->authcid);
			CHECK_MEM(p.passwd.p, p.passwd.len, c->passwd);
		} else {
			CHECK(p.authcid.p == NULL && p.passwd.p == NULL);
		}
	}

	/* RFC 4616 2: each field at most 255 octets */
	uint8_t msg[1024];
	size_t n;
	struct { const char *name; size_t z, c, w; int want; } lens[] = {
		{ "all fields 255", 255, 255, 255, 0 },
		{ "authzid 256", 256, 5, 5, -1 },
		{ "authcid 256", 0, 256, 5, -1 },
		{ "passwd 256", 0, 5, 256, -1 },
	};
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		TEST_CASE(lens[i].name);
		n = 0;
		memset(msg + n, 'z', lens[i].z);
		n += lens[i].z;
		msg[n++] = 0;
		memset(msg + n, 'c', lens[i].c);
		n += lens[i].c;
		msg[n++] = 0;
		memset(msg + n, 'w', lens[i].w);
		n += lens[i].w;
		CHECK_INT(sasl_plain_parse(msg, n, &p), lens[i].want);
	}
}

int
main(void)
{
	test_plain();
	return TEST_DONE();
}
