/*
 * test_cidr.c - unit tests for core/cidr.c: network parsing, list parsing,
 * matching (prefix edges, IPv4-mapped clients), host:port parsing and
 * address formatting.
 */
#include "cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "testing.h"

/* Builds a sockaddr from a numeric address (IPv4 or IPv6). */
static void
make_sa(const char *ip, unsigned port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *sin = (struct sockaddr_in *)(void *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)ss;

	if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
	} else if (inet_pton(AF_INET6, ip, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
	} else {
		fprintf(stderr, "bad test address %s\n", ip);
	}
}

static void
test_parse(void)
{
	static const struct {
		const char *in;
		int ok;
		int family;
		unsigned prefix;
		const char *net;	/* network as inet_ntop shows it */
	} cases[] = {
		{ "192.0.2.0/24", 1, AF_INET, 24, "192.0.2.0" },
		{ "192.0.2.77/24", 1, AF_INET, 24, "192.0.2.0" },	/* host bits cleared */
		{ "192.0.2.77", 1, AF_INET, 32, "192.0.2.77" },
		{ "0.0.0.0/0", 1, AF_INET, 0, "0.0.0.0" },
		{ "10.1.2.3/0", 1, AF_INET, 0, "0.0.0.0" },
		{ "10.255.255.255/9", 1, AF_INET, 9, "10.128.0.0" },
		{ "2001:db8::/32", 1, AF_INET6, 32, "2001:db8::" },
		{ "2001:db8:ffff::1/33", 1, AF_INET6, 33, "2001:db8:8000::" },
		{ "::1", 1, AF_INET6, 128, "::1" },
		{ "::/0", 1, AF_INET6, 0, "::" },
		{ "::ffff:192.0.2.0/120", 1, AF_INET, 24, "192.0.2.0" },	/* mapped -> IPv4 */
		{ "::ffff:192.0.2.1", 1, AF_INET, 32, "192.0.2.1" },
		{ "::ffff:0:0/96", 1, AF_INET, 0, "0.0.0.0" },
		{ "::ffff:0:0/95", 1, AF_INET6, 95, "::fffe:0:0" },
		{ "192.0.2.0/33", 0, 0, 0, NULL },
		{ "2001:db8::/129", 0, 0, 0, NULL },
		{ "192.0.2.0/", 0, 0, 0, NULL },
		{ "192.0.2.0/-1", 0, 0, 0, NULL },
		{ "192.0.2.0/+8", 0, 0, 0, NULL },
		{ "192.0.2.0/ 8", 0, 0, 0, NULL },
		{ "192.0.2.0/8x", 0, 0, 0, NULL },
		{ "192.0.2.0/0008", 0, 0, 0, NULL },
		{ "192.0.2", 0, 0, 0, NULL },
		{ "192.0.2.256", 0, 0, 0, NULL },
		{ "/24", 0, 0, 0, NULL },
		{ "", 0, 0, 0, NULL },
		{ "example.test", 0, 0, 0, NULL },
		{ "1:2:3:4:5:6:7:8:9", 0, 0, 0, NULL },
		{ "aaaa:aaaa:aaaa:aaaa:aaaa:aaaa:aaaa:aaaa:aaaa:aaaa:aaaa:aaaa:aaaa:aaaa/64", 0, 0, 0, NULL },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct cidr c;
		char shown[INET6_ADDRSTRLEN];
		int r;

		TEST_CASE(cases[i].in);
		r = cidr_parse(cases[i].in, &c);
		CHECK_INT(r, cases[i].ok ? 0 : -1);
		if (r < 0 || !cases[i].ok)
			continue;
		CHECK_INT(c.family, cases[i].family);
		CHECK_INT(c.prefix, cases[i].prefix);
		CHECK(inet_ntop(c.family, c.addr, shown, sizeof(shown)) != NULL);
		CHECK_STR(shown, cases[i].net);
	}
}

