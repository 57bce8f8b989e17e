/*
 * test_config.c - unit tests for config/config.c: every option type, every
 * error message (file and -o), listeners, accounts, paths, the snapshot
 * API (ref/unref, local domains, restart diff), the generated reference,
 * and the golden files of `postern check` (tests/unit/golden/check/, given
 * as argv[1]: each NAME.conf loaded from that folder must produce exactly
 * the lines of NAME.out, the folder's absolute path shown as @DIR@), and
 * that docs/configuration.md (argv[2]) is what config_markdown() prints.
 */
#include "config.h"
#include "directory_config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "testing.h"

static char tmpdir[] = "/tmp/test_config.XXXXXX";

/* The listener appended to cases marked BASE, so that they need none. */
#define BASE_LISTENER "\n[listen.base]\naddress = 127.0.0.1:2599\nrole = mx\n"

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
	static char path[512];
	FILE *f;

	if (snprintf(path, sizeof(path), "%s/%s", tmpdir, name) >= (int)sizeof(path))
		abort();
	f = fopen(path, "wb");
	if (f == NULL || fwrite(text, 1, len, f) != len || fclose(f) != 0)
		abort();
	return path;
}

/* Appends s to b with every occurrence of dir replaced by "@DIR@". */
static void
append_replaced(struct buf *b, const char *s, const char *dir)
{
	size_t dl = strlen(dir);
	const char *hit;

	while ((hit = strstr(s, dir)) != NULL) {
		CHECK(buf_append(b, s, (size_t)(hit - s)) == 0);
		CHECK(buf_append_str(b, "@DIR@") == 0);
		s = hit + dl;
	}
	CHECK(buf_append_str(b, s) == 0);
}

/* The diagnostics, one per line, dir shown as @DIR@. */
static char *
diag_text(const struct diag *d, const char *dir)
{
	struct buf b;
	char *out;

	buf_init(&b, 1 << 20);
	for (size_t i = 0; i < d->n; i++) {
		append_replaced(&b, d->msgs[i], dir);
		CHECK(buf_append_byte(&b, '\n') == 0);
	}
	out = xstrdup(buf_cstr(&b));
	buf_fini(&b);
	return out;
}

/* Writes text (plus the base listener if base) to t.conf and loads it. */
static struct config *
load_text(const char *text, int base, const char *const *ov, size_t nov, struct diag *d)
{
	char *full = xasprintf("%s%s", text, base ? BASE_LISTENER : "");
	const char *path = write_file("t.conf", full, strlen(full));
	struct config *cfg;

	free(full);
	cfg = directory_config_load(path, ov, nov, d);
	return cfg;
}

/* ---- error cases ------------------------------------------------------ */

struct err_case {
	const char *name;
	const char *text;
	int base;
	const char *ov[4];
	const char *want;	/* all diagnostics, "@DIR@/t.conf:N: ..." */
};

