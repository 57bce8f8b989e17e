/*
 * spf_record.h - SPF records (RFC 7208 4.5, 5, 6) and macros (RFC 7208
 * 7): the pure part of the SPF evaluator. Parses one record's text into
 * its terms and expands macro strings for a given context; no DNS, no
 * allocation, every size bounded.
 */
#ifndef POSTERN_SPF_RECORD_H
#define POSTERN_SPF_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "compat.h"

#define SPF_RECORD_MAX 4096	/* octets of one record; longer: permerror */
#define SPF_TERMS_MAX 256	/* terms of one record; more: permerror */
#define SPF_EXPAND_MAX 2048	/* octets of one macro expansion */
#define SPF_MACRO_PARTS 128	/* parts a macro value is split into */

enum spf_result {
	SPF_NONE, SPF_NEUTRAL, SPF_PASS, SPF_FAIL, SPF_SOFTFAIL, SPF_TEMPERROR,
	SPF_PERMERROR, SPF_RESULT__COUNT
};

/* "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror". */
const char *spf_result_name(enum spf_result r);

enum spf_mech {
	SPF_M_ALL, SPF_M_INCLUDE, SPF_M_A, SPF_M_MX, SPF_M_PTR, SPF_M_IP4, SPF_M_IP6,
	SPF_M_EXISTS
};

struct spf_term {
	uint8_t mech;		/* enum spf_mech */
	uint8_t result;		/* enum spf_result of its qualifier */
	uint8_t cidr4, cidr6;	/* prefix lengths; ip4/ip6 use theirs */
	uint16_t dom, dom_len;	/* domain-spec: offset into text; dom_len 0: none */
	uint8_t addr[16];	/* ip4 (first 4) / ip6 */
};

struct spf_record {
	char text[SPF_RECORD_MAX + 1];	/* the record, NUL-ended */
	size_t nterms;
	struct spf_term terms[SPF_TERMS_MAX];
	uint16_t redirect, redirect_len;	/* 0 len: none */
	uint16_t exp, exp_len;
};

/* 1 if a TXT string is an SPF record: "v=spf1" (any case) then a space or
 * the end (RFC 7208 4.5). */
int spf_record_is_spf(const char *txt, size_t len);

/* Parses a record (its "v=spf1" included) into rec. 0, or -1 with *err
 * (static text) for anything RFC 7208's grammar refuses: a permerror. */
int spf_record_parse(const char *txt, size_t len, struct spf_record *rec,
		     const char **err) WARN_UNUSED;

/* What the macro letters stand for (RFC 7208 7.2). */
struct spf_macro_ctx {
	const char *sender;	/* s: local@domain */
	const char *local;	/* l */
	const char *sender_domain;	/* o */
	const char *domain;	/* d: the current <domain> */
	int family;		/* AF_INET / AF_INET6 */
	uint8_t addr[16];	/* i, c, v */
	const char *ptr;	/* p: validated name, or NULL ("unknown") */
	const char *helo;	/* h */
	const char *receiver;	/* r */
	uint64_t now;		/* t */
};

/* Checks the syntax of a macro string (exp: the letters c, r, t and
 * spaces are allowed, explain-string). 0 or -1. */
int spf_macro_check(const char *s, size_t len, int exp) WARN_UNUSED;
/* 1 if s uses the p macro. */
int spf_macro_uses_p(const char *s, size_t len);
/* Expands s into out (NUL-ended). Its length, or -1 (syntax, or longer
 * than outlen - 1 / SPF_EXPAND_MAX). */
int spf_macro_expand(const char *s, size_t len, const struct spf_macro_ctx *ctx, int exp,
		     char *out, size_t outlen) WARN_UNUSED;
/* A domain-spec's expansion made a query name (RFC 7208 7.3): the
 * trailing dot removed, leading labels dropped while longer than 253.
 * Returns name (moved in place). */
char *spf_domain_trim(char *name);

#endif
