/*
 * policy_client_checks.c - checks "helo", "sender_domain" and
 * "client_ptr": what the
 * client says about itself, each problem with its action in
 * [client_checks] (reject, tempfail, tag, off).
 *
 * helo (at HELO, and at MAIL where a tag can reach the message): a HELO
 * name without a dot (address literals pass), or one that claims to be
 * this server (server.hostname or a local domain), or (helo_ip_mismatch,
 * off by default: RFC 5321 4.1.4) one whose A/AAAA do not include the
 * client's address (a failed lookup passes). The syntax itself is
 * the session's (SMTP-HELO-INVALID, 501 5.5.2) before any check.
 * sender_domain (at MAIL): MX, A and AAAA of the sender's domain asked in
 * parallel on the session loop's resolver; a null MX (RFC 7505), or no
 * record of the three (NXDOMAIN or no data), is a problem; a lookup that
 * failed temporarily, with no other answer showing the domain exists,
 * defers with 450 4.1.8 unless the action is off or tag (never a 5xx).
 * <> is never checked.
 * client_ptr (at HELO or MAIL): the session's one lookup of the client's
 * name (peername.h: the PTR of the client's address, then the first PTR
 * name's A or AAAA, which must include the client's address, FCrDNS),
 * awaited if still running; a missing PTR or a mismatch is a problem, a
 * lookup that failed temporarily defers with 451 4.4.3 unless both
 * actions are tag or off.
 * Trusted and authenticated clients skip every check here.
 */
#include "policy_checks.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "dns.h"
#include "log.h"
#include "peername.h"

enum cc_action { CC_OFF, CC_REJECT, CC_TEMPFAIL, CC_TAG };

static enum cc_action
cc_action_of(const char *v)
{
	if (strcmp(v, "reject") == 0)
		return CC_REJECT;
	if (strcmp(v, "tempfail") == 0)
		return CC_TEMPFAIL;
	if (strcmp(v, "tag") == 0)
		return CC_TAG;
	return CC_OFF;
}

static int
cc_skip(const struct policy_txn *t)
{
	return t->trusted || (t->auth_user != NULL && t->auth_user[0] != '\0');
}

/* Answers q for a problem cond found by check with action a; item is
 * what the tag names. kvs are cond's own params. */
static void
cc_apply(struct policy_query *q, const char *check, enum cc_action a, enum cond_id cond,
	 const char *item, const struct kv *kvs, size_t n)
{
	const struct policy_txn *t = q->txn;
	const char *reason = catalog_get(cond)->id;

	switch (a) {
	case CC_REJECT:
		policy_refuse(q, cond, kvs, n);
		return;
	case CC_TEMPFAIL: {
		struct kv kv[] = { KV("client", t->client), KV("check", check), KV("reason", reason) };

		policy_refuse(q, COND_POLICY_CLIENT_CHECK_TEMPFAIL, kv, ARRAY_LEN(kv));
		return;
	}
	case CC_TAG:
		if (q->stage != POLICY_STAGE_HELO) {
			struct kv kv[] = { KV("client", t->client), KV("check", check),
					   KV("reason", reason) };
			struct log_ctx ctx = { .sid = t->sid };
			struct policy_verdict v;
			char field[POLICY_HEADER_MAX + 1];
			int len;

			catalog_log(COND_POLICY_CLIENT_CHECK_TAG, &ctx, kv, ARRAY_LEN(kv));
			policy_verdict_set(&v, POLICY_CONTINUE, COND__COUNT);
			len = snprintf(field, sizeof(field), "X-Postern-Policy: %s=%s; item=%.200s",
				       check, reason, item);
			if (len > 0 && (size_t)len < sizeof(field) && policy_verdict_tag(&v, field) < 0) {
				/* cannot happen within the bounds above: logged all the same */
			}
			policy_answer(q, &v);
			return;
		}
		break;
	case CC_OFF:
		break;
	}
	policy_answer_continue(q);
}

/* ---- helo -------------------------------------------------------------- */

static void helo_ip_start(struct policy_query *q);

static void
helo_ask(struct policy_query *q)
{
	const struct policy_txn *t = q->txn;
	const struct config *cfg = t->cfg;
	const char *h = t->helo;
	size_t hl;
	struct kv kv[2];

	if (cc_skip(t) || h == NULL || h[0] == '\0' || h[0] == '[') {
		policy_answer_continue(q);
		return;
	}
	hl = strlen(h);
	kv[0] = KV("client", t->client);
	kv[1] = KV("helo", h);
	if (strchr(h, '.') == NULL) {
		cc_apply(q, "helo", cc_action_of(cfg->client_checks_helo_not_fqdn),
			 COND_POLICY_HELO_NOT_FQDN, h, kv, ARRAY_LEN(kv));
		return;
	}
	if ((cfg->hostname != NULL && strcasecmp(h, cfg->hostname) == 0) ||
	    config_is_local_domain(cfg, h, hl)) {
		cc_apply(q, "helo", cc_action_of(cfg->client_checks_helo_forged),
			 COND_POLICY_HELO_FORGED, h, kv, ARRAY_LEN(kv));
		return;
	}
	helo_ip_start(q);
}

