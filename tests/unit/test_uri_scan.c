/*
 * test_uri_scan.c - the link extractor of URI block lists
 * (src/policy/uri_scan.c): plain, quoted-printable and base64 parts,
 * HTML character references, MIME structure, the bounds, and that any
 * split of the input gives the same domains.
 */
#include "uri_scan.h"

#include <stdlib.h>
#include <string.h>

#include "testing.h"

/* The domains found in msg, comma-separated, into out. */
static const char *
scan(const char *msg, uint64_t max_octets, size_t max_domains, size_t step, char *out,
     size_t outlen, struct uri_scan **keep)
{
	struct uri_scan *u = uri_scan_new(max_octets, max_domains);
	size_t n = strlen(msg), w = 0;

	for (size_t i = 0; i < n; i += step)
		uri_scan_feed(u, (const uint8_t *)msg + i, n - i < step ? n - i : step);
	uri_scan_finish(u);
	out[0] = '\0';
	for (size_t i = 0; i < uri_scan_count(u); i++) {
		const struct uri_scan_domain *d = uri_scan_get(u, i);
		int k = snprintf(out + w, outlen - w, "%s%s%s", i ? "," : "", d->is_ip ? "ip:" : "",
				 d->name);

		if (k > 0 && (size_t)k < outlen - w)
			w += (size_t)k;
	}
	if (keep != NULL)
		*keep = u;
	else
		uri_scan_free(&u);
	return out;
}

static void
expect(const char *name, const char *msg, const char *want)
{
	static const size_t steps[] = { 100000, 1, 2, 3, 7, 64 };
	char got[2048];

	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		char label[128];

		snprintf(label, sizeof(label), "%s (split %zu)", name, steps[i]);
		TEST_CASE(label);
		CHECK_STR(scan(msg, 1 << 20, 20, steps[i], got, sizeof(got), NULL), want);
	}
}

#define HDR "From: a@b.example\r\nSubject: x\r\n"

int
main(void)
{
	char got[2048];
	struct uri_scan *u;

	expect("plain", HDR "\r\nSee http://www.Spam.Example/x?y and https://a.b.c.test:8080/p\r\n",
	       "spam.example,c.test");
	expect("header fields are not looked at",
	       HDR "X-Url: http://hdr.example/\r\n\r\nbody\r\n", "");
	expect("bare www", HDR "\r\nvisit www.bare.example today, not xwww.no.example\r\n",
	       "bare.example");
	expect("duplicates", HDR "\r\nhttp://a.dup.example http://b.dup.example/ www.dup.example\r\n",
	       "dup.example");
	expect("userinfo and port",
	       HDR "\r\nhttp://user:pw@real.example:81/ http://x@y.other.example/\r\n",
	       "real.example,other.example");
	expect("ipv4", HDR "\r\nhttp://192.0.2.10/a http://300.1.1.1/ http://1.2.3/\r\n",
	       "ip:192.0.2.10");
	expect("no link", HDR "\r\nhttp:// http://nodot/ http://-bad-.example/\r\n", "");
	expect("quoted-printable soft breaks",
	       HDR "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	       "<a href=3D\"http://qp.exa=\r\nmple/path\">x</a> http=3A//hex=2Eexample/\r\n",
	       "qp.example,hex.example");
	/* "<a href=\"http://b64.example/?a=1&amp;b=2\">http://ent&#46;example&#x2F;</a>" */
	expect("base64 html with entities",
	       HDR "MIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n"
	       "\tboundary=\"==b1\"\r\n\r\npreamble http://pre.example/\r\n"
	       "--==b1\r\nContent-Type: text/plain\r\n\r\nhttp://plain.example/\r\n"
	       "--==b1\r\nContent-Type: text/html; charset=utf-8\r\n"
	       "Content-Transfer-Encoding: BASE64\r\n\r\n"
	       "PGEgaHJlZj0iaHR0cDovL2I2NC5leGFtcGxlLz9hPTEmYW1wO2I9MiI+aHR0cDovL2VudCYj\r\n"
	       "NDY7ZXhhbXBsZSYjeDJGOzwvYT4=\r\n"
	       "--==b1--\r\nepilogue http://epi.example/\r\n",
	       "plain.example,b64.example,ent.example");
	expect("attachments skipped",
	       HDR "Content-Type: multipart/mixed; boundary=zz\r\n\r\n"
	       "--zz\r\nContent-Type: application/octet-stream\r\n\r\nhttp://att.example/\r\n"
	       "--zz\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\n"
	       "http://inner.example/\r\n--zz--\r\n",
	       "inner.example");
	expect("nested multipart",
	       HDR "Content-Type: multipart/mixed; boundary=out\r\n\r\n"
	       "--out\r\nContent-Type: multipart/alternative; boundary=in\r\n\r\n"
	       "--in\r\nContent-Type: text/plain\r\n\r\nhttp://n1.example\r\n"
	       "--in--\r\n--out\r\n\r\nhttp://n2.example\r\n--out--\r\n",
	       "n1.example,n2.example");
	expect("unknown entity separates", HDR "\r\nhttp://a&nbsp;b.example http://c.example&lt;\r\n",
	       "c.example");
	expect("link at the very end", HDR "\r\nhttp://end.example", "end.example");

	TEST_CASE("domain cap");
	{
		char msg[4096];
		size_t w = 0;

		w += (size_t)snprintf(msg + w, sizeof(msg) - w, "%s\r\n", HDR);
		for (int i = 0; i < 30; i++)
			w += (size_t)snprintf(msg + w, sizeof(msg) - w, "http://d%d.example/\r\n", i);
		scan(msg, 1 << 20, 20, 5, got, sizeof(got), &u);
		CHECK_INT(uri_scan_count(u), 20);
		CHECK_INT(uri_scan_dropped(u), 10);
		CHECK_STR(uri_scan_get(u, 19)->name, "d19.example");
		CHECK(uri_scan_get(u, 20) == NULL);
		uri_scan_free(&u);
	}

	TEST_CASE("octet bound");
	{
		const char *msg = HDR "\r\nhttp://early.example/\r\nhttp://late.example/\r\n";
		size_t cut = (size_t)(strstr(msg, "late") - msg) + 2;

		CHECK_STR(scan(msg, cut, 20, 3, got, sizeof(got), &u), "early.example");
		CHECK(uri_scan_bounded(u));
		CHECK_INT(uri_scan_octets(u), cut);
		uri_scan_free(&u);
		CHECK_STR(scan(msg, strlen(msg), 20, 3, got, sizeof(got), &u),
			  "early.example,late.example");
		CHECK(!uri_scan_bounded(u));
		uri_scan_free(&u);
	}

	TEST_CASE("long lines");
	{
		size_t n = 200000;
		char *msg = malloc(n + 100);

		CHECK(msg != NULL);
		if (msg != NULL) {
			memset(msg, 'x', n);
			memcpy(msg, HDR "\r\n", strlen(HDR "\r\n"));
			memcpy(msg + 5000, " http://long.example/ ", 22);
			strcpy(msg + n, "\r\n--x\r\nhttp://after.example\r\n");
			CHECK_STR(scan(msg, 1 << 20, 20, 4096, got, sizeof(got), NULL),
				  "long.example,after.example");
			free(msg);
		}
	}
	return TEST_DONE();
}
