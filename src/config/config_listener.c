/*
 * config_listener.c - [listen.NAME] sections: their keys (address, role,
 * require_tls, plaintext_on_loopback, proxy_protocol, policy_<stage> and
 * the overridable options <section>_<key>), the questions sessions ask of a
 * listener (does it need TLS, may a password travel in clear), and the
 * comparison that tells a reload listeners changed, and whether an
 * address and port are one of our own listeners (loop detection).
 */
#include "config_private.h"

#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

const char *const config_policy_stages[CONFIG_POLICY_STAGES] = {
	"connect", "helo", "mail", "rcpt", "data", "end_of_data",
};

/* The index of a stage name in config_policy_stages, or -1. */
static int
listener_policy_stage(const char *name, size_t n)
{
	for (int i = 0; i < CONFIG_POLICY_STAGES; i++)
		if (strlen(config_policy_stages[i]) == n && memcmp(config_policy_stages[i], name, n) == 0)
			return i;
	return -1;
}

/* listen.NAME.policy_<stage>: a check list for one stage (names are
 * checked by the policy layer when it builds the chains). */
static void
listener_set_policy(struct config_load *ld, size_t idx, unsigned stage, const char *v,
		    struct src src, int dup_check)
{
	struct config_listener *l = &ld->cfg->listeners[idx];
	struct listener_src *ls = &ld->lsrc[idx];
	struct config_list list;
	const char *bad = NULL;
	size_t badlen = 0;

	if (dup_check && ls->policy[stage].line != 0) {
		diag_add(ld->diags, src.file, src.line,
			 "duplicate option listen.%s.policy_%s (already set at line %u)",
			 l->name, config_policy_stages[stage], ls->policy[stage].line);
		return;
	}
	ls->policy[stage] = src;
	if (config_parse_list(v, 0, &list, &bad, &badlen) < 0) {
		diag_add(ld->diags, src.file, src.line, "listen.%s.policy_%s: bad list", l->name,
			 config_policy_stages[stage]);
		return;
	}
	config_list_fini(&l->policy[stage]);
	l->policy[stage] = list;
	l->policy_given[stage] = 1;
}

/* listen.NAME.<section>_<key> -> the option it overrides, in the order of
 * enum config_override. */
static const struct {
	const char *key;
	enum config_opt_index opt;
} listener_overrides[CONFIG_OVERRIDES] = {
	{ "limits_errors", CONFIG_OPT_limits_errors },
	{ "rates_client_messages", CONFIG_OPT_rates_client_messages },
	{ "rates_client_recipients", CONFIG_OPT_rates_client_recipients },
	{ "rates_sender_messages", CONFIG_OPT_rates_sender_messages },
	{ "rates_sender_recipients", CONFIG_OPT_rates_sender_recipients },
	{ "rates_user_messages", CONFIG_OPT_rates_user_messages },
	{ "rates_user_recipients", CONFIG_OPT_rates_user_recipients },
};

/* The index of an overridable key, or -1. */
static int
listener_override_of(const char *key, size_t klen)
{
	for (int i = 0; i < CONFIG_OVERRIDES; i++)
		if (strlen(listener_overrides[i].key) == klen &&
		    memcmp(listener_overrides[i].key, key, klen) == 0)
			return i;
	return -1;
}

static void
listener_set_override(struct config_load *ld, size_t idx, int which, const char *v, struct src src,
		      int dup_check)
{
	struct config_listener *l = &ld->cfg->listeners[idx];
	struct listener_src *ls = &ld->lsrc[idx];
	uint64_t x;

	if (dup_check && ls->over[which].line != 0) {
		diag_add(ld->diags, src.file, src.line,
			 "duplicate option listen.%s.%s (already set at line %u)", l->name,
			 listener_overrides[which].key, ls->over[which].line);
		return;
	}
	ls->over[which] = src;
	if (config_opt_number(ld, &config_opts[listener_overrides[which].opt], v, src, &x) < 0)
		return;
	l->over[which] = (unsigned)x;
	l->over_given[which] = 1;
}

