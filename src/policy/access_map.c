/*
 * access_map.c - the access map file (see access_map.h): parsing with one
 * FILE:LINE diagnostic per bad line, and the in-memory lookup.
 *
 * Single-tag exact keys go into one hash keyed on (tag, normalised text);
 * everything else (CIDR, glob, regex, combinations) into a list kept in
 * file order. A lookup takes the earliest line among the hash's hits and
 * the list's first match. Regexes run with a match limit, so a pattern
 * cannot spin a loop thread.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "access_map.h"

#include <fnmatch.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "cidr.h"
#include "hash.h"

#define KEY_SHOWN_MAX 100
#define REGEX_MATCH_LIMIT 100000u

enum pat_kind { PAT_EXACT, PAT_CIDR, PAT_GLOB, PAT_REGEX };

struct access_pat {
	enum pat_kind kind;
	char *s;		/* owned: exact (normalised) or glob text */
	struct cidr net;
	pcre2_code *re;		/* owned */
};

struct access_entry {
	enum access_tag tag;
	struct access_pat pat[2];
	size_t npat;
	enum access_action action;
	char *text;		/* owned, "" if none */
	char key[KEY_SHOWN_MAX + 1];
	unsigned line;
};

struct access_map {
	struct access_entry *v;	/* owned, file order */
	size_t n, cap;
	struct hash exact;	/* single-tag exact keys: index into v */
	size_t *list;		/* owned: the other entries' indexes, file order */
	size_t nlist;
	pcre2_match_context *mctx;	/* owned */
	unsigned name_tags;	/* ACCESS_MASK of tags with a Connect pattern
				 * that may match the client's name */
};

static const char *const tag_names[] = { "Connect", "Helo", "From", "To" };

/* ---- the hash of exact keys --------------------------------------------- */

struct exact_key {
	enum access_tag tag;
	const char *s;
};

static uint64_t
exact_hash(enum access_tag tag, const char *s)
{
	uint64_t h = hash_start();
	unsigned char t = (unsigned char)tag;

	h = hash_feed(h, &t, 1, 0);
	h = hash_feed(h, s, strlen(s), 1);
	return hash_end(h);
}

static int
exact_eq(const void *ctx, uint32_t val, const void *key)
{
	const struct access_map *m = ctx;
	const struct exact_key *k = key;
	const struct access_entry *e = &m->v[val];

	return e->tag == k->tag && strcasecmp(e->pat[0].s, k->s) == 0;
}

/* ---- patterns ----------------------------------------------------------- */

static void
pat_fini(struct access_pat *p)
{
	free(p->s);
	pcre2_code_free(p->re);
	memset(p, 0, sizeof(*p));
}

static void
entry_fini(struct access_entry *e)
{
	for (size_t i = 0; i < e->npat; i++)
		pat_fini(&e->pat[i]);
	free(e->text);
}

static int
has_glob(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] == '*' || s[i] == '?' || s[i] == '[')
			return 1;
	return 0;
}

/* Where the pattern at s (n octets) ends: after the closing '/' of a
 * regex, else at the next ":From:" or ":To:" (ASCII case ignored).
 * (size_t)-1 for a regex without its closing '/'. */
static size_t
pat_end(const char *s, size_t n)
{
	if (n > 0 && s[0] == '/') {
		for (size_t i = 1; i < n; i++) {
			if (s[i] == '\\' && i + 1 < n)
				i++;
			else if (s[i] == '/')
				return i + 1;
		}
		return (size_t)-1;
	}
	for (size_t i = 0; i < n; i++)
		if (s[i] == ':' && ((n - i >= 6 && strncasecmp(s + i, ":From:", 6) == 0) ||
				    (n - i >= 4 && strncasecmp(s + i, ":To:", 4) == 0)))
			return i;
	return n;
}

