/*
 * test_directory_resolve.c - unit tests for directory_alias.c and
 * directory_resolve.c: a table of resolution cases over one fixture
 * (accounts with extra fields, aliases, catch-alls, lists, disabled
 * domains), then every load error of the aliases, lists and extra fields
 * with its FILE:LINE.
 */
#include "directory.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "testing.h"

static char tmpdir[] = "/tmp/test_directory_resolve.XXXXXX";

static const char *
write_file(const char *name, const char *text)
{
	static char path[4][256];
	static int k;
	char *p = path[k++ & 3];
	FILE *f;

	if (snprintf(p, 256, "%s/%s", tmpdir, name) >= 256)
		abort();
	f = fopen(p, "wb");
	if (f == NULL || fwrite(text, 1, strlen(text), f) != strlen(text) || fclose(f) != 0)
		abort();
	return p;
}

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

static char *const local_domains[] = { "example.test", "other.test", "off.test", "dang.test" };
static char *const disabled_domains[] = { "off.test" };

/* Loads the three files; NULL (diagnostics in d) on error. */
static struct directory *
load(const char *accounts, const char *aliases, const char *lists, struct diag *d)
{
	struct directory *dir = directory_load(write_file("accounts", accounts), d);
	int bad = 0;

	if (dir == NULL)
		dir = directory_empty();
	directory_set_domains(dir, local_domains, ARRAY_LEN(local_domains), disabled_domains,
			      ARRAY_LEN(disabled_domains));
	if (aliases != NULL && directory_load_aliases(dir, write_file("aliases", aliases), d) < 0)
		bad = 1;
	if (lists != NULL && directory_load_lists(dir, write_file("lists", lists), d) < 0)
		bad = 1;
	if (bad || d->n > 0)
		directory_free(&dir);
	return dir;
}

static const char fixture_accounts[] =
	"alice@example.test:{CRYPT}$y$x\n"
	"bob@example.test:\n"
	"carol@example.test::::::: disabled=yes\n"
	"trap@example.test:::::::spamtrap\n"
	"fwd@example.test:::::::forward=Remote@Example.ORG,bob\n"
	"fwdkeep@example.test:::::::forward=remote@example.org forward_keep=yes\n"
	"fwdloop1@example.test:::::::forward=fwdloop2\n"
	"fwdloop2@example.test:::::::forward=fwdloop1\n"
	"fwddis@example.test:::::::forward=carol\n"
	"fwdghost@example.test:::::::forward=ghost\n"
	"a+b@example.test:\n"
	"zed@other.test:\n"
	"user@off.test:\n"
	"q@example.test:::::::quota=100M quota_messages=5000 pop3=no userdb_mail=maildir:~/M nologin\n";

static const char fixture_aliases[] =
	"# aliases\n"
	"sales@example.test: alice, bob\n"
	"one@example.test: alice\n"
	"remote@example.test: Partner@Example.ORG\n"
	"mixed@example.test: alice x@example.org,bob@example.test\n"
	"nest1@example.test: nest2\n"
	"nest2@example.test: nest3\n"
	"nest3@example.test: alice\n"
	"cyc1@example.test: cyc2\n"
	"cyc2@example.test: cyc1\n"
	"self@example.test: self\n"
	"dang@example.test: nobody\n"
	"!off@example.test: alice\n"
	"tr@example.test: :spamtrap\n"
	"todis@example.test: carol\n"
	"dup@example.test: alice, ALICE, sales\n"
	"diamond@example.test: sales, one\n"
	"@other.test: zed\n"
	"@dang.test: ghost@dang.test\n"
	"plusal@example.test: bob\n"
	"offdom@example.test: user@off.test\n"
	"offdom2@example.test: user@off.test, alice\n"
	"tolist@example.test: staff\n"
	"toteam@example.test: team\n"
	"postmaster@example.test: bob\n"
	"cont@example.test: alice\n"
	"  bob,\n"
	"\tx@example.org\n"
	"tofwd@example.test: fwd\n"
	"totrap@example.test: trap\n";

