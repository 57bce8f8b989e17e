/*
 * policy_size.c - check "size" (limits.message_size): the size a client
 * declares with MAIL SIZE= (RFC 1870 6.1) and the size it sent, counted
 * at the end of data; both are refused with 552 5.3.4.
 */
#include "policy_checks.h"

static void
size_refuse(struct policy_query *q, uint64_t size)
{
	const struct policy_txn *t = q->txn;
	struct kv kv[] = { KV("client", t->client), KVU("size", size),
			   KVU("limit", t->cfg->limits_message_size) };

	policy_refuse(q, COND_CONTENT_SIZE_EXCEEDED, kv, ARRAY_LEN(kv));
}

static void
size_mail(struct policy_query *q)
{
	const struct policy_txn *t = q->txn;

	if (t->has_size && t->size > t->cfg->limits_message_size)
		size_refuse(q, t->size);
	else
		policy_answer_continue(q);
}

static void
size_end_of_data(struct policy_query *q)
{
	const struct policy_txn *t = q->txn;

	if (t->content.size > t->cfg->limits_message_size)
		size_refuse(q, t->content.size);
	else
		policy_answer_continue(q);
}

const struct policy_check policy_check_size = {
	.name = "size",
	.ask = { [POLICY_STAGE_MAIL] = size_mail,
		 [POLICY_STAGE_END_OF_DATA] = size_end_of_data },
};