/* Parses one pattern of a tag; 0 or -1 with *why set. */
static int
pat_parse(struct access_pat *p, enum access_tag tag, const char *s, size_t n, char *why,
	  size_t whysize)
{
	memset(p, 0, sizeof(*p));
	if (n == 0) {
		snprintf(why, whysize, "empty pattern");
		return -1;
	}
	if (s[0] == '/') {
		int err = 0;
		PCRE2_SIZE off = 0;

		if (n < 3 || s[n - 1] != '/') {
			snprintf(why, whysize, "regex without its closing '/'");
			return -1;
		}
		p->kind = PAT_REGEX;
		p->re = pcre2_compile((PCRE2_SPTR)(s + 1), n - 2, PCRE2_CASELESS, &err, &off, NULL);
		if (p->re == NULL) {
			PCRE2_UCHAR msg[120];

			if (pcre2_get_error_message(err, msg, sizeof(msg)) < 0)
				memcpy(msg, "unknown error", sizeof("unknown error"));
			snprintf(why, whysize, "bad regex at offset %zu: %s", (size_t)off,
				 (const char *)msg);
			return -1;
		}
		return 0;
	}
	p->s = xstrndup(s, n);
	if (tag == ACCESS_TAG_CONNECT && (memchr(s, '/', n) != NULL || !has_glob(s, n))) {
		if (cidr_parse(p->s, &p->net) == 0) {
			p->kind = PAT_CIDR;
			return 0;
		}
		if (memchr(s, '/', n) != NULL) {
			snprintf(why, whysize, "bad network \"%.*s\" (want ADDRESS/PREFIX)",
				 (int)(n > 60 ? 60 : n), s);
			return -1;
		}
	}
	if (has_glob(s, n)) {
		p->kind = PAT_GLOB;
		return 0;
	}
	p->kind = PAT_EXACT;
	/* From:/To: "domain" means "@domain" */
	if ((tag == ACCESS_TAG_FROM || tag == ACCESS_TAG_TO) && strchr(p->s, '@') == NULL &&
	    strcmp(p->s, "<>") != 0) {
		char *d = xcalloc(n + 2, 1);

		d[0] = '@';
		memcpy(d + 1, p->s, n);
		free(p->s);
		p->s = d;
	}
	return 0;
}

/* ---- lines -------------------------------------------------------------- */

static int
tag_take(const char *s, size_t n, size_t *pos, const char *name)
{
	size_t l = strlen(name);

	if (n - *pos > l && strncasecmp(s + *pos, name, l) == 0 && s[*pos + l] == ':') {
		*pos += l + 1;
		return 1;
	}
	return 0;
}

/* The tags of the key at s: one or two names (and positions of their
 * patterns). -1 when the key is no known tag or combination. */
static int
key_parse(struct access_entry *e, const char *s, size_t n, char *why, size_t whysize)
{
	size_t pos = 0, end, starts[2], lens[2];
	int first = -1, second = -1;

	for (int t = 0; t < 4 && first < 0; t++)
		if (tag_take(s, n, &pos, tag_names[t]))
			first = t;
	if (first < 0) {
		snprintf(why, whysize, "unknown tag (want Connect:, Helo:, From: or To:)");
		return -1;
	}
	end = pat_end(s + pos, n - pos);
	if (end == (size_t)-1) {
		snprintf(why, whysize, "regex without its closing '/'");
		return -1;
	}
	starts[0] = pos;
	lens[0] = end;
	pos += end;
	e->npat = 1;
	e->tag = (enum access_tag)first;
	if (pos < n) {
		pos++;	/* the ':' before the second tag */
		if (first == ACCESS_TAG_CONNECT && tag_take(s, n, &pos, "From"))
			second = ACCESS_TAG_CONNECT_FROM;
		else if (first == ACCESS_TAG_CONNECT && tag_take(s, n, &pos, "To"))
			second = ACCESS_TAG_CONNECT_TO;
		else if (first == ACCESS_TAG_FROM && tag_take(s, n, &pos, "To"))
			second = ACCESS_TAG_FROM_TO;
		if (second < 0) {
			snprintf(why, whysize,
				 "bad combination (want Connect:..:From:, Connect:..:To: or From:..:To:)");
			return -1;
		}
		end = pat_end(s + pos, n - pos);
		if (end != n - pos) {
			snprintf(why, whysize, "text after the second pattern");
			return -1;
		}
		starts[1] = pos;
		lens[1] = end;
		e->npat = 2;
		e->tag = (enum access_tag)second;
	}
	for (size_t i = 0; i < e->npat; i++) {
		enum access_tag t = (enum access_tag)first;

		if (i == 1)
			t = second == ACCESS_TAG_CONNECT_FROM ? ACCESS_TAG_FROM : ACCESS_TAG_TO;
		if (pat_parse(&e->pat[i], t, s + starts[i], lens[i], why, whysize) < 0) {
			e->npat = i + 1;
			return -1;
		}
	}
	return 0;
}