static const struct err_case err_cases[] = {
	{ "unknown section", "[foo]\nx = 1\n[server]\nhostname = a.test\n", 1, { NULL },
	  "@DIR@/t.conf:1: unknown section [foo]\n" },
	{ "bare listen", "[listen]\naddress = 127.0.0.1:25\n", 1, { NULL },
	  "@DIR@/t.conf:1: unknown section [listen] (listeners are [listen.NAME])\n" },
	{ "bad listener name", "[listen.a b]\n[listen.]\n", 1, { NULL },
	  "@DIR@/t.conf:1: bad listener name \"a b\" (letters, digits, '_' and '-', at most 64)\n"
	  "@DIR@/t.conf:2: unknown section [listen.]\n" },
	{ "header without ]", "[server\nhostname = x.test\n", 1, { NULL },
	  "@DIR@/t.conf:1: section header without closing ']'\n" },
	{ "junk line", "[server]\njust words\n", 1, { NULL },
	  "@DIR@/t.conf:2: expected \"key = value\", \"[section]\" or a comment\n" },
	{ "bad key", "[server]\nHost Name = x\n= y\n", 1, { NULL },
	  "@DIR@/t.conf:2: bad option name \"Host Name\"\n"
	  "@DIR@/t.conf:3: bad option name \"\"\n" },
	{ "outside section", "hostname = x.test\n", 1, { NULL },
	  "@DIR@/t.conf:1: option hostname outside any section (add a [section] line above it)\n" },
	{ "unknown option", "[server]\nnope = 1\n[limits]\nhostname = x\n", 1, { NULL },
	  "@DIR@/t.conf:2: unknown option server.nope\n"
	  "@DIR@/t.conf:4: unknown option limits.hostname\n" },
	{ "duplicate", "[server]\nspool = a\n\n[limits]\n[server]\nspool = b\nloops = x\nloops = 2\n", 1, { NULL },
	  "@DIR@/t.conf:6: duplicate option server.spool (already set at line 2)\n"
	  "@DIR@/t.conf:7: server.loops: \"x\" is not a number\n"
	  "@DIR@/t.conf:8: duplicate option server.loops (already set at line 7)\n" },
	{ "quotes", "[server]\nhostname = \"a.test\n user = \"x\" y\n", 1, { NULL },
	  "@DIR@/t.conf:2: missing closing quote\n"
	  "@DIR@/t.conf:3: text after the closing quote\n" },
	{ "uint", "[server]\nloops = -1\nworkers = 0\n[limits]\nrecipients = 100001\nerrors = 1e3\n"
	  "hops = 99999999999999999999999\nconnections = \n", 1, { NULL },
	  "@DIR@/t.conf:2: server.loops: \"-1\" is not a number\n"
	  "@DIR@/t.conf:3: server.workers: 0 is out of range (1..64 threads)\n"
	  "@DIR@/t.conf:5: limits.recipients: 100001 is out of range (1..100000 recipients)\n"
	  "@DIR@/t.conf:6: limits.errors: \"1e3\" is not a number\n"
	  "@DIR@/t.conf:7: limits.hops: \"99999999999999999999999\" is not a number\n"
	  "@DIR@/t.conf:8: limits.connections: \"\" is not a number\n" },
	{ "uint too big for unsigned", "[limits]\nconnections = 4294967296\n", 1, { NULL },
	  "@DIR@/t.conf:2: limits.connections: 4294967296 is out of range (1..1000000 sessions)\n" },
	{ "size", "[limits]\nmessage_size = 10X\ncommand_line = 1K\nline_buffer = 17M\n"
	  "message_size = 3G\n", 1, { NULL },
	  "@DIR@/t.conf:2: limits.message_size: \"10X\" is not a size (bytes, or a number with suffix K, M or G)\n"
	  "@DIR@/t.conf:4: limits.line_buffer: 17825792 is out of range (4096..16777216 bytes)\n"
	  "@DIR@/t.conf:5: duplicate option limits.message_size (already set at line 2)\n" },
	{ "size junk", "[limits]\nmessage_size = M\ncommand_line = 1 K\nline_buffer = 1KB\n", 1, { NULL },
	  "@DIR@/t.conf:2: limits.message_size: \"M\" is not a size (bytes, or a number with suffix K, M or G)\n"
	  "@DIR@/t.conf:3: limits.command_line: \"1 K\" is not a size (bytes, or a number with suffix K, M or G)\n"
	  "@DIR@/t.conf:4: limits.line_buffer: \"1KB\" is not a size (bytes, or a number with suffix K, M or G)\n" },
	{ "size overflow", "[limits]\nmessage_size = 99999999999999G\n", 1, { NULL },
	  "@DIR@/t.conf:2: limits.message_size: \"99999999999999G\" is not a size (bytes, or a number with suffix K, M or G)\n" },
	{ "duration", "[limits]\ncommand_timeout = 5d\ndata_timeout = 0\n[server]\nshutdown_grace = 2h\n", 1, { NULL },
	  "@DIR@/t.conf:2: limits.command_timeout: \"5d\" is not a duration (seconds, or a number with suffix s, m or h)\n"
	  "@DIR@/t.conf:3: limits.data_timeout: 0 is out of range (1..86400 seconds)\n"
	  "@DIR@/t.conf:5: server.shutdown_grace: 7200 is out of range (0..3600 seconds)\n" },
	{ "cidrs", "[server]\ntrusted_networks = 10.0.0.0/8, 10.0.0.0/33\n", 1, { NULL },
	  "@DIR@/t.conf:2: server.trusted_networks: \"10.0.0.0/33\" is not a network (e.g. 192.0.2.0/24, 2001:db8::/32, 192.0.2.7)\n" },
	{ "domains", "[local]\ndomains = example.test, exa mple.test\n", 1, { NULL },
	  "@DIR@/t.conf:2: local.domains: \"exa mple.test\" is not a domain name\n" },
	{ "domains 2", "[local]\ndomains = -bad.test\n", 1, { NULL },
	  "@DIR@/t.conf:2: local.domains: \"-bad.test\" is not a domain name\n" },
	{ "bare_lf", "[smtp]\nbare_lf = Reject\n", 1, { NULL },
	  "@DIR@/t.conf:2: smtp.bare_lf: \"Reject\" is not normalize or reject\n" },
	{ "log.level", "[log]\nlevel = loud\n", 1, { NULL },
	  "@DIR@/t.conf:2: log.level: \"loud\" is not one of debug, info, notice, warning, error, crit\n" },
	{ "log.level case", "[log]\nlevel = INFO\n", 1, { NULL },
	  "@DIR@/t.conf:2: log.level: \"INFO\" is not one of debug, info, notice, warning, error, crit\n" },
	{ "log.target", "[log]\ntarget = \"\"\n", 1, { NULL },
	  "@DIR@/t.conf:2: log.target: \"\" is empty (use stderr, syslog or a file path)\n" },
	{ "hostname", "[server]\nhostname = mx_1.example\n", 1, { NULL },
	  "@DIR@/t.conf:2: server.hostname: \"mx_1.example\" is not a host name\n" },
	{ "listener address", "[listen.mx]\naddress = localhost:25\nrole = mx\n", 0, { NULL },
	  "@DIR@/t.conf:2: listen.mx.address: \"localhost:25\" is not host:port (e.g. 127.0.0.1:25, [::1]:25, *:25)\n" },
	{ "listener port", "[listen.mx]\naddress = 127.0.0.1:0\nrole = mx\n", 0, { NULL },
	  "@DIR@/t.conf:2: listen.mx.address: \"127.0.0.1:0\" is not host:port (e.g. 127.0.0.1:25, [::1]:25, *:25)\n" },
	{ "listener role", "[listen.sub]\naddress = 127.0.0.1:587\nrole = lmtp\n", 1, { NULL },
	  "@DIR@/t.conf:3: listen.sub.role: role lmtp is not supported (mx, submission, submissions, pop3, pop3s, metrics)\n" },
	{ "listener require_tls", "[listen.sub]\naddress = 127.0.0.1:587\nrole = submission\nrequire_tls = maybe\n", 1, { NULL },
	  "@DIR@/t.conf:4: listen.sub.require_tls: maybe is not yes or no\n" },
	{ "listener unknown key", "[listen.mx]\naddress = 127.0.0.1:25\nrole = mx\ntls = yes\n", 0, { NULL },
	  "@DIR@/t.conf:4: unknown option listen.mx.tls\n" },
	{ "listener duplicate keys", "[listen.mx]\naddress = 127.0.0.1:25\nrole = mx\naddress = 127.0.0.1:26\n"
	  "role = mx\n", 0, { NULL },
	  "@DIR@/t.conf:4: duplicate option listen.mx.address (already set at line 2)\n"
	  "@DIR@/t.conf:5: duplicate option listen.mx.role (already set at line 3)\n" },
	{ "listener reopened", "[listen.mx]\naddress = 127.0.0.1:25\n[server]\n[listen.mx]\nrole = mx\naddress = 127.0.0.1:25\n", 0, { NULL },
	  "@DIR@/t.conf:6: duplicate option listen.mx.address (already set at line 2)\n" },
	{ "listener missing keys", "[listen.a]\n[listen.b]\naddress = [::1]:25\n[listen.c]\nrole = mx\n", 0, { NULL },
	  "@DIR@/t.conf:1: listen.a: missing address (host:port)\n"
	  "@DIR@/t.conf:1: listen.a: missing role (mx, submission, submissions, pop3, pop3s, metrics)\n"
	  "@DIR@/t.conf:2: listen.b: missing role (mx, submission, submissions, pop3, pop3s, metrics)\n"
	  "@DIR@/t.conf:4: listen.c: missing address (host:port)\n" },
	{ "bad address is not also missing", "[listen.a]\naddress = nowhere\nrole = mx\n", 0, { NULL },
	  "@DIR@/t.conf:2: listen.a.address: \"nowhere\" is not host:port (e.g. 127.0.0.1:25, [::1]:25, *:25)\n" },
	{ "listener same address", "[listen.a]\naddress = [::]:25\nrole = mx\n[listen.b]\naddress = *:25\nrole = mx\n"
	  "[listen.c]\naddress = 0.0.0.0:25\nrole = mx\n", 0, { NULL },
	  "@DIR@/t.conf:5: listen.b.address: *:25 is already used by listen.a\n" },
	{ "no listener", "[server]\nhostname = a.test\n", 0, { NULL },
	  "@DIR@/t.conf: no listener: add a [listen.NAME] section with address and role\n" },
	{ "empty file", "", 0, { NULL },
	  "@DIR@/t.conf: no listener: add a [listen.NAME] section with address and role\n" },
	{ "accounts missing", "[local]\naccounts = nothere\n", 1, { NULL },
	  "@DIR@/nothere: cannot open: No such file or directory\n" },
	{ "several at once", "[server]\nloops = x\n[nope]\nfoo = 1\n[limits]\nrecipients = 0\n", 0,
	  { "limits.hops=0", "server.nope=1", NULL },
	  "@DIR@/t.conf:2: server.loops: \"x\" is not a number\n"
	  "@DIR@/t.conf:3: unknown section [nope]\n"
	  "@DIR@/t.conf:6: limits.recipients: 0 is out of range (1..100000 recipients)\n"
	  "-o:1: limits.hops: 0 is out of range (1..1000 Received fields)\n"
	  "-o:2: unknown option server.nope\n"
	  "@DIR@/t.conf: no listener: add a [listen.NAME] section with address and role\n" },
	/* overrides */
	{ "-o syntax", "", 1, { "nothing", "noeq.x", "=1", ".x=1" },
	  "-o:1: expected section.key=value\n"
	  "-o:2: expected section.key=value\n"
	  "-o:3: expected section.key=value\n"
	  "-o:4: expected section.key=value\n" },
	{ "-o unknown", "", 1, { "foo.bar=1", "server.nope=1", "server.Bad=1", "listen.a b.role=mx" },
	  "-o:1: unknown section [foo]\n"
	  "-o:2: unknown option server.nope\n"
	  "-o:3: bad option name \"Bad\"\n"
	  "-o:4: bad listener name \"a b\" (letters, digits, '_' and '-', at most 64)\n" },
	{ "-o values", "", 1, { "server.loops=lots", "log.level=\"chatty\"", "limits.message_size=1", "x.=1" },
	  "-o:1: server.loops: \"lots\" is not a number\n"
	  "-o:2: log.level: \"chatty\" is not one of debug, info, notice, warning, error, crit\n"
	  "-o:3: limits.message_size: 1 is out of range (1024..2147483648 bytes)\n"
	  "-o:4: bad option name \"\"\n" },
	{ "-o listener half", "", 1, { "listen.new.address=127.0.0.1:2600" },
	  "-o:1: listen.new: missing role (mx, submission, submissions, pop3, pop3s, metrics)\n" },
	{ "-o listener role", "", 1, { "listen.new.address=127.0.0.1:2600", "listen.new.role=imap" },
	  "-o:2: listen.new.role: role imap is not supported (mx, submission, submissions, pop3, pop3s, metrics)\n" },
	{ "-o listener clash", "", 1, { "listen.new.address=127.0.0.1:2599", "listen.new.role=mx", "listen.new.foo=1" },
	  "-o:3: unknown option listen.new.foo\n"
	  "-o:1: listen.new.address: 127.0.0.1:2599 is already used by listen.base\n" },
	{ "-o quote", "", 1, { "server.hostname=\"a.test", NULL },
	  "-o:1: missing closing quote\n" },
};

