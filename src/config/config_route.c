/*
 * config_route.c - [route.NAME] sections (domains, via, tls, tls_ca_file,
 * auth_file, rate): their parsing and load-time checks, the credentials
 * read from auth files, the lookup of a recipient domain's route
 * (config_route_for) and its description for `postern check --route`;
 * and the checks of the string options of [outbound].
 *
 * Routes live in the snapshot like listeners; nothing here runs after
 * load except the lookups, which neither allocate nor block.
 */
#include "config_private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "domain.h"

#define AUTH_FILE_MAX 4096	/* octets of an auth_file */
#define ROUTE_DEFAULT_NAME "(default)"

/* ---- names ------------------------------------------------------------ */

const char *
config_route_via_name(enum route_via via)
{
	switch (via) {
	case ROUTE_VIA_MX:
		return "mx";
	case ROUTE_VIA_HOSTS:
		return "hosts";
	case ROUTE_VIA_REFUSE:
		return "refuse";
	}
	return "?";
}

static const char *const tls_names[] = {
	[ROUTE_TLS_NONE] = "none", [ROUTE_TLS_MAY] = "may",
	[ROUTE_TLS_ENCRYPT] = "encrypt", [ROUTE_TLS_VERIFY] = "verify",
};

const char *
config_route_tls_name(enum route_tls tls)
{
	return (unsigned)tls < ARRAY_LEN(tls_names) ? tls_names[tls] : "?";
}

/* ---- [outbound] string options ----------------------------------------- */

const char *
config_check_outbound(const char *key, const char *v)
{
	if (strcmp(key, "helo_name") == 0) {
		if (v[0] != '\0' && !domain_name_valid(v, strlen(v)))
			return "is not a host name";
	} else if (strcmp(key, "bind_address") == 0) {
		struct in_addr a;

		if (v[0] != '\0' && inet_pton(AF_INET, v, &a) != 1)
			return "is not an IPv4 address (e.g. 192.0.2.25; empty: any)";
	} else if (strcmp(key, "bind_address6") == 0) {
		struct in6_addr a;

		if (v[0] != '\0' && inet_pton(AF_INET6, v, &a) != 1)
			return "is not an IPv6 address (e.g. 2001:db8::25; empty: any)";
	} else if (strcmp(key, "address_preference") == 0) {
		if (strcmp(v, "ipv6") != 0 && strcmp(v, "ipv4") != 0 && strcmp(v, "any") != 0)
			return "is not ipv6, ipv4 or any";
	} else if (strcmp(key, "destination_key") == 0) {
		if (strcmp(v, "domain") != 0 && strcmp(v, "mx_domain") != 0)
			return "is not domain or mx_domain";
	}
	return NULL;
}

/* ---- via ---------------------------------------------------------------- */

static void
hosts_free(struct config_route_host *h, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(h[i].name);
	free(h);
}

/* ":port" at p (or nothing): 0 = none, or -1 if bad. */
static int
via_port(const char *p, size_t n, uint16_t *port)
{
	uint64_t x;

	*port = 0;
	if (n == 0)
		return 0;
	if (p[0] != ':' || n < 2 || n > 6 ||
	    slice_to_u64((struct slice){ (const uint8_t *)p + 1, n - 1 }, 65535, &x) < 0 || x == 0)
		return -1;
	*port = (uint16_t)x;
	return 0;
}