static const char fixture_lists[] =
	"[staff@example.test]\n"
	"members = alice, bob\n"
	"senders = anyone\n"
	"\n"
	"[team@example.test]\n"
	"members = alice, bob\n"
	"members = Ext@Example.ORG\n"
	"senders = members\n"
	"[board@example.test]\n"
	"members = alice\n"
	"senders = boss@example.org, @partner.test\n"
	"[both@example.test]\n"
	"members = alice\n"
	"senders = members, boss@example.org\n"
	"[empty@example.test]\n"
	"[closed@example.test]\n"
	"members = alice\n"
	"disabled = yes\n"
	"[mixlist@example.test]\n"
	"members = alice, carol\n"
	"[alldis@example.test]\n"
	"members = carol\n"
	"[listloop@example.test]\n"
	"members = listloop2\n"
	"[listloop2@example.test]\n"
	"members = listloop, alice\n"
	"[inner@example.test]\n"
	"members = alice\n"
	"senders = members\n"
	"[outer@example.test]\n"
	"members = inner, bob\n";

/* The outcome as one line: "route: L:a@x R:b@y P:postmaster@x" (L local
 * account, P postmaster without account, R remote), or "ID key=detail". */
static char *
outcome(const struct resolve_result *r)
{
	struct buf b;
	char *s;
	int bad = 0;

	buf_init(&b, 1 << 20);
	if (r->cond == COND__COUNT) {
		bad |= buf_appendf(&b, "%s:", r->detail);
		for (size_t i = 0; i < r->ntargets; i++) {
			const struct resolve_target *t = &r->targets[i];

			bad |= buf_appendf(&b, " %c:%s", !t->local ? 'R' : t->acct ? 'L' : 'P',
					   t->addr);
			if (t->local && t->acct != NULL) {
				char want[600];

				if (snprintf(want, sizeof(want), "%s@%s", t->acct->local,
					     t->acct->domain) >= (int)sizeof(want) ||
				    strcmp(want, t->addr) != 0)
					bad |= buf_append_str(&b, "(acct mismatch)");
			}
		}
	} else {
		bad |= buf_append_str(&b, catalog_get(r->cond)->id);
		if (r->detail_key != NULL)
			bad |= buf_appendf(&b, " %s=%s", r->detail_key, r->detail);
		if (r->ntargets != 0)
			bad |= buf_append_str(&b, " (targets left)");
	}
	CHECK(bad == 0);
	s = xstrdup(buf_cstr(&b));
	buf_fini(&b);
	return s;
}

