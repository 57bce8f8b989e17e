/*
 * test_maildir.c - local delivery: Maildir names and bytes, repeats after a
 * crash (new/ and cur/), stale tmp/ files, failure with back-off, and the
 * spool -> delivery -> spool_remove path. Real files in a mkdtemp folder.
 */
#include "deliver.h"
#include "deliver_maildir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "diag.h"
#include "log.h"
#include "directory_config.h"
#include "workpool.h"
#include "testing.h"

static struct workpool *tpool;	/* the commit (and delivery) classes */

#define HOST "mx.example.test"
#define DATA "Received: from client\r\nSubject: hi\r\n\r\nBody \x00\xff line\r\n"

static char tmpdir[] = "/tmp/postern-maildir-XXXXXX";
static char logpath[300], mailroot[300], spooldir[300];

/* ---- helpers ---------------------------------------------------------- */

/* <tmpdir>/direct/<name> */
static char *
direct_path(const char *name)
{
	return xasprintf("%s/direct/%s", tmpdir, name);
}

static int
count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* The one file's name in dir (malloc'ed), or NULL. */
static char *
only_file(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char *name = NULL;

	if (d == NULL)
		return NULL;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] != '.') {
			free(name);
			name = xstrdup(de->d_name);
		}
	}
	closedir(d);
	return name;
}

static struct buf
read_file(const char *path)
{
	struct buf b;
	char tmp[4096];
	int fd = open(path, O_RDONLY);
	ssize_t r;

	buf_init(&b, 1 << 20);
	if (fd < 0)
		return b;
	while ((r = read(fd, tmp, sizeof(tmp))) > 0)
		if (buf_append(&b, tmp, (size_t)r) < 0)
			break;
	close(fd);
	return b;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static int
log_count(const char *s1, const char *s2)
{
	FILE *f;
	char line[8192];
	int n = 0;

	log_flush();	/* lines are written by the log thread */
	f = fopen(logpath, "r");
	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, s1) != NULL && (s2 == NULL || strstr(line, s2)))
			n++;
	fclose(f);
	return n;
}

static struct spool_msg *
make_msg(const char *qid, const char *from, const char *const *rcpts,
	 size_t n)
{
	struct spool_msg *msg = spool_msg_new(1 << 16);

	memcpy(msg->qid, qid, 17);
	free(msg->from);
	msg->from = xstrdup(from);
	for (size_t i = 0; i < n; i++)
		spool_msg_add_rcpt(msg, rcpts[i], strlen(rcpts[i]), NULL, 0, 0);
	msg->client = xstrdup("192.0.2.1");
	msg->helo = xstrdup("client.example.org");
	msg->received_at = 1700000001;
	if (buf_append(&msg->data, DATA, sizeof(DATA) - 1) < 0)
		abort();
	return msg;
}

/* The bytes a Maildir file must hold for this recipient. */
static char *
want_bytes(const char *from, const char *rcpt, size_t *len)
{
	char *head = xasprintf("Return-Path: <%s>\r\nDelivered-To: %s\r\n",
			       from, rcpt);
	size_t hl = strlen(head);
	char *out = xmalloc(hl + sizeof(DATA));

	memcpy(out, head, hl);
	memcpy(out + hl, DATA, sizeof(DATA) - 1);
	*len = hl + sizeof(DATA) - 1;
	free(head);
	return out;
}

static int
file_is(const char *path, const char *from, const char *rcpt)
{
	size_t wl;
	char *want = want_bytes(from, rcpt, &wl);
	struct buf got = read_file(path);
	int ok = got.len == wl && memcmp(got.data, want, wl) == 0;

	buf_fini(&got);
	free(want);
	return ok;
}

/* Puts msg into queue/ as a crash would have left it. */
static void
write_spool_file(const struct spool_msg *msg)
{
	struct buf enc;
	char *path = xasprintf("%s/queue/%s", spooldir, msg->qid);
	int fd;

	buf_init(&enc, 1 << 20);
	if (spool_encode(msg, &enc) < 0)
		abort();
	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	if (fd < 0 || write(fd, enc.data, enc.len) != (ssize_t)enc.len)
		abort();
	close(fd);
	buf_fini(&enc);
	free(path);
}

static int
wait_pending(struct deliver *d, unsigned long want, int ms)
{
	for (int i = 0; i < ms / 5 && deliver_pending(d) != want; i++)
		sleep_ms(5);
	return deliver_pending(d) == want;
}

/* ---- loop ------------------------------------------------------------- */

static struct loop *loop;
static pthread_t loop_thread;
static _Atomic int commits_done, commits_ok;

static void *
loop_main(void *arg)
{
	(void)arg;
	(void)loop_run(loop);
	return NULL;
}

