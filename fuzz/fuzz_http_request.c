/*
 * fuzz_http_request.c - libFuzzer target for net/http_request.c, the
 * request-head parser of the /metrics endpoint: anyone metrics.allow lets
 * in reaches it with any octets.
 *
 * Input: the octets as they come off the socket. Checks, besides the
 * sanitizers: a head is within the input and HTTP_HEAD_MAX, its target a
 * path within HTTP_TARGET_MAX, and it parses the same from its own octets
 * alone while every strict prefix of it is MORE; MORE is said only under
 * HTTP_HEAD_MAX and stays MORE for every shorter prefix; an ERROR carries
 * one of the statuses the parser may give and a reason.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http_request.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_request req, req2;
	enum http_parse r = http_request_parse(data, size, &req);

	switch (r) {
	case HTTP_PARSE_DONE:
		check(req.head_len > 0 && req.head_len <= size && req.head_len <= HTTP_HEAD_MAX);
		check(req.method[0] != '\0' && req.target[0] == '/');
		check(strlen(req.target) <= HTTP_TARGET_MAX);
		check(req.nfields <= HTTP_FIELDS_MAX && (req.minor == 0 || req.minor == 1));
		check(http_request_parse(data, req.head_len, &req2) == HTTP_PARSE_DONE);
		check(req2.head_len == req.head_len && strcmp(req2.target, req.target) == 0 &&
		      strcmp(req2.method, req.method) == 0 && req2.nfields == req.nfields);
		check(http_request_parse(data, req.head_len - 1, &req2) == HTTP_PARSE_MORE);
		break;
	case HTTP_PARSE_MORE:
		check(size < HTTP_HEAD_MAX);
		if (size > 0)
			check(http_request_parse(data, size - 1, &req2) == HTTP_PARSE_MORE);
		break;
	case HTTP_PARSE_ERROR:
		check(req.reason != NULL && req.reason[0] != '\0');
		check(req.status == 400 || req.status == 414 || req.status == 431 ||
		      req.status == 505);
		break;
	}
	return 0;
}