unsigned
config_listener_uint(const struct config *cfg, const struct config_listener *lst,
		     enum config_override which)
{
	if ((unsigned)which >= CONFIG_OVERRIDES)
		return 0;
	/* lst may belong to an older snapshot: listeners match by name */
	for (size_t i = 0; lst != NULL && i < cfg->nlisteners; i++)
		if (strcmp(cfg->listeners[i].name, lst->name) == 0 &&
		    cfg->listeners[i].over_given[which])
			return cfg->listeners[i].over[which];
	return *CFIELD(cfg, &config_opts[listener_overrides[which].opt], unsigned);
}

void
config_listener_policy_diag(struct config_load *ld, size_t i, unsigned stage, const char *fmt, ...)
{
	const struct listener_src *ls = &ld->lsrc[i];
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	diag_add(ld->diags, ls->policy[stage].file, ls->policy[stage].line, "listen.%s.policy_%s: %s",
		 ld->cfg->listeners[i].name, config_policy_stages[stage], msg);
}

/* ---- listeners -------------------------------------------------------- */

int
config_listener_name_valid(const char *s, size_t n)
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
long
config_listener_get(struct config_load *ld, const char *name, size_t n, int create, struct src header)
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
void
config_listener_set(struct config_load *ld, size_t idx, const char *key, size_t klen, const char *v,
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
		for (int r = CONFIG_ROLE_MX; r <= CONFIG_ROLE_METRICS; r++) {
			if (strcmp(v, config_role_name((enum config_role)r)) == 0) {
				l->role = (enum config_role)r;
				found = 1;
			}
		}
		if (!found) {
			diag_add(ld->diags, src.file, src.line,
				 "listen.%s.role: role %.*s is not supported (mx, submission, submissions, pop3, pop3s, metrics)",
				 l->name, SHOW(v));
			return;
		}
	} else if (klen == 11 && memcmp(key, "require_tls", 11) == 0) {
		listener_set_bool(ld, l, "require_tls", &ls->require_tls, &l->require_tls, v, src,
				  dup_check);
	} else if (klen > 7 && memcmp(key, "policy_", 7) == 0 &&
		   listener_policy_stage(key + 7, klen - 7) >= 0) {
		listener_set_policy(ld, idx, (unsigned)listener_policy_stage(key + 7, klen - 7), v,
				    src, dup_check);
	} else if (listener_override_of(key, klen) >= 0) {
		listener_set_override(ld, idx, listener_override_of(key, klen), v, src, dup_check);
	} else if (klen == 21 && memcmp(key, "plaintext_on_loopback", 21) == 0) {
		listener_set_bool(ld, l, "plaintext_on_loopback", &ls->plaintext_on_loopback,
				  &l->plaintext_on_loopback, v, src, dup_check);
	} else if (klen == 14 && memcmp(key, "proxy_protocol", 14) == 0) {
		listener_set_bool(ld, l, "proxy_protocol", &ls->proxy_protocol, &l->proxy_protocol,
				  v, src, dup_check);
	} else {
		diag_add(ld->diags, src.file, src.line, "unknown option listen.%s.%.*s",
			 l->name, (int)(klen > 100 ? 100 : klen), key);
	}
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
	case CONFIG_ROLE_METRICS:
		return "metrics";
	}
	return NULL;
}

/* 1 if both have the same listeners (by name, address and role). */
int
config_sockaddr_same(const struct config_listener *a, const struct config_listener *b)
{
	return a->addrlen == b->addrlen && memcmp(&a->addr, &b->addr, a->addrlen) == 0;
}

int
config_listeners_equal(const struct config *a, const struct config *b)
{
	if (a->nlisteners != b->nlisteners)
		return 0;
	for (size_t i = 0; i < a->nlisteners; i++) {
		const struct config_listener *x = &a->listeners[i];
		size_t j;

		for (j = 0; j < b->nlisteners; j++) {
			const struct config_listener *y = &b->listeners[j];

			if (strcmp(x->name, y->name) == 0 && x->role == y->role &&
			    x->require_tls == y->require_tls &&
			    x->proxy_protocol == y->proxy_protocol && config_sockaddr_same(x, y))
				break;
		}
		if (j == b->nlisteners)
			return 0;
	}
	return 1;
}

