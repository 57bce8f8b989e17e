/*
 * directory_resolve.c - address resolution at RCPT time: one recipient
 * address to its final destinations through accounts, plus-addressing,
 * aliases, distribution lists, forwards, the domain's catch-all and the
 * implicit postmaster (see directory_resolve() in directory.h).
 *
 * A depth-first walk over the directory with three bounds: the depth
 * (local.alias_max_depth), the number of distinct destinations
 * (RESOLVE_MAX_TARGETS) and the number of steps (RESOLVE_MAX_STEPS).
 * Each account, alias or list is expanded at most once per call: a node
 * met again while it is being expanded is a loop (refused), a node met
 * again after it is done adds nothing (a diamond, not a loop). Pure: no
 * I/O, no global state, only hash lookups; the call's scratch memory is
 * freed before it returns.
 *
 * Rules, in order, for each address in a local domain:
 *  1. disabled domain: RCPT-DOMAIN-DISABLED;
 *  2. an account, alias or list with exactly this local part;
 *  3. with plus-addressing, the part before the first separator;
 *  4. postmaster (RFC 5321 4.5.1): the mailbox postmaster@domain;
 *  5. the domain's catch-all, only for the address given at RCPT; an
 *     alias, member or forward naming a missing address is dangling.
 * The RCPT address's own state refuses it (disabled, spam trap, list
 * rules). A disabled or refusing address met deeper is skipped; if nothing
 * is left, the first skipped one's reason is the refusal. Loops, dangling
 * targets and oversized expansions refuse the whole address.
 */
#include "directory.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "directory_private.h"

#define RESOLVE_MAX_STEPS 100000u	/* addresses looked at in one call */
#define RESOLVE_DEPTH_MAX 100u		/* local.alias_max_depth's maximum */
#define RESOLVE_DEPTH_DEFAULT 20u
#define RESOLVE_KEY_MAX 600		/* "local@domain" for lookups */

enum { VISIT_ON_PATH = 1, VISIT_DONE = 2 };

struct visit {
	char *key;		/* owned: "local@domain" of the node */
	int state;
};

struct rs {
	const struct directory *dir;
	const struct resolve_ctx *ctx;
	struct resolve_result *out;
	unsigned max_depth;
	unsigned steps;
	struct visit *vis;	/* open addressing; key NULL = empty */
	size_t vslots, vn;
	uint32_t *tset;		/* slot -> target number + 1 */
	size_t tslots, tcap;
	const char *path[RESOLVE_DEPTH_MAX + 2];	/* keys on the current path */
	unsigned npath;
	enum cond_id fatal;	/* COND__COUNT while none */
	const char *fatal_key;
	char fatal_detail[256];
	enum cond_id skip;	/* first skipped destination's reason */
	const char *skip_key;
	char skip_detail[256];
	const char *route;	/* how the RCPT address itself resolved */
};

/* ---- small helpers ----------------------------------------------------- */

static uint64_t
str_hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

/* Copies s into a fixed detail array; cuts with "..." if it does not fit
 * (a log detail, not data). */
static void
detail_set(char *dst, size_t size, const char *s)
{
	size_t n = strlen(s);

	if (n < size) {
		memcpy(dst, s, n + 1);
		return;
	}
	memcpy(dst, s, size - 4);
	memcpy(dst + size - 4, "...", 4);
}

static int
is_local(const struct rs *rs, const char *d, size_t dn)
{
	if (rs->ctx->is_local != NULL)
		return rs->ctx->is_local(rs->ctx->arg, d, dn);
	return dir_domain_in(rs->dir->local_domains, rs->dir->nlocal, d, dn);
}

/* "local@domain" lower-cased into key (RESOLVE_KEY_MAX); -1 if too long. */
static int
make_key(char *key, const char *l, size_t ln, const char *d, size_t dn)
{
	if (ln + dn + 2 > RESOLVE_KEY_MAX)
		return -1;
	for (size_t i = 0; i < ln; i++)
		key[i] = (char)dir_lower((unsigned char)l[i]);
	key[ln] = '@';
	for (size_t i = 0; i < dn; i++)
		key[ln + 1 + i] = (char)dir_lower((unsigned char)d[i]);
	key[ln + 1 + dn] = '\0';
	return 0;
}

