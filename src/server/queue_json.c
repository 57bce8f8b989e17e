/*
 * queue_json.c - the JSON of the queue command and of the control socket
 * (see queue_json.h): a small bounded writer, and the one rendering of a
 * queued message and of a command's answer.
 */
#include "queue_json.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "spool_admin.h"

void
jw_init(struct jw *w, struct buf *b)
{
	w->b = b;
	w->err = 0;
	w->first = 1;
}

static void
jw_raw(struct jw *w, const void *p, size_t n)
{
	if (!w->err && buf_append(w->b, p, n) < 0)
		w->err = 1;
}

static void jw_quoted(struct jw *w, const void *s, size_t n);

/* A comma before every value but the first of its level. */
static void
jw_sep(struct jw *w)
{
	if (!w->first)
		jw_raw(w, ",", 1);
	w->first = 0;
}

void
jw_open(struct jw *w, char c)
{
	jw_sep(w);
	jw_raw(w, &c, 1);
	w->first = 1;
}

void
jw_close(struct jw *w, char c)
{
	jw_raw(w, &c, 1);
	w->first = 0;
}

void
jw_key(struct jw *w, const char *key)
{
	jw_sep(w);
	jw_quoted(w, key, strlen(key));
	jw_raw(w, ":", 1);
	w->first = 1;	/* the value follows without a comma */
}

