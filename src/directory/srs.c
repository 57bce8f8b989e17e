/*
 * srs.c - the Sender Rewriting Scheme (see srs.h): signing a forwarded
 * sender into an SRS0/SRS1 address, checking and reversing one, and the
 * secret file (reading it at configuration load, creating it at start).
 * The address logic follows libsrs2's srs_compile_guarded() and
 * srs_parse_guarded() (the "guarded" scheme postsrsd uses).
 */
#include "srs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "base64.h"
#include "buf.h"

#define SRS_HASH_LEN 4
#define SRS_SECRET_RANDOM 32
static const char srs_time_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

const char *
srs_status_name(enum srs_status st)
{
	switch (st) {
	case SRS_VALID:
		return "valid";
	case SRS_NOT_SRS:
		return "not-srs";
	case SRS_MALFORMED:
		return "malformed";
	case SRS_BAD_HASH:
		return "bad-hash";
	case SRS_EXPIRED:
		return "expired";
	}
	return "?";
}

/* ---- the secret file ---------------------------------------------------- */

int
srs_secrets_parse(struct srs *srs, const char *text, size_t len, char *err, size_t errlen)
{
	size_t pos = 0, n = 0;
	char *got[SRS_SECRETS_MAX];

	if (memchr(text, '\0', len) != NULL) {
		snprintf(err, errlen, "it holds a NUL octet");
		return -1;
	}
	while (pos < len) {
		const char *s = text + pos, *nl = memchr(s, '\n', len - pos);
		size_t l = nl != NULL ? (size_t)(nl - s) : len - pos;

		pos += l + (nl != NULL ? 1 : 0);
		while (l > 0 && (s[l - 1] == '\r' || s[l - 1] == ' ' || s[l - 1] == '\t'))
			l--;
		while (l > 0 && (*s == ' ' || *s == '\t')) {
			s++;
			l--;
		}
		if (l == 0 || *s == '#')
			continue;
		if (l > SRS_SECRET_MAX || n == SRS_SECRETS_MAX) {
			snprintf(err, errlen, l > SRS_SECRET_MAX ? "a secret is longer than %d octets"
							       : "more than %d secrets",
				 l > SRS_SECRET_MAX ? SRS_SECRET_MAX : SRS_SECRETS_MAX);
			for (size_t i = 0; i < n; i++) {
				explicit_bzero(got[i], strlen(got[i]));
				free(got[i]);
			}
			return -1;
		}
		got[n] = xcalloc(l + 1, 1);
		memcpy(got[n++], s, l);
	}
	if (n == 0) {
		snprintf(err, errlen, "it holds no secret");
		return -1;
	}
	for (size_t i = 0; i < srs->nsecrets; i++) {
		explicit_bzero(srs->secrets[i], strlen(srs->secrets[i]));
		free(srs->secrets[i]);
	}
	memcpy(srs->secrets, got, n * sizeof(got[0]));
	srs->nsecrets = n;
	return 0;
}

int
srs_secrets_load(struct srs *srs, const char *path, char *err, size_t errlen)
{
	char buf[SRS_SECRET_FILE_MAX + 1];
	struct stat st;
	size_t len = 0;
	ssize_t got;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT)
			return 1;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s is not a file", path);
		close(fd);
		return -1;
	}
	if ((st.st_mode & S_IRWXO) != 0) {
		snprintf(err, errlen, "%s is open to other users (mode %04o); chmod o-rwx", path,
			 (unsigned)(st.st_mode & 07777));
		close(fd);
		return -1;
	}
	while (len < sizeof(buf) && (got = read(fd, buf + len, sizeof(buf) - len)) != 0) {
		if (got < 0) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
			close(fd);
			explicit_bzero(buf, sizeof(buf));
			return -1;
		}
		len += (size_t)got;
	}
	close(fd);
	if (len > SRS_SECRET_FILE_MAX) {
		snprintf(err, errlen, "%s is longer than %d octets", path, SRS_SECRET_FILE_MAX);
		rc = -1;
	} else {
		char why[128];

		rc = srs_secrets_parse(srs, buf, len, why, sizeof(why));
		if (rc < 0)
			snprintf(err, errlen, "%s: %s", path, why);
	}
	explicit_bzero(buf, sizeof(buf));
	return rc;
}