/* ---- refusals ---------------------------------------------------------- */

static void
fail(struct rs *rs, enum cond_id cond, const char *key, const char *detail)
{
	if (rs->fatal != COND__COUNT)
		return;
	rs->fatal = cond;
	rs->fatal_key = key;
	detail_set(rs->fatal_detail, sizeof(rs->fatal_detail), detail ? detail : "");
}

/* The RCPT address itself refuses; a deeper one is skipped. */
static void
refuse(struct rs *rs, int top, enum cond_id cond, const char *key, const char *detail)
{
	if (top) {
		fail(rs, cond, key, detail);
		return;
	}
	if (rs->skip != COND__COUNT)
		return;
	rs->skip = cond;
	rs->skip_key = key;
	detail_set(rs->skip_detail, sizeof(rs->skip_detail), detail ? detail : "");
}

/* RCPT-ALIAS-LOOP with the chain "a@x > b@x > a@x". */
static void
fail_loop(struct rs *rs, const char *again)
{
	char chain[256];
	size_t len = 0;
	int cut = 0;

	chain[0] = '\0';
	for (unsigned i = 0; i <= rs->npath && !cut; i++) {
		const char *k = i < rs->npath ? rs->path[i] : again;
		size_t kn = strlen(k);

		if (len + kn + 3 + 4 >= sizeof(chain)) {
			cut = 1;
			break;
		}
		if (i > 0) {
			memcpy(chain + len, " > ", 3);
			len += 3;
		}
		memcpy(chain + len, k, kn);
		len += kn;
	}
	if (cut) {
		memcpy(chain + len, " ...", 4);
		len += 4;
	}
	chain[len] = '\0';
	fail(rs, COND_RCPT_ALIAS_LOOP, "chain", chain);
}

/* ---- destinations ------------------------------------------------------ */

static size_t
tset_slot(const struct rs *rs, const char *addr)
{
	size_t mask = rs->tslots - 1;
	size_t i = (size_t)str_hash(addr, strlen(addr)) & mask;

	for (;;) {
		uint32_t e = rs->tset[i];

		if (e == 0 || strcmp(rs->out->targets[e - 1].addr, addr) == 0)
			return i;
		i = (i + 1) & mask;
	}
}

/* Adds a destination (addr malloc'ed, taken over) unless already there. */
static void
target_add(struct rs *rs, char *addr, int local, const struct account *acct)
{
	struct resolve_result *out = rs->out;
	size_t slot;

	if (rs->tslots == 0) {
		rs->tslots = 64;
		rs->tset = xcalloc(rs->tslots, sizeof(*rs->tset));
	}
	slot = tset_slot(rs, addr);
	if (rs->tset[slot] != 0) {
		free(addr);
		return;
	}
	if (out->ntargets >= RESOLVE_MAX_TARGETS) {
		char n[32];

		free(addr);
		if (snprintf(n, sizeof(n), "%u", RESOLVE_MAX_TARGETS + 1) < 0)
			n[0] = '\0';
		fail(rs, COND_RCPT_EXPANSION_TOO_LARGE, "count", n);
		return;
	}
	if (out->ntargets == rs->tcap) {
		rs->tcap = rs->tcap ? rs->tcap * 2 : 4;
		out->targets = xrealloc(out->targets, rs->tcap * sizeof(*out->targets));
	}
	out->targets[out->ntargets].addr = addr;
	out->targets[out->ntargets].local = local;
	out->targets[out->ntargets].acct = acct;
	out->ntargets++;
	rs->tset[slot] = (uint32_t)out->ntargets;
	if (out->ntargets * 2 > rs->tslots) {
		free(rs->tset);
		rs->tslots *= 2;
		rs->tset = xcalloc(rs->tslots, sizeof(*rs->tset));
		for (size_t k = 0; k < out->ntargets; k++)
			rs->tset[tset_slot(rs, out->targets[k].addr)] = (uint32_t)(k + 1);
	}
}

