/*
 * test_directory.c - unit tests for directory/directory.c: loading the
 * passwd-file (good lines, every error message with its line), lookups
 * (case, UTF-8, 100k accounts), and password hash/verify round trips for
 * yescrypt, bcrypt and SHA-512-crypt.
 */
#include "directory.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "domain.h"
#include "testing.h"

static char tmpdir[] = "/tmp/test_directory.XXXXXX";

/* Writes text to tmpdir/name and returns the path (static buffer). */
/* Appends n copies of c (one check, not n). */
static void
pad(struct buf *b, char c, size_t n)
{
	int bad = 0;

	for (size_t i = 0; i < n; i++)
		bad |= buf_append_byte(b, (uint8_t)c);
	CHECK(bad == 0);
}

static const char *
write_file(const char *name, const char *text, size_t len)
{
	static char path[256];
	FILE *f;

	if (snprintf(path, sizeof(path), "%s/%s", tmpdir, name) >= (int)sizeof(path))
		abort();
	f = fopen(path, "wb");
	if (f == NULL || fwrite(text, 1, len, f) != len || fclose(f) != 0)
		abort();
	return path;
}

/* Joins the diagnostics with '\n' after each, with the temp dir shown as
 * "@DIR@" so the expected text is fixed. */
static char *
diag_text(const struct diag *d)
{
	struct buf b;
	size_t dl = strlen(tmpdir);
	char *out;

	buf_init(&b, 1 << 20);
	for (size_t i = 0; i < d->n; i++) {
		const char *m = d->msgs[i];

		if (strncmp(m, tmpdir, dl) == 0) {
			CHECK(buf_append_str(&b, "@DIR@") == 0);
			m += dl;
		}
		CHECK(buf_append_str(&b, m) == 0);
		CHECK(buf_append_byte(&b, '\n') == 0);
	}
	out = xstrdup(buf_cstr(&b));
	buf_fini(&b);
	return out;
}

static void
test_names(void)
{
	static const struct {
		const char *s;
		int domain, local;
	} cases[] = {
		{ "example.test", 1, 1 },
		{ "a", 1, 1 },
		{ "xn--bcher-kva.example", 1, 1 },
		{ "a-b.c-d", 1, 1 },
		{ "-a.test", 0, 1 },
		{ "a-.test", 0, 1 },
		{ "a..test", 0, 0 },
		{ ".test", 0, 0 },
		{ "test.", 0, 0 },
		{ "a_b.test", 0, 1 },
		{ "a b", 0, 0 },
		{ "", 0, 0 },
		{ "first.last", 1, 1 },
		{ "o'hara+tag", 0, 1 },
		{ "a@b", 0, 0 },
		{ "j\xc3\xb6rg", 0, 1 },	/* UTF-8 local part */
		{ "a\"b", 0, 0 },
		{ "a,b", 0, 0 },
		{ "a:b", 0, 0 },
		{ "a\tb", 0, 0 },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		TEST_CASE(cases[i].s);
		CHECK_INT(domain_name_valid(cases[i].s, strlen(cases[i].s)), cases[i].domain);
		CHECK_INT(directory_local_valid(cases[i].s, strlen(cases[i].s)), cases[i].local);
	}
	TEST_CASE("length limits");
	{
		char label[80], name[300];

		memset(label, 'a', sizeof(label));
		CHECK_INT(domain_name_valid(label, 63), 1);
		CHECK_INT(domain_name_valid(label, 64), 0);
		CHECK_INT(directory_local_valid(label, 64), 1);
		CHECK_INT(directory_local_valid(label, 65), 0);
		/* 4 labels of 62 + dots = 251, then ".ab" = 254 */
		for (size_t i = 0; i < sizeof(name); i++)
			name[i] = (i % 63 == 62) ? '.' : 'a';
		CHECK_INT(domain_name_valid(name, 251), 1);
		CHECK_INT(domain_name_valid(name, 253), 1);
		CHECK_INT(domain_name_valid(name, 254), 0);
	}
}