static void
test_errors(void)
{
	for (size_t i = 0; i < ARRAY_LEN(err_cases); i++) {
		const struct err_case *c = &err_cases[i];
		size_t nov = 0;
		struct config *cfg;
		struct diag d;
		char *got;

		TEST_CASE(c->name);
		while (nov < ARRAY_LEN(c->ov) && c->ov[nov] != NULL)
			nov++;
		diag_init(&d);
		cfg = load_text(c->text, c->base, c->ov, nov, &d);
		CHECK(cfg == NULL);
		got = diag_text(&d, tmpdir);
		CHECK_STR(got, c->want);
		free(got);
		config_unref(&cfg);
		diag_fini(&d);
	}
}

/* Errors that need more than a short string. */
static void
test_error_bounds(void)
{
	struct buf b;
	struct diag d;
	struct config *cfg;
	const char *path;
	char *got;

	TEST_CASE("long line and NUL");
	buf_init(&b, 4u << 20);
	CHECK(buf_append_str(&b, "[server]\nuser = ") == 0);
	pad(&b, 'u', 4100);
	CHECK(buf_append_str(&b, "\nhostname = a") == 0);
	CHECK(buf_append(&b, "\0", 1) == 0);
	CHECK(buf_append_str(&b, ".test\r\n" BASE_LISTENER) == 0);
	path = write_file("t.conf", (const char *)b.data, b.len);
	diag_init(&d);
	cfg = directory_config_load(path, NULL, 0, &d);
	CHECK(cfg == NULL);
	got = diag_text(&d, tmpdir);
	CHECK_STR(got, "@DIR@/t.conf:2: line too long (more than 4096 bytes)\n"
		       "@DIR@/t.conf:3: NUL byte in line\n");
	free(got);
	diag_fini(&d);

	TEST_CASE("file too large");
	buf_reset(&b);
	CHECK(buf_append_str(&b, "# padding\n") == 0);
	pad(&b, '#', 1024 * 1024);
	path = write_file("t.conf", (const char *)b.data, b.len);
	diag_init(&d);
	cfg = directory_config_load(path, NULL, 0, &d);
	CHECK(cfg == NULL);
	got = diag_text(&d, tmpdir);
	CHECK_STR(got, "@DIR@/t.conf: file too large (more than 1048576 bytes)\n");
	free(got);
	diag_fini(&d);

	TEST_CASE("path too long");
	buf_reset(&b);
	CHECK(buf_append_str(&b, "[server]\nspool = ") == 0);
	pad(&b, 'p', 4080);
	CHECK(buf_append_str(&b, BASE_LISTENER) == 0);
	path = write_file("t.conf", (const char *)b.data, b.len);
	diag_init(&d);
	cfg = directory_config_load(path, NULL, 0, &d);
	CHECK(cfg == NULL);
	got = diag_text(&d, tmpdir);
	CHECK_STR(got, "@DIR@/t.conf:2: server.spool: path too long (more than 4096 bytes)\n");
	free(got);
	diag_fini(&d);

	TEST_CASE("too many listeners");
	buf_reset(&b);
	for (int i = 0; i < 66; i++)
		CHECK(buf_appendf(&b, "[listen.l%d]\naddress = 127.0.0.1:%d\nrole = mx\n", i, 3000 + i) == 0);
	path = write_file("t.conf", (const char *)b.data, b.len);
	diag_init(&d);
	cfg = directory_config_load(path, NULL, 0, &d);
	CHECK(cfg == NULL);
	got = diag_text(&d, tmpdir);
	CHECK_STR(got, "@DIR@/t.conf:193: too many listeners (at most 64)\n"
		       "@DIR@/t.conf:196: too many listeners (at most 64)\n");
	free(got);
	diag_fini(&d);

	TEST_CASE("missing file");
	diag_init(&d);
	{
		char *p = xasprintf("%s/none.conf", tmpdir);

		cfg = directory_config_load(p, NULL, 0, &d);
		CHECK(cfg == NULL);
		got = diag_text(&d, tmpdir);
		CHECK_STR(got, "@DIR@/none.conf: cannot open: No such file or directory\n");
		free(got);
		free(p);
	}
	diag_fini(&d);

	TEST_CASE("override too long");
	buf_reset(&b);
	CHECK(buf_append_str(&b, "server.user=") == 0);
	pad(&b, 'u', 4100);
	{
		const char *ov[] = { buf_cstr(&b) };

		diag_init(&d);
		cfg = load_text("", 1, ov, 1, &d);
		CHECK(cfg == NULL);
		got = diag_text(&d, tmpdir);
		CHECK_STR(got, "-o:1: override too long (more than 4096 bytes)\n");
		free(got);
		diag_fini(&d);
	}

	TEST_CASE("accounts errors come with their own file and line");
	{
		static const char acc[] = "ok@example.test:\nbroken\nok@EXAMPLE.test:\n";

		path = write_file("acc", acc, strlen(acc));
	}
	diag_init(&d);
	cfg = load_text("[local]\naccounts = acc\n[server]\nloops = 999\n", 1, NULL, 0, &d);
	CHECK(cfg == NULL);
	got = diag_text(&d, tmpdir);
	CHECK_STR(got, "@DIR@/t.conf:4: server.loops: 999 is out of range (0..256 threads)\n"
		       "@DIR@/acc:2: missing ':' after the account name\n"
		       "@DIR@/acc:3: duplicate account ok@example.test (first at line 1)\n");
	free(got);
	diag_fini(&d);

	TEST_CASE("NULL diags");
	cfg = load_text("[nope]\n", 1, NULL, 0, NULL);
	CHECK(cfg == NULL);
	buf_fini(&b);
}

