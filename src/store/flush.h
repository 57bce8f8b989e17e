/*
 * flush.h - making a filesystem durable, shared: one syncfs serves every
 * caller that asked while the previous one ran (group flush).
 *
 * The commit rounds (spool.c) and the delivery batches (deliver/) call
 * store_flush(fd) after their writes. A syncfs started after a caller's
 * writes covers them: a caller that arrives while one runs waits for it
 * to end, then either finds that a later one already covered it or starts
 * the next one itself, for everybody who arrived meanwhile. So the number
 * of syncfs calls per message falls as the load rises (bench/
 * sync_count.py). Filesystems are told apart by st_dev.
 */
#ifndef POSTERN_FLUSH_H
#define POSTERN_FLUSH_H

#include "compat.h"

/* Makes every write to fd's filesystem done before this call durable.
 * 0, or -1 with errno (the syncfs that covered this call failed). Blocks:
 * worker threads only. */
int store_flush(int fd) WARN_UNUSED;
/* The same, but first waits up to wait_ms for another caller's flush to
 * cover this one (delivery batches ride on the commit rounds' flushes when
 * the spool and the mailboxes share a filesystem). */
int store_flush_lazy(int fd, unsigned wait_ms) WARN_UNUSED;
/* store_flush_lazy for the filesystem holding path. */
int store_flush_path(const char *path, unsigned wait_ms) WARN_UNUSED;

#endif
