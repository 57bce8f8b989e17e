/*
 * deliver_remote.h - the queue manager's side of outbound delivery: the
 * jobs a message's non-local recipients make (one per next hop: a route's
 * fixed hosts, or one domain's MX hosts), the retry schedule, and the log
 * lines of their results. The engine that runs the jobs is outbound.h.
 * Worker threads.
 */
#ifndef POSTERN_DELIVER_REMOTE_H
#define POSTERN_DELIVER_REMOTE_H

#include <stdint.h>

#include "config.h"
#include "outbound.h"
#include "spool.h"

/* The jobs for the recipients of msg with want[i] set (non-local, not
 * done, not failed, due), linked through ->next; each holds a descriptor
 * of the spool file. NULL with *why when the file cannot be opened (the
 * pass retries later), or when nothing was wanted (*why NULL). */
struct outbound_job *remote_plan(struct config *cfg, const struct spool_msg *msg,
				 const unsigned char *want, const char **why);
void remote_jobs_free(struct outbound_job **headp);

/* Seconds until the next attempt after `attempts` deferrals
 * (outbound.retry_schedule; its last interval repeats). */
unsigned remote_retry_delay(const struct config *cfg, unsigned attempts);

/* One line per recipient (k in job): sent, deferred (with retry_s) or
 * bounced; and the row that decided for the whole job, once. */
void remote_log(const struct outbound_job *job, size_t k, unsigned retry_s, int64_t now);
void remote_log_job(const struct outbound_job *job);

#endif
