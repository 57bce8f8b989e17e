/*
 * server_metrics.h - the Prometheus endpoint: connections accepted on a
 * listener of role metrics, one request each (GET or HEAD /metrics over
 * HTTP/1.0 or 1.1), answered from the counters in memory (core/metrics.h,
 * the catalog's per-ID counts) and closed. Loop thread only; never
 * blocks, never touches the disk.
 */
#ifndef POSTERN_SERVER_METRICS_H
#define POSTERN_SERVER_METRICS_H

#include <stddef.h>

#include "buf.h"

struct config;
struct loop;
struct metrics_conn;

/* The requests open on one loop. Zero-initialised with loop set. */
struct metrics_http {
	struct loop *loop;
	struct metrics_conn *head;
	size_t live;
};

/* Takes fd (accepted, non-blocking) from the listener at local: refused
 * with 403 unless metrics.allow lists the peer, else read and answered
 * within metrics.timeout. */
void server_metrics_accept(struct metrics_http *h, int fd, const struct config *cfg,
			   const char *local);
/* Closes and frees every request still open (after the loop stopped). */
void server_metrics_fini(struct metrics_http *h);

/* The whole /metrics body (Prometheus text format 0.0.4); -1 when it
 * does not fit out. */
int server_metrics_render(struct buf *out);

#endif
