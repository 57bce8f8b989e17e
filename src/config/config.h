/*
 * config.h - the configuration snapshot: parsed, checked, immutable.
 *
 * A snapshot is refcounted and read-only once loaded; running sessions
 * keep the one they began with, new sessions take the current one
 * (SIGHUP swaps it). File format: INI sections, "key = value", '#' and ';'
 * comments. Options come from options.def; listener sections are
 * [listen.NAME] with keys address (host:port), role, require_tls and
 * plaintext_on_loopback; route sections are [route.NAME] (see below).
 */
#ifndef POSTERN_CONFIG_H
#define POSTERN_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "buf.h"
#include "cidr.h"
#include "diag.h"

struct directory;
struct config;
struct config_route_key;
struct in6_addr;

struct config_list {
	char **v;	/* owned, lower-cased for local.domains */
	size_t n;
};

/* A list of durations in seconds (outbound.retry_schedule), at most
 * CONFIG_DURATIONS_MAX entries, at least one. */
#define CONFIG_DURATIONS_MAX 64
struct config_durations {
	unsigned *v;	/* owned */
	size_t n;
};

enum config_role {
	CONFIG_ROLE_MX,		/* SMTP: mail to local domains, relay for trusted */
	CONFIG_ROLE_POP3,	/* POP3 access to the Maildirs */
	CONFIG_ROLE_SUBMISSION,	/* SMTP submission (RFC 6409): AUTH before MAIL */
	CONFIG_ROLE_SUBMISSIONS,	/* submission on implicit TLS (RFC 8314) */
	CONFIG_ROLE_POP3S,	/* POP3 on implicit TLS (RFC 8314) */
	CONFIG_ROLE_METRICS,	/* HTTP: GET /metrics for Prometheus (server_metrics.c) */
};

/* "mx", "pop3", "submission", "submissions", "pop3s", "metrics"; NULL if
 * unknown. */
const char *config_role_name(enum config_role role);

/* The stages of the policy chain, as named in the [policy] options and
 * the listeners' policy_<stage> keys (the policy layer's enum follows this
 * order). */
#define CONFIG_POLICY_STAGES 6
extern const char *const config_policy_stages[CONFIG_POLICY_STAGES];

/* The options a listener may set for its own sessions, as
 * listen.NAME.<section>_<key> (the way listen.NAME.policy_<stage> sets
 * policy.<stage>): read them with config_listener_uint(). */
enum config_override {
	CONFIG_OVER_LIMITS_ERRORS,		/* limits.errors */
	CONFIG_OVER_RATES_CLIENT_MESSAGES,	/* rates.client_messages */
	CONFIG_OVER_RATES_CLIENT_RECIPIENTS,
	CONFIG_OVER_RATES_SENDER_MESSAGES,
	CONFIG_OVER_RATES_SENDER_RECIPIENTS,
	CONFIG_OVER_RATES_USER_MESSAGES,
	CONFIG_OVER_RATES_USER_RECIPIENTS,
	CONFIG_OVERRIDES
};

struct config_listener {
	char *name;			/* "mx" from [listen.mx] */
	char *address;			/* as written: "127.0.0.1:2525" */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	enum config_role role;
	int require_tls;		/* listen.NAME.require_tls */
	int plaintext_on_loopback;	/* listen.NAME.plaintext_on_loopback;
					 * -1: auth.plaintext_on_loopback */
	int proxy_protocol;		/* listen.NAME.proxy_protocol: a PROXY
					 * header from proxy.networks first */
	/* listen.NAME.policy_<stage>: this listener's own check list for a
	 * stage, in the order of config_policy_stages; policy_given[i] 0:
	 * the [policy] list applies. */
	struct config_list policy[CONFIG_POLICY_STAGES];
	int policy_given[CONFIG_POLICY_STAGES];
	/* listen.NAME.<section>_<key>: over_given[i] 0: the option applies */
	unsigned over[CONFIG_OVERRIDES];
	int over_given[CONFIG_OVERRIDES];
};

/* The value of an overridable option under cfg for a session of lst
 * (NULL: none; it may belong to an older snapshot, matched by name): the
 * listener's own when it sets one, else the option's. */
