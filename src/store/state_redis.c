/*
 * state_redis.c - the Redis (or Valkey) back end of the state store
 * (state.h): not built yet; state.backend = redis is refused at start.
 */
#include "state_private.h"

int
state_redis_open(struct state *st, const struct state_params *p, const char **error_out)
{
	(void)st;
	(void)p;
	*error_out = "the redis state back end is not available in this build";
	return -1;
}
