/*
 * config.c - reads, checks and documents the configuration (see config.h).
 *
 * Owns struct config snapshots: built from options.def defaults, then the
 * file, then -o overrides, then the cross-field checks of config_check()
 * (routes: config_route.c) and the accounts file. Every error becomes one "FILE:LINE: message" in
 * the caller's diag list, and parsing goes on so that all of them are
 * reported at once. A snapshot is immutable once config_load() returns;
 * only its reference count changes (atomically), so any thread may hold one.
 * Also generates docs/configuration.md from the same table
 * (config_markdown), so the documentation cannot drift from the code.
 */
#include "config_private.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "domain.h"
#include "log.h"

/* ---- the option table ------------------------------------------------- */

const struct opt_desc config_opts[CONFIG_NOPTS] = {
#define OPT(sec, key, type, def, min, max, unit, reload, summary, text) \
	{ #sec, #key, #sec "." #key, OT_##type, def, (uint64_t)(min), (uint64_t)(max), \
	  unit, reload, summary, text, offsetof(struct config, sec##_##key) },
#include "options.def"
#undef OPT
};

const char *const config_type_names[] = {
	[OT_STR] = "string", [OT_PATH] = "path", [OT_UINT] = "number",
	[OT_SIZE] = "size", [OT_DURATION] = "duration", [OT_BOOL] = "boolean",
	[OT_CIDRS] = "networks", [OT_LIST] = "list", [OT_DURATIONS] = "durations",
};

/* ---- value parsing ---------------------------------------------------- */

/* Checks of single string options, done where the value is set so the
 * error carries its line. Returns NULL or a message. */
static const char *
check_str(const struct opt_desc *o, const char *v)
{
	if (strcmp(o->name, "smtp.bare_lf") == 0) {
		if (strcmp(v, "normalize") != 0 && strcmp(v, "reject") != 0)
			return "is not normalize or reject";
	} else if (strcmp(o->name, "log.level") == 0) {
		enum log_sev sev;

		/* exactly the names log.c prints, in lower case */
		if (log_sev_parse(v, &sev) < 0 || strcmp(log_sev_name(sev), v) != 0)
			return "is not one of debug, info, notice, warning, error, crit";
	} else if (strcmp(o->name, "server.hostname") == 0) {
		if (v[0] != '\0' && !domain_name_valid(v, strlen(v)))
			return "is not a host name";
	} else if (strcmp(o->name, "log.target") == 0) {
		if (v[0] == '\0')
			return "is empty (use stderr, syslog or a file path)";
	} else if (strcmp(o->name, "local.plus_separator") == 0) {
		if (strlen(v) != 1 || strchr("+-_=.", v[0]) == NULL)
			return "is not one of + - _ = .";
	} else if (strncmp(o->name, "client_checks.", 14) == 0) {
		if (strcmp(v, "reject") != 0 && strcmp(v, "tempfail") != 0 &&
		    strcmp(v, "tag") != 0 && strcmp(v, "off") != 0)
			return "is not one of reject, tempfail, tag, off";
	} else if (strncmp(o->name, "outbound.", 9) == 0) {
		return config_check_outbound(o->key, v);
	}
	return NULL;
}

/* Frees the value of option o in cfg. */
static void
opt_free(struct config *cfg, const struct opt_desc *o)
{
	switch (o->type) {
	case OT_STR:
	case OT_PATH: {
		char **p = FIELD(cfg, o, char *);

		free(*p);
		*p = NULL;
		break;
	}
	case OT_CIDRS:
		cidr_list_fini(FIELD(cfg, o, struct cidr_list));
		break;
	case OT_LIST:
		config_list_fini(FIELD(cfg, o, struct config_list));
		break;
	case OT_DURATIONS:
		config_durations_fini(FIELD(cfg, o, struct config_durations));
		break;
	default:
		break;
	}
}

int
config_opt_number(struct config_load *ld, const struct opt_desc *o, const char *v, struct src src,
		  uint64_t *out)
{
	static const uint64_t mult[] = { 1024, 1024, 1048576, 1048576, 1073741824, 1073741824 };
	uint64_t x = 0;

	if (o->type == OT_UINT) {
		if (strlen(v) > 20 || slice_to_u64(slice_from_cstr(v), UINT64_MAX, &x) < 0) {
			diag_add(ld->diags, src.file, src.line, "%s: \"%.*s\" is not a number",
				 o->name, SHOW(v));
			return -1;
		}
	} else if (o->type == OT_SIZE) {
		if (config_parse_scaled(v, "KkMmGg", mult, &x) < 0) {
			diag_add(ld->diags, src.file, src.line,
				 "%s: \"%.*s\" is not a size (bytes, or a number with suffix K, M or G)",
				 o->name, SHOW(v));
			return -1;
		}
	} else if (o->type == OT_DURATION) {
		if (config_parse_duration(v, &x) < 0) {
			diag_add(ld->diags, src.file, src.line,
				 "%s: \"%.*s\" is not a duration (seconds, or a number with suffix s, m or h)",
				 o->name, SHOW(v));
			return -1;
		}
	} else {
		diag_add(ld->diags, src.file, src.line, "%s is not a number option", o->name);
		return -1;
	}
	if (x < o->min || x > o->max) {
		diag_add(ld->diags, src.file, src.line, "%s: %llu is out of range (%llu..%llu%s%s)",
			 o->name, (unsigned long long)x, (unsigned long long)o->min,
			 (unsigned long long)o->max, o->unit[0] ? " " : "", o->unit);
		return -1;
	}
	*out = x;
	return 0;
}

/* Parses v into option o of cfg. On error reports it at src and leaves the
 * old value. Returns 0 or -1. */
static int
opt_set(struct config_load *ld, const struct opt_desc *o, const char *v, struct src src)
{
	struct config *cfg = ld->cfg;
	uint64_t x = 0;
	const char *msg;
	char *s;

	switch (o->type) {
	case OT_STR:
		msg = check_str(o, v);
		if (msg != NULL) {
			diag_add(ld->diags, src.file, src.line, "%s: \"%.*s\" %s", o->name, SHOW(v), msg);
			return -1;
		}
		opt_free(cfg, o);
		*FIELD(cfg, o, char *) = xstrdup(v);
		return 0;
	case OT_PATH:
		s = config_path_resolve(cfg->dir, v);
		if (s == NULL) {
			diag_add(ld->diags, src.file, src.line, "%s: path too long (more than %d bytes)",
				 o->name, CONFIG_PATH_MAX);
			return -1;
		}
		opt_free(cfg, o);
		*FIELD(cfg, o, char *) = s;
		return 0;
	case OT_UINT:
	case OT_SIZE:
	case OT_DURATION:
		if (config_opt_number(ld, o, v, src, &x) < 0)
			return -1;
		break;
	case OT_BOOL: {
		int b;

		if (config_parse_bool(v, &b) < 0) {
			diag_add(ld->diags, src.file, src.line,
				 "%s: \"%.*s\" is not yes or no (also true/false, on/off, 1/0)",
				 o->name, SHOW(v));
			return -1;
		}
		*FIELD(cfg, o, int) = b;
		return 0;
	}
	case OT_CIDRS: {
		struct cidr_list l;
		char bad[80];

		if (cidr_list_parse(v, &l, bad, sizeof(bad)) < 0) {
			diag_add(ld->diags, src.file, src.line,
				 "%s: \"%s\" is not a network (e.g. 192.0.2.0/24, 2001:db8::/32, 192.0.2.7)",
				 o->name, bad);
			return -1;
		}
		opt_free(cfg, o);
		*FIELD(cfg, o, struct cidr_list) = l;
		return 0;
	}
	case OT_LIST: {
		struct config_list l;
		const char *bad = NULL;
		size_t badlen = 0;

		if (config_parse_list(v, strcmp(o->name, "local.domains") == 0 ||
				       strcmp(o->name, "local.disabled_domains") == 0,
			       &l, &bad, &badlen) < 0) {
			diag_add(ld->diags, src.file, src.line, "%s: \"%.*s\" is not a domain name",
				 o->name, (int)(badlen > 100 ? 100 : badlen), bad);
			return -1;
		}
		opt_free(cfg, o);
		*FIELD(cfg, o, struct config_list) = l;
		return 0;
	}
	case OT_DURATIONS: {
		struct config_durations d;
		char err[160];

		if (config_parse_durations(v, o->min, o->max, &d, err, sizeof(err)) < 0) {
			diag_add(ld->diags, src.file, src.line, "%s: %s", o->name, err);
			return -1;
		}
		opt_free(cfg, o);
		*FIELD(cfg, o, struct config_durations) = d;
		return 0;
	}
	}
	/* the numeric types, parsed and in range */
	if (o->type == OT_SIZE)
		*FIELD(cfg, o, uint64_t) = x;
	else
		*FIELD(cfg, o, unsigned) = (unsigned)x;
	return 0;
}

const struct opt_desc *
opt_find(const char *section, size_t slen, const char *key, size_t klen)
{
	for (size_t i = 0; i < CONFIG_NOPTS; i++) {
		if (strlen(config_opts[i].section) == slen && memcmp(config_opts[i].section, section, slen) == 0 &&
		    strlen(config_opts[i].key) == klen && memcmp(config_opts[i].key, key, klen) == 0)
			return &config_opts[i];
	}
	return NULL;
}

int
config_option_known(const char *name, size_t len)
{
	const char *dot = memchr(name, '.', len);

	return dot != NULL &&
	       opt_find(name, (size_t)(dot - name), dot + 1, len - (size_t)(dot - name) - 1) != NULL;
}

static int
section_known(const char *s, size_t n)
{
	for (size_t i = 0; i < CONFIG_NOPTS; i++)
		if (strlen(config_opts[i].section) == n && memcmp(config_opts[i].section, s, n) == 0)
			return 1;
	return 0;
}

/* ---- the file --------------------------------------------------------- */

/* Applies "section" "key" = raw value from src; shared by the file and the
 * overrides. section is "server" or "listen.NAME". */
static void
apply(struct config_load *ld, const char *sec, size_t slen, const char *key, size_t klen,
      const char *raw, size_t rlen, struct src src, int from_file)
{
	const char *err = NULL, *dname;
	size_t dlen;
	int allow;
	char *v;

	v = config_value_unquote(raw, rlen, &err);
	if (v == NULL) {
		diag_add(ld->diags, src.file, src.line, "%s", err);
		return;
	}
	if (slen > 7 && memcmp(sec, "listen.", 7) == 0) {
		long idx = config_listener_get(ld, sec + 7, slen - 7, !from_file, src);

		if (idx >= 0)
			config_listener_set(ld, (size_t)idx, key, klen, v, src, from_file);
	} else if (slen > 6 && memcmp(sec, "route.", 6) == 0) {
		long idx = config_route_get(ld, sec + 6, slen - 6, !from_file, src);

		if (idx >= 0)
			config_route_set(ld, (size_t)idx, key, klen, v, src, from_file);
	} else if (config_dnsl_section(sec, slen, &allow, &dname, &dlen)) {
		long idx = config_dnsl_get(ld, allow, dname, dlen, !from_file, src);

		if (idx >= 0)
			config_dnsl_set(ld, (size_t)idx, key, klen, v, src, from_file);
	} else {
		const struct opt_desc *o = opt_find(sec, slen, key, klen);

		if (o == NULL) {
			diag_add(ld->diags, src.file, src.line, "unknown option %.*s.%.*s",
				 (int)slen, sec, (int)(klen > 100 ? 100 : klen), key);
		} else if (from_file && ld->set[o - config_opts].line != 0) {
			diag_add(ld->diags, src.file, src.line,
				 "duplicate option %s (already set at line %u)",
				 o->name, ld->set[o - config_opts].line);
		} else {
			/* recorded even when the value is bad, so that a second
			 * line is still reported as a duplicate */
			ld->set[o - config_opts] = src;
			(void)opt_set(ld, o, v, src);	/* reported inside */
		}
	}
	free(v);
}

static int
key_valid(const char *k, size_t n)
{
	if (n == 0 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= '0' && k[i] <= '9') || k[i] == '_'))
			return 0;
	return 1;
}


