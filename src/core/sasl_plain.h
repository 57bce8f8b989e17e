/*
 * sasl_plain.h - the SASL PLAIN message (RFC 4616), shared by SMTP AUTH
 * and POP3 AUTH: one parser for both protocols.
 *
 * Pure: no I/O, no allocation; results are slices into the caller's
 * decoded message. Fuzzed by fuzz/fuzz_sasl.c and fuzz/fuzz_pop3_parse.c.
 *
 * message = [authzid] NUL authcid NUL passwd; authcid and passwd 1..255
 * octets, authzid 0..255, no further NUL (RFC 4616 section 2).
 */
#ifndef POSTERN_SASL_PLAIN_H
#define POSTERN_SASL_PLAIN_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "compat.h"

/* RFC 4616 section 2: each of authzid, authcid and passwd <= 255 octets. */
#define SASL_FIELD_MAX 255u

struct sasl_plain {
	struct slice authzid;	/* may be empty */
	struct slice authcid;
	struct slice passwd;
};

/* Splits a decoded PLAIN message. 0, or -1 (out zeroed) when it is not
 * one: a NUL missing or extra, an empty authcid or passwd, a field over
 * SASL_FIELD_MAX. */
int sasl_plain_parse(const uint8_t *msg, size_t len, struct sasl_plain *out) WARN_UNUSED;

#endif
