/*
 * server_cmd_simulate.c - `postern simulate`: one SMTP transaction run
 * through the configured policy chain without sending mail, as Exim's
 * -bh (docs/simulate.md):
 *
 *   postern simulate [-c FILE] [-o k=v ...] --client IP [--helo NAME]
 *       --from ADDR --to ADDR [--to ADDR ...] [--message FILE]
 *       [--listener NAME] [--auth USER] [--tls] [--json]
 *
 * Owns the command line, the process's resolver (dns.*), worker pool and
 * state store (server.state or state.redis, opened as the daemon opens
 * it; the checks write nothing in a simulation), and the output: a table,
 * or one JSON object (schema postern-simulate/1). The transaction itself
 * is smtp/smtp_simulate.c's.
 *
 * Exit: 0 accepted (or discarded), 1 rejected (a 5xx anywhere), 75
 * tempfailed (a 4xx, no 5xx), 64 usage, 66 message file unreadable, 78
 * configuration error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "cidr.h"
#include "config.h"
#include "dns.h"
#include "log.h"
#include "loop.h"
#include "policy.h"
#include "queue_json.h"
#include "regdomain.h"
#include "server.h"
#include "server_config.h"
#include "smtp_simulate.h"
#include "state.h"
#include "uri_scan.h"
#include "workpool.h"

#define EX_REJECTED 1
#define EX_USAGE 64
#define EX_NOINPUT 66
#define EX_TEMPFAIL 75
#define EX_CONFIG 78
#define MAX_OVERRIDES 64
#define MAX_RCPTS 100
#define SIM_REPLY_MAX 1024
#define SIM_JSON_MAX (4u * 1024u * 1024u)

/* One check's answer, kept until its stage ends. */
struct sim_check {
	const char *check;		/* static */
	enum policy_action action;
	enum cond_id cond;
	int score;
	uint64_t ms;
	char *reply;			/* owned: for a refusal, else NULL */
	char *tag;			/* owned: the header field, or NULL */
};

struct sim_out {
	const struct config *cfg;
	int json;
	struct sim_check *checks;	/* of the stage running */
	size_t nchecks;
	struct jw w;			/* --json: the "stages" array */
	struct buf jbuf;
};

static void
usage(void)
{
	fprintf(stderr, "usage: postern simulate [-c FILE] [-o section.key=value ...] --client IP"
		" [--helo NAME] --from ADDR --to ADDR [--to ADDR ...] [--message FILE]"
		" [--listener NAME] [--auth USER] [--tls] [--json]\n");
}

/* The reply for cond with v's params; "" when it cannot be rendered. */
static char *
reply_of(const struct config *cfg, enum cond_id cond, const struct policy_verdict *v)
{
	struct kv kvs[POLICY_PARAMS_MAX];
	size_t n = policy_verdict_kvs(v, kvs);
	struct buf r;
	char *out;

	buf_init(&r, SIM_REPLY_MAX);
	if (catalog_reply(&r, cond, cfg->hostname, kvs, n, 0) < 0)
		buf_reset(&r);
	out = xstrdup(buf_cstr(&r));
	buf_fini(&r);
	return out;
}

static void
on_check(void *arg, enum policy_stage stage, const char *check, const struct policy_verdict *v,
	 uint64_t ms)
{
	struct sim_out *o = arg;
	struct sim_check *c;
	const char *tag = policy_verdict_header(v);

	(void)stage;
	o->checks = xrealloc(o->checks, (o->nchecks + 1) * sizeof(*o->checks));
	c = &o->checks[o->nchecks++];
	c->check = check;
	c->action = v->action;
	c->cond = v->cond;
	c->score = v->score;
	c->ms = ms;
	c->reply = (v->action == POLICY_TEMPFAIL || v->action == POLICY_REJECT) &&
		   v->cond < COND__COUNT ? reply_of(o->cfg, v->cond, v) : NULL;
	c->tag = tag != NULL ? xstrdup(tag) : NULL;
}