/* A remote destination: local part as written, domain lower-cased. */
static void
target_remote(struct rs *rs, const char *l, size_t ln, const char *d, size_t dn)
{
	char *addr = xmalloc(ln + dn + 2);

	memcpy(addr, l, ln);
	addr[ln] = '@';
	for (size_t i = 0; i < dn; i++)
		addr[ln + 1 + i] = (char)dir_lower((unsigned char)d[i]);
	addr[ln + 1 + dn] = '\0';
	target_add(rs, addr, 0, NULL);
}

/* ---- visited nodes ----------------------------------------------------- */

static size_t
visit_slot(const struct rs *rs, const char *key)
{
	size_t mask = rs->vslots - 1;
	size_t i = (size_t)str_hash(key, strlen(key)) & mask;

	while (rs->vis[i].key != NULL && strcmp(rs->vis[i].key, key) != 0)
		i = (i + 1) & mask;
	return i;
}

/* The node for key, created (state 0) if new. */
static struct visit *
visit_get(struct rs *rs, const char *key)
{
	size_t slot;

	if (rs->vn * 2 >= rs->vslots) {
		struct visit *old = rs->vis;
		size_t n = rs->vslots;

		rs->vslots = n ? n * 2 : 64;
		rs->vis = xcalloc(rs->vslots, sizeof(*rs->vis));
		for (size_t i = 0; i < n; i++)
			if (old[i].key != NULL)
				rs->vis[visit_slot(rs, old[i].key)] = old[i];
		free(old);
	}
	slot = visit_slot(rs, key);
	if (rs->vis[slot].key == NULL) {
		rs->vis[slot].key = xstrdup(key);
		rs->vis[slot].state = 0;
		rs->vn++;
	}
	return &rs->vis[slot];
}

/* ---- the walk ---------------------------------------------------------- */

/* 1 if the envelope sender may post to list e. */
static int
list_admits(const struct dir_entry *e, const char *sender, size_t sn)
{
	if (e->senders_mode & DIR_SENDERS_ANYONE)
		return 1;
	if (sn == 0)
		return 0;	/* <>: only open lists */
	if (e->senders_mode & DIR_SENDERS_MEMBERS)
		for (size_t i = 0; i < e->ntargets; i++)
			if (strlen(e->targets[i]) == sn && strncasecmp(e->targets[i], sender, sn) == 0)
				return 1;
	if (e->senders_mode & DIR_SENDERS_LISTED) {
		const char *at = NULL;

		for (size_t i = sn; i > 0; i--)
			if (sender[i - 1] == '@') {
				at = sender + i - 1;
				break;
			}
		for (size_t i = 0; i < e->nsenders; i++) {
			const char *s = e->senders[i];
			const char *want = s[0] == '@' ? at : sender;
			size_t wn = s[0] == '@' ? (at ? (size_t)(sender + sn - at) : 0) : sn;

			if (want != NULL && strlen(s) == wn && strncasecmp(s, want, wn) == 0)
				return 1;
		}
	}
	return 0;
}

static void expand(struct rs *rs, const char *l, size_t ln, const char *d, size_t dn,
		   unsigned depth, int top);

/* Expands "local@domain" strings (forward= lists are comma-separated). */
static void
expand_addr(struct rs *rs, const char *a, size_t n, unsigned depth)
{
	for (size_t i = n; i > 0; i--) {
		if (a[i - 1] == '@') {
			expand(rs, a, i - 1, a + i, n - i, depth, 0);
			return;
		}
	}
	/* addresses were checked at load: cannot happen */
	fail(rs, COND_RCPT_ALIAS_DANGLING, "target", a);
}

