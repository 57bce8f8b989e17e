/*
 * catalog.c - the condition table and everything rendered from it:
 * replies, log events, `postern explain` and docs/events.md.
 *
 * Owns the const rows of catalog.def and their shown IDs (NAME with '_'
 * turned into '-', built once), and the per-condition counts (sharded,
 * lock-free). Nothing here does I/O except writing the reference text to
 * a FILE the caller gives.
 */
#include "catalog.h"

#include <pthread.h>
#include <string.h>
#include <strings.h>

#include "metrics.h"

#define ID_MAX 40

struct row {
	const char *name;
	enum log_sev sev;
	int code;
	const char *esc, *params, *reply, *logtext, *desc, *action, *untested;
};

#define DEBUG LOG_SEV_DEBUG
#define INFO LOG_SEV_INFO
#define NOTICE LOG_SEV_NOTICE
#define WARNING LOG_SEV_WARNING
#define ERROR LOG_SEV_ERROR
#define CRIT LOG_SEV_CRIT
static const struct row rows[COND__COUNT] = {
#define COND(name, sev, code, esc, params, reply, logtext, desc, action, untested) \
	{ #name, sev, code, esc, params, reply, logtext, desc, action, untested },
#include "catalog.def"
#undef COND
};
#undef DEBUG
#undef INFO
#undef NOTICE
#undef WARNING
#undef ERROR
#undef CRIT

static char ids[COND__COUNT][ID_MAX];
static struct cond conds[COND__COUNT];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void
catalog_build(void)
{
	for (size_t i = 0; i < COND__COUNT; i++) {
		const char *n = rows[i].name;
		size_t j;

		for (j = 0; n[j] != '\0' && j + 1 < ID_MAX; j++)
			ids[i][j] = n[j] == '_' ? '-' : n[j];
		ids[i][j] = '\0';
		conds[i] = (struct cond){
			.id = ids[i], .sev = rows[i].sev, .code = rows[i].code,
			.esc = rows[i].esc, .params = rows[i].params,
			.reply = rows[i].reply, .logtext = rows[i].logtext,
			.description = rows[i].desc, .action = rows[i].action,
			.untested = rows[i].untested,
		};
	}
}

const struct cond *
catalog_get(enum cond_id id)
{
	pthread_once(&once, catalog_build);
	ASSERT((unsigned)id < COND__COUNT);
	return &conds[id];
}

int
catalog_find(const char *id, enum cond_id *out)
{
	pthread_once(&once, catalog_build);
	for (size_t i = 0; i < COND__COUNT; i++) {
		/* accept both RCPT-UNKNOWN-USER and rcpt_unknown_user */
		const char *a = ids[i], *b = id;
		while (*a && *b) {
			char cb = *b == '_' ? '-' : *b;
			if ((*a | 0x20) != (cb | 0x20))
				break;
			a++;
			b++;
		}
		if (*a == '\0' && *b == '\0') {
			*out = (enum cond_id)i;
			return 0;
		}
	}
	return -1;
}

static const struct kv *
kv_lookup(const struct kv *kvs, size_t nkv, const char *key, size_t keylen)
{
	for (size_t i = 0; i < nkv; i++) {
		if (strlen(kvs[i].key) == keylen && memcmp(kvs[i].key, key, keylen) == 0)
			return &kvs[i];
	}
	return NULL;
}

/* Appends a value to a reply: printable ASCII and UTF-8 as is, anything
 * else (CR, LF, NUL, controls) as '?', so client bytes can never break
 * the reply line. Addresses get angle brackets. */
static int
reply_value(struct buf *out, const struct kv *kv)
{
	const uint8_t *p;
	size_t n;

	switch (kv->type) {
	case KV_U64:
		return buf_appendf(out, "%llu", (unsigned long long)kv->u);
	case KV_I64:
		return buf_appendf(out, "%lld", (long long)kv->i);
	case KV_STR:
		p = (const uint8_t *)(kv->s ? kv->s : "");
		n = strlen((const char *)p);
		break;
	default:
		p = (const uint8_t *)kv->s;
		n = kv->len;
		break;
	}
	if (n > 256)
		n = 256;	/* a path is at most 256 octets; keeps replies < 512 */
	if (kv->type == KV_ADDR && buf_append_byte(out, '<') < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i] < 0x20 || p[i] == 0x7f ? '?' : p[i];
		if (buf_append_byte(out, c) < 0)
			return -1;
	}
	if (kv->type == KV_ADDR && buf_append_byte(out, '>') < 0)
		return -1;
	return 0;
}