static void
test_resolve(void)
{
	static const struct {
		const char *name;
		const char *rcpt;
		const char *sender;
		int plus;
		unsigned depth;
		const char *want;
	} cases[] = {
		{ "account", "alice@example.test", "s@example.org", 0, 0,
		  "local: L:alice@example.test" },
		{ "case-insensitive", "ALICE@Example.TEST", "s@example.org", 0, 0,
		  "local: L:alice@example.test" },
		{ "trailing dot", "alice@example.test.", "", 0, 0, "local: L:alice@example.test" },
		{ "unknown", "nobody@example.test", "", 0, 0, "RCPT-UNKNOWN-USER" },
		{ "not local", "Who@Example.ORG", "", 0, 0, "relay: R:Who@example.org" },
		{ "alias to one", "one@example.test", "", 0, 0, "alias: L:alice@example.test" },
		{ "alias to many", "sales@example.test", "", 0, 0,
		  "alias: L:alice@example.test L:bob@example.test" },
		{ "alias to remote", "remote@example.test", "", 0, 0,
		  "alias: R:Partner@example.org" },
		{ "alias mixed", "mixed@example.test", "", 0, 0,
		  "alias: L:alice@example.test R:x@example.org L:bob@example.test" },
		{ "continuation lines", "cont@example.test", "", 0, 0,
		  "alias: L:alice@example.test L:bob@example.test R:x@example.org" },
		{ "nested", "nest1@example.test", "", 0, 0, "alias: L:alice@example.test" },
		{ "depth limit ok", "nest1@example.test", "", 0, 3, "alias: L:alice@example.test" },
		{ "depth limit past", "nest1@example.test", "", 0, 2,
		  "RCPT-ALIAS-LOOP chain=nest1@example.test > nest2@example.test > "
		  "nest3@example.test > alice@example.test" },
		{ "cycle", "cyc1@example.test", "", 0, 0,
		  "RCPT-ALIAS-LOOP chain=cyc1@example.test > cyc2@example.test > cyc1@example.test" },
		{ "self", "self@example.test", "", 0, 0,
		  "RCPT-ALIAS-LOOP chain=self@example.test > self@example.test" },
		{ "dedup", "dup@example.test", "", 0, 0,
		  "alias: L:alice@example.test L:bob@example.test" },
		{ "diamond is no loop", "diamond@example.test", "", 0, 0,
		  "alias: L:alice@example.test L:bob@example.test" },
		{ "dangling", "dang@example.test", "", 0, 0,
		  "RCPT-ALIAS-DANGLING target=nobody@example.test" },
		{ "disabled alias", "off@example.test", "", 0, 0, "RCPT-ALIAS-DISABLED kind=alias" },
		{ "alias spamtrap", "tr@example.test", "", 0, 0, "RCPT-SPAMTRAP" },
		{ "alias to disabled", "todis@example.test", "", 0, 0, "RCPT-MAILBOX-DISABLED" },
		{ "alias to trap", "totrap@example.test", "", 0, 0, "RCPT-SPAMTRAP" },
		{ "catch-all", "anything@other.test", "", 0, 0, "catchall: L:zed@other.test" },
		{ "account beats catch-all", "zed@other.test", "", 0, 0, "local: L:zed@other.test" },
		{ "catch-all dangling", "x@dang.test", "", 0, 0,
		  "RCPT-ALIAS-DANGLING target=ghost@dang.test" },
		{ "postmaster implicit", "postmaster@other.test", "", 0, 0,
		  "postmaster: P:postmaster@other.test" },
		{ "postmaster case", "PostMaster@DANG.test", "", 0, 0,
		  "postmaster: P:postmaster@dang.test" },
		{ "postmaster alias", "postmaster@example.test", "", 0, 0,
		  "alias: L:bob@example.test" },
		{ "disabled account", "carol@example.test", "", 0, 0, "RCPT-MAILBOX-DISABLED" },
		{ "spamtrap account", "trap@example.test", "", 0, 0, "RCPT-SPAMTRAP" },
		{ "disabled domain", "user@off.test", "", 0, 0,
		  "RCPT-DOMAIN-DISABLED domain=off.test" },
		{ "disabled domain postmaster", "postmaster@off.test", "", 0, 0,
		  "RCPT-DOMAIN-DISABLED domain=off.test" },
		{ "alias into disabled domain", "offdom@example.test", "", 0, 0,
		  "RCPT-DOMAIN-DISABLED domain=off.test" },
		{ "disabled target skipped", "offdom2@example.test", "", 0, 0,
		  "alias: L:alice@example.test" },
		{ "forward", "fwd@example.test", "", 0, 0,
		  "forward: R:Remote@example.org L:bob@example.test" },
		{ "forward keep", "fwdkeep@example.test", "", 0, 0,
		  "forward: L:fwdkeep@example.test R:remote@example.org" },
		{ "forward loop", "fwdloop1@example.test", "", 0, 0,
		  "RCPT-ALIAS-LOOP chain=fwdloop1@example.test > fwdloop2@example.test > "
		  "fwdloop1@example.test" },
		{ "forward to disabled", "fwddis@example.test", "", 0, 0, "RCPT-MAILBOX-DISABLED" },
		{ "forward dangling", "fwdghost@example.test", "", 0, 0,
		  "RCPT-ALIAS-DANGLING target=ghost@example.test" },
		{ "alias to forward", "tofwd@example.test", "", 0, 0,
		  "alias: R:Remote@example.org L:bob@example.test" },
		{ "plus off", "alice+tag@example.test", "", 0, 0, "RCPT-UNKNOWN-USER" },
		{ "plus on", "alice+tag@example.test", "", 1, 0, "local: L:alice@example.test" },
		{ "plus on, exact wins", "a+b@example.test", "", 1, 0, "local: L:a+b@example.test" },
		{ "plus on, alias", "plusal+x@example.test", "", 1, 0, "alias: L:bob@example.test" },
		{ "plus on, unknown base", "nobody+x@example.test", "", 1, 0, "RCPT-UNKNOWN-USER" },
		{ "plus on, leading sep", "+alice@example.test", "", 1, 0, "RCPT-UNKNOWN-USER" },
		{ "plus on, catch-all", "nobody+x@other.test", "", 1, 0,
		  "catchall: L:zed@other.test" },
		{ "plus on, disabled", "carol+x@example.test", "", 1, 0, "RCPT-MAILBOX-DISABLED" },
		{ "plus on, postmaster", "postmaster+x@other.test", "", 1, 0,
		  "postmaster: P:postmaster@other.test" },
		{ "list anyone", "staff@example.test", "x@example.org", 0, 0,
		  "list: L:alice@example.test L:bob@example.test" },
		{ "list anyone, null sender", "staff@example.test", "", 0, 0,
		  "list: L:alice@example.test L:bob@example.test" },
		{ "list members, member", "team@example.test", "Bob@Example.Test", 0, 0,
		  "list: L:alice@example.test L:bob@example.test R:Ext@example.org" },
		{ "list members, remote member", "team@example.test", "ext@example.org", 0, 0,
		  "list: L:alice@example.test L:bob@example.test R:Ext@example.org" },
		{ "list members, stranger", "team@example.test", "x@example.org", 0, 0,
		  "RCPT-LIST-NOT-AUTHORIZED" },
		{ "list members, null sender", "team@example.test", "", 0, 0,
		  "RCPT-LIST-NOT-AUTHORIZED" },
		{ "list listed", "board@example.test", "BOSS@example.org", 0, 0,
		  "list: L:alice@example.test" },
		{ "list listed domain", "board@example.test", "anyone@partner.test", 0, 0,
		  "list: L:alice@example.test" },
		{ "list listed, other", "board@example.test", "alice@example.test", 0, 0,
		  "RCPT-LIST-NOT-AUTHORIZED" },
		{ "list listed, subdomain", "board@example.test", "x@sub.partner.test", 0, 0,
		  "RCPT-LIST-NOT-AUTHORIZED" },
		{ "list members+listed, member", "both@example.test", "alice@example.test", 0, 0,
		  "list: L:alice@example.test" },
		{ "list members+listed, listed", "both@example.test", "boss@example.org", 0, 0,
		  "list: L:alice@example.test" },
		{ "list members+listed, other", "both@example.test", "x@example.org", 0, 0,
		  "RCPT-LIST-NOT-AUTHORIZED" },
		{ "list empty", "empty@example.test", "", 0, 0, "RCPT-LIST-EMPTY" },
		{ "list disabled", "closed@example.test", "", 0, 0, "RCPT-ALIAS-DISABLED kind=list" },
		{ "list disabled member skipped", "mixlist@example.test", "", 0, 0,
		  "list: L:alice@example.test" },
		{ "list all members disabled", "alldis@example.test", "", 0, 0,
		  "RCPT-MAILBOX-DISABLED" },
		{ "list loop", "listloop@example.test", "", 0, 0,
		  "RCPT-ALIAS-LOOP chain=listloop@example.test > listloop2@example.test > "
		  "listloop@example.test" },
		{ "alias to list", "tolist@example.test", "", 0, 0,
		  "alias: L:alice@example.test L:bob@example.test" },
		{ "alias to list, sender rule", "toteam@example.test", "x@example.org", 0, 0,
		  "RCPT-LIST-NOT-AUTHORIZED" },
		{ "nested list refusing is skipped", "outer@example.test", "x@example.org", 0, 0,
		  "list: L:bob@example.test" },
		{ "nested list admitting", "outer@example.test", "alice@example.test", 0, 0,
		  "list: L:alice@example.test L:bob@example.test" },
	};
	struct diag d;
	struct directory *dir;

	diag_init(&d);
	dir = load(fixture_accounts, fixture_aliases, fixture_lists, &d);
	TEST_CASE("fixture loads");
	if (dir == NULL) {
		char *t = diag_text(&d);

		fprintf(stderr, "%s", t);
		free(t);
		CHECK(dir != NULL);
		diag_fini(&d);
		return;
	}
	CHECK_INT(directory_alias_count(dir), 27);
	CHECK_INT(directory_list_count(dir), 12);
	CHECK_INT(directory_domain_disabled(dir, "OFF.test", 8), 1);
	CHECK_INT(directory_domain_disabled(dir, "example.test", 12), 0);

	TEST_CASE("extra fields");
	const struct account *a = directory_find(dir, "q", 1, "example.test", 12);
	CHECK(a != NULL);
	if (a != NULL) {
		CHECK(a->quota_bytes == 100ull * 1024 * 1024);
		CHECK(a->quota_messages == 5000);
		CHECK_INT(a->pop3, 0);
		CHECK_INT(a->disabled, 0);
		CHECK(a->forward == NULL);
	}
	a = directory_find(dir, "alice", 5, "example.test", 12);
	CHECK(a != NULL && a->pop3 == 1 && a->quota_bytes == 0 && !a->disabled && !a->spamtrap);
	a = directory_find(dir, "carol", 5, "example.test", 12);
	CHECK(a != NULL && a->disabled == 1);
	a = directory_find(dir, "fwd", 3, "example.test", 12);
	CHECK(a != NULL && a->forward != NULL && a->forward_keep == 0);
	if (a != NULL && a->forward != NULL)
		CHECK_STR(a->forward, "Remote@example.org,bob@example.test");

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct resolve_ctx ctx = { 0 };
		struct resolve_result r;
		const char *at = strrchr(cases[i].rcpt, '@');
		char *got;

		TEST_CASE(cases[i].name);
		ctx.sender = cases[i].sender;
		ctx.sender_len = strlen(cases[i].sender);
		ctx.plus_addressing = cases[i].plus;
		ctx.plus_sep = '+';
		ctx.max_depth = cases[i].depth;
		CHECK_INT(directory_resolve(dir, &ctx, cases[i].rcpt,
					    (size_t)(at - cases[i].rcpt), at + 1, strlen(at + 1),
					    &r), 0);
		got = outcome(&r);
		CHECK_STR(got, cases[i].want);
		free(got);
		resolve_result_fini(&r);
		CHECK(r.targets == NULL && r.ntargets == 0);
	}
	directory_free(&dir);
	diag_fini(&d);
}