static int
action_parse(const char *s, size_t n, enum access_action *out)
{
	static const struct { const char *name; enum access_action a; } acts[] = {
		{ "OK", ACCESS_OK }, { "REJECT", ACCESS_REJECT },
		{ "TEMPFAIL", ACCESS_TEMPFAIL }, { "DISCARD", ACCESS_DISCARD },
	};

	for (size_t i = 0; i < sizeof(acts) / sizeof(acts[0]); i++)
		if (strlen(acts[i].name) == n && strncasecmp(s, acts[i].name, n) == 0) {
			*out = acts[i].a;
			return 0;
		}
	return -1;
}

static int
is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* One non-blank, non-comment line into e; -1 with why. */
static int
line_parse(struct access_entry *e, const char *s, size_t n, char *why, size_t whysize)
{
	size_t k = 0, kn, a, an, t;

	while (k < n && !is_space(s[k]))
		k++;
	kn = k;
	while (k < n && is_space(s[k]))
		k++;
	a = k;
	while (k < n && !is_space(s[k]))
		k++;
	an = k - a;
	while (k < n && is_space(s[k]))
		k++;
	t = k;
	memcpy(e->key, s, kn > KEY_SHOWN_MAX ? KEY_SHOWN_MAX : kn);
	e->key[kn > KEY_SHOWN_MAX ? KEY_SHOWN_MAX : kn] = '\0';
	if (an == 0) {
		snprintf(why, whysize, "no action (want KEY OK|REJECT|TEMPFAIL|DISCARD [text])");
		return -1;
	}
	if (action_parse(s + a, an, &e->action) < 0) {
		snprintf(why, whysize, "unknown action \"%.*s\" (want OK, REJECT, TEMPFAIL or DISCARD)",
			 (int)(an > 40 ? 40 : an), s + a);
		return -1;
	}
	if (n - t > ACCESS_TEXT_MAX) {
		snprintf(why, whysize, "reply text longer than %u octets", ACCESS_TEXT_MAX);
		return -1;
	}
	for (size_t i = t; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e) {
			snprintf(why, whysize, "reply text must be printable ASCII");
			return -1;
		}
	if (key_parse(e, s, kn, why, whysize) < 0)
		return -1;
	e->text = xstrndup(s + t, n - t);
	return 0;
}

static int
map_add(struct access_map *m, struct access_entry *e, const char *path, struct diag *diags)
{
	if (m->n >= ACCESS_ENTRIES_MAX) {
		diag_add(diags, path, e->line, "more than %u entries", ACCESS_ENTRIES_MAX);
		return -1;
	}
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 16;
		m->v = xrealloc(m->v, m->cap * sizeof(*m->v));
		m->list = xrealloc(m->list, m->cap * sizeof(*m->list));
	}
	m->v[m->n] = *e;
	if ((e->tag == ACCESS_TAG_CONNECT || e->tag == ACCESS_TAG_CONNECT_FROM ||
	     e->tag == ACCESS_TAG_CONNECT_TO) && e->pat[0].kind != PAT_CIDR)
		m->name_tags |= ACCESS_MASK(e->tag);
	if (e->npat == 1 && e->pat[0].kind == PAT_EXACT) {
		struct exact_key k = { e->tag, e->pat[0].s };
		uint32_t first = 0;
		int r = hash_insert(&m->exact, exact_hash(e->tag, e->pat[0].s), m, &k,
				    (uint32_t)m->n, &first);

		if (r != 0) {
			if (r > 0)
				diag_add(diags, path, e->line, "key %s given twice (first at line %u)",
					 e->key, m->v[first].line);
			else
				diag_add(diags, path, e->line, "too many keys");
			return -1;
		}
	} else {
		m->list[m->nlist++] = m->n;
	}
	m->n++;
	return 0;
}