/* One host of a via list (w, n octets, trimmed) into h. */
static int
via_host(const char *w, size_t n, struct config_route_host *h, char *err, size_t errlen)
{
	char text[256];
	const char *host = w, *rest;
	size_t hl;

	memset(h, 0, sizeof(*h));
	if (w[0] == '[') {
		const char *close = memchr(w, ']', n);

		if (close == NULL) {
			snprintf(err, errlen, "\"%.*s\" has no closing ']'", (int)(n > 80 ? 80 : n), w);
			return -1;
		}
		host = w + 1;
		hl = (size_t)(close - host);
		rest = close + 1;
	} else {
		const char *colon = memchr(w, ':', n);

		hl = colon ? (size_t)(colon - w) : n;
		rest = w + hl;
		h->mx_lookup = 1;
		if (colon != NULL && memchr(colon + 1, ':', n - hl - 1) != NULL) {
			snprintf(err, errlen, "\"%.*s\": write an IPv6 address as [IPv6:address]:port",
				 (int)(n > 80 ? 80 : n), w);
			return -1;
		}
	}
	if (via_port(rest, (size_t)(w + n - rest), &h->port) < 0) {
		snprintf(err, errlen, "\"%.*s\": bad port (1 to 65535 after ':')",
			 (int)(n > 80 ? 80 : n), w);
		return -1;
	}
	if (hl == 0 || hl >= sizeof(text)) {
		snprintf(err, errlen, "\"%.*s\": no host", (int)(n > 80 ? 80 : n), w);
		return -1;
	}
	memcpy(text, host, hl);
	text[hl] = '\0';
	if (!h->mx_lookup) {
		const char *a6 = strncasecmp(text, "ipv6:", 5) == 0 ? text + 5 : NULL;
		struct sockaddr_in *sin = (struct sockaddr_in *)(void *)&h->addr;
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)&h->addr;

		if (a6 == NULL && strchr(text, ':') != NULL)
			a6 = text;	/* [2001:db8::1], as listen.NAME.address writes it */
		if (a6 != NULL) {
			if (inet_pton(AF_INET6, a6, &sin6->sin6_addr) != 1) {
				snprintf(err, errlen, "\"%s\" is not an IPv6 address", a6);
				return -1;
			}
			sin6->sin6_family = AF_INET6;
			h->addrlen = sizeof(*sin6);
			h->is_literal_ip = 1;
			h->name = xstrdup(a6);
			return 0;
		}
		if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
			sin->sin_family = AF_INET;
			h->addrlen = sizeof(*sin);
			h->is_literal_ip = 1;
			h->name = xstrdup(text);
			return 0;
		}
	} else {
		struct in_addr a;

		if (inet_pton(AF_INET, text, &a) == 1) {
			snprintf(err, errlen, "\"%s\": an address has no MX; write [%s]", text, text);
			return -1;
		}
	}
	if (text[hl - 1] == '.')
		text[--hl] = '\0';
	if (!domain_name_valid(text, hl)) {
		snprintf(err, errlen, "\"%.*s\" is not a host name", (int)(hl > 80 ? 80 : hl), text);
		return -1;
	}
	for (size_t i = 0; i < hl; i++)
		if (text[i] >= 'A' && text[i] <= 'Z')
			text[i] = (char)(text[i] + 32);
	h->name = xstrdup(text);
	return 0;
}

int
config_route_parse_via(struct config_route *r, const char *v, char *err, size_t errlen)
{
	struct config_route_host *hosts;
	size_t n = 0;
	const char *p = v;

	if (strcmp(v, "mx") == 0 || strcmp(v, "refuse") == 0) {
		hosts_free(r->hosts, r->nhosts);
		r->hosts = NULL;
		r->nhosts = 0;
		r->via = v[0] == 'm' ? ROUTE_VIA_MX : ROUTE_VIA_REFUSE;
		return 0;
	}
	hosts = xcalloc(CONFIG_ROUTE_HOSTS_MAX, sizeof(*hosts));
	for (;;) {
		size_t wn;
		const char *w = config_next_word(&p, &wn);

		if (w == NULL)
			break;
		if ((wn == 2 && memcmp(w, "mx", 2) == 0) || (wn == 6 && memcmp(w, "refuse", 6) == 0)) {
			snprintf(err, errlen, "%.*s stands alone, not in a list of hosts", (int)wn, w);
			goto fail;
		}
		if (n == CONFIG_ROUTE_HOSTS_MAX) {
			snprintf(err, errlen, "more than %d hosts", CONFIG_ROUTE_HOSTS_MAX);
			goto fail;
		}
		if (via_host(w, wn, &hosts[n], err, errlen) < 0)
			goto fail;
		n++;
	}
	if (n == 0) {
		snprintf(err, errlen, "empty (mx, refuse, or hosts: host, host:port, [host]:port)");
		goto fail;
	}
	hosts_free(r->hosts, r->nhosts);
	r->hosts = hosts;
	r->nhosts = n;
	r->via = ROUTE_VIA_HOSTS;
	return 0;
fail:
	hosts_free(hosts, n);
	return -1;
}

/* ---- sections ----------------------------------------------------------- */

static void
route_init(struct config_route *r, const char *name, size_t n)
{
	memset(r, 0, sizeof(*r));
	r->name = xstrndup(name, n);
	r->via = ROUTE_VIA_MX;
	r->tls = ROUTE_TLS_MAY;
	r->tls_ca_file = xstrdup("");
	r->auth_file = xstrdup("");
}

