/*
 * directory.c - the local accounts directory: loads the passwd-file (and
 * the Postern extra fields of each account), answers lookups, verifies and
 * makes password hashes (see directory.h).
 *
 * Owns struct directory (directory_private.h): an array of accounts (each
 * one allocation holding its four strings, plus forward), and an
 * open-addressing hash index over the lower-cased "local@domain" key, so
 * lookups stay O(1) at 100k accounts and more. Aliases and lists are
 * loaded by directory_alias.c into the same struct.
 * Read-only once loaded: many threads may look up at once.
 * Password checks use crypt_r(3) from libxcrypt with the (large) struct
 * crypt_data on the heap; they are slow by design and belong on workers.
 */
#include "directory.h"

#include <crypt.h>
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "domain.h"
#include "directory_private.h"

#define DIRECTORY_MAX_ACCOUNTS 50000000u	/* index entries are 32-bit */

/* ---- names ------------------------------------------------------------ */

unsigned char
dir_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

int
directory_local_valid(const char *s, size_t len)
{
	static const char atext_specials[] = "!#$%&'*+-/=?^_`{|}~";

	if (len == 0 || len > 64 || s[0] == '.' || s[len - 1] == '.')
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (s[i + 1] == '.')
				return 0;
			continue;
		}
		if (c >= 0x80)
			continue;	/* UTF-8 (RFC 6531), kept as is */
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9'))
			continue;
		if (c == '\0' || strchr(atext_specials, c) == NULL)
			return 0;
	}
	return 1;
}

/* ---- index ------------------------------------------------------------ */

/* The hash of the lower-cased key local '@' domain, through the one hash
 * table's seeded function (core/hash.h). */
uint64_t
dir_key_hash(const char *local, size_t llen, const char *domain, size_t dlen)
{
	uint64_t h = hash_feed(hash_start(), local, llen, 1);

	h = hash_feed(h, "@", 1, 0);
	return hash_end(hash_feed(h, domain, dlen, 1));
}

/* 1 if the stored lower-case s equals p (any case), both len octets. */
int
dir_eq_lower(const char *s, const char *p, size_t len)
{
	if (strlen(s) != len)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] != dir_lower((unsigned char)p[i]))
			return 0;
	return 1;
}

int
dir_key_eq(const char *local, const char *domain, const struct dir_key *k)
{
	return dir_eq_lower(local, k->local, k->llen) && dir_eq_lower(domain, k->domain, k->dlen);
}

/* hash_eq_fn for dir->index: ctx the directory, key a struct dir_key. */
static int
index_eq(const void *ctx, uint32_t val, const void *key)
{
	const struct directory *dir = ctx;

	return dir_key_eq(dir->accts[val].local, dir->accts[val].domain, key);
}

struct directory *
directory_empty(void)
{
	struct directory *dir = xcalloc(1, sizeof(*dir));

	hash_init(&dir->index, DIRECTORY_MAX_ACCOUNTS, index_eq);
	dir_entries_init(dir);
	return dir;
}

void
directory_free(struct directory **dirp)
{
	struct directory *dir = *dirp;

	if (dir == NULL)
		return;
	for (size_t i = 0; i < dir->n; i++) {
		free(dir->accts[i].local);
		free(dir->accts[i].forward);
	}
	free(dir->accts);
	dir_entries_free(dir);
	dir_domains_free(dir);
	free(dir->lines);
	hash_fini(&dir->index);
	directory_srs_free(dir);
	free(dir);
	*dirp = NULL;
}

size_t
directory_count(const struct directory *dir)
{
	return dir ? dir->n : 0;
}

const struct account *
directory_find(const struct directory *dir, const char *local, size_t local_len,
	       const char *domain, size_t domain_len)
{
	struct dir_key k = { local, domain, local_len, domain_len };
	uint32_t v;

	if (dir == NULL || dir->n == 0)
		return NULL;
	if (!hash_find(&dir->index, dir_key_hash(local, local_len, domain, domain_len), dir, &k,
		       &v))
		return NULL;
	return &dir->accts[v];
}

/* ---- loading ---------------------------------------------------------- */

/* Password schemes we can verify, and what their hash must start with. */
static const struct {
	const char *name;	/* between the braces */
	const char *hash_prefix;
} schemes[] = {
	{ "CRYPT", "$" },	/* modern crypt(3) hashes; DES is not accepted */
	{ "BLF-CRYPT", "$2" },
	{ "SHA512-CRYPT", "$6$" },
};