/* ---- sender_domain ----------------------------------------------------- */

enum { SD_MX, SD_A, SD_AAAA, SD__COUNT };

struct sd_job;

struct sd_ask {
	struct sd_job *job;
	struct dns_query *dq;	/* pending, or NULL */
	enum dns_status status;
	int null_mx;
};

struct sd_job {
	struct policy_query *q;
	size_t npending;
	struct sd_ask asks[SD__COUNT];
};

static void
sd_finish(struct sd_job *job)
{
	struct policy_query *q = job->q;
	const struct policy_txn *t = q->txn;
	const struct config *cfg = t->cfg;
	struct kv kv[] = { KV("client", t->client), KVA("from", t->sender.mailbox,
							  strlen(t->sender.mailbox)),
			   KV("domain", t->sender.domain), KV("status", NULL) };
	int ok = 0, tempfail = 0;

	for (size_t i = 0; i < SD__COUNT; i++) {
		ok |= job->asks[i].status == DNS_OK;
		tempfail |= job->asks[i].status == DNS_TEMPFAIL;
	}
	if (job->asks[SD_MX].null_mx) {
		cc_apply(q, "sender_domain", cc_action_of(cfg->client_checks_sender_null_mx),
			 COND_POLICY_SENDER_NULL_MX, t->sender.domain, kv, 3);
	} else if (ok) {
		policy_answer_continue(q);
	} else {
		enum cc_action a = cc_action_of(cfg->client_checks_sender_domain_unknown);

		if (!tempfail)
			cc_apply(q, "sender_domain", a, COND_POLICY_SENDER_DOMAIN_NXDOMAIN,
				 t->sender.domain, kv, 3);
		else if (a == CC_REJECT || a == CC_TEMPFAIL) {
			kv[3] = KV("status", "tempfail");
			policy_refuse(q, COND_POLICY_SENDER_DOMAIN_TEMPFAIL, kv, ARRAY_LEN(kv));
		} else {
			policy_answer_continue(q);
		}
	}
	free(job);
}

static void
sd_on_answer(void *arg, const struct dns_answer *ans)
{
	struct sd_ask *ask = arg;
	struct sd_job *job = ask->job;

	ask->dq = NULL;
	ask->status = ans->status;
	if (ask == &job->asks[SD_MX] && ans->status == DNS_OK)
		for (size_t i = 0; i < ans->n; i++)
			if (ans->rr[i].name != NULL && ans->rr[i].name[0] == '\0')
				ask->null_mx = 1;
	if (--job->npending == 0)
		sd_finish(job);
}

static void
sd_ask(struct policy_query *q)
{
	const struct policy_txn *t = q->txn;
	static const enum dns_type types[SD__COUNT] = { DNS_T_MX, DNS_T_A, DNS_T_AAAA };
	struct sd_job *job;

	if (cc_skip(t) || t->dns == NULL || t->sender.is_null || t->sender.domain == NULL ||
	    t->sender.domain[0] == '\0' || t->sender.domain[0] == '[' ||
	    (strcmp(t->cfg->client_checks_sender_domain_unknown, "off") == 0 &&
	     strcmp(t->cfg->client_checks_sender_null_mx, "off") == 0)) {
		policy_answer_continue(q);
		return;
	}
	job = xcalloc(1, sizeof(*job));
	job->q = q;
	q->check_data = job;
	job->npending = SD__COUNT;
	for (size_t i = 0; i < SD__COUNT; i++) {
		job->asks[i].job = job;
		job->asks[i].status = DNS_TEMPFAIL;
	}
	/* every callback comes later (dns_query never answers inside) */
	for (size_t i = 0; i < SD__COUNT; i++)
		job->asks[i].dq = dns_query(t->dns, t->sender.domain, types[i], sd_on_answer,
					    &job->asks[i]);
}

static void
sd_cancel(struct policy_query *q)
{
	struct sd_job *job = q->check_data;

	if (job == NULL)
		return;
	for (size_t i = 0; i < SD__COUNT; i++)
		if (job->asks[i].dq != NULL)
			dns_cancel(job->asks[i].dq);
	free(job);
	q->check_data = NULL;
}

const struct policy_check policy_check_sender_domain = {
	.name = "sender_domain",
	.ask = { [POLICY_STAGE_MAIL] = sd_ask },
	.cancel = sd_cancel,
	.fail_open = 0,
};

/* ---- client_ptr -------------------------------------------------------- */

/* The check waits for the session's one lookup of the client's name
 * (peername.h): started at connect, or by this check when
 * smtp.peername_lookup is off. */
struct ptr_job {
	struct policy_query *q;
	struct peername_wait w;
};

