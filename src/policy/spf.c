/*
 * spf.c - the SPF evaluator (spf.h): check_host() of RFC 7208 as a
 * state machine over asynchronous DNS answers. A stack of frames (the
 * record being run, then each include inside it; a redirect replaces its
 * frame), one query in flight at a time, the lookup and void-lookup
 * counts, the validated PTR names (ptr mechanism, p macro) found once per
 * evaluation, and the exp= explanation of a fail.
 */
#include "spf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "buf.h"
#include "dns.h"

#define FRAMES_MAX (SPF_LOOKUPS_MAX + 2)

enum op { OP_NONE, OP_TXT, OP_A, OP_EXISTS, OP_MX, OP_MX_A, OP_PTR, OP_PTR_A, OP_EXP };

/* Term states: fresh, waiting for its answer, decided, lookup counted. */
enum { T_FRESH, T_WAIT, T_DONE, T_COUNTED };

/* step() results of a term. */
enum { R_NOMATCH, R_MATCH, R_WAIT, R_AGAIN, R_END };

struct frame {
	char domain[DNS_NAME_MAX + 1];
	int redirected;
	struct spf_record *rec;		/* owned; NULL until fetched */
	size_t next;
};

struct spf_eval {
	struct dns_resolver *r;
	spf_done_fn done;
	void *arg;
	int family;
	uint8_t addr[16];
	char sender[SPF_SENDER_MAX], local[SPF_SENDER_MAX], sdomain[256];
	char helo[256], receiver[256];
	struct frame frames[FRAMES_MAX];
	size_t depth;
	unsigned lookups, voids;
	struct dns_query *q;
	enum op op;
	int tstate, tmatch;
	char target[DNS_NAME_MAX + 1];
	char names[SPF_PTR_MAX][DNS_NAME_MAX + 1];
	size_t nnames, iname;
	int ptr_state;			/* 0 not looked up, 1 running, 2 done */
	char valid[SPF_PTR_MAX][DNS_NAME_MAX + 1];
	size_t nvalid;
	int in_exp;			/* looking up or expanding exp= */
	char *exp_text;			/* owned: the explanation's TXT */
	int finished;
	struct spf_outcome out;
};

static const char *const mech_names[] = {
	"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists",
};

static void on_dns(void *arg, const struct dns_answer *ans);

/* Copies src into dst (size octets), cut to fit, NUL-ended. */
static void
text_copy(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);

	memmove(dst, src, n);
	dst[n] = '\0';
}

static void
finish(struct spf_eval *e, enum spf_result res, const char *reason)
{
	if (e->finished)
		return;
	e->finished = 1;
	e->out.result = res;
	text_copy(e->out.reason, sizeof(e->out.reason), reason);
}

static void
query(struct spf_eval *e, const char *name, enum dns_type type, enum op op)
{
	e->op = op;
	e->q = dns_query(e->r, name, type, on_dns, e);
}

static enum dns_type
addr_type(const struct spf_eval *e)
{
	return e->family == AF_INET6 ? DNS_T_AAAA : DNS_T_A;
}

