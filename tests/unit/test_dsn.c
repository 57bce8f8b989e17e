/*
 * test_dsn.c - the bounce bookkeeping as a remote transport will use it
 * (deliver_report.h): a peer's 5xx, its 4xx past delay_warning, a 250 from
 * a peer without DSN (relayed) and with DSN (nothing owed); each DSN is
 * read back from the spool file the compose API wrote.
 */
#include "deliver_report.h"
#include "dsn.h"

#include <fcntl.h>
#include <pthread.h>
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

static char tmpdir[] = "/tmp/postern-dsn-XXXXXX";
static pthread_mutex_t got_mu = PTHREAD_MUTEX_INITIALIZER;
static struct spool_msg *got[8];
static size_t ngot;

static void
sink(struct spool_msg *m, void *arg)
{
	(void)arg;
	pthread_mutex_lock(&got_mu);
	if (ngot < 8)
		got[ngot++] = m;
	else
		spool_msg_free(&m);
	pthread_mutex_unlock(&got_mu);
}

/* The last DSN's file, whole (small in these tests). */
static char *
last_dsn(void)
{
	struct spool_msg *m = ngot > 0 ? got[ngot - 1] : NULL;
	struct stat sb;
	char *s;
	int fd;

	if (m == NULL || m->file == NULL || (fd = open(m->file, O_RDONLY)) < 0)
		return xstrdup("");
	if (fstat(fd, &sb) < 0 || sb.st_size > (1 << 20)) {
		close(fd);
		return xstrdup("");
	}
	s = xcalloc(1, (size_t)sb.st_size + 1);
	if (read(fd, s, (size_t)sb.st_size) != sb.st_size)
		s[0] = '\0';
	close(fd);
	return s;
}

static struct spool_msg *
remote_msg(int64_t age, unsigned notify)
{
	struct spool_msg *m = spool_msg_new(4096);

	memcpy(m->qid, "0000000000000AB1", 17);
	free(m->from);
	m->from = xstrdup("s@sender.example");
	spool_msg_add_rcpt(m, "a@remote.example", 16, "rfc822;A@remote.example", 23, notify);
	m->client = xstrdup("192.0.2.1");
	m->helo = xstrdup("client.example");
	m->received_at = (int64_t)time(NULL) - age;
	if (buf_append_str(&m->data, "Subject: remote\r\n\r\nthe body\r\n") < 0)
		abort();
	return m;
}

#define HAS(s, x) CHECK(strstr((s), (x)) != NULL)

