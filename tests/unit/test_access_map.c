/*
 * test_access_map.c - the access map parser and lookup (policy/
 * access_map.c): the first matching line wins across exact keys (the
 * hash) and patterns (the list); address forms; CIDR for IPv4, IPv6 and
 * IPv4-mapped clients; globs and regexes; unknown fields never match;
 * every bad line is one FILE:LINE diagnostic and the map is refused.
 */
#include "access_map.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "testing.h"

static const char map_text[] =
	"# comment\n"
	"\n"
	"From:/^first@/ REJECT regex before the exact key\n"	/* 3 */
	"From:first@example.org OK\n"				/* 4 */
	"From:later@example.org TEMPFAIL\n"			/* 5 */
	"From:*@example.org DISCARD\n"				/* 6 */
	"From:user@ OK\n"					/* 7 */
	"From:dom.example REJECT\n"				/* 8 */
	"From:<> OK\n"						/* 9 */
	"Connect:192.0.2.0/24 REJECT\r\n"			/* 10 */
	"Connect:2001:db8::/32:To:*@example.test OK\n"		/* 11 */
	"Connect:mail.example.net TEMPFAIL\n"			/* 12 */
	"From:a@x.example:To:b@y.example REJECT   pair  \n"	/* 13 */
	"Helo:/^[0-9.]+$/ REJECT\n";				/* 14 */

static unsigned
line_of(const struct access_map *m, unsigned tags, const struct access_subject *s)
{
	const struct access_entry *e = access_map_find(m, tags, s);

	return e != NULL ? access_entry_line(e) : 0;
}

static void
test_lookups(void)
{
	struct diag d;
	struct access_map *m;
	struct sockaddr_in v4 = { .sin_family = AF_INET };
	struct sockaddr_in6 v6 = { .sin6_family = AF_INET6 }, mapped = { .sin6_family = AF_INET6 };
	unsigned from = ACCESS_MASK(ACCESS_TAG_FROM);
	unsigned rcpt = ACCESS_MASK(ACCESS_TAG_TO) | ACCESS_MASK(ACCESS_TAG_CONNECT_TO) |
			ACCESS_MASK(ACCESS_TAG_FROM_TO);

	TEST_CASE("lookups");
	diag_init(&d);
	m = access_map_parse("map", map_text, sizeof(map_text) - 1, &d);
	CHECK(m != NULL);
	CHECK_INT(d.n, 0);
	if (m == NULL)
		goto out;
	CHECK_INT(access_map_count(m), 12);
	struct access_subject s = { .client = "198.51.100.1", .from = "first@example.org" };

	CHECK_INT(line_of(m, from, &s), 3);
	s.from = "LATER@Example.ORG";
	CHECK_INT(line_of(m, from, &s), 5);
	s.from = "other@example.org";
	CHECK_INT(line_of(m, from, &s), 6);
	s.from = "user@anywhere.example";
	CHECK_INT(line_of(m, from, &s), 7);
	s.from = "x@dom.example";
	CHECK_INT(line_of(m, from, &s), 8);
	s.from = "x@sub.dom.example";	/* a domain is not a suffix */
	CHECK_INT(line_of(m, from, &s), 0);
	s.from = "";
	CHECK_INT(line_of(m, from, &s), 9);
	s.from = NULL;			/* before MAIL */
	CHECK_INT(line_of(m, from, &s), 0);
	const struct access_entry *e;

	s.from = "first@example.org";
	e = access_map_find(m, from, &s);
	CHECK_STR(e != NULL ? access_entry_text(e) : "", "regex before the exact key");
	CHECK(e != NULL && access_entry_action(e) == ACCESS_REJECT);

	/* CIDR: IPv4, IPv4-mapped, IPv6 with a combination */
	CHECK_INT(inet_pton(AF_INET, "192.0.2.9", &v4.sin_addr), 1);
	s = (struct access_subject){ .client = "192.0.2.9", .peer = (struct sockaddr *)&v4 };
	CHECK_INT(line_of(m, ACCESS_MASK(ACCESS_TAG_CONNECT), &s), 10);
	CHECK_INT(inet_pton(AF_INET6, "::ffff:192.0.2.200", &mapped.sin6_addr), 1);
	s.peer = (struct sockaddr *)&mapped;
	CHECK_INT(line_of(m, ACCESS_MASK(ACCESS_TAG_CONNECT), &s), 10);
	CHECK_INT(inet_pton(AF_INET6, "2001:db8::25", &v6.sin6_addr), 1);
	s = (struct access_subject){ .client = "2001:db8::25", .peer = (struct sockaddr *)&v6,
				     .rcpt = "x@example.test" };
	CHECK_INT(line_of(m, rcpt, &s), 11);
	s.rcpt = "x@example.org";
	CHECK_INT(line_of(m, rcpt, &s), 0);
	/* a client name matches only when known */
	s = (struct access_subject){ .client = "198.51.100.1" };
	CHECK_INT(line_of(m, ACCESS_MASK(ACCESS_TAG_CONNECT), &s), 0);
	s.name = "Mail.Example.NET";
	CHECK_INT(line_of(m, ACCESS_MASK(ACCESS_TAG_CONNECT), &s), 12);
	/* From:To: pair, text trimmed */
	s = (struct access_subject){ .from = "a@x.example", .rcpt = "b@y.example" };
	e = access_map_find(m, rcpt, &s);
	CHECK_STR(e != NULL ? access_entry_text(e) : "", "pair");
	s.from = "c@x.example";
	CHECK_INT(line_of(m, rcpt, &s), 0);
	/* tags not asked never match */
	s = (struct access_subject){ .helo = "192.0.2.1", .from = "first@example.org" };
	CHECK_INT(line_of(m, ACCESS_MASK(ACCESS_TAG_HELO), &s), 14);
	CHECK_INT(line_of(m, ACCESS_MASK(ACCESS_TAG_TO), &s), 0);
	access_map_free(&m);
out:
	diag_fini(&d);
}

static void
test_errors(void)
{
	static const char bad[] =
		"Connect:192.0.2.0/33 REJECT\n"	/* 1 */
		"From:/(/ REJECT\n"		/* 2 */
		"From:/abc REJECT\n"		/* 3 */
		"Body:x REJECT\n"		/* 4 */
		"From:x@y.example\n"		/* 5 */
		"To:x@y.example:From:z REJECT\n"	/* 6 */
		"From:ok@y.example OK\n"	/* fine */
		"From:OK@Y.example REJECT\n";	/* 8: the same key */
	struct diag d;
	struct access_map *m;

	TEST_CASE("errors");
	diag_init(&d);
	m = access_map_parse("map", bad, sizeof(bad) - 1, &d);
	CHECK(m == NULL);
	CHECK_INT(d.n, 7);
	for (size_t i = 0; i < d.n && i < 7; i++) {
		static const unsigned want[] = { 1, 2, 3, 4, 5, 6, 8 };

		CHECK_INT(d.lines[i], want[i]);
	}
	access_map_free(&m);
	diag_fini(&d);
}

int
main(void)
{
	test_lookups();
	test_errors();
	return TEST_DONE();
}
