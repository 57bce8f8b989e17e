/*
 * main.c - the `postern` command: subcommand dispatch.
 *
 *   serve -c FILE [-o section.key=value ...]   run the daemon (foreground)
 *   check -c FILE [-o ...] [--route DOMAIN]   validate; FILE:LINE errors, exit 78;
 *                                             --route: the route mail to DOMAIN takes
 *   explain ID                                one catalog entry
 *   catalog [--ids]                           the whole catalog (docs/events.md)
 *   config-doc                                docs/configuration.md
 *   make-cert -c FILE [-o ...]                 self-signed TLS pair where missing
 *   passwd [--scheme yescrypt|bcrypt|sha512-crypt]  hash a password read from stdin
 *   dns [-c FILE] [-o ...] TYPE NAME           one DNS lookup (server_cmd_dns.c)
 *   queue [-c FILE] COMMAND [--json]          the queue (server/queue_cmd.c)
 *   spf [-c FILE] --ip IP --helo H --from A    one SPF evaluation (server_cmd_spf.c)
 *   simulate [-c FILE] --client IP --from A --to A ...  the policy chain for one
 *                                             transaction, no mail sent (server_cmd_simulate.c)
 *   version
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "catalog.h"
#include "config.h"
#include "server_config.h"
#include "buf.h"
#include "directory.h"
#include "net_tls.h"
#include "server.h"
#include "queue_cmd.h"

#define EX_USAGE 64
#define EX_CONFIG 78
#define MAX_OVERRIDES 256

static void
usage(FILE *out)
{
	fprintf(out,
		"usage: postern serve -c FILE [-o section.key=value ...]\n"
		"       postern check -c FILE [-o section.key=value ...] [--route DOMAIN]\n"
		"       postern explain ID\n"
		"       postern catalog [--ids]\n"
		"       postern config-doc\n"
		"       postern make-cert -c FILE [-o section.key=value ...]\n"
		"       postern passwd [--scheme yescrypt|bcrypt|sha512-crypt]\n"
		"       postern dns [-c FILE] [-o section.key=value ...] a|aaaa|mx|txt|ptr NAME\n"
		"       postern queue [-c FILE] list|show ID|flush [ID] [--domain D]|hold ID|release ID|delete ID|bounce ID|status [--json]\n"
		"       postern spf [-c FILE] [-o section.key=value ...] --ip IP --helo NAME --from ADDR\n"
		"       postern simulate [-c FILE] [-o section.key=value ...] --client IP [--helo NAME] --from ADDR\n"
		"                        --to ADDR [--to ADDR ...] [--message FILE] [--listener NAME] [--auth USER] [--tls] [--json]\n"
		"       postern version\n");
}

/* Parses -c FILE and -o k=v for serve and check (and --route DOMAIN for
 * check, when route is not NULL). */
static int
parse_config_args(int argc, char **argv, const char **path, const char **overrides,
		  size_t *noverrides, const char **route)
{
	*path = NULL;
	*noverrides = 0;
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			*path = argv[++i];
		} else if (route != NULL && strcmp(argv[i], "--route") == 0 && i + 1 < argc) {
			*route = argv[++i];
		} else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
			if (*noverrides >= MAX_OVERRIDES) {
				fprintf(stderr, "postern: too many -o options (at most %d)\n",
					MAX_OVERRIDES);
				return -1;
			}
			overrides[(*noverrides)++] = argv[++i];
		} else {
			usage(stderr);
			return -1;
		}
	}
	if (*path == NULL) {
		fprintf(stderr, "postern: -c FILE is required\n");
		return -1;
	}
	return 0;
}

static int
cmd_check(const char *path, const char *const *overrides, size_t n, const char *route)
{
	struct diag d;
	struct config *cfg;

	diag_init(&d);
	cfg = server_config_load(path, overrides, n, &d);
	if (cfg == NULL) {
		diag_print(&d, stderr);
		diag_fini(&d);
		return EX_CONFIG;
	}
	diag_fini(&d);
	char names[256], why[512];
	int rc = 0;
	if (server_tls_check(cfg, names, sizeof(names), why, sizeof(why)) < 0) {
		fprintf(stderr, "%s: listeners needing TLS (%s) have no usable certificate: %s"
			" [STARTUP-LISTENER-NEEDS-TLS]\n", path, names, why);
		rc = EX_CONFIG;
	}
	if (route != NULL && config_route_describe(cfg, route, stdout) < 0) {
		fprintf(stderr, "postern: --route %s: not a domain name\n", route);
		rc = EX_USAGE;
	}
	config_unref(&cfg);
	return rc;
}

/* Makes the folder that will hold path (one level: etc/tls/). */
static void
make_parent(const char *path)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');

	if (slash == NULL || (size_t)(slash - path) >= sizeof(dir) || slash == path)
		return;
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		/* the write below reports the problem with its path */
	}
}

/* Writes a self-signed certificate and key where tls.cert_file and
 * tls.key_file name files that do not exist yet (`make run` does this). */
