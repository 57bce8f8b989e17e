/*
 * deliver_local.c - one recipient of a queued message into its local
 * Maildir (see deliver_private.h): an earlier copy looked for after a
 * crash or a failed attempt, the mail filesystem's free-space floor
 * (deliver_space.c), the account's quota (deliver_quota.c), then the copy
 * (deliver_maildir.c); each outcome logged with its catalog row.
 */
#include "deliver_private.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "catalog.h"
#include "log.h"
#include "deliver_maildir.h"
#include "deliver_quota.h"
#include "deliver_report.h"
#include "deliver_space.h"

enum cond_id
outcome_cond(enum outcome o)
{
	switch (o) {
	case OUT_FAILED:
		return COND_DELIVERY_LOCAL_WRITE_FAILED;
	case OUT_QUOTA:
		return COND_DELIVERY_LOCAL_QUOTA;
	case OUT_SPACE:
		return COND_QUEUE_DISK_FULL;
	case OUT_PERMANENT:
		return COND_DELIVERY_LOCAL_PERMANENT;
	case OUT_GONE:
		return COND_DELIVERY_LOCAL_GONE;
	default:
		return COND_DELIVERY_DEFERRED;
	}
}

const char *
outcome_cause(enum outcome o)
{
	return catalog_get(outcome_cond(o))->id;
}

/* 1 if local@domain was an account when accepted and is no longer one
 * (removed from local.accounts since): the postmaster mailbox, which
 * needs no account, never is; without an accounts file, nobody is. */
static int
local_account_gone(const struct config *cfg, const struct spool_msg *msg, size_t i,
		   const char *local, size_t local_len, const char *domain, size_t domain_len)
{
	if (cfg->accounts == NULL || cfg->local_accounts == NULL || cfg->local_accounts[0] == '\0' ||
	    directory_find(cfg->accounts, local, local_len, domain, domain_len) != NULL ||
	    (local_len == 10 && strncasecmp(local, "postmaster", 10) == 0))
		return 0;
	struct log_ctx ctx = { .qid = msg->qid };
	struct kv kvs[] = { KVA("rcpt", msg->rcpts[i].addr, strlen(msg->rcpts[i].addr)) };

	catalog_log(COND_DELIVERY_LOCAL_GONE, &ctx, kvs, ARRAY_LEN(kvs));
	return 1;
}

static void
log_delivered(const struct spool_msg *msg, size_t i,
	      const struct deliver_maildir_result *res)
{
	struct log_ctx ctx = { .qid = msg->qid };
	const char *addr = msg->rcpts[i].addr;
	struct kv kvs[] = {
		KVA("rcpt", addr, strlen(addr)),
		KV("path", res->path), KVU("size", res->size),
	};

	catalog_log(COND_DELIVERY_SUCCESS, &ctx, kvs, ARRAY_LEN(kvs));
	deliver_metrics_delivered(msg->qid);
}

void
log_write_failed(const struct spool_msg *msg, size_t i,
		 const struct deliver_maildir_result *res)
{
	struct log_ctx ctx = { .qid = msg->qid };
	const char *addr = msg->rcpts[i].addr;
	struct kv kvs[] = {
		KVA("rcpt", addr, strlen(addr)),
		KV("path", res->path), KV("op", res->op),
		KV("errno", log_errno_name(res->err)),
		KV("err", strerror(res->err)),
	};

	catalog_log(COND_DELIVERY_LOCAL_WRITE_FAILED, &ctx, kvs, ARRAY_LEN(kvs));
}

/* Tries recipient i locally (msg->recovered says a crash or an earlier
 * attempt may have left the copy in place). Logs what happened. */
