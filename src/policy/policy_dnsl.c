/*
 * policy_dnsl.c - checks "dnsbl" and "dnswl": the DNS block and allow
 * lists of [dnsbl.NAME] and [dnswl.NAME] (config_dnsl.c), asked in
 * parallel on the session loop's resolver.
 *
 * What is asked at each stage: connect, the client address lists (type
 * ip: RFC 5782 2.1 reversed octets, IPv6 reversed nibbles); helo, the
 * HELO lists; mail, the sender-domain lists (RHSBL); rcpt, every list
 * (so that postmaster@ and abuse@ of local domains are exempt, RFC 5321
 * 4.5.1). An A answer counts when it is in the list's codes; one in
 * 127.255.255.0/24 (the list refuses our resolver) is logged and never a
 * hit; a lookup that fails is logged and the list skipped (never a 5xx).
 *
 * dnsbl: the first listing, in file order, of a list with action reject
 * or tempfail refuses with its name; tag and score lists add a header
 * field and points once per transaction (at mail and rcpt only: what
 * connect and HELO would add does not outlive MAIL). Skipped for trusted
 * and authenticated clients and clients a dnswl list allowed.
 * dnswl: a listing marks the session (policy_txn.dnswl); at connect and
 * HELO the stage is accepted, at MAIL and RCPT the other checks go on.
 *
 * uribl, at the end of data: the lists of type uri (URI block lists, as
 * smtpf's uri-bl), each asked for each domain the session's link
 * extractor (uri_scan.h) found in the body: "example.com.zone", or the
 * reversed octets of an IPv4 link; at most URIBL_ASKS_MAX queries per
 * message. The first listing, in file order of the lists, then in the
 * order the links came, of a reject or tempfail list refuses the message
 * with the list's name and the domain; a tag or score list adds its
 * header field or points once per message. Skipped as dnsbl is, and for
 * a message whose recipients are all exempt (postmaster@, abuse@).
 */
#include "policy_checks.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "dns.h"
#include "domain.h"
#include "log.h"
#include "uri_scan.h"

#define DNSL_ITEM_MAX 256	/* what is looked up, as shown */
#define DNSL_REASON_MAX 200	/* TXT reason kept for the reply */
#define URIBL_ASKS_MAX 256	/* queries of one message (lists x domains) */

struct dnsl_ask {
	struct dnsl_job *job;
	const struct config_dnsl *l;
	struct dns_query *dq;	/* pending A or TXT query, or NULL */
	const char *item;	/* the job's item of l's type */
	char name[DNS_NAME_MAX + 2];
	int hit;
	uint32_t answer;	/* the A answer that counted */
	char reason[DNSL_REASON_MAX];
};

struct dnsl_job {
	struct policy_query *q;
	int allow;
	int uri;		/* check uribl: one ask per list and link domain */
	size_t npending;
	size_t nasks;
	char ip[64], helo[DNSL_ITEM_MAX], sender[DNSL_ITEM_MAX];
	struct uri_scan_domain *domains;	/* owned (uribl): the links' domains */
	unsigned char failed[CONFIG_DNSLS_MAX];	/* by list: a failure was logged */
	struct dnsl_ask asks[];	/* CONFIG_DNSLS_MAX, or lists x domains (uribl) */
};

static struct dnsl_job *
dnsl_job_new(struct policy_query *q, int allow, size_t nasks)
{
	struct dnsl_job *job = xcalloc(1, sizeof(*job) + nasks * sizeof(job->asks[0]));

	job->q = q;
	job->allow = allow;
	return job;
}

static void
dnsl_job_free(struct dnsl_job *job)
{
	free(job->domains);
	free(job);
}

/* ---- names ------------------------------------------------------------- */

/* The client address's reversed labels for peer (v4-mapped IPv6 as
 * IPv4), without the arpa suffix; the address as text in ip. 0 or -1. */