int
catalog_render_text(struct buf *out, enum cond_id id, const char *hostname,
		    const struct kv *kvs, size_t nkv)
{
	const char *t = catalog_get(id)->reply;

	while (*t) {
		const char *open = strchr(t, '{');
		const char *close = open ? strchr(open, '}') : NULL;
		if (open == NULL || close == NULL)
			return buf_append_str(out, t);
		if (buf_append(out, t, (size_t)(open - t)) < 0)
			return -1;
		const char *key = open + 1;
		size_t keylen = (size_t)(close - key);
		if (keylen == 8 && memcmp(key, "hostname", 8) == 0) {
			if (buf_append_str(out, hostname ? hostname : "localhost") < 0)
				return -1;
		} else {
			const struct kv *kv = kv_lookup(kvs, nkv, key, keylen);
			if (kv != NULL && reply_value(out, kv) < 0)
				return -1;
		}
		t = close + 1;
	}
	return 0;
}

int
catalog_reply(struct buf *out, enum cond_id id, const char *hostname,
	      const struct kv *kvs, size_t nkv, int more_follow)
{
	const struct cond *c = catalog_get(id);

	ASSERT(c->code >= 200 && c->code <= 599);
	if (buf_appendf(out, "%d%c", c->code, more_follow ? '-' : ' ') < 0)
		return -1;
	if (c->esc[0] != '\0' && buf_appendf(out, "%s ", c->esc) < 0)
		return -1;
	if (catalog_render_text(out, id, hostname, kvs, nkv) < 0)
		return -1;
	if (c->code >= 400 && buf_appendf(out, " [%s]", c->id) < 0)
		return -1;
	return 0;
}

void
catalog_log_refusal(enum cond_id id, const struct log_ctx *ctx, const struct kv *kvs, size_t nkv,
		    const char *reply)
{
	struct kv all[16];
	size_t n = 0;

	for (size_t i = 0; i < nkv && n < ARRAY_LEN(all) - 1; i++)
		all[n++] = kvs[i];
	all[n++] = KV("reply", reply);
	catalog_log(id, ctx, all, n);
}

void
catalog_trace(const struct log_ctx *ctx, const char *dir, const void *line, size_t len)
{
	struct kv t[] = { KV("dir", dir), KVM("line", line, len) };

	catalog_log(COND_NET_TRACE, ctx, t, 2);
}

/* Per thread shard (metrics.h), per condition: how often it happened. */
static uint64_t cond_counts[METRICS_SHARDS][COND__COUNT];

void
catalog_count(enum cond_id id)
{
	if ((unsigned)id < COND__COUNT)
		__atomic_fetch_add(&cond_counts[metrics_shard()][id], 1, __ATOMIC_RELAXED);
}

uint64_t
catalog_count_get(enum cond_id id)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < METRICS_SHARDS && (unsigned)id < COND__COUNT; i++)
		n += __atomic_load_n(&cond_counts[i][id], __ATOMIC_RELAXED);
	return n;
}

void
catalog_log_sev(enum cond_id id, enum log_sev sev, const struct log_ctx *ctx,
		const struct kv *kvs, size_t nkv)
{
	const struct cond *c = catalog_get(id);

	catalog_count(id);
	if (!log_enabled(sev))
		return;
	log_write(sev, c->id, ctx, kvs, nkv, c->logtext);
}

void
catalog_log(enum cond_id id, const struct log_ctx *ctx, const struct kv *kvs, size_t nkv)
{
	catalog_log_sev(id, catalog_get(id)->sev, ctx, kvs, nkv);
}

/* ---- reference text --------------------------------------------------- */

/* POP3 rows have no SMTP code; their reply text is the +OK/-ERR line. */
static int
is_pop3_reply(const struct cond *c)
{
	return c->code == 0 && (c->reply[0] == '+' || strncmp(c->reply, "-ERR", 4) == 0);
}

