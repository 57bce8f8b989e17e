/*
 * net_tls_ticket.h - TLS session-ticket keys: held in memory, rotated on a
 * schedule, shared by every loop thread and every TLS context.
 *
 * One key encrypts new tickets; it is replaced when it is older than the
 * rotation period (tls.ticket_key_rotation). The keys before it stay
 * accepted for decryption until they are TLS_TICKET_KEYS periods old, so a
 * ticket lives at least (TLS_TICKET_KEYS - 1) periods. The keys live
 * outside the contexts: a SIGHUP that rebuilds the context keeps them, and
 * clients resume across reloads. A restart forgets them (a full handshake
 * then, never a failure).
 */
#ifndef POSTERN_NET_TLS_TICKET_H
#define POSTERN_NET_TLS_TICKET_H

#include <stddef.h>
#include <time.h>

#include <openssl/ssl.h>

#define TLS_TICKET_KEYS 3
#define TLS_TICKET_NAME_LEN 16

/* Sets the rotation period (seconds, > 0); takes effect at the next
 * rotation check. */
void tls_ticket_set_rotation(unsigned seconds);
unsigned tls_ticket_rotation(void);

/* Installs the ticket callback on ctx and sets the session lifetime. */
int tls_ticket_setup(SSL_CTX *ctx);

/* The key that encrypts at time now (rotating first when it is due):
 * copies its name. 0, or -1 when no random bytes could be had. */
int tls_ticket_current(time_t now, unsigned char name[TLS_TICKET_NAME_LEN]);
/* Looks a ticket's key name up at time now: 0 the current key, 1 an
 * older key still accepted (the ticket should be renewed), -1 unknown or
 * expired (full handshake). */
int tls_ticket_lookup(const unsigned char name[TLS_TICKET_NAME_LEN], time_t now);
/* Forgets every key (tests). */
void tls_ticket_reset(void);

#endif