static int
dnsl_reverse(const struct sockaddr_storage *peer, char *out, size_t outlen, char *ip,
	     size_t iplen)
{
	char rev[DNS_NAME_MAX + 1];
	const char *suffix;
	int fam;
	const void *a;
	size_t n, sl;

	if (peer == NULL)
		return -1;
	if (peer->ss_family == AF_INET) {
		fam = AF_INET;
		a = &((const struct sockaddr_in *)(const void *)peer)->sin_addr;
	} else if (peer->ss_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)(const void *)peer)->sin6_addr;

		fam = AF_INET6;
		a = a6;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			fam = AF_INET;
			a = &a6->s6_addr[12];
		}
	} else {
		return -1;
	}
	if (inet_ntop(fam, a, ip, (socklen_t)iplen) == NULL ||
	    dns_reverse_name(fam, a, rev, sizeof(rev)) < 0)
		return -1;
	suffix = fam == AF_INET ? ".in-addr.arpa" : ".ip6.arpa";
	n = strlen(rev);
	sl = strlen(suffix);
	if (n > 0 && rev[n - 1] == '.')
		n--;
	if (n <= sl || strncasecmp(rev + n - sl, suffix, sl) != 0 || n - sl >= outlen)
		return -1;
	memcpy(out, rev, n - sl);
	out[n - sl] = '\0';
	return 0;
}

/* "label.zone" into ask->name; -1 if too long. */
static int
dnsl_name(struct dnsl_ask *ask, const char *labels)
{
	int n = snprintf(ask->name, sizeof(ask->name), "%s.%s", labels, ask->l->zone);

	return n < 0 || (size_t)n > DNS_NAME_MAX ? -1 : 0;
}

/* ---- logging ----------------------------------------------------------- */

static void
dnsl_log(const struct policy_txn *t, enum cond_id id, const struct kv *kvs, size_t n)
{
	struct log_ctx ctx = { .sid = t->sid };

	catalog_log(id, &ctx, kvs, n);
}

static const char *
dnsl_addr(uint32_t a, char *buf, size_t len)
{
	struct in_addr ia = { .s_addr = htonl(a) };

	if (inet_ntop(AF_INET, &ia, buf, (socklen_t)len) == NULL)
		snprintf(buf, len, "?");
	return buf;
}

/* ---- the end of a job -------------------------------------------------- */

/* Adds "X-Postern-Policy: CHECK=TAG; client=CLIENT" to v. */
static void
dnsl_tag(struct policy_verdict *v, const char *check, const char *tag, const char *client)
{
	char field[POLICY_HEADER_MAX + 1];
	int n = snprintf(field, sizeof(field), "X-Postern-Policy: %s=%s; client=%.64s", check,
			 tag, client);

	if (n < 0 || (size_t)n >= sizeof(field) || policy_verdict_tag(v, field) < 0) {
		/* too long for one line: the hits are logged all the same */
	}
}

/* uribl: the first listing of a refusing list refuses; each tag or score
 * list counts once, for its first listed domain. */
static void
uribl_finish(struct dnsl_job *job)
{
	struct policy_query *q = job->q;
	struct policy_txn *t = q->txn;
	struct policy_verdict v;
	const struct config_dnsl *counted = NULL;
	char tag[512], a[INET_ADDRSTRLEN];
	size_t tl = 0;
	int score = 0;

	policy_verdict_set(&v, POLICY_CONTINUE, COND__COUNT);
	for (size_t i = 0; i < job->nasks; i++) {
		struct dnsl_ask *ask = &job->asks[i];
		const struct config_dnsl *l = ask->l;

		if (!ask->hit || l == counted)
			continue;
		dnsl_addr(ask->answer, a, sizeof(a));
		if (l->action == DNSL_REJECT || l->action == DNSL_TEMPFAIL) {
			char listing[URI_SCAN_NAME_MAX + 80];

			snprintf(listing, sizeof(listing), "%s (list %.64s)", ask->item, l->name);
			struct kv kv[] = { KV("client", t->client), KV("list", l->name),
					   KV("item", ask->item), KV("answer", a),
					   KV("reason", ask->reason[0] ? ask->reason : NULL),
					   KV("listing", listing) };

			/* the verdict copies the values: job is freed after */
			policy_refuse(q, l->action == DNSL_REJECT ? COND_POLICY_URIBL_LISTED
				      : COND_POLICY_URIBL_TEMPFAIL, kv, ARRAY_LEN(kv));
			dnsl_job_free(job);
			return;
		}
		struct kv kv[] = { KV("client", t->client), KV("list", l->name),
				   KV("item", ask->item), KV("answer", a),
				   KV("action", config_dnsl_action_name(l->action)) };

		dnsl_log(t, COND_POLICY_URIBL_HIT, kv, ARRAY_LEN(kv));
		counted = l;
		if (l->action == DNSL_SCORE) {
			score += l->weight;
			continue;
		}
		int n = snprintf(tag + tl, sizeof(tag) - tl, "%s%s:%s", tl ? "," : "", l->name,
				 ask->item);

		if (n > 0 && (size_t)n < sizeof(tag) - tl)
			tl += (size_t)n;
	}
	v.score = score;
	tag[tl] = '\0';
	if (tl > 0)
		dnsl_tag(&v, "uribl", tag, t->client);
	policy_answer(q, &v);
	dnsl_job_free(job);
}

