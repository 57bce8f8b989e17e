/*
 * test_tls_ticket.c - session-ticket keys (net/net_tls_ticket.c): one key
 * encrypts until it is a rotation period old, then a new one takes over;
 * older keys decrypt (asking for renewal) until TLS_TICKET_KEYS periods
 * old, then they are forgotten.
 */
#include <string.h>

#include "net_tls_ticket.h"
#include "testing.h"

int
main(void)
{
	unsigned char a[TLS_TICKET_NAME_LEN], b[TLS_TICKET_NAME_LEN], c[TLS_TICKET_NAME_LEN];
	unsigned char d[TLS_TICKET_NAME_LEN], unknown[TLS_TICKET_NAME_LEN] = { 0 };
	const time_t t0 = 1000000;
	const unsigned period = 3600;

	tls_ticket_reset();
	tls_ticket_set_rotation(period);
	CHECK_INT(tls_ticket_rotation(), period);

	TEST_CASE("the first key is made on first use and kept within its period");
	CHECK_INT(tls_ticket_current(t0, a), 0);
	CHECK_INT(tls_ticket_current(t0 + period - 1, b), 0);
	CHECK(memcmp(a, b, sizeof(a)) == 0);
	CHECK_INT(tls_ticket_lookup(a, t0 + 10), 0);		/* current: resume */
	CHECK_INT(tls_ticket_lookup(unknown, t0 + 10), -1);	/* full handshake */

	TEST_CASE("a period later a new key encrypts; the old one still decrypts");
	CHECK_INT(tls_ticket_current(t0 + period, b), 0);
	CHECK(memcmp(a, b, sizeof(a)) != 0);
	CHECK_INT(tls_ticket_lookup(b, t0 + period), 0);
	CHECK_INT(tls_ticket_lookup(a, t0 + period), 1);	/* resume and renew */

	TEST_CASE("a key in front that is due is renewed even before rotation");
	CHECK_INT(tls_ticket_lookup(b, t0 + 2 * period + 1), 1);

	TEST_CASE("keys are forgotten after TLS_TICKET_KEYS periods");
	CHECK_INT(tls_ticket_current(t0 + 2 * period, c), 0);
	CHECK(memcmp(c, b, sizeof(c)) != 0);
	CHECK_INT(tls_ticket_lookup(a, t0 + 2 * period), 1);
	CHECK_INT(tls_ticket_lookup(a, t0 + (time_t)TLS_TICKET_KEYS * period), -1);
	CHECK_INT(tls_ticket_lookup(b, t0 + (time_t)TLS_TICKET_KEYS * period), 1);
	CHECK_INT(tls_ticket_current(t0 + 3 * period, d), 0);
	CHECK_INT(tls_ticket_lookup(a, t0 + 3 * period), -1);	/* pushed out */
	CHECK_INT(tls_ticket_lookup(b, t0 + 3 * period), 1);
	CHECK_INT(tls_ticket_lookup(c, t0 + 3 * period), 1);
	CHECK_INT(tls_ticket_lookup(d, t0 + 3 * period), 0);

	TEST_CASE("a clock stepped back rotates instead of trusting the future");
	CHECK_INT(tls_ticket_lookup(d, t0), -1);
	CHECK_INT(tls_ticket_current(t0, a), 0);
	CHECK(memcmp(a, d, sizeof(a)) != 0);

	TEST_CASE("a shorter period applies at the next check");
	tls_ticket_set_rotation(60);
	CHECK_INT(tls_ticket_current(t0 + 60, b), 0);
	CHECK(memcmp(a, b, sizeof(a)) != 0);
	tls_ticket_set_rotation(0);				/* ignored */
	CHECK_INT(tls_ticket_rotation(), 60);

	tls_ticket_reset();
	return TEST_DONE();
}