/* Placeholders that always hold a number: at most 20 octets. */
static int
numeric_key(const char *key, size_t n)
{
	static const char *const keys[] = {
		"count", "size", "msgno", "lines", "remaining_s", "dele", "seen", "current",
		"limit", "sessions", "nrcpt", "nbad", "used", "quota", "len", "hops", "depth",
	};

	for (size_t i = 0; i < ARRAY_LEN(keys); i++)
		if (strlen(keys[i]) == n && memcmp(keys[i], key, n) == 0)
			return 1;
	return 0;
}

#define GOVERNED_MAX 8	/* options named in one "Governed by" line */

static int
option_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_';
}

/* Finds the section.key words of text that is_option knows, in order,
 * each once; returns how many (at most GOVERNED_MAX). */
size_t
catalog_options_named(const char *text, catalog_option_fn is_option,
		      const char *names[GOVERNED_MAX], size_t lens[GOVERNED_MAX])
{
	size_t n = 0;

	for (const char *p = text; *p != '\0' && n < GOVERNED_MAX;) {
		const char *start = p, *dot = NULL;

		if (!option_char(*p) || (p > text && (option_char(p[-1]) || p[-1] == '.' ||
						       p[-1] == '/' || p[-1] == '-' ||
						       (p[-1] >= 'A' && p[-1] <= 'Z')))) {
			p++;
			continue;
		}
		while (option_char(*p) || (*p == '.' && dot == NULL && option_char(p[1]))) {
			if (*p == '.')
				dot = p;
			p++;
		}
		size_t len = (size_t)(p - start);
		int dup = 0;

		if (dot == NULL || !is_option(start, len))
			continue;
		for (size_t i = 0; i < n; i++)
			dup |= lens[i] == len && memcmp(names[i], start, len) == 0;
		if (!dup) {
			names[n] = start;
			lens[n++] = len;
		}
	}
	return n;
}

static void
explain_governed(FILE *out, const struct cond *c, catalog_option_fn is_option)
{
	const char *names[GOVERNED_MAX];
	size_t lens[GOVERNED_MAX];
	size_t n = catalog_options_named(c->action, is_option, names, lens);

	if (n == 0)
		return;
	fprintf(out, "- Governed by:");
	for (size_t i = 0; i < n; i++)
		fprintf(out, "%s `%.*s`", i ? "," : "", (int)lens[i], names[i]);
	fprintf(out, "\n");
}

static void
explain_one(FILE *out, const struct cond *c, const char *heading, catalog_option_fn is_option)
{
	fprintf(out, "%s %s\n\n", heading, c->id);
	fprintf(out, "- Severity: %s\n", log_sev_name(c->sev));
	if (c->code != 0) {
		fprintf(out, "- Reply: `%d%s%s %s%s`\n", c->code, c->esc[0] ? " " : "", c->esc,
			c->reply, c->code >= 400 ? " [" : "");
		if (c->code >= 400)
			fprintf(out, "  (the reply ends with ` [%s]`)\n", c->id);
	} else if (is_pop3_reply(c)) {
		fprintf(out, "- POP3 reply: `%s%s`\n", c->reply,
			c->reply[0] == '-' ? " [" : "");
		if (c->reply[0] == '-')
			fprintf(out, "  (the reply ends with ` [%s]`)\n", c->id);
	} else {
		fprintf(out, "- Reply: none (log only)\n");
	}
	fprintf(out, "- Log: `event=%s` `msg=\"%s\"`\n", c->id, c->logtext);
	fprintf(out, "- Log keys: %s\n", c->params[0] ? c->params : "(common keys only)");
	if (is_option != NULL)
		explain_governed(out, c, is_option);
	fprintf(out, "\n%s\n\n", c->description);
	fprintf(out, "What to do: %s\n", c->action);
	if (c->untested[0] != '\0')
		fprintf(out, "\nNot reached by the test suite: %s.\n", c->untested);
	fprintf(out, "\n");
}

void
catalog_explain(FILE *out, enum cond_id id, catalog_option_fn is_option)
{
	explain_one(out, catalog_get(id), "#", is_option);
}

