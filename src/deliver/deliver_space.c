/*
 * deliver_space.c - the free-space floor (see deliver_space.h).
 *
 * Owns a small table of cached statvfs() results, one slot per folder
 * asked about (the spool and the mail root; a reload may add a few more,
 * the oldest slot is then reused), and the refresh jobs that fill it (the
 * worker pool's "statvfs" class: a tick every SPACE_TTL_MS refreshes every
 * known slot, and a path asked about for the first time is its own job,
 * queued at most once). One mutex guards the table; statvfs() runs
 * outside it. Once space_start() attached the pool, a check only reads the
 * table, so an event loop never calls statvfs. Before that (start-up on
 * the main thread, unit tests) a stale value is refreshed inline.
 */
#include "deliver_space.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "buf.h"
#include "workpool.h"

#define SPACE_SLOTS 8
#define SPACE_TTL_MS 1000u
#define SPACE_PATH_MAX 4096

struct space_slot {
	struct workpool_job wj;		/* first: its refresh job */
	int queued;			/* the refresh job is in the pool */
	char path[SPACE_PATH_MAX];	/* "" = free slot */
	uint64_t checked_ms;		/* when a refresh was last claimed */
	int valid;			/* the values below are set */
	uint64_t free_bytes, free_inodes;
};

static pthread_mutex_t space_mu = PTHREAD_MUTEX_INITIALIZER;
static struct space_slot space_slots[SPACE_SLOTS];
static struct workpool *space_wp;	/* under space_mu; NULL: inline */
static int space_cls = -1;

static uint64_t
space_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* statvfs of path, or of its nearest existing parent (the mail root or a
 * spool folder may not exist before the first delivery). */
static int
space_statvfs(const char *path, uint64_t *bytes_out, uint64_t *inodes_out)
{
	char p[SPACE_PATH_MAX];
	struct statvfs sv;
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(p))
		return -1;
	memcpy(p, path, n + 1);
	for (;;) {
		char *slash;

		if (statvfs(p, &sv) == 0)
			break;
		if (errno != ENOENT && errno != ENOTDIR)
			return -1;
		slash = strrchr(p, '/');
		if (slash == NULL || slash == p) {
			if (statvfs(slash == p ? "/" : ".", &sv) < 0)
				return -1;
			break;
		}
		*slash = '\0';
	}
	*bytes_out = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
	/* f_files == 0: the filesystem has no fixed inode count (btrfs). */
	*inodes_out = sv.f_files == 0 ? UINT64_MAX : (uint64_t)sv.f_favail;
	return 0;
}

/* statvfs for slot s, on a worker. */
static void
space_refresh_slot(struct space_slot *s)
{
	char path[SPACE_PATH_MAX];
	uint64_t b, ino;

	pthread_mutex_lock(&space_mu);
	memcpy(path, s->path, sizeof(path));
	pthread_mutex_unlock(&space_mu);
	if (path[0] == '\0' || space_statvfs(path, &b, &ino) < 0)
		return;		/* a failure keeps the old values */
	pthread_mutex_lock(&space_mu);
	if (strcmp(s->path, path) == 0) {	/* not reused meanwhile */
		s->free_bytes = b;
		s->free_inodes = ino;
		s->valid = 1;
		s->checked_ms = space_now_ms();
	}
	pthread_mutex_unlock(&space_mu);
}

/* A slot's own job left the pool (ran, or was cancelled at shutdown). */
static void
space_refresh_cancel(struct workpool_job *wj)
{
	struct space_slot *s = (struct space_slot *)wj;

	pthread_mutex_lock(&space_mu);
	s->queued = 0;
	pthread_mutex_unlock(&space_mu);
}

/* The refresh job of one slot (a path asked about for the first time). */
static void
space_refresh_run(struct workpool_job *wj)
{
	space_refresh_cancel(wj);
	space_refresh_slot((struct space_slot *)wj);
}

/* The periodic refresh: every known slot, every SPACE_TTL_MS, so what a
 * loop reads is about a second old at most however rarely it asks. */
static struct workpool_job space_tick;

static void
space_tick_run(struct workpool_job *wj)
{
	(void)wj;
	for (size_t i = 0; i < SPACE_SLOTS; i++)
		space_refresh_slot(&space_slots[i]);
}

/* On the worker, after the run: again in SPACE_TTL_MS (until stopped). */
static void
space_tick_done(struct loop *loop, struct workpool_job *wj)
{
	struct workpool *wp;
	int cls;

	(void)loop;
	pthread_mutex_lock(&space_mu);
	wp = space_wp;
	cls = space_cls;
	pthread_mutex_unlock(&space_mu);
	if (wp == NULL || workpool_submit_after(wp, cls, wj, NULL, SPACE_TTL_MS) < 0)
		return;		/* stopped (shutdown): the tick ends */
}

