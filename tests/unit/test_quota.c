/*
 * test_quota.c - the usage cache and quota checks (deliver_quota.c) and
 * the free-space floor (deliver_space.c), on real folders in a temporary
 * directory.
 */
#include "deliver_quota.h"
#include "deliver_space.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "workpool.h"
#include "testing.h"

static struct workpool *tpool;	/* the scan class */

static char root[256];

static void
put_file(const char *path, size_t size)
{
	FILE *f = fopen(path, "w");

	if (f == NULL) {
		perror(path);
		exit(2);
	}
	for (size_t i = 0; i < size; i++)
		fputc('x', f);
	fclose(f);
}

static void
mk(const char *path)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		perror(path);
		exit(2);
	}
}

/* <root>/<domain>/<local>/{tmp,new,cur} */
static void
make_maildir(const char *domain, const char *local)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/%s", root, domain);
	mk(p);
	snprintf(p, sizeof(p), "%s/%s/%s", root, domain, local);
	mk(p);
	snprintf(p, sizeof(p), "%s/%s/%s/tmp", root, domain, local);
	mk(p);
	snprintf(p, sizeof(p), "%s/%s/%s/new", root, domain, local);
	mk(p);
	snprintf(p, sizeof(p), "%s/%s/%s/cur", root, domain, local);
	mk(p);
}

static void
put_mail(const char *domain, const char *local, const char *sub,
	 const char *name, size_t size)
{
	char p[768];

	snprintf(p, sizeof(p), "%s/%s/%s/%s/%s", root, domain, local, sub, name);
	put_file(p, size);
}

/* Waits (up to 5 s) until the scanner has filled the entry. */
static int
wait_known(const char *mailbox, uint64_t *b, uint64_t *m)
{
	for (int i = 0; i < 500; i++) {
		if (quota_usage(root, mailbox, b, m))
			return 1;
		usleep(10000);
	}
	return 0;
}

static void
test_scan(void)
{
	char dir[512];
	uint64_t b = 9, m = 9;

	TEST_CASE("scan: sizes from ,S= and from stat; tmp/ and dot files ignored");
	make_maildir("scan.test", "a");
	/* The name's size wins over the file's real size. */
	put_mail("scan.test", "a", "new", "1.Q1R0.host,S=1000", 10);
	put_mail("scan.test", "a", "cur", "2.Q2R0.host,S=2000:2,S", 10);
	put_mail("scan.test", "a", "cur", "3.Q3R0.host:2,", 77);
	put_mail("scan.test", "a", "cur", "4.x.host,S=12x", 5);	/* bad: stat */
	put_mail("scan.test", "a", "new", ".hidden", 50);
	put_mail("scan.test", "a", "tmp", "5.Q5R0.host,S=9999", 10);
	snprintf(dir, sizeof(dir), "%s/scan.test/a", root);
	CHECK_INT(quota_scan_dir(dir, &b, &m), 0);
	CHECK_INT(b, 1000 + 2000 + 77 + 5);
	CHECK_INT(m, 4);

	TEST_CASE("scan: no Maildir at all");
	snprintf(dir, sizeof(dir), "%s/scan.test/nobody", root);
	CHECK_INT(quota_scan_dir(dir, &b, &m), -1);
	CHECK_INT(b, 0);
	CHECK_INT(m, 0);
}

static void
test_rcpt(void)
{
	struct account acct = { .local = "full", .domain = "q.test",
				.quota_bytes = 3000 };
	struct account none = { .local = "free", .domain = "q.test" };
	struct quota_report rep;
	uint64_t b, m;

	make_maildir("q.test", "full");
	put_mail("q.test", "full", "new", "1.Q1R0.h,S=1500", 1);
	put_mail("q.test", "full", "cur", "2.Q2R0.h,S=1500:2,S", 1);

	TEST_CASE("rcpt: no quota is always fine, and not tracked");
	CHECK_INT(quota_check_rcpt(root, &none, "free@q.test", NULL), COND__COUNT);
	CHECK_INT(quota_check_rcpt(root, NULL, "free@q.test", NULL), COND__COUNT);
	CHECK_INT(quota_usage(root, "free@q.test", &b, &m), 0);

	TEST_CASE("rcpt: unknown usage is fine, and a scan follows");
	CHECK_INT(quota_check_rcpt(root, &acct, "full@q.test", NULL), COND__COUNT);
	CHECK(wait_known("full@q.test", &b, &m));
	CHECK_INT(b, 3000);
	CHECK_INT(m, 2);

	TEST_CASE("rcpt: at the byte quota is full");
	memset(&rep, 0, sizeof(rep));
	CHECK_INT(quota_check_rcpt(root, &acct, "full@q.test", &rep),
		  COND_RCPT_MAILBOX_FULL);
	CHECK_STR(rep.kind, "bytes");
	CHECK_INT(rep.used, 3000);
	CHECK_INT(rep.quota, 3000);

	TEST_CASE("rcpt: a POP3 deletion makes room");
	quota_add(root, "full@q.test", -1500, -1);
	CHECK_INT(quota_check_rcpt(root, &acct, "full@q.test", NULL), COND__COUNT);
	CHECK(quota_usage(root, "full@q.test", &b, &m));
	CHECK_INT(b, 1500);
	CHECK_INT(m, 1);

	TEST_CASE("rcpt: the message quota");
	acct.quota_bytes = 0;
	acct.quota_messages = 1;
	memset(&rep, 0, sizeof(rep));
	CHECK_INT(quota_check_rcpt(root, &acct, "FULL@Q.test", &rep),
		  COND_RCPT_MAILBOX_FULL);
	CHECK_STR(rep.kind, "messages");
	CHECK_INT(rep.used, 1);
	CHECK_INT(rep.quota, 1);

	TEST_CASE("add: clamps at zero, ignores unknown mailboxes");
	quota_add(root, "full@q.test", -100000, -100);
	CHECK(quota_usage(root, "full@q.test", &b, &m));
	CHECK_INT(b, 0);
	CHECK_INT(m, 0);
	quota_add(root, "nobody@q.test", 5, 1);
	CHECK_INT(quota_usage(root, "nobody@q.test", &b, &m), 0);
	quota_add(root, "no-at-sign", 5, 1);
	quota_add(root, "../x@q.test", 5, 1);
}