/* Scheme of "{NAME}hash" (or a bare crypt hash, which passwd-file reads as
 * CRYPT): index into schemes[], -1 unknown; *hash_out after the braces. */
static int
scheme_of(const char *pw, const char **hash_out)
{
	const char *end;

	if (pw[0] != '{') {
		*hash_out = pw;
		return 0;
	}
	end = strchr(pw, '}');
	if (end == NULL)
		return -1;
	*hash_out = end + 1;
	for (size_t i = 0; i < ARRAY_LEN(schemes); i++) {
		size_t n = strlen(schemes[i].name);

		if ((size_t)(end - pw - 1) == n && strncasecmp(pw + 1, schemes[i].name, n) == 0)
			return (int)i;
	}
	return -1;
}

/* Reads the whole file (at most max octets) into a NUL-terminated buffer.
 * On failure reports it to diags and returns NULL. */

static void
add_account(struct directory *dir, const char *local, size_t llen,
	    const char *domain, size_t dlen, const char *pw, size_t pwlen,
	    const char *extra, size_t xlen, unsigned line, const struct account *fields)
{
	struct account *a;
	char *block, *p;

	if (dir->n == dir->cap) {
		dir->cap = dir->cap ? dir->cap * 2 : 64;
		dir->accts = xrealloc(dir->accts, dir->cap * sizeof(*dir->accts));
		dir->lines = xrealloc(dir->lines, dir->cap * sizeof(*dir->lines));
	}
	block = xmalloc(llen + dlen + pwlen + xlen + 4);
	a = &dir->accts[dir->n];
	*a = *fields;		/* the extra fields; the strings follow */
	p = block;
	a->local = p;
	for (size_t i = 0; i < llen; i++)
		*p++ = (char)dir_lower((unsigned char)local[i]);
	*p++ = '\0';
	a->domain = p;
	for (size_t i = 0; i < dlen; i++)
		*p++ = (char)dir_lower((unsigned char)domain[i]);
	*p++ = '\0';
	a->password = p;
	memcpy(p, pw, pwlen);
	p += pwlen;
	*p++ = '\0';
	a->extra = p;
	memcpy(p, extra, xlen);
	p[xlen] = '\0';
	dir->lines[dir->n] = line;
	struct dir_key k = { a->local, a->domain, llen, dlen };
	/* The caller refused duplicates and the count is bounded, so the
	 * key is new and fits. */
	if (hash_insert(&dir->index, dir_key_hash(a->local, llen, a->domain, dlen), dir, &k,
			(uint32_t)dir->n, NULL) != 0)
		PANIC("account index out of step");
	dir->n++;
}

/* ---- extra fields ----------------------------------------------------- */