static void
dnsl_finish(struct dnsl_job *job)
{
	struct policy_query *q = job->q;
	struct policy_txn *t = q->txn;
	struct policy_verdict v;
	char tag[512], a[INET_ADDRSTRLEN];
	size_t tl = 0;
	int score = 0, tagged = 0, counted = t->dnsbl_counted;

	if (job->uri) {
		uribl_finish(job);
		return;
	}
	policy_verdict_set(&v, POLICY_CONTINUE, COND__COUNT);
	for (size_t i = 0; i < job->nasks; i++) {
		struct dnsl_ask *ask = &job->asks[i];
		const struct config_dnsl *l = ask->l;
		const char *stage = policy_stage_name(q->stage);

		if (!ask->hit)
			continue;
		dnsl_addr(ask->answer, a, sizeof(a));
		if (job->allow) {
			struct kv kv[] = { KV("client", t->client), KV("list", l->name),
					   KV("item", ask->item), KV("answer", a), KV("stage", stage) };

			dnsl_log(t, COND_POLICY_DNSWL_LISTED, kv, ARRAY_LEN(kv));
			t->dnswl = 1;
			if (q->stage == POLICY_STAGE_CONNECT || q->stage == POLICY_STAGE_HELO)
				v.action = POLICY_ACCEPT;
			break;
		}
		if (l->action == DNSL_REJECT || l->action == DNSL_TEMPFAIL) {
			struct kv kv[] = { KV("client", t->client), KV("list", l->name),
					   KV("item", ask->item), KV("answer", a), KV("stage", stage),
					   KV("reason", ask->reason[0] ? ask->reason : NULL) };

			/* the verdict copies the values: job is freed after */
			policy_refuse(q, l->action == DNSL_REJECT ? COND_POLICY_DNSBL_LISTED
				      : COND_POLICY_DNSBL_TEMPFAIL, kv, ARRAY_LEN(kv));
			dnsl_job_free(job);
			return;
		}
		if (counted)
			continue;
		struct kv kv[] = { KV("client", t->client), KV("list", l->name),
				   KV("item", ask->item), KV("answer", a),
				   KV("action", config_dnsl_action_name(l->action)), KV("stage", stage) };

		dnsl_log(t, COND_POLICY_DNSBL_HIT, kv, ARRAY_LEN(kv));
		t->dnsbl_counted = 1;
		if (l->action == DNSL_SCORE) {
			score += l->weight;
			continue;
		}
		int n = snprintf(tag + tl, sizeof(tag) - tl, "%s%s", tagged ? "," : "", l->name);

		if (n > 0 && (size_t)n < sizeof(tag) - tl)
			tl += (size_t)n;
		tagged = 1;
	}
	v.score = score;
	tag[tl] = '\0';
	if (tagged)
		dnsl_tag(&v, "dnsbl", tag, t->client);
	policy_answer(q, &v);
	dnsl_job_free(job);
}

static void
dnsl_done_one(struct dnsl_job *job)
{
	if (--job->npending == 0)
		dnsl_finish(job);
}

