/*
 * test_pop3_parse.c - unit tests of pop3/pop3_parse.c: commands, SASL
 * PLAIN, unique-ids, reply rendering and the RETR/TOP encoder.
 */
#include <stdio.h>
#include <string.h>

#include "pop3_parse.h"
#include "testing.h"

struct cmd_case {
	const char *name;
	const char *line;
	int rc;
	enum pop3_verb verb;
	enum cond_id err;
	uint32_t msgno;
	uint32_t lines;
	const char *arg;
};

static const struct cmd_case cmd_cases[] = {
	{ "user", "USER alice@example.test", 0, POP3_VERB_USER, 0, 0, 0, "alice@example.test" },
	{ "user lower", "user bob", 0, POP3_VERB_USER, 0, 0, 0, "bob" },
	{ "user no arg", "USER", -1, POP3_VERB_USER, COND_POP3_SYNTAX, 0, 0, NULL },
	{ "user space", "USER a b", -1, POP3_VERB_USER, COND_POP3_SYNTAX, 0, 0, NULL },
	{ "pass spaces", "PASS my secret pw", 0, POP3_VERB_PASS, 0, 0, 0, "my secret pw" },
	{ "pass empty", "PASS", -1, POP3_VERB_PASS, COND_POP3_SYNTAX, 0, 0, NULL },
	{ "stat", "STAT", 0, POP3_VERB_STAT, 0, 0, 0, NULL },
	{ "stat arg", "STAT 1", -1, POP3_VERB_STAT, COND_POP3_SYNTAX, 0, 0, NULL },
	{ "list", "LIST", 0, POP3_VERB_LIST, 0, 0, 0, NULL },
	{ "list n", "LIST 3", 0, POP3_VERB_LIST, 0, 3, 0, NULL },
	{ "list zero", "LIST 0", -1, POP3_VERB_LIST, COND_POP3_MSG_NUMBER_INVALID, 0, 0, NULL },
	{ "list junk", "LIST x", -1, POP3_VERB_LIST, COND_POP3_MSG_NUMBER_INVALID, 0, 0, NULL },
	{ "list neg", "LIST -1", -1, POP3_VERB_LIST, COND_POP3_MSG_NUMBER_INVALID, 0, 0, NULL },
	{ "list two", "LIST 1 2", -1, POP3_VERB_LIST, COND_POP3_SYNTAX, 0, 0, NULL },
	{ "list huge", "LIST 99999999999999", -1, POP3_VERB_LIST, COND_POP3_MSG_NUMBER_INVALID, 0, 0, NULL },
	{ "uidl n", "uidl 12", 0, POP3_VERB_UIDL, 0, 12, 0, NULL },
	{ "retr", "RETR 1", 0, POP3_VERB_RETR, 0, 1, 0, NULL },
	{ "retr none", "RETR", -1, POP3_VERB_RETR, COND_POP3_SYNTAX, 0, 0, NULL },
	{ "retr plus", "RETR +1", -1, POP3_VERB_RETR, COND_POP3_MSG_NUMBER_INVALID, 0, 0, NULL },
	{ "top", "TOP 2 10", 0, POP3_VERB_TOP, 0, 2, 10, NULL },
	{ "top zero lines", "TOP 2 0", 0, POP3_VERB_TOP, 0, 2, 0, NULL },
	{ "top one arg", "TOP 2", -1, POP3_VERB_TOP, COND_POP3_SYNTAX, 0, 0, NULL },
	{ "top bad lines", "TOP 2 x", -1, POP3_VERB_TOP, COND_POP3_SYNTAX, 0, 0, NULL },
	{ "top bad msg", "TOP 0 1", -1, POP3_VERB_TOP, COND_POP3_MSG_NUMBER_INVALID, 0, 0, NULL },
	{ "dele", "DELE 7", 0, POP3_VERB_DELE, 0, 7, 0, NULL },
	{ "dele double space", "DELE  7", -1, POP3_VERB_DELE, COND_POP3_SYNTAX, 0, 0, NULL },
	{ "rset", "RSET", 0, POP3_VERB_RSET, 0, 0, 0, NULL },
	{ "noop", "NOOP", 0, POP3_VERB_NOOP, 0, 0, 0, NULL },
	{ "quit", "QUIT", 0, POP3_VERB_QUIT, 0, 0, 0, NULL },
	{ "capa", "CAPA", 0, POP3_VERB_CAPA, 0, 0, 0, NULL },
	{ "auth plain", "AUTH PLAIN AGFsaWNlAHB3", 0, POP3_VERB_AUTH, 0, 0, 0, NULL },
	{ "auth bare", "AUTH", -1, POP3_VERB_AUTH, COND_POP3_SYNTAX, 0, 0, NULL },
	{ "unknown", "XYZZ", -1, POP3_VERB_UNKNOWN, COND_POP3_SYNTAX, 0, 0, NULL },
	{ "too long verb", "RETRIEVE 1", -1, POP3_VERB_UNKNOWN, COND_POP3_SYNTAX, 0, 0, NULL },
	{ "empty", "", -1, POP3_VERB_UNKNOWN, COND_POP3_SYNTAX, 0, 0, NULL },
	{ "leading space", " STAT", -1, POP3_VERB_UNKNOWN, COND_POP3_SYNTAX, 0, 0, NULL },
};

