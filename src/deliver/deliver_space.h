/*
 * deliver_space.h - the free-space floor of the spool and mail
 * filesystems (QUEUE-DISK-FULL before the disk is actually full).
 *
 * statvfs() results are cached per folder and refreshed about once a
 * second. Once space_start() attached the worker pool the refresh runs
 * there (a tick every second): a check only reads the cache and never
 * blocks (an event loop may call it); the value it reads is about a
 * second old at most. Before
 * space_start() (unit tests) a stale value is refreshed inline.
 * Thread-safe.
 */
#ifndef POSTERN_DELIVER_SPACE_H
#define POSTERN_DELIVER_SPACE_H

#include <stddef.h>
#include <stdint.h>

#include "catalog.h"

/* What crossed the floor, for the log keys of QUEUE-DISK-FULL
 * (fs, free_bytes, free_inodes, floor, need). */
struct space_report {
	const char *fs;		/* the folder checked: spool_dir or mail_root
				 * (borrowed from the caller's arguments) */
	uint64_t free_bytes;	/* available to unprivileged users */
	uint64_t free_inodes;	/* UINT64_MAX when the fs reports none */
	uint64_t floor;		/* the floor that was crossed */
	uint64_t need;
};

/* Below SPACE_INODE_FLOOR free inodes a filesystem counts as full too
 * (filesystems that report no inode counts, such as btrfs, are exempt). */
#define SPACE_INODE_FLOOR 1000u

/* COND__COUNT, or COND_QUEUE_DISK_FULL when the free space minus need is
 * under floor (or free inodes under SPACE_INODE_FLOOR) on the filesystem
 * of spool_dir or of mail_root (either may be NULL: not checked). A folder
 * that does not exist yet is checked through its nearest existing parent.
 * A statvfs failure counts as fine (the write itself will report). */
enum cond_id space_check(const char *spool_dir, const char *mail_root,
			 uint64_t floor, uint64_t need, struct space_report *out);

/* Forgets the cached values (tests; after a reload changes folders). */
void space_reset(void);

struct workpool;
/* Main thread, at start: fills the cache for paths (spool, mail root;
 * inline, so the first check already knows them), then adds the
 * "statvfs" class (one refresh at a time) to wp. 0, or -1 (refreshes
 * then stay inline: logged by the caller). */
int space_start(struct workpool *wp, const char *const *paths, size_t npaths) WARN_UNUSED;
/* Stops the class and goes back to inline refreshes (shutdown). */
void space_stop(void);

#endif
