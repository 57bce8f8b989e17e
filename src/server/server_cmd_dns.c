/*
 * server_cmd_dns.c - `postern dns [-c FILE] [-o k=v ...] TYPE NAME`: one
 * lookup through the daemon's resolver (net/dns.h) on the dns.* options,
 * printed one line per record. For operators, and for the tests of the
 * resolver against a real DNS server.
 *
 * Output: `status=ok ttl=300` (then ` err="..."` for tempfail, ` ad=1` if
 * the AD bit was set, ` truncated=1` if records past the bounds were
 * dropped), then one line per record: `a 127.0.0.1 ttl=300`,
 * `aaaa ::1 ttl=300`, `mx 10 mx.example.test ttl=300` (a null MX is
 * `mx 0 .`), `txt "..." ttl=300` (quotes and backslashes escaped, other
 * bytes outside printable ASCII as \DDD), `ptr host.example.test ttl=300`.
 * Exit 0 ok, 2 nxdomain or nodata, 75 tempfail, 64 usage, 78
 * configuration error.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "config.h"
#include "dns.h"
#include "loop.h"
#include "server.h"
#include "server_config.h"

#define EX_USAGE 64
#define EX_TEMPFAIL 75
#define EX_CONFIG 78
#define MAX_OVERRIDES 64

struct dns_cmd {
	struct loop *loop;
	enum dns_type type;
	int rc;
};

static void
print_txt(const char *s, size_t n)
{
	putchar('"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c >= 0x7F)
			printf("\\%03u", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void
on_answer(void *arg, const struct dns_answer *ans)
{
	struct dns_cmd *cmd = arg;

	printf("status=%s ttl=%u", dns_status_name(ans->status), ans->ttl);
	if (ans->status == DNS_TEMPFAIL && ans->err != NULL)
		printf(" err=\"%s\"", ans->err);
	if (ans->ad)
		printf(" ad=1");
	if (ans->truncated)
		printf(" truncated=1");
	putchar('\n');
	for (size_t i = 0; i < ans->n; i++) {
		const struct dns_rr *rr = &ans->rr[i];
		char ip[INET6_ADDRSTRLEN];

		if (rr->family != 0) {
			if (inet_ntop(rr->family, rr->addr, ip, sizeof(ip)) == NULL)
				snprintf(ip, sizeof(ip), "?");
			printf("%s %s", rr->family == AF_INET ? "a" : "aaaa", ip);
		} else if (rr->txt != NULL) {
			printf("txt ");
			print_txt(rr->txt, rr->txt_len);
		} else if (cmd->type == DNS_T_MX) {
			printf("mx %u %s", rr->pref, rr->name[0] != '\0' ? rr->name : ".");
		} else {
			printf("ptr %s", rr->name);
		}
		printf(" ttl=%u\n", rr->ttl);
	}
	switch (ans->status) {
	case DNS_OK: cmd->rc = 0; break;
	case DNS_NXDOMAIN:
	case DNS_NODATA: cmd->rc = 2; break;
	case DNS_TEMPFAIL: cmd->rc = EX_TEMPFAIL; break;
	}
	loop_stop(cmd->loop);
}

int
server_cmd_dns(int argc, char **argv)
{
	const char *overrides[MAX_OVERRIDES], *path = NULL, *args[2];
	size_t nov = 0, nargs = 0;
	enum dns_type type;

	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			path = argv[++i];
		} else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc && nov < MAX_OVERRIDES) {
			overrides[nov++] = argv[++i];
		} else if (nargs < 2 && argv[i][0] != '-') {
			args[nargs++] = argv[i];
		} else {
			nargs = 3;
			break;
		}
	}
	if (nargs != 2 || dns_type_parse(args[0], &type) < 0) {
		fprintf(stderr, "usage: postern dns [-c FILE] [-o section.key=value ...]"
			" a|aaaa|mx|txt|ptr NAME\n");
		return EX_USAGE;
	}
	struct config *cfg = server_config_load_print(path, overrides, nov);
	if (cfg == NULL)
		return EX_CONFIG;

	/* ptr NAME may be an address */
	char rev[128];
	const char *name = args[1];
	uint8_t addr[16];
	if (type == DNS_T_PTR) {
		if (inet_pton(AF_INET, name, addr) == 1) {
			if (dns_reverse_name(AF_INET, addr, rev, sizeof(rev)) == 0)
				name = rev;
		} else if (inet_pton(AF_INET6, name, addr) == 1) {
			if (dns_reverse_name(AF_INET6, addr, rev, sizeof(rev)) == 0)
				name = rev;
		}
	}
	struct dns_cmd cmd = { loop_new(), type, EX_TEMPFAIL };
	struct dns_cache *cache = dns_cache_new(cfg->dns_cache_size);
	struct dns_resolver *r = cmd.loop != NULL ? dns_resolver_new(cmd.loop, cfg, cache) : NULL;
	if (r == NULL) {
		fprintf(stderr, "postern: cannot start the DNS resolver\n");
	} else {
		dns_query(r, name, type, on_answer, &cmd);
		if (loop_run(cmd.loop) < 0)
			cmd.rc = EX_TEMPFAIL;
		dns_resolver_free(&r);
	}
	dns_cache_free(&cache);
	loop_free(&cmd.loop);
	config_unref(&cfg);
	return cmd.rc;
}
