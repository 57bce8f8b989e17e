/*
 * config_private.h - the insides shared by the files of src/config/: the
 * option table (from options.def), a load in progress, and the helpers
 * that parse values, paths and listener sections.
 *
 * Everything outside src/config/ uses config.h.
 */
#ifndef POSTERN_CONFIG_PRIVATE_H
#define POSTERN_CONFIG_PRIVATE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "config.h"

#define CONFIG_LINE_MAX 4096		/* octets per line, without the line end */
#define CONFIG_FILE_MAX (1024 * 1024)	/* a configuration, not a map */
#define CONFIG_LISTENERS_MAX 64
#define CONFIG_NAME_MAX 64		/* listener names */
#define CONFIG_PATH_MAX 4096

/* Cuts a value for an error message: at most 100 octets shown. */
#define SHOW(v) (int)(strlen(v) > 100 ? 100 : strlen(v)), (v)

/* ---- the option table ------------------------------------------------- */

enum config_opt_index {
#define OPT(sec, key, type, def, min, max, unit, reload, summary, text) CONFIG_OPT_##sec##_##key,
#include "options.def"
#undef OPT
	CONFIG_NOPTS
};

enum opt_type {
	OT_STR, OT_PATH, OT_UINT, OT_SIZE, OT_DURATION, OT_BOOL, OT_CIDRS, OT_LIST, OT_DURATIONS
};

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
	struct src proxy_protocol;
	struct src policy[CONFIG_POLICY_STAGES];
	struct src over[CONFIG_OVERRIDES];	/* listen.NAME.<section>_<key> */
	int address_ok;		/* given and parsed */
};

/* Per-route bookkeeping while loading (parallel to cfg->routes). */
struct route_src {
	struct src header;	/* [route.NAME] line, or the -o creating it */
	struct src domains, via, tls, tls_ca_file, auth_file, rate;
};

/* Per-list bookkeeping while loading (parallel to cfg->dnsls). */
struct dnsl_src {
	struct src header;
	struct src zone, codes, action, weight, type;
};

struct config_load {
	struct config *cfg;
	struct diag *diags;
	struct src set[CONFIG_NOPTS];		/* line 0 = default */
	struct listener_src *lsrc;
	size_t lcap;
	struct route_src *rsrc;
	size_t rcap;
	struct dnsl_src *dsrc;
	size_t dcap;
};

/* A domains entry of a route, sorted by entry for config_route_for(). */
struct config_route_key {
	const char *entry;	/* the route's own string */
	size_t route;		/* index in cfg->routes */
};

extern const struct opt_desc config_opts[CONFIG_NOPTS];
extern const char *const config_type_names[];

/* The option section.key (lengths given), or NULL. */
const struct opt_desc *opt_find(const char *section, size_t slen, const char *key, size_t klen);

/* Parses v as numeric option o's value (UINT, SIZE, DURATION) within its
 * range (config.c); -1 with the error reported at src. */
int config_opt_number(struct config_load *ld, const struct opt_desc *o, const char *v,
		      struct src src, uint64_t *out);

/* ---- values (config_value.c) ------------------------------------------ */

int config_is_space(char c);
/* Trims blanks at both ends of (*s, *n). */
void config_trim(const char **s, size_t *n);
void config_list_fini(struct config_list *l);
int config_cmp_str(const void *a, const void *b);
/* value relative to dir, normalised; NULL if longer than CONFIG_PATH_MAX. */
char *config_path_resolve(const char *dir, const char *value);
/* The folder of path, absolute (the current folder for NULL). */
char *config_dir_of(const char *path);
/* The value without its quotes (malloc'ed), or NULL with *err. */
char *config_value_unquote(const char *raw, size_t n, const char **err);
int config_parse_scaled(const char *v, const char *suffixes, const uint64_t *mult, uint64_t *out);
int config_parse_bool(const char *v, int *out);
int config_parse_list(const char *v, int domains, struct config_list *out, const char **bad,
		      size_t *badlen);
/* The next word of *p, words separated by commas and/or blanks: its
 * start (*n octets), *p moved past it; NULL at the end. */
const char *config_next_word(const char **p, size_t *n);
/* Seconds, or a number with suffix s, m or h. 0 or -1. */
int config_parse_duration(const char *v, uint64_t *out);
/* Durations separated by commas and/or spaces, each within min..max, 1 to
 * CONFIG_DURATIONS_MAX of them. On error -1 with the reason in err. */
int config_parse_durations(const char *v, uint64_t min, uint64_t max,
			   struct config_durations *out, char *err, size_t errlen);
void config_durations_fini(struct config_durations *d);

/* ---- listener sections (config_listener.c) ---------------------------- */

/* The index of listener name (created when create is set); -1 with the
 * error in ld->diags. */
long config_listener_get(struct config_load *ld, const char *name, size_t n, int create,
			 struct src header);
/* 1 if s is a usable listener name. */
int config_listener_name_valid(const char *s, size_t n);
/* Sets listen.NAME.key for listener idx (dup_check: a key given twice in
 * the file is an error). */
void config_listener_set(struct config_load *ld, size_t idx, const char *key, size_t klen,
			 const char *v, struct src src, int dup_check);
/* 1 if both listeners have the same socket address. */
int config_sockaddr_same(const struct config_listener *a, const struct config_listener *b);
/* 1 if both configurations have the same listeners (a restart is needed
 * otherwise). */
int config_listeners_equal(const struct config *a, const struct config *b);
/* Reads this host's interface addresses into cfg when a listener is a
 * wildcard (for config_is_own_listener). */
void config_listeners_local_addrs(struct config *cfg);

/* ---- route sections and [outbound] (config_route.c) ------------------- */

/* Index of route name (created when create is set); -1 with the error in
 * ld->diags. */
long config_route_get(struct config_load *ld, const char *name, size_t n, int create,
		      struct src header);
/* Sets route.NAME.key of route idx (dup_check as for listeners). */
void config_route_set(struct config_load *ld, size_t idx, const char *key, size_t klen,
		      const char *v, struct src src, int dup_check);
/* The checks no single line can make (domains given and distinct, not
 * local; AUTH needs hosts and TLS), the credentials read from each
 * auth_file, and the sorted entries for config_route_for(). */
void config_route_check(struct config_load *ld);
/* ---- [dnsbl.NAME] / [dnswl.NAME] (config_dnsl.c) --------------------- */

/* If sec is "dnsbl.NAME" or "dnswl.NAME": 1, with *allow and the name.
 * 0 otherwise. */
int config_dnsl_section(const char *sec, size_t slen, int *allow, const char **name,
			size_t *n);
/* Index of the list (created when create is set); -1 with the error. */
long config_dnsl_get(struct config_load *ld, int allow, const char *name, size_t n,
		     int create, struct src header);
void config_dnsl_set(struct config_load *ld, size_t idx, const char *key, size_t klen,
		     const char *v, struct src src, int dup_check);
/* Every list has a zone. */
void config_dnsl_check(struct config_load *ld);
void config_dnsls_free(struct config *cfg);

/* Frees the routes of cfg. */
void config_routes_free(struct config *cfg);
/* The check of a string option outbound.KEY, NULL or a message. */
const char *config_check_outbound(const char *key, const char *v);

#endif
