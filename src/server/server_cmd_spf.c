/*
 * server_cmd_spf.c - `postern spf [-c FILE] [-o k=v ...] --ip IP --helo
 * NAME --from ADDR [--identity helo]`: one SPF evaluation (policy/spf.h)
 * through the daemon's resolver on the dns.* options, for operators and
 * for the RFC 7208 suite (tests/e2e/test_spf_suite.py).
 *
 * Output: `result=pass identity=mailfrom domain=... reason="..."`, then
 * `explanation="..."` when a fail carried an exp= text. Exit 0 for any
 * result, 64 usage, 78 configuration error.
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
#include "spf.h"

#define EX_USAGE 64
#define EX_CONFIG 78
#define MAX_OVERRIDES 64

struct spf_cmd {
	struct loop *loop;
	int done;
};

static void
on_result(void *arg, const struct spf_outcome *o)
{
	struct spf_cmd *cmd = arg;

	printf("result=%s identity=%s domain=%s reason=\"%s\"\n", spf_result_name(o->result),
	       o->identity, o->domain, o->reason);
	if (o->explanation[0] != '\0')
		printf("explanation=\"%s\"\n", o->explanation);
	cmd->done = 1;
	if (cmd->loop != NULL)
		loop_stop(cmd->loop);
}

/* An address; v4-mapped IPv6 becomes IPv4. 0 or -1. */
static int
parse_ip(const char *s, struct spf_request *req)
{
	memset(req->addr, 0, sizeof(req->addr));
	if (inet_pton(AF_INET, s, req->addr) == 1) {
		req->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, req->addr) != 1)
		return -1;
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF };
	if (memcmp(req->addr, mapped, 12) == 0) {
		memmove(req->addr, req->addr + 12, 4);
		memset(req->addr + 4, 0, 12);
		req->family = AF_INET;
	} else {
		req->family = AF_INET6;
	}
	return 0;
}

int
server_cmd_spf(int argc, char **argv)
{
	const char *overrides[MAX_OVERRIDES], *path = NULL, *ip = NULL;
	struct spf_request req;
	size_t nov = 0;
	int bad = 0;

	memset(&req, 0, sizeof(req));
	req.sender = NULL;
	req.helo = "";
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			path = argv[++i];
		else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc && nov < MAX_OVERRIDES)
			overrides[nov++] = argv[++i];
		else if (strcmp(argv[i], "--ip") == 0 && i + 1 < argc)
			ip = argv[++i];
		else if (strcmp(argv[i], "--helo") == 0 && i + 1 < argc)
			req.helo = argv[++i];
		else if (strcmp(argv[i], "--from") == 0 && i + 1 < argc)
			req.sender = argv[++i];
		else if (strcmp(argv[i], "--identity") == 0 && i + 1 < argc)
			req.helo_identity = strcmp(argv[++i], "helo") == 0;
		else
			bad = 1;
	}
	if (bad || ip == NULL || (req.sender == NULL && !req.helo_identity) ||
	    parse_ip(ip, &req) < 0) {
		fprintf(stderr, "usage: postern spf [-c FILE] [-o section.key=value ...] --ip IP"
			" --helo NAME --from ADDR [--identity mailfrom|helo]\n");
		return EX_USAGE;
	}
	struct config *cfg = server_config_load_print(path, overrides, nov);
	if (cfg == NULL)
		return EX_CONFIG;
	req.receiver = cfg->hostname;

	struct spf_cmd cmd = { loop_new(), 0 };
	struct dns_cache *cache = dns_cache_new(cfg->dns_cache_size);
	struct dns_resolver *r = cmd.loop != NULL ? dns_resolver_new(cmd.loop, cfg, cache) : NULL;
	int rc = 0;
	if (r == NULL) {
		fprintf(stderr, "postern: cannot start the DNS resolver\n");
		rc = EX_CONFIG;
	} else {
		struct spf_eval *e = spf_start(r, &req, on_result, &cmd);
		if (!cmd.done && loop_run(cmd.loop) < 0 && !cmd.done) {
			spf_cancel(e);
			fprintf(stderr, "postern: the loop failed\n");
			rc = EX_CONFIG;
		}
		dns_resolver_free(&r);
	}
	dns_cache_free(&cache);
	loop_free(&cmd.loop);
	config_unref(&cfg);
	return rc;
}