void
config_route_fini(struct config_route *r)
{
	free(r->name);
	config_list_fini(&r->domains);
	hosts_free(r->hosts, r->nhosts);
	free(r->tls_ca_file);
	free(r->auth_file);
	free(r->auth_user);
	if (r->auth_pass != NULL) {
		explicit_bzero(r->auth_pass, strlen(r->auth_pass));
		free(r->auth_pass);
	}
	memset(r, 0, sizeof(*r));
}

void
config_routes_free(struct config *cfg)
{
	for (size_t i = 0; i < cfg->nroutes; i++)
		config_route_fini(&cfg->routes[i]);
	free(cfg->routes);
	free(cfg->route_keys);
	config_route_fini(&cfg->route_default);
	cfg->routes = NULL;
	cfg->route_keys = NULL;
	cfg->nroutes = cfg->nroute_keys = 0;
}

long
config_route_get(struct config_load *ld, const char *name, size_t n, int create, struct src header)
{
	struct config *cfg = ld->cfg;

	for (size_t i = 0; i < cfg->nroutes; i++)
		if (strlen(cfg->routes[i].name) == n && memcmp(cfg->routes[i].name, name, n) == 0)
			return (long)i;
	if (!create)
		return -1;
	if (cfg->nroutes >= CONFIG_ROUTES_MAX) {
		diag_add(ld->diags, header.file, header.line, "too many routes (at most %d)",
			 CONFIG_ROUTES_MAX);
		return -1;
	}
	if (cfg->nroutes == ld->rcap) {
		ld->rcap = ld->rcap ? ld->rcap * 2 : 4;
		cfg->routes = xrealloc(cfg->routes, ld->rcap * sizeof(*cfg->routes));
		ld->rsrc = xrealloc(ld->rsrc, ld->rcap * sizeof(*ld->rsrc));
	}
	route_init(&cfg->routes[cfg->nroutes], name, n);
	memset(&ld->rsrc[cfg->nroutes], 0, sizeof(*ld->rsrc));
	ld->rsrc[cfg->nroutes].header = header;
	return (long)cfg->nroutes++;
}

/* The domains entries of v: "*", "example.org", ".example.org"; lower
 * case, one trailing dot dropped. */
static int
route_parse_domains(const char *v, struct config_list *out, char *err, size_t errlen)
{
	struct config_list l;
	const char *bad = NULL;
	size_t badlen = 0;

	if (config_parse_list(v, 0, &l, &bad, &badlen) < 0) {
		snprintf(err, errlen, "bad list");
		return -1;
	}
	for (size_t i = 0; i < l.n; i++) {
		char *d = l.v[i];
		size_t n = strlen(d);

		if (n > 1 && d[n - 1] == '.')
			d[--n] = '\0';
		for (char *c = d; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c + 32);
		if (strcmp(d, "*") == 0)
			continue;
		if (d[0] == '.' ? !domain_name_valid(d + 1, n - 1) : !domain_name_valid(d, n)) {
			snprintf(err, errlen,
				 "\"%.*s\" is not a domain (example.org, .example.org for its subdomains, or *)",
				 SHOW(d));
			config_list_fini(&l);
			return -1;
		}
	}
	if (l.n == 0) {
		snprintf(err, errlen, "no domain given");
		config_list_fini(&l);
		return -1;
	}
	*out = l;
	return 0;
}

/* Reports a second setting of route.NAME.key; 1 if it was one. */
static int
route_dup(struct config_load *ld, const struct config_route *r, const char *key, struct src *where,
	  struct src src, int dup_check)
{
	if (dup_check && where->line != 0) {
		diag_add(ld->diags, src.file, src.line,
			 "duplicate option route.%s.%s (already set at line %u)", r->name, key,
			 where->line);
		return 1;
	}
	*where = src;
	return 0;
}