int
srs_secret_create(const char *path)
{
	unsigned char raw[SRS_SECRET_RANDOM];
	char line[4 * ((SRS_SECRET_RANDOM + 2) / 3) + 2];
	size_t n;
	int fd, e;

	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		errno = EIO;
		return -1;
	}
	n = base64_encode(raw, sizeof(raw), line, sizeof(line) - 1);
	explicit_bzero(raw, sizeof(raw));
	if (n == 0) {
		errno = EOVERFLOW;
		return -1;
	}
	line[n++] = '\n';
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0) {
		explicit_bzero(line, sizeof(line));
		return errno == EEXIST ? 1 : -1;
	}
	/* the umask cannot widen 0600; fchmod makes sure nothing narrowed
	 * it into something unreadable to us */
	if (fchmod(fd, 0600) < 0 || write(fd, line, n) != (ssize_t)n || fsync(fd) < 0) {
		e = errno != 0 ? errno : EIO;
		explicit_bzero(line, sizeof(line));
		close(fd);
		if (unlink(path) < 0) {
			/* the half-written file stays; the error below says why */
		}
		errno = e;
		return -1;
	}
	explicit_bzero(line, sizeof(line));
	if (close(fd) < 0)
		return -1;
	return 0;
}

void
srs_fini(struct srs *srs)
{
	for (size_t i = 0; i < srs->nsecrets; i++) {
		explicit_bzero(srs->secrets[i], strlen(srs->secrets[i]));
		free(srs->secrets[i]);
	}
	free(srs->domain);
	memset(srs, 0, sizeof(*srs));
}

/* ---- hashes and timestamps ---------------------------------------------- */

void
srs_timestamp(int64_t now, char out[3])
{
	uint64_t day = (uint64_t)(now > 0 ? now : 0) / SRS_DAY;

	out[1] = srs_time_chars[day & 31u];
	out[0] = srs_time_chars[(day >> 5) & 31u];
	out[2] = '\0';
}

int
srs_hash(const struct srs *srs, size_t idx, const char *const *fields, size_t nfields,
	 char out[5])
{
	char data[SRS_ADDR_MAX];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3)];
	const char *secret;
	size_t len = 0;

	if (idx >= srs->nsecrets)
		return -1;
	for (size_t i = 0; i < nfields; i++) {
		size_t l = strlen(fields[i]);

		if (l > sizeof(data) - len)
			return -1;
		for (size_t j = 0; j < l; j++) {
			unsigned char c = (unsigned char)fields[i][j];

			data[len++] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
		}
	}
	secret = srs->secrets[idx];
	if (HMAC(EVP_sha1(), secret, (int)strlen(secret), (const unsigned char *)data, len, md,
		 &mdlen) == NULL ||
	    base64_encode(md, mdlen, b64, sizeof(b64)) < SRS_HASH_LEN)
		return -1;
	memcpy(out, b64, SRS_HASH_LEN);
	out[SRS_HASH_LEN] = '\0';
	return 0;
}

/* 1 if hash (len octets, at least SRS_HASH_LEN; only the first four count,
 * as libsrs2) is what some secret makes of the fields. */
static int
srs_hash_ok(const struct srs *srs, const char *hash, size_t len, const char *const *fields,
	    size_t nfields)
{
	char want[SRS_HASH_LEN + 1];

	if (len < SRS_HASH_LEN)
		return 0;
	for (size_t i = 0; i < srs->nsecrets; i++)
		if (srs_hash(srs, i, fields, nfields, want) == 0 &&
		    strncasecmp(hash, want, SRS_HASH_LEN) == 0)
			return 1;
	return 0;
}

/* 1 if the timestamp (any case) is no older than max_age days at now, 0
 * if it is older (a day in the future reads as 1024 days old, as in
 * libsrs2), -1 if it is no timestamp. */
static int
srs_timestamp_ok(const struct srs *srs, const char *stamp, int64_t now)
{
	uint64_t then = 0, today = (uint64_t)(now > 0 ? now : 0) / SRS_DAY % SRS_TIME_SLOTS;

	if (strlen(stamp) != 2)
		return -1;
	for (size_t i = 0; i < 2; i++) {
		unsigned char c = (unsigned char)stamp[i];
		const char *p;

		if (c >= 'a' && c <= 'z')
			c = (unsigned char)(c - ('a' - 'A'));
		p = c != '\0' ? strchr(srs_time_chars, c) : NULL;
		if (p == NULL)
			return -1;
		then = then << 5 | (uint64_t)(p - srs_time_chars);
	}
	while (today < then)
		today += SRS_TIME_SLOTS;
	return today <= then + srs->max_age_days;
}

/* ---- addresses -------------------------------------------------------- */

static int
srs_tag(const char *local, size_t len, char digit)
{
	return len >= 5 && (local[0] == 'S' || local[0] == 's') &&
	       (local[1] == 'R' || local[1] == 'r') && (local[2] == 'S' || local[2] == 's') &&
	       local[3] == digit && (local[4] == '=' || local[4] == '-' || local[4] == '+');
}

int
srs_is_srs(const char *local, size_t len)
{
	return srs_tag(local, len, '0') || srs_tag(local, len, '1');
}

int
srs_is_domain(const struct srs *srs, const char *domain, size_t len)
{
	if (len > 0 && domain[len - 1] == '.')
		len--;
	return srs->domain != NULL && strlen(srs->domain) == len &&
	       strncasecmp(srs->domain, domain, len) == 0;
}