static void
test_message(void)
{
	struct account a = { .local = "m1", .domain = "q.test",
			     .quota_bytes = 10000 };
	struct account c = { .local = "m2", .domain = "q.test",
			     .quota_messages = 2 };
	const struct account *accts[3] = { NULL, &a, &c };
	const char *boxes[3] = { "remote@else.test", "m1@q.test", "m2@q.test" };
	struct quota_report rep;
	uint64_t b, m;

	make_maildir("q.test", "m1");
	make_maildir("q.test", "m2");
	put_mail("q.test", "m1", "new", "1.Q1R0.h,S=5000", 1);
	put_mail("q.test", "m2", "new", "1.Q1R0.h,S=10", 1);

	TEST_CASE("message: first look schedules scans, answers fine");
	CHECK_INT(quota_check_message(root, accts, boxes, 3, 100000, NULL),
		  COND__COUNT);
	CHECK(wait_known("m1@q.test", &b, &m));
	CHECK(wait_known("m2@q.test", &b, &m));

	TEST_CASE("message: fits both");
	CHECK_INT(quota_check_message(root, accts, boxes, 3, 1000, NULL),
		  COND__COUNT);

	TEST_CASE("message: would cross m1's byte quota");
	memset(&rep, 0, sizeof(rep));
	CHECK_INT(quota_check_message(root, accts, boxes, 3, 5000, &rep),
		  COND_RCPT_MESSAGE_OVER_QUOTA);
	CHECK_INT(rep.index, 1);
	CHECK_STR(rep.kind, "bytes");
	CHECK_INT(rep.used, 5000);
	CHECK_INT(rep.quota, 10000);
	CHECK(rep.size > 5000);

	TEST_CASE("message: the header allowance counts");
	CHECK_INT(quota_check_message(root, accts, boxes, 3,
				      5000 - QUOTA_HEADER_ALLOWANCE - strlen("m1@q.test"),
				      NULL),
		  COND__COUNT);
	CHECK_INT(quota_check_message(root, accts, boxes, 3,
				      5001 - QUOTA_HEADER_ALLOWANCE - strlen("m1@q.test"),
				      NULL),
		  COND_RCPT_MESSAGE_OVER_QUOTA);

	TEST_CASE("message: the message count quota (1 of 2 used: one more fits)");
	CHECK_INT(quota_check_message(root, accts + 2, boxes + 2, 1, 10, NULL),
		  COND__COUNT);
	quota_add(root, "m2@q.test", 10, 1);
	memset(&rep, 0, sizeof(rep));
	CHECK_INT(quota_check_message(root, accts, boxes, 3, 10, &rep),
		  COND_RCPT_MESSAGE_OVER_QUOTA);
	CHECK_INT(rep.index, 2);
	CHECK_STR(rep.kind, "messages");
	CHECK_INT(rep.used, 2);
	CHECK_INT(rep.quota, 2);
}

