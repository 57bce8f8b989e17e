/*
 * deliver_private.h - what the delivery queue's files share: a message's
 * index entry (struct deliver_item), a pass over it, the queue itself and
 * the outcomes of one recipient. deliver.c runs the queue and its passes,
 * deliver_local.c writes local copies, deliver_remote.c turns the other
 * recipients into outbound jobs and records what comes back.
 */
#ifndef POSTERN_DELIVER_PRIVATE_H
#define POSTERN_DELIVER_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "deliver.h"
#include "deliver_admin.h"
#include "metrics.h"
#include "outbound.h"
#include "workpool.h"

#define DELIVER_RETRY_MIN_S 1u
#define DELIVER_RETRY_MAX_S 300u
#define DELIVER_RETRY_SPACE_S 15u	/* under the space floor */
/* A delivery batch waits this long for a commit round's flush to cover its
 * copies before it flushes on its own (store_flush_lazy). */
#define DELIVER_FLUSH_WAIT_MS 50u
/* Messages read back and delivered together: the bound on envelopes in
 * memory per worker (one syncfs per pass). */
#define DELIVER_PASS_MAX 256u

/* The filesystems a batch of deliveries wrote to: one syncfs each makes
 * the whole batch durable (Maildir copies, links, state records). */
#define SYNC_SET_MAX 8
struct sync_set {
	dev_t dev[SYNC_SET_MAX];
	char *path[SYNC_SET_MAX];	/* owned: a folder on that filesystem */
	size_t n;
	int failed;			/* a syncfs (or a stat) failed */
	int err;
	char *fail_path;		/* borrowed from path[] */
};

/* Per message, kept while it waits (struct deliver_item.flags). */
#define IF_RECOVERED 0x01u	/* read back at start: look for earlier copies */
#define IF_TRIED 0x02u		/* a write was tried in an earlier pass */
#define IF_PERM 0x08u		/* permanent failures logged */
#define IF_SPACE 0x10u		/* QUEUE-DISK-FULL logged */
#define IF_FINISHED 0x20u	/* after a pass: it leaves the queue */

/* Per recipient, during a pass only. */
#define RF_RECORDED 0x01u	/* done is in the state log */
#define RF_PASS_DONE 0x02u	/* done in this pass */
#define RF_KIND_SHIFT 4		/* enum outcome of this pass (< 16) */
#define RF_KIND(f) ((f) >> RF_KIND_SHIFT)

/* What a pass needs besides the message; gone after it. */
struct deliver_pass {
	unsigned char *rf;		/* per recipient: RF_* flags */
	struct sync_set *ss;		/* what to flush */
	struct buf recs;		/* state records to append after the flush */
	int newly_done;			/* recipients done in this pass */
	int reported;			/* failed or dsn records to flush */
	int corrupt;			/* the data failed its checksum */
	int unread;			/* the spool file could not be read now */
	unsigned flags;			/* IF_* learnt, merged at the end */
};

/* The queue's index entry: all a waiting message holds in memory. Its
 * next attempt is the key of wj's place in the pool's heap. */
struct deliver_item {
	struct workpool_job wj;		/* first: the pool hands it back */
	struct deliver *d;
	struct spool_msg *msg;		/* owned: during a pass (and from a
					 * commit to its first pass), else NULL */
	struct deliver_pass *pass;	/* during a pass, else NULL */
	char qid[SPOOL_QID_SIZE];
	uint16_t backoff_s;		/* last interval, 0 before the first */
	uint16_t retry_s;		/* after a deferral: the delay */
	uint16_t passes;		/* attempts in this run (saturating) */
	uint8_t flags;			/* IF_* */
	uint16_t inflight;		/* outbound jobs not back yet (d->mu) */
	unsigned wake_gen;		/* d->wake_gen at its last pass */
	struct outbound_job *jobs;	/* planned by the pass, sent by item_done */
	struct outbound_job *results;	/* back from the engine (d->mu) */
	struct deliver_admin_ent adm;	/* the index by queue ID (deliver_admin.h) */
};

struct deliver {
	struct spool *sp;		/* borrowed */
	pthread_mutex_t cfg_mu;		/* guards cfg */
	struct config *cfg;		/* a reference */
	struct workpool *wp;		/* borrowed */
	int cls;			/* the "deliver" class */
	atomic_ulong pending;		/* queued + waiting + in progress */
	pthread_mutex_t mu;		/* guards ob and items' inflight, results */
	struct outbound *ob;		/* NULL: no outbound delivery (yet) */
	atomic_uint wake_gen;		/* +1 per reload: every deferral due */
	struct deliver_admin *admin;	/* the index, the operator's actions */
};


enum outcome {
	OUT_DONE,		/* in the Maildir */
	OUT_FAILED,		/* write failed: retry with back-off */
	OUT_QUOTA,		/* over quota: retry with back-off */
	OUT_SPACE,		/* under the free-space floor: retry soon */
	OUT_PERMANENT,		/* no retry can help: fails, bounces */
	OUT_CORRUPT,		/* the spool file's data failed its checksum */
	OUT_GONE,		/* the local account no longer exists: bounces */
	OUT_REMOTE,		/* outbound: sent in a job, or recorded from one */
};
_Static_assert(OUT_REMOTE < 16, "an outcome fits the top bits of a recipient's flags");

/* deliver.c */
struct config *deliver_config(struct deliver *d);	/* a reference, or NULL */
void sync_add(struct sync_set *ss, const char *path);
void item_free(struct deliver_item **ip);
/* A recipient delivered: the count and the delivery latency (metrics.h). */
void deliver_metrics_delivered(const char *qid);
unsigned item_backoff(struct deliver_item *it);

/* deliver_local.c: recipient i into its Maildir (logged). */
enum cond_id outcome_cond(enum outcome o);
const char *outcome_cause(enum outcome o);
enum outcome deliver_local(const struct config *cfg, struct deliver_item *it, size_t i,
			   const char *local, size_t local_len, const char *domain,
			   size_t domain_len);
struct deliver_maildir_result;
void log_write_failed(const struct spool_msg *msg, size_t i,
		      const struct deliver_maildir_result *res);

/* deliver_remote.c: the outbound side of a pass. */
int remote_enabled(struct deliver *d);
void remote_results(struct deliver_item *it, struct config *cfg, unsigned char *kind,
		    int64_t now);
int remote_send(struct deliver *d, struct deliver_item *it);

#endif
