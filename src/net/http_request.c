/*
 * http_request.c - the bounded HTTP request-head parser (see
 * http_request.h): request line, header fields, their bounds.
 */
#include "http_request.h"

#include <string.h>
#include <strings.h>

static enum http_parse
fail(struct http_request *req, int status, const char *reason)
{
	req->status = status;
	req->reason = reason;
	return HTTP_PARSE_ERROR;
}

/* RFC 9110 5.6.2: tchar. */
static int
is_tchar(uint8_t c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* method SP request-target SP HTTP-version (one line, no line end). */
static enum http_parse
parse_request_line(const uint8_t *p, size_t n, struct http_request *req)
{
	size_t i = 0, t0, tn;

	while (i < n && is_tchar(p[i]))
		i++;
	if (i == 0 || i >= n || p[i] != ' ')
		return fail(req, 400, "bad method");
	if (i > HTTP_METHOD_MAX)
		return fail(req, 400, "method too long");
	memcpy(req->method, p, i);
	req->method[i] = '\0';
	t0 = ++i;
	while (i < n && p[i] > 0x20 && p[i] < 0x7f)
		i++;
	tn = i - t0;
	if (tn == 0 || i >= n || p[i] != ' ')
		return fail(req, 400, "bad request target");
	/* absolute-form (RFC 9112 3.2.2): keep the path */
	if (tn >= 7 && strncasecmp((const char *)p + t0, "http://", 7) == 0) {
		size_t k = t0 + 7;

		while (k < t0 + tn && p[k] != '/')
			k++;
		tn -= k - t0;
		t0 = k;
		if (tn == 0) {
			req->target[0] = '/';
			req->target[1] = '\0';
		}
	} else if (p[t0] != '/') {
		return fail(req, 400, "request target not a path");
	}
	if (tn > HTTP_TARGET_MAX)
		return fail(req, 414, "target too long");
	if (tn > 0) {
		memcpy(req->target, p + t0, tn);
		req->target[tn] = '\0';
	}
	i++;
	if (n - i != 8 || memcmp(p + i, "HTTP/", 5) != 0 || p[i + 5] < '0' || p[i + 5] > '9' ||
	    p[i + 6] != '.' || p[i + 7] < '0' || p[i + 7] > '9')
		return fail(req, 400, "bad HTTP version");
	if (p[i + 5] != '1')
		return fail(req, 505, "HTTP version not supported");
	/* 1.x past 1.1: answered as 1.1 (RFC 9110 6.2) */
	req->minor = p[i + 7] == '0' ? 0 : 1;
	return HTTP_PARSE_DONE;
}

/* field-name ":" OWS field-value OWS (one line, no line end). */
static enum http_parse
parse_field(const uint8_t *p, size_t n, struct http_request *req)
{
	size_t i = 0;

	if (p[0] == ' ' || p[0] == '\t')
		return fail(req, 400, "obsolete line folding");
	while (i < n && is_tchar(p[i]))
		i++;
	if (i == 0 || i >= n || p[i] != ':')
		return fail(req, 400, "bad field name");
	if (i == 4 && strncasecmp((const char *)p, "host", 4) == 0)
		req->nhost++;
	for (i++; i < n; i++) {
		uint8_t c = p[i];

		if (c != '\t' && (c < 0x20 || c == 0x7f))
			return fail(req, 400, "control octet in field value");
	}
	return HTTP_PARSE_DONE;
}

enum http_parse
http_request_parse(const uint8_t *p, size_t len, struct http_request *req)
{
	size_t lim = len < HTTP_HEAD_MAX ? len : HTTP_HEAD_MAX, off = 0;

	memset(req, 0, sizeof(*req));
	for (unsigned line = 0;; line++) {
		const uint8_t *lf = off < lim ? memchr(p + off, '\n', lim - off) : NULL;

		if (lf == NULL)
			return len >= HTTP_HEAD_MAX ? fail(req, 431, "request head too large")
						    : HTTP_PARSE_MORE;
		size_t end = (size_t)(lf - p), n = end - off;

		if (n > 0 && p[end - 1] == '\r')
			n--;
		if (memchr(p + off, '\r', n) != NULL)
			return fail(req, 400, "CR inside a line");
		if (line == 0) {
			if (parse_request_line(p + off, n, req) != HTTP_PARSE_DONE)
				return HTTP_PARSE_ERROR;
		} else if (n == 0) {
			req->head_len = end + 1;
			if (req->nhost > 1 || (req->minor == 1 && req->nhost == 0))
				return fail(req, 400, "Host missing or repeated");
			return HTTP_PARSE_DONE;
		} else {
			if (++req->nfields > HTTP_FIELDS_MAX)
				return fail(req, 431, "too many header fields");
			if (parse_field(p + off, n, req) != HTTP_PARSE_DONE)
				return HTTP_PARSE_ERROR;
		}
		off = end + 1;
	}
}

const char *
http_status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	}
	return "Error";
}
