/*
 * test_log_queue.c - the log queue (core/log_queue.c) and the log thread
 * behind log_write (core/log.c): order, the never-drop class, the drop
 * count, batched wake-ups, flush and stop.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "log_queue.h"
#include "testing.h"

static char *
line_of(unsigned n)
{
	return xasprintf("line %u\n", n);
}

/* Waits (at most 2 s) until the queue has a waiting producer (want_waiter)
 * or a sleeping consumer; returns what it saw. */
static int
wait_for_state(struct log_queue *q, int want_waiter)
{
	for (int i = 0; i < 2000; i++) {
		pthread_mutex_lock(&q->lock);
		int seen = want_waiter ? q->waiters > 0 : q->sleeping;
		pthread_mutex_unlock(&q->lock);
		if (seen)
			return 1;
		usleep(1000);
	}
	return 0;
}

static void
test_order(void)
{
	struct log_queue q;
	struct log_item out[32];

	TEST_CASE("lines come out in the order they went in");
	log_queue_init(&q, 16, 1 << 20);
	for (unsigned i = 0; i < 10; i++) {
		char *l = line_of(i);
		CHECK_INT(log_queue_push(&q, l, strlen(l), LOG_SEV_INFO, 0), 0);
	}
	size_t n = log_queue_take(&q, out, 4);
	CHECK_INT(n, 4);
	size_t m = log_queue_take(&q, out + 4, 32 - 4);
	CHECK_INT(m, 6);
	for (unsigned i = 0; i < 10; i++) {
		char want[32];
		snprintf(want, sizeof(want), "line %u\n", i);
		CHECK_STR(out[i].line, want);
		free(out[i].line);
	}
	log_queue_done(&q);
	CHECK_INT(q.count, 0);
	CHECK_INT(q.bytes, 0);
	log_queue_fini(&q);
}

struct pusher {
	struct log_queue *q;
	int result;
	int done;	/* atomic */
};