/* ---- answers ----------------------------------------------------------- */

static void
dnsl_on_txt(void *arg, const struct dns_answer *ans)
{
	struct dnsl_ask *ask = arg;

	ask->dq = NULL;
	if (ans->status == DNS_OK) {
		for (size_t i = 0; i < ans->n; i++) {
			if (ans->rr[i].txt == NULL)
				continue;
			snprintf(ask->reason, sizeof(ask->reason), "%.*s",
				 (int)(ans->rr[i].txt_len < sizeof(ask->reason) - 1
				       ? ans->rr[i].txt_len : sizeof(ask->reason) - 1),
				 ans->rr[i].txt);
			for (char *c = ask->reason; *c; c++)
				if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
					*c = '?';
			break;
		}
	}
	dnsl_done_one(ask->job);
}

static void
dnsl_on_a(void *arg, const struct dns_answer *ans)
{
	struct dnsl_ask *ask = arg;
	struct dnsl_job *job = ask->job;
	const struct policy_txn *t = job->q->txn;
	char a[INET_ADDRSTRLEN];

	size_t li = (size_t)(ask->l - t->cfg->dnsls);

	ask->dq = NULL;
	/* logged once per list and job (uribl asks a list for many domains) */
	if (ans->status == DNS_TEMPFAIL && li < CONFIG_DNSLS_MAX && !job->failed[li]++) {
		struct kv kv[] = { KV("client", t->client), KV("list", ask->l->name),
				   KV("query", ask->name), KV("status", dns_status_name(ans->status)),
				   KV("err", ans->err != NULL ? ans->err : "") };

		dnsl_log(t, COND_POLICY_DNSBL_ERROR, kv, ARRAY_LEN(kv));
	}
	for (size_t i = 0; ans->status == DNS_OK && i < ans->n; i++) {
		const struct dns_rr *rr = &ans->rr[i];
		uint32_t x;

		if (rr->family != AF_INET)
			continue;
		x = (uint32_t)rr->addr[0] << 24 | (uint32_t)rr->addr[1] << 16 |
		    (uint32_t)rr->addr[2] << 8 | rr->addr[3];
		if ((x & 0xffffff00u) == 0x7fffff00u) {
			struct kv kv[] = { KV("client", t->client), KV("list", ask->l->name),
					   KV("query", ask->name),
					   KV("answer", dnsl_addr(x, a, sizeof(a))) };

			dnsl_log(t, COND_POLICY_DNSBL_REFUSED_RESOLVER, kv, ARRAY_LEN(kv));
			ask->hit = 0;
			break;
		}
		if (!ask->hit && config_dnsl_code_match(ask->l, x)) {
			ask->hit = 1;
			ask->answer = x;
		}
	}
	/* a refusing listing: its TXT record is the reason shown */
	if (ask->hit && !job->allow &&
	    (ask->l->action == DNSL_REJECT || ask->l->action == DNSL_TEMPFAIL) &&
	    t->dns != NULL) {
		ask->dq = dns_query(t->dns, ask->name, DNS_T_TXT, dnsl_on_txt, ask);
		return;
	}
	dnsl_done_one(job);
}

/* ---- asking ------------------------------------------------------------ */

/* 1 if list l is asked at stage by the check (allow: dnswl). */
static int
dnsl_asked(const struct config_dnsl *l, enum policy_stage stage, int allow)
{
	if (l->allow != allow)
		return 0;
	/* tags and scores do not outlive MAIL: not asked before it */
	if (!allow && (stage == POLICY_STAGE_CONNECT || stage == POLICY_STAGE_HELO) &&
	    l->action != DNSL_REJECT && l->action != DNSL_TEMPFAIL)
		return 0;
	switch (stage) {
	case POLICY_STAGE_CONNECT: return l->type == DNSL_TYPE_IP;
	case POLICY_STAGE_HELO: return l->type == DNSL_TYPE_HELO;
	case POLICY_STAGE_MAIL: return l->type == DNSL_TYPE_SENDER;
	case POLICY_STAGE_RCPT: return l->type != DNSL_TYPE_URI;
	default: return 0;
	}
}