static void
test_reports(struct spool *sp, struct config *cfg)
{
	struct spool_msg *m;
	struct buf recs;
	unsigned retry;
	int reported;
	char *d;

	buf_init(&recs, 1 << 20);

	TEST_CASE("a peer's 5xx: failed, with its status, name and reply");
	m = remote_msg(5, 0);
	deliver_report_fail(cfg, m, 0, COND__COUNT, "5.1.1", "mx.peer.example",
			    "550 5.1.1 <a@remote.example>: no such user", &recs);
	retry = 0;
	CHECK_INT(deliver_report(sp, cfg, m, &recs, &retry, &reported), 1);
	CHECK_INT(reported, 1);
	CHECK_INT(ngot, 1);
	d = last_dsn();
	HAS(d, "Content-Type: multipart/report; report-type=delivery-status;");
	HAS(d, "Original-Recipient: rfc822;A@remote.example\r\n");
	HAS(d, "Final-Recipient: rfc822; a@remote.example\r\nAction: failed\r\n"
	       "Status: 5.1.1\r\nRemote-MTA: dns; mx.peer.example\r\n"
	       "Diagnostic-Code: smtp; 550 5.1.1 <a@remote.example>: no such user\r\n");
	HAS(d, "mx.peer.example said: 550 5.1.1");
	HAS(d, "Content-Type: message/rfc822\r\n");
	HAS(d, "\r\n\r\nthe body\r\n");
	CHECK(got[0]->origin == SPOOL_ORIGIN_DSN && got[0]->from[0] == '\0');
	CHECK_STR(got[0]->rcpts[0].addr, "s@sender.example");
	free(d);
	spool_msg_free(&m);

	TEST_CASE("a peer's 4xx past delay_warning: delayed, once, next pass capped");
	m = remote_msg(20, 0);
	buf_reset(&recs);
	CHECK_INT(deliver_report_defer(m, 0, 1, (int64_t)time(NULL) + 600, COND_DELIVERY_DEFERRED,
				       "4.7.1", "mx.peer.example", "451 4.7.1 greylisted", &recs), 0);
	retry = 600;
	CHECK_INT(deliver_report(sp, cfg, m, &recs, &retry, &reported), 0);
	CHECK_INT(ngot, 2);
	CHECK(retry >= 1 && retry <= 100 - 20);	/* max_queue_lifetime=100 */
	d = last_dsn();
	HAS(d, "Action: delayed\r\nStatus: 4.7.1\r\nRemote-MTA: dns; mx.peer.example\r\n"
	       "Diagnostic-Code: smtp; 451 4.7.1 greylisted\r\n");
	HAS(d, "Will-Retry-Until: ");
	HAS(d, "Content-Type: text/rfc822-headers\r\n");
	CHECK(strstr(d, "the body") == NULL);
	free(d);
	CHECK_INT(m->rcpts[0].dsn_sent, SPOOL_DSN_DELAYED);
	CHECK_INT(deliver_report(sp, cfg, m, &recs, &retry, &reported), 0);
	CHECK_INT(ngot, 2);	/* no second warning */
	spool_msg_free(&m);

	/* a 250 from a peer without DSN: relayed for NOTIFY=SUCCESS; from a
	 * peer with DSN: its duty, nothing sent, and a dsn record says that
	 * none is owed after a restart */
	for (int offers = 0; offers < 2; offers++) {
		TEST_CASE(offers ? "a 250 from a peer with DSN" : "a 250 from a peer without DSN");
		m = remote_msg(5, SMTP_NOTIFY_SUCCESS);
		buf_reset(&recs);
		m->rcpts[0].done = 1;
		deliver_report_relayed(m, 0, "mx.peer.example", "250 2.0.0 queued as X", offers,
				       &recs);
		CHECK(offers ? recs.len > 0 : recs.len == 0);
		CHECK_INT(deliver_report(sp, cfg, m, &recs, &retry, &reported), 1);
		CHECK_INT(ngot, 3);
		d = last_dsn();
		HAS(d, "Action: relayed\r\nStatus: 2.0.0\r\nRemote-MTA: dns; mx.peer.example\r\n"
		       "Diagnostic-Code: smtp; 250 2.0.0 queued as X\r\n");
		free(d);
		spool_msg_free(&m);
	}

	TEST_CASE("an original that cannot be read: the DSN goes, with a note");
	m = remote_msg(5, 0);
	m->file = xasprintf("%s/no-such-file", tmpdir);
	m->body_len = 100;
	buf_reset(&recs);
	deliver_report_fail(cfg, m, 0, COND__COUNT, "5.0.0", NULL, "550 no", &recs);
	CHECK_INT(deliver_report(sp, cfg, m, &recs, &retry, &reported), 1);
	CHECK_INT(ngot, 4);
	d = last_dsn();
	HAS(d, "[the original message could not be read from the queue: No such file");
	free(d);
	spool_msg_free(&m);

	TEST_CASE("notify wants");
	CHECK_INT(dsn_notify_wants(0, DSN_FAILED), 1);
	CHECK_INT(dsn_notify_wants(0, DSN_DELAYED), 1);
	CHECK_INT(dsn_notify_wants(0, DSN_DELIVERED), 0);
	CHECK_INT(dsn_notify_wants(SMTP_NOTIFY_NEVER, DSN_FAILED), 0);
	CHECK_INT(dsn_notify_wants(SMTP_NOTIFY_SUCCESS, DSN_RELAYED), 1);
	CHECK_INT(dsn_notify_wants(SMTP_NOTIFY_SUCCESS, DSN_FAILED), 0);
	CHECK_INT(dsn_notify_wants(SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY, DSN_DELAYED), 1);
	buf_fini(&recs);
}

int
main(void)
{
	char logpath[300], spooldir[300];
	struct workpool *wp;
	struct config *cfg;
	struct spool *sp;
	struct diag diags;
	static const char *const ov[] = {
		"server.hostname=mx.example.test", "local.domains=example.test",
		"outbound.delay_warning=10", "outbound.max_queue_lifetime=100",
	};

	if (mkdtemp(tmpdir) == NULL)
		return 1;
	if (snprintf(logpath, sizeof(logpath), "%s/log", tmpdir) >= (int)sizeof(logpath) ||
	    snprintf(spooldir, sizeof(spooldir), "%s/spool", tmpdir) >= (int)sizeof(spooldir))
		return 1;
	if (log_open(logpath, LOG_SEV_DEBUG) < 0)
		return 1;
	diag_init(&diags);
	cfg = directory_config_load(NULL, ov, ARRAY_LEN(ov), &diags);
	if (cfg == NULL) {
		diag_print(&diags, stderr);
		return 1;
	}
	diag_fini(&diags);
	wp = workpool_new();
	sp = spool_open(spooldir, wp, 1);
	CHECK(sp != NULL);
	if (sp != NULL) {
		spool_set_sink(sp, sink, NULL);
		test_reports(sp, cfg);
		spool_set_sink(sp, NULL, NULL);
		spool_close(&sp);
	}
	for (size_t i = 0; i < ngot; i++)
		spool_msg_free(&got[i]);
	workpool_free(&wp);
	config_unref(&cfg);
	log_close();
	testing_remove_dir(tmpdir);
	return TEST_DONE();
}
