/*
 * test_http_request.c - unit tests for net/http_request.c: good GET heads
 * (HTTP/1.0, 1.1, bare LF, absolute-form), every strict prefix of a good
 * head being MORE, and each malformed or oversize head with its status
 * (400, 414, 431, 505).
 */
#include "http_request.h"

#include <stdio.h>
#include <string.h>

#include "testing.h"

static enum http_parse
parse(const char *s, struct http_request *req)
{
	return http_request_parse((const uint8_t *)s, strlen(s), req);
}

static void
check_error(const char *s, int status)
{
	struct http_request req;

	CHECK_INT(parse(s, &req), HTTP_PARSE_ERROR);
	CHECK_INT(req.status, status);
	CHECK(req.reason != NULL);
}

static void
test_good(void)
{
	struct http_request req;
	static const char g11[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9100\r\n"
				  "User-Agent: Prometheus/2.45.0\r\nAccept: text/plain;\tq=0.9\r\n\r\nBODY";

	TEST_CASE("an HTTP/1.1 GET with Host");
	CHECK_INT(parse(g11, &req), HTTP_PARSE_DONE);
	CHECK_STR(req.method, "GET");
	CHECK_STR(req.target, "/metrics");
	CHECK_INT(req.minor, 1);
	CHECK_INT(req.nfields, 3);
	CHECK_INT(req.head_len, strlen(g11) - 4);

	TEST_CASE("every strict prefix is MORE");
	for (size_t i = 0; i < strlen(g11) - 4; i++)
		CHECK_INT(http_request_parse((const uint8_t *)g11, i, &req), HTTP_PARSE_MORE);

	TEST_CASE("HTTP/1.0 needs no Host; bare LF line ends");
	CHECK_INT(parse("HEAD /metrics?x=1 HTTP/1.0\n\n", &req), HTTP_PARSE_DONE);
	CHECK_STR(req.method, "HEAD");
	CHECK_STR(req.target, "/metrics?x=1");
	CHECK_INT(req.minor, 0);

	TEST_CASE("absolute-form keeps the path; HTTP/1.9 is answered as 1.1");
	CHECK_INT(parse("GET http://h:9100/metrics HTTP/1.9\r\nhost: h\r\n\r\n", &req),
		  HTTP_PARSE_DONE);
	CHECK_STR(req.target, "/metrics");
	CHECK_INT(req.minor, 1);
	CHECK_INT(parse("GET http://h HTTP/1.0\r\n\r\n", &req), HTTP_PARSE_DONE);
	CHECK_STR(req.target, "/");

	TEST_CASE("another method or path still parses (the server says 405/404)");
	CHECK_INT(parse("POST /other HTTP/1.0\r\n\r\n", &req), HTTP_PARSE_DONE);
	CHECK_STR(req.method, "POST");
}

static void
test_bad(void)
{
	char big[HTTP_HEAD_MAX + 64];
	struct http_request req;

	TEST_CASE("malformed request lines: 400");
	check_error("\r\n\r\n", 400);
	check_error("GET\r\n\r\n", 400);
	check_error("GET  /metrics HTTP/1.0\r\n\r\n", 400);
	check_error("GET metrics HTTP/1.0\r\n\r\n", 400);
	check_error("GET /metrics HTTP/1.0 \r\n\r\n", 400);
	check_error("GET /metrics http/1.0\r\n\r\n", 400);
	check_error("GET /met\x01rics HTTP/1.0\r\n\r\n", 400);
	check_error("G(T /metrics HTTP/1.0\r\n\r\n", 400);
	check_error("GETGETGETGETGETGET /metrics HTTP/1.0\r\n\r\n", 400);
	check_error("GET /metrics HTTP/1.0\rX\r\n\r\n", 400);

	TEST_CASE("malformed fields: 400");
	check_error("GET /metrics HTTP/1.0\r\nHost : x\r\n\r\n", 400);
	check_error("GET /metrics HTTP/1.0\r\n: x\r\n\r\n", 400);
	check_error("GET /metrics HTTP/1.0\r\nNoColon\r\n\r\n", 400);
	check_error("GET /metrics HTTP/1.0\r\nA: b\r\n folded\r\n\r\n", 400);
	check_error("GET /metrics HTTP/1.0\r\nA: b\x01\r\n\r\n", 400);

	TEST_CASE("Host: required once in 1.1, at most once in 1.0");
	check_error("GET /metrics HTTP/1.1\r\n\r\n", 400);
	check_error("GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
	check_error("GET /metrics HTTP/1.0\r\nHost: a\r\nHOST: b\r\n\r\n", 400);

	TEST_CASE("other versions: 505");
	check_error("GET /metrics HTTP/2.0\r\n\r\n", 505);
	check_error("GET /metrics HTTP/0.9\r\n\r\n", 505);

	TEST_CASE("a target over HTTP_TARGET_MAX: 414");
	memcpy(big, "GET /", 5);
	memset(big + 5, 'a', HTTP_TARGET_MAX);
	snprintf(big + 5 + HTTP_TARGET_MAX, 64, " HTTP/1.0\r\n\r\n");
	check_error(big, 414);
	big[5 + HTTP_TARGET_MAX - 1] = ' ';
	snprintf(big + 5 + HTTP_TARGET_MAX - 1, 64, " HTTP/1.0\r\n\r\n");
	CHECK_INT(parse(big, &req), HTTP_PARSE_DONE);
	CHECK_INT(strlen(req.target), HTTP_TARGET_MAX);

	TEST_CASE("a head over HTTP_HEAD_MAX: 431 once that is known, never read past");
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET /metrics HTTP/1.0\r\nX: ", 26);
	CHECK_INT(http_request_parse((const uint8_t *)big, HTTP_HEAD_MAX - 1, &req),
		  HTTP_PARSE_MORE);
	CHECK_INT(http_request_parse((const uint8_t *)big, HTTP_HEAD_MAX, &req), HTTP_PARSE_ERROR);
	CHECK_INT(req.status, 431);
	CHECK_INT(http_request_parse((const uint8_t *)big, sizeof(big), &req), HTTP_PARSE_ERROR);
	CHECK_INT(req.status, 431);

	TEST_CASE("more than HTTP_FIELDS_MAX fields: 431");
	{
		size_t n = (size_t)snprintf(big, sizeof(big), "GET /metrics HTTP/1.0\r\n");
		for (unsigned i = 0; i < HTTP_FIELDS_MAX; i++)
			n += (size_t)snprintf(big + n, sizeof(big) - n, "X%u: y\r\n", i);
		snprintf(big + n, sizeof(big) - n, "\r\n");
		CHECK_INT(parse(big, &req), HTTP_PARSE_DONE);
		CHECK_INT(req.nfields, HTTP_FIELDS_MAX);
		snprintf(big + n, sizeof(big) - n, "Z: y\r\n\r\n");
		check_error(big, 431);
	}

	TEST_CASE("status texts");
	CHECK_STR(http_status_text(431), "Request Header Fields Too Large");
	CHECK_STR(http_status_text(999), "Error");
}

int
main(void)
{
	test_good();
	test_bad();
	return TEST_DONE();
}