void
config_route_set(struct config_load *ld, size_t idx, const char *key, size_t klen, const char *v,
		 struct src src, int dup_check)
{
	struct config_route *r = &ld->cfg->routes[idx];
	struct route_src *rs = &ld->rsrc[idx];
	char err[256];

#define KEY_IS(k) (klen == sizeof(k) - 1 && memcmp(key, k, klen) == 0)
	if (KEY_IS("domains")) {
		struct config_list l;

		if (route_dup(ld, r, "domains", &rs->domains, src, dup_check))
			return;
		if (route_parse_domains(v, &l, err, sizeof(err)) < 0) {
			diag_add(ld->diags, src.file, src.line, "route.%s.domains: %s", r->name, err);
			return;
		}
		config_list_fini(&r->domains);
		r->domains = l;
	} else if (KEY_IS("via")) {
		if (route_dup(ld, r, "via", &rs->via, src, dup_check))
			return;
		if (config_route_parse_via(r, v, err, sizeof(err)) < 0)
			diag_add(ld->diags, src.file, src.line, "route.%s.via: %s", r->name, err);
	} else if (KEY_IS("tls")) {
		size_t i;

		if (route_dup(ld, r, "tls", &rs->tls, src, dup_check))
			return;
		for (i = 0; i < ARRAY_LEN(tls_names); i++)
			if (strcmp(v, tls_names[i]) == 0)
				break;
		if (i == ARRAY_LEN(tls_names))
			diag_add(ld->diags, src.file, src.line,
				 "route.%s.tls: \"%.*s\" is not none, may, encrypt or verify", r->name,
				 SHOW(v));
		else
			r->tls = (enum route_tls)i;
	} else if (KEY_IS("tls_ca_file") || KEY_IS("auth_file")) {
		int ca = key[0] == 't';
		char *p;

		if (route_dup(ld, r, ca ? "tls_ca_file" : "auth_file",
			      ca ? &rs->tls_ca_file : &rs->auth_file, src, dup_check))
			return;
		p = config_path_resolve(ld->cfg->dir, v);
		if (p == NULL) {
			diag_add(ld->diags, src.file, src.line, "route.%s.%.*s: path too long",
				 r->name, (int)klen, key);
			return;
		}
		free(ca ? r->tls_ca_file : r->auth_file);
		*(ca ? &r->tls_ca_file : &r->auth_file) = p;
	} else if (KEY_IS("rate")) {
		uint64_t x;

		if (route_dup(ld, r, "rate", &rs->rate, src, dup_check))
			return;
		if (strlen(v) > 10 || slice_to_u64(slice_from_cstr(v), 1000000, &x) < 0)
			diag_add(ld->diags, src.file, src.line,
				 "route.%s.rate: \"%.*s\" is not a number of messages per minute (0 to 1000000, 0: no limit)",
				 r->name, SHOW(v));
		else
			r->rate_per_min = (unsigned)x;
	} else {
		diag_add(ld->diags, src.file, src.line,
			 "unknown option route.%s.%.*s (domains, via, tls, tls_ca_file, auth_file, rate)",
			 r->name, (int)(klen > 100 ? 100 : klen), key);
	}
#undef KEY_IS
}

/* ---- auth_file ---------------------------------------------------------- */

/* Reads the one "user:password" line of r's auth_file; errors at where
 * never show the file's text. */
static void
route_read_auth(struct config_load *ld, struct config_route *r, struct src where)
{
	char buf[AUTH_FILE_MAX + 1];
	struct stat st;
	ssize_t got;
	size_t len = 0, pos = 0;
	unsigned lineno = 0, found = 0;
	int fd;

	fd = open(r->auth_file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		diag_add(ld->diags, where.file, where.line, "route.%s.auth_file: cannot open %s: %s",
			 r->name, r->auth_file, strerror(errno));
		return;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		diag_add(ld->diags, where.file, where.line, "route.%s.auth_file: %s is not a file",
			 r->name, r->auth_file);
		close(fd);
		return;
	}
	if ((st.st_mode & S_IRWXO) != 0) {
		diag_add(ld->diags, where.file, where.line,
			 "route.%s.auth_file: %s is open to other users (mode %04o): it holds a password; chmod o-rwx",
			 r->name, r->auth_file, (unsigned)(st.st_mode & 07777));
		close(fd);
		return;
	}
	while (len < sizeof(buf) && (got = read(fd, buf + len, sizeof(buf) - len)) != 0) {
		if (got < 0) {
			if (errno == EINTR)
				continue;
			diag_add(ld->diags, where.file, where.line, "route.%s.auth_file: cannot read %s: %s",
				 r->name, r->auth_file, strerror(errno));
			close(fd);
			explicit_bzero(buf, sizeof(buf));
			return;
		}
		len += (size_t)got;
	}
	close(fd);
	if (len > AUTH_FILE_MAX) {
		diag_add(ld->diags, where.file, where.line,
			 "route.%s.auth_file: %s is longer than %d bytes", r->name, r->auth_file,
			 AUTH_FILE_MAX);
		explicit_bzero(buf, sizeof(buf));
		return;
	}
	while (pos < len) {
		char *s = buf + pos, *nl = memchr(s, '\n', len - pos), *colon;
		size_t n = nl ? (size_t)(nl - s) : len - pos;
		const char *why = NULL;

		pos += n + (nl ? 1 : 0);
		lineno++;
		if (n > 0 && s[n - 1] == '\r')
			n--;
		if (n == 0 || s[0] == '#')
			continue;
		colon = memchr(s, ':', n);
		if (memchr(s, '\0', n) != NULL)
			why = "NUL byte in line";
		else if (found)
			why = "a second credentials line (one \"user:password\" line only)";
		else if (colon == NULL || colon == s || colon + 1 == s + n)
			why = "expected \"user:password\"";
		if (why != NULL) {
			diag_add(ld->diags, where.file, where.line, "route.%s.auth_file: %s:%u: %s",
				 r->name, r->auth_file, lineno, why);
			explicit_bzero(buf, sizeof(buf));
			return;
		}
		found = 1;
		r->auth_user = xstrndup(s, (size_t)(colon - s));
		r->auth_pass = xstrndup(colon + 1, (size_t)(s + n - colon - 1));
	}
	explicit_bzero(buf, sizeof(buf));
	if (!found)
		diag_add(ld->diags, where.file, where.line,
			 "route.%s.auth_file: %s has no \"user:password\" line", r->name, r->auth_file);
}

