/*
 * regdomain.h - the registered domain of a host name (the part a
 * registrant bought: one label under a public suffix), from the public
 * suffix list, to group MX hosts of one provider into one destination.
 *
 * No mail knowledge. The list is Debian's publicsuffix package
 * (/usr/share/publicsuffix/public_suffix_list.dafsa, through libpsl's
 * psl_latest), or libpsl's built-in copy when that file is missing.
 */
#ifndef POSTERN_REGDOMAIN_H
#define POSTERN_REGDOMAIN_H

#include <stddef.h>

/* Loads the list (reads a file: call it at start, off the event loops;
 * regdomain_of calls it once itself otherwise). 0, or -1 if neither the
 * file nor the built-in list could be had (regdomain_of then answers
 * with the last two labels). Thread-safe, runs once. */
int regdomain_init(void);

/* Writes to out the registered domain of host: lower case, one trailing
 * dot dropped: "mx1.mail.protection.outlook.com" -> "outlook.com",
 * "mx.example.co.uk" -> "example.co.uk". A host with nothing registrable
 * (an IP address, "[192.0.2.1]", a single label, a public suffix such as
 * "co.uk") is its own answer. Returns the length written, or -1 if host
 * is empty, longer than 253 octets, holds bytes outside letters, digits,
 * '-', '_', '.', ':', '[', ']', or the answer does not fit in outlen
 * (with its NUL). Does not allocate after the list is loaded; any
 * thread. */
int regdomain_of(const char *host, char *out, size_t outlen);

#endif
