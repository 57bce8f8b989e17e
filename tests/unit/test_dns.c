/*
 * test_dns.c - the DNS answer parser on hand-built answers (records of
 * each type, TTLs, CNAME chains, compression, negative TTLs, and every
 * kind of garbage: truncation, pointer loops, too many records), the
 * cache (TTL expiry on a pinned clock, negative entries, the LRU bound),
 * the resolver's never-inside-dns_query rule and cancel, dns.servers
 * items and reverse names.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config.h"
#include "dns.h"
#include "dns_answer.h"
#include "loop.h"
#include "testing.h"

/* ---- building messages ------------------------------------------------ */

struct msg {
	uint8_t b[70000];
	size_t n;
};

static void
put8(struct msg *m, unsigned v)
{
	m->b[m->n++] = (uint8_t)v;
}

static void
put16(struct msg *m, unsigned v)
{
	put8(m, v >> 8);
	put8(m, v & 0xFF);
}

static void
put32(struct msg *m, uint32_t v)
{
	put16(m, v >> 16);
	put16(m, v & 0xFFFF);
}

/* "a.b.c" uncompressed; "" is the root. */
static void
putname(struct msg *m, const char *name)
{
	while (*name != '\0') {
		const char *dot = strchr(name, '.');
		size_t l = dot ? (size_t)(dot - name) : strlen(name);

		put8(m, (unsigned)l);
		memcpy(m->b + m->n, name, l);
		m->n += l;
		name += l;
		if (*name == '.')
			name++;
	}
	put8(m, 0);
}

static void
header(struct msg *m, unsigned flags, unsigned an, unsigned ns)
{
	m->n = 0;
	put16(m, 0x1234);
	put16(m, 0x8180 | flags);	/* QR RD RA */
	put16(m, 1);
	put16(m, an);
	put16(m, ns);
	put16(m, 0);
}

static void
question(struct msg *m, const char *name, unsigned type)
{
	putname(m, name);
	put16(m, type);
	put16(m, 1);
}

/* Starts a record; returns where its rdlength goes (rr_end fills it). */
static size_t
rr_begin(struct msg *m, const char *name, unsigned type, uint32_t ttl)
{
	putname(m, name);
	put16(m, type);
	put16(m, 1);
	put32(m, ttl);
	put16(m, 0);
	return m->n - 2;
}

static void
rr_end(struct msg *m, size_t at)
{
	size_t len = m->n - at - 2;

	m->b[at] = (uint8_t)(len >> 8);
	m->b[at + 1] = (uint8_t)len;
}

static void
soa(struct msg *m, const char *zone, uint32_t ttl, uint32_t minimum)
{
	size_t at = rr_begin(m, zone, 6, ttl);

	putname(m, "ns.example.test");
	putname(m, "hostmaster.example.test");
	put32(m, 1);
	put32(m, 3600);
	put32(m, 600);
	put32(m, 86400);
	put32(m, minimum);
	rr_end(m, at);
}

static struct dns_answer
parse(const struct msg *m, enum dns_type t)
{
	struct dns_answer a;

	dns_answer_parse(m->b, m->n, t, &a);
	return a;
}

/* ---- the parser ------------------------------------------------------- */

