/*
 * uri_scan.h - the domains of the links in a message, for URI block
 * lists (check "uribl", policy_dnsl.c): a streaming, bounded extractor.
 *
 * Pure: no I/O, no allocation after uri_scan_new. Fed the message bytes
 * as they arrive (header and body, in any split), it follows the MIME
 * structure (Content-Type with its boundary, per part Content-Transfer-
 * Encoding, message/rfc822 parts), decodes quoted-printable and base64
 * in text parts (other parts are skipped), then HTML character
 * references (&amp; &#46; &#x2e; ...), and finds http:// and https://
 * links and bare www. names. Each link's host is reduced to its
 * registered domain (regdomain.h; "www.a.b.example.co.uk" ->
 * "example.co.uk") or, for a dotted IPv4 host, kept as the address;
 * duplicates are dropped. Fuzzed by fuzz/fuzz_uri_scan.c, tested by
 * tests/unit/test_uri_scan.c.
 *
 * Bounds: at most max_octets octets are looked at (past them the scan
 * stops: bounded), at most max_domains distinct domains are kept (links
 * to more are counted in dropped). Lines are looked at through a buffer of
 * URI_SCAN_LINE_MAX octets: a longer line is content, never a MIME
 * boundary or a whole header field. Memory: the struct plus max_domains
 * entries, whatever the input.
 */
#ifndef POSTERN_URI_SCAN_H
#define POSTERN_URI_SCAN_H

#include <stddef.h>
#include <stdint.h>

#define URI_SCAN_NAME_MAX 253	/* a domain name, or a dotted IPv4 address */
#define URI_SCAN_DOMAINS_MAX 100	/* the largest max_domains */

struct uri_scan_domain {
	char name[URI_SCAN_NAME_MAX + 1];	/* lower case, no trailing dot */
	int is_ip;				/* a dotted IPv4 address */
};

struct uri_scan;

/* A scanner for one message (max_domains is cut to 1..URI_SCAN_DOMAINS_MAX). */
struct uri_scan *uri_scan_new(uint64_t max_octets, size_t max_domains);
void uri_scan_free(struct uri_scan **up);
/* Looks at the next n octets of the message. */
void uri_scan_feed(struct uri_scan *u, const uint8_t *p, size_t n);
/* The message is complete: a link at its very end is counted. */
void uri_scan_finish(struct uri_scan *u);

size_t uri_scan_count(const struct uri_scan *u);
/* The i-th distinct domain, in the order found (i < uri_scan_count). */
const struct uri_scan_domain *uri_scan_get(const struct uri_scan *u, size_t i);
/* Octets looked at. */
uint64_t uri_scan_octets(const struct uri_scan *u);
/* 1 when the message went on past max_octets (the rest was not looked at). */
int uri_scan_bounded(const struct uri_scan *u);
/* Links found past max_domains whose domain is not among those kept
 * (one such domain linked twice counts twice: nothing is kept of it). */
uint64_t uri_scan_dropped(const struct uri_scan *u);

#endif