unsigned config_listener_uint(const struct config *cfg, const struct config_listener *lst,
			      enum config_override which);

/* 1 if the listener's role or require_tls means it serves nothing of
 * use without TLS (submissions, pop3s, require_tls = yes). */
int config_listener_needs_tls(const struct config_listener *l);

/* ---- routes: [route.NAME] (config_route.c) ----------------------------
 *
 * Where mail for a remote domain goes. The outbound engine asks
 * config_route_for() for the recipient's domain, after checking
 * config_is_local_domain() itself: local domains never go out, and no
 * route may name one. */

enum route_via {
	ROUTE_VIA_MX,		/* via = mx: the MX hosts of the recipient's domain */
	ROUTE_VIA_HOSTS,	/* via = host, [host]:port, ...: these, in order */
	ROUTE_VIA_REFUSE,	/* via = refuse: recipients fail (bounce) */
};

enum route_tls {
	ROUTE_TLS_NONE,		/* never STARTTLS */
	ROUTE_TLS_MAY,		/* STARTTLS when offered, no certificate check */
	ROUTE_TLS_ENCRYPT,	/* STARTTLS required, no certificate check */
	ROUTE_TLS_VERIFY,	/* STARTTLS required, chain and host name checked */
};

#define CONFIG_ROUTE_HOSTS_MAX 32	/* hosts in one via list */
#define CONFIG_ROUTES_MAX 1024		/* [route.NAME] sections */

/* One host of a via list, as Postfix writes a relayhost:
 *   host, host:port     mx_lookup = 1: the MX hosts of "host" (A/AAAA when
 *                       it has no MX), at port (0: outbound.port)
 *   [host], [host]:port mx_lookup = 0: host's own A/AAAA records
 *   [192.0.2.1]:25, [IPv6:2001:db8::1]:25 (also [2001:db8::1]:25)
 *                       is_literal_ip = 1: that address, no DNS at all */
struct config_route_host {
	char *name;		/* lower-case host name, or the address as text */
	uint16_t port;		/* 0 = outbound.port */
	int mx_lookup;
	int is_literal_ip;
	struct sockaddr_storage addr;	/* is_literal_ip: the address, port 0 */
	socklen_t addrlen;
};

struct config_route {
	char *name;			/* "smarthost" from [route.smarthost] */
	struct config_list domains;	/* as written, lower-case: "example.org",
					 * ".example.org" (subdomains), "*" */
	enum route_via via;
	struct config_route_host *hosts;	/* ROUTE_VIA_HOSTS: 1..CONFIG_ROUTE_HOSTS_MAX */
	size_t nhosts;
	enum route_tls tls;		/* default ROUTE_TLS_MAY */
	char *tls_ca_file;		/* "" = the system's CA store (verify only) */
	char *auth_file;		/* "" = no AUTH */
	char *auth_user;		/* read from auth_file at load; NULL = no AUTH */
	char *auth_pass;		/* owned, wiped on free; never logged */
	unsigned rate_per_min;		/* messages per minute per destination, 0 = no limit */
};

/* ---- DNS lists: [dnsbl.NAME] and [dnswl.NAME] (config_dnsl.c) -------
 *
 * A list is asked by the policy checks "dnsbl" and "dnswl"
 * (src/policy/policy_dnsl.c): for the client address (type ip, RFC 5782
 * reversed, nibbles for IPv6), the HELO name or the sender's domain
 * (RHSBL) under zone; type uri (block lists only) is asked by the check
 * "uribl" for the domains of the links in the message body. An A answer
 * counts when it is inside codes. */
enum dnsl_action { DNSL_REJECT, DNSL_TEMPFAIL, DNSL_TAG, DNSL_SCORE };
enum dnsl_type { DNSL_TYPE_IP, DNSL_TYPE_HELO, DNSL_TYPE_SENDER, DNSL_TYPE_URI };

#define CONFIG_DNSLS_MAX 64		/* [dnsbl.*] and [dnswl.*] sections */
#define CONFIG_DNSL_CODES_MAX 32	/* entries of one codes list */
#define CONFIG_DNSL_ZONE_MAX 180	/* room for 64 nibbles of IPv6 before it */