static void
test_list(void)
{
	static const struct {
		const char *in;
		int ok;
		size_t n;
		const char *bad;
	} cases[] = {
		{ "", 1, 0, "" },
		{ "  ,, ", 1, 0, "" },
		{ "127.0.0.1/32, ::1/128", 1, 2, "" },
		{ "10.0.0.0/8 192.168.0.0/16,172.16.0.0/12", 1, 3, "" },
		{ "10.0.0.0/8, nonsense, 1.2.3.4", 0, 0, "nonsense" },
		{ "10.0.0.0/33", 0, 0, "10.0.0.0/33" },
		{ "1.2.3.4, 0123456789012345678901234567890123456789012345678901234567890123456789", 0, 0,
		  "0123456789012345678" },	/* cut to the buffer */
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct cidr_list l = { NULL, 0 };
		char bad[20];
		int r;

		TEST_CASE(cases[i].in);
		r = cidr_list_parse(cases[i].in, &l, bad, sizeof(bad));
		CHECK_INT(r, cases[i].ok ? 0 : -1);
		CHECK_INT(l.n, cases[i].n);
		CHECK_STR(bad, cases[i].bad);
		if (r == 0) {
			struct cidr_list copy;

			CHECK_INT(cidr_list_copy(&l, &copy), 0);
			CHECK_INT(copy.n, l.n);
			if (l.n > 0)
				CHECK(memcmp(copy.v, l.v, l.n * sizeof(*l.v)) == 0);
			cidr_list_fini(&copy);
		}
		cidr_list_fini(&l);
	}
}

static void
test_match(void)
{
	static const struct {
		const char *nets;
		const char *client;
		int want;
	} cases[] = {
		{ "192.0.2.0/24", "192.0.2.1", 1 },
		{ "192.0.2.0/24", "192.0.2.255", 1 },
		{ "192.0.2.0/24", "192.0.3.0", 0 },
		{ "192.0.2.99/24", "192.0.2.1", 1 },		/* host bits ignored */
		{ "192.0.2.1/32", "192.0.2.1", 1 },
		{ "192.0.2.1/32", "192.0.2.2", 0 },
		{ "192.0.2.1", "192.0.2.1", 1 },
		{ "0.0.0.0/0", "203.0.113.9", 1 },
		{ "0.0.0.0/0", "2001:db8::1", 0 },		/* IPv4 net, IPv6 client */
		{ "0.0.0.0/0", "::ffff:203.0.113.9", 1 },	/* mapped client */
		{ "::/0", "2001:db8::1", 1 },
		{ "::/0", "192.0.2.1", 0 },
		{ "10.0.0.0/9", "10.127.255.255", 1 },
		{ "10.0.0.0/9", "10.128.0.0", 0 },
		{ "2001:db8::/32", "2001:db8:ffff::1", 1 },
		{ "2001:db8::/32", "2001:db9::1", 0 },
		{ "2001:db8::1/128", "2001:db8::1", 1 },
		{ "2001:db8::1/128", "2001:db8::2", 0 },
		{ "2001:db8::/127", "2001:db8::1", 1 },
		{ "2001:db8::/127", "2001:db8::2", 0 },
		{ "127.0.0.1/32, ::1/128", "::ffff:127.0.0.1", 1 },
		{ "127.0.0.1/32, ::1/128", "::1", 1 },
		{ "127.0.0.1/32, ::1/128", "127.0.0.2", 0 },
		{ "::ffff:192.0.2.0/120", "192.0.2.5", 1 },	/* mapped net, IPv4 client */
		{ "::ffff:192.0.2.0/120", "::ffff:192.0.2.5", 1 },
		{ "::ffff:192.0.2.0/120", "192.0.3.5", 0 },
		{ "", "127.0.0.1", 0 },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct cidr_list l = { NULL, 0 };
		struct sockaddr_storage ss;
		char bad[64];

		TEST_CASE(cases[i].client);
		CHECK_INT(cidr_list_parse(cases[i].nets, &l, bad, sizeof(bad)), 0);
		make_sa(cases[i].client, 25, &ss);
		CHECK_INT(cidr_list_match(&l, (struct sockaddr *)&ss), cases[i].want);
		cidr_list_fini(&l);
	}
	TEST_CASE("null sockaddr");
	{
		struct cidr_list l = { NULL, 0 };
		struct sockaddr_storage ss;

		CHECK_INT(cidr_list_parse("0.0.0.0/0", &l, NULL, 0), 0);
		CHECK_INT(cidr_list_match(&l, NULL), 0);
		memset(&ss, 0, sizeof(ss));
		ss.ss_family = AF_UNIX;
		CHECK_INT(cidr_list_match(&l, (struct sockaddr *)&ss), 0);
		cidr_list_fini(&l);
	}
}