static int
cmd_make_cert(const char *path, const char *const *overrides, size_t n)
{
	struct diag d;
	struct config *cfg;
	char err[512];
	int rc = 0;

	diag_init(&d);
	cfg = server_config_load(path, overrides, n, &d);
	if (cfg == NULL) {
		diag_print(&d, stderr);
		diag_fini(&d);
		return EX_CONFIG;
	}
	diag_fini(&d);
	if (cfg->tls_cert_file[0] == '\0' || cfg->tls_key_file[0] == '\0') {
		fprintf(stderr, "%s: tls.cert_file and tls.key_file are not set\n", path);
		rc = EX_CONFIG;
	} else if (access(cfg->tls_cert_file, F_OK) == 0 || access(cfg->tls_key_file, F_OK) == 0) {
		printf("%s and %s: kept\n", cfg->tls_cert_file, cfg->tls_key_file);
	} else {
		make_parent(cfg->tls_cert_file);
		make_parent(cfg->tls_key_file);
		if (tls_make_self_signed(cfg->hostname, cfg->tls_cert_file, cfg->tls_key_file,
					 err, sizeof(err)) < 0) {
			fprintf(stderr, "postern: %s\n", err);
			rc = 1;
		} else {
			printf("%s and %s: self-signed for %s\n", cfg->tls_cert_file,
			       cfg->tls_key_file, cfg->hostname);
		}
	}
	config_unref(&cfg);
	return rc;
}

static int
cmd_explain(int argc, char **argv)
{
	enum cond_id id;

	if (argc != 3) {
		usage(stderr);
		return EX_USAGE;
	}
	if (catalog_find(argv[2], &id) < 0) {
		fprintf(stderr, "postern: no catalog entry %s (postern catalog lists them)\n", argv[2]);
		return 1;
	}
	catalog_explain(stdout, id, config_option_known);
	return 0;
}

static int
cmd_catalog(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[2], "--ids") == 0) {
		for (int i = 0; i < COND__COUNT; i++) {
			const struct cond *c = catalog_get((enum cond_id)i);
			printf("%s\t%s\n", c->id, c->untested);
		}
		return 0;
	}
	if (argc != 2) {
		usage(stderr);
		return EX_USAGE;
	}
	catalog_markdown(stdout);
	return 0;
}

/* Reads one line from stdin, without echo when it is a terminal. */
static int
read_password(char *out, size_t size)
{
	struct termios old, quiet;
	int tty = isatty(0);

	if (tty) {
		fprintf(stderr, "Password: ");
		if (tcgetattr(0, &old) == 0) {
			quiet = old;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			(void)tcsetattr(0, TCSAFLUSH, &quiet);
		}
	}
	char *r = fgets(out, (int)size, stdin);
	if (tty) {
		(void)tcsetattr(0, TCSAFLUSH, &old);
		fprintf(stderr, "\n");
	}
	if (r == NULL)
		return -1;
	size_t n = strcspn(out, "\r\n");
	out[n] = '\0';
	return n > 0 ? 0 : -1;
}

static int
cmd_passwd(int argc, char **argv)
{
	const char *scheme = "yescrypt";
	char pw[1024];

	if (argc == 4 && strcmp(argv[2], "--scheme") == 0)
		scheme = argv[3];
	else if (argc != 2) {
		usage(stderr);
		return EX_USAGE;
	}
	if (read_password(pw, sizeof(pw)) < 0) {
		fprintf(stderr, "postern: no password given on standard input\n");
		return 1;
	}
	char *hash = directory_hash_password(pw, scheme);
	explicit_bzero(pw, sizeof(pw));
	if (hash == NULL) {
		fprintf(stderr, "postern: cannot hash with scheme %s\n", scheme);
		return 1;
	}
	printf("%s\n", hash);
	free(hash);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *overrides[MAX_OVERRIDES];
	const char *path, *route = NULL;
	size_t n;

	if (argc < 2) {
		usage(stderr);
		return EX_USAGE;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "serve") == 0 || strcmp(cmd, "check") == 0 ||
	    strcmp(cmd, "make-cert") == 0) {
		if (parse_config_args(argc, argv, &path, overrides, &n,
				      strcmp(cmd, "check") == 0 ? &route : NULL) < 0)
			return EX_USAGE;
		if (cmd[0] == 'm')
			return cmd_make_cert(path, overrides, n);
		return cmd[0] == 's' ? server_run(path, overrides, n)
				     : cmd_check(path, overrides, n, route);
	}
	if (strcmp(cmd, "explain") == 0)
		return cmd_explain(argc, argv);
	if (strcmp(cmd, "catalog") == 0)
		return cmd_catalog(argc, argv);
	if (strcmp(cmd, "config-doc") == 0) {
		config_markdown(stdout);
		return 0;
	}
	if (strcmp(cmd, "passwd") == 0)
		return cmd_passwd(argc, argv);
	if (strcmp(cmd, "dns") == 0)
		return server_cmd_dns(argc, argv);
	if (strcmp(cmd, "queue") == 0)
		return queue_cmd_main(argc, argv);
	if (strcmp(cmd, "spf") == 0)
		return server_cmd_spf(argc, argv);
	if (strcmp(cmd, "simulate") == 0)
		return server_cmd_simulate(argc, argv);
	if (strcmp(cmd, "version") == 0) {
		printf("postern %s\n", POSTERN_VERSION);
		return 0;
	}
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		usage(stdout);
		return 0;
	}
	usage(stderr);
	return EX_USAGE;
}