static void
on_done(struct loop *l, void *arg, int status, enum cond_id cond)
{
	(void)l;
	(void)arg;
	(void)cond;
	if (status == 0)
		atomic_fetch_add(&commits_ok, 1);
	atomic_fetch_add(&commits_done, 1);
}

/* ---- cases ------------------------------------------------------------ */

static void
test_names(void)
{
	char *s;

	TEST_CASE("maildir folder names");
	s = deliver_maildir_dir("/m/", "User.Name", 9, "Example.TEST", 12);
	CHECK_STR(s, "/m/example.test/user.name");
	free(s);
	CHECK(deliver_maildir_dir("/m", "..", 2, "example.test", 12) == NULL);
	CHECK(deliver_maildir_dir("/m", ".", 1, "example.test", 12) == NULL);
	CHECK(deliver_maildir_dir("/m", "a/b", 3, "example.test", 12) == NULL);
	CHECK(deliver_maildir_dir("/m", "", 0, "example.test", 12) == NULL);
	CHECK(deliver_maildir_dir("/m", "a\nb", 3, "example.test", 12) == NULL);
	CHECK(deliver_maildir_dir("/m", "a", 1, "..", 2) == NULL);
	s = deliver_maildir_host("host/a:b");
	CHECK_STR(s, "host\\057a\\072b");
	free(s);
}

static void
test_direct(void)
{
	static const char *const rcpts[] = { "u1@example.test", "u2@example.test" };
	struct spool_msg *msg = make_msg("0000000000000001", "", rcpts, 2);
	struct deliver_maildir_result res;
	char *md = direct_path("u1");
	char *newd = xasprintf("%s/new", md), *tmpd = xasprintf("%s/tmp", md);
	char *curd = xasprintf("%s/cur", md);
	char *name, *want_name, *stale;
	size_t wl;
	char *want = want_bytes("", "u2@example.test", &wl);
	struct stat st;

	TEST_CASE("maildir write: name, bytes, folders");
	CHECK_INT(deliver_maildir_write(md, "h/x:y", msg, 1, &res), 0);
	CHECK_INT(res.size, wl);
	CHECK_INT(res.existed, 0);
	want_name = xasprintf("1700000001.Q0000000000000001R1.h\\057x\\072y,S=%zu", wl);
	name = only_file(newd);
	CHECK_STR(name, want_name);
	CHECK(res.path != NULL && strstr(res.path, want_name) != NULL);
	CHECK(file_is(res.path, "", "u2@example.test"));
	CHECK_INT(count_files(tmpd), 0);
	CHECK_INT(count_files(curd), 0);
	CHECK(stat(md, &st) == 0 && (st.st_mode & 0777) == 0700);
	CHECK(stat(res.path, &st) == 0 && (st.st_mode & 0777) == 0600);
	deliver_maildir_result_fini(&res);

	TEST_CASE("maildir write repeated: link finds the copy");
	CHECK_INT(deliver_maildir_write(md, "h/x:y", msg, 1, &res), 0);
	CHECK_INT(res.existed, 1);
	CHECK_INT(count_files(newd), 1);
	CHECK_INT(count_files(tmpd), 0);
	deliver_maildir_result_fini(&res);

	TEST_CASE("maildir write: stale tmp file from a crash");
	free(want_name);
	{
		size_t wl0;
		char *w0 = want_bytes("", "u1@example.test", &wl0);
		int fd;

		want_name = xasprintf("1700000001.Q0000000000000001R0.h,S=%zu", wl0);
		stale = xasprintf("%s/%s", tmpd, want_name);
		fd = open(stale, O_CREAT | O_WRONLY, 0600);
		CHECK(fd >= 0 && write(fd, "junk", 4) == 4);
		close(fd);
		free(w0);
	}
	CHECK_INT(deliver_maildir_write(md, "h", msg, 0, &res), 0);
	CHECK_INT(res.existed, 0);
	CHECK_INT(count_files(tmpd), 0);
	CHECK_INT(count_files(newd), 2);
	CHECK(file_is(res.path, "", "u1@example.test"));
	deliver_maildir_result_fini(&res);

	TEST_CASE("maildir write recovered: found in cur/");
	{
		char *from = xasprintf("%s/%s", newd, want_name);
		char *to = xasprintf("%s/%s:2,S", curd, want_name);

		CHECK(rename(from, to) == 0);
		msg->recovered = 1;
		CHECK_INT(deliver_maildir_write(md, "otherhost", msg, 0, &res), 0);
		CHECK_INT(res.existed, 1);
		CHECK_STR(res.path, to);
		CHECK_INT(count_files(newd), 1);
		CHECK_INT(count_files(curd), 1);
		CHECK_INT(count_files(tmpd), 0);
		deliver_maildir_result_fini(&res);
		free(from);
		free(to);
	}

	TEST_CASE("maildir write fails: a file in the way");
	{
		char *blocked = direct_path("blocked");
		int fd = open(blocked, O_CREAT | O_WRONLY, 0600);

		close(fd);
		msg->recovered = 0;
		CHECK_INT(deliver_maildir_write(blocked, "h", msg, 0, &res), -1);
		CHECK(res.op != NULL && strcmp(res.op, "open") == 0);
		CHECK_INT(res.err, ENOTDIR);
		deliver_maildir_result_fini(&res);
		free(blocked);
	}

	TEST_CASE("maildir header refuses CR LF in addresses");
	free(msg->from);
	msg->from = xstrdup("a@b\r\nX-Evil: 1");
	CHECK_INT(deliver_maildir_write(md, "h", msg, 0, &res), -1);
	CHECK_STR(res.op, "header");
	deliver_maildir_result_fini(&res);

	free(stale);
	free(name);
	free(want_name);
	free(want);
	free(md);
	free(newd);
	free(tmpd);
	free(curd);
	spool_msg_free(&msg);
}

