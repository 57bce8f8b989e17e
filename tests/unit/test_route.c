/*
 * test_route.c - unit tests for config/config_route.c and the outbound
 * parts of the loader: the via parser (every form and every error),
 * config_route_for's precedence, auth files (format and permissions),
 * the load errors of [route.NAME] with their lines, the durations list
 * type (outbound.retry_schedule) and config_is_own_listener.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testing.h"

static char tmpdir[] = "/tmp/test_route.XXXXXX";

static const char *
write_file(const char *name, const char *text, int mode)
{
	static char path[512];
	FILE *f;

	if (snprintf(path, sizeof(path), "%s/%s", tmpdir, name) >= (int)sizeof(path))
		abort();
	f = fopen(path, "wb");
	if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0 || chmod(path, (mode_t)mode) != 0)
		abort();
	return path;
}

#define HEAD "[local]\ndomains = example.test\n[listen.mx]\naddress = 127.0.0.1:2525\nrole = mx\n"

/* Loads HEAD + body; on errors returns NULL with the first in err. */
static struct config *
load(const char *body, char *err, size_t errlen)
{
	char text[4096];
	struct diag d;
	struct config *cfg;

	snprintf(text, sizeof(text), "%s%s", HEAD, body);
	diag_init(&d);
	cfg = config_load(write_file("t.conf", text, 0600), NULL, 0, &d);
	err[0] = '\0';
	if (d.n > 0) {
		const char *m = d.msgs[0];

		/* "DIR/t.conf:LINE: msg" -> "t.conf:LINE: msg" */
		if (strncmp(m, tmpdir, strlen(tmpdir)) == 0)
			m += strlen(tmpdir) + 1;
		snprintf(err, errlen, "%s", m);
	}
	diag_fini(&d);
	return cfg;
}

