/*
 * disk_rate.c - the disk's own limit for durable small files (issue 10
 * point 3): how many files of SIZE bytes a second this filesystem makes
 * durable, serially and from several writer threads, with no mail server
 * in the way. Owns nothing of Postern; bench/ceilings.sh builds it with cc
 * (or meson -Dbench=true).
 *
 *   disk_rate DIR [COUNT=2000] [SIZE=5120] [WRITERS=1] [MODE=rename]
 *
 * MODE, per file:
 *   fsync   create, write, fsync(file), close
 *   rename  create in DIR/in, write, fsync(file), close, rename into
 *           DIR/out, fsync(DIR/out): the classic durable queue entry
 *   syncfs  create in DIR/in, write, close, rename into DIR/out, syncfs:
 *           Postern's commit (spool.c: one syncfs covers a round; here a
 *           round is one file per writer, so concurrent writers share
 *           flushes only as the kernel joins them)
 *   nosync  create, write, close (the page cache's ceiling)
 * WRITERS threads share COUNT files. Files are removed afterwards. Bounded:
 * COUNT <= 200000, WRITERS <= 64, and every writer stops after 60 s.
 * Prints one line: mode, writers, files, seconds, files/s, latency p50/p99.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_COUNT 200000L
#define MAX_WRITERS 64
#define MAX_SECONDS 60.0

enum mode { MODE_FSYNC, MODE_RENAME, MODE_SYNCFS, MODE_NOSYNC };

struct writer {
	pthread_t tid;
	int id;
	long first, count, done;	/* files [first, first+count) */
	double *lat;			/* seconds per file, count of them */
	int err;
};

static enum mode g_mode;
static int g_in, g_out;		/* DIR/in, DIR/out */
static const char *g_buf;
static size_t g_size;
static double g_start;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Makes one file durable the way g_mode says; 0 or an errno. */
static int
one_file(long i)
{
	char name[32];
	int fd;

	snprintf(name, sizeof(name), "f%07ld", i);
	fd = openat(g_in, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno;
	size_t off = 0;
	while (off < g_size) {
		ssize_t n = write(fd, g_buf + off, g_size - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			close(fd);
			return e;
		}
		off += (size_t)n;
	}
	if ((g_mode == MODE_FSYNC || g_mode == MODE_RENAME) && fsync(fd) < 0) {
		int e = errno;
		close(fd);
		return e;
	}
	if (close(fd) < 0)
		return errno;
	if (g_mode == MODE_RENAME || g_mode == MODE_SYNCFS) {
		if (renameat(g_in, name, g_out, name) < 0)
			return errno;
		if (g_mode == MODE_RENAME && fsync(g_out) < 0)
			return errno;
		if (g_mode == MODE_SYNCFS && syncfs(g_out) < 0)
			return errno;
	}
	return 0;
}

static void *
writer_run(void *arg)
{
	struct writer *w = arg;

	for (long k = 0; k < w->count; k++) {
		double a = now();
		if (a - g_start > MAX_SECONDS)
			break;
		w->err = one_file(w->first + k);
		if (w->err != 0)
			break;
		w->lat[k] = now() - a;
		w->done++;
	}
	return NULL;
}

static int
cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return (a > b) - (a < b);
}

/* Removes every file a run left in DIR/in and DIR/out. */
static void
clean(long count)
{
	char name[32];

	for (long i = 0; i < count; i++) {
		snprintf(name, sizeof(name), "f%07ld", i);
		if (unlinkat(g_out, name, 0) < 0)
			(void)unlinkat(g_in, name, 0);
	}
}

static int
open_sub(int dfd, const char *sub)
{
	if (mkdirat(dfd, sub, 0700) < 0 && errno != EEXIST)
		return -1;
	return openat(dfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

int
main(int argc, char **argv)
{
	static const char *names[] = { "fsync", "rename", "syncfs", "nosync" };

	if (argc < 2 || argc > 6) {
		fprintf(stderr, "usage: %s DIR [COUNT] [SIZE] [WRITERS] [fsync|rename|syncfs|nosync]\n",
			argv[0]);
		return 2;
	}
	long count = argc > 2 ? atol(argv[2]) : 2000;
	long size = argc > 3 ? atol(argv[3]) : 5120;
	long nw = argc > 4 ? atol(argv[4]) : 1;
	const char *mname = argc > 5 ? argv[5] : "rename";
	int m = -1;
	for (int i = 0; i < 4; i++)
		if (strcmp(mname, names[i]) == 0)
			m = i;
	if (count < 1 || count > MAX_COUNT || size < 0 || size > (16L << 20) || nw < 1 ||
	    nw > MAX_WRITERS || nw > count || m < 0) {
		fprintf(stderr, "disk_rate: COUNT 1..%ld, SIZE 0..16M, WRITERS 1..%d (<= COUNT), "
			"MODE fsync|rename|syncfs|nosync\n", MAX_COUNT, MAX_WRITERS);
		return 2;
	}
	g_mode = (enum mode)m;
	g_size = (size_t)size;
	char *buf = malloc(g_size ? g_size : 1);
	double *lat = calloc((size_t)count, sizeof(double));
	struct writer *ws = calloc((size_t)nw, sizeof(*ws));
	if (buf == NULL || lat == NULL || ws == NULL) {
		perror("disk_rate: memory");
		return 1;
	}
	memset(buf, 'x', g_size);
	g_buf = buf;
	int dfd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || (g_in = open_sub(dfd, "in")) < 0 || (g_out = open_sub(dfd, "out")) < 0) {
		perror(argv[1]);
		return 1;
	}
	if (g_mode == MODE_FSYNC || g_mode == MODE_NOSYNC) {
		close(g_out);
		g_out = g_in;	/* no rename: files stay in DIR/in */
	}

	g_start = now();
	long next = 0;
	for (long i = 0; i < nw; i++) {
		ws[i].id = (int)i;
		ws[i].first = next;
		ws[i].count = count / nw + (i < count % nw ? 1 : 0);
		ws[i].lat = lat + next;
		next += ws[i].count;
		int e = pthread_create(&ws[i].tid, NULL, writer_run, &ws[i]);
		if (e != 0) {
			fprintf(stderr, "disk_rate: pthread_create: %s\n", strerror(e));
			return 1;
		}
	}
	long done = 0;
	int err = 0;
	for (long i = 0; i < nw; i++) {
		if (pthread_join(ws[i].tid, NULL) != 0)
			err = EINVAL;
		if (ws[i].err != 0)
			err = ws[i].err;
		/* pack the latencies of finished files together */
		memmove(lat + done, ws[i].lat, (size_t)ws[i].done * sizeof(double));
		done += ws[i].done;
	}
	double el = now() - g_start;
	clean(count);
	if (err != 0) {
		fprintf(stderr, "disk_rate: %s\n", strerror(err));
		return 1;
	}
	if (done == 0) {
		fprintf(stderr, "disk_rate: no file finished\n");
		return 1;
	}
	qsort(lat, (size_t)done, sizeof(double), cmp_double);
	printf("mode=%s writers=%ld files=%ld size=%ld elapsed_s=%.3f rate=%.0f lat_p50_ms=%.3f "
	       "lat_p99_ms=%.3f%s\n",
	       names[m], nw, done, size, el, (double)done / el, lat[done / 2] * 1e3,
	       lat[(long)((double)done * 0.99)] * 1e3, done < count ? " (stopped at 60 s)" : "");
	free(buf);
	free(lat);
	free(ws);
	return 0;
}
