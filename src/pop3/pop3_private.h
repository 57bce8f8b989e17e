/*
 * pop3_private.h - what the files of src/pop3/ share and nothing else
 * includes: the maildrop, the worker jobs, the service's tables.
 *
 * Threads: a job is built on a loop thread, runs on the worker pool's
 * "pop3" class (core/workpool.h) and comes back to its loop with the
 * pool's batched completions; it owns everything it
 * points to (copies, a config reference, an fd) so that a session that
 * ended meanwhile leaves nothing dangling. The lock table and the
 * last-login table are guarded by the service's mutex and may be touched
 * from any thread. Failed logins and lockouts are in the state store
 * (store/authfail.h, shared with SMTP AUTH), read and written by jobs.
 */
#ifndef POSTERN_POP3_PRIVATE_H
#define POSTERN_POP3_PRIVATE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "authfail.h"
#include "workpool.h"
#include "pop3.h"
#include "pop3_parse.h"

#define POP3_CHUNK (64 * 1024)		/* one read of a message file */
#define POP3_SID_SIZE 17

/* ---- the maildrop --------------------------------------------------- */

struct pop3_msg {
	char *name;		/* owned: file name in new/ or cur/ */
	char uid[POP3_UID_MAX + 1];
	uint64_t size;		/* octets as the client sees them */
	uint8_t in_cur;		/* 0: new/, 1: cur/ */
	uint8_t deleted;	/* DELE in this session */
	uint8_t retrieved;	/* RETR completed in this session */
};

struct pop3_maildrop {
	char *dir;		/* owned: the Maildir folder */
	struct pop3_msg *v;	/* owned, sorted by name */
	size_t n;
};

void pop3_maildrop_fini(struct pop3_maildrop *d);
/* "<dir>/new/<name>" or "<dir>/cur/<name>"; malloc'ed. */
char *pop3_msg_path(const struct pop3_maildrop *d, const struct pop3_msg *m);

/* Worker side. Scans dir/new and dir/cur (a missing Maildir is an empty
 * maildrop): regular files whose names do not start with '.', sizes
 * counted by reading each file. 0, or -1 with *err_out (errno) and
 * *path_out (malloc'ed) set. At most max messages. */
int pop3_maildrop_scan(const char *dir, size_t max, struct pop3_maildrop *d,
		       int *err_out, char **path_out) WARN_UNUSED;
/* Worker side: the UPDATE state. Unlinks deleted messages, moves
 * retrieved ones from new/ to cur/ with ":2,S" (adds S in cur/), then
 * fsyncs the folders. Returns the number that failed (0: all done);
 * *err_out and *path_out name the first failure. */
size_t pop3_maildrop_update(const struct pop3_maildrop *d, size_t *dele_out, size_t *seen_out,
			    int *err_out, char **path_out);

/* ---- jobs ----------------------------------------------------------- */

enum pop3_job_kind {
	POP3_JOB_CHECK,		/* is the client locked out? (the greeting) */
	POP3_JOB_LOGIN,
	POP3_JOB_CHUNK,
	POP3_JOB_UPDATE,
};

enum pop3_login_result {
	POP3_LOGIN_OK,
	POP3_LOGIN_UNKNOWN,	/* no such user */
	POP3_LOGIN_BAD,		/* wrong password */
	POP3_LOGIN_REFUSED,	/* cond says why: disabled, denied, locked, delay */
	POP3_LOGIN_ERROR,	/* maildrop scan failed */
	POP3_LOGIN_LOCKOUT,	/* the client address is locked out */
};

struct pop3_job {
	struct workpool_job wj;		/* first: the pool hands it back */
	enum pop3_job_kind kind;
	struct pop3_service *svc;
	struct pop3_env *env;
	uintptr_t handle;		/* (slot << 32) | generation */
	void (*done)(struct pop3_job *j);	/* on env->loop */

	/* CHECK and LOGIN: the failed-login store's key and answers */
	struct authfail_req af;		/* the request out, if any */
	char client[64];		/* the client address as text */
	int banned;			/* locked out (now, or by this failure) */
	int64_t fail_count;		/* failures counted, or the ban's count */
	uint64_t ban_remaining_s;	/* CHECK, LOCKOUT: seconds left */

	/* LOGIN: in */
	struct config *cfg;		/* reference, for acct */
	const struct account *acct;	/* NULL: unknown user */
	char *pass;			/* owned, wiped at free */
	char *mailbox;			/* owned: "local@domain" (lock key) */
	char *dir;			/* owned: the Maildir */
	char sid[POP3_SID_SIZE];
	int authzid_mismatch;
	/* LOGIN: out */
	enum pop3_login_result result;
	enum cond_id cond;
	char holder[POP3_SID_SIZE];	/* POP3-LOCKED */
	uint64_t remaining_s;		/* POP3-LOGIN-DELAY */
	int locked;			/* the job holds the mailbox lock */
	struct pop3_maildrop drop;	/* owned until taken */

	/* CHUNK: in/out */
	char *path;			/* owned */
	int fd;				/* owned while the job is */
	uint64_t offset;
	struct buf data;
	int eof;

	/* UPDATE: out (also uses drop, mailbox) */
	size_t dele, seen, failed;

	/* any: errno and path of a failure */
	int err;
	char *err_path;			/* owned */
};

struct pop3_job *pop3_job_new(struct pop3_service *svc, enum pop3_job_kind kind,
			      struct pop3_env *env, uintptr_t handle,
			      void (*done)(struct pop3_job *j));
/* Queues j for a worker; its done runs on env->loop afterwards. A job
 * the pool never ran, or whose completion no loop ran, is freed when the
 * service stops. */
void pop3_job_submit(struct pop3_job *j);
/* Frees j and what it owns (closes its fd, releases its lock, wipes the
 * password). Loop thread or service. */
void pop3_job_free(struct pop3_job *j);

/* ---- the service's tables ------------------------------------------- */

/* Takes the lock of mailbox for sid; 0, or -1 with the holder's sid. */
int pop3_lock_take(struct pop3_service *svc, const char *mailbox, const char *sid,
		   char holder_out[POP3_SID_SIZE]);
void pop3_lock_release(struct pop3_service *svc, const char *mailbox);

/* RFC 2449 LOGIN-DELAY: 1 with the seconds left when mailbox logged in
 * less than delay_s ago; else records now as its last login and 0. */
int pop3_login_delay_check(struct pop3_service *svc, const char *mailbox, unsigned delay_s,
			   uint64_t *remaining_out);

/* The clock the tables use (seconds, monotonic). */
uint64_t pop3_now_s(void);

#endif
