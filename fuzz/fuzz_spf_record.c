/*
 * fuzz_spf_record.c - libFuzzer target for policy/spf_record.c: the SPF
 * record parser and the macro expander, which run on TXT records any
 * sender's domain publishes.
 *
 * Input: byte 0 picks the client's family, bytes 1..16 its address, the
 * rest is parsed as a record and expanded as a domain-spec and as an
 * explanation. Checks, besides the sanitizers: a parsed record's terms
 * and modifiers lie inside its text; an expansion is NUL-terminated and
 * no longer than SPF_EXPAND_MAX; a trimmed name is at most 253 octets.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz.h"
#include "spf_record.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct spf_record rec;
	static char out[SPF_EXPAND_MAX + 1];
	struct spf_macro_ctx c;
	const char *err;

	if (size < 17)
		return 0;
	memset(&c, 0, sizeof(c));
	c.family = data[0] & 1 ? AF_INET6 : AF_INET;
	memcpy(c.addr, data + 1, 16);
	c.sender = "user.name@mail.example.com";
	c.local = "user.name";
	c.sender_domain = "mail.example.com";
	c.domain = "example.com";
	c.helo = "helo.example.net";
	c.ptr = (data[0] & 2) ? "ptr.example.com" : NULL;
	c.receiver = "mx.example.org";
	c.now = 1234567890;
	const char *s = (const char *)data + 17;
	size_t n = size - 17;

	if (spf_record_parse(s, n, &rec, &err) == 0) {
		check(rec.nterms <= SPF_TERMS_MAX);
		for (size_t i = 0; i < rec.nterms; i++) {
			const struct spf_term *t = &rec.terms[i];
			check((size_t)t->dom + t->dom_len <= n);
			if (t->dom_len != 0) {
				int r = spf_macro_expand(rec.text + t->dom, t->dom_len, &c, 0, out,
							 sizeof(out));
				check(r < 0 || ((size_t)r <= SPF_EXPAND_MAX && out[r] == '\0'));
				if (r >= 0)
					check(strlen(spf_domain_trim(out)) <= 253);
			}
		}
		check((size_t)rec.redirect + rec.redirect_len <= n);
		check((size_t)rec.exp + rec.exp_len <= n);
	} else {
		check(err != NULL);
	}
	for (int exp = 0; exp < 2; exp++) {
		int r = spf_macro_expand(s, n, &c, exp, out, sizeof(out));
		check(r < 0 || ((size_t)r <= SPF_EXPAND_MAX && out[r] == '\0' &&
				strlen(out) == (size_t)r));
		check(spf_macro_check(s, n, exp) == 0 || r < 0);
	}
	return 0;
}