static void
test_via(void)
{
	struct config_route r;
	char err[256];

	memset(&r, 0, sizeof(r));
	TEST_CASE("via mx, refuse");
	CHECK_INT(config_route_parse_via(&r, "mx", err, sizeof(err)), 0);
	CHECK_INT(r.via, ROUTE_VIA_MX);
	CHECK_INT(config_route_parse_via(&r, "refuse", err, sizeof(err)), 0);
	CHECK_INT(r.via, ROUTE_VIA_REFUSE);
	CHECK_INT(r.nhosts, 0);

	TEST_CASE("via hosts, every form");
	CHECK_INT(config_route_parse_via(&r,
		"Relay.Example.NET, relay2.example.net:2525 [smart.example.net]:587,"
		"[smart2.example.net.], [192.0.2.1]:25, [IPv6:2001:db8::1]:26, [::1], [127.0.0.1]",
		err, sizeof(err)), 0);
	CHECK_INT(r.via, ROUTE_VIA_HOSTS);
	CHECK_INT(r.nhosts, 8);
	if (r.nhosts == 8) {
		CHECK_STR(r.hosts[0].name, "relay.example.net");
		CHECK_INT(r.hosts[0].port, 0);
		CHECK_INT(r.hosts[0].mx_lookup, 1);
		CHECK_INT(r.hosts[0].is_literal_ip, 0);
		CHECK_STR(r.hosts[1].name, "relay2.example.net");
		CHECK_INT(r.hosts[1].port, 2525);
		CHECK_INT(r.hosts[1].mx_lookup, 1);
		CHECK_STR(r.hosts[2].name, "smart.example.net");
		CHECK_INT(r.hosts[2].port, 587);
		CHECK_INT(r.hosts[2].mx_lookup, 0);
		CHECK_INT(r.hosts[2].is_literal_ip, 0);
		CHECK_STR(r.hosts[3].name, "smart2.example.net");
		CHECK_STR(r.hosts[4].name, "192.0.2.1");
		CHECK_INT(r.hosts[4].is_literal_ip, 1);
		CHECK_INT(r.hosts[4].mx_lookup, 0);
		CHECK_INT(r.hosts[4].port, 25);
		CHECK_INT(r.hosts[4].addr.ss_family, AF_INET);
		CHECK_INT(r.hosts[4].addrlen, sizeof(struct sockaddr_in));
		CHECK_STR(r.hosts[5].name, "2001:db8::1");
		CHECK_INT(r.hosts[5].is_literal_ip, 1);
		CHECK_INT(r.hosts[5].port, 26);
		CHECK_INT(r.hosts[5].addr.ss_family, AF_INET6);
		CHECK_INT(r.hosts[6].addr.ss_family, AF_INET6);
		CHECK_INT(r.hosts[7].addr.ss_family, AF_INET);
		CHECK(((struct sockaddr_in *)&r.hosts[7].addr)->sin_addr.s_addr == htonl(0x7f000001));
	}

	static const struct {
		const char *v, *err;
	} bad[] = {
		{ "", "empty" },
		{ " , ", "empty" },
		{ "mx, relay.example.net", "mx stands alone" },
		{ "relay.example.net refuse", "refuse stands alone" },
		{ "192.0.2.1", "an address has no MX; write [192.0.2.1]" },
		{ "2001:db8::1", "write an IPv6 address as [IPv6:address]:port" },
		{ "[192.0.2.1", "has no closing ']'" },
		{ "[192.0.2.1]:0", "bad port" },
		{ "[192.0.2.1]:65536", "bad port" },
		{ "relay.example.net:", "bad port" },
		{ "relay.example.net:x", "bad port" },
		{ "[192.0.2.1]x", "bad port" },
		{ "[IPv6:192.0.2.1]", "is not an IPv6 address" },
		{ "[]:25", "no host" },
		{ "bad_host.example", "is not a host name" },
		{ "-x.example", "is not a host name" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		TEST_CASE(bad[i].v);
		err[0] = '\0';
		CHECK_INT(config_route_parse_via(&r, bad[i].v, err, sizeof(err)), -1);
		CHECK(strstr(err, bad[i].err) != NULL);
		CHECK_INT(r.nhosts, 8);		/* the old value stays */
	}
	TEST_CASE("33 hosts");
	{
		char many[33 * 12 + 1] = "";

		for (int i = 0; i < 33; i++)
			strcat(many, "h.example, ");
		CHECK_INT(config_route_parse_via(&r, many, err, sizeof(err)), -1);
		CHECK(strstr(err, "more than 32 hosts") != NULL);
	}
	r.name = strdup("x");
	config_route_fini(&r);
	CHECK(r.hosts == NULL && r.name == NULL);
}

static void
test_lookup(void)
{
	char err[512];
	const char *entry;
	struct config *cfg;

	TEST_CASE("precedence");
	cfg = load("[route.star]\ndomains = *\nvia = [relay.example.net]\n"
		   "[route.org]\ndomains = .org\n"
		   "[route.exorg]\ndomains = example.org, .deep.a.example.org\nvia = refuse\n"
		   "[route.sub]\ndomains = .EXAMPLE.org.\ntls = none\nrate = 7\n",
		   err, sizeof(err));
	CHECK_STR(err, "");
	if (cfg == NULL)
		return;
	CHECK_STR(config_route_for(cfg, "example.org")->name, "exorg");
	CHECK_STR(config_route_for(cfg, "EXAMPLE.ORG.")->name, "exorg");
	CHECK_STR(config_route_for(cfg, "a.example.org")->name, "sub");
	CHECK_STR(config_route_for(cfg, "b.a.example.org")->name, "sub");
	CHECK_STR(config_route_match(cfg, "x.deep.a.example.org", &entry)->name, "exorg");
	CHECK_STR(entry, ".deep.a.example.org");
	CHECK_STR(config_route_for(cfg, "deep.a.example.org")->name, "sub");
	CHECK_STR(config_route_for(cfg, "other.org")->name, "org");
	CHECK_STR(config_route_for(cfg, "org")->name, "star");
	CHECK_STR(config_route_match(cfg, "example.net", &entry)->name, "star");
	CHECK_STR(entry, "*");
	CHECK_STR(config_route_for(cfg, "")->name, "star");
	CHECK_INT(config_route_for(cfg, "a.example.org")->tls, ROUTE_TLS_NONE);
	CHECK_INT(config_route_for(cfg, "a.example.org")->rate_per_min, 7);
	CHECK_INT(config_route_for(cfg, "other.org")->tls, ROUTE_TLS_MAY);
	CHECK_INT(config_route_for(cfg, "other.org")->via, ROUTE_VIA_MX);
	config_unref(&cfg);

	TEST_CASE("no star: the built-in default");
	cfg = load("[route.org]\ndomains = example.org\nvia = [192.0.2.1]:2525\n", err, sizeof(err));
	CHECK_STR(err, "");
	if (cfg == NULL)
		return;
	CHECK_STR(config_route_match(cfg, "example.net", &entry)->name, "(default)");
	CHECK_STR(entry, "");
	CHECK_INT(config_route_for(cfg, "example.net")->via, ROUTE_VIA_MX);
	CHECK_INT(config_route_for(cfg, "example.net")->tls, ROUTE_TLS_MAY);
	CHECK(config_route_for(cfg, "example.net")->auth_user == NULL);
	CHECK_INT(config_route_for(cfg, "example.org")->hosts[0].port, 2525);
	config_unref(&cfg);

	TEST_CASE("no routes at all");
	cfg = load("", err, sizeof(err));
	if (cfg != NULL) {
		CHECK_STR(config_route_for(cfg, "example.org")->name, "(default)");
		CHECK_INT(cfg->nroutes, 0);
		config_unref(&cfg);
	}
}

static void
test_errors(void)
{
	static const struct {
		const char *body, *err;
	} bad[] = {
		{ "[route.a]\nvia = mx\n", "t.conf:6: route.a: missing domains" },
		{ "[route.a]\ndomains = x.example\ncolour = red\n",
		  "t.conf:8: unknown option route.a.colour" },
		{ "[route.a]\ndomains = x.example\nvia = 192.0.2.1\n",
		  "t.conf:8: route.a.via: \"192.0.2.1\": an address has no MX" },
		{ "[route.a]\ndomains = x.example\ntls = always\n",
		  "t.conf:8: route.a.tls: \"always\" is not none, may, encrypt or verify" },
		{ "[route.a]\ndomains = x.example\nrate = fast\n", "t.conf:8: route.a.rate:" },
		{ "[route.a]\ndomains = x.example\nrate = 1000001\n", "t.conf:8: route.a.rate:" },
		{ "[route.a]\ndomains = x.example\n[route.b]\ndomains = y.example, x.example\n",
		  "t.conf:9: route.b.domains: x.example is already in route.a (line 7)" },
		{ "[route.a]\ndomains = *\n[route.b]\ndomains = *\n",
		  "t.conf:9: route.b.domains: * is already in route.a (line 7)" },
		{ "[route.a]\ndomains = x.example, X.example.\n",
		  "t.conf:7: route.a.domains: x.example is given twice" },
		{ "[route.a]\ndomains = x.example\ndomains = y.example\n",
		  "t.conf:8: duplicate option route.a.domains (already set at line 7)" },
		{ "[route.a]\ndomains = ..example\n", "t.conf:7: route.a.domains: \"..example\" is not a domain" },
		{ "[route.a]\ndomains = .\n", "t.conf:7: route.a.domains: \".\" is not a domain" },
		{ "[route.a]\ndomains = ,\n", "t.conf:7: route.a.domains: no domain given" },
		{ "[route.a]\ndomains = example.test\n",
		  "t.conf:7: route.a.domains: example.test is in local.domains" },
		{ "[route.a b]\n", "t.conf:6: bad route name \"a b\"" },
		{ "[route]\n", "t.conf:6: unknown section [route] (routes are [route.NAME])" },
		{ "[route.a]\ndomains = x.example\nauth_file = missing.auth\nvia = [h.example]\n",
		  "t.conf:8: route.a.auth_file: cannot open" },
		{ "[route.a]\ndomains = x.example\nauth_file = ok.auth\n",
		  "t.conf:8: route.a.auth_file: AUTH is for routes with via = hosts" },
		{ "[route.a]\ndomains = x.example\nauth_file = ok.auth\nvia = [h.example]\ntls = none\n",
		  "t.conf:8: route.a.auth_file: AUTH needs tls = may, encrypt or verify" },
		{ "[route.a]\ndomains = x.example\nauth_file = open.auth\nvia = [h.example]\n",
		  "t.conf:8: route.a.auth_file: " },
		{ "[route.a]\ndomains = x.example\nauth_file = two.auth\nvia = [h.example]\n",
		  ":3: a second credentials line" },
		{ "[route.a]\ndomains = x.example\nauth_file = nocolon.auth\nvia = [h.example]\n",
		  ":1: expected \"user:password\"" },
		{ "[route.a]\ndomains = x.example\nauth_file = empty.auth\nvia = [h.example]\n",
		  "has no \"user:password\" line" },
		{ "[route.a]\ndomains = x.example\ntls = verify\ntls_ca_file = nothere.pem\n",
		  "t.conf:9: route.a.tls_ca_file: cannot read" },
		{ "[outbound]\nretry_schedule = 5m, soon\n",
		  "t.conf:7: outbound.retry_schedule: \"soon\" is not a duration" },
		{ "[outbound]\nretry_schedule = 5m, 0\n",
		  "t.conf:7: outbound.retry_schedule: 0 is out of range" },
		{ "[outbound]\nretry_schedule = ,\n", "t.conf:7: outbound.retry_schedule: no duration given" },
		{ "[outbound]\naddress_preference = ipv5\n",
		  "t.conf:7: outbound.address_preference: \"ipv5\" is not ipv6, ipv4 or any" },
		{ "[outbound]\ndestination_key = mx\n",
		  "t.conf:7: outbound.destination_key: \"mx\" is not domain or mx_domain" },
		{ "[outbound]\nbind_address = ::1\n", "t.conf:7: outbound.bind_address: \"::1\" is not an IPv4" },
		{ "[outbound]\nbind_address6 = 127.0.0.1\n", "t.conf:7: outbound.bind_address6:" },
		{ "[outbound]\nhelo_name = not a name\n", "t.conf:7: outbound.helo_name:" },
	};
	char err[512];

	write_file("ok.auth", "user:pass\n", 0600);
	write_file("open.auth", "user:pass\n", 0604);
	write_file("two.auth", "user:pass\n\nuser2:pass2\n", 0600);
	write_file("nocolon.auth", "user pass\n", 0600);
	write_file("empty.auth", "# nothing\n\n", 0600);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct config *cfg;

		TEST_CASE(bad[i].body);
		cfg = load(bad[i].body, err, sizeof(err));
		CHECK(cfg == NULL);
		config_unref(&cfg);
		if (strstr(err, bad[i].err) == NULL)
			fprintf(stderr, "got: %s\n", err);
		CHECK(strstr(err, bad[i].err) != NULL);
		CHECK(strstr(err, "pass") == NULL || strstr(err, "password") != NULL);
	}
}

