/*
 * pop3_service.c - the process-wide part of POP3: its jobs on the worker
 * pool ("pop3" class), the mailbox lock table and the last-login table
 * (see pop3.h, pop3_private.h). Failed logins and lockouts live in the
 * shared state store (store/authfail.h, shared with SMTP AUTH): a CHECK
 * job only asks it; a LOGIN job asks it before its worker part and counts
 * a failure after it, each answer on the session's loop.
 *
 * Owns struct pop3_service. Workers run every operation that may block:
 * the password check (crypt is slow on purpose), the maildrop scan, file
 * reads and the UPDATE state. Each finished job is posted to the loop of
 * the session that asked for it; pop3_service_free() stops the class, and
 * the pool hands back (cancels) the jobs whose completion never ran (a
 * loop stopped first), which are freed here.
 */
#include "pop3.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "deliver_quota.h"
#include "pop3_private.h"
#include "authfail.h"

#define LOCK_BUCKETS 1024
#define DELAY_BUCKETS 1024

/* A yescrypt hash of a random string: unknown users cost one crypt too, so
 * the answer's timing does not tell them from wrong passwords. */
#define DUMMY_HASH "{CRYPT}$y$j9T$TtDXYbRDAyByxfdr$Cd6GKiu7V7PdjiJChHYWbL8Zlyi/lwYWgvr.3/a2Fe4"

struct lock_entry {
	struct lock_entry *next;
	char *mailbox;
	char sid[POP3_SID_SIZE];
};

struct delay_entry {
	struct delay_entry *next;
	char *mailbox;
	uint64_t last;
};

struct pop3_service {
	struct workpool *wp;		/* borrowed */
	int cls;			/* the "pop3" class */
	struct state *state;		/* borrowed: failed logins; NULL: none */

	pthread_mutex_t tables;		/* the two tables below */
	struct lock_entry *locks[LOCK_BUCKETS];
	struct delay_entry *delays[DELAY_BUCKETS];
};

uint64_t
pop3_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

static size_t
hash_str(const char *s, size_t buckets)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return (size_t)(h % buckets);
}

/* ---- jobs ------------------------------------------------------------ */

static void job_run(struct workpool_job *wj);
static void job_complete(struct loop *loop, struct workpool_job *wj);
static void job_cancel(struct workpool_job *wj);

struct pop3_job *
pop3_job_new(struct pop3_service *svc, enum pop3_job_kind kind, struct pop3_env *env,
	     uintptr_t handle, void (*done)(struct pop3_job *j))
{
	struct pop3_job *j = xcalloc(1, sizeof(*j));

	j->kind = kind;
	j->svc = svc;
	j->env = env;
	j->handle = handle;
	j->done = done;
	j->fd = -1;
	workpool_job_init(&j->wj, job_run, job_complete, job_cancel);
	buf_init(&j->data, POP3_CHUNK);
	return j;
}

void
pop3_job_free(struct pop3_job *j)
{
	struct pop3_service *svc;

	if (j == NULL)
		return;
	svc = j->svc;
	if (j->locked && j->mailbox != NULL)
		pop3_lock_release(svc, j->mailbox);
	if (j->pass != NULL) {
		explicit_bzero(j->pass, strlen(j->pass));
		free(j->pass);
	}
	if (j->fd >= 0)
		close(j->fd);
	config_unref(&j->cfg);
	free(j->mailbox);
	free(j->dir);
	free(j->path);
	free(j->err_path);
	buf_fini(&j->data);
	pop3_maildrop_fini(&j->drop);
	free(j);
}

/* A failure was counted: the count, and whether it started a lockout. */
static void
login_recorded(struct authfail_req *r)
{
	struct pop3_job *j = r->arg;

	j->fail_count = r->count;
	j->banned = r->banned;
	j->done(j);	/* done frees j */
}

static void
job_complete(struct loop *loop, struct workpool_job *wj)
{
	struct pop3_job *j = (struct pop3_job *)wj;
	struct state *st = j->svc->state;

	if (j->kind == POP3_JOB_LOGIN && st != NULL &&
	    (j->result == POP3_LOGIN_UNKNOWN || j->result == POP3_LOGIN_BAD)) {
		const struct config *cfg = j->cfg;
		struct authfail_policy pol = { cfg->pop3_max_failures, cfg->pop3_failure_window,
					       cfg->pop3_lockout };
		authfail_record(st, loop, &j->af, j->client, j->sid, &pol, login_recorded, j);
		return;
	}
	if (j->kind == POP3_JOB_LOGIN && st != NULL && j->result == POP3_LOGIN_OK)
		authfail_clear(st, loop, j->client, j->sid);
	j->done(j);	/* done frees j */
}

static void
job_cancel(struct workpool_job *wj)
{
	pop3_job_free((struct pop3_job *)wj);
}

/* ---- worker side of each job ----------------------------------------- */

