/*
 * deliver_space.c - the free-space floor (see deliver_space.h).
 *
 * Owns a small table of cached statvfs() results, one slot per folder
 * asked about (the spool and the mail root; a reload may add a few more,
 * the oldest slot is then reused). One mutex guards the table; statvfs()
 * itself runs outside it, by the one caller that claimed the refresh by
 * moving the slot's timestamp forward, so the event loops never wait on
 * each other's statvfs.
 */
#include "deliver/deliver_space.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "core/buf.h"

#define SPACE_SLOTS 8
#define SPACE_TTL_MS 1000u
#define SPACE_PATH_MAX 4096

struct space_slot {
	char path[SPACE_PATH_MAX];	/* "" = free slot */
	uint64_t checked_ms;		/* when a refresh was last claimed */
	int valid;			/* the values below are set */
	uint64_t free_bytes, free_inodes;
};

static pthread_mutex_t space_mu = PTHREAD_MUTEX_INITIALIZER;
static struct space_slot space_slots[SPACE_SLOTS];

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

/* Free bytes and inodes of path's filesystem, at most SPACE_TTL_MS old.
 * -1 if unknown (statvfs failed and nothing cached). */
static int
space_get(const char *path, uint64_t *bytes_out, uint64_t *inodes_out)
{
	uint64_t now = space_now_ms(), b, ino;
	struct space_slot *s = NULL, *oldest = NULL;
	int refresh = 0, have = 0;

	if (strlen(path) >= SPACE_PATH_MAX)
		return space_statvfs(path, bytes_out, inodes_out);
	pthread_mutex_lock(&space_mu);
	for (size_t i = 0; i < SPACE_SLOTS; i++) {
		struct space_slot *t = &space_slots[i];

		if (t->path[0] != '\0' && strcmp(t->path, path) == 0) {
			s = t;
			break;
		}
		if (oldest == NULL || t->path[0] == '\0' ||
		    (oldest->path[0] != '\0' && t->checked_ms < oldest->checked_ms))
			oldest = t;
	}
	if (s == NULL) {
		s = oldest;
		memset(s, 0, sizeof(*s));
		memcpy(s->path, path, strlen(path) + 1);
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
	memset(space_slots, 0, sizeof(space_slots));
	pthread_mutex_unlock(&space_mu);
}