int
srs_forward(const struct srs *srs, const char *sender, int64_t now, char *out, size_t outsize)
{
	const char *at = strrchr(sender, '@');
	char local[SRS_ADDR_MAX], hash[SRS_HASH_LEN + 1], stamp[3];
	const char *domain;
	size_t llen;
	int n;

	if (at == NULL || at == sender || at[1] == '\0')
		return 0;
	domain = at + 1;
	/* a '=' in the domain (only an address literal could hold one)
	 * would read back at another place: such senders stay as they are */
	if (srs_is_domain(srs, domain, strlen(domain)) || strchr(domain, '=') != NULL)
		return 0;
	llen = (size_t)(at - sender);
	if (llen >= sizeof(local))
		return -1;
	memcpy(local, sender, llen);
	local[llen] = '\0';
	if (srs_tag(local, llen, '1')) {
		/* SRS1=HHHH=first==HHHH=TT=d=l: keep the first forwarder and its
		 * opaque part, sign them again with our secret */
		char *host = strchr(local + 5, '='), *user;

		if (host == NULL || host[1] == '\0')
			return -1;
		*host++ = '\0';
		user = strchr(host, '=');
		if (user == NULL || user[1] == '\0' || user == host)
			return -1;
		*user++ = '\0';
		const char *f[] = { host, user };

		if (srs_hash(srs, 0, f, 2, hash) < 0)
			return -1;
		n = snprintf(out, outsize, "SRS1=%s=%s=%s@%s", hash, host, user, srs->domain);
	} else if (srs_tag(local, llen, '0')) {
		/* SRS0=...@first: the first forwarder is the sender's domain,
		 * the opaque part everything after "SRS0" */
		const char *f[] = { domain, local + 4 };

		if (srs_hash(srs, 0, f, 2, hash) < 0)
			return -1;
		n = snprintf(out, outsize, "SRS1=%s=%s=%s@%s", hash, domain, local + 4, srs->domain);
	} else {
		srs_timestamp(now, stamp);
		const char *f[] = { stamp, domain, local };

		if (srs_hash(srs, 0, f, 3, hash) < 0)
			return -1;
		n = snprintf(out, outsize, "SRS0=%s=%s=%s=%s@%s", hash, stamp, domain, local,
			     srs->domain);
	}
	return n > 0 && (size_t)n < outsize ? 1 : -1;
}

/* Cuts s at its next '=' and returns what follows, or NULL if there is
 * none or either side would be empty. */
static char *
srs_field(char *s)
{
	char *eq = strchr(s, '=');

	if (eq == NULL || eq == s || eq[1] == '\0')
		return NULL;
	*eq = '\0';
	return eq + 1;
}

enum srs_status
srs_reverse(const struct srs *srs, const char *local, size_t len, int64_t now, char *out,
	    size_t outsize)
{
	char buf[SRS_ADDR_MAX];
	int n;

	if (!srs_is_srs(local, len))
		return SRS_NOT_SRS;
	if (len >= sizeof(buf) || memchr(local, '\0', len) != NULL)
		return SRS_MALFORMED;
	memcpy(buf, local, len);
	buf[len] = '\0';
	if (srs_tag(buf, len, '1')) {
		/* SRS1=HHHH=host==opaque -> SRS0=opaque@host */
		char *hash = buf + 5, *host = srs_field(hash), *user;

		if (host == NULL)
			return SRS_MALFORMED;
		/* user keeps its leading '=': the first field after host is empty */
		user = strchr(host, '=');
		if (user == NULL || user == host || user[1] == '\0')
			return SRS_MALFORMED;
		*user++ = '\0';
		const char *f[] = { host, user };

		if (!srs_hash_ok(srs, hash, strlen(hash), f, 2))
			return SRS_BAD_HASH;
		n = snprintf(out, outsize, "SRS0%s@%s", user, host);
	} else {
		/* SRS0=HHHH=TT=host=user -> user@host */
		char *hash = buf + 5, *stamp = srs_field(hash), *host, *user;

		host = stamp != NULL ? srs_field(stamp) : NULL;
		user = host != NULL ? srs_field(host) : NULL;
		if (user == NULL)
			return SRS_MALFORMED;
		switch (srs_timestamp_ok(srs, stamp, now)) {
		case 1:
			break;
		case 0:
			return SRS_EXPIRED;
		default:
			return SRS_MALFORMED;
		}
		const char *f[] = { stamp, host, user };

		if (!srs_hash_ok(srs, hash, strlen(hash), f, 3))
			return SRS_BAD_HASH;
		n = snprintf(out, outsize, "%s@%s", user, host);
	}
	return n > 0 && (size_t)n < outsize ? SRS_VALID : SRS_MALFORMED;
}
