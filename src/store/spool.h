/*
 * spool.h - the durable message spool, with group commit.
 *
 * Layout under server.spool:
 *   incoming/<qid>  being written; never acknowledged; removed at start
 *   queue/<qid>     committed: envelope + message + end marker + checksum
 *   corrupt/<qid>   failed its end marker or checksum at recovery
 *
 * A session streams the message into incoming/<qid> through the spool's
 * body sink (spool_body_sink, store/body_sink.h): the file is opened and
 * its envelope written on the pool, data chunks are written from the loop
 * into the page cache as they arrive. The commit finishes the file (its
 * length, checksums and the checks' tags) and renames it into queue/; one
 * syncfs (store/flush.h, shared with whoever else flushes meanwhile) then
 * makes every file and rename of the round durable (group commit). Only
 * then does the completion run, and only then may the session send 250.
 * Any failure unlinks what it wrote.
 * Delivery streams the data back from queue/<qid> (spool_msg_copy).
 */
#ifndef POSTERN_SPOOL_H
#define POSTERN_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "buf.h"
#include "loop.h"

#define SPOOL_QID_SIZE 20	/* 16 chars [0-9A-Z] + NUL, room to spare */

/* The bounds of one spool file. Recovery refuses a file past them, so
 * whatever the session accepts stays within them: limits.message_size
 * tops out at SPOOL_MAX_MESSAGE (options.def, checked by the unit test),
 * our Received field is at most SPOOL_MAX_TRACE, and a RCPT whose
 * expansion would pass SPOOL_MAX_RCPTS is refused (RCPT-TOO-MANY-TARGETS).
 * The encoder refuses (EFBIG, a 4xx) anything past them, never writing a
 * file recovery would quarantine. */
#define SPOOL_MAX_RCPTS 100000u			/* final destinations */
#define SPOOL_MAX_FIELD 4096u			/* any one envelope string */
#define SPOOL_MAX_MESSAGE ((uint64_t)2 << 30)	/* largest limits.message_size */
#define SPOOL_MAX_TRACE 8192u			/* our Received field */
#define SPOOL_MAX_DATA (SPOOL_MAX_MESSAGE + SPOOL_MAX_TRACE)
#define SPOOL_MAX_TAGS ((size_t)1 << 20)	/* the checks' header fields */

/* DSN parameters (RFC 3461) as MAIL and RCPT give them; the spool stores
 * them and delivery honours them (deliver/dsn.h). One definition: the
 * SMTP parser includes this header. */
enum smtp_ret { SMTP_RET_NONE, SMTP_RET_FULL, SMTP_RET_HDRS };

#define SMTP_NOTIFY_NEVER   0x1u
#define SMTP_NOTIFY_SUCCESS 0x2u
#define SMTP_NOTIFY_FAILURE 0x4u
#define SMTP_NOTIFY_DELAY   0x8u

/* The DSNs already sent for a recipient (state log "dsn" records). */
#define SPOOL_DSN_FAILED    0x1u
#define SPOOL_DSN_DELAYED   0x2u
#define SPOOL_DSN_DELIVERED 0x4u
#define SPOOL_DSN_RELAYED   0x8u
#define SPOOL_DSN_EXPANDED  0x10u

/* What a message is, for bounces (state log "origin" record, written by
 * spool_compose_commit): a DSN of ours may only bounce to the postmaster,
 * and a DSN to the postmaster never bounces at all. */
#define SPOOL_ORIGIN_MAIL 0		/* received */
#define SPOOL_ORIGIN_DSN 1		/* a DSN we composed */
#define SPOOL_ORIGIN_DOUBLE 2		/* a failed DSN, sent to the postmaster */

struct spool_rcpt {
	char *addr;		/* owned: mailbox as accepted, "local@domain" */
	char *orcpt;		/* owned: ORCPT= as sent, or NULL */
	unsigned notify;	/* SMTP_NOTIFY_* bits, 0 = default */
	int done;		/* delivered (set by delivery, or read back
				 * from the file's state log) */
	int failed;		/* failed permanently (state log) */
	unsigned attempts;	/* delivery attempts recorded */
	int64_t next_try;	/* the next attempt recorded, unix seconds */
	unsigned dsn_sent;	/* SPOOL_DSN_* (state log) */
	char *last;		/* owned or NULL: the detail of the last
				 * deferred or failed record (spool_detail) */
};

/* Why a recipient failed or waits, as the state log keeps it for a DSN:
 * "STATUS COND MTA DIAG", each of the first three one word or "-". */
struct spool_detail {
	const char *status;	/* enhanced status "5.1.1", or NULL */
	const char *cond;	/* catalog ID "DELIVERY-LOCAL-QUOTA", or NULL */
	const char *mta;	/* the remote MTA's name, or NULL */
	const char *diag;	/* the peer's reply or our text, or NULL */
};

/* One message: envelope and data. Owned by whoever holds it: the session
 * until spool_commit(), then the spool, then delivery. */