static void
test_auth_and_options(void)
{
	char err[512];
	struct config *cfg;
	const struct config_route *r;

	TEST_CASE("auth file read");
	write_file("s.auth", "# smart host\r\n\r\nalice@example.test:p:a ss#\r\n", 0640);
	cfg = load("[route.s]\ndomains = *\nvia = [smart.example]:587\ntls = encrypt\n"
		   "auth_file = s.auth\n[outbound]\nretry_schedule = 1s 2s,3m, 1h\nport = 2526\n",
		   err, sizeof(err));
	CHECK_STR(err, "");
	if (cfg == NULL)
		return;
	r = config_route_for(cfg, "example.net");
	CHECK_STR(r->auth_user, "alice@example.test");
	CHECK_STR(r->auth_pass, "p:a ss#");
	CHECK_INT(r->tls, ROUTE_TLS_ENCRYPT);
	CHECK_INT(cfg->outbound_retry_schedule.n, 4);
	if (cfg->outbound_retry_schedule.n == 4) {
		CHECK_INT(cfg->outbound_retry_schedule.v[0], 1);
		CHECK_INT(cfg->outbound_retry_schedule.v[2], 180);
		CHECK_INT(cfg->outbound_retry_schedule.v[3], 3600);
	}
	CHECK_INT(cfg->outbound_port, 2526);
	config_unref(&cfg);

	TEST_CASE("defaults");
	cfg = load("", err, sizeof(err));
	if (cfg == NULL)
		return;
	CHECK_INT(cfg->outbound_retry_schedule.n, 7);
	if (cfg->outbound_retry_schedule.n == 7) {
		CHECK_INT(cfg->outbound_retry_schedule.v[0], 300);
		CHECK_INT(cfg->outbound_retry_schedule.v[6], 14400);
	}
	CHECK_INT(cfg->outbound_port, 25);
	CHECK_INT(cfg->outbound_allow_loopback, 0);
	CHECK_STR(cfg->outbound_destination_key, "mx_domain");
	CHECK_STR(cfg->outbound_address_preference, "ipv6");
	CHECK_INT(cfg->outbound_recipient_limit, 50);
	CHECK_INT(cfg->outbound_destination_concurrency, 20);
	CHECK_INT(cfg->outbound_data_done_timeout, 600);
	config_unref(&cfg);

	TEST_CASE("-o creates a route");
	{
		const char *ov[] = { "route.x.domains=example.net", "route.x.via=[192.0.2.9]:2525" };
		struct diag d;

		diag_init(&d);
		cfg = config_load(NULL, ov, 2, &d);
		CHECK_INT(d.n, 0);
		diag_fini(&d);
		if (cfg != NULL) {
			r = config_route_for(cfg, "example.net");
			CHECK_STR(r->name, "x");
			CHECK_INT(r->nhosts, 1);
			config_unref(&cfg);
		}
	}
}