struct access_map *
access_map_parse(const char *path, const char *text, size_t len, struct diag *diags)
{
	struct access_map *m = xcalloc(1, sizeof(*m));
	size_t pos = 0;
	unsigned lineno = 0;
	int errors = 0;

	hash_init(&m->exact, ACCESS_ENTRIES_MAX, exact_eq);
	m->mctx = pcre2_match_context_create(NULL);
	if (m->mctx == NULL)
		abort();
	if (pcre2_set_match_limit(m->mctx, REGEX_MATCH_LIMIT) != 0 ||
	    pcre2_set_depth_limit(m->mctx, REGEX_MATCH_LIMIT / 10) != 0)
		abort();
	while (pos < len) {
		const char *s = text + pos, *nl = memchr(s, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - s) : len - pos, k = 0;
		struct access_entry e;
		char why[200];

		pos += n + (nl != NULL);
		lineno++;
		if (n > ACCESS_LINE_MAX || memchr(s, '\0', n) != NULL) {
			diag_add(diags, path, lineno, "line longer than %u octets or with a NUL",
				 ACCESS_LINE_MAX);
			errors++;
			continue;
		}
		while (n > 0 && (is_space(s[n - 1]) || s[n - 1] == '\r'))
			n--;
		while (k < n && is_space(s[k]))
			k++;
		if (k == n || s[k] == '#')
			continue;
		memset(&e, 0, sizeof(e));
		e.line = lineno;
		if (line_parse(&e, s + k, n - k, why, sizeof(why)) < 0) {
			diag_add(diags, path, lineno, "%s: %s", e.key[0] ? e.key : "(line)", why);
			entry_fini(&e);
			errors++;
			continue;
		}
		if (map_add(m, &e, path, diags) < 0) {
			entry_fini(&e);
			errors++;
		}
	}
	if (errors > 0)
		access_map_free(&m);
	return m;
}

struct access_map *
access_map_load(const char *path, const char *option, struct diag *diags)
{
	size_t len = 0;
	char *text = diag_read_file(path, option, ACCESS_FILE_MAX, &len, diags);
	struct access_map *m;

	if (text == NULL)
		return NULL;
	m = access_map_parse(path, text, len, diags);
	free(text);
	return m;
}

void
access_map_free(struct access_map **mapp)
{
	struct access_map *m = *mapp;

	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n; i++)
		entry_fini(&m->v[i]);
	free(m->v);
	free(m->list);
	hash_fini(&m->exact);
	pcre2_match_context_free(m->mctx);
	free(m);
	*mapp = NULL;
}

size_t
access_map_count(const struct access_map *map)
{
	return map != NULL ? map->n : 0;
}

/* ---- lookups ------------------------------------------------------------ */

static int
regex_match(const struct access_map *m, const pcre2_code *re, const char *v)
{
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
	int r;

	if (md == NULL)
		abort();
	r = pcre2_match(re, (PCRE2_SPTR)v, strlen(v), 0, 0, md, m->mctx);
	pcre2_match_data_free(md);
	return r >= 0;	/* an error (match limit) is no match */
}

/* 1 if value v matches p (v NULL: unknown, no match). For From:/To:
 * exact patterns v is an address and p one of its forms. */
static int
pat_match_text(const struct access_map *m, const struct access_pat *p, enum access_tag tag,
	       const char *v)
{
	if (v == NULL)
		return 0;
	switch (p->kind) {
	case PAT_REGEX: return regex_match(m, p->re, v);
	case PAT_GLOB: return fnmatch(p->s, v, FNM_CASEFOLD) == 0;
	case PAT_CIDR: return 0;
	case PAT_EXACT: break;
	}
	if (tag != ACCESS_TAG_FROM && tag != ACCESS_TAG_TO)
		return strcasecmp(p->s, v) == 0;
	if (v[0] == '\0')
		return strcmp(p->s, "<>") == 0;
	if (p->s[0] == '@') {
		const char *at = strrchr(v, '@');

		return at != NULL && strcasecmp(at, p->s) == 0;
	}
	size_t pl = strlen(p->s);

	if (p->s[pl - 1] == '@')
		return strncasecmp(v, p->s, pl) == 0 && strchr(v + pl, '@') == NULL;
	return strcasecmp(p->s, v) == 0;
}

static int
pat_match_client(const struct access_map *m, const struct access_pat *p,
		 const struct access_subject *s)
{
	if (p->kind == PAT_CIDR) {
		struct cidr net = p->net;
		struct cidr_list l = { &net, 1 };

		return s->peer != NULL && cidr_list_match(&l, s->peer);
	}
	if (p->kind != PAT_EXACT && pat_match_text(m, p, ACCESS_TAG_CONNECT, s->client))
		return 1;
	return pat_match_text(m, p, ACCESS_TAG_CONNECT, s->name);
}