/* ---- good configurations ---------------------------------------------- */

static void
test_defaults(void)
{
	struct diag d;
	struct config *cfg;
	char cwd[PATH_MAX], host[256], *want;

	TEST_CASE("built-in defaults");
	diag_init(&d);
	cfg = directory_config_load(NULL, NULL, 0, &d);
	CHECK(cfg != NULL);
	CHECK_INT(d.n, 0);
	if (cfg == NULL)
		return;
	CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
	CHECK_INT(cfg->refs, 1);
	CHECK_INT(cfg->generation, 1);
	CHECK(cfg->path == NULL);
	CHECK_STR(cfg->dir, cwd);
	CHECK_STR(cfg->server_hostname, "");
	CHECK(gethostname(host, sizeof(host)) == 0);
	CHECK_STR(cfg->hostname, host);
	want = xasprintf("%s/spool", strcmp(cwd, "/") == 0 ? "" : cwd);
	CHECK_STR(cfg->server_spool, want);
	free(want);
	CHECK_STR(cfg->server_user, "");
	CHECK_STR(cfg->server_pid_file, "");
	CHECK_INT(cfg->server_loops, 0);
	CHECK_INT(cfg->server_workers, 2);
	CHECK_INT(cfg->server_shutdown_grace, 30);
	CHECK_INT(cfg->server_trusted_networks.n, 2);
	CHECK_INT(cfg->limits_message_size, 26214400);
	CHECK_INT(cfg->limits_recipients, 1000);
	CHECK_INT(cfg->limits_command_timeout, 300);
	CHECK_INT(cfg->limits_data_timeout, 600);
	CHECK_INT(cfg->limits_errors, 10);
	CHECK_INT(cfg->limits_hops, 100);
	CHECK_INT(cfg->limits_connections, 10000);
	CHECK_INT(cfg->limits_connections_per_ip, 50);
	CHECK_INT(cfg->limits_command_line, 2048);
	CHECK_INT(cfg->limits_line_length, 998);
	CHECK_INT(cfg->limits_line_buffer, 65536);
	CHECK_STR(cfg->smtp_bare_lf, "normalize");
	CHECK_INT(cfg->local_domains.n, 0);
	CHECK_STR(cfg->local_accounts, "");
	CHECK_STR(cfg->log_target, "stderr");
	CHECK_STR(cfg->log_level, "info");
	CHECK_INT(cfg->nlisteners, 0);
	CHECK(cfg->accounts != NULL);
	CHECK_INT(directory_count(cfg->accounts), 0);
	CHECK_INT(config_is_local_domain(cfg, "example.test", 12), 0);
	config_unref(&cfg);
	CHECK(cfg == NULL);
	config_unref(&cfg);	/* NULL is fine */
	diag_fini(&d);

	TEST_CASE("defaults with overrides");
	diag_init(&d);
	{
		const char *ov[] = { "listen.x.address = [::1]:2525", "listen.x.role=mx",
				     "server.spool=/var/spool/postern/" };

		cfg = directory_config_load(NULL, ov, 3, &d);
		CHECK(cfg != NULL);
		CHECK_INT(d.n, 0);
		if (cfg != NULL) {
			CHECK_INT(cfg->nlisteners, 1);
			CHECK_STR(cfg->listeners[0].name, "x");
			CHECK_STR(cfg->listeners[0].address, "[::1]:2525");
			CHECK_INT(cfg->listeners[0].addr.ss_family, AF_INET6);
			CHECK_STR(cfg->server_spool, "/var/spool/postern");
		}
		config_unref(&cfg);
	}
	diag_fini(&d);
}

