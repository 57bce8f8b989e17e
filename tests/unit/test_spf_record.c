/*
 * test_spf_record.c - unit tests of policy/spf_record.c: record
 * selection and parsing (RFC 7208 4.5, 5, 6, 7.1 grammar) and macro
 * expansion with the RFC 7208 7.4 examples.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "spf_record.h"
#include "testing.h"

static struct spf_record rec;

static int
parse(const char *s)
{
	const char *err;

	return spf_record_parse(s, strlen(s), &rec, &err);
}

static void
test_parse(void)
{
	TEST_CASE("is_spf");
	CHECK(spf_record_is_spf("v=spf1", 6));
	CHECK(spf_record_is_spf("V=SPF1 -all", 11));
	CHECK(!spf_record_is_spf("v=spf10 -all", 12));
	CHECK(!spf_record_is_spf("v=spf", 5));

	TEST_CASE("terms");
	CHECK_INT(parse("v=spf1 +ip4:192.0.2.0/24 ~a:mail.example.com/28//64 mx ?ptr -all"), 0);
	CHECK_INT(rec.nterms, 5);
	CHECK_INT(rec.terms[0].mech, SPF_M_IP4);
	CHECK_INT(rec.terms[0].cidr4, 24);
	CHECK_INT(rec.terms[1].result, SPF_SOFTFAIL);
	CHECK_INT(rec.terms[1].cidr4, 28);
	CHECK_INT(rec.terms[1].cidr6, 64);
	CHECK_INT(rec.terms[2].cidr6, 128);
	CHECK_INT(rec.terms[3].result, SPF_NEUTRAL);
	CHECK_INT(rec.terms[4].result, SPF_FAIL);

	TEST_CASE("modifiers");
	CHECK_INT(parse("v=spf1 redirect=_spf.example.com exp=why.%{d} foo=%{l}"), 0);
	CHECK_INT(rec.nterms, 0);
	CHECK(rec.redirect_len == strlen("_spf.example.com"));
	CHECK_INT(parse("v=spf1 redirect=a.example.com redirect=b.example.com"), -1);

	TEST_CASE("a '/' inside a domain-spec");
	CHECK_INT(parse("v=spf1 a:foo:bar/baz.example.com"), 0);
	CHECK(rec.terms[0].dom_len == strlen("foo:bar/baz.example.com"));

	TEST_CASE("errors");
	CHECK_INT(parse("v=spf1 ip4:1.2.3.4/033"), -1);
	CHECK_INT(parse("v=spf1 ip4:1.2.3.4/032"), -1);
	CHECK_INT(parse("v=spf1 a:example.123"), -1);
	CHECK_INT(parse("v=spf1 all:foo"), -1);
	CHECK_INT(parse("v=spf1 moo"), -1);
	CHECK_INT(parse("v=spf1 include"), -1);
	CHECK_INT(parse("v=spf1 exists:%{x}.example.com"), -1);
	CHECK_INT(parse("v=spf1 ip4:1.2.3.4\t-all"), -1);
	char big[SPF_RECORD_MAX + 20];
	memset(big, 'a', sizeof(big) - 1);
	memcpy(big, "v=spf1 ", 7);
	big[sizeof(big) - 1] = '\0';
	CHECK_INT(parse(big), -1);
}

static void
test_macros(void)
{
	struct spf_macro_ctx c = {
		.sender = "strong-bad@email.example.com", .local = "strong-bad",
		.sender_domain = "email.example.com", .domain = "email.example.com",
		.family = AF_INET, .helo = "mx.example.org", .receiver = "rx.example.net",
		.now = 42,
	};
	char out[SPF_EXPAND_MAX + 1];
	static const struct { const char *in, *want; } v4[] = {
		{ "%{s}", "strong-bad@email.example.com" },
		{ "%{o}", "email.example.com" },
		{ "%{d4}", "email.example.com" },
		{ "%{d2}", "example.com" },
		{ "%{d1r}", "email" },
		{ "%{dr}", "com.example.email" },
		{ "%{d2r}", "example.email" },
		{ "%{l}", "strong-bad" },
		{ "%{l-}", "strong.bad" },
		{ "%{lr}", "strong-bad" },
		{ "%{lr-}", "bad.strong" },
		{ "%{l1r-}", "strong" },
		{ "%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com" },
		{ "%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com" },
		{ "%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net" },
		{ "%%%_%-", "% %20" },
		{ "%{S}", "strong-bad%40email.example.com" },
		{ "%{p}", "unknown" },
	};

	TEST_CASE("RFC 7208 7.4");
	inet_pton(AF_INET, "192.0.2.3", c.addr);
	for (size_t i = 0; i < sizeof(v4) / sizeof(v4[0]); i++) {
		int n = spf_macro_expand(v4[i].in, strlen(v4[i].in), &c, 0, out, sizeof(out));
		CHECK_STR(n >= 0 ? out : "(error)", v4[i].want);
	}
	TEST_CASE("IPv6");
	c.family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8::cb01", c.addr);
	CHECK(spf_macro_expand("%{ir}.%{v}._spf.%{d2}", 21, &c, 0, out, sizeof(out)) > 0);
	CHECK_STR(out, "1.0.B.C.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.B.D.0.1.0.0.2"
		       ".ip6._spf.example.com");
	TEST_CASE("explanation letters");
	CHECK_INT(spf_macro_expand("%{c} %{r} %{t}", 14, &c, 0, out, sizeof(out)), -1);
	CHECK(spf_macro_expand("%{c} %{r} %{t}", 14, &c, 1, out, sizeof(out)) > 0);
	CHECK_STR(out, "2001:db8::cb01 rx.example.net 42");
	TEST_CASE("bad macros");
	CHECK_INT(spf_macro_expand("%{d0}", 5, &c, 0, out, sizeof(out)), -1);
	CHECK_INT(spf_macro_expand("%x", 2, &c, 0, out, sizeof(out)), -1);
	CHECK_INT(spf_macro_expand("%{d", 3, &c, 0, out, sizeof(out)), -1);
	TEST_CASE("bounded");
	CHECK_INT(spf_macro_expand("%{s}%{s}", 8, &c, 0, out, 20), -1);

	TEST_CASE("domain trim");
	char name[600];
	memset(name, 0, sizeof(name));
	for (int i = 0; i < 100; i++)
		memcpy(name + i * 4, "abc.", 4);
	memcpy(name + 400, "example.com.", 12);
	CHECK(strlen(spf_domain_trim(name)) <= 253);
	CHECK(strcmp(name + strlen(name) - 11, "example.com") == 0);
	CHECK(strncmp(name, "abc.", 4) == 0);
}

int
main(void)
{
	test_parse();
	test_macros();
	return TEST_DONE();
}
