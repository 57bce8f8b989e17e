/*
 * config.h - the configuration snapshot: parsed, checked, immutable.
 *
 * A snapshot is refcounted and read-only once loaded; running sessions
 * keep the one they began with, new sessions take the current one
 * (SIGHUP swaps it). File format: INI sections, "key = value", '#' and ';'
 * comments. Options come from options.def; listener sections are
 * [listen.NAME] with keys address (host:port), role, require_tls and
 * plaintext_on_loopback.
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

struct config_list {
	char **v;	/* owned, lower-cased for local.domains */
	size_t n;
};

enum config_role {
	CONFIG_ROLE_MX,		/* SMTP: mail to local domains, relay for trusted */
	CONFIG_ROLE_POP3,	/* POP3 access to the Maildirs */
	CONFIG_ROLE_SUBMISSION,	/* SMTP submission (RFC 6409): AUTH before MAIL */
	CONFIG_ROLE_SUBMISSIONS,	/* submission on implicit TLS (RFC 8314) */
	CONFIG_ROLE_POP3S,	/* POP3 on implicit TLS (RFC 8314) */
};

/* "mx", "pop3", "submission", "submissions", "pop3s"; NULL if unknown. */
const char *config_role_name(enum config_role role);

/* The stages of the policy chain, as named in the [policy] options and
 * the listeners' policy_<stage> keys (the policy layer's enum follows this
 * order). */
#define CONFIG_POLICY_STAGES 6
extern const char *const config_policy_stages[CONFIG_POLICY_STAGES];

struct config_listener {
	char *name;			/* "mx" from [listen.mx] */
	char *address;			/* as written: "127.0.0.1:2525" */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	enum config_role role;
	int require_tls;		/* listen.NAME.require_tls */
	int plaintext_on_loopback;	/* listen.NAME.plaintext_on_loopback;
					 * -1: auth.plaintext_on_loopback */
	/* listen.NAME.policy_<stage>: this listener's own check list for a
	 * stage, in the order of config_policy_stages; policy_given[i] 0:
	 * the [policy] list applies. */
	struct config_list policy[CONFIG_POLICY_STAGES];
	int policy_given[CONFIG_POLICY_STAGES];
};

/* 1 if the listener's role or require_tls means it serves nothing of
 * use without TLS (submissions, pop3s, require_tls = yes). */
int config_listener_needs_tls(const struct config_listener *l);


#define CONFIG_T_STR char *
#define CONFIG_T_PATH char *
#define CONFIG_T_UINT unsigned
#define CONFIG_T_SIZE uint64_t
#define CONFIG_T_DURATION unsigned
#define CONFIG_T_BOOL int
#define CONFIG_T_CIDRS struct cidr_list
#define CONFIG_T_LIST struct config_list

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