static void
test_good(void)
{
	struct diag d;
	struct config *cfg, *ref;
	const char *text =
		"# comment\n"
		"; another comment\n"
		"  [ server ]  \r\n"
		"hostname=MX.Example.Test\n"
		"spool = ./q/../spool/\n"
		"state = /abs//state/.\n"
		"mail_root = \"\"\n"
		"pid_file = \"run/p.pid\"\n"
		"user = \" postern \"\n"
		"trusted_networks = 10.0.0.0/8 192.168.1.7, 2001:db8::/32\n"
		"loops = 256\n"
		"workers = 64\n"
		"shutdown_grace = 1m\n"
		"[limits]\n"
		"message_size = 2G\n"
		"recipients = 100000\n"
		"command_timeout = 1h\n"
		"data_timeout = 90s\n"
		"errors = 0\n"
		"hops = 1\n"
		"connections = 1000000\n"
		"connections_per_ip = 0\n"
		"command_line = 512\n"
		"line_length = 998\n"
		"line_buffer = 16M\n"
		"[smtp]\n"
		"bare_lf = reject\n"
		"[local]\n"
		"domains = Example.TEST, b.example, a.example., example.test,,\n"
		"accounts = acc\n"
		"[log]\n"
		"target = logs/postern.log\n"
		"level = debug\n"
		"[listen.mx]\n"
		"address = 127.0.0.1:2525\n"
		"role = mx\n"
		"[listen.all]\n"
		"role = \"mx\"\n"
		"address = *:25\n";
	const char *ov[] = { "limits.recipients=50", "listen.mx.address=[::1]:2526",
			     "server.user = \\\"x\\\"" };
	struct sockaddr_in sin;
	char *want;

	TEST_CASE("every type");
	write_file("acc", "alice@example.test:\nbob@b.example:\n",
		   strlen("alice@example.test:\nbob@b.example:\n"));
	diag_init(&d);
	cfg = load_text(text, 0, ov, 3, &d);
	CHECK(cfg != NULL);
	CHECK_INT(d.n, 0);
	diag_print(&d, stderr);
	if (cfg == NULL) {
		diag_fini(&d);
		return;
	}
	want = xasprintf("%s/t.conf", tmpdir);
	CHECK_STR(cfg->path, want);
	free(want);
	CHECK_STR(cfg->dir, tmpdir);
	CHECK_STR(cfg->server_hostname, "MX.Example.Test");
	CHECK_STR(cfg->hostname, "MX.Example.Test");
	want = xasprintf("%s/spool", tmpdir);
	CHECK_STR(cfg->server_spool, want);
	free(want);
	CHECK_STR(cfg->server_state, "/abs/state");
	CHECK_STR(cfg->server_mail_root, "");
	want = xasprintf("%s/run/p.pid", tmpdir);
	CHECK_STR(cfg->server_pid_file, want);
	free(want);
	CHECK_STR(cfg->server_user, "\\\"x\\\"");	/* unquoted value: kept as written */
	CHECK_INT(cfg->server_trusted_networks.n, 3);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(0x0a010203);
	CHECK_INT(cidr_list_match(&cfg->server_trusted_networks, (struct sockaddr *)&sin), 1);
	sin.sin_addr.s_addr = htonl(0xc0a80107);
	CHECK_INT(cidr_list_match(&cfg->server_trusted_networks, (struct sockaddr *)&sin), 1);
	sin.sin_addr.s_addr = htonl(0xc0a80108);
	CHECK_INT(cidr_list_match(&cfg->server_trusted_networks, (struct sockaddr *)&sin), 0);
	CHECK_INT(cfg->server_loops, 256);
	CHECK_INT(cfg->server_workers, 64);
	CHECK_INT(cfg->server_shutdown_grace, 60);
	CHECK(cfg->limits_message_size == 2147483648ull);
	CHECK_INT(cfg->limits_recipients, 50);		/* the override won */
	CHECK_INT(cfg->limits_command_timeout, 3600);
	CHECK_INT(cfg->limits_data_timeout, 90);
	CHECK_INT(cfg->limits_errors, 0);
	CHECK_INT(cfg->limits_hops, 1);
	CHECK_INT(cfg->limits_connections, 1000000);
	CHECK_INT(cfg->limits_connections_per_ip, 0);
	CHECK_INT(cfg->limits_command_line, 512);
	CHECK_INT(cfg->limits_line_length, 998);
	CHECK_INT(cfg->limits_line_buffer, 16777216);
	CHECK_STR(cfg->smtp_bare_lf, "reject");
	CHECK_INT(cfg->local_domains.n, 3);		/* sorted, lower case, no repeats */
	if (cfg->local_domains.n == 3) {
		CHECK_STR(cfg->local_domains.v[0], "a.example");
		CHECK_STR(cfg->local_domains.v[1], "b.example");
		CHECK_STR(cfg->local_domains.v[2], "example.test");
	}
	CHECK_INT(config_is_local_domain(cfg, "example.test", 12), 1);
	CHECK_INT(config_is_local_domain(cfg, "EXAMPLE.Test", 12), 1);
	CHECK_INT(config_is_local_domain(cfg, "example.test.", 13), 1);
	CHECK_INT(config_is_local_domain(cfg, "example.testx", 12), 1);	/* len counts */
	CHECK_INT(config_is_local_domain(cfg, "example.tes", 11), 0);
	CHECK_INT(config_is_local_domain(cfg, "xample.test", 11), 0);
	CHECK_INT(config_is_local_domain(cfg, "a.example", 9), 1);
	CHECK_INT(config_is_local_domain(cfg, "c.example", 9), 0);
	CHECK_INT(config_is_local_domain(cfg, "", 0), 0);
	CHECK_INT(config_is_local_domain(cfg, ".", 1), 0);
	want = xasprintf("%s/acc", tmpdir);
	CHECK_STR(cfg->local_accounts, want);
	free(want);
	CHECK_INT(directory_count(cfg->accounts), 2);
	CHECK(directory_find(cfg->accounts, "Alice", 5, "example.test", 12) != NULL);
	want = xasprintf("%s/logs/postern.log", tmpdir);
	CHECK_STR(cfg->log_target, want);
	free(want);
	CHECK_STR(cfg->log_level, "debug");
	CHECK_INT(cfg->nlisteners, 2);
	if (cfg->nlisteners == 2) {
		CHECK_STR(cfg->listeners[0].name, "mx");
		CHECK_STR(cfg->listeners[0].address, "[::1]:2526");	/* override */
		CHECK_INT(cfg->listeners[0].role, CONFIG_ROLE_MX);
		CHECK_INT(cfg->listeners[0].addr.ss_family, AF_INET6);
		CHECK_INT(cfg->listeners[0].addrlen, sizeof(struct sockaddr_in6));
		CHECK_STR(cfg->listeners[1].name, "all");
		CHECK_STR(cfg->listeners[1].address, "*:25");
		CHECK_INT(cfg->listeners[1].addr.ss_family, AF_INET6);
	}

	TEST_CASE("refcount");
	ref = config_ref(cfg);
	CHECK(ref == cfg);
	CHECK_INT(cfg->refs, 2);
	config_unref(&ref);
	CHECK(ref == NULL);
	CHECK_INT(cfg->refs, 1);
	CHECK(config_ref(NULL) == NULL);
	config_unref(&cfg);
	diag_fini(&d);

	TEST_CASE("log targets kept");
	{
		static const char *const targets[] = { "stderr", "syslog", "/var/log/p.log" };

		for (size_t i = 0; i < ARRAY_LEN(targets); i++) {
			char *o = xasprintf("log.target=%s", targets[i]);
			const char *ov1[] = { o };

			diag_init(&d);
			cfg = load_text("", 1, ov1, 1, &d);
			CHECK(cfg != NULL);
			if (cfg != NULL)
				CHECK_STR(cfg->log_target, targets[i]);
			config_unref(&cfg);
			diag_fini(&d);
			free(o);
		}
	}

	TEST_CASE("relative config path");
	{
		char cwd[PATH_MAX];

		CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
		CHECK(chdir(tmpdir) == 0);
		write_file("rel.conf", "[server]\nspool = s\n" BASE_LISTENER,
			   strlen("[server]\nspool = s\n" BASE_LISTENER));
		diag_init(&d);
		cfg = directory_config_load("rel.conf", NULL, 0, &d);
		CHECK(cfg != NULL);
		if (cfg != NULL) {
			CHECK_STR(cfg->path, "rel.conf");
			CHECK_STR(cfg->dir, tmpdir);
			want = xasprintf("%s/s", tmpdir);
			CHECK_STR(cfg->server_spool, want);
			free(want);
		}
		config_unref(&cfg);
		diag_fini(&d);
		CHECK(chdir(cwd) == 0);
	}
}

