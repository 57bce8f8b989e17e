/*
 * directory_alias.c - the aliases file and the lists file: parsing, with
 * one FILE:LINE diagnostic per problem, into the entries of struct
 * directory (see directory_private.h), and the local/disabled domains.
 *
 * Aliases file (local.aliases), one entry per line:
 *   # comment
 *   sales@example.test: alice, bob@example.test, partner@example.org
 *   @example.test: alice                  (the domain's catch-all)
 *   !old@example.test: alice              (disabled: refused, 550 5.2.1)
 *   trap@example.test: :spamtrap          (spam trap: accepts nothing)
 *       carol, dave                       (indented: more targets for the
 *                                          entry above)
 * Targets are separated by commas and/or spaces; a bare local part means
 * the entry's own domain. Lists file (local.lists), INI style:
 *   [staff@example.test]
 *   members = alice, bob@example.test     (repeatable; accumulates)
 *   senders = members, boss@example.org, @example.test
 *             (anyone (default) | members | addresses | @domain)
 *   disabled = yes
 * Entries must be in local.domains and must not repeat an account, an
 * alias or a list. Owns nothing but what it adds to the directory.
 */
#include "directory.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "domain.h"
#include "directory_private.h"

/* ---- domains ----------------------------------------------------------- */

static int
cmp_cstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char **
domains_copy(char *const *v, size_t n)
{
	char **out = xcalloc(n ? n : 1, sizeof(*out));

	for (size_t i = 0; i < n; i++) {
		out[i] = xstrdup(v[i]);
		for (char *c = out[i]; *c; c++)
			*c = (char)dir_lower((unsigned char)*c);
	}
	qsort(out, n, sizeof(*out), cmp_cstr);
	return out;
}

void
dir_domains_free(struct directory *dir)
{
	for (size_t i = 0; i < dir->nlocal; i++)
		free(dir->local_domains[i]);
	free(dir->local_domains);
	for (size_t i = 0; i < dir->ndisabled; i++)
		free(dir->disabled_domains[i]);
	free(dir->disabled_domains);
	dir->local_domains = dir->disabled_domains = NULL;
	dir->nlocal = dir->ndisabled = 0;
}

void
directory_set_domains(struct directory *dir, char *const *local, size_t nlocal,
		      char *const *disabled, size_t ndisabled)
{
	dir_domains_free(dir);
	dir->local_domains = domains_copy(local, nlocal);
	dir->nlocal = nlocal;
	dir->disabled_domains = domains_copy(disabled, ndisabled);
	dir->ndisabled = ndisabled;
}

int
dir_domain_in(char *const *v, size_t n, const char *domain, size_t len)
{
	size_t lo = 0, hi = n;

	if (len > 1 && domain[len - 1] == '.')
		len--;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *d = v[mid];
		int c = 0;
		size_t i;

		for (i = 0; i < len && d[i] != '\0'; i++) {
			unsigned char a = dir_lower((unsigned char)domain[i]);

			if (a != (unsigned char)d[i]) {
				c = a < (unsigned char)d[i] ? -1 : 1;
				break;
			}
		}
		if (c == 0)
			c = (i == len) ? (d[i] == '\0' ? 0 : -1) : 1;
		if (c == 0)
			return 1;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return 0;
}

int
directory_domain_disabled(const struct directory *dir, const char *domain, size_t len)
{
	return dir != NULL && dir_domain_in(dir->disabled_domains, dir->ndisabled, domain, len);
}

/* ---- entries ----------------------------------------------------------- */

/* hash_eq_fn for dir->eindex: ctx the directory, key a struct dir_key. */
static int
entry_eq(const void *ctx, uint32_t val, const void *key)
{
	const struct directory *dir = ctx;

	return dir_key_eq(dir->entries[val].local, dir->entries[val].domain, key);
}

void
dir_entries_init(struct directory *dir)
{
	hash_init(&dir->eindex, DIRECTORY_ALIASES_MAX, entry_eq);
}

