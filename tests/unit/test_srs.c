/*
 * test_srs.c - unit tests for srs.c: known vectors computed apart with
 * Python's hmac module (HMAC-SHA1, base64, base32 day stamps as libsrs2
 * makes them) and the vectors of postsrsd's own test suite
 * (run_postsrsd_tests.bats: secret "tops3cr3t", 2020-01-01 00:01 UTC,
 * domain example.com), SRS0 and SRS1 forward and reverse, rotation,
 * expiry and its wrap-around, malformed and forged addresses, the secret
 * file.
 */
#include "srs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "testing.h"

/* 2025-12-03 00:00 UTC: day 20425, 969 modulo 1024: stamp "6J" */
#define NOW ((int64_t)1764720000)
#define DAY ((int64_t)86400)

static void
keys(struct srs *srs, const char *text)
{
	char err[128];

	memset(srs, 0, sizeof(*srs));
	CHECK_INT(srs_secrets_parse(srs, text, strlen(text), err, sizeof(err)), 0);
	srs->domain = xstrdup("fwd.example.net");
	srs->max_age_days = 21;
}

static void
test_vectors(void)
{
	struct srs srs;
	char out[SRS_ADDR_MAX], st[3];

	keys(&srs, "s3cr3t-one\n");
	TEST_CASE("timestamp");
	srs_timestamp(NOW, st);
	CHECK_STR(st, "6J");
	srs_timestamp(NOW - 22 * DAY, st);
	CHECK_STR(st, "5T");

	TEST_CASE("SRS0 forward keeps case, hashes lower-case");
	CHECK_INT(srs_forward(&srs, "Joe.User@Origin.Example.ORG", NOW, out, sizeof(out)), 1);
	CHECK_STR(out, "SRS0=Nlqr=6J=Origin.Example.ORG=Joe.User@fwd.example.net");

	TEST_CASE("SRS0 reverse");
	CHECK_INT(srs_reverse(&srs, "SRS0=Nlqr=6J=Origin.Example.ORG=Joe.User", 40, NOW, out,
			      sizeof(out)),
		  SRS_VALID);
	CHECK_STR(out, "Joe.User@Origin.Example.ORG");
	TEST_CASE("reverse ignores the case of the hash and tag");
	CHECK_INT(srs_reverse(&srs, "srs0=NLQR=6j=origin.example.org=joe.user", 40, NOW, out,
			      sizeof(out)),
		  SRS_VALID);
	CHECK_STR(out, "joe.user@origin.example.org");

	TEST_CASE("SRS1 from another forwarder's SRS0");
	CHECK_INT(srs_forward(&srs, "SRS0=ABCD=6J=orig.example=joe@first.example", NOW, out,
			      sizeof(out)),
		  1);
	CHECK_STR(out, "SRS1=tHHI=first.example==ABCD=6J=orig.example=joe@fwd.example.net");
	TEST_CASE("SRS1 from an SRS1 keeps the first forwarder");
	CHECK_INT(srs_forward(&srs, "SRS1=zzzz=first.example==ABCD=6J=orig.example=joe@second.example",
			      NOW, out, sizeof(out)),
		  1);
	CHECK_STR(out, "SRS1=tHHI=first.example==ABCD=6J=orig.example=joe@fwd.example.net");
	TEST_CASE("SRS1 reverse gives the first forwarder's SRS0");
	{
		const char *l = "SRS1=tHHI=first.example==ABCD=6J=orig.example=joe";

		CHECK_INT(srs_reverse(&srs, l, strlen(l), NOW, out, sizeof(out)), SRS_VALID);
		CHECK_STR(out, "SRS0=ABCD=6J=orig.example=joe@first.example");
	}
	TEST_CASE("our own domain is not rewritten");
	strcpy(out, "untouched");
	CHECK_INT(srs_forward(&srs, "SRS0=x=y=z=w@FWD.example.net", NOW, out, sizeof(out)), 0);
	CHECK_INT(srs_forward(&srs, "noat", NOW, out, sizeof(out)), 0);
	CHECK_INT(srs_forward(&srs, "joe@[tag:a=b]", NOW, out, sizeof(out)), 0);
	CHECK_STR(out, "untouched");
	TEST_CASE("too small a buffer");
	CHECK_INT(srs_forward(&srs, "joe@orig.example", NOW, out, 20), -1);
	srs_fini(&srs);
}