static void
test_records(void)
{
	struct msg m;
	struct dns_answer a;
	size_t at;

	TEST_CASE("A records, lowest TTL");
	header(&m, 0, 2, 0);
	question(&m, "mx.example.test", DNS_T_A);
	at = rr_begin(&m, "MX.Example.Test", DNS_T_A, 300);
	put32(&m, 0x7F000001);
	rr_end(&m, at);
	at = rr_begin(&m, "mx.example.test", DNS_T_A, 120);
	put32(&m, 0x7F000002);
	rr_end(&m, at);
	a = parse(&m, DNS_T_A);
	CHECK_INT(a.status, DNS_OK);
	CHECK_INT(a.n, 2);
	CHECK_INT(a.ttl, 120);
	CHECK_INT(a.rr[0].ttl, 300);
	CHECK_INT(a.rr[0].family, AF_INET);
	CHECK_INT(a.rr[1].addr[3], 2);
	dns_answer_fini(&a);

	TEST_CASE("AAAA");
	header(&m, 0, 1, 0);
	question(&m, "mx.example.test", DNS_T_AAAA);
	at = rr_begin(&m, "mx.example.test", DNS_T_AAAA, 60);
	for (int i = 0; i < 15; i++)
		put8(&m, 0);
	put8(&m, 1);
	rr_end(&m, at);
	a = parse(&m, DNS_T_AAAA);
	CHECK_INT(a.status, DNS_OK);
	CHECK_INT(a.rr[0].family, AF_INET6);
	CHECK_INT(a.rr[0].addr[15], 1);
	dns_answer_fini(&a);

	TEST_CASE("MX sorted by preference, compressed names, null MX");
	header(&m, 0, 3, 0);
	question(&m, "example.test", DNS_T_MX);	/* qname at offset 12 */
	at = rr_begin(&m, "example.test", DNS_T_MX, 300);
	put16(&m, 20);
	put8(&m, 3);
	memcpy(m.b + m.n, "MX2", 3);
	m.n += 3;
	put16(&m, 0xC000 | 12);		/* mx2.example.test */
	rr_end(&m, at);
	at = rr_begin(&m, "example.test", DNS_T_MX, 300);
	put16(&m, 10);
	putname(&m, "mx1.example.test");
	rr_end(&m, at);
	at = rr_begin(&m, "example.test", DNS_T_MX, 300);
	put16(&m, 0);
	putname(&m, "");
	rr_end(&m, at);
	a = parse(&m, DNS_T_MX);
	CHECK_INT(a.status, DNS_OK);
	CHECK_INT(a.n, 3);
	CHECK_INT(a.rr[0].pref, 0);
	CHECK_STR(a.rr[0].name, "");
	CHECK_INT(a.rr[1].pref, 10);
	CHECK_STR(a.rr[1].name, "mx1.example.test");
	CHECK_STR(a.rr[2].name, "mx2.example.test");
	dns_answer_fini(&a);

	TEST_CASE("TXT joined, PTR");
	header(&m, 0, 1, 0);
	question(&m, "example.test", DNS_T_TXT);
	at = rr_begin(&m, "example.test", DNS_T_TXT, 30);
	put8(&m, 5);
	memcpy(m.b + m.n, "v=spf", 5);
	m.n += 5;
	put8(&m, 0);
	put8(&m, 4);
	memcpy(m.b + m.n, "1 -a", 4);
	m.n += 4;
	rr_end(&m, at);
	a = parse(&m, DNS_T_TXT);
	CHECK_INT(a.status, DNS_OK);
	CHECK_MEM(a.rr[0].txt, a.rr[0].txt_len, "v=spf1 -a");
	dns_answer_fini(&a);
	header(&m, 0, 1, 0);
	question(&m, "1.0.0.127.in-addr.arpa", DNS_T_PTR);
	at = rr_begin(&m, "1.0.0.127.in-addr.arpa", DNS_T_PTR, 30);
	putname(&m, "Host.Example.Test");
	rr_end(&m, at);
	a = parse(&m, DNS_T_PTR);
	CHECK_STR(a.rr[0].name, "host.example.test");
	dns_answer_fini(&a);

	TEST_CASE("CNAME chain followed, TTL the lowest on the way");
	header(&m, 0, 3, 0);
	question(&m, "www.example.test", DNS_T_A);
	at = rr_begin(&m, "www.example.test", 5, 50);
	putname(&m, "a.example.test");
	rr_end(&m, at);
	at = rr_begin(&m, "a.example.test", 5, 500);
	putname(&m, "b.example.test");
	rr_end(&m, at);
	at = rr_begin(&m, "b.example.test", DNS_T_A, 400);
	put32(&m, 0x7F000009);
	rr_end(&m, at);
	a = parse(&m, DNS_T_A);
	CHECK_INT(a.status, DNS_OK);
	CHECK_INT(a.n, 1);
	CHECK_INT(a.ttl, 50);
	dns_answer_fini(&a);

	TEST_CASE("a record of another owner is not taken");
	header(&m, 0, 1, 0);
	question(&m, "www.example.test", DNS_T_A);
	at = rr_begin(&m, "evil.example.test", DNS_T_A, 50);
	put32(&m, 0x7F000009);
	rr_end(&m, at);
	a = parse(&m, DNS_T_A);
	CHECK_INT(a.status, DNS_NODATA);
	dns_answer_fini(&a);

	TEST_CASE("TTL capped; a TTL with the high bit is 0");
	header(&m, 0, 1, 0);
	question(&m, "x.example.test", DNS_T_A);
	at = rr_begin(&m, "x.example.test", DNS_T_A, 999999);
	put32(&m, 1);
	rr_end(&m, at);
	a = parse(&m, DNS_T_A);
	CHECK_INT(a.ttl, DNS_TTL_MAX);
	dns_answer_fini(&a);
	header(&m, 0, 1, 0);
	question(&m, "x.example.test", DNS_T_A);
	at = rr_begin(&m, "x.example.test", DNS_T_A, 0x80000001u);
	put32(&m, 1);
	rr_end(&m, at);
	a = parse(&m, DNS_T_A);
	CHECK_INT(a.ttl, 0);
	dns_answer_fini(&a);

	TEST_CASE("AD bit");
	header(&m, 0x20, 1, 0);
	question(&m, "x.example.test", DNS_T_A);
	at = rr_begin(&m, "x.example.test", DNS_T_A, 5);
	put32(&m, 1);
	rr_end(&m, at);
	a = parse(&m, DNS_T_A);
	CHECK_INT(a.ad, 1);
	dns_answer_fini(&a);
}