const struct dir_entry *
dir_entry_find(const struct directory *dir, const char *local, size_t llen, const char *domain,
	       size_t dlen)
{
	struct dir_key k = { local, domain, llen, dlen };
	uint32_t v;

	if (dir == NULL || dir->nentries == 0)
		return NULL;
	if (!hash_find(&dir->eindex, dir_key_hash(local, llen, domain, dlen), dir, &k, &v))
		return NULL;
	return &dir->entries[v];
}

static void
entry_fini(struct dir_entry *e)
{
	for (size_t i = 0; i < e->ntargets; i++)
		free(e->targets[i]);
	free(e->targets);
	for (size_t i = 0; i < e->nsenders; i++)
		free(e->senders[i]);
	free(e->senders);
	free(e->local);
	free(e->domain);
}

void
dir_entries_free(struct directory *dir)
{
	for (size_t i = 0; i < dir->nentries; i++)
		entry_fini(&dir->entries[i]);
	free(dir->entries);
	hash_fini(&dir->eindex);
	dir->entries = NULL;
	dir->nentries = dir->centries = 0;
}

/* Moves e into the directory (indexed); returns its number. */
static size_t
entry_add(struct directory *dir, struct dir_entry *e)
{
	if (dir->nentries == dir->centries) {
		dir->centries = dir->centries ? dir->centries * 2 : 16;
		dir->entries = xrealloc(dir->entries, dir->centries * sizeof(*dir->entries));
	}
	dir->entries[dir->nentries++] = *e;
	if (e->kind == DIR_LIST)
		dir->nlists++;
	else
		dir->naliases++;
	struct dir_key k = { e->local, e->domain, strlen(e->local), strlen(e->domain) };
	/* Callers refused duplicates and bounded the count: the key is new. */
	if (hash_insert(&dir->eindex, dir_key_hash(k.local, k.llen, k.domain, k.dlen), dir, &k,
			(uint32_t)(dir->nentries - 1), NULL) != 0)
		PANIC("alias index out of step");
	memset(e, 0, sizeof(*e));
	return dir->nentries - 1;
}

size_t
directory_alias_count(const struct directory *dir)
{
	return dir ? dir->naliases : 0;
}

size_t
directory_list_count(const struct directory *dir)
{
	return dir ? dir->nlists : 0;
}

/* ---- shared parsing ---------------------------------------------------- */

#define SHOWN(n) ((int)((n) > 200 ? 200 : (n)))

static int
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* The position of the last '@' in s (n octets), or NULL. */
static const char *
last_at(const char *s, size_t n)
{
	for (size_t i = n; i > 0; i--)
		if (s[i - 1] == '@')
			return s + i - 1;
	return NULL;
}

/* Checks the name of an alias or list ("local@domain", or "@domain" when
 * catchall_ok): a valid address in a local domain that is not yet an
 * account, alias or list. Fills *local_out and *domain_out (malloc'ed,
 * lower-cased). Returns 0 or -1 after a diagnostic. */
static int
entry_name(const struct directory *dir, const char *path, unsigned lineno, const char *s,
	   size_t n, int catchall_ok, char **local_out, char **domain_out, struct diag *diags)
{
	const char *at = last_at(s, n);
	const struct account *a;
	const struct dir_entry *e;
	size_t ln, dn;

	if (at == NULL || (at == s && !catchall_ok) ||
	    (at > s && !directory_local_valid(s, (size_t)(at - s))) ||
	    !domain_name_valid(at + 1, (size_t)(s + n - at - 1))) {
		diag_add(diags, path, lineno, "bad address \"%.*s\" (want %s)", SHOWN(n), s,
			 catchall_ok ? "local@domain, or @domain for a catch-all"
				     : "local@domain");
		return -1;
	}
	ln = (size_t)(at - s);
	dn = (size_t)(s + n - at - 1);
	if (!dir_domain_in(dir->local_domains, dir->nlocal, at + 1, dn)) {
		diag_add(diags, path, lineno, "domain %.*s is not in local.domains", SHOWN(dn),
			 at + 1);
		return -1;
	}
	a = directory_find(dir, s, ln, at + 1, dn);
	if (a != NULL) {
		diag_add(diags, path, lineno, "%s@%s is already an account (accounts file line %u)",
			 a->local, a->domain, dir->lines[a - dir->accts]);
		return -1;
	}
	e = dir_entry_find(dir, s, ln, at + 1, dn);
	if (e != NULL) {
		diag_add(diags, path, lineno, "duplicate %s %s@%s (first at line %u%s)",
			 e->local[0] == '\0' ? "catch-all" : e->kind == DIR_LIST ? "list" : "alias",
			 e->local, e->domain, e->line,
			 e->kind == DIR_LIST ? " of the lists file" : " of the aliases file");
		return -1;
	}
	*local_out = xstrndup(s, ln);
	*domain_out = xstrndup(at + 1, dn);
	for (char *c = *local_out; *c; c++)
		*c = (char)dir_lower((unsigned char)*c);
	for (char *c = *domain_out; *c; c++)
		*c = (char)dir_lower((unsigned char)*c);
	return 0;
}