struct config_dnsl_code {
	uint32_t net;		/* host byte order */
	uint32_t mask;
	int exclude;		/* "!127.0.0.4": not counted */
};

struct config_dnsl {
	char *name;			/* "spamhaus" from [dnsbl.spamhaus] */
	int allow;			/* [dnswl.NAME] */
	char *zone;			/* lower case, no trailing dot; NULL: not given */
	enum dnsl_type type;		/* default DNSL_TYPE_IP */
	enum dnsl_action action;	/* default reject (dnsbl); dnswl: unused */
	int weight;			/* score points, default 1 */
	struct config_dnsl_code codes[CONFIG_DNSL_CODES_MAX];
	size_t ncodes;
};

/* Parses a codes value: addresses or CIDRs (IPv4), comma- or blank-
 * separated, each optionally prefixed by '!' to exclude it; at least one
 * entry that includes. 0, or -1 with the reason in err. */
int config_dnsl_parse_codes(const char *v, struct config_dnsl_code *out, size_t max,
			    size_t *n, char *err, size_t errlen) WARN_UNUSED;
/* 1 if the A answer a (host byte order) counts for l: inside an
 * including entry and no excluding one. */
int config_dnsl_code_match(const struct config_dnsl *l, uint32_t a);
const char *config_dnsl_action_name(enum dnsl_action a);
const char *config_dnsl_type_name(enum dnsl_type t);

/* The route for mail to domain (ASCII, any case, one trailing dot
 * allowed): the route with the most specific entry matching it. An
 * exact entry ("example.org") beats any subdomain entry; among these
 * (".example.org" matches a.example.org and b.a.example.org, not
 * example.org itself) the longer suffix wins; "*" comes last. Never NULL:
 * with no match and no "*" route, the built-in default (named
 * "(default)": via mx, tls may, no AUTH, no rate). Does not allocate;
 * any thread. */
const struct config_route *config_route_for(const struct config *cfg, const char *domain);
/* The same, and in *entry the domains entry that matched ("*" for the
 * default route, "" for the built-in one). */
const struct config_route *config_route_match(const struct config *cfg, const char *domain,
					      const char **entry);
/* Parses a via value into r's via, hosts and nhosts (freeing r's old
 * hosts on success). On error -1 with the reason in err. */
int config_route_parse_via(struct config_route *r, const char *v, char *err, size_t errlen);
/* Frees what r owns (the secret wiped first); r itself is the caller's. */
void config_route_fini(struct config_route *r);
/* "mx", "hosts", "refuse"; "none", "may", "encrypt", "verify". */
const char *config_route_via_name(enum route_via via);
const char *config_route_tls_name(enum route_tls tls);
/* Writes, for `postern check --route DOMAIN`, what mail to domain would
 * take: local delivery, or its route, the entry that matched, via and
 * hosts, tls, AUTH user (never the password) and rate. -1 (nothing
 * written) if domain is not a domain name. */
int config_route_describe(const struct config *cfg, const char *domain, FILE *out);

/* 1 if sa (AF_INET/AF_INET6, its port included) is one of our own
 * listeners, for loop detection: the listener's address and port, or for
 * a wildcard listener (0.0.0.0, ::) with the same port, any loopback
 * address or address of this host's interfaces (read with getifaddrs when
 * the configuration was loaded, never per call). "::" listeners are
 * IPv6-only (net_listen sets IPV6_V6ONLY). IPv4-mapped IPv6 counts as
 * IPv4. */
int config_is_own_listener(const struct config *cfg, const struct sockaddr *sa, socklen_t len);

#define CONFIG_T_STR char *
#define CONFIG_T_PATH char *
#define CONFIG_T_UINT unsigned
#define CONFIG_T_SIZE uint64_t
#define CONFIG_T_DURATION unsigned
#define CONFIG_T_BOOL int
#define CONFIG_T_CIDRS struct cidr_list
#define CONFIG_T_LIST struct config_list
#define CONFIG_T_DURATIONS struct config_durations

