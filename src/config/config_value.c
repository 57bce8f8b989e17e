/*
 * config_value.c - parsing of option values and paths for the
 * configuration loader (see config_private.h): unquoting, sizes and
 * durations with suffixes, lists of durations, booleans, comma lists
 * (domains checked and sorted), and paths made absolute relative to the file's folder.
 */
#include "config_private.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

#include "domain.h"

/* ---- small helpers ---------------------------------------------------- */

int
config_is_space(char c)
{
	return c == ' ' || c == '\t';
}

void
config_trim(const char **s, size_t *n)
{
	while (*n > 0 && config_is_space(**s)) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && config_is_space((*s)[*n - 1]))
		(*n)--;
}

void
config_list_fini(struct config_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

int
config_cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}


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
char *
config_path_resolve(const char *dir, const char *value)
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
char *
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

static const char *const bool_true[] = { "yes", "true", "on", "1" };
static const char *const bool_false[] = { "no", "false", "off", "0" };

/* Unquotes a trimmed raw value: "..." with \" and \\ inside. Returns a
 * malloc'ed string, or NULL with *err set. */
char *
config_value_unquote(const char *raw, size_t n, const char **err)
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
int
config_parse_scaled(const char *v, const char *suffixes, const uint64_t *mult, uint64_t *out)
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

int
config_parse_bool(const char *v, int *out)
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
int
config_parse_list(const char *v, int domains, struct config_list *out, const char **bad, size_t *badlen)
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
		config_trim(&w, &n);
		if (n == 0)
			continue;
		if (domains) {
			size_t dn = (n > 1 && w[n - 1] == '.') ? n - 1 : n;

			if (!domain_name_valid(w, dn)) {
				*bad = w;
				*badlen = n;
				config_list_fini(&l);
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

		qsort(l.v, l.n, sizeof(*l.v), config_cmp_str);
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

/* ---- durations -------------------------------------------------------- */

const char *
config_next_word(const char **p, size_t *n)
{
	const char *s = *p, *w;

	while (*s == ',' || config_is_space(*s))
		s++;
	if (*s == '\0') {
		*p = s;
		return NULL;
	}
	w = s;
	while (*s != '\0' && *s != ',' && !config_is_space(*s))
		s++;
	*n = (size_t)(s - w);
	*p = s;
	return w;
}

int
config_parse_duration(const char *v, uint64_t *out)
{
	static const uint64_t mult[] = { 1, 60, 3600 };

	return config_parse_scaled(v, "smh", mult, out);
}

void
config_durations_fini(struct config_durations *d)
{
	free(d->v);
	d->v = NULL;
	d->n = 0;
}

int
config_parse_durations(const char *v, uint64_t min, uint64_t max, struct config_durations *out,
		       char *err, size_t errlen)
{
	struct config_durations d = { NULL, 0 };
	const char *p = v;

	d.v = xcalloc(CONFIG_DURATIONS_MAX, sizeof(*d.v));
	for (;;) {
		const char *w;
		char word[32];
		uint64_t x;
		size_t n;

		w = config_next_word(&p, &n);
		if (w == NULL)
			break;
		if (n < sizeof(word)) {
			memcpy(word, w, n);
			word[n] = '\0';
		}
		if (n >= sizeof(word) || config_parse_duration(word, &x) < 0) {
			snprintf(err, errlen, "\"%.*s\" is not a duration (seconds, or a number with suffix s, m or h)",
				 (int)(n > 40 ? 40 : n), w);
			goto fail;
		}
		if (x < min || x > max) {
			snprintf(err, errlen, "%.*s is out of range (%llu..%llu seconds)", (int)n, w,
				 (unsigned long long)min, (unsigned long long)max);
			goto fail;
		}
		if (d.n == CONFIG_DURATIONS_MAX) {
			snprintf(err, errlen, "more than %d durations", CONFIG_DURATIONS_MAX);
			goto fail;
		}
		d.v[d.n++] = (unsigned)x;
	}
	if (d.n == 0) {
		snprintf(err, errlen, "no duration given");
		goto fail;
	}
	*out = d;
	return 0;
fail:
	config_durations_fini(&d);
	return -1;
}