/* Reads and applies the file; -1 if it could not be read at all. */
static int
parse_file(struct config_load *ld, const char *path)
{
	const char *sec = NULL;		/* current section name, in text */
	size_t slen = 0;
	int sec_ok = 0;			/* 0: before any section or unknown section */
	int sec_seen = 0;
	size_t len, pos = 0;
	unsigned lineno = 0;
	char *text;
	const char *dname;
	size_t dlen;
	int allow;

	text = diag_read_file(path, NULL, CONFIG_FILE_MAX, &len, ld->diags);
	if (text == NULL)
		return -1;
	while (pos < len) {
		const char *s = text + pos;
		const char *nl = memchr(s, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - s) : len - pos;
		struct src src;
		const char *eq;

		pos += n + (nl ? 1 : 0);
		src.file = path;
		src.line = ++lineno;
		if (n > CONFIG_LINE_MAX) {
			diag_add(ld->diags, path, lineno, "line too long (more than %d bytes)",
				 CONFIG_LINE_MAX);
			continue;
		}
		if (memchr(s, '\0', n) != NULL) {
			diag_add(ld->diags, path, lineno, "NUL byte in line");
			continue;
		}
		if (n > 0 && s[n - 1] == '\r')
			n--;
		config_trim(&s, &n);
		if (n == 0 || s[0] == '#' || s[0] == ';')
			continue;
		if (s[0] == '[') {
			const char *name = s + 1;
			size_t nn;

			sec_seen = 1;
			sec_ok = 0;
			if (s[n - 1] != ']') {
				diag_add(ld->diags, path, lineno, "section header without closing ']'");
				continue;
			}
			nn = n - 2;
			config_trim(&name, &nn);
			if (nn > 7 && memcmp(name, "listen.", 7) == 0) {
				if (!config_listener_name_valid(name + 7, nn - 7)) {
					diag_add(ld->diags, path, lineno,
						 "bad listener name \"%.*s\" (letters, digits, '_' and '-', at most %d)",
						 (int)(nn - 7 > 100 ? 100 : nn - 7), name + 7, CONFIG_NAME_MAX);
					continue;
				}
				if (config_listener_get(ld, name + 7, nn - 7, 1, src) < 0)
					continue;
			} else if (nn > 6 && memcmp(name, "route.", 6) == 0) {
				if (!config_listener_name_valid(name + 6, nn - 6)) {
					diag_add(ld->diags, path, lineno,
						 "bad route name \"%.*s\" (letters, digits, '_' and '-', at most %d)",
						 (int)(nn - 6 > 100 ? 100 : nn - 6), name + 6, CONFIG_NAME_MAX);
					continue;
				}
				if (config_route_get(ld, name + 6, nn - 6, 1, src) < 0)
					continue;
			} else if (config_dnsl_section(name, nn, &allow, &dname, &dlen)) {
				if (!config_listener_name_valid(dname, dlen)) {
					diag_add(ld->diags, path, lineno,
						 "bad list name \"%.*s\" (letters, digits, '_' and '-', at most %d)",
						 (int)(dlen > 100 ? 100 : dlen), dname, CONFIG_NAME_MAX);
					continue;
				}
				if (config_dnsl_get(ld, allow, dname, dlen, 1, src) < 0)
					continue;
			} else if (!section_known(name, nn)) {
				if (nn == 6 && memcmp(name, "listen", 6) == 0)
					diag_add(ld->diags, path, lineno,
						 "unknown section [listen] (listeners are [listen.NAME])");
				else if (nn == 5 && memcmp(name, "route", 5) == 0)
					diag_add(ld->diags, path, lineno,
						 "unknown section [route] (routes are [route.NAME])");
				else
					diag_add(ld->diags, path, lineno, "unknown section [%.*s]",
						 (int)(nn > 100 ? 100 : nn), name);
				continue;
			}
			sec = name;
			slen = nn;
			sec_ok = 1;
			continue;
		}
		eq = memchr(s, '=', n);
		if (eq == NULL) {
			diag_add(ld->diags, path, lineno,
				 "expected \"key = value\", \"[section]\" or a comment");
			continue;
		}
		{
			const char *k = s, *v = eq + 1;
			size_t kn = (size_t)(eq - s), vn = n - kn - 1;

			config_trim(&k, &kn);
			config_trim(&v, &vn);
			if (!key_valid(k, kn)) {
				diag_add(ld->diags, path, lineno, "bad option name \"%.*s\"",
					 (int)(kn > 100 ? 100 : kn), k);
				continue;
			}
			if (!sec_seen) {
				diag_add(ld->diags, path, lineno,
					 "option %.*s outside any section (add a [section] line above it)",
					 (int)kn, k);
				continue;
			}
			if (!sec_ok)
				continue;	/* its section was already reported */
			apply(ld, sec, slen, k, kn, v, vn, src, 1);
		}
	}
	free(text);
	return 0;
}