struct config {
	int refs;			/* atomic */
	unsigned generation;		/* 1 for the first load, +1 per reload */
	char *path;			/* the file, as given */
	char *dir;			/* its folder (absolute) */
#define OPT(sec, key, type, def, min, max, unit, reload, summary, text) \
	CONFIG_T_##type sec##_##key;
#include "options.def"
#undef OPT
	struct config_listener *listeners;	/* owned */
	size_t nlisteners;
	/* The accounts directory (local.accounts, aliases, lists), attached
	 * by the directory layer at load (config_attach_fn); freed with the
	 * snapshot through accounts_free. NULL when nothing attached it. */
	struct directory *accounts;
	void (*accounts_free)(struct directory **dirp);
	/* The policy chains built from the [policy] lists, attached by the
	 * policy layer; freed through policy_free. */
	void *policy;
	void (*policy_free)(void **policyp);
	char *hostname;			/* server.hostname, or gethostname() */
	/* [route.NAME] sections, in file order, and their domain entries
	 * sorted for config_route_for(). */
	struct config_route *routes;	/* owned */
	size_t nroutes;
	struct config_route_key *route_keys;	/* owned */
	size_t nroute_keys;
	struct config_route route_default;	/* the built-in one */
	/* [dnsbl.NAME] and [dnswl.NAME] sections, in file order */
	struct config_dnsl *dnsls;	/* owned */
	size_t ndnsls;
	/* This host's interface addresses (IPv4 as IPv4-mapped IPv6), read at
	 * load when a listener is a wildcard. */
	struct in6_addr *local_addrs;	/* owned */
	size_t nlocal_addrs;
};

/* Reads path (NULL: built-in defaults only), applies overrides
 * ("section.key=value", as given with -o; "listen.mx.address=..."), then
 * checks everything. On any error returns NULL
 * and fills diags with FILE:LINE messages (overrides report as "-o:N:").
 * Paths become absolute (relative to the file's folder). */
struct config *config_load(const char *path, const char *const *overrides,
			   size_t noverrides, struct diag *diags) WARN_UNUSED;

/* A load in progress, as config_attach_fn sees it. */
struct config_load;

/* A step of config_load_with() run once the options are checked, whatever
 * their errors (so every error shows at once): it loads what the options
 * name from higher layers (the accounts directory, the policy chains)
 * into cfg and adds its errors to diags, or through config_option_diag. */
typedef void (*config_attach_fn)(struct config *cfg, struct config_load *ld,
				 struct diag *diags);
/* Adds an error about listen.NAME.policy_<stage> of listener index i at
 * the line that set it. */
void config_listener_policy_diag(struct config_load *ld, size_t i, unsigned stage,
				 const char *fmt, ...) PRINTF(4, 5);
/* Adds an error about option ("policy.rcpt") at the file and line that
 * set it (the file itself for a default). */
void config_option_diag(struct config_load *ld, const char *option, const char *fmt, ...)
	PRINTF(3, 4);
struct config *config_load_with(const char *path, const char *const *overrides,
				size_t noverrides, struct diag *diags,
				config_attach_fn attach) WARN_UNUSED;

struct config *config_ref(struct config *cfg);
/* 1 if name (len octets, "section.key") is an option of options.def. */
int config_option_known(const char *name, size_t len);
void config_unref(struct config **cfgp);

/* 1 if domain (ASCII case-insensitive, no trailing dot) is in
 * local.domains. */
int config_is_local_domain(const struct config *cfg, const char *domain, size_t len);

/* 1 if a password may be taken without TLS from peer on listener lst
 * (NULL: no listener): never on a listener that needs TLS; from a
 * loopback address when listen.NAME.plaintext_on_loopback (or, unset,
 * auth.plaintext_on_loopback) is yes. Says nothing about TLS itself. */
int config_plaintext_allowed(const struct config *cfg, const struct config_listener *lst,
			     const struct sockaddr_storage *peer);

/* Names of options that differ between old and new and have reload=0
 * (for CONFIG-RESTART-NEEDED); calls fn for each. Listener changes are
 * reported as "listen". */
void config_diff_restart(const struct config *oldc, const struct config *newc,
			 void (*fn)(const char *option, void *arg), void *arg);

/* docs/configuration.md, generated from options.def. */
void config_markdown(FILE *out);

#endif