struct spool_msg {
	char qid[SPOOL_QID_SIZE];
	char *from;		/* owned: reverse-path mailbox, "" for <> */
	struct spool_rcpt *rcpts;	/* owned */
	size_t nrcpts;
	int ret;		/* SMTP_RET_* */
	char *envid;		/* owned or NULL */
	int body_8bit;
	int smtputf8;
	char *client;		/* owned: client address text */
	char *helo;		/* owned */
	int64_t received_at;	/* unix seconds */
	struct buf data;	/* in memory only (tests, version-1 files):
				 * the message, Received field first */
	struct buf tags;	/* header fields the checks added: delivery
				 * puts them on top of the data */
	char *file;		/* owned: the spool file holding the data
				 * (body_len bytes at body_off, CRC32C
				 * body_crc), or NULL: the data is in data */
	uint64_t body_off, body_len;
	uint32_t body_crc;
	uint64_t log_off, log_end;	/* the state log: where it starts and
					 * where its last good record ends */
	int log_torn;		/* bytes after log_end are no record */
	int origin;		/* SPOOL_ORIGIN_* (state log) */
	int recovered;		/* read back from the spool at start */
	int held;		/* an operator's hold (state log "hold"):
				 * never handed to delivery until released */
};

struct spool;

/* Creates the folders if needed, removes incoming/ leftovers; adds the
 * "commit" class (threads concurrent group-commit rounds) to the pool. NULL on error with the condition logged
 * (STARTUP-INIT-FAILED). */
struct workpool;
struct spool *spool_open(const char *dir, struct workpool *wp, unsigned threads);
void spool_close(struct spool **spp);	/* waits for running commits */

/* A new queue ID: 16 characters [0-9A-Z], unique in this spool, sortable
 * by time. Thread-safe. */
void spool_new_qid(struct spool *sp, char out[SPOOL_QID_SIZE]);
/* The time a queue ID was made (unix microseconds, its first 11
 * characters), or 0 when qid is not one of ours. */
uint64_t spool_qid_time_us(const char *qid);

struct spool_msg *spool_msg_new(size_t max_data);
/* The message as delivered: tags, then the data. */
uint64_t spool_msg_size(const struct spool_msg *msg);
/* Writes the message as delivered to fd, the data streamed from the spool
 * file through a bounded buffer with its checksum checked. 0, or -1 with
 * errno (EBADMSG: the data does not match its checksum) and *op ("open",
 * "read" or "write"). Any thread. */
int spool_msg_copy(const struct spool_msg *msg, int fd, const char **op) WARN_UNUSED;
/* The same, to fn in chunks of at most 64 KiB: fn returns 0 to go on, 1
 * to stop early (the rest, and the checksum, are not looked at), -1 to
 * fail (errno kept). */
typedef int (*spool_emit_fn)(void *arg, const void *p, size_t n);
int spool_msg_stream(const struct spool_msg *msg, spool_emit_fn fn, void *arg,
		     const char **op) WARN_UNUSED;
void spool_msg_free(struct spool_msg **msgp);
/* Adds a recipient (copies addr and orcpt). */
void spool_msg_add_rcpt(struct spool_msg *msg, const char *addr, size_t len,
			const char *orcpt, size_t orcpt_len, unsigned notify);

/* Takes out the recipients whose drop[i] is set (drop holds nrcpts
 * flags), keeping the others in their order; returns how many are left. */
size_t spool_msg_drop_rcpts(struct spool_msg *msg, const unsigned char *drop);

/* Completion: status 0 = durable (cond is then COND__COUNT, meaning none);
 * -1 = failed, cond says why (QUEUE_WRITE_FAILED, QUEUE_DISK_FULL,
 * QUEUE_SPOOL_CREATE_FAILED; the event is already logged with path, op and
 * errno). On success the spool then hands msg to the sink (delivery); on
 * failure msg is freed. The callback gets no msg: it must not touch it. */
typedef void (*spool_done_fn)(struct loop *loop, void *arg, int status,
			      enum cond_id cond);

struct body_sink;
/* A body sink (store/body_sink.h) that streams msg's data into
 * incoming/<qid>; msg's envelope (sender, recipients, qid) must be final.
 * The envelope is encoded now: msg stays the caller's until
 * body_sink_commit, which takes it. Loop thread. */
struct body_sink *spool_body_sink(struct spool *sp, const struct spool_msg *msg);

/* Queues msg, its data in memory, for commit (takes ownership). done runs on loop (posted
 * with loop_post); with loop NULL it runs on the spool worker thread. */
void spool_commit(struct spool *sp, struct spool_msg *msg,
		  struct loop *loop, spool_done_fn done, void *arg);

/* Where committed messages go next (the delivery queue). Called on a spool
 * worker thread; takes ownership of msg. Set before serving. Setting it
 * (to NULL at shutdown, before deliver_free) waits until no sink call is
 * running; without a sink, committed messages stay in queue/ only. */
typedef void (*spool_sink_fn)(struct spool_msg *msg, void *arg);
void spool_set_sink(struct spool *sp, spool_sink_fn fn, void *arg);