static int
prefix_match(const uint8_t *a, const uint8_t *b, int bits)
{
	int full = bits / 8, rest = bits % 8;

	if (memcmp(a, b, (size_t)full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	uint8_t mask = (uint8_t)(0xFF << (8 - rest));
	return (a[full] & mask) == (b[full] & mask);
}

/* The client matches an address record, under the term's CIDR. */
static int
rr_match(const struct spf_eval *e, const struct dns_rr *rr, const struct spf_term *t)
{
	if (rr->family != e->family)
		return 0;
	return prefix_match(e->addr, rr->addr, e->family == AF_INET ? t->cidr4 : t->cidr6);
}

static struct frame *
top(struct spf_eval *e)
{
	return &e->frames[e->depth - 1];
}

static const struct spf_term *
cur_term(struct spf_eval *e)
{
	struct frame *f = top(e);
	return &f->rec->terms[f->next];
}

static void
macro_ctx(const struct spf_eval *e, const char *domain, struct spf_macro_ctx *c)
{
	memset(c, 0, sizeof(*c));
	c->sender = e->sender;
	c->local = e->local;
	c->sender_domain = e->sdomain;
	c->domain = domain;
	c->family = e->family;
	memcpy(c->addr, e->addr, 16);
	c->helo = e->helo;
	c->receiver = e->receiver;
	c->now = (uint64_t)time(NULL);
	c->ptr = NULL;
	/* p: a validated name equal to or under <domain>, else any */
	size_t dl = strlen(domain);
	for (size_t i = 0; i < e->nvalid; i++) {
		size_t n = strlen(e->valid[i]);
		if (strcasecmp(e->valid[i], domain) == 0 ||
		    (n > dl && e->valid[i][n - dl - 1] == '.' &&
		     strcasecmp(e->valid[i] + n - dl, domain) == 0)) {
			c->ptr = e->valid[i];
			return;
		}
	}
	if (e->nvalid > 0)
		c->ptr = e->valid[0];
}

/* Expands a domain-spec into e->target. -1: permerror set. */
static int
expand_target(struct spf_eval *e, const char *spec, size_t len)
{
	char buf[SPF_EXPAND_MAX + 1];
	struct spf_macro_ctx c;

	macro_ctx(e, top(e)->domain, &c);
	if (spf_macro_expand(spec, len, &c, 0, buf, sizeof(buf)) < 0) {
		finish(e, SPF_PERMERROR, "macro expansion failed");
		return -1;
	}
	spf_domain_trim(buf);
	text_copy(e->target, sizeof(e->target), buf);
	return 0;
}

static int
count_lookup(struct spf_eval *e)
{
	if (++e->lookups > SPF_LOOKUPS_MAX) {
		finish(e, SPF_PERMERROR, "more than 10 DNS lookups");
		return -1;
	}
	return 0;
}

static int
count_void(struct spf_eval *e)
{
	if (++e->voids > SPF_VOID_MAX) {
		finish(e, SPF_PERMERROR, "more than 2 void lookups");
		return -1;
	}
	return 0;
}

/* Looks up the client's PTR names and keeps those that resolve back. */
static void
ptr_start(struct spf_eval *e)
{
	char rev[128];

	e->ptr_state = 1;
	if (dns_reverse_name(e->family, e->addr, rev, sizeof(rev)) < 0) {
		e->ptr_state = 2;
		return;
	}
	query(e, rev, DNS_T_PTR, OP_PTR);
}

/* One term; may start a query. */
static int
term_eval(struct spf_eval *e)
{
	const struct spf_term *t = cur_term(e);
	struct frame *f = top(e);

	if (e->tstate == T_WAIT)
		return R_WAIT;
	if (e->tstate == T_DONE)
		return e->tmatch ? R_MATCH : R_NOMATCH;
	switch (t->mech) {
	case SPF_M_ALL:
		return R_MATCH;
	case SPF_M_IP4:
		return e->family == AF_INET && prefix_match(e->addr, t->addr, t->cidr4)
			? R_MATCH : R_NOMATCH;
	case SPF_M_IP6:
		return e->family == AF_INET6 && prefix_match(e->addr, t->addr, t->cidr6)
			? R_MATCH : R_NOMATCH;
	}
	if (e->tstate == T_FRESH) {
		if (count_lookup(e) < 0)
			return R_END;
		e->tstate = T_COUNTED;
	}
	const char *spec = t->dom_len ? f->rec->text + t->dom : NULL;
	int need_ptr = t->mech == SPF_M_PTR ||
		       (spec != NULL && spf_macro_uses_p(spec, t->dom_len));
	if (need_ptr && e->ptr_state != 2) {
		if (e->ptr_state == 0)
			ptr_start(e);
		if (e->ptr_state != 2)
			return R_WAIT;
	}
	if (spec != NULL) {
		if (expand_target(e, spec, t->dom_len) < 0)
			return R_END;
	} else {
		text_copy(e->target, sizeof(e->target), f->domain);
	}
	switch (t->mech) {
	case SPF_M_INCLUDE:
		if (e->depth >= FRAMES_MAX) {
			finish(e, SPF_PERMERROR, "includes nested too deep");
			return R_END;
		}
		e->tstate = T_WAIT;
		struct frame *nf = &e->frames[e->depth++];
		memset(nf, 0, sizeof(*nf));
		text_copy(nf->domain, sizeof(nf->domain), e->target);
		return R_AGAIN;
	case SPF_M_PTR: {
		size_t tl = strlen(e->target);
		for (size_t i = 0; i < e->nvalid; i++) {
			size_t n = strlen(e->valid[i]);
			if (strcasecmp(e->valid[i], e->target) == 0 ||
			    (n > tl && e->valid[i][n - tl - 1] == '.' &&
			     strcasecmp(e->valid[i] + n - tl, e->target) == 0))
				return R_MATCH;
		}
		return R_NOMATCH;
	}
	case SPF_M_A:
		e->tstate = T_WAIT;
		query(e, e->target, addr_type(e), OP_A);
		return R_WAIT;
	case SPF_M_EXISTS:
		e->tstate = T_WAIT;
		query(e, e->target, DNS_T_A, OP_EXISTS);
		return R_WAIT;
	case SPF_M_MX:
		e->tstate = T_WAIT;
		query(e, e->target, DNS_T_MX, OP_MX);
		return R_WAIT;
	}
	return R_NOMATCH;
}

/* A frame matched a term (or ended) with res. */
static void
frame_done(struct spf_eval *e, enum spf_result res, const char *reason)
{
	struct frame *f = top(e);

	if (e->depth == 1) {
		if (res == SPF_FAIL && f->rec != NULL && f->rec->exp_len != 0) {
			char buf[SPF_EXPAND_MAX + 1];
			struct spf_macro_ctx c;

			text_copy(e->out.reason, sizeof(e->out.reason), reason);
			macro_ctx(e, f->domain, &c);
			if (spf_macro_expand(f->rec->text + f->rec->exp, f->rec->exp_len, &c, 0,
					     buf, sizeof(buf)) >= 0 && buf[0] != '\0') {
				spf_domain_trim(buf);
				e->in_exp = 1;
				query(e, buf, DNS_T_TXT, OP_EXP);
				return;
			}
		}
		finish(e, res, reason);
		return;
	}
	free(f->rec);
	f->rec = NULL;
	e->depth--;
	e->tstate = T_DONE;
	e->tmatch = res == SPF_PASS;
}

static void
step(struct spf_eval *e)
{
	while (!e->finished && !e->in_exp && e->q == NULL) {
		struct frame *f = top(e);

		if (f->rec == NULL) {
			query(e, f->domain, DNS_T_TXT, OP_TXT);
			return;
		}
		if (f->next < f->rec->nterms) {
			const struct spf_term *t = cur_term(e);
			int r = term_eval(e);
			if (r == R_WAIT || r == R_END)
				return;
			if (r == R_AGAIN)
				continue;
			if (r == R_MATCH) {
				char why[64];
				text_copy(why, sizeof(why), mech_names[t->mech]);
				e->tstate = T_FRESH;
				frame_done(e, (enum spf_result)t->result, why);
				continue;
			}
			f->next++;
			e->tstate = T_FRESH;
			continue;
		}
		if (f->rec->redirect_len != 0) {
			if (count_lookup(e) < 0)
				return;
			struct spf_record *rec = f->rec;
			if (expand_target(e, rec->text + rec->redirect, rec->redirect_len) < 0)
				return;
			free(rec);
			f->rec = NULL;
			f->next = 0;
			f->redirected = 1;
			text_copy(f->domain, sizeof(f->domain), e->target);
			continue;
		}
		frame_done(e, SPF_NEUTRAL, "default");
	}
}

static void
on_txt(struct spf_eval *e, const struct dns_answer *ans)
{
	struct frame *f = top(e);
	const struct dns_rr *rec = NULL;
	size_t n = 0;

	if (ans->status == DNS_TEMPFAIL) {
		finish(e, SPF_TEMPERROR, "DNS error looking up the record");
		return;
	}
	for (size_t i = 0; ans->status == DNS_OK && i < ans->n; i++)
		if (ans->rr[i].txt != NULL && spf_record_is_spf(ans->rr[i].txt, ans->rr[i].txt_len)) {
			rec = &ans->rr[i];
			n++;
		}
	if (n > 1) {
		finish(e, SPF_PERMERROR, "more than one SPF record");
		return;
	}
	if (n == 0) {
		if (e->depth == 1 && !f->redirected)
			finish(e, SPF_NONE, "no SPF record");
		else
			finish(e, SPF_PERMERROR, "no SPF record for include or redirect");
		return;
	}
	const char *err;
	f->rec = xmalloc(sizeof(*f->rec));
	f->next = 0;
	e->tstate = T_FRESH;
	if (spf_record_parse(rec->txt, rec->txt_len, f->rec, &err) < 0)
		finish(e, SPF_PERMERROR, err);
}

/* Expands the explanation (after the PTR names when it uses %{p}). */
static void
exp_finish(struct spf_eval *e)
{
	if (e->exp_text != NULL && spf_macro_uses_p(e->exp_text, strlen(e->exp_text)) &&
	    e->ptr_state != 2) {
		if (e->ptr_state == 0)
			ptr_start(e);
		if (e->ptr_state != 2)
			return;
	}
	if (e->exp_text != NULL) {
		struct spf_macro_ctx c;
		char buf[SPF_EXPAND_MAX + 1];

		macro_ctx(e, top(e)->domain, &c);
		if (spf_macro_expand(e->exp_text, strlen(e->exp_text), &c, 1, buf,
				     sizeof(buf)) >= 0)
			text_copy(e->out.explanation, sizeof(e->out.explanation), buf);
	}
	char reason[sizeof(e->out.reason)];
	memcpy(reason, e->out.reason, sizeof(reason));
	finish(e, SPF_FAIL, reason);
}

static void
on_exp(struct spf_eval *e, const struct dns_answer *ans)
{
	if (ans->status == DNS_OK && ans->n == 1 && ans->rr[0].txt != NULL) {
		int ok = ans->rr[0].txt_len <= SPF_EXPAND_MAX;

		for (size_t i = 0; ok && i < ans->rr[0].txt_len; i++) {
			unsigned char ch = (unsigned char)ans->rr[0].txt[i];
			if (ch < 0x20 || ch >= 0x7F)
				ok = 0;
		}
		if (ok)
			e->exp_text = xstrdup(ans->rr[0].txt);
	}
	exp_finish(e);
}

/* The next PTR name to check for the client's address. */
static void
ptr_next(struct spf_eval *e)
{
	if (e->iname < e->nnames) {
		query(e, e->names[e->iname], addr_type(e), OP_PTR_A);
		return;
	}
	e->ptr_state = 2;
}

static void
on_dns(void *arg, const struct dns_answer *ans)
{
	struct spf_eval *e = arg;
	const struct spf_term *t;
	int void_ans = ans->status == DNS_NXDOMAIN || ans->status == DNS_NODATA;

	e->q = NULL;
	switch (e->op) {
	case OP_NONE:
		break;
	case OP_TXT:
		on_txt(e, ans);
		break;
	case OP_EXP:
		on_exp(e, ans);
		break;
	case OP_A:
	case OP_EXISTS:
		t = cur_term(e);
		if (ans->status == DNS_TEMPFAIL) {
			finish(e, SPF_TEMPERROR, "DNS error");
			break;
		}
		if (void_ans && count_void(e) < 0)
			break;
		e->tstate = T_DONE;
		e->tmatch = 0;
		for (size_t i = 0; ans->status == DNS_OK && i < ans->n; i++)
			if (e->op == OP_EXISTS ? ans->rr[i].family == AF_INET
					       : rr_match(e, &ans->rr[i], t))
				e->tmatch = 1;
		break;
	case OP_MX:
		if (ans->status == DNS_TEMPFAIL) {
			finish(e, SPF_TEMPERROR, "DNS error");
			break;
		}
		if (void_ans && count_void(e) < 0)
			break;
		if (ans->status == DNS_OK && ans->n > SPF_MX_MAX) {
			finish(e, SPF_PERMERROR, "more than 10 MX names");
			break;
		}
		e->nnames = e->iname = 0;
		for (size_t i = 0; ans->status == DNS_OK && i < ans->n; i++)
			if (ans->rr[i].name != NULL && ans->rr[i].name[0] != '\0')
				text_copy(e->names[e->nnames++], DNS_NAME_MAX + 1, ans->rr[i].name);
		if (e->nnames == 0) {
			e->tstate = T_DONE;
			e->tmatch = 0;
			break;
		}
		query(e, e->names[0], addr_type(e), OP_MX_A);
		break;
	case OP_MX_A:
		t = cur_term(e);
		if (ans->status == DNS_TEMPFAIL) {
			finish(e, SPF_TEMPERROR, "DNS error");
			break;
		}
		for (size_t i = 0; ans->status == DNS_OK && i < ans->n; i++)
			if (rr_match(e, &ans->rr[i], t)) {
				e->tstate = T_DONE;
				e->tmatch = 1;
				break;
			}
		if (e->tstate == T_DONE)
			break;
		if (++e->iname < e->nnames) {
			query(e, e->names[e->iname], addr_type(e), OP_MX_A);
			break;
		}
		e->tstate = T_DONE;
		e->tmatch = 0;
		break;
	case OP_PTR:
		if (void_ans && count_void(e) < 0)
			break;
		e->nnames = e->iname = 0;
		for (size_t i = 0; ans->status == DNS_OK && i < ans->n && e->nnames < SPF_PTR_MAX; i++)
			if (ans->rr[i].name != NULL && ans->rr[i].name[0] != '\0')
				text_copy(e->names[e->nnames++], DNS_NAME_MAX + 1, ans->rr[i].name);
		ptr_next(e);
		break;
	case OP_PTR_A:
		for (size_t i = 0; ans->status == DNS_OK && i < ans->n; i++)
			if (ans->rr[i].family == e->family &&
			    memcmp(ans->rr[i].addr, e->addr, e->family == AF_INET ? 4 : 16) == 0) {
				text_copy(e->valid[e->nvalid++], DNS_NAME_MAX + 1, e->names[e->iname]);
				break;
			}
		e->iname++;
		ptr_next(e);
		break;
	}
	if (e->q == NULL && e->in_exp && e->op != OP_EXP)
		exp_finish(e);
	if (e->q == NULL)
		step(e);
	if (e->finished) {
		free(e->exp_text);
		for (size_t i = 0; i < e->depth; i++)
			free(e->frames[i].rec);
		e->done(e->arg, &e->out);
		free(e);
	}
}

/* RFC 7208 4.3: a multi-label name, labels of 1..63 octets. */
static int
domain_valid(const char *d)
{
	size_t n = strlen(d), label = 0, labels = 0;

	if (n == 0 || n > 253 || d[0] == '.')
		return 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || d[i] == '.') {
			if (label == 0)
				return i == n && i > 0 && labels >= 2;
			if (label > 63)
				return 0;
			labels++;
			label = 0;
		} else {
			label++;
		}
	}
	return labels >= 2;
}

