/*
 * domain.h - syntax of DNS domain names (host names).
 *
 * No mail knowledge: configuration (server.hostname, local.domains) and the
 * directory (aliases, forwards) both check names with it.
 */
#ifndef POSTERN_DOMAIN_H
#define POSTERN_DOMAIN_H

#include <stddef.h>

/* 1 if s (len octets) is a domain name in ASCII (A-labels for IDN):
 * labels of letters, digits and '-' (not at either end), 1..63 octets,
 * 253 in all, no trailing dot (RFC 1035 2.3.1, RFC 1123 2.1). */
int domain_name_valid(const char *s, size_t len);

#endif
