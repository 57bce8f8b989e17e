/*
 * server_control.h - the daemon's control socket, <server.state>/control:
 * how `postern queue` acts on a running daemon.
 *
 * A Unix stream socket, mode 0600 in a state folder that must be the
 * daemon user's and closed to group and others (else QUEUE-CONTROL-FAILED
 * and no socket: mail still flows). One small thread serves it, one
 * connection at a time, so no loop thread ever waits on its disk work.
 * Protocol: the client sends one line (at most CONTROL_LINE_MAX bytes, LF
 * ended, within CONTROL_TIMEOUT_MS), the daemon answers one line of JSON
 * (schema postern-queue/1, docs/queue.md) and closes:
 *
 *   status | flush | flush QID | flush @DOMAIN | hold QID | release QID |
 *   delete QID | bounce QID
 *
 * The actions on the delivery queue are hooks the server sets (struct
 * control_ops); one left NULL answers QUEUE-COMMAND-UNAVAILABLE.
 */
#ifndef POSTERN_SERVER_CONTROL_H
#define POSTERN_SERVER_CONTROL_H

#include <stddef.h>

#include "buf.h"
#include "catalog.h"

#define CONTROL_SOCKET_NAME "control"
#define CONTROL_LINE_MAX 512u
#define CONTROL_TIMEOUT_MS 5000

/* Each returns COND__COUNT when done, or the condition that stopped it
 * (QUEUE-NOT-FOUND, ...); *count says how many messages it touched. */
struct control_ops {
	void *arg;
	/* qid and domain NULL: every waiting message */
	enum cond_id (*flush)(void *arg, const char *qid, const char *domain, long *count);
	enum cond_id (*hold)(void *arg, const char *qid, int on, long *count);
	enum cond_id (*remove)(void *arg, const char *qid, long *count);
	enum cond_id (*bounce)(void *arg, const char *qid, long *count);
	/* status, with status_arg: messages the delivery queue holds */
	void *status_arg;
	unsigned long (*pending)(void *status_arg);
	/* status: a text description of the outbound destinations (the
	 * outbound engine's), appended to out; NULL: none */
	void (*destinations)(void *status_arg, struct buf *out);
};

struct server_control;

/* Checks the folder, makes the socket and starts its thread; NULL after
 * QUEUE-CONTROL-FAILED. ops is copied. */
struct server_control *server_control_start(const char *state_dir,
					    const struct control_ops *ops);
/* Stops the thread, removes the socket. */
void server_control_stop(struct server_control **scp);

/* `serve` at start: takes <spool_dir>/queue.lock, after QUEUE-LOCK-WAIT
 * when an offline edit holds it (waits for its end). The fd to keep open
 * until exit, or -1 (STARTUP-INIT-FAILED logged). */
int server_queue_lock(const char *spool_dir);

struct loop;
/* Runs fn(arg, out) on loop's thread and waits for it (at most
 * CONTROL_TIMEOUT_MS; then out stays as it was): for a status hook whose
 * state belongs to a loop (the outbound engine's destinations). Control
 * thread; the loop must be running. */
void server_control_on_loop(struct loop *loop, void (*fn)(void *arg, struct buf *out), void *arg,
			    struct buf *out);

/* One request line (without its LF) to its JSON answer: the protocol,
 * exposed for the unit test and the command's offline path. */
void server_control_answer(const struct control_ops *ops, const char *line, struct buf *out);

#endif