/* Checks one target or member address: "local@domain" or a bare local
 * part (then domain is the entry's); with at_domain_ok also "@domain".
 * Returns it malloc'ed, domain lower-cased, or NULL after a diagnostic. */
static char *
target_parse(const char *path, unsigned lineno, const char *what, const char *w, size_t n,
	     const char *domain, int at_domain_ok, struct diag *diags)
{
	const char *at = last_at(w, n);
	const char *dom;
	size_t ln, dn;
	char *out;

	if (at == NULL) {
		if (!directory_local_valid(w, n))
			goto bad;
		ln = n;
		dom = domain;
		dn = strlen(domain);
	} else {
		ln = (size_t)(at - w);
		dom = at + 1;
		dn = (size_t)(w + n - at - 1);
		if ((ln == 0 && !at_domain_ok) || (ln > 0 && !directory_local_valid(w, ln)) ||
		    !domain_name_valid(dom, dn))
			goto bad;
	}
	out = xmalloc(ln + dn + 2);
	memcpy(out, w, ln);
	out[ln] = '@';
	for (size_t i = 0; i < dn; i++)
		out[ln + 1 + i] = (char)dir_lower((unsigned char)dom[i]);
	out[ln + 1 + dn] = '\0';
	return out;
bad:
	diag_add(diags, path, lineno, "bad %s \"%.*s\" (want local@domain%s)", what, SHOWN(n), w,
		 at_domain_ok ? ", @domain" : ", or a local part of the same domain");
	return NULL;
}

/* Splits s (n octets) into words separated by commas and blanks; calls fn
 * on each until it returns -1. Returns the number of failed words. */
static int
words_each(const char *s, size_t n, int (*fn)(void *arg, const char *w, size_t wn), void *arg)
{
	const char *p = s, *end = s + n;
	int errors = 0;

	while (p < end) {
		const char *w;

		while (p < end && (*p == ',' || is_blank(*p)))
			p++;
		w = p;
		while (p < end && *p != ',' && !is_blank(*p))
			p++;
		if (p > w && fn(arg, w, (size_t)(p - w)) < 0)
			errors++;
	}
	return errors;
}

static void
strv_push(char ***v, size_t *n, char *s)
{
	if (*n == 0 || (*n >= 4 && (*n & (*n - 1)) == 0))	/* full at 4, 8, 16... */
		*v = xrealloc(*v, (*n ? *n * 2 : 4) * sizeof(**v));
	(*v)[(*n)++] = s;
}

/* Reads the file and calls fn on each line (without its end, NUL
 * checked, length bounded, trailing blanks and CR cut; blank and '#'
 * lines skipped). fn sees leading blanks. Returns the error count. */
static int
lines_each(const char *path, const char *option, struct diag *diags,
	   int (*fn)(void *arg, unsigned lineno, const char *s, size_t n), void *arg)
{
	size_t len, pos = 0;
	unsigned lineno = 0;
	int errors = 0;
	char *text = diag_read_file(path, option, DIRECTORY_FILE_MAX, &len, diags);

	if (text == NULL)
		return 1;
	for (;;) {
		const char *s;
		size_t n, k = 0;
		int r = dir_line_next(text, len, &pos, &lineno, path, diags, &s, &n);

		if (r == 0)
			break;
		if (r < 0) {
			errors++;
			continue;
		}
		while (k < n && is_blank(s[k]))
			k++;
		if (k == n || s[k] == '#')
			continue;
		if (fn(arg, lineno, s, n) < 0)
			errors++;
	}
	free(text);
	return errors;
}