static void
parse_override(struct config_load *ld, const char *ov, unsigned idx)
{
	struct src src = { "-o", idx };
	const char *eq = strchr(ov, '='), *name = ov, *dot, *v, *dname;
	size_t nn, vn, dlen;
	int allow;

	if (strlen(ov) > CONFIG_LINE_MAX) {
		diag_add(ld->diags, src.file, src.line, "override too long (more than %d bytes)",
			 CONFIG_LINE_MAX);
		return;
	}
	if (eq == NULL) {
		diag_add(ld->diags, src.file, src.line, "expected section.key=value");
		return;
	}
	nn = (size_t)(eq - ov);
	config_trim(&name, &nn);
	dot = NULL;
	for (size_t i = nn; i > 0; i--) {
		if (name[i - 1] == '.') {
			dot = name + i - 1;
			break;
		}
	}
	if (dot == NULL || dot == name) {
		diag_add(ld->diags, src.file, src.line, "expected section.key=value");
		return;
	}
	v = eq + 1;
	vn = strlen(v);
	config_trim(&v, &vn);
	{
		const char *sec = name, *key = dot + 1;
		size_t slen = (size_t)(dot - name), klen = nn - slen - 1;

		if (!key_valid(key, klen)) {
			diag_add(ld->diags, src.file, src.line, "bad option name \"%.*s\"",
				 (int)(klen > 100 ? 100 : klen), key);
			return;
		}
		if (slen > 7 && memcmp(sec, "listen.", 7) == 0) {
			if (!config_listener_name_valid(sec + 7, slen - 7)) {
				diag_add(ld->diags, src.file, src.line,
					 "bad listener name \"%.*s\" (letters, digits, '_' and '-', at most %d)",
					 (int)(slen - 7 > 100 ? 100 : slen - 7), sec + 7, CONFIG_NAME_MAX);
				return;
			}
		} else if (slen > 6 && memcmp(sec, "route.", 6) == 0) {
			if (!config_listener_name_valid(sec + 6, slen - 6)) {
				diag_add(ld->diags, src.file, src.line,
					 "bad route name \"%.*s\" (letters, digits, '_' and '-', at most %d)",
					 (int)(slen - 6 > 100 ? 100 : slen - 6), sec + 6, CONFIG_NAME_MAX);
				return;
			}
		} else if (config_dnsl_section(sec, slen, &allow, &dname, &dlen)) {
			if (!config_listener_name_valid(dname, dlen)) {
				diag_add(ld->diags, src.file, src.line,
					 "bad list name \"%.*s\" (letters, digits, '_' and '-', at most %d)",
					 (int)(dlen > 100 ? 100 : dlen), dname, CONFIG_NAME_MAX);
				return;
			}
		} else if (!section_known(sec, slen)) {
			diag_add(ld->diags, src.file, src.line, "unknown section [%.*s]",
				 (int)(slen > 100 ? 100 : slen), sec);
			return;
		}
		apply(ld, sec, slen, key, klen, v, vn, src, 0);
	}
}

