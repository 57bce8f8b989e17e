/*
 * test_net_proxy.c - unit tests for net/net_proxy.c's parser: v1 and v2
 * headers with IPv4 and IPv6 sources, LOCAL/UNKNOWN/UNSPEC keeping the
 * connection's address, every prefix of a header being MORE, and the
 * malformed and over-long headers it must refuse.
 */
#include "net_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "testing.h"

static const uint8_t sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
				 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

static const char *
src_text(const struct net_proxy_header *h, char *out, size_t n, unsigned *port)
{
	if (h->src.ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)&h->src;
		*port = ntohs(s->sin_port);
		return inet_ntop(AF_INET, &s->sin_addr, out, (socklen_t)n);
	}
	const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&h->src;
	*port = ntohs(s->sin6_port);
	return inet_ntop(AF_INET6, &s->sin6_addr, out, (socklen_t)n);
}

/* Every strict prefix of a good header must be MORE. */
static void
check_prefixes(const uint8_t *p, size_t n)
{
	struct net_proxy_header h;
	const char *why;

	for (size_t i = 0; i < n; i++)
		CHECK_INT(net_proxy_parse(p, i, &h, &why), NET_PROXY_MORE);
}

static void
test_v1(void)
{
	struct net_proxy_header h;
	const char *why;
	char text[64];
	unsigned port = 0;
	static const char v4[] = "PROXY TCP4 192.0.2.7 127.0.0.1 40000 25\r\nEHLO x\r\n";
	static const char v6[] = "PROXY TCP6 2001:db8::7 ::1 65535 25\r\n";
	static const char unk[] = "PROXY UNKNOWN ffff::1 ::1 1 2\r\n";

	TEST_CASE("v1 TCP4: the header's length and source, not the bytes after it");
	CHECK_INT(net_proxy_parse((const uint8_t *)v4, sizeof(v4) - 1, &h, &why), NET_PROXY_OK);
	CHECK_INT(h.len, strlen("PROXY TCP4 192.0.2.7 127.0.0.1 40000 25\r\n"));
	CHECK_INT(h.version, 1);
	CHECK_INT(h.local, 0);
	CHECK_STR(src_text(&h, text, sizeof(text), &port), "192.0.2.7");
	CHECK_INT(port, 40000);
	check_prefixes((const uint8_t *)v4, h.len);

	TEST_CASE("v1 TCP6");
	CHECK_INT(net_proxy_parse((const uint8_t *)v6, sizeof(v6) - 1, &h, &why), NET_PROXY_OK);
	CHECK_STR(src_text(&h, text, sizeof(text), &port), "2001:db8::7");
	CHECK_INT(port, 65535);

	TEST_CASE("v1 UNKNOWN keeps the connection's address");
	CHECK_INT(net_proxy_parse((const uint8_t *)unk, sizeof(unk) - 1, &h, &why), NET_PROXY_OK);
	CHECK_INT(h.local, 1);
	CHECK_INT(h.len, sizeof(unk) - 1);

	TEST_CASE("v1 malformed");
	static const char *bad[] = {
		"EHLO client.example\r\n",
		"PROXY TCP4 192.0.2.7 127.0.0.1 40000\r\n",
		"PROXY TCP4 192.0.2.7 127.0.0.1 40000 25 extra\r\n",
		"PROXY TCP4 192.0.2.7 127.0.0.1 40000 25 \r\n",
		"PROXY TCP4  192.0.2.7 127.0.0.1 40000 25\r\n",
		"PROXY TCP4 2001:db8::7 127.0.0.1 40000 25\r\n",
		"PROXY TCP6 192.0.2.7 ::1 40000 25\r\n",
		"PROXY TCP4 192.0.2.7 127.0.0.1 65536 25\r\n",
		"PROXY TCP4 192.0.2.7 127.0.0.1 040000 25\r\n",
		"PROXY TCP4 192.0.2.7 127.0.0.1 4x 25\r\n",
		"PROXY UDP4 192.0.2.7 127.0.0.1 40000 25\r\n",
		"PROXY TCP4 192.0.2.7 127.0.0.1 40000 25\n",
		"PROXY TCP4 192.0.2.7 127.0.0.1 40000 25\rX\n",
		"PROXY TCP4 192.0.2.7\t127.0.0.1 40000 25\r\n",
		"PROXY \r\n",
		"proxy TCP4 192.0.2.7 127.0.0.1 40000 25\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_INT(net_proxy_parse((const uint8_t *)bad[i], strlen(bad[i]), &h, &why),
			  NET_PROXY_BAD);
		CHECK(why != NULL && why[0] != '\0');
	}

	TEST_CASE("v1 longer than 107 octets without its end");
	uint8_t longv1[200];
	memcpy(longv1, "PROXY UNKNOWN ", 14);
	memset(longv1 + 14, 'a', sizeof(longv1) - 14);
	CHECK_INT(net_proxy_parse(longv1, 106, &h, &why), NET_PROXY_MORE);
	CHECK_INT(net_proxy_parse(longv1, 107, &h, &why), NET_PROXY_BAD);
	CHECK_INT(net_proxy_parse(longv1, sizeof(longv1), &h, &why), NET_PROXY_BAD);
	longv1[105] = '\r';
	longv1[106] = '\n';
	CHECK_INT(net_proxy_parse(longv1, sizeof(longv1), &h, &why), NET_PROXY_OK);
	CHECK_INT(h.len, 107);
}