static void
test_load_good(void)
{
	char *yes = directory_hash_password("alice-pw", "yescrypt");
	char *text;
	const char *path;
	struct directory *dir;
	const struct account *a;
	struct diag d;

	TEST_CASE("load good");
	CHECK(yes != NULL);
	text = xasprintf("# accounts\n"
			 "\n"
			 "   # indented comment\n"
			 "alice@example.test:%s\n"
			 "Bob.Smith@Example.TEST:{SHA512-CRYPT}$6$abc$def:1000:1000::/home/bob::quota=1G\r\n"
			 "carol@other.example:\n"
			 "  dave@example.test:{blf-crypt}$2b$05$abcdefghijklmnopqrstuu:  \n"
			 "j\xc3\xb6rg@example.test:{CRYPT}$y$x",
			 yes);
	path = write_file("good", text, strlen(text));
	diag_init(&d);
	dir = directory_load(path, &d);
	CHECK(dir != NULL);
	CHECK_INT(d.n, 0);
	diag_print(&d, stderr);
	CHECK_INT(directory_count(dir), 5);

	a = directory_find(dir, "alice", 5, "example.test", 12);
	CHECK(a != NULL);
	if (a != NULL) {
		CHECK_STR(a->local, "alice");
		CHECK_STR(a->domain, "example.test");
		CHECK_STR(a->password, yes);
		CHECK_STR(a->extra, "");
		CHECK_INT(directory_verify_password(a, "alice-pw"), 1);
		CHECK_INT(directory_verify_password(a, "alice-pW"), 0);
		CHECK_INT(directory_verify_password(a, ""), 0);
	}
	CHECK(directory_find(dir, "ALICE", 5, "EXAMPLE.test", 12) == a);
	CHECK(directory_find(dir, "alice", 5, "example.tes", 11) == NULL);
	CHECK(directory_find(dir, "alic", 4, "example.test", 12) == NULL);
	CHECK(directory_find(dir, "alice", 5, "other.example", 13) == NULL);

	a = directory_find(dir, "bob.smith", 9, "example.test", 12);
	CHECK(a != NULL);
	if (a != NULL) {
		CHECK_STR(a->local, "bob.smith");
		CHECK_STR(a->domain, "example.test");
		CHECK_STR(a->password, "{SHA512-CRYPT}$6$abc$def");
		CHECK_STR(a->extra, "1000:1000::/home/bob::quota=1G");
	}
	a = directory_find(dir, "carol", 5, "other.example", 13);
	CHECK(a != NULL);
	if (a != NULL) {
		CHECK_STR(a->password, "");
		CHECK_INT(directory_verify_password(a, ""), 0);		/* no login */
		CHECK_INT(directory_verify_password(a, "x"), 0);
	}
	a = directory_find(dir, "dave", 4, "example.test", 12);
	CHECK(a != NULL);
	if (a != NULL)
		CHECK_STR(a->extra, "");
	a = directory_find(dir, "J\xc3\xb6RG", 5, "example.test", 12);
	CHECK(a != NULL);
	if (a != NULL)
		CHECK_STR(a->local, "j\xc3\xb6rg");
	CHECK(directory_find(dir, "", 0, "", 0) == NULL);

	directory_free(&dir);
	CHECK(dir == NULL);
	directory_free(&dir);	/* NULL is fine */
	diag_fini(&d);
	free(text);
	free(yes);
}

