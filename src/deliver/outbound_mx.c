/*
 * outbound_mx.c - where a job's recipients go: the route's hosts or the
 * domain's MX hosts (RFC 5321 5.1: by preference, equal preferences in
 * random order, the domain itself when it has no MX, a null MX of
 * RFC 7505 refused at once), their IPv6 and IPv4 addresses in the
 * configured order, and the hosts that are us taken out (our own name,
 * or the address and port of one of our listeners: that host and every
 * host of equal or lower preference go, as 5.1 says). Addresses found
 * through DNS on loopback are dropped unless outbound.allow_loopback.
 *
 * The result is job->targets, tried in order by outbound.c; or a
 * verdict for every recipient (outbound_job_finish_all) when nothing can
 * be tried. Loop thread of the engine.
 */
#include "outbound_private.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dns.h"
#include "log.h"

/* One lookup a job waits for. */
struct ob_lookup {
	struct outbound_job *job;
	size_t host;			/* index in job's host list */
	enum dns_type type;
	struct dns_query *q;		/* NULL once answered */
};

static void mx_addresses(struct outbound_job *job);

/* ---- the host list ---------------------------------------------------- */

static struct ob_host *
host_add(struct outbound_job *job, const char *name, size_t len, unsigned pref, uint16_t port,
	 int from_dns)
{
	struct ob_resolve *rs = job->rs;
	struct ob_host *h;

	if (rs->nhosts >= OB_HOSTS_MAX || len == 0 || len >= sizeof(h->name))
		return NULL;
	h = &rs->hosts[rs->nhosts++];
	memset(h, 0, sizeof(*h));
	memcpy(h->name, name, len);
	h->name[len] = '\0';
	for (char *p = h->name; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	h->pref = pref;
	h->port = port;
	h->from_dns = from_dns;
	return h;
}

static int
pref_cmp(const void *a, const void *b)
{
	const struct ob_host *x = a, *y = b;

	return (x->pref > y->pref) - (x->pref < y->pref);
}

/* Sorts by preference and shuffles each run of equal preferences. */
static void
hosts_order(struct ob_host *h, size_t n)
{
	qsort(h, n, sizeof(*h), pref_cmp);
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;

		while (j < n && h[j].pref == h[i].pref)
			j++;
		for (size_t k = j - 1; k > i; k--) {
			size_t r = i + (size_t)arc4random_uniform((uint32_t)(k - i + 1));
			struct ob_host t = h[k];

			h[k] = h[r];
			h[r] = t;
		}
		i = j;
	}
}

/* Drops the hosts from index i on whose preference is i's or higher
 * (RFC 5321 5.1: a host that is us, and every less preferred one). */
static void
hosts_cut_at(struct outbound_job *job, unsigned pref)
{
	struct ob_resolve *rs = job->rs;
	size_t k = 0;

	for (size_t i = 0; i < rs->nhosts; i++)
		if (rs->hosts[i].pref < pref)
			rs->hosts[k++] = rs->hosts[i];
	rs->nhosts = k;
	job->self_seen = 1;
}

/* ---- DNS ---------------------------------------------------------------- */

static void lookup_done(void *arg, const struct dns_answer *ans);

static int
lookup_start(struct outbound_job *job, size_t host, enum dns_type type, const char *name)
{
	struct ob_resolve *rs = job->rs;
	struct ob_lookup *lk;

	if (rs->nlookups >= OB_LOOKUPS_MAX)
		return -1;
	lk = &rs->lookups[rs->nlookups++];
	lk->job = job;
	lk->host = host;
	lk->type = type;
	job->lookups++;
	lk->q = dns_query(job->ob->dns, name, type, lookup_done, lk);
	if (lk->q == NULL) {
		job->lookups--;
		job->dns_temp = 1;
		return -1;
	}
	return 0;
}

/* Cancels what is still asked (the job ends early). */
void
outbound_mx_cancel(struct outbound_job *job)
{
	struct ob_resolve *rs = job->rs;

	if (rs == NULL)
		return;
	for (size_t i = 0; i < rs->nlookups; i++)
		if (rs->lookups[i].q != NULL) {
			dns_cancel(rs->lookups[i].q);
			rs->lookups[i].q = NULL;
		}
	job->lookups = 0;
}