static void
test_commands(void)
{
	for (size_t i = 0; i < ARRAY_LEN(cmd_cases); i++) {
		const struct cmd_case *c = &cmd_cases[i];
		struct pop3_cmd cmd;
		enum cond_id err = COND__COUNT;

		TEST_CASE(c->name);
		int rc = pop3_parse_command((const uint8_t *)c->line, strlen(c->line), &cmd, &err);
		CHECK_INT(rc, c->rc);
		CHECK_INT(cmd.verb, c->verb);
		if (rc < 0)
			CHECK_INT(err, c->err);
		else {
			CHECK_INT(cmd.msgno, c->msgno);
			CHECK_INT(cmd.lines, c->lines);
			if (c->arg)
				CHECK_MEM(cmd.arg.p, cmd.arg.len, c->arg);
		}
	}
	TEST_CASE("nul in arg");
	struct pop3_cmd cmd;
	enum cond_id err;
	CHECK_INT(pop3_parse_command((const uint8_t *)"USER a\0b", 8, &cmd, &err), -1);
	CHECK_INT(err, COND_POP3_SYNTAX);
	TEST_CASE("auth initial");
	CHECK_INT(pop3_parse_command((const uint8_t *)"AUTH plain =", 12, &cmd, &err), 0);
	CHECK_MEM(cmd.mech.p, cmd.mech.len, "plain");
	CHECK_MEM(cmd.initial.p, cmd.initial.len, "=");
	CHECK_STR(pop3_verb_name(POP3_VERB_UIDL), "UIDL");
}

static void
test_sasl(void)
{
	struct buf b;

	TEST_CASE("base64 plain");
	buf_init(&b, 100);
	/* "\0alice\0pw" */
	CHECK_INT(pop3_base64_decode(slice_from_cstr("AGFsaWNlAHB3"), &b), 0);
	CHECK_INT(b.len, 9);
	buf_reset(&b);
	TEST_CASE("base64 padding");
	CHECK_INT(pop3_base64_decode(slice_from_cstr("YWI="), &b), 0);
	CHECK_MEM(b.data, b.len, "ab");
	buf_reset(&b);
	CHECK_INT(pop3_base64_decode(slice_from_cstr("YQ=="), &b), 0);
	CHECK_MEM(b.data, b.len, "a");
	buf_reset(&b);
	TEST_CASE("base64 bad");
	CHECK_INT(pop3_base64_decode(slice_from_cstr("YQ="), &b), -1);
	CHECK_INT(pop3_base64_decode(slice_from_cstr("Y!=="), &b), -1);
	CHECK_INT(pop3_base64_decode(slice_from_cstr("YQ=a"), &b), -1);
	CHECK_INT(pop3_base64_decode(slice_from_cstr("YR=="), &b), -1);	/* stray bits */
	CHECK_INT(b.len, 0);
	TEST_CASE("base64 empty");
	CHECK_INT(pop3_base64_decode(slice_from_cstr("="), &b), 0);
	CHECK_INT(b.len, 0);
	TEST_CASE("base64 too long");
	struct buf small;
	buf_init(&small, 2);
	CHECK_INT(pop3_base64_decode(slice_from_cstr("YWJj"), &small), -1);
	CHECK_INT(small.len, 0);
	buf_fini(&small);
	buf_fini(&b);
}

