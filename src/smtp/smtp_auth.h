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

#include "smtp/smtp_parse.h"

struct smtp_session;

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