static void
test_queue(struct config *cfg)
{
	struct spool *sp = spool_open(spooldir, tpool, 2);
	struct deliver *d;
	char *queue = xasprintf("%s/queue", spooldir);
	char *alice_new = xasprintf("%s/example.test/alice/new", mailroot);
	char *bob_new = xasprintf("%s/example.test/bob/new", mailroot);
	char *dave_new = xasprintf("%s/example.test/dave/new", mailroot);
	char *dave_cur = xasprintf("%s/example.test/dave/cur", mailroot);
	char *carol = xasprintf("%s/example.test/carol", mailroot);

	TEST_CASE("spool -> delivery -> removed");
	CHECK(sp != NULL);
	if (sp == NULL)
		return;
	d = deliver_new(sp, cfg, tpool, 2);
	CHECK(d != NULL);
	spool_set_sink(sp, deliver_enqueue, d);
	{
		static const char *const rcpts[] = { "Alice@Example.Test",
						     "bob@example.test" };
		struct spool_msg *msg = make_msg("0000000000000000", "s@example.org",
						 rcpts, 2);
		msg->received_at = (int64_t)time(NULL);	/* within the queue lifetime */

		spool_new_qid(sp, msg->qid);
		spool_commit(sp, msg, loop, on_done, NULL);
	}
	for (int i = 0; i < 400 && atomic_load(&commits_done) < 1; i++)
		sleep_ms(5);
	CHECK_INT(atomic_load(&commits_ok), 1);
	CHECK(wait_pending(d, 0, 3000));
	CHECK_INT(count_files(queue), 0);
	CHECK_INT(count_files(alice_new), 1);
	CHECK_INT(count_files(bob_new), 1);
	{
		char *n = only_file(alice_new);
		char *p = xasprintf("%s/%s", alice_new, n ? n : "");

		CHECK(file_is(p, "s@example.org", "Alice@Example.Test"));
		CHECK(n != NULL && strstr(n, "R0." HOST ",S=") != NULL);
		free(n);
		free(p);
	}
	CHECK_INT(log_count("event=DELIVERY-SUCCESS", NULL), 2);

	TEST_CASE("recovered twice: one copy");
	{
		static const char *const rcpts[] = { "dave@example.test" };
		struct spool_msg *msg = make_msg("0000000000000D00", "", rcpts, 1);
		msg->received_at = (int64_t)time(NULL);	/* within the queue lifetime */

		write_spool_file(msg);
		CHECK_INT(spool_recover(sp), 1);
		CHECK(wait_pending(d, 0, 3000));
		CHECK_INT(count_files(queue), 0);
		CHECK_INT(count_files(dave_new), 1);
		write_spool_file(msg);
		CHECK_INT(spool_recover(sp), 1);
		CHECK(wait_pending(d, 0, 3000));
		CHECK_INT(count_files(queue), 0);
		CHECK_INT(count_files(dave_new), 1);

		TEST_CASE("recovered after POP3 moved it to cur/");
		{
			char *n = only_file(dave_new);
			char *from = xasprintf("%s/%s", dave_new, n ? n : "x");
			char *to = xasprintf("%s/%s:2,S", dave_cur, n ? n : "x");

			CHECK(rename(from, to) == 0);
			free(n);
			free(from);
			free(to);
		}
		write_spool_file(msg);
		CHECK_INT(spool_recover(sp), 1);
		CHECK(wait_pending(d, 0, 3000));
		CHECK_INT(count_files(queue), 0);
		CHECK_INT(count_files(dave_new), 0);
		CHECK_INT(count_files(dave_cur), 1);
		spool_msg_free(&msg);
	}

	TEST_CASE("write failure: deferred, retried, delivered");
	{
		static const char *const rcpts[] = { "carol@example.test" };
		struct spool_msg *msg = make_msg("0000000000000C00", "", rcpts, 1);
		msg->received_at = (int64_t)time(NULL);	/* within the queue lifetime */
		char *carol_new = xasprintf("%s/new", carol);
		int fd;

		CHECK(mkdir(mailroot, 0700) == 0 || errno == EEXIST);
		fd = open(carol, O_CREAT | O_WRONLY, 0600);	/* in the way */
		CHECK(fd >= 0);
		close(fd);
		write_spool_file(msg);
		CHECK_INT(spool_recover(sp), 1);
		/* The deferral is logged after the failure (on the loop, once
		 * the worker's completion runs): wait for both. */
		for (int i = 0; i < 400 && (log_count("event=DELIVERY-LOCAL-WRITE-FAILED", NULL) == 0 ||
					    log_count("event=DELIVERY-DEFERRED", NULL) == 0); i++)
			sleep_ms(5);
		CHECK(log_count("event=DELIVERY-LOCAL-WRITE-FAILED", "errno=ENOTDIR") >= 1);
		CHECK(log_count("event=DELIVERY-DEFERRED",
				"cause=DELIVERY-LOCAL-WRITE-FAILED") >= 1);
		CHECK_INT(deliver_pending(d), 1);
		CHECK_INT(count_files(queue), 1);
		CHECK(unlink(carol) == 0);
		CHECK(wait_pending(d, 0, 5000));	/* retry after 1 s */
		CHECK_INT(count_files(carol_new), 1);
		CHECK_INT(count_files(queue), 0);
		free(carol_new);
		spool_msg_free(&msg);
	}

	/* Without an outbound engine (deliver_set_outbound), a non-local
	 * recipient waits for one: nothing recorded, nothing dropped (issue
	 * 8 changed this on purpose: no "no transport" deferral any more). */
	TEST_CASE("non-local recipient stays queued");
	{
		static const char *const rcpts[] = { "x@remote.example",
						     "erin@example.test" };
		struct spool_msg *msg = make_msg("0000000000000E00", "", rcpts, 2);
		msg->received_at = (int64_t)time(NULL);	/* within the queue lifetime */
		char *erin_new = xasprintf("%s/example.test/erin/new", mailroot);

		write_spool_file(msg);
		CHECK_INT(spool_recover(sp), 1);
		for (int i = 0; i < 400 && count_files(erin_new) < 1; i++)
			sleep_ms(5);
		CHECK_INT(count_files(erin_new), 1);
		CHECK_INT(deliver_pending(d), 1);
		CHECK_INT(count_files(queue), 1);
		CHECK_INT(log_count("event=DELIVERY-FAILED", NULL), 0);
		free(erin_new);
		spool_msg_free(&msg);
	}

	TEST_CASE("config swap and shutdown keep the spool entry");
	deliver_set_config(d, cfg);
	spool_set_sink(sp, NULL, NULL);
	deliver_free(&d);
	CHECK(d == NULL);
	CHECK_INT(count_files(queue), 1);
	spool_close(&sp);

	free(queue);
	free(alice_new);
	free(bob_new);
	free(dave_new);
	free(dave_cur);
	free(carol);
}