/* Reads every queue/ entry back (at start) and hands each to the sink with
 * recovered=1; a bad one moves to corrupt/ (QUEUE-SPOOL-CORRUPT). Logs
 * QUEUE-RECOVERED with the count. Returns the count, or -1. */
long spool_recover(struct spool *sp);

/* The same at start, on the pool's "recover" class: the caller goes on
 * (the listeners serve new sessions meanwhile). Files committed after
 * this call are not recovered (their commit hands them on). 0, or -1
 * (logged by the caller). */
int spool_recover_start(struct spool *sp);

/* Reads queue/<qid>'s envelope and state log back (head and tail, never
 * the data) for a delivery pass: what recovery reads. 0 with *msgp (the
 * caller's, recovered=0); -1 when it cannot be read now (logged: try
 * again later); -2 when it is gone, or damaged and moved to corrupt/
 * (QUEUE-SPOOL-CORRUPT): nothing is left to deliver. Any thread but a
 * loop's. */
int spool_reload(struct spool *sp, const char *qid, struct spool_msg **msgp);

/* Appends state records (spool_state_*) to msg's spool file, flushed to
 * disk when sync is set. 0, or -1 (logged: QUEUE-WRITE-FAILED). Any
 * thread but a loop's. */
int spool_append_state(const struct spool_msg *msg, const struct buf *recs, int sync);
/* Encodes one state record for recipient idx into out: done, deferred
 * (attempts so far, next try in unix seconds, the last reply) or failed. */
int spool_state_done(struct buf *out, size_t idx);
/* done, with the detail of how (a peer's name and reply): read back
 * into the recipient's last, so a success DSN after a restart still
 * knows it was relayed. */
int spool_state_done_detail(struct buf *out, size_t idx, const char *detail);
int spool_state_deferred(struct buf *out, size_t idx, unsigned attempts, int64_t next,
			 const char *reply);
/* An operator's hold (on 1) or release (on 0) of the whole message. */
int spool_state_hold(struct buf *out, int on);

/* A failed record (with why, for the DSN), a "dsn sent" record (one
 * SPOOL_DSN_* bit), and the detail text a deferred record's reply may
 * carry (spool_state_deferred). */
int spool_state_failed(struct buf *out, size_t idx, const struct spool_detail *d);
int spool_state_dsn(struct buf *out, size_t idx, unsigned dsn_bit);
/* The "origin" record: what the message is (SPOOL_ORIGIN_*). */
int spool_state_origin(struct buf *out, int origin);
int spool_detail_format(struct buf *out, const struct spool_detail *d) WARN_UNUSED;
/* Splits a recorded detail (rcpt->last) into d, pointing into a copy in
 * scratch (its size at least strlen(s) + 1). A text that is not in the
 * detail form is all diag (or all cond, when it is one catalog-ID word). */
void spool_detail_parse(const char *s, char *scratch, size_t size, struct spool_detail *d);

/* A message Postern writes itself (a DSN), composed on a worker thread
 * (never a loop's): begin takes msg (its envelope final; a queue ID is
 * given if it has none) and writes the envelope to incoming/<qid>;
 * write and copy add data (copy streams orig's data, as delivered, from
 * its spool file: whole, or only its header section up to the empty
 * line); commit writes the tail and the state records in state (or
 * NULL), renames the file into queue/, flushes (store/flush.h) and hands
 * msg to the spool's sink. Each returns 0, or -1 (a failed write: the
 * commit will fail; begin and commit log it, QUEUE-WRITE-FAILED, ...);
 * copy returns -2 when the original could not be read (errno: EBADMSG,
 * its data fails its checksum, or the read's error), part of it maybe
 * copied, the composition still usable. A failed begin or commit leaves
 * nothing behind and frees msg; abort drops an unfinished one. */
struct spool_compose;
struct spool_compose *spool_compose_begin(struct spool *sp, struct spool_msg *msg);
int spool_compose_write(struct spool_compose *c, const void *p, size_t n);
int spool_compose_copy(struct spool_compose *c, const struct spool_msg *orig,
		       int headers_only);
int spool_compose_commit(struct spool_compose **cp, const struct buf *state);
void spool_compose_abort(struct spool_compose **cp);

/* Moves queue/<qid> to corrupt/ (QUEUE-SPOOL-CORRUPT with reason): its
 * data failed its checksum while delivery streamed it. Thread-safe. */
void spool_quarantine(struct spool *sp, const char *qid, const char *reason);

/* Removes queue/<qid> once every recipient is delivered. Thread-safe. */
int spool_remove(struct spool *sp, const char *qid);


/* Encoding, exposed for tests and the fuzzer: serialise msg into out /
 * parse a spool file's bytes into a new msg (NULL with *reason on error). */
int spool_encode(const struct spool_msg *msg, struct buf *out) WARN_UNUSED;
struct spool_msg *spool_decode(const uint8_t *p, size_t n, const char **reason);

#endif
