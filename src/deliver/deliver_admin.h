/*
 * deliver_admin.h - private to deliver/: the delivery queue's index by
 * queue ID and the operator's actions on it (postern queue through the
 * control socket: flush, hold, release, delete, bounce).
 *
 * Every queue entry (deliver.c's struct deliver_item) embeds a struct
 * deliver_admin_ent, indexed from enqueue to free. An action never touches
 * an entry a worker or the outbound engine holds: it sets a flag on the
 * entry and makes the entry due now (workpool_job_wake); the entry's next
 * pass skips delivery (deliver_admin_skip) unless it brings results back
 * from outbound jobs (they are recorded first), and the pass's end
 * (deliver_admin_done, on the worker) does the action: the hold record,
 * the removal, the failed records. The control thread waits for that
 * (bounded) so its answer says what happened.
 */
#ifndef POSTERN_DELIVER_ADMIN_H
#define POSTERN_DELIVER_ADMIN_H

#include <stdint.h>

#include "catalog.h"
#include "spool.h"
#include "workpool.h"

#define DA_HOLD 0x1u
#define DA_DELETE 0x2u
#define DA_BOUNCE 0x4u

struct deliver_admin;

struct deliver_admin_ent {
	struct workpool_job *wj;	/* the entry's job */
	const char *qid;		/* the entry's queue ID */
	uint32_t slot;			/* place in the index + 1; 0: none */
	unsigned flags;			/* DA_*, the actions asked (admin mu) */
};

struct deliver;
struct deliver_admin *deliver_admin_new(struct deliver *d, struct spool *sp,
					struct workpool *wp, int cls);
void deliver_admin_free(struct deliver_admin **ap);

/* The entry joins / leaves the index (enqueue / free). */
void deliver_admin_add(struct deliver_admin *a, struct deliver_admin_ent *e);
void deliver_admin_remove(struct deliver_admin *a, struct deliver_admin_ent *e);

/* At a pass's start: 1 when an action waits and the entry brings no
 * outbound results: nothing is delivered (deliver_admin_done acts). */
int deliver_admin_skip(struct deliver_admin *a, struct deliver_admin_ent *e, int results);

/* At the pass's end (item_done, worker): does what was asked. 0: nothing
 * asked, carry on; 1: the entry leaves the queue (the caller frees it);
 * 2: due again now (a bounce: the next pass sends the DSN). */
int deliver_admin_done(struct deliver_admin *a, struct deliver_admin_ent *e);

/* d's index and actions: the arg of the control socket's actions. */
struct deliver_admin *deliver_admin_of(struct deliver *d);

/* The control socket's actions (server_control.h's struct control_ops;
 * arg is deliver_admin_of(d)). Control thread. */
enum cond_id deliver_admin_flush(void *deliver, const char *qid, const char *domain,
				 long *count);
enum cond_id deliver_admin_hold(void *deliver, const char *qid, int on, long *count);
enum cond_id deliver_admin_delete(void *deliver, const char *qid, long *count);
enum cond_id deliver_admin_bounce(void *deliver, const char *qid, long *count);

#endif