static void
run_login_password(struct pop3_job *j)
{
	const struct account *a = j->acct;
	struct config *cfg = j->cfg;
	int r;

	if (a == NULL) {
		struct account dummy = { .password = (char *)DUMMY_HASH };
		r = directory_verify_password(&dummy, j->pass);
		(void)r;
		j->result = POP3_LOGIN_UNKNOWN;
		j->cond = COND_POP3_AUTH_UNKNOWN_USER;
		return;
	}
	r = directory_verify_password(a, j->pass);
	explicit_bzero(j->pass, strlen(j->pass));
	if (r != 1) {
		j->result = POP3_LOGIN_BAD;
		j->cond = COND_POP3_AUTH_BAD_PASSWORD;
		return;
	}
	/* The credentials are right: from here on, refusals say why. */
	j->result = POP3_LOGIN_REFUSED;
	if (a->disabled || directory_domain_disabled(cfg->accounts, a->domain, strlen(a->domain))) {
		j->cond = COND_POP3_MAILBOX_DISABLED;
		return;
	}
	if (!a->pop3 || j->authzid_mismatch) {
		j->cond = COND_POP3_ACCESS_DENIED;
		return;
	}
	if (pop3_lock_take(j->svc, j->mailbox, j->sid, j->holder) < 0) {
		j->cond = COND_POP3_LOCKED;
		return;
	}
	j->locked = 1;
	if (cfg->pop3_login_delay > 0 &&
	    pop3_login_delay_check(j->svc, j->mailbox, cfg->pop3_login_delay, &j->remaining_s)) {
		j->cond = COND_POP3_LOGIN_DELAY;
		pop3_lock_release(j->svc, j->mailbox);
		j->locked = 0;
		return;
	}
	if (pop3_maildrop_scan(j->dir, cfg->pop3_max_messages, &j->drop, &j->err,
			       &j->err_path) < 0) {
		j->result = POP3_LOGIN_ERROR;
		j->cond = COND_POP3_MAILBOX_ERROR;
		pop3_lock_release(j->svc, j->mailbox);
		j->locked = 0;
		return;
	}
	j->result = POP3_LOGIN_OK;
	j->cond = COND_POP3_LOGIN;
}


static void
run_chunk(struct pop3_job *j)
{
	if (j->fd < 0) {
		j->fd = open(j->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (j->fd < 0) {
			j->err = errno;
			return;
		}
	}
	buf_reset(&j->data);
	if (buf_reserve(&j->data, POP3_CHUNK) < 0)
		PANIC("chunk buffer");
	for (;;) {
		ssize_t n = pread(j->fd, j->data.data, POP3_CHUNK, (off_t)j->offset);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			j->err = errno;
			return;
		}
		j->data.len = (size_t)n;
		j->offset += (uint64_t)n;
		/* a short read of a regular file is its end (Maildir files
		 * do not change), so small messages go out in one write */
		j->eof = n < POP3_CHUNK;
		return;
	}
}

static void
run_update(struct pop3_job *j)
{
	uint64_t bytes = 0, count = 0;

	for (size_t i = 0; i < j->drop.n; i++) {
		if (j->drop.v[i].deleted) {
			bytes += j->drop.v[i].size;	/* CRLF files: as on disk */
			count++;
		}
	}
	j->failed = pop3_maildrop_update(&j->drop, &j->dele, &j->seen, &j->err, &j->err_path);
	/* Keep the quota cache current; after a partial failure its next
	 * rescan corrects it instead. */
	if (j->failed == 0 && count > 0 && j->cfg != NULL)
		quota_add(j->cfg->server_mail_root, j->mailbox, -(int64_t)bytes, -(int64_t)count);
	/* The maildrop stays locked until its update is on disk. */
	if (j->locked) {
		pop3_lock_release(j->svc, j->mailbox);
		j->locked = 0;
	}
}

static void
job_run(struct workpool_job *wj)
{
	struct pop3_job *j = (struct pop3_job *)wj;

	switch (j->kind) {
	case POP3_JOB_CHECK:
		break;		/* answered from the store, never here */
	case POP3_JOB_LOGIN:
		run_login_password(j);
		break;
	case POP3_JOB_CHUNK:
		run_chunk(j);
		break;
	case POP3_JOB_UPDATE:
		run_update(j);
		break;
	}
}

static void
worker_submit(struct pop3_job *j)
{
	struct pop3_service *svc = j->svc;

	/* Only loops submit, and the class stops after they did. */
	if (workpool_submit(svc->wp, svc->cls, &j->wj, j->env->loop) < 0)
		PANIC("POP3 job after the service stopped");
}

/* The store closed with the job's request pending (shutdown). */
static void
job_dropped(struct authfail_req *r)
{
	pop3_job_free(r->arg);
}

/* The lockout check came back: a CHECK is answered; a LOGIN is refused
 * (the password not even tried) or goes on to its worker part. */