static void
test_hostport(void)
{
	static const struct {
		const char *in;
		int ok;
		const char *shown;	/* sockaddr_format with port */
	} cases[] = {
		{ "127.0.0.1:2525", 1, "127.0.0.1:2525" },
		{ "0.0.0.0:25", 1, "0.0.0.0:25" },
		{ "[::1]:2525", 1, "[::1]:2525" },
		{ "*:25", 1, "[::]:25" },
		{ "[::]:587", 1, "[::]:587" },
		{ "[2001:db8::7]:65535", 1, "[2001:db8::7]:65535" },
		{ "192.0.2.1:1", 1, "192.0.2.1:1" },
		{ "192.0.2.1:0", 0, NULL },
		{ "192.0.2.1:65536", 0, NULL },
		{ "192.0.2.1:99999", 0, NULL },
		{ "192.0.2.1:000025", 0, NULL },
		{ "192.0.2.1:", 0, NULL },
		{ "192.0.2.1", 0, NULL },
		{ "192.0.2.1:-1", 0, NULL },
		{ "192.0.2.1:2a", 0, NULL },
		{ ":25", 0, NULL },
		{ "::1:25", 0, NULL },		/* IPv6 needs brackets */
		{ "[::1]25", 0, NULL },
		{ "[::1:25", 0, NULL },
		{ "[127.0.0.1]:25", 0, NULL },	/* brackets are for IPv6 */
		{ "[*]:25", 0, NULL },
		{ "localhost:25", 0, NULL },	/* numeric only */
		{ "*:0", 0, NULL },
		{ "", 0, NULL },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct sockaddr_storage ss;
		socklen_t len = 0;
		char shown[64];
		int r;

		TEST_CASE(cases[i].in);
		r = sockaddr_parse_hostport(cases[i].in, &ss, &len);
		CHECK_INT(r, cases[i].ok ? 0 : -1);
		if (r < 0 || !cases[i].ok)
			continue;
		CHECK_INT(len, ss.ss_family == AF_INET ? sizeof(struct sockaddr_in)
						       : sizeof(struct sockaddr_in6));
		CHECK_INT(sockaddr_format((struct sockaddr *)&ss, shown, sizeof(shown), 1), 0);
		CHECK_STR(shown, cases[i].shown);
	}
}

static void
test_format(void)
{
	static const struct {
		const char *ip;
		int with_port;
		const char *want;
	} cases[] = {
		{ "192.0.2.7", 0, "192.0.2.7" },
		{ "192.0.2.7", 1, "192.0.2.7:25" },
		{ "2001:db8::1", 0, "2001:db8::1" },
		{ "2001:db8::1", 1, "[2001:db8::1]:25" },
		{ "::ffff:192.0.2.7", 0, "192.0.2.7" },
		{ "::ffff:192.0.2.7", 1, "192.0.2.7:25" },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct sockaddr_storage ss;
		char out[64];

		TEST_CASE(cases[i].want);
		make_sa(cases[i].ip, 25, &ss);
		CHECK_INT(sockaddr_format((struct sockaddr *)&ss, out, sizeof(out), cases[i].with_port), 0);
		CHECK_STR(out, cases[i].want);
	}
	TEST_CASE("format too small");
	{
		struct sockaddr_storage ss;
		char out[8];

		make_sa("192.0.2.7", 25, &ss);
		CHECK_INT(sockaddr_format((struct sockaddr *)&ss, out, sizeof(out), 1), -1);
		CHECK_STR(out, "");
		CHECK_INT(sockaddr_format((struct sockaddr *)&ss, out, 0, 1), -1);
		ss.ss_family = AF_UNIX;
		CHECK_INT(sockaddr_format((struct sockaddr *)&ss, out, sizeof(out), 1), -1);
	}
}

int
main(void)
{
	test_parse();
	test_list();
	test_match();
	test_hostport();
	test_format();
	return TEST_DONE();
}