static struct sockaddr_storage
sa(const char *addr, int port)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(addr, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1)
			abort();
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, addr, &s4->sin_addr) != 1)
			abort();
	}
	return ss;
}

/* config_is_own_listener for address a, port p. */
static int
own(const struct config *cfg, const char *a, int p)
{
	struct sockaddr_storage s = sa(a, p);

	return config_is_own_listener(cfg, (struct sockaddr *)&s, sizeof(s));
}

static void
test_own_listener(void)
{
	char err[512];
	struct config *cfg;

	TEST_CASE("own listeners");
	cfg = load("[listen.any4]\naddress = 0.0.0.0:2600\nrole = mx\n"
		   "[listen.any6]\naddress = *:2601\nrole = mx\n"
		   "[listen.one6]\naddress = [::1]:2602\nrole = mx\n", err, sizeof(err));
	CHECK_STR(err, "");
	if (cfg == NULL)
		return;
	CHECK_INT(own(cfg, "127.0.0.1", 2525), 1);		/* exact */
	CHECK_INT(own(cfg, "::ffff:127.0.0.1", 2525), 1);	/* mapped */
	CHECK_INT(own(cfg, "127.0.0.2", 2525), 0);		/* other address */
	CHECK_INT(own(cfg, "127.0.0.1", 2526), 0);		/* other port */
	CHECK_INT(own(cfg, "127.0.0.5", 2600), 1);		/* 0.0.0.0: loopback */
	CHECK_INT(own(cfg, "192.0.2.77", 2600), 0);		/* not ours */
	CHECK_INT(own(cfg, "::1", 2600), 0);			/* 0.0.0.0 is IPv4 only */
	CHECK_INT(own(cfg, "::1", 2601), 1);			/* :: loopback */
	CHECK_INT(own(cfg, "127.0.0.1", 2601), 0);		/* :: is IPv6 only */
	CHECK_INT(own(cfg, "2001:db8::77", 2601), 0);
	CHECK_INT(own(cfg, "::1", 2602), 1);
	CHECK_INT(own(cfg, "::2", 2602), 0);
	/* an interface address of this host counts for a wildcard */
	for (size_t i = 0; i < cfg->nlocal_addrs; i++) {
		struct sockaddr_in6 s6;

		memset(&s6, 0, sizeof(s6));
		s6.sin6_family = AF_INET6;
		s6.sin6_addr = cfg->local_addrs[i];
		s6.sin6_port = htons(IN6_IS_ADDR_V4MAPPED(&s6.sin6_addr) ? 2600 : 2601);
		CHECK_INT(config_is_own_listener(cfg, (struct sockaddr *)&s6, sizeof(s6)), 1);
	}
	CHECK(cfg->nlocal_addrs > 0);
	config_unref(&cfg);
}

int
main(void)
{
	if (mkdtemp(tmpdir) == NULL)
		return 2;
	test_via();
	test_lookup();
	test_errors();
	test_auth_and_options();
	test_own_listener();
	{
		char cmd[600];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", tmpdir);
	}
	return TEST_DONE();
}
