/*
 * flush.c - one syncfs for every caller waiting on the same filesystem
 * (see flush.h). Owns a small table of filesystems (st_dev), each with a
 * ticket counter: a caller takes a ticket after its writes; a syncfs
 * covers every ticket taken before it started.
 */
#include "flush.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FLUSH_FS_MAX 16
#define FLUSH_GATHER_NS 4000000u	/* 4 ms */

struct flush_fs {
	dev_t dev;
	int used;
	uint64_t ticket;	/* last ticket handed out */
	uint64_t covered;	/* every ticket <= this is durable */
	int running;		/* a syncfs is under way */
	uint64_t last_ns;	/* how long the last syncfs took */
	uint64_t last_batch;	/* how many eager callers it served (commit
				 * rounds: lazy ones say nothing of load) */
	uint64_t eager;		/* eager callers so far */
	uint64_t eager_started;	/* eager callers when the last one started */
	int err;		/* errno of the last failed syncfs */
	uint64_t err_from, err_upto;	/* the tickets it was to cover */
};

static pthread_mutex_t flush_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t flush_cv = PTHREAD_COND_INITIALIZER;
static struct flush_fs flush_fs[FLUSH_FS_MAX];

static int flush_fs_wait(int fd, unsigned wait_ms);

int
store_flush(int fd)
{
	return flush_fs_wait(fd, 0);
}

int
store_flush_lazy(int fd, unsigned wait_ms)
{
	return flush_fs_wait(fd, wait_ms);
}

static int
flush_fs_wait(int fd, unsigned wait_ms)
{
	struct stat st;
	struct flush_fs *f = NULL;
	uint64_t mine, upto;
	int rc, err;

	if (fstat(fd, &st) < 0)
		return -1;
	pthread_mutex_lock(&flush_mu);
	for (size_t i = 0; i < FLUSH_FS_MAX && f == NULL; i++)
		if (flush_fs[i].used && flush_fs[i].dev == st.st_dev)
			f = &flush_fs[i];
	for (size_t i = 0; i < FLUSH_FS_MAX && f == NULL; i++)
		if (!flush_fs[i].used) {
			f = &flush_fs[i];
			f->used = 1;
			f->dev = st.st_dev;
		}
	if (f == NULL) {
		/* More filesystems than the table: a flush of its own. */
		pthread_mutex_unlock(&flush_mu);
		return syncfs(fd);
	}
	mine = ++f->ticket;
	if (wait_ms == 0)
		f->eager++;
	if (wait_ms > 0) {
		/* Lazy: somebody else's flush (a commit round's) may come
		 * first and cover this one too. */
		struct timespec until;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
		until.tv_sec += wait_ms / 1000 + until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		while (f->covered < mine &&
		       pthread_cond_timedwait(&flush_cv, &flush_mu, &until) == 0)
			;
	}
	for (;;) {
		if (f->covered >= mine) {
			/* A syncfs that started after our writes ended. */
			err = f->err != 0 && mine > f->err_from && mine <= f->err_upto ? f->err
										       : 0;
			pthread_mutex_unlock(&flush_mu);
			if (err != 0) {
				errno = err;
				return -1;
			}
			return 0;
		}
		if (!f->running)
			break;
		pthread_cond_wait(&flush_cv, &flush_mu);
	}
	f->running = 1;
	if (f->last_batch > 1 && f->last_ns > 0) {
		/* Under load (the last flush served several commits): gather
		 * for twice as long as a flush takes (at most FLUSH_GATHER_NS), so
		 * this one serves more. At one session this never waits. */
		uint64_t ns = 2 * f->last_ns < FLUSH_GATHER_NS ? 2 * f->last_ns : FLUSH_GATHER_NS;
		struct timespec gather = { 0, (long)ns };

		pthread_mutex_unlock(&flush_mu);
		nanosleep(&gather, NULL);
		pthread_mutex_lock(&flush_mu);
	}
	upto = f->ticket;	/* everybody who asked so far */
	uint64_t batch = f->eager - f->eager_started;
	f->eager_started = f->eager;
	pthread_mutex_unlock(&flush_mu);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = syncfs(fd);
	err = rc < 0 ? errno : 0;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	pthread_mutex_lock(&flush_mu);
	f->running = 0;
	f->last_ns = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000u +
		     (uint64_t)t1.tv_nsec - (uint64_t)t0.tv_nsec;
	f->last_batch = batch;
	if (err != 0) {
		/* Kept until a later failure: a waiter woken late still
		 * learns that its writes may be lost. */
		f->err = err;
		f->err_from = f->covered;
		f->err_upto = upto;
	}
	f->covered = upto;
	pthread_cond_broadcast(&flush_cv);
	pthread_mutex_unlock(&flush_mu);
	if (rc < 0)
		errno = err;
	return rc;
}

int
store_flush_path(const char *path, unsigned wait_ms)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc, err;

	if (fd < 0)
		return -1;
	rc = flush_fs_wait(fd, wait_ms);
	err = errno;
	close(fd);
	errno = err;
	return rc;
}
