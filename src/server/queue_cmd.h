/*
 * queue_cmd.h - `postern queue`: the operator's view of the queue and
 * its edits (docs/queue.md). Reads queue/ files itself (list, show); acts
 * through the running daemon's control socket (server_control.h), or,
 * with no daemon running, on the spool itself under the queue lock
 * (spool_admin.h).
 */
#ifndef POSTERN_QUEUE_CMD_H
#define POSTERN_QUEUE_CMD_H

/* argv[1] is "queue". The process exit code: 0, 1 (the command failed:
 * not found, not possible), 64 usage, 75 the queue is locked and no
 * daemon answers, 78 configuration. */
int queue_cmd_main(int argc, char **argv);

#endif