/* ---- our own addresses, for loop detection ----------------------------- */

#define LOCAL_ADDRS_MAX 1024

/* sa's address as IPv6 (IPv4 mapped) and its port; -1 if not IP. */
static int
addr_as6(const struct sockaddr *sa, socklen_t len, struct in6_addr *a, uint16_t *port)
{
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;

		memset(a, 0, sizeof(*a));
		a->s6_addr[10] = a->s6_addr[11] = 0xff;
		memcpy(&a->s6_addr[12], &sin->sin_addr, 4);
		*port = ntohs(sin->sin_port);
		return 0;
	}
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;

		*a = sin6->sin6_addr;
		*port = ntohs(sin6->sin6_port);
		return 0;
	}
	return -1;
}

static int
listener_is_wildcard(const struct config_listener *l)
{
	struct in6_addr a;
	uint16_t port;

	if (addr_as6((const struct sockaddr *)&l->addr, l->addrlen, &a, &port) < 0)
		return 0;
	return IN6_IS_ADDR_UNSPECIFIED(&a) ||
	       (IN6_IS_ADDR_V4MAPPED(&a) && memcmp(&a.s6_addr[12], "\0\0\0\0", 4) == 0);
}

void
config_listeners_local_addrs(struct config *cfg)
{
	struct ifaddrs *ifa, *i;
	size_t wild = 0;

	for (size_t k = 0; k < cfg->nlisteners; k++)
		wild += (size_t)listener_is_wildcard(&cfg->listeners[k]);
	if (wild == 0 || getifaddrs(&ifa) < 0)
		return;	/* without the list, loopback addresses still match */
	cfg->local_addrs = xcalloc(LOCAL_ADDRS_MAX, sizeof(*cfg->local_addrs));
	for (i = ifa; i != NULL && cfg->nlocal_addrs < LOCAL_ADDRS_MAX; i = i->ifa_next) {
		uint16_t port;

		if (i->ifa_addr == NULL)
			continue;
		if (addr_as6(i->ifa_addr, i->ifa_addr->sa_family == AF_INET
				 ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6),
			     &cfg->local_addrs[cfg->nlocal_addrs], &port) == 0)
			cfg->nlocal_addrs++;
	}
	freeifaddrs(ifa);
}

int
config_is_own_listener(const struct config *cfg, const struct sockaddr *sa, socklen_t len)
{
	struct in6_addr a;
	uint16_t port;
	int v4, local = -1;	/* -1: not yet known */

	if (addr_as6(sa, len, &a, &port) < 0)
		return 0;
	v4 = IN6_IS_ADDR_V4MAPPED(&a);
	for (size_t k = 0; k < cfg->nlisteners; k++) {
		const struct config_listener *l = &cfg->listeners[k];
		struct in6_addr la;
		uint16_t lport;

		if (addr_as6((const struct sockaddr *)&l->addr, l->addrlen, &la, &lport) < 0 ||
		    lport != port)
			continue;
		if (!listener_is_wildcard(l)) {
			if (memcmp(&la, &a, sizeof(a)) == 0)
				return 1;
			continue;
		}
		/* 0.0.0.0 serves IPv4 only, :: IPv6 only (IPV6_V6ONLY) */
		if (IN6_IS_ADDR_V4MAPPED(&la) != v4)
			continue;
		if (local < 0) {
			local = v4 ? a.s6_addr[12] == 127 : IN6_IS_ADDR_LOOPBACK(&a);
			for (size_t j = 0; !local && j < cfg->nlocal_addrs; j++)
				local = memcmp(&cfg->local_addrs[j], &a, sizeof(a)) == 0;
		}
		if (local)
			return 1;
	}
	return 0;
}