enum outcome
deliver_local(const struct config *cfg, struct deliver_item *it, size_t i,
	      const char *local, size_t local_len, const char *domain,
	      size_t domain_len)
{
	struct spool_msg *msg = it->msg;
	const struct spool_rcpt *r = &msg->rcpts[i];
	struct log_ctx ctx = { .qid = msg->qid };
	struct deliver_maildir_result res;
	struct quota_report qr;
	struct space_report sr;
	const struct account *acct;
	char hostbuf[256];
	const char *host = cfg->hostname;
	uint64_t size;
	char *dir;
	int rc, recovered;

	if (host == NULL || *host == '\0') {
		if (gethostname(hostbuf, sizeof(hostbuf)) < 0)
			hostbuf[0] = '\0';
		hostbuf[sizeof(hostbuf) - 1] = '\0';
		host = hostbuf[0] != '\0' ? hostbuf : "localhost";
	}
	dir = deliver_maildir_dir(cfg->server_mail_root, local, local_len,
				  domain, domain_len);
	size = deliver_maildir_size(msg, i);
	if (dir == NULL || size == 0) {
		if (!(it->flags & IF_PERM)) {
			struct kv kvs[] = {
				KVA("rcpt", r->addr, strlen(r->addr)),
				KV("path", cfg->server_mail_root),
				KV("op", dir == NULL ? "path" : "header"),
				KV("err", dir == NULL
					  ? "the address cannot name a Maildir folder"
					  : "CR or LF in an envelope address"),
			};

			it->pass->flags |= IF_PERM;
			catalog_log(COND_DELIVERY_LOCAL_PERMANENT, &ctx, kvs,
				    ARRAY_LEN(kvs));
		}
		free(dir);
		return OUT_PERMANENT;
	}

	if (local_account_gone(cfg, msg, i, local, local_len, domain, domain_len)) {
		free(dir);
		return OUT_GONE;
	}

	/* 1. Already there (a repeat after a crash, or after a failure that
	 * came after the link): done, and counted by the quota scan. */
	if (msg->recovered) {	/* set by item_load: recovered or tried */
		rc = deliver_maildir_find(dir, host, msg, i, &res);
		if (rc == 1) {
			sync_add(it->pass->ss, dir);	/* found after a crash: maybe unflushed */
			log_delivered(msg, i, &res);
			deliver_maildir_result_fini(&res);
			free(dir);
			return OUT_DONE;
		}
		if (rc < 0) {
			log_write_failed(msg, i, &res);
			deliver_maildir_result_fini(&res);
			free(dir);
			return OUT_FAILED;
		}
		deliver_maildir_result_fini(&res);
	}

	/* 2. The free-space floor of the mail filesystem. */
	if (space_check(NULL, cfg->server_mail_root, cfg->limits_min_free_space,
			size, &sr) != COND__COUNT) {
		if (!(it->flags & IF_SPACE)) {
			struct kv kvs[] = {
				KV("fs", sr.fs), KVU("free_bytes", sr.free_bytes),
				KVU("free_inodes", sr.free_inodes),
				KVU("floor", sr.floor), KVU("need", sr.need),
			};

			it->flags |= IF_SPACE;
			catalog_log(COND_QUEUE_DISK_FULL, &ctx, kvs,
				    ARRAY_LEN(kvs));
		}
		free(dir);
		return OUT_SPACE;
	}

	/* 3. The account's quota: reserve, write, then settle. */
	acct = cfg->accounts != NULL
		       ? directory_find(cfg->accounts, local, local_len, domain,
					domain_len)
		       : NULL;
	if (quota_reserve(cfg->server_mail_root, acct, r->addr, size, &qr) !=
	    COND__COUNT) {
		struct kv kvs[] = {
			KVA("rcpt", r->addr, strlen(r->addr)),
			KV("kind", qr.kind), KVU("used", qr.used),
			KVU("quota", qr.quota), KVU("size", qr.size),
		};

		catalog_log(COND_DELIVERY_LOCAL_QUOTA, &ctx, kvs, ARRAY_LEN(kvs));
		free(dir);
		return OUT_QUOTA;
	}
	/* Step 1 looked already: spare the Maildir writer a second cur/ scan. */
	recovered = msg->recovered;
	msg->recovered = 0;
	it->pass->flags |= IF_TRIED;
	rc = deliver_maildir_write(dir, host, msg, i, &res);
	msg->recovered = recovered;
	quota_finish(cfg->server_mail_root, r->addr, size, rc == 0 && !res.existed);
	if (rc == 0)
		sync_add(it->pass->ss, dir);
	if (rc == 0)
		log_delivered(msg, i, &res);
	else
		log_write_failed(msg, i, &res);
	int res_err = res.err;
	deliver_maildir_result_fini(&res);
	free(dir);
	if (rc < 0 && res_err == EBADMSG)
		return OUT_CORRUPT;	/* no copy was linked: the check comes first */
	return rc == 0 ? OUT_DONE : OUT_FAILED;
}
