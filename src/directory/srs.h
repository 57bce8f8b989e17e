/*
 * srs.h - the Sender Rewriting Scheme, in the format of libsrs2 and
 * postsrsd (so peers and tools that know it read ours):
 *
 *   SRS0=HHHH=TT=domain=local@srs.domain
 *   SRS1=HHHH=first-forwarder==HHHH=TT=domain=local@srs.domain
 *
 * TT is the day number (unix time / 86400) modulo 1024 in two base32
 * characters (RFC 4648 alphabet); HHHH the first four characters of the
 * standard base64 of HMAC-SHA1(secret, the hashed fields concatenated and
 * ASCII lower-cased): TT, domain, local for SRS0; first-forwarder and
 * "=HHHH=TT=domain=local" for SRS1. Hashes compare without regard to
 * case (mailers lower-case local parts). The first secret signs; every
 * secret verifies (rotation).
 *
 * The keys (struct srs) come from srs.secret_file: one secret per line
 * (blank lines and '#' comments skipped), made by srs_secret_create()
 * with 32 random octets in base64 when the file is missing.
 * Signing and checking are pure and fast: fit for an event-loop thread.
 */
#ifndef POSTERN_SRS_H
#define POSTERN_SRS_H

#include <stddef.h>
#include <stdint.h>

#include "compat.h"
#include "diag.h"

#define SRS_SECRETS_MAX 16	/* lines of the secret file */
#define SRS_SECRET_MAX 256	/* octets of one secret */
#define SRS_SECRET_FILE_MAX 8192	/* octets of the secret file */
#define SRS_ADDR_MAX 512	/* an address we write or read back, NUL included */
#define SRS_DAY 86400
#define SRS_TIME_SLOTS 1024	/* days a timestamp can tell apart */

struct srs {
	char *secrets[SRS_SECRETS_MAX];	/* owned, NUL-terminated */
	size_t nsecrets;		/* >= 1 */
	char *domain;			/* owned: srs.domain, lower-cased */
	unsigned max_age_days;		/* >= 1 */
};

enum srs_status {
	SRS_VALID,		/* reversed: the original address is in out */
	SRS_NOT_SRS,		/* the local part does not start SRS0/SRS1 */
	SRS_MALFORMED,		/* fields missing or too long */
	SRS_BAD_HASH,		/* no secret makes this hash */
	SRS_EXPIRED,		/* older than max_age (or from the future) */
};

/* "valid", "not-srs", "malformed", "bad-hash", "expired" (log values). */
const char *srs_status_name(enum srs_status st);

/* Parses the text of a secret file into srs (secrets only; the caller
 * sets domain and max_age_days). 0, or -1 with the reason in err (no
 * secret, too many, one too long, a NUL octet). */
int srs_secrets_parse(struct srs *srs, const char *text, size_t len, char *err,
		      size_t errlen) WARN_UNUSED;
/* Reads path (at most SRS_SECRET_FILE_MAX octets) into srs's secrets.
 * 0; 1 if the file does not exist; -1 with the reason in err. */
int srs_secrets_load(struct srs *srs, const char *path, char *err, size_t errlen) WARN_UNUSED;
/* Creates path (O_EXCL, mode 0600) holding one secret of 32 random octets
 * in base64, flushed to disk. 0; 1 if it already exists; -1 with errno. */
int srs_secret_create(const char *path) WARN_UNUSED;
/* Frees what srs owns and clears it. */
void srs_fini(struct srs *srs);

/* 1 if the local part (len octets) starts with SRS0 or SRS1 (any case)
 * and a separator ('=', '-' or '+'), as libsrs2 recognises them. */
int srs_is_srs(const char *local, size_t len);
/* 1 if domain (len octets, any case, one trailing dot allowed) is
 * srs->domain. */
int srs_is_domain(const struct srs *srs, const char *domain, size_t len);

/* The SRS address for sender ("local@domain") at time now, in out: SRS0,
 * or SRS1 when sender is already an SRS0/SRS1 address of another
 * forwarder. 1 rewritten; 0 not to rewrite (sender's domain is
 * srs->domain or holds a '=', or no '@'), out untouched; -1 out too small
 * or the sender malformed. */
int srs_forward(const struct srs *srs, const char *sender, int64_t now, char *out,
		size_t outsize) WARN_UNUSED;

/* Checks the SRS local part (len octets; the domain was srs->domain) at
 * time now and writes the address it stands for into out: for SRS0 the
 * original sender, for SRS1 the first forwarder's SRS0 address. */
enum srs_status srs_reverse(const struct srs *srs, const char *local, size_t len, int64_t now,
			    char *out, size_t outsize) WARN_UNUSED;

/* The two-character timestamp of day now / SRS_DAY into out[0..2]. */
void srs_timestamp(int64_t now, char out[3]);
/* The four-character hash of the concatenated fields under secret idx
 * into out[0..4]; -1 if the fields are too long. */
int srs_hash(const struct srs *srs, size_t idx, const char *const *fields, size_t nfields,
	     char out[5]) WARN_UNUSED;

#endif
