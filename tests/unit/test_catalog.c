/*
 * test_catalog.c - the catalog table's invariants and reply rendering.
 */
#include <string.h>

#include "catalog.h"
#include "testing.h"

/* Stands for config_option_known (the config layer sits above this one). */
static int
fake_option(const char *name, size_t len)
{
	static const char *const known[] = { "limits.connections", "server.user", "limits.errors" };

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strlen(known[i]) == len && memcmp(known[i], name, len) == 0)
			return 1;
	return 0;
}

int
main(void)
{
	struct buf b;
	enum cond_id id;

	TEST_CASE("self check");
	CHECK_INT(catalog_self_check(stderr), 0);

	TEST_CASE("options named in a text: known section.key words, in order, once");
	{
		const char *names[8];
		size_t lens[8];
		const char *text = "Raise limits.connections or server.user; not resolv.conf, "
				   "docs/limits.connections, Xlimits.errors, limits.connections again.";
		size_t n = catalog_options_named(text, fake_option, names, lens);

		CHECK_INT(n, 2);
		CHECK(n == 2 && lens[0] == 18 && memcmp(names[0], "limits.connections", 18) == 0);
		CHECK(n == 2 && lens[1] == 11 && memcmp(names[1], "server.user", 11) == 0);
		CHECK_INT(catalog_options_named("no option here.", fake_option, names, lens), 0);
	}

	TEST_CASE("find is case-insensitive");
	CHECK_INT(catalog_find("rcpt-unknown-user", &id), 0);
	CHECK_INT(id, COND_RCPT_UNKNOWN_USER);
	CHECK_INT(catalog_find("RCPT_UNKNOWN_USER", &id), 0);
	CHECK_INT(catalog_find("RCPT-UNKNOWN", &id), -1);
	CHECK_INT(catalog_find("", &id), -1);

	TEST_CASE("reply with placeholder and ID");
	buf_init(&b, 1024);
	struct kv kv[] = { KVA("rcpt", "x@example.test", 14) };
	CHECK_INT(catalog_reply(&b, COND_RCPT_UNKNOWN_USER, "mx.example.test", kv, 1, 0), 0);
	CHECK_STR(buf_cstr(&b),
		  "550 5.1.1 <x@example.test>: Recipient address rejected: User unknown [RCPT-UNKNOWN-USER]");
	buf_reset(&b);

	TEST_CASE("greeting: hostname, no enhanced code, no ID");
	CHECK_INT(catalog_reply(&b, COND_SMTP_GREETING, "mx.example.test", NULL, 0, 0), 0);
	CHECK_STR(buf_cstr(&b), "220 mx.example.test ESMTP Postern");
	buf_reset(&b);

	TEST_CASE("multi-line first line");
	struct kv h[] = { KV("helo", "client.test") };
	CHECK_INT(catalog_reply(&b, COND_SMTP_EHLO, "mx.example.test", h, 1, 1), 0);
	CHECK_STR(buf_cstr(&b), "250-mx.example.test");
	buf_reset(&b);

	TEST_CASE("client bytes cannot break the reply line");
	struct kv evil[] = { KVA("rcpt", "a\r\n250 ok", 9) };
	CHECK_INT(catalog_reply(&b, COND_RCPT_UNKNOWN_USER, "h", evil, 1, 0), 0);
	CHECK(strchr(buf_cstr(&b), '\r') == NULL && strchr(buf_cstr(&b), '\n') == NULL);
	buf_reset(&b);

	TEST_CASE("long address is cut, reply stays under 512");
	char longaddr[1000];
	memset(longaddr, 'a', sizeof(longaddr));
	struct kv lk[] = { KVA("rcpt", longaddr, sizeof(longaddr)) };
	CHECK_INT(catalog_reply(&b, COND_ACCESS_RELAY_DENIED, "h", lk, 1, 0), 0);
	CHECK(b.len < 510);
	buf_reset(&b);

	TEST_CASE("every reply row renders within 510 octets with worst-case values");
	char big[300];
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	char host[256];
	memset(host, 'h', 255);
	host[255] = '\0';
	for (int i = 0; i < COND__COUNT; i++) {
		const struct cond *c = catalog_get((enum cond_id)i);
		if (c->code == 0)
			continue;
		const char *keys[] = { "rcpt", "from", "helo", "qid", "size", "param", "limit" };
		struct kv all[7];
		for (size_t k = 0; k < 7; k++)
			all[k] = KV(keys[k], big);
		buf_reset(&b);
		CHECK_INT(catalog_reply(&b, (enum cond_id)i, host, all, 7, 0), 0);
		CHECK(b.len <= 510);
	}
	buf_fini(&b);
	return TEST_DONE();
}