static void
test_negative(void)
{
	struct msg m;
	struct dns_answer a;

	TEST_CASE("NXDOMAIN with SOA: min(TTL, MINIMUM)");
	header(&m, 3, 0, 1);
	question(&m, "nope.example.test", DNS_T_A);
	soa(&m, "example.test", 3600, 120);
	a = parse(&m, DNS_T_A);
	CHECK_INT(a.status, DNS_NXDOMAIN);
	CHECK_INT(a.ttl, 120);
	dns_answer_fini(&a);

	TEST_CASE("NODATA with SOA, capped at 3 h");
	header(&m, 0, 0, 1);
	question(&m, "example.test", DNS_T_AAAA);
	soa(&m, "example.test", 99999, 99999);
	a = parse(&m, DNS_T_AAAA);
	CHECK_INT(a.status, DNS_NODATA);
	CHECK_INT(a.ttl, DNS_NEG_TTL_MAX);
	dns_answer_fini(&a);

	TEST_CASE("NXDOMAIN without SOA: not cached");
	header(&m, 3, 0, 0);
	question(&m, "nope.example.test", DNS_T_A);
	a = parse(&m, DNS_T_A);
	CHECK_INT(a.status, DNS_NXDOMAIN);
	CHECK_INT(a.ttl, 0);
	dns_answer_fini(&a);

	TEST_CASE("SERVFAIL, REFUSED, other rcodes, TC: TEMPFAIL");
	header(&m, 2, 0, 0);
	question(&m, "x.example.test", DNS_T_A);
	a = parse(&m, DNS_T_A);
	CHECK_INT(a.status, DNS_TEMPFAIL);
	CHECK_STR(a.err, "SERVFAIL");
	dns_answer_fini(&a);
	header(&m, 5, 0, 0);
	question(&m, "x.example.test", DNS_T_A);
	a = parse(&m, DNS_T_A);
	CHECK_STR(a.err, "REFUSED");
	dns_answer_fini(&a);
	header(&m, 4, 0, 0);
	question(&m, "x.example.test", DNS_T_A);
	a = parse(&m, DNS_T_A);
	CHECK_INT(a.status, DNS_TEMPFAIL);
	dns_answer_fini(&a);
	header(&m, 0x200, 0, 0);
	question(&m, "x.example.test", DNS_T_A);
	a = parse(&m, DNS_T_A);
	CHECK_STR(a.err, "truncated answer");
	dns_answer_fini(&a);
}