static void
ban_checked(struct authfail_req *r)
{
	struct pop3_job *j = r->arg;

	j->banned = r->banned;
	j->fail_count = r->count;
	j->ban_remaining_s = r->remaining_s;
	if (j->kind == POP3_JOB_LOGIN && !r->banned) {
		worker_submit(j);
		return;
	}
	if (j->kind == POP3_JOB_LOGIN) {
		explicit_bzero(j->pass, strlen(j->pass));
		j->result = POP3_LOGIN_LOCKOUT;
		j->cond = COND_POP3_AUTH_LOCKOUT;
	}
	j->done(j);	/* done frees j */
}

void
pop3_job_submit(struct pop3_job *j)
{
	const struct config *cfg = j->cfg != NULL ? j->cfg : NULL;
	int ask = j->kind == POP3_JOB_CHECK ||
		  (j->kind == POP3_JOB_LOGIN && cfg != NULL && cfg->pop3_max_failures > 0);

	if (!ask) {
		worker_submit(j);
		return;
	}
	j->af.cancel = job_dropped;
	authfail_check(j->svc->state, j->env->loop, &j->af, j->client, j->sid, ban_checked, j);
}

/* ---- lifecycle ------------------------------------------------------- */

struct pop3_service *
pop3_service_new(struct workpool *wp, struct state *state, unsigned workers)
{
	struct pop3_service *svc = xcalloc(1, sizeof(*svc));

	pthread_mutex_init(&svc->tables, NULL);
	svc->wp = wp;
	svc->state = state;
	svc->cls = workpool_class_new(wp, "pop3", workers > 0 ? workers : 1, 0);
	if (svc->cls < 0)
		PANIC("cannot start any POP3 worker");
	return svc;
}

void
pop3_service_free(struct pop3_service **svcp)
{
	struct pop3_service *svc = *svcp;

	if (svc == NULL)
		return;
	/* Jobs never run, or whose completion a stopped loop never ran,
	 * come back through job_cancel (freed, locks released). */
	workpool_class_stop(svc->wp, svc->cls);
	for (size_t b = 0; b < LOCK_BUCKETS; b++) {
		while (svc->locks[b] != NULL) {
			struct lock_entry *e = svc->locks[b];
			svc->locks[b] = e->next;
			free(e->mailbox);
			free(e);
		}
	}
	for (size_t b = 0; b < DELAY_BUCKETS; b++) {
		while (svc->delays[b] != NULL) {
			struct delay_entry *e = svc->delays[b];
			svc->delays[b] = e->next;
			free(e->mailbox);
			free(e);
		}
	}
	pthread_mutex_destroy(&svc->tables);
	free(svc);
	*svcp = NULL;
}

/* ---- mailbox locks --------------------------------------------------- */

int
pop3_lock_take(struct pop3_service *svc, const char *mailbox, const char *sid,
	       char holder_out[POP3_SID_SIZE])
{
	size_t b = hash_str(mailbox, LOCK_BUCKETS);
	struct lock_entry *e;

	pthread_mutex_lock(&svc->tables);
	for (e = svc->locks[b]; e != NULL; e = e->next) {
		if (strcmp(e->mailbox, mailbox) == 0) {
			memcpy(holder_out, e->sid, POP3_SID_SIZE);
			pthread_mutex_unlock(&svc->tables);
			return -1;
		}
	}
	e = xcalloc(1, sizeof(*e));
	e->mailbox = xstrdup(mailbox);
	if (slice_copy(slice_from_cstr(sid), e->sid, sizeof(e->sid)) < 0)
		e->sid[0] = '\0';
	e->next = svc->locks[b];
	svc->locks[b] = e;
	pthread_mutex_unlock(&svc->tables);
	return 0;
}

void
pop3_lock_release(struct pop3_service *svc, const char *mailbox)
{
	size_t b = hash_str(mailbox, LOCK_BUCKETS);

	pthread_mutex_lock(&svc->tables);
	for (struct lock_entry **pp = &svc->locks[b]; *pp != NULL; pp = &(*pp)->next) {
		if (strcmp((*pp)->mailbox, mailbox) == 0) {
			struct lock_entry *e = *pp;
			*pp = e->next;
			free(e->mailbox);
			free(e);
			break;
		}
	}
	pthread_mutex_unlock(&svc->tables);
}

/* ---- LOGIN-DELAY ----------------------------------------------------- */

int
pop3_login_delay_check(struct pop3_service *svc, const char *mailbox, unsigned delay_s,
		       uint64_t *remaining_out)
{
	size_t b = hash_str(mailbox, DELAY_BUCKETS);
	uint64_t now = pop3_now_s();
	struct delay_entry *e;
	int early = 0;

	pthread_mutex_lock(&svc->tables);
	for (e = svc->delays[b]; e != NULL; e = e->next)
		if (strcmp(e->mailbox, mailbox) == 0)
			break;
	if (e != NULL && now - e->last < delay_s) {
		early = 1;
		*remaining_out = delay_s - (now - e->last);
	} else {
		if (e == NULL) {
			e = xcalloc(1, sizeof(*e));
			e->mailbox = xstrdup(mailbox);
			e->next = svc->delays[b];
			svc->delays[b] = e;
		}
		e->last = now;
	}
	pthread_mutex_unlock(&svc->tables);
	return early;
}