static void *
push_info(void *arg)
{
	struct pusher *p = arg;
	char *l = xstrdup("info waits\n");

	p->result = log_queue_push(p->q, l, strlen(l), LOG_SEV_INFO, 0);
	__atomic_store_n(&p->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void
test_full(void)
{
	struct log_queue q;
	struct log_item out[16];
	pthread_t t;

	TEST_CASE("a full queue drops debug lines and counts them");
	log_queue_init(&q, 4, 1 << 20);
	for (unsigned i = 0; i < 4; i++) {
		char *l = line_of(i);
		CHECK_INT(log_queue_push(&q, l, strlen(l), LOG_SEV_NOTICE, 0), 0);
	}
	for (unsigned i = 0; i < 3; i++) {
		char *l = line_of(100 + i);
		CHECK_INT(log_queue_push(&q, l, strlen(l), LOG_SEV_DEBUG, 1), 1);
	}
	CHECK_INT(log_queue_dropped(&q), 3);

	TEST_CASE("a line that may not be dropped waits for room, then is queued last");
	struct pusher p = { &q, -2, 0 };
	CHECK_INT(pthread_create(&t, NULL, push_info, &p), 0);
	CHECK(wait_for_state(&q, 1));			/* it is waiting */
	CHECK_INT(__atomic_load_n(&p.done, __ATOMIC_ACQUIRE), 0);
	size_t n = log_queue_take(&q, out, 2);
	CHECK_INT(n, 2);
	for (size_t i = 0; i < n; i++)
		free(out[i].line);
	log_queue_done(&q);
	pthread_join(t, NULL);
	CHECK_INT(p.result, 0);
	n = log_queue_take(&q, out, 16);
	CHECK_INT(n, 3);
	CHECK_STR(out[0].line, "line 2\n");
	CHECK_STR(out[2].line, "info waits\n");
	for (size_t i = 0; i < n; i++)
		free(out[i].line);
	log_queue_done(&q);
	CHECK_INT(log_queue_dropped(&q), 3);

	TEST_CASE("the byte bound holds too, but one line always fits");
	char *big = xcalloc(1, 300);
	memset(big, 'x', 299);
	CHECK_INT(log_queue_push(&q, big, 299, LOG_SEV_DEBUG, 1), 0);
	char *l = line_of(7);
	log_queue_fini(&q);
	log_queue_init(&q, 8, 100);
	big = xcalloc(1, 300);
	CHECK_INT(log_queue_push(&q, big, 299, LOG_SEV_DEBUG, 1), 0);	/* empty: fits */
	CHECK_INT(log_queue_push(&q, l, strlen(l), LOG_SEV_DEBUG, 1), 1);
	CHECK_INT(log_queue_dropped(&q), 1);
	log_queue_fini(&q);
}

static void *
take_one_batch(void *arg)
{
	struct log_queue *q = arg;
	struct log_item out[64];
	size_t n = log_queue_take(q, out, 64);

	for (size_t i = 0; i < n; i++)
		free(out[i].line);
	log_queue_done(q);
	return (void *)n;
}

static void
test_wakeups(void)
{
	struct log_queue q;
	struct log_item out[64];
	pthread_t t;
	void *got;

	TEST_CASE("no signal while the consumer is busy; one when it waits");
	log_queue_init(&q, 64, 1 << 20);
	for (unsigned i = 0; i < 20; i++) {
		char *l = line_of(i);
		CHECK_INT(log_queue_push(&q, l, strlen(l), LOG_SEV_INFO, 0), 0);
	}
	CHECK_INT(q.wakeups, 0);
	size_t n = log_queue_take(&q, out, 64);
	CHECK_INT(n, 20);	/* the whole backlog in one take */
	for (size_t i = 0; i < n; i++)
		free(out[i].line);
	log_queue_done(&q);
	CHECK_INT(pthread_create(&t, NULL, take_one_batch, &q), 0);
	CHECK(wait_for_state(&q, 0));
	char *l = line_of(99);
	CHECK_INT(log_queue_push(&q, l, strlen(l), LOG_SEV_INFO, 0), 0);
	pthread_join(t, &got);
	CHECK_INT((size_t)got, 1);
	CHECK_INT(q.wakeups, 1);

	TEST_CASE("after stop, the rest is taken, then take says 0 and push -1");
	l = line_of(1);
	CHECK_INT(log_queue_push(&q, l, strlen(l), LOG_SEV_INFO, 0), 0);
	log_queue_stop(&q);
	char *late = line_of(2);
	CHECK_INT(log_queue_push(&q, late, strlen(late), LOG_SEV_INFO, 0), -1);
	free(late);
	CHECK_INT(log_queue_take(&q, out, 64), 1);
	free(out[0].line);
	log_queue_done(&q);
	CHECK_INT(log_queue_take(&q, out, 64), 0);
	log_queue_fini(&q);
}

/* ---- the log thread behind log_write ---------------------------------- */

static uint64_t hook_calls, hook_total, hook_sum;

static void
drop_hook(uint64_t dropped, uint64_t total)
{
	hook_calls++;
	hook_sum += dropped;
	hook_total = total;
}

struct reader {
	int fd;
	struct buf got;
};

static void *
read_all(void *arg)
{
	struct reader *r = arg;
	char chunk[65536];

	for (;;) {
		ssize_t n = read(r->fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (buf_append(&r->got, chunk, (size_t)n) < 0)
			break;
	}
	return NULL;
}

static void
log_seq(enum log_sev sev, unsigned i)
{
	struct kv kv[] = { KVU("seq", i) };
	log_write(sev, sev == LOG_SEV_DEBUG ? "NET-TRACE" : "SESSION-END", NULL, kv, 1,
		  "a line long enough to fill a pipe before long, padded with words");
}

static void
test_thread(void)
{
	int p[2];
	char path[64];
	struct reader r;
	pthread_t t;
	enum { N_DEBUG = 3000, N_MIXED = 200 };

	TEST_CASE("a slow target: debug lines dropped and counted, others all kept");
	CHECK_INT(pipe(p), 0);
	snprintf(path, sizeof(path), "/dev/fd/%d", p[1]);
	log_set_queue_lines(16);
	log_set_drop_report(drop_hook);
	CHECK_INT(log_open(path, LOG_SEV_DEBUG), 0);
	close(p[1]);		/* log_open holds its own descriptor */
	/* Nobody reads yet: the pipe fills, the log thread blocks in write. */
	for (unsigned i = 0; i < N_DEBUG; i++)
		log_seq(LOG_SEV_DEBUG, i);
	r.fd = p[0];
	buf_init(&r.got, 64u << 20);
	CHECK_INT(pthread_create(&t, NULL, read_all, &r), 0);
	for (unsigned i = 0; i < N_MIXED; i++)
		log_seq(i % 2 ? LOG_SEV_DEBUG : LOG_SEV_INFO, N_DEBUG + i);
	log_close();		/* flushes, reports, closes the pipe */
	pthread_join(t, NULL);
	close(p[0]);

	unsigned debug = 0, info = 0, last_info = 0, in_order = 1;
	const char *s = buf_cstr(&r.got);
	for (const char *line = s; *line != '\0';) {
		const char *nl = strchr(line, '\n');
		if (nl == NULL)
			break;
		const char *q = strstr(line, "seq=");
		unsigned seq = q && q < nl ? (unsigned)strtoul(q + 4, NULL, 10) : 0;
		if (strstr(line, "event=SESSION-END") && strstr(line, "event=SESSION-END") < nl) {
			if (info > 0 && seq <= last_info)
				in_order = 0;
			last_info = seq;
			info++;
		} else if (strstr(line, "event=NET-TRACE") && strstr(line, "event=NET-TRACE") < nl) {
			debug++;
		}
		line = nl + 1;
	}
	CHECK_INT(info, N_MIXED / 2);			/* never dropped */
	CHECK(in_order);
	CHECK(hook_total > 0);				/* some were dropped */
	CHECK_INT(hook_sum, hook_total);		/* each drop reported once */
	CHECK_INT(debug + hook_total, N_DEBUG + N_MIXED / 2);	/* exact count */
	CHECK(hook_calls >= 1);
	buf_fini(&r.got);
	log_set_drop_report(NULL);
}

/* Counts lines of the file containing s. */
static int
file_count(const char *path, const char *s)
{
	FILE *f = fopen(path, "r");
	char line[8192];
	int n = 0;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		n += strstr(line, s) != NULL;
	fclose(f);
	return n;
}

static void
test_crit(void)
{
	char path[] = "/tmp/postern-logq-XXXXXX";
	int fd = mkstemp(path);

	TEST_CASE("a crit line is out when log_write returns, after what came before");
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	close(fd);
	log_set_queue_lines(8192);
	CHECK_INT(log_open(path, LOG_SEV_DEBUG), 0);
	for (unsigned i = 0; i < 500; i++)
		log_seq(LOG_SEV_INFO, i);
	log_write(LOG_SEV_CRIT, "STARTUP-INIT-FAILED", NULL, NULL, 0, "initialisation failed");
	/* No flush, no close: the process could end here. */
	CHECK_INT(file_count(path, "event=SESSION-END"), 500);
	CHECK_INT(file_count(path, "event=STARTUP-INIT-FAILED"), 1);
	log_close();
	unlink(path);
}

int
main(void)
{
	test_order();
	test_full();
	test_wakeups();
	test_thread();
	test_crit();
	return TEST_DONE();
}
