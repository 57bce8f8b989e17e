/*
 * test_pop3_maildrop.c - unit tests of pop3/pop3_maildrop.c: the login
 * scan (what counts as a message, order, sizes, unique-ids) and the
 * UPDATE state (unlink, move to cur/ with S) on a temporary Maildir.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pop3_private.h"
#include "testing.h"

static char root[] = "/tmp/test_pop3_XXXXXX";

static void
put(const char *sub, const char *name, const char *text)
{
	char *p = xasprintf("%s/%s/%s", root, sub, name);
	FILE *f = fopen(p, "wb");
	CHECK(f != NULL);
	if (f) {
		fputs(text, f);
		fclose(f);
	}
	free(p);
}

static int
exists(const char *sub, const char *name)
{
	char *p = xasprintf("%s/%s/%s", root, sub, name);
	int r = access(p, F_OK) == 0;
	free(p);
	return r;
}

static void
cleanup(void)
{
	const char *subs[] = { "new", "cur", "tmp" };
	for (size_t i = 0; i < ARRAY_LEN(subs); i++) {
		char *d = xasprintf("%s/%s", root, subs[i]);
		DIR *dir = opendir(d);
		struct dirent *de;
		while (dir && (de = readdir(dir)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			char *p = xasprintf("%s/%s", d, de->d_name);
			if (unlink(p) < 0)
				(void)rmdir(p);
			free(p);
		}
		if (dir)
			closedir(dir);
		(void)rmdir(d);
		free(d);
	}
	(void)rmdir(root);
}

int
main(void)
{
	struct pop3_maildrop d;
	int err = 0;
	char *path = NULL;

	if (mkdtemp(root) == NULL)
		return 1;
	TEST_CASE("missing maildir is empty");
	char *missing = xasprintf("%s/nope", root);
	CHECK_INT(pop3_maildrop_scan(missing, 10, &d, &err, &path), 0);
	CHECK_INT(d.n, 0);
	pop3_maildrop_fini(&d);
	free(missing);

	static const char *const subs[] = { "new", "cur", "tmp" };
	for (size_t i = 0; i < 3; i++) {
		char *p = xasprintf("%s/%s", root, subs[i]);
		mkdir(p, 0700);
		free(p);
	}
	put("new", "200.Q2R0.host,S=10", "A: b\r\n\r\nxy\r\n");	/* 12 */
	put("cur", "100.Q1R0.host,S=9:2,S", "A: b\n\nx\n");	/* 11 with CRLF */
	put("new", "300.Q3R0.host,S=5,W=77", "ab");		/* W= is trusted */
	put("new", ".hidden", "x");
	put("tmp", "50.Q0R0.host", "x");
	char *sub = xasprintf("%s/new/150.dir", root);
	mkdir(sub, 0700);
	free(sub);

	TEST_CASE("scan");
	CHECK_INT(pop3_maildrop_scan(root, 10, &d, &err, &path), 0);
	CHECK_INT(d.n, 3);
	if (d.n == 3) {
		CHECK_STR(d.v[0].name, "100.Q1R0.host,S=9:2,S");
		CHECK_STR(d.v[0].uid, "100.Q1R0.host,S=9");
		CHECK_INT(d.v[0].size, 11);
		CHECK_INT(d.v[0].in_cur, 1);
		CHECK_STR(d.v[1].uid, "200.Q2R0.host,S=10");
		CHECK_INT(d.v[1].size, 12);
		CHECK_INT(d.v[2].size, 77);
	}
	TEST_CASE("max messages");
	struct pop3_maildrop d2;
	CHECK_INT(pop3_maildrop_scan(root, 2, &d2, &err, &path), -1);
	free(path);
	path = NULL;

	TEST_CASE("update");
	size_t dele, seen;
	if (d.n == 3) {
		d.v[0].retrieved = 1;	/* already S: nothing to do */
		d.v[1].retrieved = 1;	/* new -> cur with :2,S */
		d.v[2].deleted = 1;
		CHECK_INT(pop3_maildrop_update(&d, &dele, &seen, &err, &path), 0);
		CHECK_INT(dele, 1);
		CHECK_INT(seen, 1);
		CHECK(exists("cur", "200.Q2R0.host,S=10:2,S"));
		CHECK(!exists("new", "200.Q2R0.host,S=10"));
		CHECK(!exists("new", "300.Q3R0.host,S=5,W=77"));
		CHECK(exists("cur", "100.Q1R0.host,S=9:2,S"));
	}
	pop3_maildrop_fini(&d);

	TEST_CASE("flags sorted");
	put("cur", "400.Q4R0.host:2,FT", "A: b\r\n\r\n");
	CHECK_INT(pop3_maildrop_scan(root, 10, &d, &err, &path), 0);
	for (size_t i = 0; i < d.n; i++)
		if (strncmp(d.v[i].name, "400.", 4) == 0)
			d.v[i].retrieved = 1;
	CHECK_INT(pop3_maildrop_update(&d, &dele, &seen, &err, &path), 0);
	CHECK(exists("cur", "400.Q4R0.host:2,FST"));
	pop3_maildrop_fini(&d);

	TEST_CASE("uid stable after move");
	CHECK_INT(pop3_maildrop_scan(root, 10, &d, &err, &path), 0);
	CHECK_INT(d.n, 3);
	if (d.n == 3)
		CHECK_STR(d.v[1].uid, "200.Q2R0.host,S=10");
	pop3_maildrop_fini(&d);

	TEST_CASE("not a folder");
	char *cur = xasprintf("%s/cur", root);
	cleanup();
	mkdir(root, 0700);
	put("", "new", "x");	/* new is a file */
	CHECK_INT(pop3_maildrop_scan(root, 10, &d, &err, &path), -1);
	CHECK(path != NULL);
	free(path);
	free(cur);
	char *f = xasprintf("%s/new", root);
	unlink(f);
	free(f);
	cleanup();
	return TEST_DONE();
}