int
main(void)
{
	struct config *cfg;
	struct diag diags;
	char *ov_root, *ov[3];

	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	if (snprintf(logpath, sizeof(logpath), "%s/log", tmpdir) >= (int)sizeof(logpath) ||
	    snprintf(mailroot, sizeof(mailroot), "%s/mail", tmpdir) >= (int)sizeof(mailroot) ||
	    snprintf(spooldir, sizeof(spooldir), "%s/spool", tmpdir) >= (int)sizeof(spooldir))
		return 1;
	if (log_open(logpath, LOG_SEV_DEBUG) < 0) {
		perror("log_open");
		return 1;
	}
	ov_root = xasprintf("server.mail_root=%s", mailroot);
	ov[0] = ov_root;
	ov[1] = "local.domains=example.test";
	ov[2] = "server.hostname=" HOST;
	diag_init(&diags);
	cfg = directory_config_load(NULL, (const char *const *)ov, 3, &diags);
	if (cfg == NULL) {
		diag_print(&diags, stderr);
		return 1;
	}
	diag_fini(&diags);
	loop = loop_new();
	pthread_create(&loop_thread, NULL, loop_main, NULL);
	tpool = workpool_new();

	test_names();
	test_direct();
	test_queue(cfg);

	loop_stop(loop);
	pthread_join(loop_thread, NULL);
	workpool_free(&tpool);
	loop_free(&loop);
	config_unref(&cfg);
	free(ov_root);
	log_close();
	testing_remove_dir(tmpdir);
	return TEST_DONE();
}
