/*
 * smtp_auth.h - SMTP AUTH (RFC 4954) with PLAIN (RFC 4616) and LOGIN,
 * against the accounts file; passwords are checked on worker threads.
 *
 * The session calls these; smtp_cmd_auth.c implements them and keeps its
 * exchange state in s->auth.
 */
#ifndef POSTERN_SMTP_AUTH_H
#define POSTERN_SMTP_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "smtp_parse.h"

struct smtp_session;

/* RFC 4954 4: the longest response line (base64, CRLF excluded) a server
 * must accept; also the longest initial response on the AUTH line. The
 * session lets AUTH command lines and response lines up to this length
 * (plus "AUTH PLAIN " and the CRLF) through to the functions below, which
 * answer AUTH-LINE-TOO-LONG past it. */
#define SMTP_AUTH_LINE_MAX 12288

/* Process-wide, once, before any loop serves: keeps the failed-login
 * store state (store/authfail.h, borrowed; NULL: nothing counted) and adds
 * the "auth" class (workers concurrent checks) to the worker pool wp,
 * which runs the password checks. Returns 0, or
 * -1 if no worker could start (AUTH then answers AUTH-SASL-INIT-FAILED). */
struct workpool;
struct state;
int smtp_auth_init(struct state *state, struct workpool *wp, unsigned workers);
/* Stops the "auth" class; frees jobs whose completion never ran. Call
 * after the loops stopped, before they are freed. */
void smtp_auth_shutdown(void);

/* 1 if AUTH is offered on this connection now (EHLO keyword). */
int smtp_auth_offered(const struct smtp_session *s);
/* The AUTH command. */
void smtp_cmd_auth(struct smtp_session *s, const struct smtp_cmd *cmd);
/* 1 while a SASL exchange waits for the client's next response line. */
int smtp_auth_expects_line(const struct smtp_session *s);
/* One response line of the exchange (without CRLF). */
void smtp_auth_line(struct smtp_session *s, const uint8_t *line, size_t len);
/* Drops any exchange state (session end, STARTTLS reset). */
void smtp_auth_free(struct smtp_session *s);

#endif
