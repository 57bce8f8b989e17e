/*
 * fuzz_dns_answer.c - libFuzzer target for net/dns_answer.c, the parser
 * of raw DNS answers.
 *
 * Input: byte 0 picks the question type, the rest is the message. Checks,
 * besides the sanitizers: the parse is deterministic; a TEMPFAIL has an
 * err and no records; an OK answer has 1..DNS_ANSWER_MAX_RR records of
 * the type asked (addresses for A/AAAA, names of at most 253 characters
 * in lower case for MX/PTR, TXT within DNS_ANSWER_MAX_TXT in all, NUL-
 * terminated), MX in preference order, TTLs within DNS_TTL_MAX and the
 * answer's TTL their minimum or lower; negative TTLs within
 * DNS_NEG_TTL_MAX; a copy equals the original.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz.h"
#include "dns_answer.h"

static void
check_name(const char *s)
{
	size_t n = strlen(s);

	check(n <= DNS_NAME_MAX + 1);
	for (size_t i = 0; i < n; i++)
		check(!(s[i] >= 'A' && s[i] <= 'Z'));
}

static void
check_same(const struct dns_answer *a, const struct dns_answer *b)
{
	check(a->status == b->status && a->ttl == b->ttl && a->n == b->n && a->ad == b->ad);
	for (size_t i = 0; i < a->n; i++) {
		const struct dns_rr *x = &a->rr[i], *y = &b->rr[i];

		check(x->ttl == y->ttl && x->pref == y->pref && x->family == y->family);
		check(memcmp(x->addr, y->addr, sizeof(x->addr)) == 0);
		check((x->name == NULL) == (y->name == NULL));
		check(x->name == NULL || strcmp(x->name, y->name) == 0);
		check(x->txt_len == y->txt_len);
		check(x->txt == NULL || memcmp(x->txt, y->txt, x->txt_len + 1) == 0);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum dns_type types[] = { DNS_T_A, DNS_T_AAAA, DNS_T_MX, DNS_T_TXT,
					       DNS_T_PTR };
	struct dns_answer a, b, c;

	if (size < 1)
		return 0;
	enum dns_type t = types[data[0] % 5];
	dns_answer_parse(data + 1, size - 1, t, &a);
	dns_answer_parse(data + 1, size - 1, t, &b);
	check_same(&a, &b);
	switch (a.status) {
	case DNS_TEMPFAIL:
		check(a.err != NULL && a.n == 0);
		break;
	case DNS_NXDOMAIN:
	case DNS_NODATA:
		check(a.n == 0 && a.ttl <= DNS_NEG_TTL_MAX);
		break;
	case DNS_OK: {
		size_t txt = 0;

		check(a.n >= 1 && a.n <= DNS_ANSWER_MAX_RR && a.ttl <= DNS_TTL_MAX);
		for (size_t i = 0; i < a.n; i++) {
			const struct dns_rr *rr = &a.rr[i];

			check(rr->ttl <= DNS_TTL_MAX && a.ttl <= rr->ttl);
			if (t == DNS_T_A)
				check(rr->family == AF_INET && !rr->name && !rr->txt);
			if (t == DNS_T_AAAA)
				check(rr->family == AF_INET6 && !rr->name && !rr->txt);
			if (t == DNS_T_MX || t == DNS_T_PTR) {
				check(rr->family == 0 && rr->name != NULL && !rr->txt);
				check_name(rr->name);
			}
			if (t == DNS_T_MX && i > 0)
				check(a.rr[i - 1].pref <= rr->pref);
			if (t == DNS_T_TXT) {
				check(rr->txt != NULL && rr->txt[rr->txt_len] == '\0');
				txt += rr->txt_len;
			}
		}
		check(txt <= DNS_ANSWER_MAX_TXT);
		break;
	}
	default:
		check(0);
	}
	dns_answer_copy(&c, &a);
	check_same(&a, &c);
	dns_answer_fini(&a);
	dns_answer_fini(&b);
	dns_answer_fini(&c);
	return 0;
}