/* The MX answer for the domain (or a route host looked up by MX). */
static void
mx_answer(struct outbound_job *job, size_t at, const struct dns_answer *ans)
{
	struct ob_resolve *rs = job->rs;
	const char *self = job->cfg->hostname;
	struct ob_host base = rs->hosts[at];
	size_t first = rs->nhosts;

	if (ans->status == DNS_TEMPFAIL) {
		job->dns_temp = 1;
		snprintf(rs->why, sizeof(rs->why), "MX %s: %s", base.name,
			 ans->err != NULL ? ans->err : "no answer");
		return;
	}
	if (ans->status == DNS_NXDOMAIN) {
		rs->nxdomain++;
		snprintf(rs->why, sizeof(rs->why), "%s does not exist", base.name);
		return;
	}
	if (ans->status == DNS_NODATA || ans->n == 0) {
		/* No MX: the name itself, as if MX 0 (RFC 5321 5.1). */
		(void)host_add(job, base.name, strlen(base.name), 0, base.port, base.from_dns);
		rs->hosts[at].name[0] = '\0';
		return;
	}
	if (ans->n == 1 && (ans->rr[0].name == NULL || ans->rr[0].name[0] == '\0' ||
			    strcmp(ans->rr[0].name, ".") == 0)) {
		rs->null_mx = 1;	/* RFC 7505: no mail here */
		return;
	}
	for (size_t i = 0; i < ans->n; i++) {
		const char *nm = ans->rr[i].name;

		if (nm == NULL || *nm == '\0' || strcmp(nm, ".") == 0)
			continue;	/* a null MX among others: ignored */
		/* a route's hosts keep their order: each one's MX hosts
		 * come before the next one's */
		(void)host_add(job, nm, strlen(nm), base.pref * 70000u + ans->rr[i].pref,
			       base.port, 1);
	}
	rs->hosts[at].name[0] = '\0';	/* replaced by its MX hosts */
	hosts_order(rs->hosts + first, rs->nhosts - first);
	/* A host named as we are: it and the less preferred go. */
	if (self != NULL)
		for (size_t i = first; i < rs->nhosts; i++)
			if (strcasecmp(rs->hosts[i].name, self) == 0) {
				hosts_cut_at(job, rs->hosts[i].pref);
				break;
			}
}

static int
addr_is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;

		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

		return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
		       (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127);
	}
	return 0;
}

/* Addresses that are never a mail host: unspecified, multicast. */
static int
addr_is_unusable(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		uint32_t a = ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr);

		return a == 0 || (a >> 28) == 0xe || a == 0xffffffffu;
	}
	const struct in6_addr *a6 = &((const struct sockaddr_in6 *)ss)->sin6_addr;

	return IN6_IS_ADDR_UNSPECIFIED(a6) || IN6_IS_ADDR_MULTICAST(a6);
}

static void
target_add(struct outbound_job *job, const struct ob_host *h, int family, const uint8_t *addr)
{
	struct ob_resolve *rs = job->rs;
	struct ob_target *t;
	uint16_t port = h->port != 0 ? h->port : (uint16_t)job->cfg->outbound_port;

	if (job->ntargets >= OB_TARGETS_MAX)
		return;
	t = &job->targets[job->ntargets];
	memset(t, 0, sizeof(*t));
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&t->sa;

		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		memcpy(&in->sin_addr, addr, 4);
		t->salen = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&t->sa;

		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		memcpy(&in6->sin6_addr, addr, 16);
		t->salen = sizeof(*in6);
	}
	if (addr_is_unusable(&t->sa) ||
	    (h->from_dns && !job->cfg->outbound_allow_loopback && addr_is_loopback(&t->sa))) {
		job->pruned++;
		return;
	}
	if (config_is_own_listener(job->cfg, (const struct sockaddr *)&t->sa, t->salen)) {
		rs->own_addr_pref = h->pref;
		rs->own_addr = 1;
		return;
	}
	snprintf(t->host, sizeof(t->host), "%s", h->name);
	t->pref = h->pref;
	t->tls_name = h->from_dns || !h->literal;
	job->ntargets++;
	(void)rs;
}