/* ---- restart diff ----------------------------------------------------- */

struct names {
	char text[512];
};

static void
collect(const char *option, void *arg)
{
	struct names *n = arg;
	size_t len = strlen(n->text);

	if (snprintf(n->text + len, sizeof(n->text) - len, "%s%s", len ? " " : "", option) >=
	    (int)(sizeof(n->text) - len))
		abort();
}

static void
test_diff(void)
{
	static const struct {
		const char *name;
		const char *ov[4];
		const char *want;
	} cases[] = {
		{ "same", { NULL }, "" },
		{ "reloadable only", { "limits.recipients=5", "server.hostname=b.test", "log.level=debug",
				       "server.trusted_networks=10.0.0.0/8" }, "" },
		{ "restart options", { "server.spool=other", "server.loops=3", "log.target=syslog",
				       "server.shutdown_grace=31" }, "server.spool server.loops log.target" },
		{ "more restart options", { "server.workers=1", "server.user=nobody", "server.pid_file=p",
					    "server.state=st" }, "server.state server.user server.pid_file server.workers" },
		{ "listener moved", { "listen.base.address=127.0.0.1:2600" }, "listen" },
		{ "listener added", { "listen.n.address=127.0.0.1:2600", "listen.n.role=mx" }, "listen" },
	};
	struct config *base;
	struct diag d;

	diag_init(&d);
	base = load_text("", 1, NULL, 0, &d);
	CHECK(base != NULL);
	for (size_t i = 0; base != NULL && i < ARRAY_LEN(cases); i++) {
		struct names got = { "" };
		struct config *other;
		size_t nov = 0;

		TEST_CASE(cases[i].name);
		while (nov < ARRAY_LEN(cases[i].ov) && cases[i].ov[nov] != NULL)
			nov++;
		other = load_text("", 1, cases[i].ov, nov, &d);
		CHECK(other != NULL);
		CHECK_INT(d.n, 0);
		if (other == NULL)
			continue;
		config_diff_restart(base, other, collect, &got);
		CHECK_STR(got.text, cases[i].want);
		got.text[0] = '\0';
		config_diff_restart(other, base, collect, &got);
		CHECK_STR(got.text, cases[i].want);
		config_unref(&other);
	}
	config_unref(&base);
	diag_fini(&d);
}

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	struct buf b;
	char chunk[4096];
	size_t n;
	char *out;

	if (f == NULL)
		return NULL;
	buf_init(&b, 1 << 20);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		CHECK(buf_append(&b, chunk, n) == 0);
	fclose(f);
	out = xstrdup(buf_cstr(&b));
	buf_fini(&b);
	return out;
}