static void
expect_tempfail(const struct msg *m, enum dns_type t)
{
	struct dns_answer a = parse(m, t);

	CHECK_INT(a.status, DNS_TEMPFAIL);
	CHECK(a.err != NULL);
	CHECK_INT(a.n, 0);
	dns_answer_fini(&a);
}

static void
test_garbage(void)
{
	struct msg m;
	size_t at;

	TEST_CASE("short, not a response, two questions");
	m.n = 5;
	memset(m.b, 0x81, 5);
	expect_tempfail(&m, DNS_T_A);
	header(&m, 0, 0, 0);
	m.b[2] &= 0x7F;
	question(&m, "x.example.test", DNS_T_A);
	expect_tempfail(&m, DNS_T_A);
	header(&m, 0, 0, 0);
	m.b[5] = 2;
	question(&m, "x.example.test", DNS_T_A);
	expect_tempfail(&m, DNS_T_A);

	TEST_CASE("every truncation of a good answer");
	struct msg good;
	header(&good, 0, 1, 0);
	question(&good, "example.test", DNS_T_MX);
	at = rr_begin(&good, "example.test", DNS_T_MX, 300);
	put16(&good, 10);
	putname(&good, "mx.example.test");
	rr_end(&good, at);
	for (size_t cut = 0; cut < good.n; cut++) {
		memcpy(m.b, good.b, cut);
		m.n = cut;
		expect_tempfail(&m, DNS_T_MX);
	}

	TEST_CASE("a pointer to itself, forward, a loop of two");
	header(&m, 0, 1, 0);
	question(&m, "x.example.test", DNS_T_PTR);
	at = rr_begin(&m, "x.example.test", DNS_T_PTR, 5);
	put16(&m, 0xC000 | (unsigned)m.n);
	rr_end(&m, at);
	expect_tempfail(&m, DNS_T_PTR);
	header(&m, 0, 1, 0);
	question(&m, "x.example.test", DNS_T_PTR);
	at = rr_begin(&m, "x.example.test", DNS_T_PTR, 5);
	put16(&m, 0xC000 | (unsigned)(m.n + 10));
	rr_end(&m, at);
	expect_tempfail(&m, DNS_T_PTR);
	header(&m, 0, 1, 0);
	question(&m, "x.example.test", DNS_T_PTR);
	at = rr_begin(&m, "x.example.test", DNS_T_PTR, 5);
	size_t here = m.n;
	put8(&m, 1);
	put8(&m, 'a');
	put16(&m, 0xC000 | (unsigned)here);	/* "a" then back to "a"... */
	rr_end(&m, at);
	expect_tempfail(&m, DNS_T_PTR);

	TEST_CASE("a name longer than 255 octets");
	header(&m, 0, 1, 0);
	question(&m, "x.example.test", DNS_T_PTR);
	at = rr_begin(&m, "x.example.test", DNS_T_PTR, 5);
	for (int i = 0; i < 5; i++) {
		put8(&m, 63);
		memset(m.b + m.n, 'a', 63);
		m.n += 63;
	}
	put8(&m, 0);
	rr_end(&m, at);
	expect_tempfail(&m, DNS_T_PTR);

	TEST_CASE("wrong A length, TXT string past its rdata");
	header(&m, 0, 1, 0);
	question(&m, "x.example.test", DNS_T_A);
	at = rr_begin(&m, "x.example.test", DNS_T_A, 5);
	put16(&m, 1);
	rr_end(&m, at);
	expect_tempfail(&m, DNS_T_A);
	header(&m, 0, 1, 0);
	question(&m, "x.example.test", DNS_T_TXT);
	at = rr_begin(&m, "x.example.test", DNS_T_TXT, 5);
	put8(&m, 10);
	put8(&m, 'a');
	rr_end(&m, at);
	expect_tempfail(&m, DNS_T_TXT);

	TEST_CASE("a CNAME loop");
	header(&m, 0, 2, 0);
	question(&m, "a.example.test", DNS_T_A);
	at = rr_begin(&m, "a.example.test", 5, 5);
	putname(&m, "b.example.test");
	rr_end(&m, at);
	at = rr_begin(&m, "b.example.test", 5, 5);
	putname(&m, "a.example.test");
	rr_end(&m, at);
	expect_tempfail(&m, DNS_T_A);

	TEST_CASE("answer count larger than the records");
	header(&m, 0, 3, 0);
	question(&m, "x.example.test", DNS_T_A);
	at = rr_begin(&m, "x.example.test", DNS_T_A, 5);
	put32(&m, 1);
	rr_end(&m, at);
	expect_tempfail(&m, DNS_T_A);
}