/* The A or AAAA answer of host at. */
static void
addr_answer(struct outbound_job *job, size_t at, enum dns_type type, const struct dns_answer *ans)
{
	struct ob_resolve *rs = job->rs;
	struct ob_host *h = &rs->hosts[at];

	if (ans->status == DNS_TEMPFAIL) {
		h->temp = 1;
		snprintf(rs->why, sizeof(rs->why), "%s %s: %s", type == DNS_T_A ? "A" : "AAAA",
			 h->name, ans->err != NULL ? ans->err : "no answer");
		return;
	}
	for (size_t i = 0; i < ans->n && i < OB_ADDRS_MAX; i++) {
		const struct dns_rr *rr = &ans->rr[i];
		uint8_t *slot;

		if (rr->family != (type == DNS_T_A ? AF_INET : AF_INET6))
			continue;
		if (type == DNS_T_A) {
			if (h->n4 >= OB_ADDRS_MAX)
				continue;
			slot = h->a4[h->n4++];
			memcpy(slot, rr->addr, 4);
		} else {
			if (h->n6 >= OB_ADDRS_MAX)
				continue;
			slot = h->a6[h->n6++];
			memcpy(slot, rr->addr, 16);
		}
	}
}

static void
lookup_done(void *arg, const struct dns_answer *ans)
{
	struct ob_lookup *lk = arg;
	struct outbound_job *job = lk->job;

	lk->q = NULL;
	job->lookups--;
	if (lk->type == DNS_T_MX)
		mx_answer(job, lk->host, ans);
	else
		addr_answer(job, lk->host, lk->type, ans);
	if (job->lookups > 0)
		return;
	if (job->rs->phase == OB_PHASE_MX)
		mx_addresses(job);
	else
		outbound_mx_finish(job);
}

/* Phase 2: the addresses of every host left. */
static void
mx_addresses(struct outbound_job *job)
{
	struct ob_resolve *rs = job->rs;
	const char *pref = job->cfg->outbound_address_preference;
	int want4 = pref == NULL || strcmp(pref, "ipv6-only") != 0;
	int want6 = pref == NULL || strcmp(pref, "ipv4-only") != 0;

	rs->phase = OB_PHASE_ADDR;
	for (size_t i = 0; i < rs->nhosts; i++) {
		struct ob_host *h = &rs->hosts[i];

		if (h->name[0] == '\0' || h->literal)
			continue;
		if (want6)
			(void)lookup_start(job, i, DNS_T_AAAA, h->name);
		if (want4)
			(void)lookup_start(job, i, DNS_T_A, h->name);
	}
	if (job->lookups == 0)
		outbound_mx_finish(job);
}