static const char *
cond_id_or_null(enum cond_id c)
{
	return c < COND__COUNT ? catalog_get(c)->id : NULL;
}

static void
stage_json(struct sim_out *o, const struct smtp_sim_stage *st)
{
	struct jw *w = &o->w;
	const struct cond *c = catalog_get(st->cond);

	jw_open(w, '{');
	jw_kstr(w, "stage", policy_stage_name(st->stage));
	jw_kstr(w, "rcpt", st->rcpt);
	jw_kstr(w, "result", policy_action_name(st->action));
	jw_kbool(w, "refused", st->refused);
	jw_kstr(w, "decided_by", st->decided_by);
	jw_kstr(w, "id", c->id);
	jw_kint(w, "code", c->code);
	jw_kstr(w, "status", c->esc[0] != '\0' ? c->esc : NULL);
	jw_kstr(w, "reply", st->reply);
	jw_kint(w, "ms", (int64_t)st->ms);
	jw_key(w, "checks");
	jw_open(w, '[');
	for (size_t i = 0; i < o->nchecks; i++) {
		const struct sim_check *k = &o->checks[i];

		jw_open(w, '{');
		jw_kstr(w, "check", k->check);
		jw_kstr(w, "verdict", policy_action_name(k->action));
		jw_kstr(w, "id", cond_id_or_null(k->cond));
		jw_kstr(w, "reply", k->reply);
		jw_kint(w, "ms", (int64_t)k->ms);
		jw_kint(w, "score", k->score);
		jw_kstr(w, "tag", k->tag);
		jw_close(w, '}');
	}
	jw_close(w, ']');
	jw_close(w, '}');
}

static void
stage_table(struct sim_out *o, const struct smtp_sim_stage *st)
{
	char name[300];

	if (st->rcpt != NULL)
		snprintf(name, sizeof(name), "rcpt <%s>", st->rcpt);
	else
		snprintf(name, sizeof(name), "%s", policy_stage_name(st->stage));
	if (strlen(name) > 24 && o->nchecks > 0) {
		printf("%s\n", name);	/* a long recipient on a line of its own */
		name[0] = '\0';
	}
	for (size_t i = 0; i < o->nchecks; i++) {
		const struct sim_check *k = &o->checks[i];
		const char *id = cond_id_or_null(k->cond);

		printf("%-24s %-16s %-9s %-30s %6" PRIu64 " ms", i == 0 ? name : "", k->check,
		       policy_action_name(k->action), id != NULL ? id : "-", k->ms);
		if (k->score != 0)
			printf("  score %+d", k->score);
		putchar('\n');
		if (k->tag != NULL)
			printf("%-24s %-16s tag: %s\n", "", "", k->tag);
	}
	printf("%-24s => %s\n", o->nchecks == 0 ? name : "", st->reply);
}

static void
on_stage(void *arg, const struct smtp_sim_stage *st)
{
	struct sim_out *o = arg;

	if (o->json)
		stage_json(o, st);
	else
		stage_table(o, st);
	for (size_t i = 0; i < o->nchecks; i++) {
		free(o->checks[i].reply);
		free(o->checks[i].tag);
	}
	o->nchecks = 0;
}

/* An address as a peer (port 25, as a client's source port is no
 * check's business), its text as a session shows it, and its HELO
 * address literal. 0 or -1. */
static int
client_parse(const char *s, struct sockaddr_storage *ss, char *text, size_t textsize,
	     char *literal, size_t litsize)
{
	char hostport[INET6_ADDRSTRLEN + 8];
	socklen_t len;
	int v6 = strchr(s, ':') != NULL;
	int n = snprintf(hostport, sizeof(hostport), v6 ? "[%s]:25" : "%s:25", s);

	if (n < 0 || (size_t)n >= sizeof(hostport) || strcmp(s, "*") == 0 ||
	    sockaddr_parse_hostport(hostport, ss, &len) < 0 ||
	    sockaddr_format((const struct sockaddr *)ss, text, textsize, 0) < 0)
		return -1;
	n = snprintf(literal, litsize, strchr(text, ':') != NULL ? "[IPv6:%s]" : "[%s]", text);
	return n < 0 || (size_t)n >= litsize ? -1 : 0;
}

