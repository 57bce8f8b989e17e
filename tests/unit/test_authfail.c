/*
 * test_authfail.c - the one failed-login store (store/authfail.c) that
 * SMTP AUTH and POP3 share: counting, the lockout at max_failures, a
 * success clearing the count, lockout 0 (off), expiry, one counter per
 * address whichever protocol counts, a lockout surviving a reopen of the
 * store (a restart), and a missing store failing open.
 */
#include "store/authfail.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "testing.h"

static char dir[256];

static void
rm_dir(void)
{
	const char *files[] = { "state.db", "state.db-wal", "state.db-shm" };
	char p[512];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (snprintf(p, sizeof(p), "%s/%s", dir, files[i]) > 0)
			unlink(p);
	}
	rmdir(dir);
}

int
main(void)
{
	const struct authfail_policy smtp = { 3, 600, 60 }, pop3 = { 2, 600, 120 };
	const struct authfail_policy off = { 0, 600, 60 };
	struct kv_store *kv;
	int64_t count = 0;
	uint64_t left = 0;
	int banned = -1;

	if (snprintf(dir, sizeof(dir), "/tmp/postern-test-authfail.%ld", (long)getpid()) < 0)
		return 1;
	rm_dir();
	if (mkdir(dir, 0700) < 0 || log_open("/dev/null", LOG_SEV_INFO) < 0)
		return 1;

	TEST_CASE("open");
	kv = authfail_open(dir);
	CHECK(kv != NULL);
	if (kv == NULL)
		return TEST_DONE();
	CHECK_INT(kv_is_memory(kv), 0);

	TEST_CASE("failures count up to the lockout");
	CHECK_INT(authfail_record(kv, "192.0.2.1", "s1", &smtp, &banned), 1);
	CHECK_INT(banned, 0);
	CHECK_INT(authfail_banned(kv, "192.0.2.1", "s1", &count, &left), 0);
	CHECK_INT(authfail_record(kv, "192.0.2.1", "s1", &smtp, &banned), 2);
	CHECK_INT(banned, 0);
	CHECK_INT(authfail_record(kv, "192.0.2.1", "s1", &smtp, &banned), 3);
	CHECK_INT(banned, 1);
	CHECK_INT(authfail_banned(kv, "192.0.2.1", "s1", &count, &left), 1);
	CHECK_INT(count, 3);
	CHECK(left > 0 && left <= 60);

	TEST_CASE("one counter per address, whichever protocol counts");
	CHECK_INT(authfail_record(kv, "2001:db8::7", "s2", &smtp, &banned), 1);
	CHECK_INT(authfail_record(kv, "2001:db8::7", "s3", &pop3, &banned), 2);
	CHECK_INT(banned, 1);	/* POP3's threshold, on the shared count */
	CHECK_INT(authfail_banned(kv, "2001:db8::7", "s4", &count, &left), 1);
	CHECK(left > 60 && left <= 120);
	CHECK_INT(authfail_banned(kv, "192.0.2.2", "s4", &count, &left), 0);

	TEST_CASE("a success clears the count, not a lockout");
	CHECK_INT(authfail_record(kv, "192.0.2.3", "s5", &smtp, &banned), 1);
	CHECK_INT(authfail_record(kv, "192.0.2.3", "s5", &smtp, &banned), 2);
	authfail_clear(kv, "192.0.2.3", "s5");
	CHECK_INT(authfail_record(kv, "192.0.2.3", "s5", &smtp, &banned), 1);
	authfail_clear(kv, "192.0.2.1", "s5");
	CHECK_INT(authfail_banned(kv, "192.0.2.1", "s5", &count, &left), 1);

	TEST_CASE("max_failures 0 counts but never locks out");
	for (int i = 1; i <= 5; i++) {
		CHECK_INT(authfail_record(kv, "192.0.2.4", "s6", &off, &banned), i);
		CHECK_INT(banned, 0);
	}
	CHECK_INT(authfail_banned(kv, "192.0.2.4", "s6", &count, &left), 0);

	TEST_CASE("a lockout survives a reopen (restart)");
	kv_close(&kv);
	kv = authfail_open(dir);
	CHECK(kv != NULL && !kv_is_memory(kv));
	if (kv == NULL)
		return TEST_DONE();
	count = 0;
	CHECK_INT(authfail_banned(kv, "192.0.2.1", "s7", &count, &left), 1);
	CHECK_INT(count, 3);

	TEST_CASE("a lockout ends");
	kv_set_clock_offset(kv, 61);
	CHECK_INT(authfail_banned(kv, "192.0.2.1", "s8", &count, &left), 0);
	CHECK_INT(authfail_banned(kv, "2001:db8::7", "s8", &count, &left), 1);
	kv_close(&kv);

	TEST_CASE("no store: nothing counted, nobody locked out");
	CHECK_INT(authfail_record(NULL, "192.0.2.1", "s9", &smtp, &banned), 0);
	CHECK_INT(banned, 0);
	CHECK_INT(authfail_banned(NULL, "192.0.2.1", "s9", &count, &left), 0);
	authfail_clear(NULL, "192.0.2.1", "s9");

	log_close();
	rm_dir();
	return TEST_DONE();
}
