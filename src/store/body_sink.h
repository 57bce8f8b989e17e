/*
 * body_sink.h - where a session's message data goes as it arrives.
 *
 * The session knows this interface only: begin, write chunks, then commit
 * or abort. The spool's writer (store/spool_body.c, spool_body_sink())
 * is its one implementation today; a forwarder, a scanner tee or a milter
 * are later ones. All four calls run on the session's loop thread:
 *
 *   begin(sk, loop, done, arg)  prepares (opens a file on the pool, ...);
 *       done(loop, arg, status, cond) runs later on loop: status 0 ready,
 *       -1 failed with cond (already logged). Until done, no write.
 *   write(sk, p, n)  takes n bytes, bounded work (a write() into the page
 *       cache). -1 once the sink failed: the caller keeps reading the data
 *       to its end and then commits anyway; the commit reports the failure.
 *   commit(sk, msg, loop, done, arg)  the data is complete: makes it
 *       durable and hands msg (owned from here) on; done runs on loop once
 *       it is (status 0: the 250 may go out) or failed (cond: the 4xx).
 *       The sink is freed by the commit; done may run after the session
 *       ended (the caller finds it by a handle, not a pointer).
 *   abort(sk)  drops everything, nothing stays visible; frees the sink,
 *       even while begin is still under way.
 */
#ifndef POSTERN_BODY_SINK_H
#define POSTERN_BODY_SINK_H

#include <stddef.h>

#include "catalog.h"
#include "loop.h"

struct spool_msg;
struct body_sink;

typedef void (*body_sink_done_fn)(struct loop *loop, void *arg, int status,
				  enum cond_id cond);

struct body_sink_ops {
	void (*begin)(struct body_sink *sk, struct loop *loop, body_sink_done_fn done,
		      void *arg);
	int (*write)(struct body_sink *sk, const void *p, size_t n);
	void (*commit)(struct body_sink *sk, struct spool_msg *msg, struct loop *loop,
		       body_sink_done_fn done, void *arg);
	void (*abort)(struct body_sink *sk);
};

struct body_sink {
	const struct body_sink_ops *ops;
};

static inline void
body_sink_begin(struct body_sink *sk, struct loop *loop, body_sink_done_fn done, void *arg)
{
	sk->ops->begin(sk, loop, done, arg);
}

static inline int
body_sink_write(struct body_sink *sk, const void *p, size_t n)
{
	return sk->ops->write(sk, p, n);
}

static inline void
body_sink_commit(struct body_sink *sk, struct spool_msg *msg, struct loop *loop,
		 body_sink_done_fn done, void *arg)
{
	sk->ops->commit(sk, msg, loop, done, arg);
}

/* Frees *skp (NULL: nothing). */
static inline void
body_sink_abort(struct body_sink **skp)
{
	if (*skp != NULL)
		(*skp)->ops->abort(*skp);
	*skp = NULL;
}

#endif