/* ---- the aliases file -------------------------------------------------- */

struct alias_load {
	struct directory *dir;
	const char *path;
	struct diag *diags;
	unsigned lineno;
	struct dir_entry *cur;	/* the entry being filled, or NULL */
	size_t cur_idx;
	int cur_bad;		/* the entry above failed: skip its continuations */
	int spamtrap_only;	/* cur is ":spamtrap": no other target allowed */
};

static int
alias_target(void *arg, const char *w, size_t n)
{
	struct alias_load *al = arg;
	struct dir_entry *e = al->cur;
	char *t;

	if (n == 9 && memcmp(w, ":spamtrap", 9) == 0) {
		if (e->ntargets > 0 || e->spamtrap) {
			diag_add(al->diags, al->path, al->lineno,
				 ":spamtrap must be the only target");
			return -1;
		}
		e->spamtrap = 1;
		return 0;
	}
	if (e->spamtrap) {
		diag_add(al->diags, al->path, al->lineno, ":spamtrap must be the only target");
		return -1;
	}
	if (e->ntargets >= DIRECTORY_TARGETS_MAX) {
		diag_add(al->diags, al->path, al->lineno, "more than %u targets",
			 DIRECTORY_TARGETS_MAX);
		return -1;
	}
	t = target_parse(al->path, al->lineno, "target", w, n, e->domain, 0, al->diags);
	if (t == NULL)
		return -1;
	strv_push(&e->targets, &e->ntargets, t);
	return 0;
}

static int
alias_line(void *arg, unsigned lineno, const char *s, size_t n)
{
	struct alias_load *al = arg;
	struct directory *dir = al->dir;
	struct dir_entry e;
	const char *colon, *name;
	size_t namelen;
	int disabled = 0, errors;

	al->lineno = lineno;
	if (is_blank(s[0])) {
		/* continuation: more targets for the entry above */
		if (al->cur_bad)
			return 0;
		if (al->cur == NULL) {
			diag_add(al->diags, al->path, lineno,
				 "indented line continues no alias (indent only continuation lines)");
			return -1;
		}
		al->cur = &dir->entries[al->cur_idx];
		return words_each(s, n, alias_target, al) > 0 ? -1 : 0;
	}
	al->cur = NULL;
	al->cur_bad = 1;
	colon = memchr(s, ':', n);
	if (colon == NULL) {
		diag_add(al->diags, al->path, lineno,
			 "expected \"alias@domain: target, ...\" (missing ':')");
		return -1;
	}
	name = s;
	namelen = (size_t)(colon - s);
	while (namelen > 0 && is_blank(name[namelen - 1]))
		namelen--;
	if (namelen > 0 && name[0] == '!') {
		disabled = 1;
		name++;
		namelen--;
	}
	if (dir->nentries >= DIRECTORY_ALIASES_MAX) {
		diag_add(al->diags, al->path, lineno, "too many aliases and lists (more than %u)",
			 DIRECTORY_ALIASES_MAX);
		return -1;
	}
	memset(&e, 0, sizeof(e));
	e.kind = DIR_ALIAS;
	e.line = lineno;
	e.disabled = disabled;
	if (entry_name(dir, al->path, lineno, name, namelen, 1, &e.local, &e.domain,
		       al->diags) < 0)
		return -1;
	al->cur = &e;
	errors = words_each(colon + 1, (size_t)(s + n - colon - 1), alias_target, al);
	if (errors == 0 && e.ntargets == 0 && !e.spamtrap) {
		diag_add(al->diags, al->path, lineno, "alias %s@%s has no target", e.local,
			 e.domain);
		errors++;
	}
	if (errors > 0) {
		entry_fini(&e);
		al->cur = NULL;
		return -1;
	}
	al->cur_idx = entry_add(dir, &e);
	al->cur = &dir->entries[al->cur_idx];
	al->cur_bad = 0;
	return 0;
}