/* ---- generated documentation ------------------------------------------ */

static void
test_markdown(void)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	static const char *const must[] = {
		"### server.hostname\n", "### limits.message_size\n", "### log.level\n",
		"| default | `26214400` (25M) |\n", "| range | 1024 to 2147483648 (2G) |\n",
		"| reload | no: takes effect at restart |\n", "## [listen.NAME]\n",
		"### listen.NAME.address\n", "## The accounts file\n", "| unit | seconds |\n",
		"| default | `300` (5m) |\n", "| type | networks |\n",
	};

	TEST_CASE("markdown");
	CHECK(f != NULL);
	if (f == NULL)
		return;
	config_markdown(f);
	CHECK(fclose(f) == 0);
	for (size_t i = 0; i < ARRAY_LEN(must); i++) {
		TEST_CASE(must[i]);
		CHECK(strstr(text, must[i]) != NULL);
	}
	free(text);
}

/* docs/configuration.md must be exactly what config_markdown() prints. */
static void
test_docs_in_sync(const char *path)
{
	char *text = NULL, *file;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	TEST_CASE("docs/configuration.md in sync");
	CHECK(f != NULL);
	if (f == NULL)
		return;
	config_markdown(f);
	CHECK(fclose(f) == 0);
	file = slurp(path);
	CHECK(file != NULL);
	if (file != NULL && strcmp(file, text) != 0) {
		testing_failed++;
		fprintf(stderr, "%s differs from config_markdown(): regenerate it with "
			"postern config-doc > docs/configuration.md\n", path);
	}
	free(file);
	free(text);
}