/* yes/no/true/false/on/off/1/0; a bare key (no '=') means yes. */
static int
extra_bool(const char *v, size_t n, int *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	if (v == NULL) {
		*out = 1;
		return 0;
	}
	for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
		if (strlen(yes[i]) == n && strncasecmp(v, yes[i], n) == 0) {
			*out = 1;
			return 0;
		}
		if (strlen(no[i]) == n && strncasecmp(v, no[i], n) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

/* A number with an optional suffix K, M, G, T (powers of 1024). */
static int
extra_size(const char *v, size_t n, int scaled, uint64_t *out)
{
	uint64_t mult = 1, x;

	if (v == NULL || n == 0)
		return -1;
	if (scaled) {
		const char *units = "KMGT";
		const char *u = strchr(units, toupper((unsigned char)v[n - 1]));

		if (v[n - 1] != '\0' && u != NULL) {
			for (const char *k = units; k <= u; k++)
				mult *= 1024;
			n--;
		}
	}
	if (n == 0 || n > 20 ||
	    slice_to_u64((struct slice){ (const uint8_t *)v, n }, UINT64_MAX, &x) < 0 ||
	    x > UINT64_MAX / mult)
		return -1;
	*out = x * mult;
	return 0;
}

/* Checks forward=a@x,b@y (a bare local part means the account's domain)
 * and returns it normalised ("local@domain", domain lower-cased), or NULL
 * after a diagnostic. */
static char *
extra_forward(const char *path, unsigned lineno, const char *v, size_t n,
	      const char *domain, size_t dlen, struct diag *diags)
{
	struct buf b;
	size_t count = 0;
	const char *p = v, *end = v + n;

	/* bare local parts grow by their domain: room for the worst case */
	buf_init(&b, (size_t)DIRECTORY_FORWARDS_MAX * (64 + 1 + 253 + 1) + 1);
	while (p < end) {
		const char *w = p, *at;
		size_t wn;

		while (p < end && *p != ',')
			p++;
		wn = (size_t)(p - w);
		if (p < end)
			p++;
		if (wn == 0)
			continue;
		at = NULL;
		for (size_t i = wn; i > 0; i--)
			if (w[i - 1] == '@') {
				at = w + i - 1;
				break;
			}
		if (at == NULL ? !directory_local_valid(w, wn)
			       : (!directory_local_valid(w, (size_t)(at - w)) ||
				  !domain_name_valid(at + 1, (size_t)(w + wn - at - 1)))) {
			diag_add(diags, path, lineno, "forward: bad address \"%.*s\"",
				 (int)(wn > 200 ? 200 : wn), w);
			buf_fini(&b);
			return NULL;
		}
		if (++count > DIRECTORY_FORWARDS_MAX) {
			diag_add(diags, path, lineno, "forward: more than %u addresses",
				 DIRECTORY_FORWARDS_MAX);
			buf_fini(&b);
			return NULL;
		}
		const char *dom = at ? at + 1 : domain;
		size_t domn = at ? (size_t)(w + wn - at - 1) : dlen;
		size_t ln = at ? (size_t)(at - w) : wn;
		int bad = 0;

		if (b.len > 0)
			bad |= buf_append_byte(&b, ',');
		bad |= buf_append(&b, w, ln);
		bad |= buf_append_byte(&b, '@');
		for (size_t i = 0; i < domn; i++)
			bad |= buf_append_byte(&b, dir_lower((unsigned char)dom[i]));
		if (bad != 0)
			PANIC("forward list longer than its line");
	}
	if (b.len == 0) {
		diag_add(diags, path, lineno, "forward: no address");
		buf_fini(&b);
		return NULL;
	}
	(void)buf_cstr(&b);
	return (char *)b.data;
}

/* Reads the extra fields of an account line: rest is everything after the
 * password ("uid:gid:gecos:home:shell:extra fields"); the extra fields
 * start after the fifth ':' of it and are space-separated key[=value].
 * Keys Postern does not know are Dovecot's and are skipped. Fills out
 * (forward is malloc'ed); returns 0 or -1 after diagnostics. */
static int
parse_extras(const char *path, unsigned lineno, const char *rest, size_t len,
	     const char *domain, size_t dlen, struct account *out, struct diag *diags)
{
	const char *p = rest, *end = rest + len;
	int colons = 0, errors = 0;

	memset(out, 0, sizeof(*out));
	out->pop3 = 1;
	while (p < end && colons < 5) {
		if (*p == ':')
			colons++;
		p++;
	}
	if (colons < 5)
		return 0;
	while (p < end) {
		const char *k, *v = NULL;
		size_t kn, vn = 0;

		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		k = p;
		while (p < end && *p != ' ' && *p != '\t')
			p++;
		kn = (size_t)(p - k);
		if (kn == 0)
			break;
		const char *eq = memchr(k, '=', kn);

		if (eq != NULL) {
			v = eq + 1;
			vn = (size_t)(k + kn - v);
			kn = (size_t)(eq - k);
		}
#define KEY_IS(name) (kn == sizeof(name) - 1 && memcmp(k, name, kn) == 0)
		if (KEY_IS("disabled") || KEY_IS("spamtrap") || KEY_IS("pop3") ||
		    KEY_IS("forward_keep")) {
			int b;

			if (extra_bool(v, vn, &b) < 0) {
				diag_add(diags, path, lineno, "%.*s: \"%.*s\" is not yes or no",
					 (int)kn, k, (int)(vn > 100 ? 100 : vn), v);
				errors++;
				continue;
			}
			if (KEY_IS("disabled"))
				out->disabled = b;
			else if (KEY_IS("spamtrap"))
				out->spamtrap = b;
			else if (KEY_IS("pop3"))
				out->pop3 = b;
			else
				out->forward_keep = b;
		} else if (KEY_IS("quota") || KEY_IS("quota_messages")) {
			uint64_t x;
			int scaled = KEY_IS("quota");

			if (extra_size(v, vn, scaled, &x) < 0) {
				diag_add(diags, path, lineno, "%.*s: \"%.*s\" is not %s",
					 (int)kn, k, (int)(vn > 100 ? 100 : vn), v ? v : "",
					 scaled ? "a size (bytes, or a number with suffix K, M, G or T)"
						: "a number");
				errors++;
				continue;
			}
			if (scaled)
				out->quota_bytes = x;
			else
				out->quota_messages = x;
		} else if (KEY_IS("forward")) {
			char *f;

			if (out->forward != NULL) {
				diag_add(diags, path, lineno, "forward given twice");
				errors++;
				continue;
			}
			f = extra_forward(path, lineno, v ? v : "", vn, domain, dlen, diags);
			if (f == NULL) {
				errors++;
				continue;
			}
			out->forward = f;
		}
#undef KEY_IS
	}
	if (errors > 0) {
		free(out->forward);
		out->forward = NULL;
		return -1;
	}
	return 0;
}

/* Parses one line (without its end); returns 0 or -1 after a diag. */
static int
parse_line(struct directory *dir, const char *path, unsigned lineno,
	   const char *s, size_t len, struct diag *diags)
{
	const char *colon, *at, *pw, *pwend, *hash;
	const struct account *first;
	size_t alen;
	int sc;

	colon = memchr(s, ':', len);
	if (colon == NULL) {
		diag_add(diags, path, lineno, "missing ':' after the account name");
		return -1;
	}
	alen = (size_t)(colon - s);
	at = NULL;
	for (size_t i = alen; i > 0; i--) {
		if (s[i - 1] == '@') {
			at = s + i - 1;
			break;
		}
	}
	if (at == NULL || !directory_local_valid(s, (size_t)(at - s)) ||
	    !domain_name_valid(at + 1, (size_t)(colon - at - 1))) {
		diag_add(diags, path, lineno, "bad account name \"%.*s\" (want user@domain)",
			 (int)(alen > 200 ? 200 : alen), s);
		return -1;
	}
	pw = colon + 1;
	pwend = memchr(pw, ':', len - alen - 1);
	if (pwend == NULL)
		pwend = s + len;
	if (pwend > pw) {
		/* Only the scheme and the start of the hash are checked here, so
		 * a short NUL-terminated copy of the start is enough. */
		char head[64];
		size_t hn = (size_t)(pwend - pw);

		if (hn >= sizeof(head))
			hn = sizeof(head) - 1;
		memcpy(head, pw, hn);
		head[hn] = '\0';
		sc = scheme_of(head, &hash);
		if (sc < 0) {
			const char *close = strchr(head, '}');

			/* Never show more than the scheme: the rest may be a secret. */
			if (close == NULL)
				diag_add(diags, path, lineno, "password scheme without closing '}'");
			else
				diag_add(diags, path, lineno,
					 "unknown password scheme %.*s (use {CRYPT}, {BLF-CRYPT} or {SHA512-CRYPT})",
					 (int)(close - head + 1), head);
			return -1;
		}
		if (*hash == '\0' ||
		    strncmp(hash, schemes[sc].hash_prefix, strlen(schemes[sc].hash_prefix)) != 0) {
			diag_add(diags, path, lineno, "password is not a {%s} hash (make one with postern passwd)",
				 schemes[sc].name);
			return -1;
		}
	}
	first = directory_find(dir, s, (size_t)(at - s), at + 1, (size_t)(colon - at - 1));
	if (first != NULL) {
		diag_add(diags, path, lineno, "duplicate account %s@%s (first at line %u)",
			 first->local, first->domain, dir->lines[first - dir->accts]);
		return -1;
	}
	if (dir->n >= DIRECTORY_MAX_ACCOUNTS) {
		diag_add(diags, path, lineno, "too many accounts (more than %u)", DIRECTORY_MAX_ACCOUNTS);
		return -1;
	}
	const char *rest = pwend < s + len ? pwend + 1 : "";
	size_t restlen = pwend < s + len ? (size_t)(s + len - pwend - 1) : 0;
	struct account fields;

	if (parse_extras(path, lineno, rest, restlen, at + 1, (size_t)(colon - at - 1),
			 &fields, diags) < 0)
		return -1;
	add_account(dir, s, (size_t)(at - s), at + 1, (size_t)(colon - at - 1),
		    pw, (size_t)(pwend - pw), rest, restlen, lineno, &fields);
	return 0;
}

int
dir_line_next(const char *text, size_t len, size_t *pos, unsigned *lineno, const char *path,
	      struct diag *diags, const char **line_out, size_t *n_out)
{
	const char *s, *nl;
	size_t n;

	if (*pos >= len)
		return 0;
	s = text + *pos;
	nl = memchr(s, '\n', len - *pos);
	n = nl ? (size_t)(nl - s) : len - *pos;
	*pos += n + (nl ? 1 : 0);
	(*lineno)++;
	if (n > DIRECTORY_LINE_MAX) {
		diag_add(diags, path, *lineno, "line too long (more than %d bytes)",
			 DIRECTORY_LINE_MAX);
		return -1;
	}
	if (memchr(s, '\0', n) != NULL) {
		diag_add(diags, path, *lineno, "NUL byte in line");
		return -1;
	}
	while (n > 0 && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	*line_out = s;
	*n_out = n;
	return 1;
}

struct directory *
directory_load(const char *path, struct diag *diags)
{
	struct directory *dir;
	size_t len, pos = 0;
	unsigned lineno = 0;
	char *text;
	int errors = 0;

	text = diag_read_file(path, "local.accounts", DIRECTORY_FILE_MAX, &len, diags);
	if (text == NULL)
		return NULL;
	dir = directory_empty();
	for (;;) {
		const char *s;
		size_t n;
		int r = dir_line_next(text, len, &pos, &lineno, path, diags, &s, &n);

		if (r == 0)
			break;
		if (r < 0) {
			errors++;
			continue;
		}
		while (n > 0 && (*s == ' ' || *s == '\t')) {
			s++;
			n--;
		}
		if (n == 0 || *s == '#')
			continue;
		if (parse_line(dir, path, lineno, s, n, diags) < 0)
			errors++;
	}
	free(text);
	if (errors > 0)
		directory_free(&dir);
	return dir;
}

/* ---- passwords -------------------------------------------------------- */

int
directory_verify_password(const struct account *acct, const char *password)
{
	struct crypt_data *cd;
	const char *hash, *out;
	volatile unsigned char diff = 0;
	size_t hlen;
	int sc;

	if (acct == NULL || acct->password == NULL || acct->password[0] == '\0')
		return 0;	/* no password: no login */
	sc = scheme_of(acct->password, &hash);
	if (sc < 0 || hash[0] == '\0')
		return -1;
	cd = xcalloc(1, sizeof(*cd));
	out = crypt_r(password, hash, cd);
	if (out == NULL || out[0] == '*') {
		free(cd);
		return -1;
	}
	hlen = strlen(hash);
	if (strlen(out) != hlen) {
		free(cd);
		return 0;
	}
	for (size_t i = 0; i < hlen; i++)
		diff |= (unsigned char)(out[i] ^ hash[i]);
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return diff == 0;
}

char *
directory_hash_password(const char *password, const char *scheme)
{
	static const struct {
		const char *name;
		const char *prefix;
		const char *tag;
	} kinds[] = {
		{ "yescrypt", "$y$", "{CRYPT}" },
		{ "bcrypt", "$2b$", "{BLF-CRYPT}" },
		{ "sha512-crypt", "$6$", "{SHA512-CRYPT}" },
	};
	struct crypt_data *cd;
	char *setting, *result = NULL;
	const char *out;
	size_t k;

	if (scheme == NULL || scheme[0] == '\0')
		scheme = "yescrypt";
	for (k = 0; k < ARRAY_LEN(kinds); k++)
		if (strcasecmp(scheme, kinds[k].name) == 0)
			break;
	if (k == ARRAY_LEN(kinds) || password == NULL)
		return NULL;
	setting = crypt_gensalt_ra(kinds[k].prefix, 0, NULL, 0);
	if (setting == NULL)
		return NULL;
	cd = xcalloc(1, sizeof(*cd));
	out = crypt_r(password, setting, cd);
	if (out != NULL && out[0] != '*')
		result = xasprintf("%s%s", kinds[k].tag, out);
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	free(setting);
	return result;
}