static void
expand_account(struct rs *rs, const struct account *acct, const char *key, unsigned depth,
	       int top)
{
	if (acct->spamtrap) {
		refuse(rs, top, COND_RCPT_SPAMTRAP, NULL, key);
		return;
	}
	if (acct->disabled) {
		refuse(rs, top, COND_RCPT_MAILBOX_DISABLED, NULL, key);
		return;
	}
	if (acct->forward == NULL || acct->forward_keep)
		target_add(rs, xasprintf("%s@%s", acct->local, acct->domain), 1, acct);
	if (acct->forward == NULL)
		return;
	if (top)
		rs->route = "forward";
	for (const char *p = acct->forward; *p != '\0' && rs->fatal == COND__COUNT;) {
		const char *c = strchr(p, ',');
		size_t n = c ? (size_t)(c - p) : strlen(p);

		expand_addr(rs, p, n, depth + 1);
		p += n + (c ? 1 : 0);
	}
}

static void
expand_entry(struct rs *rs, const struct dir_entry *e, const char *key, unsigned depth, int top)
{
	if (e->disabled) {
		refuse(rs, top, COND_RCPT_ALIAS_DISABLED, "kind",
		       e->kind == DIR_LIST ? "list" : "alias");
		return;
	}
	if (e->spamtrap) {
		refuse(rs, top, COND_RCPT_SPAMTRAP, NULL, key);
		return;
	}
	if (e->kind == DIR_LIST) {
		if (!list_admits(e, rs->ctx->sender ? rs->ctx->sender : "", rs->ctx->sender_len)) {
			refuse(rs, top, COND_RCPT_LIST_NOT_AUTHORIZED, NULL, key);
			return;
		}
		if (e->ntargets == 0) {
			refuse(rs, top, COND_RCPT_LIST_EMPTY, NULL, key);
			return;
		}
	}
	for (size_t i = 0; i < e->ntargets && rs->fatal == COND__COUNT; i++)
		expand_addr(rs, e->targets[i], strlen(e->targets[i]), depth + 1);
}

static void
expand(struct rs *rs, const char *l, size_t ln, const char *d, size_t dn, unsigned depth, int top)
{
	const struct directory *dir = rs->dir;
	const struct account *acct;
	const struct dir_entry *e;
	const char *route = "local";
	char key[RESOLVE_KEY_MAX];
	struct visit *v;
	size_t base;

	if (rs->fatal != COND__COUNT)
		return;
	if (++rs->steps > RESOLVE_MAX_STEPS) {
		char n[32];

		if (snprintf(n, sizeof(n), "more than %u steps", RESOLVE_MAX_STEPS) < 0)
			n[0] = '\0';
		fail(rs, COND_RCPT_EXPANSION_TOO_LARGE, "count", n);
		return;
	}
	if (dn > 1 && d[dn - 1] == '.')
		dn--;
	if (!is_local(rs, d, dn)) {
		target_remote(rs, l, ln, d, dn);
		return;
	}
	if (make_key(key, l, ln, d, dn) < 0) {
		if (top)
			fail(rs, COND_RCPT_UNKNOWN_USER, NULL, NULL);
		else
			fail(rs, COND_RCPT_ALIAS_DANGLING, "target", "(address too long)");
		return;
	}
	if (dir_domain_in(dir->disabled_domains, dir->ndisabled, d, dn)) {
		refuse(rs, top, COND_RCPT_DOMAIN_DISABLED, "domain", key + ln + 1);
		return;
	}
	if (depth > rs->out->depth)
		rs->out->depth = depth;
	if (depth > rs->max_depth) {
		fail_loop(rs, key);
		return;
	}

	acct = directory_find(dir, l, ln, d, dn);
	e = acct ? NULL : dir_entry_find(dir, l, ln, d, dn);
	base = ln;
	if (acct == NULL && e == NULL && rs->ctx->plus_addressing && rs->ctx->plus_sep != '\0') {
		const char *sep = memchr(l, rs->ctx->plus_sep, ln);

		if (sep != NULL && sep > l) {
			base = (size_t)(sep - l);
			acct = directory_find(dir, l, base, d, dn);
			e = acct ? NULL : dir_entry_find(dir, l, base, d, dn);
		}
	}
	if (acct == NULL && e == NULL) {
		if (base == 10 && strncasecmp(l, "postmaster", 10) == 0) {
			/* RFC 5321 4.5.1: always accepted, even without an account */
			target_add(rs, xasprintf("postmaster@%s", key + ln + 1), 1, NULL);
			if (top)
				rs->route = "postmaster";
			return;
		}
		if (top)
			e = dir_entry_find(dir, "", 0, d, dn);
		if (e == NULL) {
			if (top)
				fail(rs, COND_RCPT_UNKNOWN_USER, NULL, NULL);
			else
				fail(rs, COND_RCPT_ALIAS_DANGLING, "target", key);
			return;
		}
		route = "catchall";
	} else if (e != NULL) {
		route = e->kind == DIR_LIST ? "list" : "alias";
	}
	if (top)
		rs->route = route;

	/* the node is the account or entry found, whatever name led to it */
	if (acct != NULL) {
		if (make_key(key, acct->local, strlen(acct->local), acct->domain,
			     strlen(acct->domain)) < 0)
			PANIC("account name longer than its check allows");
	} else if (make_key(key, e->local, strlen(e->local), e->domain, strlen(e->domain)) < 0) {
		PANIC("alias name longer than its check allows");
	}
	v = visit_get(rs, key);
	if (v->state == VISIT_ON_PATH) {
		fail_loop(rs, v->key);
		return;
	}
	if (v->state == VISIT_DONE)
		return;
	v->state = VISIT_ON_PATH;
	const char *node = v->key;	/* stable: the table moves structs, not keys */

	rs->path[rs->npath++] = node;
	if (acct != NULL)
		expand_account(rs, acct, node, depth, top);
	else
		expand_entry(rs, e, node, depth, top);
	if (rs->fatal != COND__COUNT)
		return;
	rs->npath--;
	/* look it up again: expanding may have grown the table */
	visit_get(rs, node)->state = VISIT_DONE;
}

