/*
 * policy_space.c - check "free_space" (limits.min_free_space): the spool
 * and mail filesystems keep a floor of free space; MAIL (with its SIZE=),
 * a RCPT to a local mailbox and the end of data are refused with 452
 * 4.3.1 below it. The figures come from deliver_space's cache.
 */
#include "policy_checks.h"

#include "deliver_space.h"

static void
space_ask(struct policy_query *q, uint64_t need)
{
	const struct policy_txn *t = q->txn;
	struct space_report sr;
	enum cond_id c = space_check(t->cfg->server_spool, t->cfg->server_mail_root,
				     t->cfg->limits_min_free_space, need, &sr);

	if (c != COND__COUNT) {
		struct kv kv[] = { KV("fs", sr.fs), KVU("free_bytes", sr.free_bytes),
				   KVU("free_inodes", sr.free_inodes), KVU("floor", sr.floor),
				   KVU("need", sr.need) };

		policy_refuse(q, c, kv, ARRAY_LEN(kv));
		return;
	}
	policy_answer_continue(q);
}

static void
space_mail(struct policy_query *q)
{
	space_ask(q, q->txn->has_size ? q->txn->size : 0);
}

/* Only recipients that go to a local mailbox (relayed mail waits in the
 * spool, which the end of data checks). */
static void
space_rcpt(struct policy_query *q)
{
	const struct resolve_result *e = &q->txn->expansion;

	for (size_t i = 0; i < e->ntargets; i++) {
		if (e->targets[i].local) {
			space_ask(q, 0);
			return;
		}
	}
	policy_answer_continue(q);
}

static void
space_end_of_data(struct policy_query *q)
{
	space_ask(q, q->txn->content.size);
}

const struct policy_check policy_check_free_space = {
	.name = "free_space",
	.ask = { [POLICY_STAGE_MAIL] = space_mail, [POLICY_STAGE_RCPT] = space_rcpt,
		 [POLICY_STAGE_END_OF_DATA] = space_end_of_data },
};