/* A v2 header: cmd (0 LOCAL, 1 PROXY), fam, addresses, then tlv octets. */
static size_t
v2(uint8_t *out, unsigned cmd, uint8_t fam, const uint8_t *addr, size_t alen, size_t tlv)
{
	size_t len = alen + tlv;

	memcpy(out, sig, 12);
	out[12] = (uint8_t)(0x20 | cmd);
	out[13] = fam;
	out[14] = (uint8_t)(len >> 8);
	out[15] = (uint8_t)len;
	memcpy(out + 16, addr, alen);
	memset(out + 16 + alen, 0x04, tlv);
	return 16 + len;
}

static void
test_v2(void)
{
	struct net_proxy_header h;
	const char *why;
	char text[64];
	unsigned port = 0;
	uint8_t p[2048];
	uint8_t a4[12] = { 198, 51, 100, 9, 127, 0, 0, 1, 0x9c, 0x40, 0, 25 };
	uint8_t a6[36] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 9, [31] = 1, [32] = 0x30, [33] = 0x39,
			   [35] = 25 };
	size_t n;

	TEST_CASE("v2 PROXY TCP4 with TLVs after the addresses");
	n = v2(p, 1, 0x11, a4, sizeof(a4), 20);
	memcpy(p + n, "EHLO", 4);
	CHECK_INT(net_proxy_parse(p, n + 4, &h, &why), NET_PROXY_OK);
	CHECK_INT(h.len, n);
	CHECK_INT(h.version, 2);
	CHECK_INT(h.local, 0);
	CHECK_STR(src_text(&h, text, sizeof(text), &port), "198.51.100.9");
	CHECK_INT(port, 40000);
	check_prefixes(p, n);

	TEST_CASE("v2 PROXY TCP6");
	n = v2(p, 1, 0x21, a6, sizeof(a6), 0);
	CHECK_INT(net_proxy_parse(p, n, &h, &why), NET_PROXY_OK);
	CHECK_STR(src_text(&h, text, sizeof(text), &port), "2001:db8::9");
	CHECK_INT(port, 12345);

	TEST_CASE("v2 LOCAL, UNSPEC and UNIX keep the connection's address");
	n = v2(p, 0, 0x11, a4, sizeof(a4), 0);
	CHECK_INT(net_proxy_parse(p, n, &h, &why), NET_PROXY_OK);
	CHECK_INT(h.local, 1);
	n = v2(p, 0, 0x00, a4, 0, 0);
	CHECK_INT(net_proxy_parse(p, n, &h, &why), NET_PROXY_OK);
	CHECK_INT(h.local, 1);
	CHECK_INT(h.len, 16);
	n = v2(p, 1, 0x00, a4, 0, 0);
	CHECK_INT(net_proxy_parse(p, n, &h, &why), NET_PROXY_OK);
	CHECK_INT(h.local, 1);
	n = v2(p, 1, 0x31, a4, 0, 216);
	CHECK_INT(net_proxy_parse(p, n, &h, &why), NET_PROXY_OK);
	CHECK_INT(h.local, 1);

	TEST_CASE("v2 malformed");
	n = v2(p, 1, 0x11, a4, 8, 0);		/* address block too short */
	CHECK_INT(net_proxy_parse(p, n, &h, &why), NET_PROXY_BAD);
	n = v2(p, 1, 0x12, a4, sizeof(a4), 0);	/* UDP */
	CHECK_INT(net_proxy_parse(p, n, &h, &why), NET_PROXY_BAD);
	n = v2(p, 2, 0x11, a4, sizeof(a4), 0);	/* command 2 */
	CHECK_INT(net_proxy_parse(p, n, &h, &why), NET_PROXY_BAD);
	n = v2(p, 1, 0x11, a4, sizeof(a4), 0);
	p[12] = 0x11;				/* version 1 */
	CHECK_INT(net_proxy_parse(p, n, &h, &why), NET_PROXY_BAD);
	n = v2(p, 1, 0x11, a4, sizeof(a4), 0);
	p[7] = 'X';				/* signature */
	CHECK_INT(net_proxy_parse(p, n, &h, &why), NET_PROXY_BAD);

	TEST_CASE("v2 longer than our bound is refused from its first 16 octets");
	n = v2(p, 1, 0x11, a4, sizeof(a4), NET_PROXY_V2_MAX - 16 - sizeof(a4));
	CHECK_INT(n, NET_PROXY_V2_MAX);
	CHECK_INT(net_proxy_parse(p, n, &h, &why), NET_PROXY_OK);
	n = v2(p, 1, 0x11, a4, sizeof(a4), NET_PROXY_V2_MAX - 15 - sizeof(a4));
	CHECK_INT(net_proxy_parse(p, 16, &h, &why), NET_PROXY_BAD);
}

int
main(void)
{
	test_v1();
	test_v2();
	return TEST_DONE();
}