/* postsrsd's run_postsrsd_tests.bats, to the letter. */
static void
test_postsrsd(void)
{
	static const struct {
		const char *local, *want;
		enum srs_status st;
	} rev[] = {
		{ "SRS0=XjO9=2V=otherdomain.com=test", "test@otherdomain.com", SRS_VALID },
		{ "SRS1=JIBX=thirddomain.com==opaque+string", "SRS0=opaque+string@thirddomain.com",
		  SRS_VALID },
		{ "SRS0=te87=T7=otherdomain.com=test", NULL, SRS_EXPIRED },	/* 6 months old */
		{ "SRS0=VcIb=7N=otherdomain.com=test", NULL, SRS_EXPIRED },	/* 6 months ahead */
		{ "SRS0=FAKE=2V=otherdomain.com=test", NULL, SRS_BAD_HASH },
		{ "srs0=xjo9=2v=otherdomain.com=test", "test@otherdomain.com", SRS_VALID },
		{ "SRS0=XJO9=2V=OTHERDOMAIN.COM=TEST", "TEST@OTHERDOMAIN.COM", SRS_VALID },
		{ "SRS0=", NULL, SRS_MALFORMED },
		{ "SRS0=XjO9", NULL, SRS_MALFORMED },
		{ "SRS0=XjO9=2V", NULL, SRS_MALFORMED },
		{ "SRS0=XjO9=2V=otherdomain.com", NULL, SRS_MALFORMED },
	};
	const int64_t now = 1577836860;
	struct srs srs;
	char out[SRS_ADDR_MAX];

	keys(&srs, "tops3cr3t\n");
	free(srs.domain);
	srs.domain = xstrdup("example.com");
	TEST_CASE("postsrsd: forward");
	CHECK_INT(srs_forward(&srs, "test@otherdomain.com", now, out, sizeof(out)), 1);
	CHECK_STR(out, "SRS0=vmyz=2W=otherdomain.com=test@example.com");
	CHECK_INT(srs_forward(&srs, "test@example.com", now, out, sizeof(out)), 0);
	CHECK_INT(srs_forward(&srs, "SRS1=X=thirddomain.com==opaque+string@otherdomain.com", now,
			      out, sizeof(out)),
		  1);
	CHECK_STR(out, "SRS1=JIBX=thirddomain.com==opaque+string@example.com");
	for (size_t i = 0; i < sizeof(rev) / sizeof(rev[0]); i++) {
		TEST_CASE(rev[i].local);
		CHECK_INT(srs_reverse(&srs, rev[i].local, strlen(rev[i].local), now, out, sizeof(out)),
			  rev[i].st);
		if (rev[i].want != NULL)
			CHECK_STR(out, rev[i].want);
	}
	srs_fini(&srs);
}

static void
test_checks(void)
{
	struct srs srs;
	char out[SRS_ADDR_MAX];
	const char *l;

	keys(&srs, "# rotated on day 969\ns3cr3t-one\r\n\n  old-secret  \n");
	CHECK_INT(srs.nsecrets, 2);
	TEST_CASE("rotation: the first secret signs");
	CHECK_INT(srs_forward(&srs, "joe@orig.example", NOW, out, sizeof(out)), 1);
	CHECK_STR(out, "SRS0=Voy8=6J=orig.example=joe@fwd.example.net");
	{
		static const struct {
			const char *name, *local;
			int64_t now;
			enum srs_status want;
		} cases[] = {
			{ "rotation: the second secret still verifies", "SRS0=pCSP=6J=orig.example=joe",
			  NOW, SRS_VALID },
			{ "forged hash", "SRS0=pCSQ=6J=orig.example=joe", NOW, SRS_BAD_HASH },
			{ "short hash", "SRS0=pCS=6J=orig.example=joe", NOW, SRS_BAD_HASH },
			{ "only the first four characters of the hash count",
			  "SRS0=pCSPxx=6J=orig.example=joe", NOW, SRS_VALID },
			{ "21 days old passes", "SRS0=IMRA=5U=orig.example=joe", NOW, SRS_VALID },
			{ "22 days old does not", "SRS0=6Rog=5T=orig.example=joe", NOW, SRS_EXPIRED },
			{ "a stamp from tomorrow reads as 1023 days old",
			  "SRS0=AuqL=6K=orig.example=joe", NOW, SRS_EXPIRED },
			{ "day numbers wrap at 1024", "SRS0=viHh=76=orig.example=joe", 20482 * DAY,
			  SRS_VALID },
			{ "bad stamp character", "SRS0=Voy8=6!=orig.example=joe", NOW, SRS_MALFORMED },
			{ "bad stamp length", "SRS0=Voy8=6JJ=orig.example=joe", NOW, SRS_MALFORMED },
		};

		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			TEST_CASE(cases[i].name);
			l = cases[i].local;
			CHECK_INT(srs_reverse(&srs, l, strlen(l), cases[i].now, out, sizeof(out)),
				  cases[i].want);
			if (cases[i].want == SRS_VALID)
				CHECK_STR(out, "joe@orig.example");
		}
	}
	TEST_CASE("malformed");
	{
		static const char *const bad[] = {
			"SRS0=", "SRS0=Voy8", "SRS0=Voy8=6J", "SRS0=Voy8=6J=orig.example",
			"SRS0=Voy8=6J=orig.example=", "SRS0==6J=orig.example=joe",
			"SRS1=tHHI", "SRS1=tHHI=first.example", "SRS1=tHHI=first.example=",
			"SRS1==first.example==x",
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			TEST_CASE(bad[i]);
			CHECK_INT(srs_reverse(&srs, bad[i], strlen(bad[i]), NOW, out, sizeof(out)),
				  SRS_MALFORMED);
		}
	}
	TEST_CASE("not SRS");
	CHECK_INT(srs_reverse(&srs, "joe", 3, NOW, out, sizeof(out)), SRS_NOT_SRS);
	CHECK_INT(srs_reverse(&srs, "SRS2=a=b=c=d", 12, NOW, out, sizeof(out)), SRS_NOT_SRS);
	CHECK_INT(srs_reverse(&srs, "SRS0", 4, NOW, out, sizeof(out)), SRS_NOT_SRS);
	CHECK(srs_is_srs("srs1+x", 6));
	CHECK(srs_is_srs("SRS0-x", 6));
	CHECK(!srs_is_srs("SRS0x", 5));
	TEST_CASE("domain");
	CHECK(srs_is_domain(&srs, "FWD.Example.NET.", 16));
	CHECK(!srs_is_domain(&srs, "example.net", 11));
	TEST_CASE("names");
	CHECK_STR(srs_status_name(SRS_BAD_HASH), "bad-hash");
	srs_fini(&srs);
}

