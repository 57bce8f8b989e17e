/*
 * dns_answer.h - the bounded parser of raw DNS answers (RFC 1035 wire
 * format) into struct dns_answer: records with their TTLs, CNAME chains
 * followed, negative TTLs from the SOA (RFC 2308). Pure: no I/O, no
 * state; the fuzz target and the unit tests drive it directly.
 */
#ifndef POSTERN_DNS_ANSWER_H
#define POSTERN_DNS_ANSWER_H

#include <stddef.h>
#include <stdint.h>

#include "dns.h"

#define DNS_WALK_MAX_RR 256	/* answer-section records looked at */
#define DNS_CNAME_MAX 16	/* CNAME hops followed */
#define DNS_PTR_JUMPS_MAX 32	/* compression pointers per name */

/* Fills out from the message (len bytes) answering a question of qtype.
 * Always fills it: a message that does not parse is TEMPFAIL with err
 * set. out must be fini'ed (dns_answer_fini). */
void dns_answer_parse(const uint8_t *msg, size_t len, enum dns_type qtype,
		      struct dns_answer *out);

/* A TEMPFAIL answer with err (static text). */
void dns_answer_tempfail(struct dns_answer *out, const char *err);

#endif
