/*
 * base64.h - strict base64 (RFC 4648 4): the alphabet only, padding only
 * at the end of the last group, no stray bits (canonical encodings only).
 */
#ifndef POSTERN_BASE64_H
#define POSTERN_BASE64_H

#include <stddef.h>
#include <stdint.h>

#include "compat.h"

/* Decodes len octets of base64 into out (cap octets); an empty input
 * decodes to nothing. 0 with *out_len set, -1 not strict base64, -2 out
 * too small. */
int base64_decode(const uint8_t *in, size_t len, uint8_t *out, size_t cap,
		  size_t *out_len) WARN_UNUSED;

/* 0..63 for a character of the alphabet, -1 otherwise (for decoders of
 * their own, e.g. a streaming one). */
int base64_value(uint8_t c);

/* Encodes n octets with padding into out (no NUL added). Returns the
 * encoded length, or 0 and writes nothing when cap is too small (the
 * encoding of n octets takes 4 * ((n + 2) / 3)). */
size_t base64_encode(const uint8_t *in, size_t n, char *out, size_t cap);

#endif