static void
test_files(void)
{
	char dir[] = "/tmp/test_srs.XXXXXX", path[64], err[256], big[SRS_SECRET_MAX + 2];
	struct srs srs;
	struct stat st;
	FILE *f;

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		abort();
	}
	snprintf(path, sizeof(path), "%s/srs.secret", dir);
	memset(&srs, 0, sizeof(srs));
	TEST_CASE("missing file");
	CHECK_INT(srs_secrets_load(&srs, path, err, sizeof(err)), 1);
	TEST_CASE("create: 0600, one base64 line of 32 octets");
	CHECK_INT(srs_secret_create(path), 0);
	CHECK_INT(stat(path, &st), 0);
	CHECK_INT(st.st_mode & 07777, 0600);
	CHECK_INT(st.st_size, 45);
	CHECK_INT(srs_secret_create(path), 1);
	CHECK_INT(srs_secrets_load(&srs, path, err, sizeof(err)), 0);
	CHECK_INT(srs.nsecrets, 1);
	CHECK_INT(strlen(srs.secrets[0]), 44);
	TEST_CASE("open to others");
	CHECK_INT(chmod(path, 0604), 0);
	CHECK_INT(srs_secrets_load(&srs, path, err, sizeof(err)), -1);
	CHECK(strstr(err, "open to other users") != NULL);
	TEST_CASE("empty");
	f = fopen(path, "w");
	CHECK(f != NULL && fputs("# nothing\n\n", f) >= 0 && fclose(f) == 0);
	CHECK_INT(chmod(path, 0600), 0);
	CHECK_INT(srs_secrets_load(&srs, path, err, sizeof(err)), -1);
	CHECK(strstr(err, "no secret") != NULL);
	CHECK_INT(srs.nsecrets, 1);	/* the old keys stay */
	TEST_CASE("a secret too long, too many");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CHECK_INT(srs_secrets_parse(&srs, big, strlen(big), err, sizeof(err)), -1);
	CHECK(strstr(err, "longer than") != NULL);
	CHECK_INT(srs_secrets_parse(&srs, "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl\nm\nn\no\np\nq\n", 34,
				    err, sizeof(err)),
		  -1);
	CHECK(strstr(err, "more than 16") != NULL);
	CHECK_INT(srs_secrets_parse(&srs, "a\0b", 3, err, sizeof(err)), -1);
	srs_fini(&srs);
	unlink(path);
	TEST_CASE("no folder");
	snprintf(path, sizeof(path), "%s/none/srs.secret", dir);
	CHECK_INT(srs_secret_create(path), -1);
	rmdir(dir);
}

int
main(void)
{
	test_vectors();
	test_postsrsd();
	test_checks();
	test_files();
	return TEST_DONE();
}
