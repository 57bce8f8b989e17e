/*
 * policy_config.c - the chains of a configuration snapshot: built from the
 * [policy] lists when the snapshot loads (policy_attach), so a bad list is
 * a configuration error that `postern check` and SIGHUP report with its
 * line, and a session takes the chain of the generation it began with.
 */
#include "policy/policy.h"

#include <stdlib.h>

#include "policy/policy_checks.h"

struct policy_config {
	struct policy_chain *chain;	/* the [policy] lists */
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

void
policy_attach(struct config *cfg, struct config_load *ld, struct diag *diags)
{
	struct policy_config *pc = xcalloc(1, sizeof(*pc));

	(void)diags;
	pc->chain = policy_chain_new(policy_registry, policy_registry_len,
				     (uint64_t)cfg->policy_check_timeout * 1000u,
				     COND_POLICY_CHECK_TIMEOUT);
	policy_chain_set_score_limit(pc->chain, (int)cfg->policy_reject_score,
				     COND_POLICY_SCORE_REJECT);
	for (int st = 0; st < POLICY_STAGE__COUNT; st++) {
		const struct config_list *l = stage_list(cfg, (enum policy_stage)st);
		const char *err = NULL;
		size_t bad = 0;

		if (policy_chain_set(pc->chain, (enum policy_stage)st, (const char *const *)l->v,
				     l->n, &err, &bad) < 0)
			config_option_diag(ld, stage_options[st], "%s%s%s", err,
					   bad < l->n ? ": " : "", bad < l->n ? l->v[bad] : "");
	}
	cfg->policy = pc;
	cfg->policy_free = policy_config_free;
}

const struct policy_chain *
policy_chain_of(const struct config *cfg, const struct config_listener *lst)
{
	const struct policy_config *pc = cfg->policy;

	(void)lst;	/* per-listener chains: [listen.NAME] policy.<stage> */
	return pc->chain;
}