static void
dnsl_ask(struct policy_query *q, int allow)
{
	struct policy_txn *t = q->txn;
	const struct config *cfg = t->cfg;
	struct dnsl_job *job;
	char rev[DNS_NAME_MAX + 1];
	int have_ip, have_helo, have_sender;

	if (!allow && (t->trusted || t->auth_user[0] != '\0' || t->dnswl ||
		       (q->stage == POLICY_STAGE_RCPT && policy_rcpt_exempt(t)))) {
		policy_answer_continue(q);
		return;
	}
	if (t->dns == NULL || cfg->ndnsls == 0) {
		policy_answer_continue(q);
		return;
	}
	job = dnsl_job_new(q, allow, CONFIG_DNSLS_MAX);
	have_ip = dnsl_reverse(t->peer, rev, sizeof(rev), job->ip, sizeof(job->ip)) == 0;
	have_helo = t->helo != NULL && t->helo[0] != '[' && strlen(t->helo) < sizeof(job->helo) &&
		    domain_name_valid(t->helo, strlen(t->helo));
	if (have_helo)
		snprintf(job->helo, sizeof(job->helo), "%s", t->helo);
	have_sender = t->sender.domain != NULL && t->sender.domain[0] != '\0' &&
		      strlen(t->sender.domain) < sizeof(job->sender);
	if (have_sender)
		snprintf(job->sender, sizeof(job->sender), "%s", t->sender.domain);
	q->check_data = job;
	job->npending = 1;	/* held until every query is out */
	for (size_t i = 0; i < cfg->ndnsls && job->nasks < CONFIG_DNSLS_MAX; i++) {
		const struct config_dnsl *l = &cfg->dnsls[i];
		struct dnsl_ask *ask = &job->asks[job->nasks];
		const char *labels;

		if (!dnsl_asked(l, q->stage, allow))
			continue;
		ask->job = job;
		ask->l = l;
		switch (l->type) {
		case DNSL_TYPE_IP:
			labels = have_ip ? rev : NULL;
			ask->item = job->ip;
			break;
		case DNSL_TYPE_HELO:
			labels = have_helo ? job->helo : NULL;
			ask->item = job->helo;
			break;
		default:
			labels = have_sender ? job->sender : NULL;
			ask->item = job->sender;
			break;
		}
		if (labels == NULL || dnsl_name(ask, labels) < 0)
			continue;
		job->nasks++;
		job->npending++;
		ask->dq = dns_query(t->dns, ask->name, DNS_T_A, dnsl_on_a, ask);
	}
	/* every callback comes later (dns_query never answers inside) */
	dnsl_done_one(job);
}

static void
dnsl_cancel(struct policy_query *q)
{
	struct dnsl_job *job = q->check_data;

	if (job == NULL)
		return;
	for (size_t i = 0; i < job->nasks; i++)
		if (job->asks[i].dq != NULL)
			dns_cancel(job->asks[i].dq);
	dnsl_job_free(job);
	q->check_data = NULL;
}

static void
dnsbl_ask(struct policy_query *q)
{
	dnsl_ask(q, 0);
}

static void
dnswl_ask(struct policy_query *q)
{
	dnsl_ask(q, 1);
}

/* The labels asked for a link domain: the name, or an IPv4 address's
 * reversed octets (as for client lists). -1 if they do not fit. */
