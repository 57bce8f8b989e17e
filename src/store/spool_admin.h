/*
 * spool_admin.h - the spool as the operator's queue command sees it: the
 * queue lock, a read-only view of one message (envelope, per-recipient
 * state, the header section, the state log as history; never the body),
 * and the offline edits (hold, release, flush, delete) done while no
 * daemon runs.
 *
 * The lock is <server.spool>/queue.lock (flock): `postern serve` holds it
 * from start to exit, so an offline edit (which takes it too) never races
 * a running daemon, and a daemon starting during an edit waits for it.
 * Views need no lock: they only read, and never repair a file.
 */
#ifndef POSTERN_SPOOL_ADMIN_H
#define POSTERN_SPOOL_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "spool.h"

#define SPOOL_LOCK_FILE "queue.lock"
/* The header section a view reads at most (the data's first bytes). */
#define SPOOL_VIEW_HEADERS_MAX ((size_t)64 << 10)
/* History entries a view keeps at most (the last ones). */
#define SPOOL_VIEW_HISTORY_MAX 1000u

/* Takes <spool_dir>/queue.lock (made if missing, 0600). wait: blocks
 * until it is free; else returns 1 at once when someone holds it. 0 with
 * *fdp (keep it open while the lock is needed), 1, or -1 with errno. */
int spool_lock_take(const char *spool_dir, int wait, int *fdp);
void spool_lock_release(int *fdp);

/* A spool opened for the queue command: folders only, no pool, nothing
 * created or cleaned. NULL with errno. */
struct spool *spool_admin_open(const char *dir);
void spool_admin_close(struct spool **spp);

/* The queue IDs in queue/, oldest first (*names owned: free each, then
 * the array). 0, or -1 with errno. */
int spool_admin_names(struct spool *sp, char ***names, size_t *n);

struct spool_history {
	char *kind;		/* "done", "deferred", "failed", "hold", ... */
	size_t rcpt;
	char *detail;		/* the rest of the record */
};

struct spool_view {
	struct spool_msg *msg;	/* envelope and per-recipient state */
	uint64_t size;		/* the message as delivered (tags + data) */
	struct spool_history *hist;	/* with SPOOL_VIEW_HISTORY */
	size_t nhist;
	size_t hist_dropped;	/* older entries left out */
	struct buf headers;	/* with SPOOL_VIEW_HEADERS: tags, then the
				 * data up to its first empty line */
	int headers_cut;	/* the header section was longer */
};

#define SPOOL_VIEW_HISTORY 1u
#define SPOOL_VIEW_HEADERS 2u

/* Reads queue/<qid> for viewing. 0; -2 when it is not there (or not a
 * queue ID); -1 when it cannot be read or is damaged (*reason). Any
 * thread but a loop's. */
int spool_view_read(struct spool *sp, const char *qid, unsigned what, struct spool_view *v,
		    const char **reason);
void spool_view_fini(struct spool_view *v);

/* Offline edits (the caller holds the queue lock, or is the daemon acting
 * for its control socket). 0; -2 not there; -1 failed (logged). */
int spool_admin_hold(struct spool *sp, const char *qid, int on);
/* Clears the next attempt of every waiting recipient (deferred with next
 * 0): *count is 1 when the message had any. Held messages are left. */
int spool_admin_flush(struct spool *sp, const char *qid, int *count);
/* Fails every recipient not done nor failed yet with the operator's
 * reason (a "failed" record, detail 5.0.0 QUEUE-BOUNCED-BY-ADMIN): the
 * next delivery pass sends the DSN and removes the message. *n: how
 * many were failed. */
int spool_admin_bounce(struct spool *sp, const char *qid, size_t *n);
/* Removes queue/<qid>; *left is how many recipients were not done. */
int spool_admin_delete(struct spool *sp, const char *qid, size_t *left);

#endif
