/*
 * policy_content.c - check "content": what the DATA decoder counted, at
 * the end of data: bare LF line ends when smtp.bare_lf is reject, a line
 * past limits.line_length, an empty message, and more Received fields
 * than limits.hops (a mail loop, RFC 5321 6.3).
 */
#include "policy_checks.h"

#include <string.h>

static void
content_end_of_data(struct policy_query *q)
{
	const struct policy_txn *t = q->txn;
	const struct policy_content *c = &t->content;

	if (c->bare_lf > 0 && strcmp(t->cfg->smtp_bare_lf, "reject") == 0) {
		struct kv kv[] = { KV("client", t->client), KVU("offset", c->first_bare_lf) };

		policy_refuse(q, COND_CONTENT_BARE_LF, kv, ARRAY_LEN(kv));
	} else if (c->line_too_long) {
		struct kv kv[] = { KV("client", t->client), KVU("len", c->longest_line),
				   KVU("limit", t->cfg->limits_line_length) };

		policy_refuse(q, COND_SMTP_DATA_LINE_TOO_LONG, kv, ARRAY_LEN(kv));
	} else if (c->size == 0) {
		struct kv kv[] = { KV("client", t->client) };

		policy_refuse(q, COND_CONTENT_EMPTY, kv, ARRAY_LEN(kv));
	} else if (c->received > t->cfg->limits_hops) {
		struct kv kv[] = { KV("client", t->client), KVU("hops", c->received),
				   KVU("limit", t->cfg->limits_hops),
				   KV("msgid", c->msgid[0] ? c->msgid : NULL) };

		policy_refuse(q, COND_CONTENT_TOO_MANY_HOPS, kv, ARRAY_LEN(kv));
	} else {
		policy_answer_continue(q);
	}
}

const struct policy_check policy_check_content = {
	.name = "content",
	.ask = { [POLICY_STAGE_END_OF_DATA] = content_end_of_data },
};
