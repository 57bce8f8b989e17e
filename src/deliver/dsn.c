/*
 * dsn.c - composing delivery status notifications (see dsn.h).
 *
 * Owns the words and the layout of a DSN. The text is built in a small
 * bounded buffer that is written out to the composing spool file
 * (store/spool.h, spool_compose_*) whenever it fills; the original
 * message is copied from its own spool file by the spool, so a DSN of a
 * 50 MiB message costs a 64 KiB buffer, not 50 MiB.
 */
#include "dsn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "directory.h"
#include "log.h"

#define DSN_CHUNK (64 * 1024)	/* text written out past this */
#define DSN_LINE_MAX 998	/* a diagnostic is cut to fit one line */

static const char *const action_names[] = {
	[DSN_FAILED] = "failed", [DSN_DELAYED] = "delayed", [DSN_DELIVERED] = "delivered",
	[DSN_RELAYED] = "relayed", [DSN_EXPANDED] = "expanded",
};

const char *
dsn_action_name(enum dsn_action a)
{
	return (size_t)a < ARRAY_LEN(action_names) ? action_names[a] : "failed";
}

unsigned
dsn_action_bit(enum dsn_action a)
{
	switch (a) {
	case DSN_DELAYED:
		return SPOOL_DSN_DELAYED;
	case DSN_DELIVERED:
		return SPOOL_DSN_DELIVERED;
	case DSN_RELAYED:
		return SPOOL_DSN_RELAYED;
	case DSN_EXPANDED:
		return SPOOL_DSN_EXPANDED;
	default:
		return SPOOL_DSN_FAILED;
	}
}

int
dsn_notify_wants(unsigned notify, enum dsn_action a)
{
	if (notify & SMTP_NOTIFY_NEVER)
		return 0;
	if (notify == 0)	/* not given: failures and delays (Postfix) */
		return a == DSN_FAILED || a == DSN_DELAYED;
	switch (a) {
	case DSN_FAILED:
		return (notify & SMTP_NOTIFY_FAILURE) != 0;
	case DSN_DELAYED:
		return (notify & SMTP_NOTIFY_DELAY) != 0;
	default:
		return (notify & SMTP_NOTIFY_SUCCESS) != 0;
	}
}

/* ---- small pieces ----------------------------------------------------- */

static const char *
dsn_host(const struct config *cfg)
{
	return cfg->hostname != NULL && cfg->hostname[0] != '\0' ? cfg->hostname : "localhost";
}

