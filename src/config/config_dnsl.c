/*
 * config_dnsl.c - [dnsbl.NAME] and [dnswl.NAME] sections (zone, codes,
 * action, weight, type): their parsing and load-time checks, and the
 * match of an A answer against a list's codes.
 *
 * Lists live in the snapshot like routes; the policy checks "dnsbl" and
 * "dnswl" (src/policy/policy_dnsl.c) ask them, and "uribl" those of type
 * uri (URI block lists, as smtpf's uri-bl).
 */
#include "config_private.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain.h"

/* 127.0.0.0/8 minus 127.255.255.0/24 (RFC 5782 2.1; the latter are the
 * answers of lists refusing a resolver, never a listing) */
static const struct config_dnsl_code default_codes[] = {
	{ 0x7f000000u, 0xff000000u, 0 },
	{ 0x7fffff00u, 0xffffff00u, 1 },
};

static const char *const action_names[] = {
	[DNSL_REJECT] = "reject", [DNSL_TEMPFAIL] = "tempfail",
	[DNSL_TAG] = "tag", [DNSL_SCORE] = "score",
};

static const char *const type_names[] = {
	[DNSL_TYPE_IP] = "ip", [DNSL_TYPE_HELO] = "helo", [DNSL_TYPE_SENDER] = "sender",
	[DNSL_TYPE_URI] = "uri",
};

const char *
config_dnsl_action_name(enum dnsl_action a)
{
	return (unsigned)a < ARRAY_LEN(action_names) ? action_names[a] : "?";
}

const char *
config_dnsl_type_name(enum dnsl_type t)
{
	return (unsigned)t < ARRAY_LEN(type_names) ? type_names[t] : "?";
}

/* ---- codes ------------------------------------------------------------- */

int
config_dnsl_parse_codes(const char *v, struct config_dnsl_code *out, size_t max, size_t *n,
			char *err, size_t errlen)
{
	const char *p = v, *w;
	size_t wl, k = 0, includes = 0;

	while ((w = config_next_word(&p, &wl)) != NULL) {
		char text[32];
		struct cidr c;
		int exclude = 0;

		if (w[0] == '!') {
			exclude = 1;
			w++;
			wl--;
		}
		if (wl == 0 || wl >= sizeof(text)) {
			snprintf(err, errlen, "\"%.*s\" is not an IPv4 address or network",
				 (int)(wl > 40 ? 40 : wl), w);
			return -1;
		}
		memcpy(text, w, wl);
		text[wl] = '\0';
		if (cidr_parse(text, &c) < 0 || c.family != AF_INET) {
			snprintf(err, errlen,
				 "\"%s\" is not an IPv4 address or network (e.g. 127.0.0.2, 127.0.0.0/24)",
				 text);
			return -1;
		}
		if (k == max) {
			snprintf(err, errlen, "too many codes (at most %zu)", max);
			return -1;
		}
		out[k].mask = c.prefix == 0 ? 0 : 0xffffffffu << (32 - c.prefix);
		out[k].net = ((uint32_t)c.addr[0] << 24 | (uint32_t)c.addr[1] << 16 |
			      (uint32_t)c.addr[2] << 8 | c.addr[3]) & out[k].mask;
		out[k].exclude = exclude;
		includes += !exclude;
		k++;
	}
	if (includes == 0) {
		snprintf(err, errlen, "no code that counts (e.g. 127.0.0.2 or 127.0.0.0/8)");
		return -1;
	}
	*n = k;
	return 0;
}

int
config_dnsl_code_match(const struct config_dnsl *l, uint32_t a)
{
	int in = 0;

	for (size_t i = 0; i < l->ncodes; i++) {
		const struct config_dnsl_code *c = &l->codes[i];

		if ((a & c->mask) == c->net) {
			if (c->exclude)
				return 0;
			in = 1;
		}
	}
	return in;
}

/* ---- sections ---------------------------------------------------------- */