static void
test_bounds(void)
{
	struct msg m;
	struct dns_answer a;
	size_t at;

	TEST_CASE("more records than kept: the first DNS_ANSWER_MAX_RR");
	header(&m, 0, 100, 0);
	question(&m, "x.example.test", DNS_T_A);
	for (unsigned i = 0; i < 100; i++) {
		at = rr_begin(&m, "x.example.test", DNS_T_A, 5);
		put32(&m, i);
		rr_end(&m, at);
	}
	a = parse(&m, DNS_T_A);
	CHECK_INT(a.status, DNS_OK);
	CHECK_INT(a.n, DNS_ANSWER_MAX_RR);
	CHECK_INT(a.truncated, 1);
	dns_answer_fini(&a);

	TEST_CASE("TXT past the byte bound is dropped");
	header(&m, 0, 2, 0);
	question(&m, "x.example.test", DNS_T_TXT);
	for (int r = 0; r < 2; r++) {
		at = rr_begin(&m, "x.example.test", DNS_T_TXT, 5);
		for (int i = 0; i < 130; i++) {
			put8(&m, 255);
			memset(m.b + m.n, 'a' + r, 255);
			m.n += 255;
		}
		rr_end(&m, at);
	}
	a = parse(&m, DNS_T_TXT);
	CHECK_INT(a.status, DNS_OK);
	CHECK_INT(a.n, 1);
	CHECK_INT(a.rr[0].txt_len, 130 * 255);
	CHECK_INT(a.truncated, 1);
	dns_answer_fini(&a);
}

/* ---- the cache -------------------------------------------------------- */

static struct dns_answer
answer_a(uint32_t ttl, uint8_t last)
{
	struct dns_answer a;

	memset(&a, 0, sizeof(a));
	a.status = DNS_OK;
	a.ttl = ttl;
	a.n = 1;
	a.rr = calloc(1, sizeof(*a.rr));
	a.rr[0].ttl = ttl;
	a.rr[0].family = AF_INET;
	a.rr[0].addr[3] = last;
	return a;
}