/* RFC 5322 date-time of t (local time, numeric zone). */
static void
dsn_date(char out[64], int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (localtime_r(&tt, &tm) == NULL ||
	    strftime(out, 64, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
		snprintf(out, 64, "Thu, 01 Jan 1970 00:00:00 +0000");
}

static const char *
dsn_status(const struct dsn_report *r)
{
	if (r->status != NULL && r->status[0] != '\0')
		return r->status;
	if (r->cond < COND__COUNT && catalog_get(r->cond)->esc[0] != '\0')
		return catalog_get(r->cond)->esc;
	switch (r->action) {
	case DSN_FAILED:
		return "5.0.0";
	case DSN_DELAYED:
		return "4.0.0";
	default:
		return "2.0.0";
	}
}

/* The diagnostic on one line: the peer's reply, or the row's reply. */
static void
dsn_diag(struct buf *out, const struct config *cfg, const struct spool_msg *msg,
	 const struct dsn_report *r)
{
	buf_reset(out);
	if (r->diagnostic != NULL && r->diagnostic[0] != '\0') {
		for (const char *p = r->diagnostic; *p != '\0' && out->len < DSN_LINE_MAX; p++)
			if (buf_append_byte(out, (unsigned char)*p < ' ' ? ' ' : (uint8_t)*p) < 0)
				break;
	} else {
		(void)dsn_render(out, cfg, msg, r->idx, r->cond);
	}
}

int
dsn_render(struct buf *out, const struct config *cfg, const struct spool_msg *msg, size_t idx,
	   enum cond_id cond)
{
	char age[24];
	int64_t a = (int64_t)time(NULL) - msg->received_at;
	struct kv kvs[] = { KV("rcpt", msg->rcpts[idx].addr), KV("age_s", age) };

	buf_reset(out);
	if (cond >= COND__COUNT || catalog_get(cond)->code == 0)
		return -1;
	snprintf(age, sizeof(age), "%lld", (long long)(a > 0 ? a : 0));
	if (catalog_reply(out, cond, dsn_host(cfg), kvs, ARRAY_LEN(kvs), 0) < 0) {
		buf_reset(out);
		return -1;
	}
	return 0;
}

/* "rfc822; a@b", or "utf-8; ..." for a mailbox with UTF-8 (RFC 6533). */
static const char *
addr_type(const char *a)
{
	for (; *a != '\0'; a++)
		if ((unsigned char)*a >= 0x80)
			return "utf-8";
	return "rfc822";
}

/* Where a DSN that failed goes (outbound.double_bounce_recipient). */
static char *
dsn_postmaster(const struct config *cfg)
{
	const char *host = dsn_host(cfg);

	if (cfg->outbound_double_bounce_recipient != NULL &&
	    cfg->outbound_double_bounce_recipient[0] != '\0')
		return xstrdup(cfg->outbound_double_bounce_recipient);
	if (!config_is_local_domain(cfg, host, strlen(host)) && cfg->local_domains.n > 0)
		host = cfg->local_domains.v[0];
	return xasprintf("postmaster@%s", host);
}

/* The DSN's recipients: the address, or for a local one its final
 * mailboxes as RCPT would find them (an alias, a list, plus addressing). */
static void
dsn_add_rcpt(struct spool_msg *m, const struct config *cfg, const char *to)
{
	const char *at = strrchr(to, '@');
	struct resolve_result res;

	if (at != NULL && cfg->accounts != NULL &&
	    config_is_local_domain(cfg, at + 1, strlen(at + 1))) {
		struct resolve_ctx rc = {
			.sender = "", .sender_len = 0,
			.plus_addressing = cfg->local_plus_addressing,
			.plus_sep = cfg->local_plus_separator[0] ? cfg->local_plus_separator[0] : '+',
			.max_depth = cfg->local_alias_max_depth,
		};

		if (directory_resolve(cfg->accounts, &rc, to, (size_t)(at - to), at + 1,
				      strlen(at + 1), &res) == 0 &&
		    res.cond == COND__COUNT && res.ntargets > 0) {
			for (size_t i = 0; i < res.ntargets && i < SPOOL_MAX_RCPTS; i++)
				spool_msg_add_rcpt(m, res.targets[i].addr,
						   strlen(res.targets[i].addr), NULL, 0, 0);
			resolve_result_fini(&res);
			return;
		}
		resolve_result_fini(&res);
	}
	/* remote, or unknown here: delivery decides (and may fail it) */
	spool_msg_add_rcpt(m, to, strlen(to), NULL, 0, 0);
}

/* ---- writing ---------------------------------------------------------- */

struct dsn_out {
	struct spool_compose *c;
	struct buf b;		/* pending text, written out past DSN_CHUNK */
	int err;		/* a write failed: the commit fails (and logs) */
	int bad;		/* text was lost before any write: abort */
};

static void
out_flush(struct dsn_out *o)
{
	if (o->b.len > 0 && spool_compose_write(o->c, o->b.data, o->b.len) < 0)
		o->err = 1;
	buf_reset(&o->b);
}

/* Appends text, turning every LF into CRLF (the spool keeps CRLF). */
static void PRINTF(2, 3)
outf(struct dsn_out *o, const char *fmt, ...)
{
	char stack[1024], *s = stack;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(stack, sizeof(stack), fmt, ap);
	va_end(ap);
	if (n < 0) {
		o->bad = 1;
		return;
	}
	if ((size_t)n >= sizeof(stack)) {
		s = xmalloc((size_t)n + 1);
		va_start(ap, fmt);
		(void)vsnprintf(s, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	for (const char *p = s; *p != '\0'; p++) {
		if (o->b.len + 2 > o->b.max)
			out_flush(o);	/* so the appends below have room */
		if (*p == '\n' && buf_append_byte(&o->b, '\r') < 0)
			o->bad = 1;
		if (buf_append_byte(&o->b, (uint8_t)*p) < 0)
			o->bad = 1;
	}
	if (s != stack)
		free(s);
	if (o->b.len >= DSN_CHUNK)
		out_flush(o);
}

static const char *
dsn_subject(enum dsn_action a, int double_bounce)
{
	if (double_bounce)
		return "Undeliverable delivery status notification";
	switch (a) {
	case DSN_DELAYED:
		return "Delayed Mail (still being retried)";
	case DSN_DELIVERED:
		return "Successful Mail Delivery Report";
	case DSN_RELAYED:
		return "Relayed Mail Delivery Report";
	case DSN_EXPANDED:
		return "Expanded Mail Delivery Report";
	default:
		return "Undelivered Mail Returned to Sender";
	}
}

static const char *
dsn_opening(enum dsn_action a)
{
	switch (a) {
	case DSN_DELAYED:
		return "Your message has not been delivered yet to the recipients below.\n"
		       "It is still in the queue and delivery will be retried; you will be\n"
		       "told if it finally fails. You do not need to send it again.\n";
	case DSN_DELIVERED:
		return "Your message was delivered to the recipients below, as you asked\n"
		       "(NOTIFY=SUCCESS).\n";
	case DSN_RELAYED:
		return "Your message was passed on to a mail system that sends no delivery\n"
		       "notifications; you may hear nothing more about it.\n";
	case DSN_EXPANDED:
		return "Your message was delivered to a list or alias and passed on to its\n"
		       "members.\n";
	default:
		return "Your message could not be delivered to the recipients below.\n"
		       "It will not be retried.\n";
	}
}

static const char *
dsn_advice(enum dsn_action a)
{
	switch (a) {
	case DSN_FAILED:
		return "What you can do: check each address for typing errors and send the\n"
		       "message again, or reach the recipient another way. If you believe\n"
		       "the address is right, forward this report to your postmaster: the\n"
		       "ID in brackets names the exact condition (Postern's docs/events.md).\n";
	case DSN_DELAYED:
		return "What you can do: nothing yet. If the message is urgent, reach the\n"
		       "recipient another way.\n";
	default:
		return "No action is needed.\n";
	}
}

/* The human-readable part. */
static void
dsn_text(struct dsn_out *o, const struct config *cfg, const struct spool_msg *msg,
	 const struct dsn_report *r, const size_t *pick, size_t np, int double_bounce,
	 struct buf *diag)
{
	char when[64];

	outf(o, "This is the mail system at host %s.\n\n", dsn_host(cfg));
	if (double_bounce)
		outf(o, "A delivery status notification could not be delivered to its\n"
		     "recipient; it is attached below for the postmaster.\n\n");
	outf(o, "%s\n", dsn_opening(r[pick[0]].action));
	for (size_t k = 0; k < np; k++) {
		const struct dsn_report *x = &r[pick[k]];
		const struct spool_rcpt *rc = &msg->rcpts[x->idx];

		dsn_diag(diag, cfg, msg, x);
		outf(o, "<%s>: %s", rc->addr, dsn_action_name(x->action));
		if (x->cond < COND__COUNT)
			outf(o, " [%s]", catalog_get(x->cond)->id);
		outf(o, "\n    Status: %s", dsn_status(x));
		if (x->cond < COND__COUNT)
			outf(o, " (%s)", catalog_get(x->cond)->logtext);
		outf(o, "\n");
		if (x->remote_mta != NULL)
			outf(o, "    %s said: %.*s\n", x->remote_mta, (int)diag->len,
			     (const char *)diag->data);
		else if (diag->len > 0)
			outf(o, "    %.*s\n", (int)diag->len, (const char *)diag->data);
		if (x->action == DSN_DELAYED && x->retry_until > 0) {
			dsn_date(when, x->retry_until);
			outf(o, "    Delivery will be tried until %s.\n", when);
		}
		outf(o, "\n");
	}
	outf(o, "%s", dsn_advice(r[pick[0]].action));
}

/* The message/delivery-status part (RFC 3464 2.2, 2.3). */
static void
dsn_status_part(struct dsn_out *o, const struct config *cfg, const struct spool_msg *msg,
		const struct dsn_report *r, const size_t *pick, size_t np, struct buf *diag)
{
	char when[64];

	outf(o, "Reporting-MTA: dns; %s\n", dsn_host(cfg));
	outf(o, "X-Postern-Queue-ID: %s\n", msg->qid);
	if (msg->envid != NULL && msg->envid[0] != '\0')
		outf(o, "Original-Envelope-Id: %s\n", msg->envid);
	dsn_date(when, msg->received_at);
	outf(o, "Arrival-Date: %s\n", when);
	for (size_t k = 0; k < np; k++) {
		const struct dsn_report *x = &r[pick[k]];
		const struct spool_rcpt *rc = &msg->rcpts[x->idx];

		outf(o, "\n");
		if (rc->orcpt != NULL && rc->orcpt[0] != '\0')
			outf(o, "Original-Recipient: %s\n", rc->orcpt);
		outf(o, "Final-Recipient: %s; %s\n", addr_type(rc->addr), rc->addr);
		outf(o, "Action: %s\n", dsn_action_name(x->action));
		outf(o, "Status: %s\n", dsn_status(x));
		if (x->remote_mta != NULL && x->remote_mta[0] != '\0')
			outf(o, "Remote-MTA: dns; %s\n", x->remote_mta);
		dsn_diag(diag, cfg, msg, x);
		if (diag->len > 0)
			outf(o, "Diagnostic-Code: smtp; %.*s\n", (int)diag->len,
			     (const char *)diag->data);
		dsn_date(when, x->last_attempt > 0 ? x->last_attempt : (int64_t)time(NULL));
		outf(o, "Last-Attempt-Date: %s\n", when);
		if (x->action == DSN_DELAYED && x->retry_until > 0) {
			dsn_date(when, x->retry_until);
			outf(o, "Will-Retry-Until: %s\n", when);
		}
	}
}

/* The DSN's envelope: from <>, to the sender (or the postmaster). */
static struct spool_msg *
dsn_envelope(const struct config *cfg, const struct spool_msg *msg, int double_bounce)
{
	struct spool_msg *m = spool_msg_new(0);
	char *to = double_bounce ? dsn_postmaster(cfg) : xstrdup(msg->from);

	free(m->from);
	m->from = xstrdup("");
	dsn_add_rcpt(m, cfg, to);
	free(to);
	m->ret = SMTP_RET_NONE;
	m->smtputf8 = msg->smtputf8;
	m->body_8bit = 1;	/* the text part, and maybe the original */
	m->client = xstrdup("127.0.0.1");
	m->helo = xstrdup(dsn_host(cfg));
	m->received_at = (int64_t)time(NULL);
	/* in memory as in its state log (spool_state_origin) */
	m->origin = double_bounce ? SPOOL_ORIGIN_DOUBLE : SPOOL_ORIGIN_DSN;
	return m;
}

/* Writes and commits the DSN for reports pick[0..np). 0 or -1. */
static int
dsn_compose(struct spool *sp, const struct config *cfg, const struct spool_msg *msg,
	    const struct dsn_report *r, const size_t *pick, size_t np, int double_bounce,
	    char dsn_qid[SPOOL_QID_SIZE])
{
	struct spool_msg *m = dsn_envelope(cfg, msg, double_bounce);
	struct dsn_out o = { 0 };
	struct buf diag, state;
	enum dsn_action a = r[pick[0]].action;
	/* the whole original for failures (unless RET=HDRS), else headers */
	int full = a == DSN_FAILED && msg->ret != SMTP_RET_HDRS;
	char when[64];
	int rc;

	snprintf(dsn_qid, SPOOL_QID_SIZE, "%s", "-");
	o.c = spool_compose_begin(sp, m);	/* takes m */
	if (o.c == NULL)
		return -1;
	memcpy(dsn_qid, m->qid, SPOOL_QID_SIZE);
	buf_init(&o.b, 2 * DSN_CHUNK);
	buf_init(&diag, DSN_LINE_MAX + 64);
	dsn_date(when, (int64_t)time(NULL));
	outf(&o, "Date: %s\n", when);
	outf(&o, "From: Mail Delivery System <MAILER-DAEMON@%s>\n", dsn_host(cfg));
	outf(&o, "To: <%s>\n", m->rcpts[0].addr);
	outf(&o, "Subject: %s\n", dsn_subject(a, double_bounce));
	outf(&o, "Message-ID: <%s.dsn@%s>\n", dsn_qid, dsn_host(cfg));
	outf(&o, "Auto-Submitted: auto-replied\n");
	outf(&o, "MIME-Version: 1.0\n");
	outf(&o, "Content-Type: multipart/report; report-type=delivery-status;\n"
		 "\tboundary=\"%s/%s\"\n", dsn_qid, dsn_host(cfg));
	outf(&o, "Content-Transfer-Encoding: 8bit\n\n");
	outf(&o, "This is a MIME-encapsulated message.\n\n");
	outf(&o, "--%s/%s\n", dsn_qid, dsn_host(cfg));
	outf(&o, "Content-Description: Notification\n"
		 "Content-Type: text/plain; charset=utf-8\n"
		 "Content-Transfer-Encoding: 8bit\n\n");
	dsn_text(&o, cfg, msg, r, pick, np, double_bounce, &diag);
	outf(&o, "\n--%s/%s\n", dsn_qid, dsn_host(cfg));
	outf(&o, "Content-Description: Delivery report\n"
		 "Content-Type: message/delivery-status\n\n");
	dsn_status_part(&o, cfg, msg, r, pick, np, &diag);
	outf(&o, "\n--%s/%s\n", dsn_qid, dsn_host(cfg));
	if (full)
		outf(&o, "Content-Description: Undelivered Message\n"
			 "Content-Type: message/rfc822\n"
			 "Content-Transfer-Encoding: 8bit\n\n");
	else
		outf(&o, "Content-Description: Message Headers\n"
			 "Content-Type: text/rfc822-headers\n"
			 "Content-Transfer-Encoding: 8bit\n\n");
	out_flush(&o);
	/* the original, streamed from its spool file by the spool; one that
	 * cannot be read (damaged since) leaves a note, not an endless retry */
	if (!o.err) {
		rc = spool_compose_copy(o.c, msg, !full);
		if (rc == -2)
			outf(&o, "\n[the original message could not be read from the queue: %s]\n",
			     strerror(errno));
		else if (rc < 0)
			o.err = 1;
	}
	outf(&o, "\n--%s/%s--\n", dsn_qid, dsn_host(cfg));
	out_flush(&o);
	buf_fini(&diag);
	buf_fini(&o.b);
	/* the mark that keeps a DSN from bouncing but to the postmaster */
	buf_init(&state, 4096);
	rc = spool_state_origin(&state, double_bounce ? SPOOL_ORIGIN_DOUBLE : SPOOL_ORIGIN_DSN);
	/* a write that failed (o.err) fails the commit, which logs it */
	if (rc == 0 && !o.bad) {
		rc = spool_compose_commit(&o.c, &state);
	} else {
		rc = -1;
		spool_compose_abort(&o.c);	/* nothing half-written goes out */
	}
	buf_fini(&state);
	return rc;
}

/* ---- the entry point -------------------------------------------------- */

static void
log_reports(enum cond_id id, const struct spool_msg *msg, const struct dsn_report *r,
	    const size_t *pick, size_t np, const char *key3, const char *v3, const char *to)
{
	struct log_ctx ctx = { .qid = msg->qid };
	struct buf rcpts;

	buf_init(&rcpts, 4096);
	for (size_t k = 0; k < np; k++) {
		const char *a = msg->rcpts[r[pick[k]].idx].addr;

		if (buf_appendf(&rcpts, "%s%s", k ? "," : "", a) < 0)
			break;	/* the first ones, up to 4 KiB */
	}
	if (id == COND_DELIVERY_BOUNCE_SENT) {
		struct kv kvs[] = { KV("dsn_qid", v3), KV("rcpts", buf_cstr(&rcpts)),
				    KV("action", dsn_action_name(r[pick[0]].action)),
				    KV("to", to) };

		catalog_log(id, &ctx, kvs, ARRAY_LEN(kvs));
	} else if (id == COND_DELIVERY_BOUNCE_SKIPPED) {
		struct kv kvs[] = { KV("rcpts", buf_cstr(&rcpts)),
				    KV("action", dsn_action_name(r[pick[0]].action)),
				    KV(key3, v3) };

		catalog_log(id, &ctx, kvs, ARRAY_LEN(kvs));
	} else {
		struct kv kvs[] = { KV("action", dsn_action_name(r[pick[0]].action)),
				    KV("err", v3) };

		catalog_log(id, &ctx, kvs, ARRAY_LEN(kvs));
	}
	buf_fini(&rcpts);
}

/* A DSN of ours sent on to the postmaster failed too: logged, dropped. */
static void
log_double_dropped(const struct spool_msg *msg, const struct dsn_report *r, size_t n)
{
	struct log_ctx ctx = { .qid = msg->qid };

	for (size_t k = 0; k < n; k++) {
		const char *a = msg->rcpts[r[k].idx].addr;
		struct kv kvs[] = { KVA("rcpt", a, strlen(a)), KV("status", dsn_status(&r[k])),
				    KV("reply", r[k].diagnostic != NULL ? r[k].diagnostic
					       : r[k].cond < COND__COUNT ? catalog_get(r[k].cond)->id
					       : "-") };

		if (r[k].action == DSN_FAILED)
			catalog_log(COND_DELIVERY_DOUBLE_BOUNCE_DROPPED, &ctx, kvs,
				    ARRAY_LEN(kvs));
	}
}

int
dsn_send(struct spool *sp, const struct config *cfg, const struct spool_msg *msg,
	 const struct dsn_report *r, size_t n, char *qid_out)
{
	size_t *pick, np = 0, nskip = 0, *skip;
	int double_bounce = 0, rc = 0;
	char dsn_qid[SPOOL_QID_SIZE];

	if (qid_out != NULL)
		qid_out[0] = '\0';
	if (n == 0)
		return 0;
	if (msg->from[0] == '\0') {
		/* from <>: never a DSN, but a DSN of ours that failed goes to
		 * the postmaster once; that one's failure is only logged */
		if (msg->origin == SPOOL_ORIGIN_DOUBLE) {
			log_double_dropped(msg, r, n);
			return 0;
		}
		double_bounce = msg->origin == SPOOL_ORIGIN_DSN;
	}
	pick = xcalloc(n, sizeof(*pick));
	skip = xcalloc(n, sizeof(*skip));
	for (size_t k = 0; k < n; k++) {
		int want = double_bounce ? r[k].action == DSN_FAILED
			   : msg->from[0] != '\0' &&
				     dsn_notify_wants(msg->rcpts[r[k].idx].notify, r[k].action);

		if (want)
			pick[np++] = k;
		else
			skip[nskip++] = k;
	}
	if (nskip > 0)
		log_reports(COND_DELIVERY_BOUNCE_SKIPPED, msg, r, skip, nskip, "reason",
			    msg->from[0] == '\0' ? "null-sender" : "notify", NULL);
	if (np > 0) {
		if (dsn_compose(sp, cfg, msg, r, pick, np, double_bounce, dsn_qid) == 0) {
			char *to = double_bounce ? dsn_postmaster(cfg) : xstrdup(msg->from);

			log_reports(COND_DELIVERY_BOUNCE_SENT, msg, r, pick, np, NULL, dsn_qid, to);
			free(to);
			if (qid_out != NULL)
				memcpy(qid_out, dsn_qid, SPOOL_QID_SIZE);
		} else {
			log_reports(COND_DELIVERY_BOUNCE_FAILED, msg, r, pick, np, NULL,
				    "the DSN could not be written to the spool", NULL);
			rc = -1;
		}
	}
	free(pick);
	free(skip);
	return rc;
}
