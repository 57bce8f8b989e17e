/*
 * http_request.h - a bounded parser for the head of an HTTP/1.0 or 1.1
 * request (request line and header fields, RFC 9112), for the /metrics
 * endpoint (server_metrics.c).
 *
 * Owns only the syntax and the bounds: at most HTTP_HEAD_MAX octets of
 * head, HTTP_FIELDS_MAX fields, a target of HTTP_TARGET_MAX octets. It
 * keeps the method, the target and the version; fields are checked and
 * counted, and Host is remembered as present (HTTP/1.1 requires exactly
 * one). A body is never read. Pure: no I/O, no allocation.
 */
#ifndef POSTERN_HTTP_REQUEST_H
#define POSTERN_HTTP_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#define HTTP_HEAD_MAX 8192	/* request line + fields + the empty line */
#define HTTP_FIELDS_MAX 64
#define HTTP_TARGET_MAX 1024
#define HTTP_METHOD_MAX 16

enum http_parse {
	HTTP_PARSE_MORE,	/* the head is not complete: read on */
	HTTP_PARSE_DONE,	/* req holds the request; head_len its octets */
	HTTP_PARSE_ERROR,	/* req->status and req->reason say why */
};

struct http_request {
	char method[HTTP_METHOD_MAX + 1];
	char target[HTTP_TARGET_MAX + 1];
	int minor;		/* HTTP/1.<minor>: 0 or 1 */
	unsigned nfields;
	unsigned nhost;		/* Host fields seen */
	size_t head_len;	/* octets of the head, the empty line included */
	int status;		/* on HTTP_PARSE_ERROR: 400, 414, 431 or 505 */
	const char *reason;	/* on HTTP_PARSE_ERROR: static text */
};

/* Parses the head at the start of p (len octets read so far). MORE while
 * no empty line ended it and len is under HTTP_HEAD_MAX; a head that cannot
 * fit is an ERROR (431) as soon as that is known. Lines end in CRLF (a
 * bare LF is taken too, RFC 9112 2.2); a CR elsewhere, a control
 * octet, an obsolete folded line or a space before a field's colon is an
 * ERROR (400). */
enum http_parse http_request_parse(const uint8_t *p, size_t len, struct http_request *req);

/* The reason phrase of a status we send ("Not Found"), or "Error". */
const char *http_status_text(int status);

#endif