/* ---- entry point ------------------------------------------------------- */

void
resolve_result_fini(struct resolve_result *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->ntargets; i++)
		free(r->targets[i].addr);
	free(r->targets);
	r->targets = NULL;
	r->ntargets = 0;
}

int
directory_resolve(const struct directory *dir, const struct resolve_ctx *ctx, const char *local,
		  size_t local_len, const char *domain, size_t domain_len,
		  struct resolve_result *out)
{
	struct directory empty;
	struct rs rs;

	if (out == NULL)
		return -1;
	memset(out, 0, sizeof(*out));
	out->cond = COND__COUNT;
	if (ctx == NULL || local == NULL || domain == NULL || domain_len == 0) {
		out->cond = COND_RCPT_UNKNOWN_USER;
		return -1;
	}
	if (dir == NULL) {
		memset(&empty, 0, sizeof(empty));
		dir = &empty;
	}
	memset(&rs, 0, sizeof(rs));
	rs.dir = dir;
	rs.ctx = ctx;
	rs.out = out;
	rs.max_depth = ctx->max_depth == 0 ? RESOLVE_DEPTH_DEFAULT : ctx->max_depth;
	if (rs.max_depth > RESOLVE_DEPTH_MAX)
		rs.max_depth = RESOLVE_DEPTH_MAX;
	rs.fatal = rs.skip = COND__COUNT;
	rs.route = "relay";

	expand(&rs, local, local_len, domain, domain_len, 0, 1);

	if (rs.fatal != COND__COUNT) {
		out->cond = rs.fatal;
		out->detail_key = rs.fatal_key;
		memcpy(out->detail, rs.fatal_detail, sizeof(out->detail));
		resolve_result_fini(out);
	} else if (out->ntargets == 0) {
		out->cond = rs.skip != COND__COUNT ? rs.skip : COND_RCPT_UNKNOWN_USER;
		out->detail_key = rs.skip_key;
		memcpy(out->detail, rs.skip_detail, sizeof(out->detail));
	} else {
		out->detail_key = "route";
		detail_set(out->detail, sizeof(out->detail), rs.route);
	}
	for (size_t i = 0; i < rs.vslots; i++)
		free(rs.vis[i].key);
	free(rs.vis);
	free(rs.tset);
	return 0;
}