void
catalog_markdown(FILE *out)
{
	pthread_once(&once, catalog_build);
	fprintf(out, "# Postern events and replies\n\n");
	fprintf(out, "Generated by `postern catalog` from src/catalog/catalog.def; do not edit.\n");
	fprintf(out, "Every reply Postern sends and every event it logs is one of these entries.\n");
	fprintf(out, "Refusals end with the entry's ID in brackets; `postern explain ID` prints one entry.\n\n");
	fprintf(out, "| ID | severity | reply |\n|---|---|---|\n");
	for (size_t i = 0; i < COND__COUNT; i++) {
		const struct cond *c = &conds[i];
		if (c->code)
			fprintf(out, "| [%s](#%s) | %s | %d %s |\n", c->id, c->id, log_sev_name(c->sev),
				c->code, c->esc[0] ? c->esc : "");
		else if (is_pop3_reply(c))
			fprintf(out, "| [%s](#%s) | %s | POP3 %s |\n", c->id, c->id,
				log_sev_name(c->sev), c->reply[0] == '+' ? "+OK" : "-ERR");
		else
			fprintf(out, "| [%s](#%s) | %s | log only |\n", c->id, c->id, log_sev_name(c->sev));
	}
	fprintf(out, "\n");
	for (size_t i = 0; i < COND__COUNT; i++)
		explain_one(out, &conds[i], "##", NULL);
}

/* ---- self-check --------------------------------------------------------- */

static int
param_listed(const char *params, const char *key, size_t keylen)
{
	const char *p = params;

	while (*p) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == keylen && memcmp(p, key, n) == 0)
			return 1;
		if (e == NULL)
			break;
		p = e + 1;
	}
	return 0;
}

int
catalog_self_check(FILE *err)
{
	int bad = 0;

	pthread_once(&once, catalog_build);
	for (size_t i = 0; i < COND__COUNT; i++) {
		const struct cond *c = &conds[i];
		for (size_t j = 0; j < i; j++) {
			if (strcasecmp(conds[j].id, c->id) == 0) {
				fprintf(err, "%s: duplicate ID\n", c->id);
				bad++;
			}
		}
		if (strlen(c->id) > 32) {
			fprintf(err, "%s: ID longer than 32 characters\n", c->id);
			bad++;
		}
		if (c->code != 0 && (c->code < 200 || c->code > 599)) {
			fprintf(err, "%s: reply code %d outside 200-599\n", c->id, c->code);
			bad++;
		}
		if (c->code == 0 && (c->esc[0] || (c->reply[0] && !is_pop3_reply(c)))) {
			fprintf(err, "%s: log-only row with reply text\n", c->id);
			bad++;
		}
		if (c->code != 0 && c->reply[0] == '\0') {
			fprintf(err, "%s: reply code without text\n", c->id);
			bad++;
		}
		if (c->esc[0] != '\0') {
			if (c->esc[0] - '0' != c->code / 100 || c->code / 100 < 2 || c->code / 100 == 3) {
				fprintf(err, "%s: enhanced code %s does not match %d\n", c->id, c->esc, c->code);
				bad++;
			}
		} else if (c->code >= 400 && c->code != 0) {
			fprintf(err, "%s: 4xx/5xx reply without enhanced code\n", c->id);
			bad++;
		}
		if (!c->description[0] || !c->action[0] || !c->logtext[0]) {
			fprintf(err, "%s: description, action and log text are required\n", c->id);
			bad++;
		}
		for (const char *t = c->reply; (t = strchr(t, '{')) != NULL; t++) {
			const char *close = strchr(t, '}');
			if (close == NULL) {
				fprintf(err, "%s: unclosed placeholder\n", c->id);
				bad++;
				break;
			}
			size_t n = (size_t)(close - t - 1);
			if (!(n == 8 && memcmp(t + 1, "hostname", 8) == 0) &&
			    !param_listed(c->params, t + 1, n)) {
				fprintf(err, "%s: placeholder {%.*s} not in params\n", c->id, (int)n, t + 1);
				bad++;
			}
		}
		/* Worst case: every placeholder at its 256-octet cut (a host
		 * name is at most 255); RFC 5321 4.5.3.1.5: 512 with CRLF. */
		size_t worst = 4 + strlen(c->esc) + 1 + strlen(c->reply) + 3 + strlen(c->id);
		for (const char *t = c->reply; (t = strchr(t, '{')) != NULL; t++) {
			const char *close = strchr(t, '}');
			worst += close && numeric_key(t + 1, (size_t)(close - t - 1)) ? 20 : 256;
		}
		if (worst > 510) {
			fprintf(err, "%s: worst-case reply too long (%zu)\n", c->id, worst);
			bad++;
		}
	}
	return bad;
}
