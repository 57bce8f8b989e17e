/*
 * config.c - reads, checks and documents the configuration (see config.h).
 *
 * Owns struct config snapshots: built from options.def defaults, then the
 * file, then -o overrides, then the cross-field checks of config_check()
 * and the accounts file. Every error becomes one "FILE:LINE: message" in
 * the caller's diag list, and parsing goes on so that all of them are
 * reported at once. A snapshot is immutable once config_load() returns;
 * only its reference count changes (atomically), so any thread may hold one.
 * Also generates docs/configuration.md from the same table
 * (config_markdown), so the documentation cannot drift from the code.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/domain.h"
#include "core/log.h"

#define CONFIG_LINE_MAX 4096		/* octets per line, without the line end */
#define CONFIG_FILE_MAX (1024 * 1024)	/* a configuration, not a map */
#define CONFIG_LISTENERS_MAX 64
#define CONFIG_NAME_MAX 64		/* listener names */
#define CONFIG_PATH_MAX 4096

/* ---- the option table ------------------------------------------------- */

enum opt_type { OT_STR, OT_PATH, OT_UINT, OT_SIZE, OT_DURATION, OT_BOOL, OT_CIDRS, OT_LIST };

struct opt_desc {
	const char *section;
	const char *key;
	const char *name;	/* "section.key" */
	enum opt_type type;
	const char *def;
	uint64_t min, max;
	const char *unit;
	int reload;
	const char *summary;
	const char *text;
	size_t offset;		/* of the field in struct config */
};