static int
uribl_labels(const struct uri_scan_domain *d, char *out, size_t outlen)
{
	struct in_addr ia;
	const uint8_t *o = (const uint8_t *)&ia.s_addr;
	int n;

	if (!d->is_ip)
		n = snprintf(out, outlen, "%s", d->name);
	else if (inet_pton(AF_INET, d->name, &ia) != 1)
		return -1;
	else
		n = snprintf(out, outlen, "%u.%u.%u.%u", o[3], o[2], o[1], o[0]);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* What the body scan says about its bounds, once per message. */
static void
uribl_log_scan(const struct policy_txn *t, const struct uri_scan *us)
{
	if (uri_scan_bounded(us)) {
		struct kv kv[] = { KV("client", t->client), KVU("scanned", uri_scan_octets(us)),
				   KVU("limit", t->cfg->uribl_scan_size) };

		dnsl_log(t, COND_POLICY_URIBL_SCAN_BOUND, kv, ARRAY_LEN(kv));
	}
	if (uri_scan_dropped(us) > 0) {
		struct kv kv[] = { KV("client", t->client), KVU("kept", uri_scan_count(us)),
				   KVU("dropped", uri_scan_dropped(us)) };

		dnsl_log(t, COND_POLICY_URIBL_DOMAINS_CAPPED, kv, ARRAY_LEN(kv));
	}
}

static void
uribl_ask(struct policy_query *q)
{
	struct policy_txn *t = q->txn;
	const struct config *cfg = t->cfg;
	const struct uri_scan *us = t->content.uris;
	struct dnsl_job *job;
	size_t nd, nl = 0, cap;

	if (t->trusted || t->auth_user[0] != '\0' || t->dnswl || t->dns == NULL || us == NULL ||
	    (t->nrcpt_ok > 0 && t->nrcpt_exempt >= t->nrcpt_ok)) {
		policy_answer_continue(q);
		return;
	}
	uribl_log_scan(t, us);
	nd = uri_scan_count(us);
	if (nd == 0) {
		policy_answer_continue(q);
		return;
	}
	for (size_t i = 0; i < cfg->ndnsls; i++)
		nl += !cfg->dnsls[i].allow && cfg->dnsls[i].type == DNSL_TYPE_URI;
	cap = nl * nd < URIBL_ASKS_MAX ? nl * nd : URIBL_ASKS_MAX;
	if (cap == 0) {
		policy_answer_continue(q);
		return;
	}
	job = dnsl_job_new(q, 0, cap);
	job->uri = 1;
	job->domains = xcalloc(nd, sizeof(*job->domains));
	for (size_t d = 0; d < nd; d++)
		job->domains[d] = *uri_scan_get(us, d);
	q->check_data = job;
	job->npending = 1;	/* held until every query is out */
	for (size_t i = 0; i < cfg->ndnsls; i++) {
		const struct config_dnsl *l = &cfg->dnsls[i];

		if (l->allow || l->type != DNSL_TYPE_URI)
			continue;
		for (size_t d = 0; d < nd && job->nasks < cap; d++) {
			struct dnsl_ask *ask = &job->asks[job->nasks];
			char labels[DNS_NAME_MAX + 1];

			ask->job = job;
			ask->l = l;
			ask->item = job->domains[d].name;
			if (uribl_labels(&job->domains[d], labels, sizeof(labels)) < 0 ||
			    dnsl_name(ask, labels) < 0)
				continue;
			job->nasks++;
			job->npending++;
			ask->dq = dns_query(t->dns, ask->name, DNS_T_A, dnsl_on_a, ask);
		}
	}
	dnsl_done_one(job);
}

const struct policy_check policy_check_dnsbl = {
	.name = "dnsbl",
	.ask = { [POLICY_STAGE_CONNECT] = dnsbl_ask, [POLICY_STAGE_HELO] = dnsbl_ask,
		 [POLICY_STAGE_MAIL] = dnsbl_ask, [POLICY_STAGE_RCPT] = dnsbl_ask },
	.cancel = dnsl_cancel,
	.fail_open = 1,
};

const struct policy_check policy_check_dnswl = {
	.name = "dnswl",
	.ask = { [POLICY_STAGE_CONNECT] = dnswl_ask, [POLICY_STAGE_HELO] = dnswl_ask,
		 [POLICY_STAGE_MAIL] = dnswl_ask, [POLICY_STAGE_RCPT] = dnswl_ask },
	.cancel = dnsl_cancel,
	.fail_open = 1,
};

const struct policy_check policy_check_uribl = {
	.name = "uribl",
	.ask = { [POLICY_STAGE_END_OF_DATA] = uribl_ask },
	.cancel = dnsl_cancel,
	.fail_open = 1,
};