int
directory_load_aliases(struct directory *dir, const char *path, struct diag *diags)
{
	struct alias_load al;

	memset(&al, 0, sizeof(al));
	al.dir = dir;
	al.path = path;
	al.diags = diags;
	return lines_each(path, "local.aliases", diags, alias_line, &al) > 0 ? -1 : 0;
}

/* ---- the lists file ---------------------------------------------------- */

struct list_load {
	struct directory *dir;
	const char *path;
	struct diag *diags;
	unsigned lineno;
	struct dir_entry *cur;	/* the list being filled, or NULL */
	size_t cur_idx;
	int cur_bad;		/* its header failed: skip its keys */
	unsigned senders_line;	/* where senders was first given */
	unsigned disabled_line;
};

static int
list_member(void *arg, const char *w, size_t n)
{
	struct list_load *ll = arg;
	struct dir_entry *e = ll->cur;
	char *t;

	if (e->ntargets >= DIRECTORY_MEMBERS_MAX) {
		diag_add(ll->diags, ll->path, ll->lineno, "more than %u members",
			 DIRECTORY_MEMBERS_MAX);
		return -1;
	}
	t = target_parse(ll->path, ll->lineno, "member", w, n, e->domain, 0, ll->diags);
	if (t == NULL)
		return -1;
	strv_push(&e->targets, &e->ntargets, t);
	return 0;
}

static int
list_sender(void *arg, const char *w, size_t n)
{
	struct list_load *ll = arg;
	struct dir_entry *e = ll->cur;
	char *t;

	if ((n == 6 && strncasecmp(w, "anyone", 6) == 0) ||
	    (n == 7 && strncasecmp(w, "members", 7) == 0)) {
		unsigned bit = n == 6 ? DIR_SENDERS_ANYONE : DIR_SENDERS_MEMBERS;

		if (e->senders_mode & bit) {
			diag_add(ll->diags, ll->path, ll->lineno, "senders: %.*s given twice",
				 (int)n, w);
			return -1;
		}
		e->senders_mode |= bit;
		return 0;
	}
	if (e->nsenders >= DIRECTORY_SENDERS_MAX) {
		diag_add(ll->diags, ll->path, ll->lineno, "more than %u senders",
			 DIRECTORY_SENDERS_MAX);
		return -1;
	}
	t = target_parse(ll->path, ll->lineno, "sender", w, n, e->domain, 1, ll->diags);
	if (t == NULL)
		return -1;
	/* senders are compared ignoring case: store them lower-cased */
	for (char *c = t; *c; c++)
		*c = (char)dir_lower((unsigned char)*c);
	e->senders_mode |= DIR_SENDERS_LISTED;
	strv_push(&e->senders, &e->nsenders, t);
	return 0;
}

/* Finishes the list being filled: cross-key checks. */
static int
list_end(struct list_load *ll)
{
	struct dir_entry *e;

	if (ll->cur == NULL)
		return 0;
	e = &ll->dir->entries[ll->cur_idx];
	ll->cur = NULL;
	if ((e->senders_mode & DIR_SENDERS_ANYONE) && e->senders_mode != DIR_SENDERS_ANYONE) {
		diag_add(ll->diags, ll->path, ll->senders_line,
			 "senders: anyone cannot be combined with members or addresses");
		return -1;
	}
	if (e->senders_mode == 0)
		e->senders_mode = DIR_SENDERS_ANYONE;
	return 0;
}