/* Answers q from the session's name lookup, which is done. */
static void
ptr_judge(struct policy_query *q)
{
	const struct policy_txn *t = q->txn;
	const struct config *cfg = t->cfg;
	const struct peername *p = t->peername;
	enum cc_action m = cc_action_of(cfg->client_checks_client_ptr_missing);
	enum cc_action x = cc_action_of(cfg->client_checks_client_ptr_mismatch);

	switch (p->status) {
	case PEERNAME_MISSING: {
		struct kv kv[] = { KV("client", t->client) };

		cc_apply(q, "client_ptr", m, COND_POLICY_RDNS_MISSING, t->client, kv, ARRAY_LEN(kv));
		return;
	}
	case PEERNAME_MISMATCH: {
		struct kv kv[] = { KV("client", t->client), KV("ptr", p->ptr) };

		cc_apply(q, "client_ptr", x, COND_POLICY_RDNS_MISMATCH, p->ptr, kv, ARRAY_LEN(kv));
		return;
	}
	case PEERNAME_TEMPFAIL:
		if (m == CC_REJECT || m == CC_TEMPFAIL || x == CC_REJECT || x == CC_TEMPFAIL) {
			struct kv kv[] = { KV("client", t->client), KV("query", p->query) };

			policy_refuse(q, COND_POLICY_RDNS_TEMPFAIL, kv, ARRAY_LEN(kv));
			return;
		}
		break;
	case PEERNAME_OFF:
	case PEERNAME_PENDING:
	case PEERNAME_VERIFIED:
		break;
	}
	policy_answer_continue(q);
}

static void
ptr_known(void *arg)
{
	struct ptr_job *job = arg;
	struct policy_query *q = job->q;

	q->check_data = NULL;
	free(job);
	ptr_judge(q);
}

static void
ptr_ask(struct policy_query *q)
{
	const struct policy_txn *t = q->txn;
	struct ptr_job *job;

	if (cc_skip(t) || t->peername == NULL ||
	    (strcmp(t->cfg->client_checks_client_ptr_missing, "off") == 0 &&
	     strcmp(t->cfg->client_checks_client_ptr_mismatch, "off") == 0)) {
		policy_answer_continue(q);
		return;
	}
	job = xcalloc(1, sizeof(*job));
	job->q = q;
	if (peername_need(t->peername, &job->w, ptr_known, job)) {
		free(job);
		ptr_judge(q);
		return;
	}
	q->check_data = job;
}

static void
ptr_cancel(struct policy_query *q)
{
	struct ptr_job *job = q->check_data;

	if (job == NULL)
		return;
	peername_unwait(q->txn->peername, &job->w);
	free(job);
	q->check_data = NULL;
}

const struct policy_check policy_check_client_ptr = {
	.name = "client_ptr",
	.ask = { [POLICY_STAGE_HELO] = ptr_ask, [POLICY_STAGE_MAIL] = ptr_ask },
	.cancel = ptr_cancel,
	.fail_open = 0,
};

/* ---- helo: does the name resolve to the client ------------------------- */

struct helo_job {
	struct policy_query *q;
	struct dns_query *dq;	/* pending, or NULL */
	int family;
	uint8_t addr[16];
	char name[DNS_NAME_MAX + 1];
};

static void
helo_on_forward(void *arg, const struct dns_answer *ans)
{
	struct helo_job *job = arg;
	struct policy_query *q = job->q;
	struct kv kv[] = { KV("client", q->txn->client), KV("helo", job->name) };

	job->dq = NULL;
	q->check_data = NULL;
	/* a failed lookup proves nothing: RFC 5321 4.1.4 */
	if (ans->status == DNS_TEMPFAIL || peername_answer_has(ans, job->family, job->addr))
		policy_answer_continue(q);
	else
		cc_apply(q, "helo", cc_action_of(q->txn->cfg->client_checks_helo_ip_mismatch),
			 COND_POLICY_HELO_IP_MISMATCH, job->name, kv, ARRAY_LEN(kv));
	free(job);
}

static void
helo_ip_start(struct policy_query *q)
{
	const struct policy_txn *t = q->txn;
	struct helo_job *job;

	if (strcmp(t->cfg->client_checks_helo_ip_mismatch, "off") == 0 || t->dns == NULL ||
	    strlen(t->helo) >= sizeof(job->name)) {
		policy_answer_continue(q);
		return;
	}
	job = xcalloc(1, sizeof(*job));
	job->q = q;
	if (peername_addr_of(t->peer, &job->family, job->addr) < 0) {
		free(job);
		policy_answer_continue(q);
		return;
	}
	snprintf(job->name, sizeof(job->name), "%s", t->helo);
	q->check_data = job;
	job->dq = dns_query(t->dns, job->name, job->family == AF_INET ? DNS_T_A : DNS_T_AAAA,
			    helo_on_forward, job);
}

static void
helo_cancel(struct policy_query *q)
{
	struct helo_job *job = q->check_data;

	if (job == NULL)
		return;
	if (job->dq != NULL)
		dns_cancel(job->dq);
	free(job);
	q->check_data = NULL;
}

const struct policy_check policy_check_helo = {
	.name = "helo",
	.ask = { [POLICY_STAGE_HELO] = helo_ask, [POLICY_STAGE_MAIL] = helo_ask },
	.cancel = helo_cancel,
	.fail_open = 1,
};