static void
test_load_errors(void)
{
	struct buf b;
	const char *path;
	struct directory *dir;
	struct diag d;
	char *got;
	const char *want =
		"@DIR@/bad:2: missing ':' after the account name\n"
		"@DIR@/bad:3: bad account name \"nobody\" (want user@domain)\n"
		"@DIR@/bad:4: bad account name \"@example.test\" (want user@domain)\n"
		"@DIR@/bad:5: bad account name \"a@\" (want user@domain)\n"
		"@DIR@/bad:6: bad account name \"a..b@example.test\" (want user@domain)\n"
		"@DIR@/bad:7: bad account name \"a@exa_mple.test\" (want user@domain)\n"
		"@DIR@/bad:8: bad account name \"a b@example.test\" (want user@domain)\n"
		"@DIR@/bad:10: duplicate account alice@example.test (first at line 1)\n"
		"@DIR@/bad:11: unknown password scheme {PLAIN} (use {CRYPT}, {BLF-CRYPT} or {SHA512-CRYPT})\n"
		"@DIR@/bad:12: password scheme without closing '}'\n"
		"@DIR@/bad:13: password is not a {BLF-CRYPT} hash (make one with postern passwd)\n"
		"@DIR@/bad:14: password is not a {SHA512-CRYPT} hash (make one with postern passwd)\n"
		"@DIR@/bad:15: password is not a {CRYPT} hash (make one with postern passwd)\n"
		"@DIR@/bad:16: password is not a {CRYPT} hash (make one with postern passwd)\n"
		"@DIR@/bad:17: line too long (more than 4096 bytes)\n"
		"@DIR@/bad:18: NUL byte in line\n";

	TEST_CASE("load errors");
	buf_init(&b, 1 << 20);
	CHECK(buf_append_str(&b,
		"alice@example.test:{CRYPT}$y$x\n"		/* 1 */
		"no-colon@example.test\n"			/* 2 */
		"nobody:{CRYPT}$y$x\n"				/* 3 */
		"@example.test:\n"				/* 4 */
		"a@:\n"						/* 5 */
		"a..b@example.test:\n"				/* 6 */
		"a@exa_mple.test:\n"				/* 7 */
		"a b@example.test:\n"				/* 8 */
		"ok@example.test:\n"				/* 9 */
		"ALICE@Example.Test:{CRYPT}$y$y\n"		/* 10 */
		"p1@example.test:{PLAIN}secret\n"		/* 11 */
		"p2@example.test:{CRYPT$y$x\n"			/* 12 */
		"p3@example.test:{BLF-CRYPT}$6$x\n"		/* 13 */
		"p4@example.test:{SHA512-CRYPT}$y$x\n"		/* 14 */
		"p5@example.test:{CRYPT}\n"			/* 15 */
		"p6@example.test:plaintext\n") == 0);		/* 16 */
	CHECK(buf_append_str(&b, "long@example.test:") == 0);	/* 17 */
	pad(&b, 'x', 4100);
	CHECK(buf_append_str(&b, "\nnul@example.test:") == 0);	/* 18 */
	CHECK(buf_append(&b, "\0x\n", 3) == 0);
	CHECK(buf_append_str(&b, "last@example.test:") == 0);	/* 19, no newline */
	path = write_file("bad", (const char *)b.data, b.len);
	diag_init(&d);
	dir = directory_load(path, &d);
	CHECK(dir == NULL);
	got = diag_text(&d);
	CHECK_STR(got, want);
	free(got);
	diag_fini(&d);
	buf_fini(&b);

	TEST_CASE("missing file");
	diag_init(&d);
	{
		char *p = xasprintf("%s/nonexistent", tmpdir);

		dir = directory_load(p, &d);
		CHECK(dir == NULL);
		got = diag_text(&d);
		CHECK_STR(got, "@DIR@/nonexistent: cannot open: No such file or directory\n");
		free(got);
		free(p);
	}
	diag_fini(&d);

	TEST_CASE("empty file");
	diag_init(&d);
	path = write_file("empty", "", 0);
	dir = directory_load(path, &d);
	CHECK(dir != NULL);
	CHECK_INT(d.n, 0);
	CHECK_INT(directory_count(dir), 0);
	CHECK(directory_find(dir, "a", 1, "b", 1) == NULL);
	directory_free(&dir);
	diag_fini(&d);

	TEST_CASE("directory_empty");
	dir = directory_empty();
	CHECK_INT(directory_count(dir), 0);
	CHECK(directory_find(dir, "a", 1, "b", 1) == NULL);
	directory_free(&dir);
}

static void
test_many(void)
{
	enum { N = 100000 };
	struct buf b;
	const char *path;
	struct directory *dir;
	struct diag d;
	struct timespec t0, t1;
	double ms;
	int found = 0;

	TEST_CASE("100k accounts");
	buf_init(&b, 64u << 20);
	{
		int bad = 0;

		for (int i = 0; i < N; i++)
			bad |= buf_appendf(&b, "user%d@d%d.example:{CRYPT}$y$j9T$salt$hash%d\n", i, i % 100, i);
		CHECK(bad == 0);
	}
	path = write_file("many", (const char *)b.data, b.len);
	buf_fini(&b);
	diag_init(&d);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	dir = directory_load(path, &d);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK(dir != NULL);
	CHECK_INT(d.n, 0);
	CHECK_INT(directory_count(dir), N);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	printf("load of %d accounts: %.1f ms\n", N, ms);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < N; i++) {
		char local[32], domain[32];
		int ll = snprintf(local, sizeof(local), "USER%d", i);
		int dl = snprintf(domain, sizeof(domain), "D%d.Example", i % 100);

		if (ll > 0 && dl > 0 &&
		    directory_find(dir, local, (size_t)ll, domain, (size_t)dl) != NULL)
			found++;
		/* and a miss: right user, wrong domain */
		dl = snprintf(domain, sizeof(domain), "d%d.example", (i + 1) % 100);
		if (dl > 0 && directory_find(dir, local, (size_t)ll, domain, (size_t)dl) != NULL)
			found += 1000000;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	printf("%d hits + %d misses: %.1f ms\n", N, N, ms);
	CHECK_INT(found, N);
	CHECK(ms < 2000.0);	/* generous even under sanitizers */
	directory_free(&dir);
	diag_fini(&d);
}