static void
test_reserve(void)
{
	struct account a = { .local = "r", .domain = "q.test",
			     .quota_bytes = 1000 };
	struct quota_report rep;
	uint64_t b, m;

	TEST_CASE("reserve: scans an unknown mailbox on the spot (none yet)");
	CHECK_INT(quota_reserve(root, &a, "r@q.test", 600, NULL), COND__COUNT);
	CHECK(quota_usage(root, "r@q.test", &b, &m));
	CHECK_INT(b, 600);	/* in flight counts */
	CHECK_INT(m, 1);

	TEST_CASE("reserve: a second one would cross");
	memset(&rep, 0, sizeof(rep));
	CHECK_INT(quota_reserve(root, &a, "r@q.test", 600, &rep),
		  COND_DELIVERY_LOCAL_QUOTA);
	CHECK_STR(rep.kind, "bytes");
	CHECK_INT(rep.used, 600);
	CHECK_INT(rep.size, 600);

	TEST_CASE("reserve: a failed write releases, a delivered one stays");
	quota_finish(root, "r@q.test", 600, 0);
	CHECK(quota_usage(root, "r@q.test", &b, &m));
	CHECK_INT(b, 0);
	CHECK_INT(m, 0);
	CHECK_INT(quota_reserve(root, &a, "r@q.test", 1000, NULL), COND__COUNT);
	quota_finish(root, "r@q.test", 1000, 1);
	CHECK(quota_usage(root, "r@q.test", &b, &m));
	CHECK_INT(b, 1000);
	CHECK_INT(m, 1);
	CHECK_INT(quota_reserve(root, &a, "r@q.test", 1, NULL),
		  COND_DELIVERY_LOCAL_QUOTA);

	TEST_CASE("reserve: no quota, untracked mailbox: fine and untracked");
	CHECK_INT(quota_reserve(root, NULL, "u@q.test", 1u << 30, NULL),
		  COND__COUNT);
	quota_finish(root, "u@q.test", 1u << 30, 1);
	CHECK_INT(quota_usage(root, "u@q.test", &b, &m), 0);
}

/* Many delivery threads race for the last places: exactly the quota wins. */
struct race {
	struct account *acct;
	int won;
};

static void *
race_thread(void *arg)
{
	struct race *r = arg;

	for (int i = 0; i < 50; i++)
		if (quota_reserve(root, r->acct, "race@q.test", 10, NULL) ==
		    COND__COUNT) {
			r->won++;
			quota_finish(root, "race@q.test", 10, 1);
		}
	return NULL;
}

static void
test_race(void)
{
	struct account a = { .local = "race", .domain = "q.test",
			     .quota_messages = 37 };
	pthread_t t[8];
	struct race r[8];
	int won = 0;

	TEST_CASE("reserve: 8 threads x 50 tries, quota 37 messages");
	for (int i = 0; i < 8; i++) {
		r[i] = (struct race){ .acct = &a };
		CHECK_INT(pthread_create(&t[i], NULL, race_thread, &r[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		won += r[i].won;
	}
	CHECK_INT(won, 37);
}

static void
test_space(void)
{
	struct space_report rep;
	char missing[512];

	TEST_CASE("space: floor 0 and nothing needed is fine");
	space_reset();
	CHECK_INT(space_check(root, root, 0, 0, NULL), COND__COUNT);
	CHECK_INT(space_check(NULL, NULL, UINT64_MAX, 0, NULL), COND__COUNT);

	TEST_CASE("space: a floor above the free space is full");
	memset(&rep, 0, sizeof(rep));
	CHECK_INT(space_check(root, NULL, UINT64_MAX / 2, 0, &rep),
		  COND_QUEUE_DISK_FULL);
	CHECK(rep.fs == root);
	CHECK(rep.free_bytes > 0);
	CHECK_INT(rep.floor, UINT64_MAX / 2);

	TEST_CASE("space: the mail root is checked too");
	memset(&rep, 0, sizeof(rep));
	snprintf(missing, sizeof(missing), "%s/not/yet/there", root);
	CHECK_INT(space_check(NULL, missing, UINT64_MAX / 2, 0, &rep),
		  COND_QUEUE_DISK_FULL);
	CHECK(rep.fs == missing);

	TEST_CASE("space: a message larger than the free space is full");
	memset(&rep, 0, sizeof(rep));
	CHECK_INT(space_check(root, root, 0, UINT64_MAX / 2, &rep),
		  COND_QUEUE_DISK_FULL);
	CHECK_INT(rep.need, UINT64_MAX / 2);

	TEST_CASE("space: cached values are reused within a second");
	{
		struct timespec t0, t1;
		long ns;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (int i = 0; i < 100000; i++)
			(void)space_check(root, missing, 0, 0, NULL);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		ns = (t1.tv_sec - t0.tv_sec) * 1000000000L +
		     (t1.tv_nsec - t0.tv_nsec);
		printf("space_check: %ld ns per call (cached)\n", ns / 100000);
		CHECK(ns / 100000 < 20000);
	}
}

int
main(void)
{
	const char *tmp = getenv("TMPDIR");
	int n = snprintf(root, sizeof(root), "%s/test_quota.XXXXXX",
			 tmp != NULL ? tmp : "/tmp");

	if (n < 0 || (size_t)n >= sizeof(root) || mkdtemp(root) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	tpool = workpool_new();
	CHECK_INT(quota_start(tpool), 0);
	test_scan();
	test_rcpt();
	test_message();
	test_reserve();
	test_race();
	test_space();
	quota_fini();
	workpool_free(&tpool);
	{
		char cmd[300];

		n = snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
		if (n > 0 && (size_t)n < sizeof(cmd) && system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", root);
	}
	return TEST_DONE();
}