static void
test_cache(void)
{
	struct dns_cache *c = dns_cache_new(3);
	struct dns_answer a = answer_a(60, 7), got;

	loop_clock_pin(1000000);
	TEST_CASE("hit with the TTL lowered, expiry");
	dns_cache_put(c, "a.example.test", DNS_T_A, &a);
	CHECK_INT(dns_cache_get(c, "a.example.test", DNS_T_AAAA, &got), 0);
	loop_clock_pin(1000000 + 20000);
	CHECK_INT(dns_cache_get(c, "a.example.test", DNS_T_A, &got), 1);
	CHECK_INT(got.ttl, 40);
	CHECK_INT(got.rr[0].ttl, 40);
	CHECK_INT(got.rr[0].addr[3], 7);
	dns_answer_fini(&got);
	loop_clock_pin(1000000 + 60000);
	CHECK_INT(dns_cache_get(c, "a.example.test", DNS_T_A, &got), 0);

	TEST_CASE("negative entries; TEMPFAIL and TTL 0 not kept");
	struct dns_answer neg = { .status = DNS_NXDOMAIN, .ttl = 30 };
	dns_cache_put(c, "nx.example.test", DNS_T_MX, &neg);
	CHECK_INT(dns_cache_get(c, "nx.example.test", DNS_T_MX, &got), 1);
	CHECK_INT(got.status, DNS_NXDOMAIN);
	dns_answer_fini(&got);
	struct dns_answer tf = { .status = DNS_TEMPFAIL, .ttl = 30, .err = "timeout" };
	dns_cache_put(c, "tf.example.test", DNS_T_A, &tf);
	CHECK_INT(dns_cache_get(c, "tf.example.test", DNS_T_A, &got), 0);
	struct dns_answer zero = { .status = DNS_NODATA, .ttl = 0 };
	dns_cache_put(c, "z.example.test", DNS_T_A, &zero);
	CHECK_INT(dns_cache_get(c, "z.example.test", DNS_T_A, &got), 0);

	TEST_CASE("the bound: least recently used goes first");
	dns_cache_free(&c);
	c = dns_cache_new(3);
	char name[64];
	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "n%d.example.test", i);
		dns_cache_put(c, name, DNS_T_A, &a);
	}
	CHECK_INT(dns_cache_get(c, "n0.example.test", DNS_T_A, &got), 1);	/* n0 used */
	dns_answer_fini(&got);
	dns_cache_put(c, "n3.example.test", DNS_T_A, &a);	/* evicts n1 */
	CHECK_INT(dns_cache_count(c), 3);
	CHECK_INT(dns_cache_get(c, "n1.example.test", DNS_T_A, &got), 0);
	CHECK_INT(dns_cache_get(c, "n0.example.test", DNS_T_A, &got), 1);
	dns_answer_fini(&got);
	CHECK_INT(dns_cache_get(c, "n3.example.test", DNS_T_A, &got), 1);
	dns_answer_fini(&got);

	TEST_CASE("many evictions (index rebuilt), still bounded and right");
	for (int i = 0; i < 5000; i++) {
		snprintf(name, sizeof(name), "m%d.example.test", i);
		dns_cache_put(c, name, DNS_T_A, &a);
		CHECK(dns_cache_get(c, name, DNS_T_A, &got) == 1);
		dns_answer_fini(&got);
	}
	CHECK_INT(dns_cache_count(c), 3);
	CHECK_INT(dns_cache_get(c, "m4999.example.test", DNS_T_A, &got), 1);
	dns_answer_fini(&got);
	CHECK_INT(dns_cache_get(c, "m4996.example.test", DNS_T_A, &got), 0);
	dns_cache_free(&c);

	TEST_CASE("size 0 keeps nothing");
	c = dns_cache_new(0);
	dns_cache_put(c, "a.example.test", DNS_T_A, &a);
	CHECK_INT(dns_cache_get(c, "a.example.test", DNS_T_A, &got), 0);
	dns_cache_free(&c);
	dns_answer_fini(&a);
	loop_clock_pin(0);
}

/* ---- the resolver without the network ---------------------------------- */

struct seen {
	int calls;
	enum dns_status status;
	uint8_t last;
};

static void
on_answer(void *arg, const struct dns_answer *ans)
{
	struct seen *s = arg;

	s->calls++;
	s->status = ans->status;
	s->last = ans->n > 0 ? ans->rr[0].addr[3] : 0;
}