/* ---- checks and the lookup table ---------------------------------------- */

static int
key_cmp(const void *a, const void *b)
{
	const struct config_route_key *x = a, *y = b;
	int c = strcmp(x->entry, y->entry);

	if (c != 0)
		return c;
	return x->route < y->route ? -1 : x->route > y->route;
}

void
config_route_check(struct config_load *ld)
{
	struct config *cfg = ld->cfg;
	size_t nk = 0;

	route_init(&cfg->route_default, ROUTE_DEFAULT_NAME, strlen(ROUTE_DEFAULT_NAME));
	for (size_t i = 0; i < cfg->nroutes; i++) {
		struct config_route *r = &cfg->routes[i];
		const struct route_src *rs = &ld->rsrc[i];

		if (rs->domains.line == 0)
			diag_add(ld->diags, rs->header.file, rs->header.line,
				 "route.%s: missing domains (example.org, .example.org, or * for the default route)",
				 r->name);
		for (size_t j = 0; j < r->domains.n; j++)
			if (config_is_local_domain(cfg, r->domains.v[j], strlen(r->domains.v[j])))
				diag_add(ld->diags, rs->domains.file, rs->domains.line,
					 "route.%s.domains: %s is in local.domains (local mail never goes out)",
					 r->name, r->domains.v[j]);
		nk += r->domains.n;
		if (r->auth_file[0] != '\0') {
			if (r->via != ROUTE_VIA_HOSTS)
				diag_add(ld->diags, rs->auth_file.file, rs->auth_file.line,
					 "route.%s.auth_file: AUTH is for routes with via = hosts (a smart host), not via = %s",
					 r->name, config_route_via_name(r->via));
			else if (r->tls == ROUTE_TLS_NONE)
				diag_add(ld->diags, rs->auth_file.file, rs->auth_file.line,
					 "route.%s.auth_file: AUTH needs tls = may, encrypt or verify (credentials never go in clear)",
					 r->name);
			else
				route_read_auth(ld, r, rs->auth_file);
		}
		if (r->tls_ca_file[0] != '\0' && access(r->tls_ca_file, R_OK) < 0)
			diag_add(ld->diags, rs->tls_ca_file.file, rs->tls_ca_file.line,
				 "route.%s.tls_ca_file: cannot read %s: %s", r->name, r->tls_ca_file,
				 strerror(errno));
	}
	cfg->route_keys = xcalloc(nk ? nk : 1, sizeof(*cfg->route_keys));
	for (size_t i = 0; i < cfg->nroutes; i++)
		for (size_t j = 0; j < cfg->routes[i].domains.n; j++)
			cfg->route_keys[cfg->nroute_keys++] =
				(struct config_route_key){ cfg->routes[i].domains.v[j], i };
	qsort(cfg->route_keys, cfg->nroute_keys, sizeof(*cfg->route_keys), key_cmp);
	for (size_t k = 1; k < cfg->nroute_keys; k++) {
		const struct config_route_key *a = &cfg->route_keys[k - 1], *b = &cfg->route_keys[k];
		const struct route_src *bs = &ld->rsrc[b->route];

		if (strcmp(a->entry, b->entry) != 0)
			continue;
		if (a->route == b->route)
			diag_add(ld->diags, bs->domains.file, bs->domains.line,
				 "route.%s.domains: %s is given twice", cfg->routes[b->route].name,
				 b->entry);
		else
			diag_add(ld->diags, bs->domains.file, bs->domains.line,
				 "route.%s.domains: %s is already in route.%s (line %u)",
				 cfg->routes[b->route].name, b->entry, cfg->routes[a->route].name,
				 ld->rsrc[a->route].domains.line);
	}
}

