/*
 * fuzz_proxy_header.c - libFuzzer target for net/net_proxy.c's PROXY
 * protocol header parser, which reads what a proxy (or anyone reaching a
 * proxy_protocol listener from proxy.networks) sends first.
 *
 * Input: the octets as they come off the socket. Checks, besides the
 * sanitizers: a whole header is within the input and its bound (107
 * octets for v1, NET_PROXY_V2_MAX for v2) and parses the same from its
 * own octets alone; MORE is said only within those bounds and stays MORE
 * or becomes a header for every shorter prefix; BAD always says why.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz.h"
#include "net_proxy.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct net_proxy_header h, h2;
	const char *why = NULL;
	enum net_proxy_parse r = net_proxy_parse(data, size, &h, &why);

	check(why != NULL);
	switch (r) {
	case NET_PROXY_OK:
		check(h.len > 0 && h.len <= size);
		check(h.version == 1 ? h.len <= NET_PROXY_V1_MAX : h.len <= NET_PROXY_V2_MAX);
		check(h.local || h.src.ss_family == AF_INET || h.src.ss_family == AF_INET6);
		check(net_proxy_parse(data, h.len, &h2, &why) == NET_PROXY_OK);
		check(h2.len == h.len && h2.local == h.local &&
		      memcmp(&h2.src, &h.src, sizeof(h.src)) == 0);
		/* Every strict prefix of a header is MORE. */
		check(net_proxy_parse(data, h.len - 1, &h2, &why) == NET_PROXY_MORE);
		break;
	case NET_PROXY_MORE:
		check(size < NET_PROXY_V2_MAX);
		if (size > 0)
			check(net_proxy_parse(data, size - 1, &h2, &why) == NET_PROXY_MORE);
		break;
	case NET_PROXY_BAD:
		check(why[0] != '\0');
		break;
	}
	return 0;
}