/* is_local through the context, not the directory's list. */
static int
only_example(void *arg, const char *d, size_t n)
{
	(void)arg;
	return n == 12 && strncasecmp(d, "example.test", 12) == 0;
}

static void
test_ctx_and_limits(void)
{
	struct diag d;
	struct directory *dir;
	struct buf lists, aliases;
	struct resolve_ctx ctx = { 0 };
	struct resolve_result r;
	char *got;
	int bad = 0;

	/* two lists of 600 distinct remote members: 1200 > 1000 destinations */
	buf_init(&lists, 1 << 22);
	for (int l = 0; l < 2; l++) {
		bad |= buf_appendf(&lists, "[big%d@example.test]\n", l);
		for (int i = 0; i < 600; i++)
			bad |= buf_appendf(&lists, "members = m%d.%d@example.org\n", l, i);
	}
	bad |= buf_append_str(&lists, "[huge@example.test]\nmembers = big0, big1\n");
	bad |= buf_append_str(&lists, "[fine@example.test]\nmembers = big0, big0, alice\n");
	/* a chain of 30 aliases, for the default depth of 20 */
	buf_init(&aliases, 1 << 20);
	for (int i = 0; i < 30; i++)
		bad |= buf_appendf(&aliases, "c%d@example.test: c%d\n", i, i + 1);
	bad |= buf_append_str(&aliases, "c30@example.test: alice\n");
	bad |= buf_append_str(&aliases, "c10@other.test: alice@example.test\n");
	CHECK(bad == 0);
	diag_init(&d);
	dir = load("alice@example.test:\n", buf_cstr(&aliases), buf_cstr(&lists), &d);
	TEST_CASE("limits fixture");
	CHECK(dir != NULL);
	if (dir == NULL) {
		char *t = diag_text(&d);

		fprintf(stderr, "%s", t);
		free(t);
		goto out;
	}
	ctx.sender = "";
	ctx.plus_sep = '+';

	TEST_CASE("too many destinations");
	CHECK_INT(directory_resolve(dir, &ctx, "huge", 4, "example.test", 12, &r), 0);
	got = outcome(&r);
	CHECK_STR(got, "RCPT-EXPANSION-TOO-LARGE count=1001");
	free(got);
	resolve_result_fini(&r);

	TEST_CASE("600 + duplicates + 1");
	CHECK_INT(directory_resolve(dir, &ctx, "fine", 4, "example.test", 12, &r), 0);
	CHECK(r.cond == COND__COUNT);
	CHECK_INT(r.ntargets, 601);
	resolve_result_fini(&r);

	TEST_CASE("default depth 20");
	CHECK_INT(directory_resolve(dir, &ctx, "c0", 2, "example.test", 12, &r), 0);
	CHECK(r.cond == COND_RCPT_ALIAS_LOOP);
	CHECK_INT(r.depth, 21);
	resolve_result_fini(&r);
	TEST_CASE("depth 20 from c11");
	CHECK_INT(directory_resolve(dir, &ctx, "c11", 3, "example.test", 12, &r), 0);
	got = outcome(&r);
	CHECK_STR(got, "alias: L:alice@example.test");
	free(got);
	CHECK_INT(r.depth, 20);
	resolve_result_fini(&r);

	TEST_CASE("is_local from the context");
	ctx.is_local = only_example;
	CHECK_INT(directory_resolve(dir, &ctx, "c10", 3, "other.test", 10, &r), 0);
	got = outcome(&r);
	CHECK_STR(got, "relay: R:c10@other.test");
	free(got);
	resolve_result_fini(&r);

	TEST_CASE("bad arguments");
	CHECK_INT(directory_resolve(dir, NULL, "a", 1, "example.test", 12, &r), -1);
	resolve_result_fini(&r);
	CHECK_INT(directory_resolve(dir, &ctx, "a", 1, "", 0, &r), -1);
	resolve_result_fini(&r);
	TEST_CASE("no directory");
	ctx.is_local = NULL;
	CHECK_INT(directory_resolve(NULL, &ctx, "postmaster", 10, "example.test", 12, &r), 0);
	got = outcome(&r);
	CHECK_STR(got, "relay: R:postmaster@example.test");	/* no local domains */
	free(got);
	resolve_result_fini(&r);
	directory_free(&dir);
out:
	diag_fini(&d);
	buf_fini(&lists);
	buf_fini(&aliases);
}