/* ---- lookup ------------------------------------------------------------- */

static int
key_find_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct config_route_key *)elem)->entry);
}

static const struct config_route_key *
key_find(const struct config *cfg, const char *entry)
{
	if (cfg->nroute_keys == 0)
		return NULL;
	return bsearch(entry, cfg->route_keys, cfg->nroute_keys, sizeof(*cfg->route_keys),
		       key_find_cmp);
}

const struct config_route *
config_route_match(const struct config *cfg, const char *domain, const char **entry)
{
	char d[256];
	size_t n = strlen(domain);
	const struct config_route_key *k = NULL;

	if (n > 1 && domain[n - 1] == '.')
		n--;
	if (n > 0 && n < sizeof(d)) {
		for (size_t i = 0; i < n; i++)
			d[i] = (domain[i] >= 'A' && domain[i] <= 'Z') ? (char)(domain[i] + 32)
								     : domain[i];
		d[n] = '\0';
		k = key_find(cfg, d);
		/* then ".parent" entries, the longest first: the dot before
		 * each label starts one */
		for (size_t i = 1; k == NULL && i < n; i++)
			if (d[i] == '.')
				k = key_find(cfg, d + i);
	}
	if (k == NULL)
		k = key_find(cfg, "*");
	if (k == NULL) {
		if (entry != NULL)
			*entry = "";
		return &cfg->route_default;
	}
	if (entry != NULL)
		*entry = k->entry;
	return &cfg->routes[k->route];
}

const struct config_route *
config_route_for(const struct config *cfg, const char *domain)
{
	return config_route_match(cfg, domain, NULL);
}

/* ---- postern check --route ---------------------------------------------- */

int
config_route_describe(const struct config *cfg, const char *domain, FILE *out)
{
	size_t n = strlen(domain);
	const struct config_route *r;
	const char *entry;

	if (n > 1 && domain[n - 1] == '.')
		n--;
	if (!domain_name_valid(domain, n))
		return -1;
	fprintf(out, "domain: %.*s\n", (int)n, domain);
	if (config_is_local_domain(cfg, domain, n)) {
		fprintf(out, "local: yes (delivered to local mailboxes; routes do not apply)\n");
		return 0;
	}
	r = config_route_match(cfg, domain, &entry);
	fprintf(out, "local: no\n");
	if (entry[0] == '\0')
		fprintf(out, "route: %s (no route matches and none has domains = *)\n", r->name);
	else
		fprintf(out, "route: %s (matched %s)\n", r->name, entry);
	fprintf(out, "via: %s\n", config_route_via_name(r->via));
	if (r->via == ROUTE_VIA_MX)
		fprintf(out, "host: MX of %.*s, port %u\n", (int)n, domain, cfg->outbound_port);
	for (size_t i = 0; i < r->nhosts; i++) {
		const struct config_route_host *h = &r->hosts[i];
		unsigned port = h->port ? h->port : cfg->outbound_port;

		if (h->mx_lookup)
			fprintf(out, "host: MX of %s, port %u\n", h->name, port);
		else if (h->is_literal_ip)
			fprintf(out, "host: address %s, port %u\n", h->name, port);
		else
			fprintf(out, "host: %s (its A/AAAA, no MX), port %u\n", h->name, port);
	}
	if (r->via == ROUTE_VIA_REFUSE)
		return 0;
	fprintf(out, "tls: %s", config_route_tls_name(r->tls));
	if (r->tls == ROUTE_TLS_VERIFY)
		fprintf(out, " (CA: %s)", r->tls_ca_file[0] ? r->tls_ca_file : "the system's store");
	fputc('\n', out);
	if (r->auth_user != NULL)
		fprintf(out, "auth: user %s (password from %s, not shown)\n", r->auth_user,
			r->auth_file);
	else
		fprintf(out, "auth: none\n");
	if (r->rate_per_min)
		fprintf(out, "rate: %u messages per minute per destination\n", r->rate_per_min);
	else
		fprintf(out, "rate: no limit\n");
	return 0;
}