static void
test_passwords(void)
{
	static const struct {
		const char *scheme;
		const char *tag;
	} cases[] = {
		{ "yescrypt", "{CRYPT}$y$" },
		{ NULL, "{CRYPT}$y$" },
		{ "", "{CRYPT}$y$" },
		{ "bcrypt", "{BLF-CRYPT}$2b$" },
		{ "sha512-crypt", "{SHA512-CRYPT}$6$" },
		{ "SHA512-CRYPT", "{SHA512-CRYPT}$6$" },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct account a = { "u", "example.test", NULL, "" };
		char *h, *h2, *plain;

		TEST_CASE(cases[i].tag);
		h = directory_hash_password("s3cret p\xc3\xa4ss", cases[i].scheme);
		CHECK(h != NULL);
		if (h == NULL)
			continue;
		CHECK(strncmp(h, cases[i].tag, strlen(cases[i].tag)) == 0);
		a.password = h;
		CHECK_INT(directory_verify_password(&a, "s3cret p\xc3\xa4ss"), 1);
		CHECK_INT(directory_verify_password(&a, "s3cret p\xc3\xa4sS"), 0);
		CHECK_INT(directory_verify_password(&a, ""), 0);
		/* salts differ */
		h2 = directory_hash_password("s3cret p\xc3\xa4ss", cases[i].scheme);
		CHECK(h2 != NULL && strcmp(h, h2) != 0);
		free(h2);
		/* plain {CRYPT} and a bare hash verify any crypt(3) hash */
		plain = xasprintf("{CRYPT}%s", strchr(h, '}') + 1);
		a.password = plain;
		CHECK_INT(directory_verify_password(&a, "s3cret p\xc3\xa4ss"), 1);
		CHECK_INT(directory_verify_password(&a, "nope"), 0);
		a.password = strchr(h, '}') + 1;
		CHECK_INT(directory_verify_password(&a, "s3cret p\xc3\xa4ss"), 1);
		/* lower-case scheme names too */
		free(plain);
		plain = xasprintf("{crypt}%s", strchr(h, '}') + 1);
		a.password = plain;
		CHECK_INT(directory_verify_password(&a, "s3cret p\xc3\xa4ss"), 1);
		free(plain);
		free(h);
	}

	TEST_CASE("bad schemes and hashes");
	CHECK(directory_hash_password("x", "md5") == NULL);
	CHECK(directory_hash_password("x", "plain") == NULL);
	CHECK(directory_hash_password(NULL, "bcrypt") == NULL);
	{
		static const struct {
			const char *pw;
			int want;
		} bad[] = {
			{ "{PLAIN}x", -1 },
			{ "{CRYPT}", -1 },
			{ "{CRYPT}$y$", -1 },
			{ "{CRYPT}*", -1 },
			{ "{CRYPT}$9$abc", -1 },
			{ "{CRYPT", -1 },
			{ "", 0 },
		};

		for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
			struct account a = { "u", "example.test", (char *)bad[i].pw, "" };

			TEST_CASE(bad[i].pw);
			CHECK_INT(directory_verify_password(&a, "x"), bad[i].want);
		}
		CHECK_INT(directory_verify_password(NULL, "x"), 0);
	}
	TEST_CASE("known SHA-512-crypt vector");
	{
		/* crypt(3) of "hello" with salt "saltsalt" (glibc/libxcrypt agree) */
		struct account a = { "u", "example.test",
			"{SHA512-CRYPT}$6$saltsalt$YTeBOLnmm3CoeJTzBuijUEtOEWCqrw/nQ8/AeMmON4LGp3k0ZiMjC1OdqzWFUAfDQBvYkOch9BWtQTBcZ1E/p0", "" };

		CHECK_INT(directory_verify_password(&a, "hello"), 1);
		CHECK_INT(directory_verify_password(&a, "hellO"), 0);
	}
}

int
main(void)
{
	char cmd[128];

	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_names();
	test_load_good();
	test_load_errors();
	test_many();
	test_passwords();
	if (snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir) < (int)sizeof(cmd) &&
	    system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	return TEST_DONE();
}
