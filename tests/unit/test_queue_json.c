/*
 * test_queue_json.c - the queue command's JSON writer (escapes, UTF-8,
 * separators) and the control socket's request dispatch.
 */
#include "queue_json.h"
#include "server_control.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "loop.h"
#include "testing.h"

static char seen_qid[32], seen_domain[64];
static int flush_calls;

static enum cond_id
t_flush(void *arg, const char *qid, const char *domain, long *count)
{
	(void)arg;
	flush_calls++;
	(void)snprintf(seen_qid, sizeof(seen_qid), "%s", qid != NULL ? qid : "(all)");
	(void)snprintf(seen_domain, sizeof(seen_domain), "%s", domain != NULL ? domain : "-");
	*count = 3;
	return COND__COUNT;
}

static enum cond_id
t_remove(void *arg, const char *qid, long *count)
{
	(void)arg;
	(void)qid;
	*count = 0;
	return COND_QUEUE_NOT_FOUND;
}

static unsigned long
t_pending(void *arg)
{
	(void)arg;
	return 7;
}

static void
t_dest(void *arg, struct buf *out)
{
	(void)arg;
	if (buf_append_str(out, "example.net: 2 active\n") < 0)
		return;
}

static void
t_describe(void *arg, struct buf *out)
{
	*(pthread_t *)arg = pthread_self();
	if (buf_append_str(out, "on the loop\n") < 0)
		return;
}

static void *
t_loop_main(void *arg)
{
	(void)loop_run(arg);
	return NULL;
}

static const char *
answer(const struct control_ops *ops, const char *line, struct buf *out)
{
	buf_reset(out);
	server_control_answer(ops, line, out);
	return buf_cstr(out);
}

int
main(void)
{
	struct buf b, out;
	struct jw w;

	TEST_CASE("writer: separators and nesting");
	buf_init(&b, 4096);
	jw_init(&w, &b);
	jw_open(&w, '{');
	jw_kstr(&w, "a", "x");
	jw_key(&w, "l");
	jw_open(&w, '[');
	jw_int(&w, 1);
	jw_int(&w, -2);
	jw_null(&w);
	jw_open(&w, '{');
	jw_close(&w, '}');
	jw_close(&w, ']');
	jw_kbool(&w, "t", 1);
	jw_kstr(&w, "n", NULL);
	jw_close(&w, '}');
	CHECK_INT(w.err, 0);
	CHECK_STR(buf_cstr(&b), "{\"a\":\"x\",\"l\":[1,-2,null,{}],\"t\":true,\"n\":null}");

	TEST_CASE("writer: escapes, UTF-8 kept, other bytes replaced");
	buf_reset(&b);
	jw_init(&w, &b);
	static const char raw[] = "q\"b\\s\n\r\t\x01\x7f \xc3\xa9 \xff \xc3 \xed\xa0\x80";
	jw_strn(&w, raw, sizeof(raw) - 1);
	CHECK_STR(buf_cstr(&b), "\"q\\\"b\\\\s\\n\\r\\t\\u0001\\u007f \xc3\xa9 \\ufffd \\ufffd "
				"\\ufffd\\ufffd\\ufffd\"");

	TEST_CASE("writer: the bound is remembered");
	buf_fini(&b);
	buf_init(&b, 8);
	jw_init(&w, &b);
	jw_str(&w, "far longer than eight bytes");
	CHECK_INT(w.err, 1);
	buf_fini(&b);

	TEST_CASE("result line");
	buf_init(&out, 1 << 16);
	CHECK(queue_json_result(&out, "hold", "offline", "ABC", 1, COND__COUNT, "held") == 0);
	CHECK_STR(buf_cstr(&out), "{\"schema\":\"postern-queue/1\",\"command\":\"hold\",\"ok\":true,"
				  "\"via\":\"offline\",\"target\":\"ABC\",\"count\":1,\"error\":null,"
				  "\"message\":\"held\"}\n");

	struct control_ops ops = { .flush = t_flush, .remove = t_remove, .pending = t_pending,
				   .destinations = t_dest };

	TEST_CASE("control: status with the destinations hook");
	CHECK(strstr(answer(&ops, "status", &out), "\"pending\":7") != NULL);
	CHECK(strstr(buf_cstr(&out), "\"destinations\":\"example.net: 2 active\\n\"") != NULL);

	TEST_CASE("control: flush forms");
	CHECK(strstr(answer(&ops, "flush", &out), "\"ok\":true") != NULL);
	CHECK_STR(seen_qid, "(all)");
	CHECK(strstr(buf_cstr(&out), "\"count\":3") != NULL);
	(void)answer(&ops, "flush 0HOQN6Z4YJJ00001", &out);
	CHECK_STR(seen_qid, "0HOQN6Z4YJJ00001");
	CHECK_STR(seen_domain, "-");
	(void)answer(&ops, "flush @example.net", &out);
	CHECK_STR(seen_qid, "(all)");
	CHECK_STR(seen_domain, "example.net");
	CHECK_INT(flush_calls, 3);

	TEST_CASE("control: errors");
	CHECK(strstr(answer(&ops, "delete 0HOQN6Z4YJJ00001", &out),
		     "\"error\":\"QUEUE-NOT-FOUND\"") != NULL);
	CHECK(strstr(answer(&ops, "hold 0HOQN6Z4YJJ00001", &out),
		     "\"error\":\"QUEUE-COMMAND-UNAVAILABLE\"") != NULL);
	CHECK(strstr(answer(&ops, "hold ../x", &out), "\"error\":\"QUEUE-CONTROL-BAD-REQUEST\"") != NULL);
	CHECK(strstr(answer(&ops, "hold", &out), "\"error\":\"QUEUE-CONTROL-BAD-REQUEST\"") != NULL);
	CHECK(strstr(answer(&ops, "flush @", &out), "\"error\":\"QUEUE-CONTROL-BAD-REQUEST\"") != NULL);
	CHECK(strstr(answer(&ops, "status now", &out), "\"error\":\"QUEUE-CONTROL-BAD-REQUEST\"") != NULL);
	CHECK(strstr(answer(&ops, "averyveryverylongcommandword", &out),
		     "\"error\":\"QUEUE-CONTROL-BAD-REQUEST\"") != NULL);
	CHECK_INT(flush_calls, 3);

	TEST_CASE("control: a hook run on a loop's thread");
	{
		struct loop *loop = loop_new();
		pthread_t lt, ran = pthread_self();

		CHECK(loop != NULL);
		if (loop != NULL && pthread_create(&lt, NULL, t_loop_main, loop) == 0) {
			buf_reset(&out);
			server_control_on_loop(loop, t_describe, &ran, &out);
			CHECK_STR(buf_cstr(&out), "on the loop\n");
			CHECK(pthread_equal(ran, lt));
			loop_stop(loop);
			pthread_join(lt, NULL);
		}
		loop_free(&loop);
	}
	buf_fini(&out);
	return TEST_DONE();
}