struct spf_eval *
spf_start(struct dns_resolver *r, const struct spf_request *req, spf_done_fn done, void *arg)
{
	struct spf_eval *e = xcalloc(1, sizeof(*e));
	const char *helo = req->helo != NULL ? req->helo : "";
	const char *sender = req->sender != NULL ? req->sender : "";

	e->r = r;
	e->done = done;
	e->arg = arg;
	e->family = req->family;
	memcpy(e->addr, req->addr, 16);
	text_copy(e->helo, sizeof(e->helo), helo);
	text_copy(e->receiver, sizeof(e->receiver), req->receiver != NULL ? req->receiver : "");
	e->out.identity = req->helo_identity ? "helo" : "mailfrom";
	const char *at = req->helo_identity ? NULL : strrchr(sender, '@');
	if (req->helo_identity || sender[0] == '\0') {
		snprintf(e->local, sizeof(e->local), "postmaster");
		text_copy(e->sdomain, sizeof(e->sdomain), helo);
	} else if (at == NULL) {
		snprintf(e->local, sizeof(e->local), "postmaster");
		text_copy(e->sdomain, sizeof(e->sdomain), sender);
	} else {
		size_t ll = (size_t)(at - sender);
		if (ll == 0)
			snprintf(e->local, sizeof(e->local), "postmaster");
		else
			snprintf(e->local, sizeof(e->local), "%.*s", (int)ll, sender);
		text_copy(e->sdomain, sizeof(e->sdomain), at + 1);
	}
	if ((size_t)snprintf(e->sender, sizeof(e->sender), "%.255s@%.255s", e->local,
			     e->sdomain) >= sizeof(e->sender))
		e->sender[sizeof(e->sender) - 1] = '\0';
	text_copy(e->out.sender, sizeof(e->out.sender), e->sender);
	text_copy(e->out.domain, sizeof(e->out.domain), e->sdomain);
	if (!domain_valid(e->sdomain)) {
		struct spf_outcome out = e->out;
		out.result = SPF_NONE;
		snprintf(out.reason, sizeof(out.reason), "not a valid domain");
		free(e);
		done(arg, &out);
		return NULL;
	}
	e->depth = 1;
	text_copy(e->frames[0].domain, sizeof(e->frames[0].domain), e->sdomain);
	spf_domain_trim(e->frames[0].domain);
	step(e);
	return e;
}

void
spf_cancel(struct spf_eval *e)
{
	if (e == NULL)
		return;
	if (e->q != NULL)
		dns_cancel(e->q);
	for (size_t i = 0; i < e->depth; i++)
		free(e->frames[i].rec);
	free(e->exp_text);
	free(e);
}