int
config_dnsl_section(const char *sec, size_t slen, int *allow, const char **name, size_t *n)
{
	if (slen <= 6 || (memcmp(sec, "dnsbl.", 6) != 0 && memcmp(sec, "dnswl.", 6) != 0))
		return 0;
	*allow = sec[3] == 'w';
	*name = sec + 6;
	*n = slen - 6;
	return 1;
}

static void
dnsl_fini(struct config_dnsl *l)
{
	free(l->name);
	free(l->zone);
	memset(l, 0, sizeof(*l));
}

void
config_dnsls_free(struct config *cfg)
{
	for (size_t i = 0; i < cfg->ndnsls; i++)
		dnsl_fini(&cfg->dnsls[i]);
	free(cfg->dnsls);
	cfg->dnsls = NULL;
	cfg->ndnsls = 0;
}

long
config_dnsl_get(struct config_load *ld, int allow, const char *name, size_t n, int create,
		struct src header)
{
	struct config *cfg = ld->cfg;
	struct config_dnsl *l;

	for (size_t i = 0; i < cfg->ndnsls; i++)
		if (cfg->dnsls[i].allow == allow && strlen(cfg->dnsls[i].name) == n &&
		    memcmp(cfg->dnsls[i].name, name, n) == 0)
			return (long)i;
	if (!create)
		return -1;
	if (cfg->ndnsls >= CONFIG_DNSLS_MAX) {
		diag_add(ld->diags, header.file, header.line,
			 "too many DNS lists (at most %d [dnsbl.NAME] and [dnswl.NAME])",
			 CONFIG_DNSLS_MAX);
		return -1;
	}
	if (cfg->ndnsls == ld->dcap) {
		ld->dcap = ld->dcap ? ld->dcap * 2 : 4;
		cfg->dnsls = xrealloc(cfg->dnsls, ld->dcap * sizeof(*cfg->dnsls));
		ld->dsrc = xrealloc(ld->dsrc, ld->dcap * sizeof(*ld->dsrc));
	}
	l = &cfg->dnsls[cfg->ndnsls];
	memset(l, 0, sizeof(*l));
	l->name = xmalloc(n + 1);
	memcpy(l->name, name, n);
	l->name[n] = '\0';
	l->allow = allow;
	l->action = DNSL_REJECT;
	l->weight = 1;
	memcpy(l->codes, default_codes, sizeof(default_codes));
	l->ncodes = ARRAY_LEN(default_codes);
	memset(&ld->dsrc[cfg->ndnsls], 0, sizeof(*ld->dsrc));
	ld->dsrc[cfg->ndnsls].header = header;
	return (long)cfg->ndnsls++;
}

#define SEC(l) ((l)->allow ? "dnswl" : "dnsbl")

static int
dnsl_dup(struct config_load *ld, const struct config_dnsl *l, const char *key,
	 struct src *where, struct src src, int dup_check)
{
	if (dup_check && where->line != 0) {
		diag_add(ld->diags, src.file, src.line,
			 "duplicate option %s.%s.%s (already set at line %u)", SEC(l), l->name, key,
			 where->line);
		return 1;
	}
	*where = src;
	return 0;
}

/* The index of v in names, or -1. */
static int
name_index(const char *const *names, size_t n, const char *v)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v, names[i]) == 0)
			return (int)i;
	return -1;
}

