/*
 * spool_private.h - what the spool's files share and nobody else sees:
 * the spool object, the format's pieces (spool_format.c), the state log's
 * records (spool_state.c), failure logging and the commit job (spool.c),
 * the streaming writer (spool_body.c).
 */
#ifndef POSTERN_SPOOL_PRIVATE_H
#define POSTERN_SPOOL_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "workpool.h"
#include "spool.h"

#define SPOOL_QID_LEN 16
#define SPOOL_MAX_HEAD ((size_t)1 << 30)	/* encoded envelope */
/* "data " + the fixed-width length + ":": the length is patched in place
 * once the streamed data is complete. */
#define SPOOL_DATA_DIGITS 20
#define SPOOL_DATA_REC_LEN (5 + SPOOL_DATA_DIGITS + 1)
/* The largest tail: LF, the body record, the tags record, the end record. */
#define SPOOL_TAIL_FIXED 64
#define SPOOL_MAX_LOG ((uint64_t)16 << 20)	/* a file's state log */

struct spool {
	char *dir;		/* owned, as given */
	int dirfd, infd, qfd, cfd;
	struct workpool *wp;	/* borrowed */
	int cls;		/* the "commit" class, -1 before */
	int file_cls;		/* the "spool-file" class (open, remove), -1 before */
	int recover_cls;	/* the "recover" class, once started */
	atomic_int stopping;	/* spool_close began */
	pthread_rwlock_t sink_lock;	/* read: a sink call; write: a change */
	spool_sink_fn sink;
	void *sink_arg;
};

/* ---- spool_format.c ---- */
int spool_qid_valid(const char *qid);
/* The head of a version-2 file: magic, envelope, "data <20 digits>:" with
 * data_len. -1 if msg is past the bounds of spool.h. */
int spool_enc_head(const struct spool_msg *msg, uint64_t data_len, struct buf *b);
/* Rewrites the length digits of an encoded head (the last record). */
void spool_head_set_len(struct buf *head, uint64_t data_len);
/* The tail after data_len bytes whose CRC is body_crc: "\nbody 8:..\n",
 * "tags N:..\n", "end 8:..\n" (the end CRC covers head and tail). */
int spool_enc_tail(const struct buf *head, uint32_t body_crc, const struct buf *tags,
		   struct buf *out);
/* The magic and the head record: what tells the head's length. */
#define SPOOL_HEAD_PREFIX (16 + 8 + 10 + 1)
/* From a file's first SPOOL_HEAD_PREFIX bytes: the length of its head
 * (where the data begins), or -1 (not version 2, or damaged). */
int64_t spool_head_len(const uint8_t *p, size_t n);
/* One state record's value at most. */
#define SPOOL_MAX_STATE_REC 2048u
/* A version-2 file's envelope, from its first n bytes, up to the data:
 * sets the envelope and body_off, body_len. 2, 1 (version 1: decode the
 * whole file instead), or -1 with *reason ("truncated": more bytes are
 * needed, if the file has them). */
int spool_decode_head(const uint8_t *p, size_t n, struct spool_msg *msg, const char **reason);
/* The rest of a version-2 file after its data (from the LF on): body,
 * tags, end (its CRC over head, the body_off first bytes, and the tail)
 * and the state log, applied to the recipients (log_off, log_end,
 * log_torn). 0 or -1 with *reason. */
int spool_decode_tail(const uint8_t *head, size_t head_n, const uint8_t *tail, size_t tail_n,
		      struct spool_msg *msg, const char **reason);
/* The state record at p[*off..n): 0 with its value (after the CRC,
 * which is checked) and *off past it; -1 when it is torn or damaged. */
int spool_state_next(const uint8_t *p, size_t n, size_t *off, const uint8_t **val,
		     size_t *vlen);
/* Appends one state record: kind "done", "deferred" (attempts, next try
 * in unix seconds) or "failed", for recipient idx, with the last reply. */
/* ---- spool_state.c ---- */
/* Applies one state record's value (its CRC checked) to msg. 0, or -1 if
 * it makes no sense (then it and what follows are dropped). */
int spool_state_apply(struct spool_msg *msg, const uint8_t *v, size_t n);
int spool_enc_state(struct buf *out, const char *kind, size_t idx, unsigned attempts,
		    int64_t next, const char *reply);
/* Decodes a file's bytes. copy_body: the data is copied into msg->data
 * and its checksum checked; else only its place is noted (body_off,
 * body_len, body_crc) and its bytes are never touched. */
struct spool_msg *spool_decode_ex(const uint8_t *p, size_t n, int copy_body,
				  const char **reason);

/* ---- spool_recover.c ---- */
/* Reads queue/<name>'s envelope and state log (never the data): the
 * message (file set, recovered 0), or NULL with *reason (damaged) or
 * *reason NULL (a read error, logged). repair: a torn last state record
 * is cut off the file. */
struct spool_msg *spool_load(struct spool *sp, const char *name, const char **reason,
			     int repair);

/* ---- spool.c ---- */
char *spool_path(const struct spool *sp, const char *sub, const char *name);
/* Logs a failure of op on sub/<qid> and returns its condition
 * (QUEUE-DISK-FULL, QUEUE-SPOOL-CREATE-FAILED, QUEUE-WRITE-FAILED). */
enum cond_id spool_log_fail(const struct spool *sp, const char *qid, const char *sub,
			    const char *op, int err, int creating);
int spool_write_all(int fd, const void *p, size_t n);
/* Moves incoming/<qid> to queue/<qid>, never replacing one. 0 or -1. */
int spool_rename(int infd, int qfd, const char *qid);
/* Hands msg to the sink (delivery), or frees it when there is none. */
void spool_to_sink(struct spool *sp, struct spool_msg *msg);
/* Queues a streamed file for the group commit: fd is open on
 * incoming/<msg->qid> holding head and data_len data bytes (crc), or
 * werr is the first write error. Takes msg, head (moved) and fd. */
void spool_commit_streamed(struct spool *sp, struct spool_msg *msg, int fd,
			   struct buf *head, uint64_t data_len, uint32_t crc, int werr,
			   struct loop *loop, spool_done_fn done, void *arg);

#endif
