/*
 * fuzz_uri_scan.c - libFuzzer target for policy/uri_scan.c, the link
 * extractor of URI block lists.
 *
 * Input: byte 0 = max_domains, byte 1 = the octet bound / 16 (0: 1 MiB),
 * byte 2 = a cut point; the rest is the message. It is scanned whole, in
 * two pieces at the cut, and one octet at a time: all three must find
 * the same domains in the same order, the same counts and bound. Also
 * checked: at most max_domains kept, each a NUL-ended lower-case name
 * with a dot (a domain name or a dotted IPv4 address), no two alike, and
 * no more octets looked at than the bound.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "domain.h"
#include "uri_scan.h"

static struct uri_scan *
run(const uint8_t *msg, size_t n, uint64_t bound, size_t maxd, size_t step, size_t cut)
{
	struct uri_scan *u = uri_scan_new(bound, maxd);

	if (cut > 0 && cut < n) {
		uri_scan_feed(u, msg, cut);
		uri_scan_feed(u, msg + cut, n - cut);
	} else {
		for (size_t i = 0; i < n; i += step)
			uri_scan_feed(u, msg + i, n - i < step ? n - i : step);
	}
	uri_scan_finish(u);
	return u;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct uri_scan *u[3];
	size_t maxd, cut, n;
	uint64_t bound;
	const uint8_t *msg;

	if (size < 3)
		return 0;
	maxd = data[0] % URI_SCAN_DOMAINS_MAX + 1;
	bound = data[1] == 0 ? 1u << 20 : (uint64_t)data[1] * 16;
	msg = data + 3;
	n = size - 3;
	cut = n > 0 ? data[2] % n : 0;
	u[0] = run(msg, n, bound, maxd, n > 0 ? n : 1, 0);
	u[1] = run(msg, n, bound, maxd, 1, cut);
	u[2] = run(msg, n, bound, maxd, 1, 0);
	for (int k = 1; k < 3; k++) {
		check(uri_scan_count(u[k]) == uri_scan_count(u[0]));
		check(uri_scan_dropped(u[k]) == uri_scan_dropped(u[0]));
		check(uri_scan_bounded(u[k]) == uri_scan_bounded(u[0]));
		check(uri_scan_octets(u[k]) == uri_scan_octets(u[0]));
		for (size_t i = 0; i < uri_scan_count(u[0]); i++)
			check(strcmp(uri_scan_get(u[k], i)->name, uri_scan_get(u[0], i)->name) == 0);
	}
	check(uri_scan_count(u[0]) <= maxd);
	check(uri_scan_octets(u[0]) <= bound && uri_scan_octets(u[0]) <= n);
	check(uri_scan_bounded(u[0]) == (n > bound));
	for (size_t i = 0; i < uri_scan_count(u[0]); i++) {
		const struct uri_scan_domain *d = uri_scan_get(u[0], i);
		size_t len = strnlen(d->name, sizeof(d->name));

		check(len > 0 && len < sizeof(d->name) && strchr(d->name, '.') != NULL);
		check(d->is_ip || domain_name_valid(d->name, len));
		for (size_t j = 0; j < len; j++)
			check(!(d->name[j] >= 'A' && d->name[j] <= 'Z'));
		for (size_t j = 0; j < i; j++)
			check(strcmp(uri_scan_get(u[0], j)->name, d->name) != 0 ||
			      uri_scan_get(u[0], j)->is_ip != d->is_ip);
	}
	for (int k = 0; k < 3; k++)
		uri_scan_free(&u[k]);
	return 0;
}