static void
test_uid(void)
{
	char uid[POP3_UID_MAX + 1], again[POP3_UID_MAX + 1];
	const char *name = "1732363200.Q0123456789ABCDEFR0.mx.example.test,S=120";

	TEST_CASE("uid plain");
	pop3_uid_of(name, strlen(name), uid);
	CHECK_STR(uid, name);
	TEST_CASE("uid long");
	char longname[200];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	pop3_uid_of(longname, strlen(longname), uid);
	pop3_uid_of(longname, strlen(longname), again);
	CHECK_INT(strlen(uid), 33);
	CHECK(uid[0] == 'H');
	CHECK_STR(uid, again);
	longname[5] = 'b';
	pop3_uid_of(longname, strlen(longname), again);
	CHECK(strcmp(uid, again) != 0);
	TEST_CASE("uid space");
	pop3_uid_of("a b", 3, uid);
	CHECK(uid[0] == 'H');
}

static void
test_reply(void)
{
	struct buf b;

	buf_init(&b, 512);
	TEST_CASE("reply ok");
	struct kv kv[] = { KVU("count", 2), KVU("size", 320) };
	CHECK_INT(pop3_reply_render(&b, COND_POP3_STAT, "h", kv, 2), 0);
	CHECK_MEM(b.data, b.len, "+OK 2 320");
	buf_reset(&b);
	TEST_CASE("reply err");
	CHECK_INT(pop3_reply_render(&b, COND_POP3_LOCKED, "h", NULL, 0), 0);
	CHECK_MEM(b.data, b.len, "-ERR [IN-USE] Mailbox is locked by another session [POP3-LOCKED]");
	buf_reset(&b);
	TEST_CASE("reply greeting");
	CHECK_INT(pop3_reply_render(&b, COND_POP3_GREETING, "mx.example.test", NULL, 0), 0);
	CHECK_MEM(b.data, b.len, "+OK mx.example.test POP3 server ready");
	buf_reset(&b);
	TEST_CASE("reply control bytes");
	struct kv u[] = { KV("user", "a\r\nb") };
	CHECK_INT(pop3_reply_render(&b, COND_POP3_USER_OK, "h", u, 1), 0);
	CHECK(memchr(b.data, '\r', b.len) == NULL);
	buf_reset(&b);
	TEST_CASE("reply log only");
	CHECK_INT(pop3_reply_render(&b, COND_POP3_TIMEOUT, "h", NULL, 0), -1);
	/* every POP3 row with a reply starts with +OK, + or -ERR */
	for (int i = 0; i < COND__COUNT; i++) {
		const struct cond *c = catalog_get((enum cond_id)i);
		if (strncmp(c->id, "POP3-", 5) != 0 || c->reply[0] == '\0')
			continue;
		TEST_CASE(c->id);
		CHECK(strncmp(c->reply, "+OK", 3) == 0 || strncmp(c->reply, "-ERR ", 5) == 0 ||
		      strcmp(c->reply, "+ ") == 0);
		CHECK_INT(c->code, 0);
	}
	buf_fini(&b);
}

/* Encodes in through an encoder fed in pieces of step octets. */
static void
encode(const char *in, size_t n, int top, uint32_t lines, size_t step, struct buf *out,
       uint64_t *size)
{
	struct pop3_enc e;

	pop3_enc_init(&e, top, lines);
	for (size_t off = 0; off < n && !e.done; off += step) {
		size_t k = n - off < step ? n - off : step;
		long used = pop3_enc_feed(&e, (const uint8_t *)in + off, k, out);
		CHECK(used >= 0);
	}
	CHECK_INT(pop3_enc_finish(&e, out), 0);
	*size = e.size;
}

