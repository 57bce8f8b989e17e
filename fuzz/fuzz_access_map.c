/*
 * fuzz_access_map.c - libFuzzer target for policy/access_map.c: the
 * access map parser (access.file, read at every load and SIGHUP) and its
 * lookups.
 *
 * Input: the whole input is a map file. When it parses, every stage's
 * lookup runs for a few fixed subjects (IPv4 and IPv6 clients, the null
 * sender, addresses with and without a domain). Checks, besides the
 * sanitizers: a map that parses reports no diagnostic, one that does not
 * reports at least one; a found entry has a line within the input's
 * line count and a key of the tags asked.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "access_map.h"

static void
lookups(const struct access_map *m, unsigned lines)
{
	struct sockaddr_in v4 = { .sin_family = AF_INET };
	struct sockaddr_in6 v6 = { .sin6_family = AF_INET6 };
	const char *froms[] = { "", "a@b.example", "x@", "plain", NULL };
	const char *rcpts[] = { "postmaster@example.test", "@", NULL };

	check(inet_pton(AF_INET, "192.0.2.7", &v4.sin_addr) == 1);
	check(inet_pton(AF_INET6, "2001:db8::7", &v6.sin6_addr) == 1);
	for (int c = 0; c < 2; c++)
		for (size_t f = 0; f < sizeof(froms) / sizeof(froms[0]); f++)
			for (size_t r = 0; r < sizeof(rcpts) / sizeof(rcpts[0]); r++) {
				struct access_subject s = {
					.client = c ? "2001:db8::7" : "192.0.2.7",
					.peer = c ? (const struct sockaddr *)&v6
						  : (const struct sockaddr *)&v4,
					.name = c ? "mail.example.net" : NULL,
					.helo = "helo.example",
					.from = froms[f],
					.rcpt = rcpts[r],
				};
				const struct access_entry *e =
					access_map_find(m, ~0u, &s);

				if (e != NULL) {
					check(access_entry_line(e) >= 1 &&
					      access_entry_line(e) <= lines);
					check(access_entry_key(e) != NULL);
					check(strlen(access_entry_text(e)) <= ACCESS_TEXT_MAX);
				}
			}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct diag d;
	struct access_map *m;
	unsigned lines = 1;

	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	diag_init(&d);
	m = access_map_parse("fuzz", (const char *)data, size, &d);
	if (m != NULL) {
		check(d.n == 0);
		lookups(m, lines);
		access_map_free(&m);
	} else {
		check(d.n > 0);
	}
	diag_fini(&d);
	return 0;
}