/* ---- cross-field checks ----------------------------------------------- */


/* Disabled domains must be local. */
static void
config_check_domains(struct config_load *ld)
{
	struct config *cfg = ld->cfg;
	const struct opt_desc *o = opt_find("local", 5, "disabled_domains", 16);

	for (size_t i = 0; i < cfg->local_disabled_domains.n; i++) {
		const char *d = cfg->local_disabled_domains.v[i];

		if (!config_is_local_domain(cfg, d, strlen(d)))
			diag_add(ld->diags, ld->set[o - config_opts].file, ld->set[o - config_opts].line,
				 "local.disabled_domains: %s is not in local.domains", d);
	}
}

/* Checks what no single line can: listeners complete and distinct, at
 * least one of them (for a file), the host name, the log target and the
 * disabled domains. */
static void
config_check(struct config_load *ld, int need_listener)
{
	struct config *cfg = ld->cfg;

	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct config_listener *l = &cfg->listeners[i];
		const struct listener_src *ls = &ld->lsrc[i];

		if (ls->address.line == 0)
			diag_add(ld->diags, ls->header.file, ls->header.line,
				 "listen.%s: missing address (host:port)", l->name);
		if (ls->role.line == 0)
			diag_add(ld->diags, ls->header.file, ls->header.line,
				 "listen.%s: missing role (mx, submission, submissions, pop3, pop3s, metrics)", l->name);
		/* /metrics is plain HTTP: a key asking for TLS or a proxy would
		 * be silently unmet */
		if (l->role == CONFIG_ROLE_METRICS && (l->require_tls || l->proxy_protocol))
			diag_add(ld->diags, ls->role.file, ls->role.line,
				 "listen.%s: role metrics takes neither require_tls nor proxy_protocol",
				 l->name);
		if (!ls->address_ok)
			continue;
		for (size_t j = 0; j < i; j++) {
			if (ld->lsrc[j].address_ok && config_sockaddr_same(&cfg->listeners[j], l)) {
				diag_add(ld->diags, ls->address.file, ls->address.line,
					 "listen.%s.address: %s is already used by listen.%s",
					 l->name, l->address, cfg->listeners[j].name);
				break;
			}
		}
	}
	if (need_listener && cfg->nlisteners == 0)
		diag_add(ld->diags, cfg->path, 0,
			 "no listener: add a [listen.NAME] section with address and role");

	if (cfg->server_hostname[0] != '\0') {
		cfg->hostname = xstrdup(cfg->server_hostname);
	} else {
		char host[256];

		if (gethostname(host, sizeof(host)) == 0 && memchr(host, '\0', sizeof(host)) != NULL &&
		    host[0] != '\0')
			cfg->hostname = xstrdup(host);
		else
			cfg->hostname = xstrdup("localhost");
	}

	/* log.target: a relative file path is relative to the file's folder */
	if (strcmp(cfg->log_target, "stderr") != 0 && strcmp(cfg->log_target, "syslog") != 0 &&
	    cfg->log_target[0] != '/') {
		char *p = config_path_resolve(cfg->dir, cfg->log_target);

		if (p == NULL) {
			const struct opt_desc *o = opt_find("log", 3, "target", 6);

			diag_add(ld->diags, ld->set[o - config_opts].file, ld->set[o - config_opts].line,
				 "log.target: path too long (more than %d bytes)", CONFIG_PATH_MAX);
		} else {
			free(cfg->log_target);
			cfg->log_target = p;
		}
	}

	config_check_domains(ld);
	config_route_check(ld);
	config_dnsl_check(ld);
	config_listeners_local_addrs(cfg);
}