/* The length of a valid UTF-8 sequence at p (n bytes left), or 0. */
static size_t
utf8_len(const uint8_t *p, size_t n)
{
	size_t len;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if ((p[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if ((p[0] & 0xf8) == 0xf0) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* A string value, escaped, without its separator. */
static void
jw_quoted(struct jw *w, const void *s, size_t n)
{
	const uint8_t *p = s;

	jw_raw(w, "\"", 1);
	for (size_t i = 0; i < n && !w->err;) {
		uint8_t c = p[i];
		char esc[8];

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			jw_raw(w, esc, 2);
			i++;
		} else if (c == '\n' || c == '\r' || c == '\t') {
			esc[0] = '\\';
			esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
			jw_raw(w, esc, 2);
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			(void)snprintf(esc, sizeof(esc), "\\u%04x", c);
			jw_raw(w, esc, 6);
			i++;
		} else {
			size_t len = utf8_len(p + i, n - i);

			if (len == 0) {
				jw_raw(w, "\\ufffd", 6);	/* not UTF-8 */
				i++;
			} else {
				jw_raw(w, p + i, len);
				i += len;
			}
		}
	}
	jw_raw(w, "\"", 1);
}

void
jw_strn(struct jw *w, const void *s, size_t n)
{
	jw_sep(w);
	jw_quoted(w, s, n);
}

void
jw_str(struct jw *w, const char *s)
{
	if (s == NULL)
		jw_null(w);
	else
		jw_strn(w, s, strlen(s));
}

void
jw_int(struct jw *w, int64_t v)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof(tmp), "%" PRId64, v);

	jw_sep(w);
	if (n > 0 && (size_t)n < sizeof(tmp))
		jw_raw(w, tmp, (size_t)n);
	else
		w->err = 1;
}

void
jw_bool(struct jw *w, int v)
{
	jw_sep(w);
	jw_raw(w, v ? "true" : "false", v ? 4 : 5);
}

void
jw_null(struct jw *w)
{
	jw_sep(w);
	jw_raw(w, "null", 4);
}

void
jw_kstr(struct jw *w, const char *key, const char *s)
{
	jw_key(w, key);
	jw_str(w, s);
}

void
jw_kint(struct jw *w, const char *key, int64_t v)
{
	jw_key(w, key);
	jw_int(w, v);
}

void
jw_kbool(struct jw *w, const char *key, int v)
{
	jw_key(w, key);
	jw_bool(w, v);
}

const char *
queue_rcpt_state(const struct spool_view *v, size_t i)
{
	const struct spool_rcpt *r = &v->msg->rcpts[i];

	if (r->done)
		return "done";
	if (r->failed)
		return "failed";
	return v->msg->held ? "held" : "waiting";
}

/* RET= as the sender gave it (0 none, 1 FULL, 2 HDRS: smtp_parse.h). */
static const char *
ret_name(int ret)
{
	return ret == 1 ? "FULL" : ret == 2 ? "HDRS" : NULL;
}

static void
notify_json(struct jw *w, unsigned notify)
{
	static const char *const names[] = { "NEVER", "SUCCESS", "FAILURE", "DELAY" };

	jw_open(w, '[');
	for (unsigned i = 0; i < 4; i++)
		if (notify & (1u << i))
			jw_str(w, names[i]);
	jw_close(w, ']');
}

void
queue_json_message(struct jw *w, const struct spool_view *v, int64_t now, int show)
{
	const struct spool_msg *m = v->msg;

	jw_open(w, '{');
	jw_kstr(w, "qid", m->qid);
	jw_kint(w, "received", m->received_at);
	jw_kint(w, "age", now > m->received_at ? now - m->received_at : 0);
	jw_kint(w, "size", (int64_t)v->size);
	jw_kstr(w, "sender", m->from);
	jw_kbool(w, "held", m->held);
	jw_key(w, "recipients");
	jw_open(w, '[');
	for (size_t i = 0; i < m->nrcpts; i++) {
		const struct spool_rcpt *r = &m->rcpts[i];

		jw_open(w, '{');
		jw_kstr(w, "address", r->addr);
		jw_kstr(w, "state", queue_rcpt_state(v, i));
		jw_kint(w, "attempts", r->attempts);
		jw_kstr(w, "last_reply", r->last);
		jw_key(w, "next_attempt");
		if (!r->done && !r->failed && r->next_try > 0)
			jw_int(w, r->next_try);
		else
			jw_null(w);
		if (show) {
			jw_kstr(w, "orcpt", r->orcpt);
			jw_key(w, "notify");
			notify_json(w, r->notify);
		}
		jw_close(w, '}');
	}
	jw_close(w, ']');
	if (show) {
		jw_key(w, "envelope");
		jw_open(w, '{');
		jw_kstr(w, "ret", ret_name(m->ret));
		jw_kstr(w, "envid", m->envid);
		jw_kbool(w, "body_8bit", m->body_8bit);
		jw_kbool(w, "smtputf8", m->smtputf8);
		jw_kstr(w, "client", m->client);
		jw_kstr(w, "helo", m->helo);
		jw_close(w, '}');
		jw_key(w, "headers");
		jw_strn(w, v->headers.data, v->headers.len);
		jw_kbool(w, "headers_truncated", v->headers_cut);
		jw_kint(w, "history_dropped", (int64_t)v->hist_dropped);
		jw_key(w, "history");
		jw_open(w, '[');
		for (size_t i = 0; i < v->nhist; i++) {
			jw_open(w, '{');
			jw_kstr(w, "kind", v->hist[i].kind);
			jw_kint(w, "rcpt", (int64_t)v->hist[i].rcpt);
			jw_kstr(w, "detail", v->hist[i].detail);
			jw_close(w, '}');
		}
		jw_close(w, ']');
	}
	jw_close(w, '}');
}

int
queue_json_result(struct buf *out, const char *command, const char *via, const char *target,
		  long count, enum cond_id err, const char *text)
{
	struct jw w;

	jw_init(&w, out);
	jw_open(&w, '{');
	jw_kstr(&w, "schema", QUEUE_JSON_SCHEMA);
	jw_kstr(&w, "command", command);
	jw_kbool(&w, "ok", err == COND__COUNT);
	jw_kstr(&w, "via", via);
	jw_kstr(&w, "target", target);
	jw_kint(&w, "count", count);
	jw_kstr(&w, "error", err == COND__COUNT ? NULL : catalog_get(err)->id);
	jw_kstr(&w, "message", text);
	jw_close(&w, '}');
	if (!w.err && buf_append_byte(out, '\n') < 0)
		w.err = 1;
	return w.err ? -1 : 0;
}