static const struct opt_desc opts[] = {
#define OPT(sec, key, type, def, min, max, unit, reload, summary, text) \
	{ #sec, #key, #sec "." #key, OT_##type, def, (uint64_t)(min), (uint64_t)(max), \
	  unit, reload, summary, text, offsetof(struct config, sec##_##key) },
#include "options.def"
#undef OPT
};

#define NOPTS ARRAY_LEN(opts)

static const char *const type_names[] = {
	[OT_STR] = "string", [OT_PATH] = "path", [OT_UINT] = "number",
	[OT_SIZE] = "size", [OT_DURATION] = "duration", [OT_BOOL] = "boolean",
	[OT_CIDRS] = "networks", [OT_LIST] = "list",
};

#define FIELD(cfg, o, T) ((T *)(void *)((char *)(cfg) + (o)->offset))
#define CFIELD(cfg, o, T) ((const T *)(const void *)((const char *)(cfg) + (o)->offset))

/* Where a value came from: the file and its line, "-o" and the override's
 * number, or line 0 for defaults. */
struct src {
	const char *file;
	unsigned line;
};

/* Per-listener bookkeeping while loading (parallel to cfg->listeners). */
struct listener_src {
	struct src header;	/* [listen.NAME] line, or the -o creating it */
	struct src address;	/* line 0 = not given */
	struct src role;
	struct src require_tls;
	struct src plaintext_on_loopback;
	int address_ok;		/* given and parsed */
};

struct config_load {
	struct config *cfg;
	struct diag *diags;
	struct src set[NOPTS];		/* line 0 = default */
	struct listener_src *lsrc;
	size_t lcap;
};

/* ---- small helpers ---------------------------------------------------- */

static int
is_space(char c)
{
	return c == ' ' || c == '\t';
}

static void
trim(const char **s, size_t *n)
{
	while (*n > 0 && is_space(**s)) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && is_space((*s)[*n - 1]))
		(*n)--;
}

static void
list_fini(struct config_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Cuts a value for an error message: at most 100 octets shown. */
#define SHOW(v) (int)(strlen(v) > 100 ? 100 : strlen(v)), (v)

/* ---- paths ------------------------------------------------------------ */

/* Lexically normalises an absolute path: collapses "//", "." and "..".
 * Returns a malloc'ed string or NULL if too long. */
static char *
path_normalize(const char *abs)
{
	size_t n = strlen(abs), len = 0;
	char *out;
	const char *p = abs;

	if (n >= CONFIG_PATH_MAX)
		return NULL;
	out = xmalloc(n + 2);
	while (*p != '\0') {
		const char *seg;
		size_t sl;

		while (*p == '/')
			p++;
		seg = p;
		while (*p != '\0' && *p != '/')
			p++;
		sl = (size_t)(p - seg);
		if (sl == 0 || (sl == 1 && seg[0] == '.'))
			continue;
		if (sl == 2 && seg[0] == '.' && seg[1] == '.') {
			while (len > 0 && out[len - 1] != '/')
				len--;
			if (len > 0)
				len--;	/* the '/' before it */
			continue;
		}
		out[len++] = '/';
		memcpy(out + len, seg, sl);
		len += sl;
	}
	if (len == 0)
		out[len++] = '/';
	out[len] = '\0';
	return out;
}

/* value made absolute against dir and normalised; "" stays "". */
static char *
path_resolve(const char *dir, const char *value)
{
	char *joined, *out;

	if (value[0] == '\0')
		return xstrdup("");
	if (value[0] == '/')
		return path_normalize(value);
	joined = xasprintf("%s/%s", dir, value);
	out = path_normalize(joined);
	free(joined);
	return out;
}

/* The absolute folder of the file at path (symbolic links resolved). */
static char *
config_dir_of(const char *path)
{
	const char *slash = path ? strrchr(path, '/') : NULL;
	char *dir, *real, *cwd, *joined, *out;

	if (slash == NULL)
		dir = xstrdup(".");
	else if (slash == path)
		dir = xstrdup("/");
	else
		dir = xstrndup(path, (size_t)(slash - path));
	real = realpath(dir, NULL);
	if (real != NULL) {
		free(dir);
		return real;
	}
	if (dir[0] == '/') {
		out = path_normalize(dir);
		free(dir);
		return out ? out : xstrdup("/");
	}
	cwd = getcwd(NULL, 0);
	joined = xasprintf("%s/%s", cwd ? cwd : "/", dir);
	out = path_normalize(joined);
	free(cwd);
	free(joined);
	free(dir);
	return out ? out : xstrdup("/");
}

/* ---- value parsing ---------------------------------------------------- */

/* Unquotes a trimmed raw value: "..." with \" and \\ inside. Returns a
 * malloc'ed string, or NULL with *err set. */
static char *
value_unquote(const char *raw, size_t n, const char **err)
{
	char *out;
	size_t len = 0, i;

	if (n == 0 || raw[0] != '"')
		return xstrndup(raw, n);
	out = xmalloc(n);
	for (i = 1; i < n; i++) {
		if (raw[i] == '\\' && i + 1 < n && (raw[i + 1] == '"' || raw[i + 1] == '\\')) {
			out[len++] = raw[++i];
			continue;
		}
		if (raw[i] == '"')
			break;
		out[len++] = raw[i];
	}
	if (i >= n) {
		free(out);
		*err = "missing closing quote";
		return NULL;
	}
	if (i + 1 != n) {
		free(out);
		*err = "text after the closing quote";
		return NULL;
	}
	out[len] = '\0';
	return out;
}

/* Decimal number with an optional one-letter suffix from suffixes, each
 * multiplying by the matching entry of mult. -1 on junk or overflow. */
static int
parse_scaled(const char *v, const char *suffixes, const uint64_t *mult, uint64_t *out)
{
	size_t n = strlen(v);
	uint64_t x, m = 1;
	const char *s;

	if (n == 0 || n > 24)
		return -1;
	if (v[n - 1] < '0' || v[n - 1] > '9') {
		s = strchr(suffixes, v[n - 1]);
		if (s == NULL || v[n - 1] == '\0')
			return -1;
		m = mult[s - suffixes];
		n--;
	}
	if (slice_to_u64((struct slice){ (const uint8_t *)v, n }, UINT64_MAX, &x) < 0)
		return -1;
	if (x > UINT64_MAX / m)
		return -1;
	*out = x * m;
	return 0;
}

static const char *const bool_true[] = { "yes", "true", "on", "1" };
static const char *const bool_false[] = { "no", "false", "off", "0" };

static int
parse_bool(const char *v, int *out)
{
	for (size_t i = 0; i < ARRAY_LEN(bool_true); i++) {
		if (strcasecmp(v, bool_true[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(v, bool_false[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

/* Comma-separated words, trimmed, empty ones skipped. With domains set
 * each word is lower-cased, checked as a domain name (one trailing dot
 * allowed and dropped), and the list comes back sorted without repeats
 * so config_is_local_domain() can search it. On error *bad points into
 * v at the bad word (*badlen octets). */
static int
parse_list(const char *v, int domains, struct config_list *out, const char **bad, size_t *badlen)
{
	struct config_list l = { NULL, 0 };
	size_t cap = 0;
	const char *p = v;

	while (*p != '\0') {
		const char *w = p;
		size_t n;

		while (*p != '\0' && *p != ',')
			p++;
		n = (size_t)(p - w);
		if (*p == ',')
			p++;
		trim(&w, &n);
		if (n == 0)
			continue;
		if (domains) {
			size_t dn = (n > 1 && w[n - 1] == '.') ? n - 1 : n;

			if (!domain_name_valid(w, dn)) {
				*bad = w;
				*badlen = n;
				list_fini(&l);
				return -1;
			}
			n = dn;
		}
		if (l.n == cap) {
			cap = cap ? cap * 2 : 4;
			l.v = xrealloc(l.v, cap * sizeof(*l.v));
		}
		l.v[l.n] = xstrndup(w, n);
		if (domains)
			for (char *c = l.v[l.n]; *c; c++)
				if (*c >= 'A' && *c <= 'Z')
					*c = (char)(*c + 32);
		l.n++;
	}
	if (domains && l.n > 1) {
		size_t k = 1;

		qsort(l.v, l.n, sizeof(*l.v), cmp_str);
		for (size_t i = 1; i < l.n; i++) {
			if (strcmp(l.v[i], l.v[k - 1]) == 0)
				free(l.v[i]);
			else
				l.v[k++] = l.v[i];
		}
		l.n = k;
	}
	*out = l;
	return 0;
}

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
		list_fini(FIELD(cfg, o, struct config_list));
		break;
	default:
		break;
	}
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
		s = path_resolve(cfg->dir, v);
		if (s == NULL) {
			diag_add(ld->diags, src.file, src.line, "%s: path too long (more than %d bytes)",
				 o->name, CONFIG_PATH_MAX);
			return -1;
		}
		opt_free(cfg, o);
		*FIELD(cfg, o, char *) = s;
		return 0;
	case OT_UINT:
		if (strlen(v) > 20 || slice_to_u64(slice_from_cstr(v), UINT64_MAX, &x) < 0) {
			diag_add(ld->diags, src.file, src.line, "%s: \"%.*s\" is not a number",
				 o->name, SHOW(v));
			return -1;
		}
		break;
	case OT_SIZE: {
		static const uint64_t mult[] = { 1024, 1024, 1048576, 1048576,
						 1073741824, 1073741824 };

		if (parse_scaled(v, "KkMmGg", mult, &x) < 0) {
			diag_add(ld->diags, src.file, src.line,
				 "%s: \"%.*s\" is not a size (bytes, or a number with suffix K, M or G)",
				 o->name, SHOW(v));
			return -1;
		}
		break;
	}
	case OT_DURATION: {
		static const uint64_t mult[] = { 1, 60, 3600 };

		if (parse_scaled(v, "smh", mult, &x) < 0) {
			diag_add(ld->diags, src.file, src.line,
				 "%s: \"%.*s\" is not a duration (seconds, or a number with suffix s, m or h)",
				 o->name, SHOW(v));
			return -1;
		}
		break;
	}
	case OT_BOOL: {
		int b;

		if (parse_bool(v, &b) < 0) {
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

		if (parse_list(v, strcmp(o->name, "local.domains") == 0 ||
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
	}
	/* the numeric types */
	if (x < o->min || x > o->max) {
		diag_add(ld->diags, src.file, src.line, "%s: %llu is out of range (%llu..%llu%s%s)",
			 o->name, (unsigned long long)x, (unsigned long long)o->min,
			 (unsigned long long)o->max, o->unit[0] ? " " : "", o->unit);
		return -1;
	}
	if (o->type == OT_SIZE)
		*FIELD(cfg, o, uint64_t) = x;
	else
		*FIELD(cfg, o, unsigned) = (unsigned)x;
	return 0;
}

static const struct opt_desc *
opt_find(const char *section, size_t slen, const char *key, size_t klen)
{
	for (size_t i = 0; i < NOPTS; i++) {
		if (strlen(opts[i].section) == slen && memcmp(opts[i].section, section, slen) == 0 &&
		    strlen(opts[i].key) == klen && memcmp(opts[i].key, key, klen) == 0)
			return &opts[i];
	}
	return NULL;
}

static int
section_known(const char *s, size_t n)
{
	for (size_t i = 0; i < NOPTS; i++)
		if (strlen(opts[i].section) == n && memcmp(opts[i].section, s, n) == 0)
			return 1;
	return 0;
}

/* ---- listeners -------------------------------------------------------- */

static int
listener_name_valid(const char *s, size_t n)
{
	if (n == 0 || n > CONFIG_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* Index of listener name, creating it (with header src) when create is
 * set; -1 if absent or too many. */
static long
listener_get(struct config_load *ld, const char *name, size_t n, int create, struct src header)
{
	struct config *cfg = ld->cfg;
	struct config_listener *l;

	for (size_t i = 0; i < cfg->nlisteners; i++)
		if (strlen(cfg->listeners[i].name) == n && memcmp(cfg->listeners[i].name, name, n) == 0)
			return (long)i;
	if (!create)
		return -1;
	if (cfg->nlisteners >= CONFIG_LISTENERS_MAX) {
		diag_add(ld->diags, header.file, header.line, "too many listeners (at most %d)",
			 CONFIG_LISTENERS_MAX);
		return -1;
	}
	if (cfg->nlisteners == ld->lcap) {
		ld->lcap = ld->lcap ? ld->lcap * 2 : 4;
		cfg->listeners = xrealloc(cfg->listeners, ld->lcap * sizeof(*cfg->listeners));
		ld->lsrc = xrealloc(ld->lsrc, ld->lcap * sizeof(*ld->lsrc));
	}
	l = &cfg->listeners[cfg->nlisteners];
	memset(l, 0, sizeof(*l));
	l->name = xstrndup(name, n);
	l->address = NULL;
	l->role = CONFIG_ROLE_MX;
	l->plaintext_on_loopback = -1;
	memset(&ld->lsrc[cfg->nlisteners], 0, sizeof(*ld->lsrc));
	ld->lsrc[cfg->nlisteners].header = header;
	return (long)cfg->nlisteners++;
}

/* Sets a yes/no key of listener l (its source in *where) to v. */
static void
listener_set_bool(struct config_load *ld, const struct config_listener *l, const char *key,
		  struct src *where, int *out, const char *v, struct src src, int dup_check)
{
	if (dup_check && where->line != 0) {
		diag_add(ld->diags, src.file, src.line,
			 "duplicate option listen.%s.%s (already set at line %u)", l->name, key,
			 where->line);
		return;
	}
	*where = src;
	if (strcmp(v, "yes") == 0)
		*out = 1;
	else if (strcmp(v, "no") == 0)
		*out = 0;
	else
		diag_add(ld->diags, src.file, src.line, "listen.%s.%s: %.*s is not yes or no",
			 l->name, key, SHOW(v));
}

/* Sets listener idx's key to v. dup_check: report a second setting as a
 * duplicate (file lines) rather than replacing it (overrides). */
static void
listener_set(struct config_load *ld, size_t idx, const char *key, size_t klen, const char *v,
	     struct src src, int dup_check)
{
	struct config_listener *l = &ld->cfg->listeners[idx];
	struct listener_src *ls = &ld->lsrc[idx];

	if (klen == 7 && memcmp(key, "address", 7) == 0) {
		struct sockaddr_storage ss;
		socklen_t len;

		if (dup_check && ls->address.line != 0) {
			diag_add(ld->diags, src.file, src.line,
				 "duplicate option listen.%s.address (already set at line %u)",
				 l->name, ls->address.line);
			return;
		}
		ls->address = src;
		if (sockaddr_parse_hostport(v, &ss, &len) < 0) {
			diag_add(ld->diags, src.file, src.line,
				 "listen.%s.address: \"%.*s\" is not host:port (e.g. 127.0.0.1:25, [::1]:25, *:25)",
				 l->name, SHOW(v));
			return;
		}
		free(l->address);
		l->address = xstrdup(v);
		l->addr = ss;
		l->addrlen = len;
		ls->address_ok = 1;
	} else if (klen == 4 && memcmp(key, "role", 4) == 0) {
		if (dup_check && ls->role.line != 0) {
			diag_add(ld->diags, src.file, src.line,
				 "duplicate option listen.%s.role (already set at line %u)",
				 l->name, ls->role.line);
			return;
		}
		ls->role = src;
		int found = 0;
		for (int r = CONFIG_ROLE_MX; r <= CONFIG_ROLE_POP3S; r++) {
			if (strcmp(v, config_role_name((enum config_role)r)) == 0) {
				l->role = (enum config_role)r;
				found = 1;
			}
		}
		if (!found) {
			diag_add(ld->diags, src.file, src.line,
				 "listen.%s.role: role %.*s is not supported (mx, submission, submissions, pop3, pop3s)",
				 l->name, SHOW(v));
			return;
		}
	} else if (klen == 11 && memcmp(key, "require_tls", 11) == 0) {
		listener_set_bool(ld, l, "require_tls", &ls->require_tls, &l->require_tls, v, src,
				  dup_check);
	} else if (klen == 21 && memcmp(key, "plaintext_on_loopback", 21) == 0) {
		listener_set_bool(ld, l, "plaintext_on_loopback", &ls->plaintext_on_loopback,
				  &l->plaintext_on_loopback, v, src, dup_check);
	} else {
		diag_add(ld->diags, src.file, src.line, "unknown option listen.%s.%.*s",
			 l->name, (int)(klen > 100 ? 100 : klen), key);
	}
}

/* ---- the file --------------------------------------------------------- */

/* Applies "section" "key" = raw value from src; shared by the file and the
 * overrides. section is "server" or "listen.NAME". */
static void
apply(struct config_load *ld, const char *sec, size_t slen, const char *key, size_t klen,
      const char *raw, size_t rlen, struct src src, int from_file)
{
	const char *err = NULL;
	char *v;

	v = value_unquote(raw, rlen, &err);
	if (v == NULL) {
		diag_add(ld->diags, src.file, src.line, "%s", err);
		return;
	}
	if (slen > 7 && memcmp(sec, "listen.", 7) == 0) {
		long idx = listener_get(ld, sec + 7, slen - 7, !from_file, src);

		if (idx >= 0)
			listener_set(ld, (size_t)idx, key, klen, v, src, from_file);
	} else {
		const struct opt_desc *o = opt_find(sec, slen, key, klen);

		if (o == NULL) {
			diag_add(ld->diags, src.file, src.line, "unknown option %.*s.%.*s",
				 (int)slen, sec, (int)(klen > 100 ? 100 : klen), key);
		} else if (from_file && ld->set[o - opts].line != 0) {
			diag_add(ld->diags, src.file, src.line,
				 "duplicate option %s (already set at line %u)",
				 o->name, ld->set[o - opts].line);
		} else {
			/* recorded even when the value is bad, so that a second
			 * line is still reported as a duplicate */
			ld->set[o - opts] = src;
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

static char *
read_config_file(const char *path, size_t *len_out, struct diag *diags)
{
	FILE *f = fopen(path, "rb");
	struct buf b;
	char chunk[16384];
	size_t n;

	if (f == NULL) {
		diag_add(diags, path, 0, "cannot open: %s", strerror(errno));
		return NULL;
	}
	buf_init(&b, CONFIG_FILE_MAX);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (buf_append(&b, chunk, n) < 0) {
			diag_add(diags, path, 0, "file too large (more than %d bytes)", CONFIG_FILE_MAX);
			buf_fini(&b);
			fclose(f);
			return NULL;
		}
	}
	if (ferror(f)) {
		diag_add(diags, path, 0, "cannot read: %s", strerror(errno));
		buf_fini(&b);
		fclose(f);
		return NULL;
	}
	fclose(f);
	*len_out = b.len;
	buf_cstr(&b);
	return (char *)b.data;
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

	text = read_config_file(path, &len, ld->diags);
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
		trim(&s, &n);
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
			trim(&name, &nn);
			if (nn > 7 && memcmp(name, "listen.", 7) == 0) {
				if (!listener_name_valid(name + 7, nn - 7)) {
					diag_add(ld->diags, path, lineno,
						 "bad listener name \"%.*s\" (letters, digits, '_' and '-', at most %d)",
						 (int)(nn - 7 > 100 ? 100 : nn - 7), name + 7, CONFIG_NAME_MAX);
					continue;
				}
				if (listener_get(ld, name + 7, nn - 7, 1, src) < 0)
					continue;
			} else if (!section_known(name, nn)) {
				if (nn == 6 && memcmp(name, "listen", 6) == 0)
					diag_add(ld->diags, path, lineno,
						 "unknown section [listen] (listeners are [listen.NAME])");
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

			trim(&k, &kn);
			trim(&v, &vn);
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
	const char *eq = strchr(ov, '='), *name = ov, *dot, *v;
	size_t nn, vn;

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
	trim(&name, &nn);
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
	trim(&v, &vn);
	{
		const char *sec = name, *key = dot + 1;
		size_t slen = (size_t)(dot - name), klen = nn - slen - 1;

		if (!key_valid(key, klen)) {
			diag_add(ld->diags, src.file, src.line, "bad option name \"%.*s\"",
				 (int)(klen > 100 ? 100 : klen), key);
			return;
		}
		if (slen > 7 && memcmp(sec, "listen.", 7) == 0) {
			if (!listener_name_valid(sec + 7, slen - 7)) {
				diag_add(ld->diags, src.file, src.line,
					 "bad listener name \"%.*s\" (letters, digits, '_' and '-', at most %d)",
					 (int)(slen - 7 > 100 ? 100 : slen - 7), sec + 7, CONFIG_NAME_MAX);
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

static int
sockaddr_same(const struct config_listener *a, const struct config_listener *b)
{
	return a->addrlen == b->addrlen && memcmp(&a->addr, &b->addr, a->addrlen) == 0;
}

/* Disabled domains must be local. */
static void
config_check_domains(struct config_load *ld)
{
	struct config *cfg = ld->cfg;
	const struct opt_desc *o = opt_find("local", 5, "disabled_domains", 16);

	for (size_t i = 0; i < cfg->local_disabled_domains.n; i++) {
		const char *d = cfg->local_disabled_domains.v[i];

		if (!config_is_local_domain(cfg, d, strlen(d)))
			diag_add(ld->diags, ld->set[o - opts].file, ld->set[o - opts].line,
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
				 "listen.%s: missing role (mx, submission, submissions, pop3, pop3s)", l->name);
		if (!ls->address_ok)
			continue;
		for (size_t j = 0; j < i; j++) {
			if (ld->lsrc[j].address_ok && sockaddr_same(&cfg->listeners[j], l)) {
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
		char *p = path_resolve(cfg->dir, cfg->log_target);

		if (p == NULL) {
			const struct opt_desc *o = opt_find("log", 3, "target", 6);

			diag_add(ld->diags, ld->set[o - opts].file, ld->set[o - opts].line,
				 "log.target: path too long (more than %d bytes)", CONFIG_PATH_MAX);
		} else {
			free(cfg->log_target);
			cfg->log_target = p;
		}
	}

	config_check_domains(ld);
}

/* ---- snapshots -------------------------------------------------------- */

static void
config_free(struct config *cfg)
{
	for (size_t i = 0; i < NOPTS; i++)
		opt_free(cfg, &opts[i]);
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		free(cfg->listeners[i].name);
		free(cfg->listeners[i].address);
	}
	free(cfg->listeners);
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

	if (o != NULL && ld->set[o - opts].line != 0) {
		file = ld->set[o - opts].file;
		line = ld->set[o - opts].line;
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
	for (size_t i = 0; i < NOPTS; i++) {
		struct src def = { "options.def", 0 };

		/* options.def is ours: a default that does not parse is a bug */
		if (opt_set(&ld, &opts[i], opts[i].def, def) < 0)
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

int
config_listener_needs_tls(const struct config_listener *l)
{
	return l->require_tls || l->role == CONFIG_ROLE_SUBMISSIONS ||
	       l->role == CONFIG_ROLE_POP3S;
}

static int
peer_is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		const uint8_t *b = (const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr;
		return b[0] == 127;
	}
	if (ss->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
		if (IN6_IS_ADDR_LOOPBACK(a))
			return 1;
		return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
	}
	return 0;
}

int
config_plaintext_allowed(const struct config *cfg, const struct config_listener *lst,
			 const struct sockaddr_storage *peer)
{
	int on = cfg->auth_plaintext_on_loopback;

	if (lst != NULL) {
		if (config_listener_needs_tls(lst))
			return 0;
		if (lst->plaintext_on_loopback >= 0)
			on = lst->plaintext_on_loopback;
	}
	return on && peer_is_loopback(peer);
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
	}
	return 0;
}

const char *
config_role_name(enum config_role role)
{
	switch (role) {
	case CONFIG_ROLE_MX:
		return "mx";
	case CONFIG_ROLE_POP3:
		return "pop3";
	case CONFIG_ROLE_SUBMISSION:
		return "submission";
	case CONFIG_ROLE_SUBMISSIONS:
		return "submissions";
	case CONFIG_ROLE_POP3S:
		return "pop3s";
	}
	return NULL;
}

/* 1 if both have the same listeners (by name, address and role). */
static int
listeners_equal(const struct config *a, const struct config *b)
{
	if (a->nlisteners != b->nlisteners)
		return 0;
	for (size_t i = 0; i < a->nlisteners; i++) {
		const struct config_listener *x = &a->listeners[i];
		size_t j;

		for (j = 0; j < b->nlisteners; j++) {
			const struct config_listener *y = &b->listeners[j];

			if (strcmp(x->name, y->name) == 0 && x->role == y->role &&
			    x->require_tls == y->require_tls && sockaddr_same(x, y))
				break;
		}
		if (j == b->nlisteners)
			return 0;
	}
	return 1;
}

void
config_diff_restart(const struct config *oldc, const struct config *newc,
		    void (*fn)(const char *option, void *arg), void *arg)
{
	for (size_t i = 0; i < NOPTS; i++)
		if (!opts[i].reload && !opt_equal(oldc, newc, &opts[i]))
			fn(opts[i].name, arg);
	if (!listeners_equal(oldc, newc))
		fn("listen", arg);
}

/* ---- documentation ---------------------------------------------------- */

/* A byte count or seconds shown with the largest exact unit, for humans. */
static void
md_human(FILE *out, enum opt_type t, uint64_t v)
{
	if (t == OT_SIZE && v > 0) {
		if (v % 1073741824 == 0)
			fprintf(out, " (%lluG)", (unsigned long long)(v / 1073741824));
		else if (v % 1048576 == 0)
			fprintf(out, " (%lluM)", (unsigned long long)(v / 1048576));
		else if (v % 1024 == 0)
			fprintf(out, " (%lluK)", (unsigned long long)(v / 1024));
	} else if (t == OT_DURATION && v >= 60) {
		if (v % 3600 == 0)
			fprintf(out, " (%lluh)", (unsigned long long)(v / 3600));
		else if (v % 60 == 0)
			fprintf(out, " (%llum)", (unsigned long long)(v / 60));
	}
}

void
config_markdown(FILE *out)
{
	const char *prev = "";

	fputs("# Postern configuration reference\n"
	      "\n"
	      "<!-- Generated by `postern config-doc` from src/config/options.def;\n"
	      "     do not edit by hand. -->\n"
	      "\n"
	      "Postern reads one file, `postern.conf`, in INI style:\n"
	      "\n"
	      "```ini\n"
	      "# a comment (a line starting with '#' or ';')\n"
	      "[server]\n"
	      "hostname = mx.example.test\n"
	      "\n"
	      "[listen.mx]\n"
	      "address = 127.0.0.1:2525\n"
	      "role = mx\n"
	      "```\n"
	      "\n"
	      "- A line is a `[section]` header, a `key = value` pair, a comment or\n"
	      "  blank. Comments take a whole line: a `#` after a value is part of it.\n"
	      "- Space around keys and values is ignored. A value may be written in\n"
	      "  double quotes to keep leading or trailing space; inside quotes, `\\\"`\n"
	      "  is a quote and `\\\\` a backslash.\n"
	      "- Unknown sections and options, an option given twice, a value that\n"
	      "  does not parse or lies outside its range are errors. `postern check`\n"
	      "  reports every one of them as `FILE:LINE: message` and exits with 78;\n"
	      "  at start the server refuses to run, and on reload (SIGHUP) it keeps\n"
	      "  the configuration it has.\n"
	      "- Lines are at most 4096 bytes, the file at most 1 MiB.\n"
	      "- `-o section.key=value` on the command line (for example\n"
	      "  `-o limits.recipients=50` or `-o listen.mx.address=[::1]:2525`) is\n"
	      "  applied after the file and checked the same way; its errors are shown\n"
	      "  as `-o:N: message`, N counting the overrides from 1.\n"
	      "\n"
	      "Value types:\n"
	      "\n"
	      "| type | written as |\n"
	      "|---|---|\n"
	      "| string | any text |\n"
	      "| path | a file or folder; a relative path (in the file or in `-o`) is relative to the folder of the configuration file; empty means unset |\n"
	      "| number | a decimal number without sign |\n"
	      "| size | bytes; the suffixes `K`, `M`, `G` multiply by 1024, 1024 K, 1024 M |\n"
	      "| duration | seconds; the suffixes `s`, `m`, `h` mean seconds, minutes, hours |\n"
	      "| boolean | `yes`/`no`, `true`/`false`, `on`/`off`, `1`/`0` |\n"
	      "| networks | addresses and CIDR networks separated by commas or spaces: `192.0.2.0/24, 2001:db8::/32, 198.51.100.7` |\n"
	      "| list | words separated by commas (`local.domains`: domain names, case ignored) |\n"
	      "\n"
	      "\"Reload\" says whether SIGHUP applies a changed value (to new sessions;\n"
	      "running ones keep the configuration they began with) or whether it\n"
	      "takes a restart (the old value stays in force and\n"
	      "CONFIG-RESTART-NEEDED is logged).\n", out);

	for (size_t i = 0; i < NOPTS; i++) {
		const struct opt_desc *o = &opts[i];

		if (strcmp(o->section, prev) != 0) {
			fprintf(out, "\n## [%s]\n", o->section);
			prev = o->section;
		}
		fprintf(out, "\n### %s\n\n%s\n\n", o->name, o->summary);
		fputs("| | |\n|---|---|\n", out);
		fprintf(out, "| type | %s |\n", type_names[o->type]);
		if (o->def[0] == '\0')
			fputs("| default | (empty) |\n", out);
		else {
			fprintf(out, "| default | `%s`", o->def);
			if (o->type == OT_SIZE || o->type == OT_DURATION) {
				uint64_t v;

				if (slice_to_u64(slice_from_cstr(o->def), UINT64_MAX, &v) == 0)
					md_human(out, o->type, v);
			}
			fputs(" |\n", out);
		}
		if (o->type == OT_UINT || o->type == OT_SIZE || o->type == OT_DURATION) {
			fprintf(out, "| range | %llu to %llu", (unsigned long long)o->min,
				(unsigned long long)o->max);
			md_human(out, o->type, o->max);
			fputs(" |\n", out);
		}
		if (o->unit[0] != '\0')
			fprintf(out, "| unit | %s |\n", o->unit);
		fprintf(out, "| reload | %s |\n",
			o->reload ? "yes: SIGHUP applies it to new sessions"
				  : "no: takes effect at restart");
		fprintf(out, "\n%s\n", o->text);
	}

	fputs("\n## [listen.NAME]\n"
	      "\n"
	      "Each listening socket is one section named `listen.` and a name of\n"
	      "your choice (letters, digits, `_` and `-`, at most 64), for example\n"
	      "`[listen.mx]`. A configuration file needs at least one, and at most 64.\n"
	      "address and role are required. Changing, adding or removing a listener takes a\n"
	      "restart (reported as `listen` in CONFIG-RESTART-NEEDED).\n"
	      "\n"
	      "### listen.NAME.address\n"
	      "\n"
	      "Where to listen, as `host:port` with a numeric address: `127.0.0.1:2525`,\n"
	      "`0.0.0.0:25` (every IPv4 address), `[::1]:2525` (IPv6 in brackets), or\n"
	      "`*:25` (every IPv6 and IPv4 address). Ports are 1 to 65535. Two\n"
	      "listeners may not have the same address.\n"
	      "\n"
	      "### listen.NAME.role\n"
	      "\n"
	      "What the socket serves. `mx`: the SMTP receiver for mail to local\n"
	      "domains, and relay for trusted networks. `pop3`: POP3 (RFC 1939)\n"
	      "access to the local accounts' Maildirs.\n"
	      "`submission` (RFC 6409): AUTH before MAIL. `submissions` and `pop3s`:\n"
	      "the same on implicit TLS (RFC 8314).\n"
	      "\n"
	      "### listen.NAME.require_tls\n"
	      "\n"
	      "`yes` or `no` (default). With `yes`, MAIL, AUTH (SMTP) and USER, PASS,\n"
	      "AUTH (POP3) are refused before STARTTLS/STLS, from every client address,\n"
	      "and EHLO and CAPA do not offer a login before TLS.\n"
	      "\n"
	      "A listener with `require_tls = yes`, or with role `submissions` or\n"
	      "`pop3s`, needs a usable certificate (tls.cert_file, tls.key_file):\n"
	      "without one `postern serve` logs STARTUP-LISTENER-NEEDS-TLS and exits 78,\n"
	      "and `postern check` reports it.\n"
	      "\n"
	      "### listen.NAME.plaintext_on_loopback\n"
	      "\n"
	      "`yes` or `no`; unset means auth.plaintext_on_loopback. Whether this\n"
	      "listener takes a password without TLS from a loopback client. Ignored\n"
	      "(always no) on a listener that needs TLS (see above).\n"
	      "\n"
	      "## The accounts file\n"
	      "\n"
	      "`local.accounts` names a file in the Dovecot passwd-file format, one\n"
	      "account per line:\n"
	      "\n"
	      "```\n"
	      "# user@domain:{SCHEME}hash[:uid:gid:gecos:home:shell:extra fields]\n"
	      "alice@example.test:{CRYPT}$y$j9T$...\n"
	      "bob@example.test:{SHA512-CRYPT}$6$...\n"
	      "carol@example.test:{BLF-CRYPT}$2b$05$...\n"
	      "```\n"
	      "\n"
	      "- Blank lines and lines starting with `#` are ignored.\n"
	      "- The account name is `local@domain`: the local part a dot-atom\n"
	      "  (UTF-8 allowed, at most 64 bytes), the domain a host name (IDNs in\n"
	      "  their `xn--` form). Lookups ignore ASCII case. Each account appears\n"
	      "  once.\n"
	      "- The password is `{CRYPT}` followed by any crypt(3) hash starting with\n"
	      "  `$` (yescrypt `$y$` is what `postern passwd` makes), `{BLF-CRYPT}`\n"
	      "  followed by a bcrypt hash (`$2b$`), or `{SHA512-CRYPT}` followed by a\n"
	      "  SHA-512-crypt hash (`$6$`). Scheme names ignore case. A hash with no\n"
	      "  `{SCHEME}` is read as `{CRYPT}`. An empty password means the account\n"
	      "  receives mail but cannot log in.\n"
	      "- The fields uid, gid, gecos, home and shell are Dovecot's and are not\n"
	      "  read. After the seventh `:` come the extra fields, separated by spaces,\n"
	      "  each `key=value` (Dovecot style). Postern reads these and skips any\n"
	      "  other (Dovecot's own, such as `userdb_mail=...` or `nologin`):\n"
	      "\n"
	      "| field | meaning |\n"
	      "|---|---|\n"
	      "| `disabled=yes` | the account refuses mail: 550 5.2.1 (RCPT-MAILBOX-DISABLED) |\n"
	      "| `spamtrap=yes` | a spam trap: accepts nothing, logs the client (RCPT-SPAMTRAP) |\n"
	      "| `pop3=no` | no POP3 access (default yes) |\n"
	      "| `quota=SIZE` | mailbox quota in bytes; suffixes K, M, G, T multiply by 1024; 0 = none |\n"
	      "| `quota_messages=N` | most messages in the mailbox; 0 = none |\n"
	      "| `forward=a@x,b@y` | forward to these addresses (a bare local part means the account's domain), at most 100 |\n"
	      "| `forward_keep=yes` | with `forward`, also keep a copy in this mailbox (default no) |\n"
	      "\n"
	      "  Booleans take yes/no, true/false, on/off, 1/0; a bare `disabled` or\n"
	      "  `spamtrap` means yes. For example:\n"
	      "  `dave@example.test:{CRYPT}$y$...:::::: quota=100M disabled=yes`\n"
	      "  (seven `:`-separated fields, the last ones empty, then the extras).\n"
	      "- Lines are at most 4096 bytes. Errors are reported as\n"
	      "  `FILE:LINE: message` with the accounts file's own name and line, along\n"
	      "  with the configuration's errors.\n"
	      "\n"
	      "## The aliases file\n"
	      "\n"
	      "`local.aliases` names a file of aliases, one per line:\n"
	      "\n"
	      "```\n"
	      "# alias@domain: target, target, ...\n"
	      "sales@example.test: alice, bob@example.test, partner@example.org\n"
	      "info@example.test: sales\n"
	      "@example.test: alice                # catch-all of example.test\n"
	      "!old@example.test: alice            # disabled\n"
	      "trap@example.test: :spamtrap        # spam trap\n"
	      "team@example.test: alice, bob,\n"
	      "    carol, dave                     # indented: more targets of the entry above\n"
	      "```\n"
	      "\n"
	      "- Blank lines and lines starting with `#` are ignored; a `#` after text\n"
	      "  is not a comment.\n"
	      "- The name before `:` is `local@domain` in one of `local.domains`, or\n"
	      "  `@domain` for that domain's catch-all. It must not also be an account,\n"
	      "  another alias or a list (case is ignored).\n"
	      "- Targets are separated by commas and/or spaces. Each is `local@domain`\n"
	      "  (local or remote) or a bare local part, meaning the alias's own domain;\n"
	      "  targets may be accounts, aliases, lists or remote addresses. At most\n"
	      "  1000 targets per alias. A line starting with a space or tab adds\n"
	      "  targets to the alias above it.\n"
	      "- A leading `!` disables the alias: 550 5.2.1 (RCPT-ALIAS-DISABLED).\n"
	      "- `:spamtrap` as the only target makes the address a spam trap.\n"
	      "\n"
	      "## The lists file\n"
	      "\n"
	      "`local.lists` names a file of distribution lists, INI style:\n"
	      "\n"
	      "```ini\n"
	      "[staff@example.test]\n"
	      "members = alice, bob@example.test, partner@example.org\n"
	      "members = carol                # repeatable: adds members\n"
	      "senders = members              # anyone (default) | members | addresses, @domains\n"
	      "\n"
	      "[board@example.test]\n"
	      "members = alice\n"
	      "senders = members, boss@example.org, @partner.example\n"
	      "disabled = no\n"
	      "```\n"
	      "\n"
	      "- `[list@domain]` starts a list; the same rules as alias names apply\n"
	      "  (a local domain, not an account, alias or other list).\n"
	      "- `members`: addresses or bare local parts (the list's domain), at most\n"
	      "  1000; an empty list refuses mail (RCPT-LIST-EMPTY).\n"
	      "- `senders`: who may post. `anyone` (the default, and the only rule\n"
	      "  that admits the null sender `<>`); or any mix of `members` (the\n"
	      "  envelope sender is a member address as written), addresses, and\n"
	      "  `@domain` for every sender of that domain; at most 1000 entries.\n"
	      "  Other senders get 550 5.7.2 (RCPT-LIST-NOT-AUTHORIZED).\n"
	      "- `disabled = yes` refuses mail: 550 5.2.1 (RCPT-ALIAS-DISABLED).\n"
	      "\n"
	      "## How a recipient is resolved\n"
	      "\n"
	      "For a recipient in a local domain, in this order:\n"
	      "\n"
	      "1. a domain in `local.disabled_domains` refuses every address\n"
	      "   (RCPT-DOMAIN-DISABLED), postmaster included;\n"
	      "2. an account, alias or list with exactly this local part;\n"
	      "3. with `local.plus_addressing`, the part before the first\n"
	      "   `local.plus_separator` (`alice+news` finds `alice`);\n"
	      "4. `postmaster` is always accepted (RFC 5321 4.5.1), to the Maildir\n"
	      "   of postmaster@domain when there is no such account or alias;\n"
	      "5. the domain's catch-all;\n"
	      "6. otherwise 550 5.1.1 (RCPT-UNKNOWN-USER).\n"
	      "\n"
	      "Aliases, list members and forwards are expanded the same way (except\n"
	      "that the catch-all applies only to the address given at RCPT), down to\n"
	      "accounts and remote addresses; duplicates are delivered once. A target\n"
	      "naming a missing local address refuses the recipient with 451 4.3.5\n"
	      "(RCPT-ALIAS-DANGLING); a cycle, or nesting deeper than\n"
	      "`local.alias_max_depth`, with 451 4.4.6 (RCPT-ALIAS-LOOP); more than\n"
	      "1000 destinations with 451 4.5.3 (RCPT-EXPANSION-TOO-LARGE). The\n"
	      "recipient's own state refuses it (disabled, spam trap, list rules); a\n"
	      "disabled or refusing target deeper down is skipped, and if nothing is\n"
	      "left the first skipped target's reason is the reply. The three files\n"
	      "are read again on SIGHUP; with an error in any of them the old\n"
	      "configuration stays in force.\n", out);
}