/* The slot of path, taking the oldest one for a new path (space_mu). */
static struct space_slot *
space_slot_of(const char *path)
{
	struct space_slot *s = NULL, *oldest = NULL;

	for (size_t i = 0; i < SPACE_SLOTS; i++) {
		struct space_slot *t = &space_slots[i];

		if (t->path[0] != '\0' && strcmp(t->path, path) == 0)
			return t;
		if (t->queued)
			continue;	/* its job reads the path */
		if (oldest == NULL || t->path[0] == '\0' ||
		    (oldest->path[0] != '\0' && t->checked_ms < oldest->checked_ms))
			oldest = t;
	}
	s = oldest != NULL ? oldest : &space_slots[0];
	if (s->queued)
		return NULL;	/* every slot busy: cannot happen with 8 */
	memset(s, 0, sizeof(*s));
	memcpy(s->path, path, strlen(path) + 1);
	return s;
}

/* Free bytes and inodes of path's filesystem: the cached values, with a
 * refresh claimed when they are SPACE_TTL_MS old (queued on the pool, or
 * done here without one). -1 if unknown (nothing cached yet). */
static int
space_get(const char *path, uint64_t *bytes_out, uint64_t *inodes_out)
{
	uint64_t now = space_now_ms(), b, ino;
	struct space_slot *s;
	int refresh = 0, have = 0;

	if (strlen(path) >= SPACE_PATH_MAX)
		return -1;
	pthread_mutex_lock(&space_mu);
	s = space_slot_of(path);
	if (s == NULL) {
		pthread_mutex_unlock(&space_mu);
		return -1;
	}
	if (!s->valid || now - s->checked_ms >= SPACE_TTL_MS) {
		/* Claim the refresh: others keep using the old values. */
		s->checked_ms = now;
		refresh = 1;
	}
	if (s->valid) {
		*bytes_out = s->free_bytes;
		*inodes_out = s->free_inodes;
		have = 1;
	}
	if (space_wp != NULL) {
		/* The tick keeps known slots fresh; a new one is asked once. */
		if (!s->valid && !s->queued) {
			workpool_job_init(&s->wj, space_refresh_run, NULL,
					  space_refresh_cancel);
			if (workpool_submit(space_wp, space_cls, &s->wj, NULL) == 0)
				s->queued = 1;
		}
		refresh = 0;
	}
	pthread_mutex_unlock(&space_mu);
	if (!refresh)
		return have ? 0 : -1;
	if (space_statvfs(path, &b, &ino) < 0)
		return have ? 0 : -1;
	pthread_mutex_lock(&space_mu);
	if (strcmp(s->path, path) == 0) {
		s->free_bytes = b;
		s->free_inodes = ino;
		s->valid = 1;
	}
	pthread_mutex_unlock(&space_mu);
	*bytes_out = b;
	*inodes_out = ino;
	return 0;
}

int
space_start(struct workpool *wp, const char *const *paths, size_t npaths)
{
	uint64_t b, ino;
	int cls;

	/* Known before any loop asks: refreshed inline, here. */
	for (size_t i = 0; i < npaths; i++)
		if (paths[i] != NULL && paths[i][0] != '\0')
			(void)space_get(paths[i], &b, &ino);
	cls = workpool_class_new(wp, "statvfs", 1, 0);
	if (cls < 0)
		return -1;
	pthread_mutex_lock(&space_mu);
	space_wp = wp;
	space_cls = cls;
	pthread_mutex_unlock(&space_mu);
	workpool_job_init(&space_tick, space_tick_run, space_tick_done, NULL);
	if (workpool_submit_after(wp, cls, &space_tick, NULL, SPACE_TTL_MS) < 0)
		return -1;
	return 0;
}

void
space_stop(void)
{
	struct workpool *wp;
	int cls;

	pthread_mutex_lock(&space_mu);
	wp = space_wp;
	cls = space_cls;
	space_wp = NULL;
	space_cls = -1;
	pthread_mutex_unlock(&space_mu);
	if (wp != NULL)
		workpool_class_stop(wp, cls);
}

/* 1 if path's filesystem is under the floor (out filled). */
static int
space_below(const char *path, uint64_t floor, uint64_t need,
	    struct space_report *out)
{
	uint64_t fb, fi;

	if (path == NULL || *path == '\0' || space_get(path, &fb, &fi) < 0)
		return 0;
	if (fb >= need && fb - need >= floor && fi >= SPACE_INODE_FLOOR)
		return 0;
	if (out != NULL) {
		out->fs = path;
		out->free_bytes = fb;
		out->free_inodes = fi;
		out->floor = floor;
		out->need = need;
	}
	return 1;
}

enum cond_id
space_check(const char *spool_dir, const char *mail_root, uint64_t floor,
	    uint64_t need, struct space_report *out)
{
	if (space_below(spool_dir, floor, need, out) ||
	    space_below(mail_root, floor, need, out))
		return COND_QUEUE_DISK_FULL;
	return COND__COUNT;
}

void
space_reset(void)
{
	pthread_mutex_lock(&space_mu);
	for (size_t i = 0; i < SPACE_SLOTS; i++)
		if (!space_slots[i].queued)
			memset(&space_slots[i], 0, sizeof(space_slots[i]));
	pthread_mutex_unlock(&space_mu);
}