static void
test_resolver(void)
{
	const char *ov[] = { "dns.servers=127.0.0.1:9, [::1]:9", "dns.timeout=1",
			     "dns.attempts=1" };
	struct diag d;

	diag_init(&d);
	struct config *cfg = config_load(NULL, ov, 3, &d);
	CHECK(cfg != NULL);
	diag_fini(&d);
	if (cfg == NULL)
		return;
	struct loop *loop = loop_new();
	struct dns_cache *c = dns_cache_new(10);
	struct dns_resolver *r = dns_resolver_new(loop, cfg, c);
	CHECK(r != NULL);
	struct dns_answer a = answer_a(60, 9);
	dns_cache_put(c, "cached.example.test", DNS_T_A, &a);
	dns_answer_fini(&a);

	TEST_CASE("a cache hit arrives on the next round, not inside dns_query");
	struct seen s1 = { 0 }, s2 = { 0 }, s3 = { 0 };
	dns_query(r, "Cached.Example.Test.", DNS_T_A, on_answer, &s1);
	CHECK_INT(s1.calls, 0);
	TEST_CASE("an invalid name: NXDOMAIN, later");
	dns_query(r, "bad..name", DNS_T_A, on_answer, &s2);
	CHECK_INT(s2.calls, 0);
	TEST_CASE("cancelled before its round: never called");
	struct dns_query *q3 = dns_query(r, "cached.example.test", DNS_T_A, on_answer, &s3);
	dns_cancel(q3);
	for (int i = 0; i < 10 && loop_step(loop) > 0; i++)
		;
	CHECK_INT(s1.calls, 1);
	CHECK_INT(s1.status, DNS_OK);
	CHECK_INT(s1.last, 9);
	CHECK_INT(s2.calls, 1);
	CHECK_INT(s2.status, DNS_NXDOMAIN);
	CHECK_INT(s3.calls, 0);

	TEST_CASE("a query in flight, cancelled, and one left open at free");
	struct seen s4 = { 0 }, s5 = { 0 };
	struct dns_query *q4 = dns_query(r, "x.example.test", DNS_T_MX, on_answer, &s4);
	dns_query(r, "y.example.test", DNS_T_MX, on_answer, &s5);
	dns_cancel(q4);
	const char *ov2[] = { "dns.servers=127.0.0.1:7", "dns.timeout=2" };
	diag_init(&d);
	struct config *cfg2 = config_load(NULL, ov2, 2, &d);
	diag_fini(&d);
	CHECK(cfg2 != NULL);
	CHECK_INT(dns_resolver_set_config(r, cfg2), 0);		/* resends y */
	CHECK_INT(dns_resolver_set_config(r, cfg2), 0);		/* no change */
	dns_resolver_free(&r);
	CHECK_INT(s4.calls, 0);
	CHECK_INT(s5.calls, 0);
	dns_cache_free(&c);
	loop_free(&loop);
	config_unref(&cfg);
	config_unref(&cfg2);
}

static void
test_servers_and_reverse(void)
{
	struct dns_server s;
	char out[128];
	uint8_t v4[4] = { 192, 0, 2, 7 }, v6[16] = { 0x20, 0x01, 0x0d, 0xb8 };

	TEST_CASE("dns.servers items");
	CHECK_INT(dns_server_parse("127.0.0.1", &s), 0);
	CHECK_INT(s.port, 53);
	CHECK_INT(dns_server_parse("127.0.0.1:5353", &s), 0);
	CHECK_INT(s.port, 5353);
	CHECK_INT(dns_server_parse("[::1]:5353", &s), 0);
	CHECK_INT(s.family, AF_INET6);
	CHECK_INT(dns_server_parse("[::1]", &s), 0);
	CHECK_INT(dns_server_parse("2001:db8::1", &s), 0);
	CHECK_INT(dns_server_parse("ns.example.test", &s), -1);
	CHECK_INT(dns_server_parse("127.0.0.1:0", &s), -1);
	CHECK_INT(dns_server_parse("127.0.0.1:70000", &s), -1);
	CHECK_INT(dns_server_parse("[::1]x", &s), -1);
	CHECK_INT(dns_server_parse("1.2.3.4:", &s), -1);

	TEST_CASE("reverse names");
	CHECK_INT(dns_reverse_name(AF_INET, v4, out, sizeof(out)), 0);
	CHECK_STR(out, "7.2.0.192.in-addr.arpa");
	CHECK_INT(dns_reverse_name(AF_INET6, v6, out, sizeof(out)), 0);
	CHECK_STR(out, "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
	CHECK_INT(dns_reverse_name(AF_INET6, v6, out, 20), -1);
	CHECK_INT(dns_reverse_name(AF_INET, v4, out, 10), -1);
}

int
main(void)
{
	test_records();
	test_negative();
	test_garbage();
	test_bounds();
	test_cache();
	test_resolver();
	test_servers_and_reverse();
	return TEST_DONE();
}