/* ---- golden files ------------------------------------------------------ */

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
test_golden(const char *dir)
{
	char cwd[PATH_MAX], *real;
	char *names[256];
	size_t nnames = 0;
	DIR *dh;
	struct dirent *de;

	TEST_CASE("golden dir");
	real = realpath(dir, NULL);
	CHECK(real != NULL);
	CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
	if (real == NULL || chdir(real) != 0) {
		free(real);
		return;
	}
	dh = opendir(".");
	CHECK(dh != NULL);
	while (dh != NULL && (de = readdir(dh)) != NULL) {
		size_t l = strlen(de->d_name);

		if (l > 5 && strcmp(de->d_name + l - 5, ".conf") == 0 && nnames < ARRAY_LEN(names))
			names[nnames++] = xstrdup(de->d_name);
	}
	if (dh != NULL)
		closedir(dh);
	qsort(names, nnames, sizeof(*names), cmp_names);
	CHECK(nnames >= 10);
	for (size_t i = 0; i < nnames; i++) {
		char *outname = xasprintf("%.*s.out", (int)(strlen(names[i]) - 5), names[i]);
		char *want = slurp(outname), *got;
		struct diag d;
		struct config *cfg;

		TEST_CASE(names[i]);
		CHECK(want != NULL);
		diag_init(&d);
		cfg = directory_config_load(names[i], NULL, 0, &d);
		got = diag_text(&d, real);
		if (want != NULL && strcmp(want, "") == 0)
			CHECK(cfg != NULL);	/* an empty .out: the file is good */
		else
			CHECK(cfg == NULL);
		CHECK_STR(got, want ? want : "");
		config_unref(&cfg);
		diag_fini(&d);
		free(got);
		free(want);
		free(outname);
		free(names[i]);
	}
	CHECK(chdir(cwd) == 0);
	free(real);
}

int
main(int argc, char **argv)
{
	char cmd[128];

	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_errors();
	test_error_bounds();
	test_defaults();
	test_good();
	test_diff();
	test_markdown();
	if (argc > 1)
		test_golden(argv[1]);
	else
		printf("no golden folder given: golden files not checked\n");
	if (argc > 2)
		test_docs_in_sync(argv[2]);
	else
		printf("no docs file given: docs/configuration.md not checked\n");
	if (snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir) < (int)sizeof(cmd) &&
	    system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	return TEST_DONE();
}