static int
role_smtp(enum config_role r)
{
	return r == CONFIG_ROLE_MX || r == CONFIG_ROLE_SUBMISSION || r == CONFIG_ROLE_SUBMISSIONS;
}

/* The listener whose chain applies: the one named, else the first mx
 * listener, else the first SMTP one, else none ([policy]). -1 when the
 * name is not an SMTP listener. */
static int
listener_pick(const struct config *cfg, const char *name, const struct config_listener **out)
{
	*out = NULL;
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct config_listener *l = &cfg->listeners[i];

		if (name != NULL) {
			if (strcmp(l->name, name) == 0 && role_smtp(l->role)) {
				*out = l;
				return 0;
			}
		} else if (l->role == CONFIG_ROLE_MX) {
			*out = l;
			return 0;
		} else if (*out == NULL && role_smtp(l->role)) {
			*out = l;
		}
	}
	return name != NULL ? -1 : 0;
}

/* A path given with its angle brackets loses them. */
static const char *
unbracket(char *a)
{
	size_t n = strlen(a);

	if (n >= 2 && a[0] == '<' && a[n - 1] == '>') {
		a[n - 1] = '\0';
		return a + 1;
	}
	return a;
}

struct sim_args {
	const char *path, *client, *helo, *from, *message, *listener, *auth;
	const char *overrides[MAX_OVERRIDES];
	size_t nov;
	const char *to[MAX_RCPTS];
	size_t nto;
	int json, tls;
};

/* 0, or -1 after saying why on stderr. */
static int
args_parse(int argc, char **argv, struct sim_args *a)
{
	memset(a, 0, sizeof(*a));
	for (int i = 2; i < argc; i++) {
		const char *o = argv[i];
		int more = i + 1 < argc;

		if (strcmp(o, "--json") == 0) {
			a->json = 1;
		} else if (strcmp(o, "--tls") == 0) {
			a->tls = 1;
		} else if (!more) {
			fprintf(stderr, "postern simulate: %s: unknown option or missing value\n", o);
			return -1;
		} else if (strcmp(o, "-c") == 0) {
			a->path = argv[++i];
		} else if (strcmp(o, "-o") == 0) {
			if (a->nov >= MAX_OVERRIDES) {
				fprintf(stderr, "postern simulate: too many -o (at most %d)\n",
					MAX_OVERRIDES);
				return -1;
			}
			a->overrides[a->nov++] = argv[++i];
		} else if (strcmp(o, "--client") == 0) {
			a->client = argv[++i];
		} else if (strcmp(o, "--helo") == 0) {
			a->helo = argv[++i];
		} else if (strcmp(o, "--from") == 0) {
			a->from = unbracket(argv[++i]);
		} else if (strcmp(o, "--to") == 0) {
			if (a->nto >= MAX_RCPTS) {
				fprintf(stderr, "postern simulate: too many --to (at most %d)\n",
					MAX_RCPTS);
				return -1;
			}
			a->to[a->nto++] = unbracket(argv[++i]);
		} else if (strcmp(o, "--message") == 0) {
			a->message = argv[++i];
		} else if (strcmp(o, "--listener") == 0) {
			a->listener = argv[++i];
		} else if (strcmp(o, "--auth") == 0) {
			a->auth = argv[++i];
		} else {
			fprintf(stderr, "postern simulate: %s: unknown option\n", o);
			return -1;
		}
	}
	if (a->client == NULL || a->from == NULL || a->nto == 0) {
		fprintf(stderr, "postern simulate: --client, --from and --to are required\n");
		return -1;
	}
	int long_arg = strlen(a->from) > SMTP_SIM_ARG_MAX ||
		       (a->helo != NULL && strlen(a->helo) > SMTP_SIM_ARG_MAX);
	for (size_t i = 0; i < a->nto; i++)
		long_arg |= strlen(a->to[i]) > SMTP_SIM_ARG_MAX;
	if (long_arg) {
		fprintf(stderr, "postern simulate: --helo, --from and --to take at most %d octets\n",
			SMTP_SIM_ARG_MAX);
		return -1;
	}
	return 0;
}

