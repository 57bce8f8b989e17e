/*
 * policy_config.c - the chains of a configuration snapshot: built from the
 * [policy] lists when the snapshot loads (policy_attach), so a bad list is
 * a configuration error that `postern check` and SIGHUP report with its
 * line, and a session takes the chain of the generation it began with.
 */
#include "policy.h"

#include <stdlib.h>
#include <string.h>

#include "policy_checks.h"
#include "access_map.h"

_Static_assert(POLICY_STAGE__COUNT == CONFIG_POLICY_STAGES,
	       "config_policy_stages names the stages of enum policy_stage");

/* One listener's chain, when it overrides any stage. */
struct listener_chain {
	char *name;			/* owned: [listen.NAME] */
	struct policy_chain *chain;
};

struct policy_config {
	struct policy_chain *chain;	/* the [policy] lists */
	struct listener_chain *per;	/* owned */
	size_t nper;
	struct access_map *access;	/* access.file; NULL: none */
};

static const char *const stage_options[POLICY_STAGE__COUNT] = {
	"policy.connect", "policy.helo", "policy.mail", "policy.rcpt", "policy.data",
	"policy.end_of_data",
};

static void
policy_config_free(void **pp)
{
	struct policy_config *pc = *pp;

	if (pc == NULL)
		return;
	policy_chain_free(&pc->chain);
	for (size_t i = 0; i < pc->nper; i++) {
		free(pc->per[i].name);
		policy_chain_free(&pc->per[i].chain);
	}
	free(pc->per);
	access_map_free(&pc->access);
	free(pc);
	*pp = NULL;
}

static const struct config_list *
stage_list(const struct config *cfg, enum policy_stage stage)
{
	switch (stage) {
	case POLICY_STAGE_CONNECT: return &cfg->policy_connect;
	case POLICY_STAGE_HELO: return &cfg->policy_helo;
	case POLICY_STAGE_MAIL: return &cfg->policy_mail;
	case POLICY_STAGE_RCPT: return &cfg->policy_rcpt;
	case POLICY_STAGE_DATA: return &cfg->policy_data;
	case POLICY_STAGE_END_OF_DATA: return &cfg->policy_end_of_data;
	case POLICY_STAGE__COUNT: break;
	}
	return NULL;
}

static struct policy_chain *
chain_new(const struct config *cfg)
{
	struct policy_chain *c = policy_chain_new(policy_registry, policy_registry_len,
						  (uint64_t)cfg->policy_check_timeout * 1000u,
						  COND_POLICY_CHECK_TIMEOUT);

	policy_chain_set_score_limit(c, (int)cfg->policy_reject_score, COND_POLICY_SCORE_REJECT);
	return c;
}

/* Sets one stage from a list; a bad name is reported by report(). */
static int
chain_stage(struct policy_chain *c, enum policy_stage st, const struct config_list *l,
	    const char **err, const char **bad)
{
	size_t i = 0;

	if (policy_chain_set(c, st, (const char *const *)l->v, l->n, err, &i) == 0)
		return 0;
	*bad = i < l->n ? l->v[i] : "";
	return -1;
}

void
policy_attach(struct config *cfg, struct config_load *ld, struct diag *diags)
{
	struct policy_config *pc = xcalloc(1, sizeof(*pc));
	const char *err = NULL, *bad = NULL;

	pc->chain = chain_new(cfg);
	/* a bad line is in diags: the load fails and a reload keeps the old
	 * generation, map included */
	if (cfg->access_file[0] != '\0')
		pc->access = access_map_load(cfg->access_file, "access.file", diags);
	for (int st = 0; st < POLICY_STAGE__COUNT; st++)
		if (chain_stage(pc->chain, (enum policy_stage)st, stage_list(cfg, (enum policy_stage)st),
				&err, &bad) < 0)
			config_option_diag(ld, stage_options[st], "%s%s%s", err, bad[0] ? ": " : "",
					   bad);
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct config_listener *l = &cfg->listeners[i];
		int any = 0;

		for (int st = 0; st < POLICY_STAGE__COUNT; st++)
			any |= l->policy_given[st];
		if (!any)
			continue;
		struct policy_chain *c = chain_new(cfg);
		for (int st = 0; st < POLICY_STAGE__COUNT; st++) {
			const struct config_list *list = l->policy_given[st]
				? &l->policy[st] : stage_list(cfg, (enum policy_stage)st);

			if (chain_stage(c, (enum policy_stage)st, list, &err, &bad) < 0 &&
			    l->policy_given[st])
				config_listener_policy_diag(ld, i, (unsigned)st, "%s%s%s", err,
							    bad[0] ? ": " : "", bad);
		}
		pc->per = xrealloc(pc->per, (pc->nper + 1) * sizeof(*pc->per));
		pc->per[pc->nper].name = xstrdup(l->name);
		pc->per[pc->nper].chain = c;
		pc->nper++;
	}
	cfg->policy = pc;
	cfg->policy_free = policy_config_free;
}

const struct policy_chain *
policy_chain_of(const struct config *cfg, const struct config_listener *lst)
{
	const struct policy_config *pc = cfg->policy;

	/* lst may belong to an older snapshot: listeners match by name */
	for (size_t i = 0; lst != NULL && i < pc->nper; i++)
		if (strcmp(pc->per[i].name, lst->name) == 0)
			return pc->per[i].chain;
	return pc->chain;
}

const struct access_map *
policy_access_map(const struct config *cfg)
{
	const struct policy_config *pc = cfg != NULL ? cfg->policy : NULL;

	return pc != NULL ? pc->access : NULL;
}
