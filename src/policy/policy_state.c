/*
 * policy_state.c - the shared state store (store/state.h) as checks see
 * it: the one store of the process, a check's read submitted for a query,
 * what a failure of it means (state.on_error, per check), and the [state]
 * options' checks at load.
 */
#include "policy_checks.h"

#include <stdlib.h>
#include <string.h>

#include "state.h"

static struct state *shared_state;

void
policy_state_set(struct state *st)
{
	shared_state = st;
}

struct state *
policy_state(void)
{
	return shared_state;
}

int
policy_state_fail(struct policy_query *q, const char *check, const char *per_check,
		  const char *err)
{
	const char *mode = per_check != NULL && per_check[0] != '\0' ?
				   per_check : q->txn->cfg->state_on_error;

	if (strcmp(mode, "closed") != 0)
		return 0;
	struct kv kv[] = { KV("check", check), KV("err", err != NULL ? err : "") };
	policy_refuse(q, COND_POLICY_STATE_UNAVAILABLE, kv, ARRAY_LEN(kv));
	return 1;
}

void
policy_state_drop(struct state_req *req)
{
	free(req->arg);
}

int
policy_state_submit(struct policy_query *q, struct state_req *req, struct state_op *ops,
		    size_t nops, void (*done)(struct state_req *req), void *job)
{
	req->ops = ops;
	req->nops = nops;
	req->done = done;
	req->cancel = policy_state_drop;
	req->arg = job;
	q->check_data = job;
	if (shared_state == NULL || state_submit(shared_state, q->run->loop, req) < 0) {
		q->check_data = NULL;
		return -1;
	}
	return 0;
}

static int
open_or_closed(const char *v, int empty_ok)
{
	return strcmp(v, "open") == 0 || strcmp(v, "closed") == 0 || (empty_ok && v[0] == '\0');
}

void
state_config_check(struct config *cfg, struct config_load *ld, struct diag *diags)
{
	(void)diags;
	if (strcmp(cfg->state_backend, "sqlite") != 0 && strcmp(cfg->state_backend, "redis") != 0)
		config_option_diag(ld, "state.backend", "must be sqlite or redis");
	if (strcmp(cfg->state_backend, "redis") == 0 && cfg->state_redis[0] == '\0')
		config_option_diag(ld, "state.redis", "names no server, and state.backend is redis");
	if (!open_or_closed(cfg->state_on_error, 0))
		config_option_diag(ld, "state.on_error", "must be open or closed");
	if (!open_or_closed(cfg->greylist_on_state_error, 1))
		config_option_diag(ld, "greylist.on_state_error", "must be open, closed or empty");
	if (!open_or_closed(cfg->duplicates_on_state_error, 1))
		config_option_diag(ld, "duplicates.on_state_error", "must be open, closed or empty");
}