void
config_dnsl_set(struct config_load *ld, size_t idx, const char *key, size_t klen, const char *v,
		struct src src, int dup_check)
{
	struct config_dnsl *l = &ld->cfg->dnsls[idx];
	struct dnsl_src *ds = &ld->dsrc[idx];
	char err[160];
	int i;

#define KEY_IS(k) (klen == sizeof(k) - 1 && memcmp(key, k, klen) == 0)
	if (KEY_IS("zone")) {
		size_t n = strlen(v);
		char *z;

		if (dnsl_dup(ld, l, "zone", &ds->zone, src, dup_check))
			return;
		if (n > 1 && v[n - 1] == '.')
			n--;
		if (n == 0 || n > CONFIG_DNSL_ZONE_MAX || !domain_name_valid(v, n)) {
			diag_add(ld->diags, src.file, src.line,
				 "%s.%s.zone: \"%.*s\" is not a domain name (at most %d octets)",
				 SEC(l), l->name, SHOW(v), CONFIG_DNSL_ZONE_MAX);
			return;
		}
		z = xmalloc(n + 1);
		for (size_t k = 0; k < n; k++)
			z[k] = (char)(v[k] >= 'A' && v[k] <= 'Z' ? v[k] + 32 : v[k]);
		z[n] = '\0';
		free(l->zone);
		l->zone = z;
	} else if (KEY_IS("codes")) {
		struct config_dnsl_code c[CONFIG_DNSL_CODES_MAX];
		size_t n = 0;

		if (dnsl_dup(ld, l, "codes", &ds->codes, src, dup_check))
			return;
		if (config_dnsl_parse_codes(v, c, ARRAY_LEN(c), &n, err, sizeof(err)) < 0) {
			diag_add(ld->diags, src.file, src.line, "%s.%s.codes: %s", SEC(l), l->name,
				 err);
			return;
		}
		memcpy(l->codes, c, n * sizeof(c[0]));
		l->ncodes = n;
	} else if (KEY_IS("action")) {
		if (dnsl_dup(ld, l, "action", &ds->action, src, dup_check))
			return;
		i = name_index(action_names, ARRAY_LEN(action_names), v);
		if (l->allow)
			diag_add(ld->diags, src.file, src.line,
				 "dnswl.%s.action: a DNS allow list has no action (a hit accepts the stage)",
				 l->name);
		else if (i < 0)
			diag_add(ld->diags, src.file, src.line,
				 "dnsbl.%s.action: \"%.*s\" is not reject, tempfail, tag or score",
				 l->name, SHOW(v));
		else
			l->action = (enum dnsl_action)i;
	} else if (KEY_IS("weight")) {
		uint64_t x;

		if (dnsl_dup(ld, l, "weight", &ds->weight, src, dup_check))
			return;
		if (strlen(v) > 7 || slice_to_u64(slice_from_cstr(v), 1000000, &x) < 0)
			diag_add(ld->diags, src.file, src.line,
				 "%s.%s.weight: \"%.*s\" is not a number of points (0 to 1000000)",
				 SEC(l), l->name, SHOW(v));
		else
			l->weight = (int)x;
	} else if (KEY_IS("type")) {
		if (dnsl_dup(ld, l, "type", &ds->type, src, dup_check))
			return;
		i = name_index(type_names, ARRAY_LEN(type_names), v);
		/* uri: the links of the body (check uribl), block lists only */
		if (l->allow && i == DNSL_TYPE_URI)
			i = -1;
		if (i < 0)
			diag_add(ld->diags, src.file, src.line,
				 l->allow ? "%s.%s.type: \"%.*s\" is not ip, helo or sender"
				 : "%s.%s.type: \"%.*s\" is not ip, helo, sender or uri",
				 SEC(l), l->name, SHOW(v));
		else
			l->type = (enum dnsl_type)i;
	} else {
		diag_add(ld->diags, src.file, src.line,
			 "unknown option %s.%s.%.*s (zone, codes, action, weight, type)", SEC(l),
			 l->name, (int)(klen > 100 ? 100 : klen), key);
	}
#undef KEY_IS
}

void
config_dnsl_check(struct config_load *ld)
{
	struct config *cfg = ld->cfg;

	for (size_t i = 0; i < cfg->ndnsls; i++)
		if (cfg->dnsls[i].zone == NULL)
			diag_add(ld->diags, ld->dsrc[i].header.file, ld->dsrc[i].header.line,
				 "%s.%s: missing zone", SEC(&cfg->dnsls[i]), cfg->dnsls[i].name);
}