static int
entry_match(const struct access_map *m, const struct access_entry *e,
	    const struct access_subject *s)
{
	switch (e->tag) {
	case ACCESS_TAG_CONNECT: return pat_match_client(m, &e->pat[0], s);
	case ACCESS_TAG_HELO: return pat_match_text(m, &e->pat[0], e->tag, s->helo);
	case ACCESS_TAG_FROM: return pat_match_text(m, &e->pat[0], e->tag, s->from);
	case ACCESS_TAG_TO: return pat_match_text(m, &e->pat[0], e->tag, s->rcpt);
	case ACCESS_TAG_CONNECT_FROM:
		return pat_match_client(m, &e->pat[0], s) &&
		       pat_match_text(m, &e->pat[1], ACCESS_TAG_FROM, s->from);
	case ACCESS_TAG_CONNECT_TO:
		return pat_match_client(m, &e->pat[0], s) &&
		       pat_match_text(m, &e->pat[1], ACCESS_TAG_TO, s->rcpt);
	case ACCESS_TAG_FROM_TO:
		return pat_match_text(m, &e->pat[0], ACCESS_TAG_FROM, s->from) &&
		       pat_match_text(m, &e->pat[1], ACCESS_TAG_TO, s->rcpt);
	case ACCESS_TAG__COUNT: break;
	}
	return 0;
}

/* Looks up one exact form; keeps the earliest line in *best. */
static void
exact_try(const struct access_map *m, enum access_tag tag, const char *v, size_t *best)
{
	struct exact_key k = { tag, v };
	uint32_t i;

	if (v == NULL || !hash_find(&m->exact, exact_hash(tag, v), m, &k, &i))
		return;
	if (*best == SIZE_MAX || i < *best)
		*best = i;
}

/* The exact forms of an address: "a@d", "a@", "@d"; "<>" for "". */
static void
exact_addr(const struct access_map *m, enum access_tag tag, const char *v, size_t *best)
{
	char form[1024];
	const char *at;
	size_t n;

	if (v == NULL)
		return;
	if (v[0] == '\0') {
		exact_try(m, tag, "<>", best);
		return;
	}
	exact_try(m, tag, v, best);
	at = strrchr(v, '@');
	if (at == NULL)
		return;
	exact_try(m, tag, at, best);
	n = (size_t)(at - v) + 1;
	if (n < sizeof(form)) {
		memcpy(form, v, n);
		form[n] = '\0';
		exact_try(m, tag, form, best);
	}
}

const struct access_entry *
access_map_find(const struct access_map *m, unsigned tags, const struct access_subject *s)
{
	size_t best = SIZE_MAX;

	if (m == NULL || m->n == 0)
		return NULL;
	if (tags & ACCESS_MASK(ACCESS_TAG_CONNECT))
		exact_try(m, ACCESS_TAG_CONNECT, s->name, &best);
	if (tags & ACCESS_MASK(ACCESS_TAG_HELO))
		exact_try(m, ACCESS_TAG_HELO, s->helo, &best);
	if (tags & ACCESS_MASK(ACCESS_TAG_FROM))
		exact_addr(m, ACCESS_TAG_FROM, s->from, &best);
	if (tags & ACCESS_MASK(ACCESS_TAG_TO))
		exact_addr(m, ACCESS_TAG_TO, s->rcpt, &best);
	for (size_t i = 0; i < m->nlist && m->list[i] < best; i++) {
		const struct access_entry *e = &m->v[m->list[i]];

		if ((tags & ACCESS_MASK(e->tag)) && entry_match(m, e, s)) {
			best = m->list[i];
			break;
		}
	}
	return best == SIZE_MAX ? NULL : &m->v[best];
}

int
access_map_needs_name(const struct access_map *m, unsigned tags)
{
	return m != NULL && (m->name_tags & tags) != 0;
}

enum access_action
access_entry_action(const struct access_entry *e)
{
	return e->action;
}

const char *
access_entry_text(const struct access_entry *e)
{
	return e->text;
}

const char *
access_entry_key(const struct access_entry *e)
{
	return e->key;
}

unsigned
access_entry_line(const struct access_entry *e)
{
	return e->line;
}