/* The shared state store as the daemon opens it. A SQLite file that does
 * not exist yet is not made: the checks then see an empty store. */
static struct state *
state_for(const struct config *cfg, struct workpool *wp)
{
	struct state_params sp = { .backend = cfg->state_backend, .dir = cfg->server_state,
				   .redis = cfg->state_redis,
				   .timeout_ms = cfg->state_redis_timeout, .workers = 1 };
	char file[4096];
	struct stat st;
	const char *err = "";
	struct state *s;

	if (strcmp(cfg->state_backend, "redis") != 0 &&
	    (snprintf(file, sizeof(file), "%s/%s", cfg->server_state, KV_FILE) >= (int)sizeof(file) ||
	     stat(file, &st) < 0)) {
		fprintf(stderr, "postern simulate: no state store at %s: the checks see an empty one\n",
			file);
		sp.dir = NULL;
	}
	if (sp.dir == NULL) {
		/* the store in memory is what was asked for: no error line */
		enum log_sev was = LOG_SEV_CRIT;

		for (int v = LOG_SEV_CRIT; v >= LOG_SEV_DEBUG; v--)
			if (log_enabled((enum log_sev)v))
				was = (enum log_sev)v;
		log_set_min(LOG_SEV_CRIT);
		s = state_open(&sp, wp, &err);
		log_set_min(was);
	} else {
		s = state_open(&sp, wp, &err);
	}
	if (s == NULL)
		fprintf(stderr, "postern simulate: the state store cannot be opened: %s\n", err);
	return s;
}

/* The object's head, up to the opened "stages" array. */
static void
json_head(struct jw *w, const struct smtp_sim *sim)
{
	jw_open(w, '{');
	jw_kstr(w, "schema", "postern-simulate/1");
	jw_kstr(w, "client", sim->client);
	jw_kstr(w, "helo", sim->helo);
	jw_kstr(w, "from", sim->from);
	jw_key(w, "to");
	jw_open(w, '[');
	for (size_t i = 0; i < sim->nto; i++)
		jw_str(w, sim->to[i]);
	jw_close(w, ']');
	jw_kstr(w, "listener", sim->lst != NULL ? sim->lst->name : NULL);
	jw_kbool(w, "tls", sim->tls);
	jw_kstr(w, "auth", sim->auth_user[0] != '\0' ? sim->auth_user : NULL);
	jw_key(w, "stages");
	jw_open(w, '[');
}

static const char *const result_names[] = { "accepted", "discarded", "tempfailed", "rejected" };