/* Every lookup is in: the targets, or a verdict. */
void
outbound_mx_finish(struct outbound_job *job)
{
	struct ob_resolve *rs = job->rs;
	const char *pref = job->cfg->outbound_address_preference;
	int v4first = pref != NULL && strncmp(pref, "ipv4", 4) == 0;
	int any_temp = job->dns_temp;
	size_t k = 0;

	/* Hosts in preference order, each with its addresses. */
	for (size_t i = 0; i < rs->nhosts; i++)
		if (rs->hosts[i].name[0] != '\0')
			rs->hosts[k++] = rs->hosts[i];
	rs->nhosts = k;
	qsort(rs->hosts, rs->nhosts, sizeof(rs->hosts[0]), pref_cmp);
	for (size_t i = 0; i < rs->nhosts; i++) {
		struct ob_host *h = &rs->hosts[i];

		any_temp |= h->temp;
		for (int pass = 0; pass < 2; pass++) {
			int six = (pass == 0) != v4first;

			if (six)
				for (unsigned a = 0; a < h->n6; a++)
					target_add(job, h, AF_INET6, h->a6[a]);
			else
				for (unsigned a = 0; a < h->n4; a++)
					target_add(job, h, AF_INET, h->a4[a]);
		}
	}
	/* An address of ours (one of our listeners): that host's preference
	 * and everything after it go, as for our name. */
	if (rs->own_addr) {
		size_t n = 0;

		for (size_t i = 0; i < job->ntargets; i++)
			if (job->targets[i].pref < rs->own_addr_pref)
				job->targets[n++] = job->targets[i];
		job->ntargets = n;
		job->self_seen = 1;
	}
	if (job->ntargets > 0) {
		outbound_job_resolved(job);
		return;
	}
	if (rs->null_mx)
		outbound_job_finish_all(job, OUTBOUND_FAILED, COND_DELIVERY_DNS_NULL_MX, "5.1.10",
					"the domain accepts no mail (null MX, RFC 7505)");
	else if (job->self_seen)
		outbound_job_finish_all(job, OUTBOUND_FAILED, COND_DELIVERY_LOOP_TO_SELF, "5.3.5",
					"mail for this domain loops back to this server");
	else if (any_temp)
		outbound_job_finish_all(job, OUTBOUND_DEFERRED, COND_DELIVERY_DNS_TEMPFAIL, "4.4.3",
					rs->why[0] != '\0' ? rs->why : "DNS lookup failed");
	else if (job->pruned > 0)
		outbound_job_finish_all(job, OUTBOUND_DEFERRED, COND_DELIVERY_MX_UNUSABLE, "4.4.4",
					"no usable mail host (loopback or special addresses only)");
	else if (job->route->via == ROUTE_VIA_HOSTS)
		outbound_job_finish_all(job, OUTBOUND_DEFERRED, COND_DELIVERY_MX_UNUSABLE, "4.4.4",
					"the route's hosts have no address");
	else
		outbound_job_finish_all(job, OUTBOUND_FAILED, COND_DELIVERY_DNS_NXDOMAIN, "5.1.2",
					rs->why[0] != '\0' ? rs->why
							   : "no mail host for the domain");
}

/* Starts finding where job goes. */
void
outbound_mx_start(struct outbound_job *job)
{
	const struct config_route *rt = job->route;
	struct ob_resolve *rs = xcalloc(1, sizeof(*rs));

	job->rs = rs;
	rs->lookups = xcalloc(OB_LOOKUPS_MAX, sizeof(*rs->lookups));
	job->targets = xcalloc(OB_TARGETS_MAX, sizeof(*job->targets));
	rs->phase = OB_PHASE_MX;
	if (rt->via == ROUTE_VIA_MX) {
		(void)host_add(job, job->domain, strlen(job->domain), 0, 0, 1);
	} else {
		for (size_t i = 0; i < rt->nhosts; i++) {
			const struct config_route_host *rh = &rt->hosts[i];
			struct ob_host *h = host_add(job, rh->name, strlen(rh->name),
						     (unsigned)i, rh->port, 0);

			if (h == NULL)
				continue;
			h->mx_lookup = rh->mx_lookup;
			if (rh->is_literal_ip) {
				h->literal = 1;
				if (rh->addr.ss_family == AF_INET) {
					memcpy(h->a4[0], &((const struct sockaddr_in *)&rh->addr)->sin_addr, 4);
					h->n4 = 1;
				} else {
					memcpy(h->a6[0], &((const struct sockaddr_in6 *)&rh->addr)->sin6_addr, 16);
					h->n6 = 1;
				}
			}
		}
	}
	for (size_t i = 0; i < rs->nhosts; i++) {
		struct ob_host *h = &rs->hosts[i];

		if (rt->via == ROUTE_VIA_MX || h->mx_lookup)
			(void)lookup_start(job, i, DNS_T_MX, h->name);
	}
	if (job->lookups == 0)
		mx_addresses(job);
}

void
outbound_mx_fini(struct outbound_job *job)
{
	outbound_mx_cancel(job);
	if (job->rs != NULL)
		free(job->rs->lookups);
	free(job->rs);
	job->rs = NULL;
}