struct enc_case {
	const char *name;
	const char *in;
	int top;
	uint32_t lines;
	const char *out;
	uint64_t size;
};

static const struct enc_case enc_cases[] = {
	{ "crlf", "A: b\r\n\r\nhi\r\n", 0, 0, "A: b\r\n\r\nhi\r\n.\r\n", 12 },
	{ "bare lf", "A: b\n\nhi\n", 0, 0, "A: b\r\n\r\nhi\r\n.\r\n", 12 },
	{ "dot stuffing", "A: b\r\n\r\n.x\r\n.\r\n..\r\n", 0, 0,
	  "A: b\r\n\r\n..x\r\n..\r\n...\r\n.\r\n", 19 },
	{ "no final eol", "A: b\r\n\r\nend", 0, 0, "A: b\r\n\r\nend\r\n.\r\n", 13 },
	{ "final cr", "A: b\r\n\r\nend\r", 0, 0, "A: b\r\n\r\nend\r\n.\r\n", 13 },
	{ "empty", "", 0, 0, ".\r\n", 0 },
	{ "top 0", "A: b\r\nC: d\r\n\r\nl1\r\nl2\r\n", 1, 0, "A: b\r\nC: d\r\n\r\n.\r\n", 14 },
	{ "top 1", "A: b\r\n\r\nl1\r\n.l2\r\nl3\r\n", 1, 1, "A: b\r\n\r\nl1\r\n.\r\n", 12 },
	{ "top 2 stuffed", "A: b\r\n\r\nl1\r\n.l2\r\nl3\r\n", 1, 2,
	  "A: b\r\n\r\nl1\r\n..l2\r\n.\r\n", 17 },
	{ "top past end", "A: b\r\n\r\nl1", 1, 5, "A: b\r\n\r\nl1\r\n.\r\n", 12 },
	{ "top no body", "A: b\r\nC: d", 1, 3, "A: b\r\nC: d\r\n.\r\n", 12 },
	{ "bare cr kept", "A: b\r\n\r\nx\ry\r\n", 0, 0, "A: b\r\n\r\nx\ry\r\n.\r\n", 13 },
};

static void
test_encoder(void)
{
	static const size_t steps[] = { 1, 2, 3, 7, 4096 };

	for (size_t i = 0; i < ARRAY_LEN(enc_cases); i++) {
		const struct enc_case *c = &enc_cases[i];
		for (size_t s = 0; s < ARRAY_LEN(steps); s++) {
			struct buf out;
			uint64_t size, counted;
			buf_init(&out, 4096);
			TEST_CASE(c->name);
			encode(c->in, strlen(c->in), c->top, c->lines, steps[s], &out, &size);
			CHECK_MEM(out.data, out.len, c->out);
			CHECK_INT(size, c->size);
			if (!c->top) {
				/* counting alone gives the same size */
				struct pop3_enc e;
				pop3_enc_init(&e, 0, 0);
				CHECK_INT(pop3_enc_feed(&e, (const uint8_t *)c->in, strlen(c->in), NULL),
					  (long)strlen(c->in));
				CHECK_INT(pop3_enc_finish(&e, NULL), 0);
				counted = e.size;
				CHECK_INT(counted, c->size);
			}
			buf_fini(&out);
		}
	}
	TEST_CASE("no room");
	struct pop3_enc e;
	struct buf small;
	buf_init(&small, 5);
	pop3_enc_init(&e, 0, 0);
	CHECK_INT(pop3_enc_feed(&e, (const uint8_t *)"abc", 3, &small), -1);
	buf_fini(&small);
}

int
main(void)
{
	test_commands();
	test_sasl();
	test_uid();
	test_reply();
	test_encoder();
	return TEST_DONE();
}