static int
list_line(void *arg, unsigned lineno, const char *s, size_t n)
{
	struct list_load *ll = arg;
	struct directory *dir = ll->dir;
	const char *eq, *k, *v;
	size_t kn, vn;

	ll->lineno = lineno;
	while (n > 0 && is_blank(*s)) {
		s++;
		n--;
	}
	if (s[0] == '[') {
		struct dir_entry e;
		int err = list_end(ll) < 0 ? -1 : 0;

		ll->cur_bad = 1;
		if (s[n - 1] != ']') {
			diag_add(ll->diags, ll->path, lineno, "section header without closing ']'");
			return -1;
		}
		k = s + 1;
		kn = n - 2;
		while (kn > 0 && is_blank(*k)) {
			k++;
			kn--;
		}
		while (kn > 0 && is_blank(k[kn - 1]))
			kn--;
		if (dir->nentries >= DIRECTORY_ALIASES_MAX) {
			diag_add(ll->diags, ll->path, lineno,
				 "too many aliases and lists (more than %u)", DIRECTORY_ALIASES_MAX);
			return -1;
		}
		memset(&e, 0, sizeof(e));
		e.kind = DIR_LIST;
		e.line = lineno;
		if (entry_name(dir, ll->path, lineno, k, kn, 0, &e.local, &e.domain, ll->diags) < 0)
			return -1;
		ll->cur_idx = entry_add(dir, &e);
		ll->cur = &dir->entries[ll->cur_idx];
		ll->cur_bad = 0;
		ll->senders_line = ll->disabled_line = 0;
		return err;
	}
	eq = memchr(s, '=', n);
	if (eq == NULL) {
		diag_add(ll->diags, ll->path, lineno,
			 "expected \"key = value\", \"[list@domain]\" or a comment");
		return -1;
	}
	k = s;
	kn = (size_t)(eq - s);
	while (kn > 0 && is_blank(k[kn - 1]))
		kn--;
	v = eq + 1;
	vn = (size_t)(s + n - v);
	while (vn > 0 && is_blank(*v)) {
		v++;
		vn--;
	}
	if (ll->cur_bad)
		return 0;	/* the header was reported */
	if (ll->cur == NULL) {
		diag_add(ll->diags, ll->path, lineno,
			 "%.*s outside any list (add a [list@domain] line above it)", SHOWN(kn), k);
		return -1;
	}
	ll->cur = &dir->entries[ll->cur_idx];
	if (kn == 7 && memcmp(k, "members", 7) == 0)
		return words_each(v, vn, list_member, ll) > 0 ? -1 : 0;
	if (kn == 7 && memcmp(k, "senders", 7) == 0) {
		if (ll->senders_line == 0)
			ll->senders_line = lineno;
		if (vn == 0) {
			diag_add(ll->diags, ll->path, lineno, "senders: empty");
			return -1;
		}
		return words_each(v, vn, list_sender, ll) > 0 ? -1 : 0;
	}
	if (kn == 8 && memcmp(k, "disabled", 8) == 0) {
		static const char *const yes[] = { "yes", "true", "on", "1" };
		static const char *const no[] = { "no", "false", "off", "0" };

		if (ll->disabled_line != 0) {
			diag_add(ll->diags, ll->path, lineno,
				 "duplicate key disabled (already set at line %u)", ll->disabled_line);
			return -1;
		}
		ll->disabled_line = lineno;
		for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
			if (strlen(yes[i]) == vn && strncasecmp(v, yes[i], vn) == 0) {
				ll->cur->disabled = 1;
				return 0;
			}
			if (strlen(no[i]) == vn && strncasecmp(v, no[i], vn) == 0) {
				ll->cur->disabled = 0;
				return 0;
			}
		}
		diag_add(ll->diags, ll->path, lineno, "disabled: \"%.*s\" is not yes or no",
			 SHOWN(vn), v);
		return -1;
	}
	diag_add(ll->diags, ll->path, lineno, "unknown key \"%.*s\" (members, senders, disabled)",
		 SHOWN(kn), k);
	return -1;
}

int
directory_load_lists(struct directory *dir, const char *path, struct diag *diags)
{
	struct list_load ll;
	int errors;

	memset(&ll, 0, sizeof(ll));
	ll.dir = dir;
	ll.path = path;
	ll.diags = diags;
	errors = lines_each(path, "local.lists", diags, list_line, &ll);
	if (list_end(&ll) < 0)
		errors++;
	return errors > 0 ? -1 : 0;
}