static void
test_load_errors(void)
{
	static const struct {
		const char *name;
		const char *accounts, *aliases, *lists;
		const char *want;
	} cases[] = {
		{ "extra fields",
		  "a@example.test:::::::quota=12X\n"
		  "b@example.test:::::::quota_messages=1k disabled=maybe\n"
		  "c@example.test:::::::forward=a@@x\n"
		  "d@example.test:::::::forward=,\n"
		  "e@example.test:::::::forward=a forward=b\n"
		  "f@example.test::1:2:g:/h:/s:quota=1G spamtrap=no pop3=yes\n"
		  "g@example.test:::::: disabled=yes\n",
		  NULL, NULL,
		  "@DIR@/accounts:1: quota: \"12X\" is not a size (bytes, or a number with suffix K, M, G or T)\n"
		  "@DIR@/accounts:2: quota_messages: \"1k\" is not a number\n"
		  "@DIR@/accounts:2: disabled: \"maybe\" is not yes or no\n"
		  "@DIR@/accounts:3: forward: bad address \"a@@x\"\n"
		  "@DIR@/accounts:4: forward: no address\n"
		  "@DIR@/accounts:5: forward given twice\n" },
		{ "aliases",
		  "alice@example.test:\n",
		  "sales@example.test alice\n"
		  "alice@example.test: bob\n"
		  "x@nowhere.test: alice\n"
		  "bad..name@example.test: alice\n"
		  "@example.test: alice\n"
		  "@EXAMPLE.test: alice\n"
		  "e@example.test:\n"
		  "t@example.test: alice, :spamtrap\n"
		  "u@example.test: :spamtrap bob\n"
		  "v@example.test: a..b, c@@d\n"
		  "  indented@example.test\n"
		  "w@example.test: alice\n"
		  "  bad..again\n"
		  "ok@example.test: alice\n"
		  "ok@example.test: bob\n"
		  "@: x\n",
		  NULL,
		  "@DIR@/aliases:1: expected \"alias@domain: target, ...\" (missing ':')\n"
		  "@DIR@/aliases:2: alice@example.test is already an account (accounts file line 1)\n"
		  "@DIR@/aliases:3: domain nowhere.test is not in local.domains\n"
		  "@DIR@/aliases:4: bad address \"bad..name@example.test\" (want local@domain, or @domain for a catch-all)\n"
		  "@DIR@/aliases:6: duplicate catch-all @example.test (first at line 5 of the aliases file)\n"
		  "@DIR@/aliases:7: alias e@example.test has no target\n"
		  "@DIR@/aliases:8: :spamtrap must be the only target\n"
		  "@DIR@/aliases:9: :spamtrap must be the only target\n"
		  "@DIR@/aliases:10: bad target \"a..b\" (want local@domain, or a local part of the same domain)\n"
		  "@DIR@/aliases:10: bad target \"c@@d\" (want local@domain, or a local part of the same domain)\n"
		  "@DIR@/aliases:13: bad target \"bad..again\" (want local@domain, or a local part of the same domain)\n"
		  "@DIR@/aliases:15: duplicate alias ok@example.test (first at line 14 of the aliases file)\n"
		  "@DIR@/aliases:16: bad address \"@\" (want local@domain, or @domain for a catch-all)\n" },
		{ "indent first", "", "  alice@example.test\n", NULL,
		  "@DIR@/aliases:1: indented line continues no alias (indent only continuation lines)\n" },
		{ "lists",
		  "alice@example.test:\n",
		  "sales@example.test: alice\n",
		  "members = alice\n"
		  "[staff@example.test\n"
		  "[sales@example.test]\n"
		  "members = x\n"
		  "[alice@example.test]\n"
		  "[l1@example.test]\n"
		  "members = a..b\n"
		  "senders = anyone, members\n"
		  "senders =\n"
		  "senders = @@x\n"
		  "disabled = perhaps\n"
		  "disabled = yes\n"
		  "colour = blue\n"
		  "just words\n"
		  "[l1@example.test]\n"
		  "[l2@example.test]\n"
		  "senders = members, members\n"
		  "[@example.test]\n"
		  "[l3@nowhere.test]\n"
		  "[l4@example.test]\n"
		  "senders = anyone\n"
		  "senders = bob\n",
		  "@DIR@/lists:1: members outside any list (add a [list@domain] line above it)\n"
		  "@DIR@/lists:2: section header without closing ']'\n"
		  "@DIR@/lists:3: duplicate alias sales@example.test (first at line 1 of the aliases file)\n"
		  "@DIR@/lists:5: alice@example.test is already an account (accounts file line 1)\n"
		  "@DIR@/lists:7: bad member \"a..b\" (want local@domain, or a local part of the same domain)\n"
		  "@DIR@/lists:9: senders: empty\n"
		  "@DIR@/lists:10: bad sender \"@@x\" (want local@domain, @domain)\n"
		  "@DIR@/lists:11: disabled: \"perhaps\" is not yes or no\n"
		  "@DIR@/lists:12: duplicate key disabled (already set at line 11)\n"
		  "@DIR@/lists:13: unknown key \"colour\" (members, senders, disabled)\n"
		  "@DIR@/lists:14: expected \"key = value\", \"[list@domain]\" or a comment\n"
		  "@DIR@/lists:8: senders: anyone cannot be combined with members or addresses\n"
		  "@DIR@/lists:15: duplicate list l1@example.test (first at line 6 of the lists file)\n"
		  "@DIR@/lists:17: senders: members given twice\n"
		  "@DIR@/lists:18: bad address \"@example.test\" (want local@domain)\n"
		  "@DIR@/lists:19: domain nowhere.test is not in local.domains\n"
		  "@DIR@/lists:21: senders: anyone cannot be combined with members or addresses\n" },
		{ "missing file", "", "", NULL, NULL },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct diag d;
		struct directory *dir;
		char *got;

		TEST_CASE(cases[i].name);
		diag_init(&d);
		dir = load(cases[i].accounts, cases[i].aliases, cases[i].lists, &d);
		CHECK(dir == NULL || cases[i].want == NULL);
		got = diag_text(&d);
		if (cases[i].want != NULL)
			CHECK_STR(got, cases[i].want);
		free(got);
		directory_free(&dir);
		diag_fini(&d);
	}

	TEST_CASE("unreadable aliases file");
	{
		struct diag d;
		struct directory *dir = directory_empty();
		char path[300];

		diag_init(&d);
		if (snprintf(path, sizeof(path), "%s/none", tmpdir) >= (int)sizeof(path))
			abort();
		CHECK_INT(directory_load_aliases(dir, path, &d), -1);
		CHECK_INT(directory_load_lists(dir, path, &d), -1);
		CHECK_INT(d.n, 2);
		CHECK(d.n == 2 && d.kinds[0] == DIAG_OPEN_FAILED);
		directory_free(&dir);
		diag_fini(&d);
	}
}

int
main(void)
{
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_resolve();
	test_ctx_and_limits();
	test_load_errors();
	for (const char *f = "accounts"; f != NULL;
	     f = strcmp(f, "accounts") == 0 ? "aliases" : strcmp(f, "aliases") == 0 ? "lists" : NULL) {
		char p[300];

		if (snprintf(p, sizeof(p), "%s/%s", tmpdir, f) < (int)sizeof(p))
			unlink(p);
	}
	rmdir(tmpdir);
	return TEST_DONE();
}
