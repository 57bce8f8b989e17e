/*
 * directory.c - the local accounts directory: loads the passwd-file,
 * answers lookups, verifies and makes password hashes (see directory.h).
 *
 * Owns struct directory: an array of accounts (each one allocation holding
 * its four strings) and an open-addressing hash index over the lower-cased
 * "local@domain" key, so lookups stay O(1) at 100k accounts and more.
 * Read-only once loaded: many threads may look up at once.
 * Password checks use crypt_r(3) from libxcrypt with the (large) struct
 * crypt_data on the heap; they are slow by design and belong on workers.
 */
#include "directory.h"

#include <crypt.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"

#define DIRECTORY_MAX_ACCOUNTS 50000000u	/* index entries are 32-bit */

struct directory {
	struct account *accts;	/* owned; accts[i].local heads one allocation */
	unsigned *lines;	/* line of each account, for duplicate reports */
	size_t n, cap;
	uint32_t *index;	/* slot -> account number + 1; 0 = empty */
	size_t nslots;		/* power of two, at least 2 * n */
};

/* ---- names ------------------------------------------------------------ */

static unsigned char
ascii_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

int
directory_domain_valid(const char *s, size_t len)
{
	size_t label = 0;

	if (len == 0 || len > 253)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-'))
			return 0;
		if (c == '-' && label == 0)
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0 && s[len - 1] != '-';
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

/* FNV-1a over the lower-cased key local '@' domain. The file is the
 * operator's, so its contents cannot be chosen to collide by a client. */
static uint64_t
key_hash(const char *local, size_t llen, const char *domain, size_t dlen)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < llen; i++)
		h = (h ^ ascii_lower((unsigned char)local[i])) * 1099511628211ull;
	h = (h ^ '@') * 1099511628211ull;
	for (size_t i = 0; i < dlen; i++)
		h = (h ^ ascii_lower((unsigned char)domain[i])) * 1099511628211ull;
	return h;
}

/* 1 if the stored lower-case s equals p (any case), both len octets. */
static int
eq_lower(const char *s, const char *p, size_t len)
{
	if (strlen(s) != len)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] != ascii_lower((unsigned char)p[i]))
			return 0;
	return 1;
}

/* Slot holding the key, or the empty slot where it would go. */
static size_t
index_slot(const struct directory *dir, const char *local, size_t llen,
	   const char *domain, size_t dlen)
{
	size_t mask = dir->nslots - 1;
	size_t i = (size_t)key_hash(local, llen, domain, dlen) & mask;

	for (;;) {
		uint32_t e = dir->index[i];

		if (e == 0)
			return i;
		if (eq_lower(dir->accts[e - 1].local, local, llen) &&
		    eq_lower(dir->accts[e - 1].domain, domain, dlen))
			return i;
		i = (i + 1) & mask;
	}
}

static void
index_grow(struct directory *dir)
{
	size_t nslots = dir->nslots ? dir->nslots * 2 : 64;

	free(dir->index);
	dir->index = xcalloc(nslots, sizeof(*dir->index));
	dir->nslots = nslots;
	for (size_t k = 0; k < dir->n; k++) {
		const struct account *a = &dir->accts[k];
		size_t slot = index_slot(dir, a->local, strlen(a->local),
					 a->domain, strlen(a->domain));

		dir->index[slot] = (uint32_t)(k + 1);
	}
}

struct directory *
directory_empty(void)
{
	struct directory *dir = xcalloc(1, sizeof(*dir));

	index_grow(dir);
	return dir;
}

void
directory_free(struct directory **dirp)
{
	struct directory *dir = *dirp;

	if (dir == NULL)
		return;
	for (size_t i = 0; i < dir->n; i++)
		free(dir->accts[i].local);
	free(dir->accts);
	free(dir->lines);
	free(dir->index);
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
	size_t slot;

	if (dir == NULL || dir->n == 0)
		return NULL;
	slot = index_slot(dir, local, local_len, domain, domain_len);
	if (dir->index[slot] == 0)
		return NULL;
	return &dir->accts[dir->index[slot] - 1];
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
static char *
read_file_bounded(const char *path, size_t max, size_t *len_out, struct diag *diags)
{
	FILE *f = fopen(path, "rb");
	struct buf b;
	char chunk[65536];
	size_t n;

	if (f == NULL) {
		diag_add_open_failed(diags, path, errno);
		return NULL;
	}
	buf_init(&b, max);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (buf_append(&b, chunk, n) < 0) {
			diag_add(diags, path, 0, "file too large (more than %zu bytes)", max);
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
	buf_cstr(&b);	/* make sure there is a buffer and a NUL */
	return (char *)b.data;
}

static void
add_account(struct directory *dir, const char *local, size_t llen,
	    const char *domain, size_t dlen, const char *pw, size_t pwlen,
	    const char *extra, size_t xlen, unsigned line)
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
	p = block;
	a->local = p;
	for (size_t i = 0; i < llen; i++)
		*p++ = (char)ascii_lower((unsigned char)local[i]);
	*p++ = '\0';
	a->domain = p;
	for (size_t i = 0; i < dlen; i++)
		*p++ = (char)ascii_lower((unsigned char)domain[i]);
	*p++ = '\0';
	a->password = p;
	memcpy(p, pw, pwlen);
	p += pwlen;
	*p++ = '\0';
	a->extra = p;
	memcpy(p, extra, xlen);
	p[xlen] = '\0';
	dir->lines[dir->n] = line;
	dir->n++;
	if (dir->n * 2 > dir->nslots)
		index_grow(dir);
	else
		dir->index[index_slot(dir, a->local, llen, a->domain, dlen)] = (uint32_t)dir->n;
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
	    !directory_domain_valid(at + 1, (size_t)(colon - at - 1))) {
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
	add_account(dir, s, (size_t)(at - s), at + 1, (size_t)(colon - at - 1),
		    pw, (size_t)(pwend - pw),
		    pwend < s + len ? pwend + 1 : "", pwend < s + len ? (size_t)(s + len - pwend - 1) : 0,
		    lineno);
	return 0;
}

struct directory *
directory_load(const char *path, struct diag *diags)
{
	struct directory *dir;
	size_t len, pos = 0;
	unsigned lineno = 0;
	char *text;
	int errors = 0;

	text = read_file_bounded(path, DIRECTORY_FILE_MAX, &len, diags);
	if (text == NULL)
		return NULL;
	dir = directory_empty();
	while (pos < len) {
		const char *s = text + pos;
		const char *nl = memchr(s, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - s) : len - pos;

		pos += n + (nl ? 1 : 0);
		lineno++;
		if (n > DIRECTORY_LINE_MAX) {
			diag_add(diags, path, lineno, "line too long (more than %d bytes)",
				 DIRECTORY_LINE_MAX);
			errors++;
			continue;
		}
		if (memchr(s, '\0', n) != NULL) {
			diag_add(diags, path, lineno, "NUL byte in line");
			errors++;
			continue;
		}
		while (n > 0 && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
			n--;
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