static int
simulate_run(const struct sim_args *a, struct config *cfg, const struct smtp_sim *tmpl,
	     const struct policy_content *content)
{
	struct sim_out o = { .cfg = cfg, .json = a->json };
	struct smtp_sim sim = *tmpl;
	struct loop *loop = loop_new();
	struct workpool *wp = workpool_new();
	struct dns_cache *cache = dns_cache_new(cfg->dns_cache_size);
	struct dns_resolver *r = loop != NULL ? dns_resolver_new(loop, cfg, cache) : NULL;
	struct state *st = r != NULL ? state_for(cfg, wp) : NULL;
	int rc = EX_CONFIG;

	if (r == NULL)
		fprintf(stderr, "postern simulate: cannot start the DNS resolver\n");
	if (st != NULL) {
		enum smtp_sim_result res;

		policy_state_set(st);
		sim.loop = loop;
		sim.dns = r;
		sim.content = content;
		sim.on_check = on_check;
		sim.on_stage = on_stage;
		sim.arg = &o;
		if (a->json) {
			buf_init(&o.jbuf, SIM_JSON_MAX);
			jw_init(&o.w, &o.jbuf);
			json_head(&o.w, &sim);
		} else {
			printf("%-24s %-16s %-9s %-30s %9s\n", "stage", "check", "verdict", "id", "time");
		}
		res = smtp_simulate(&sim);
		rc = res == SMTP_SIM_REJECTED ? EX_REJECTED : res == SMTP_SIM_TEMPFAILED ? EX_TEMPFAIL : 0;
		if (a->json) {
			jw_close(&o.w, ']');
			jw_kstr(&o.w, "result", result_names[res]);
			jw_kint(&o.w, "exit", rc);
			jw_close(&o.w, '}');
			if (o.w.err)
				fprintf(stderr, "postern simulate: the JSON output is too large\n");
			else
				printf("%.*s\n", (int)o.jbuf.len, o.jbuf.data);
			buf_fini(&o.jbuf);
		} else {
			printf("result=%s exit=%d\n", result_names[res], rc);
		}
		policy_state_set(NULL);
		state_close(&st);
	}
	free(o.checks);
	workpool_free(&wp);
	dns_resolver_free(&r);
	dns_cache_free(&cache);
	loop_free(&loop);
	return rc;
}

int
server_cmd_simulate(int argc, char **argv)
{
	struct sim_args a;
	struct sockaddr_storage peer;
	char client[INET6_ADDRSTRLEN], literal[INET6_ADDRSTRLEN + 8];
	struct policy_content content;
	int rc;

	if (args_parse(argc, argv, &a) < 0) {
		usage();
		return EX_USAGE;
	}
	if (client_parse(a.client, &peer, client, sizeof(client), literal, sizeof(literal)) < 0) {
		fprintf(stderr, "postern simulate: --client %s: not an IPv4 or IPv6 address\n",
			a.client);
		return EX_USAGE;
	}
	struct config *cfg = server_config_load_print(a.path, a.overrides, a.nov);
	if (cfg == NULL)
		return EX_CONFIG;
	struct smtp_sim sim = {
		.cfg = cfg, .peer = &peer, .client = client,
		.helo = a.helo != NULL ? a.helo : literal, .from = a.from, .to = a.to,
		.nto = a.nto, .auth_user = a.auth != NULL ? a.auth : "", .tls = a.tls,
	};
	if (listener_pick(cfg, a.listener, &sim.lst) < 0) {
		fprintf(stderr, "postern simulate: --listener %s: no SMTP listener of that name\n",
			a.listener);
		config_unref(&cfg);
		return EX_USAGE;
	}
	if (sim.lst != NULL && sim.lst->role == CONFIG_ROLE_SUBMISSIONS)
		sim.tls = 1;	/* implicit TLS */
	memset(&content, 0, sizeof(content));
	struct uri_scan *uris = NULL;
	if (a.message != NULL) {
		FILE *f = fopen(a.message, "rb");
		int err = errno;

		if (f == NULL || smtp_sim_scan_file(f, cfg, &content, &uris) < 0) {
			err = f != NULL ? errno : err;
			fprintf(stderr, "postern simulate: --message %s: %s\n", a.message,
				strerror(err));
			if (f != NULL)
				fclose(f);
			uri_scan_free(&uris);
			config_unref(&cfg);
			return EX_NOINPUT;
		}
		fclose(f);
	}
	(void)regdomain_init();
	rc = simulate_run(&a, cfg, &sim, a.message != NULL ? &content : NULL);
	uri_scan_free(&uris);
	config_unref(&cfg);
	return rc;
}