/* ---- snapshots -------------------------------------------------------- */

static void
config_free(struct config *cfg)
{
	for (size_t i = 0; i < CONFIG_NOPTS; i++)
		opt_free(cfg, &config_opts[i]);
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		free(cfg->listeners[i].name);
		free(cfg->listeners[i].address);
		for (int st = 0; st < CONFIG_POLICY_STAGES; st++)
			config_list_fini(&cfg->listeners[i].policy[st]);
	}
	free(cfg->listeners);
	config_routes_free(cfg);
	config_dnsls_free(cfg);
	free(cfg->local_addrs);
	if (cfg->policy_free != NULL)
		cfg->policy_free(&cfg->policy);
	if (cfg->accounts_free != NULL)
		cfg->accounts_free(&cfg->accounts);
	free(cfg->hostname);
	free(cfg->path);
	free(cfg->dir);
	free(cfg);
}

void
config_option_diag(struct config_load *ld, const char *option, const char *fmt, ...)
{
	const char *dot = strchr(option, '.');
	const struct opt_desc *o = dot != NULL
		? opt_find(option, (size_t)(dot - option), dot + 1, strlen(dot + 1)) : NULL;
	const char *file = ld->cfg->path != NULL ? ld->cfg->path : "-";
	unsigned line = 0;
	char msg[512];
	va_list ap;

	if (o != NULL && ld->set[o - config_opts].line != 0) {
		file = ld->set[o - config_opts].file;
		line = ld->set[o - config_opts].line;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	diag_add(ld->diags, file, line, "%s: %s", option, msg);
}

struct config *
config_load(const char *path, const char *const *overrides, size_t noverrides,
	    struct diag *diags)
{
	return config_load_with(path, overrides, noverrides, diags, NULL);
}

struct config *
config_load_with(const char *path, const char *const *overrides, size_t noverrides,
		 struct diag *diags, config_attach_fn attach)
{
	struct diag own;
	struct config_load ld;
	struct config *cfg;
	int need_listener;
	size_t n0;

	if (diags == NULL) {
		diag_init(&own);
		diags = &own;
	}
	n0 = diags->n;
	cfg = xcalloc(1, sizeof(*cfg));
	cfg->refs = 1;
	cfg->generation = 1;
	cfg->path = path ? xstrdup(path) : NULL;
	cfg->dir = path ? config_dir_of(path) : config_dir_of(NULL);
	memset(&ld, 0, sizeof(ld));
	ld.cfg = cfg;
	ld.diags = diags;
	for (size_t i = 0; i < CONFIG_NOPTS; i++) {
		struct src def = { "options.def", 0 };

		/* options.def is ours: a default that does not parse is a bug */
		if (opt_set(&ld, &config_opts[i], config_opts[i].def, def) < 0)
			PANIC("bad default in options.def");
	}
	/* A file must name a listener; built-in defaults need none. A file
	 * that cannot be read is reported once, not as missing listeners. */
	need_listener = path != NULL && parse_file(&ld, path) == 0;
	for (size_t i = 0; i < noverrides; i++)
		parse_override(&ld, overrides[i], (unsigned)(i + 1));
	config_check(&ld, need_listener);
	if (attach != NULL)
		attach(cfg, &ld, diags);
	free(ld.lsrc);
	free(ld.rsrc);
	free(ld.dsrc);
	if (diags->n > n0) {
		config_free(cfg);
		cfg = NULL;
	}
	if (diags == &own)
		diag_fini(&own);
	return cfg;
}

struct config *
config_ref(struct config *cfg)
{
	if (cfg != NULL)
		__atomic_add_fetch(&cfg->refs, 1, __ATOMIC_RELAXED);
	return cfg;
}

void
config_unref(struct config **cfgp)
{
	struct config *cfg = *cfgp;

	if (cfg == NULL)
		return;
	*cfgp = NULL;
	if (__atomic_sub_fetch(&cfg->refs, 1, __ATOMIC_ACQ_REL) == 0)
		config_free(cfg);
}

static int
cmp_domain_key(const void *key, const void *elem)
{
	const struct slice *k = key;
	const char *d = *(char *const *)elem;
	size_t i;

	for (i = 0; i < k->len && d[i] != '\0'; i++) {
		unsigned char a = k->p[i], b = (unsigned char)d[i];

		if (a >= 'A' && a <= 'Z')
			a = (unsigned char)(a + 32);
		if (a != b)
			return a < b ? -1 : 1;
	}
	if (i == k->len)
		return d[i] == '\0' ? 0 : -1;
	return 1;
}

int
config_is_local_domain(const struct config *cfg, const char *domain, size_t len)
{
	struct slice k = { (const uint8_t *)domain, len };

	if (len > 1 && domain[len - 1] == '.')
		k.len--;
	if (cfg->local_domains.n == 0 || k.len == 0)
		return 0;
	return bsearch(&k, cfg->local_domains.v, cfg->local_domains.n, sizeof(char *),
		       cmp_domain_key) != NULL;
}

static int
opt_equal(const struct config *a, const struct config *b, const struct opt_desc *o)
{
	switch (o->type) {
	case OT_STR:
	case OT_PATH:
		return strcmp(*CFIELD(a, o, char *), *CFIELD(b, o, char *)) == 0;
	case OT_UINT:
	case OT_DURATION:
		return *CFIELD(a, o, unsigned) == *CFIELD(b, o, unsigned);
	case OT_SIZE:
		return *CFIELD(a, o, uint64_t) == *CFIELD(b, o, uint64_t);
	case OT_BOOL:
		return *CFIELD(a, o, int) == *CFIELD(b, o, int);
	case OT_CIDRS: {
		const struct cidr_list *x = CFIELD(a, o, struct cidr_list);
		const struct cidr_list *y = CFIELD(b, o, struct cidr_list);

		if (x->n != y->n)
			return 0;
		for (size_t i = 0; i < x->n; i++)
			if (x->v[i].family != y->v[i].family || x->v[i].prefix != y->v[i].prefix ||
			    memcmp(x->v[i].addr, y->v[i].addr, 16) != 0)
				return 0;
		return 1;
	}
	case OT_LIST: {
		const struct config_list *x = CFIELD(a, o, struct config_list);
		const struct config_list *y = CFIELD(b, o, struct config_list);

		if (x->n != y->n)
			return 0;
		for (size_t i = 0; i < x->n; i++)
			if (strcmp(x->v[i], y->v[i]) != 0)
				return 0;
		return 1;
	}
	case OT_DURATIONS: {
		const struct config_durations *x = CFIELD(a, o, struct config_durations);
		const struct config_durations *y = CFIELD(b, o, struct config_durations);

		return x->n == y->n && memcmp(x->v, y->v, x->n * sizeof(*x->v)) == 0;
	}
	}
	return 0;
}

void
config_diff_restart(const struct config *oldc, const struct config *newc,
		    void (*fn)(const char *option, void *arg), void *arg)
{
	for (size_t i = 0; i < CONFIG_NOPTS; i++)
		if (!config_opts[i].reload && !opt_equal(oldc, newc, &config_opts[i]))
			fn(config_opts[i].name, arg);
	if (!config_listeners_equal(oldc, newc))
		fn("listen", arg);
}
