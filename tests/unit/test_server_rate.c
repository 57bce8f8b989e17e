/*
 * test_server_rate.c - connections per second (server_rate.c): the
 * sliding second per address and in all, only admitted connections
 * counted, and a full table forgetting stale addresses.
 */
#include "server_rate.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "testing.h"

static struct sockaddr_storage
v4(const char *text)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

	memset(&ss, 0, sizeof(ss));
	s4->sin_family = AF_INET;
	CHECK_INT(inet_pton(AF_INET, text, &s4->sin_addr), 1);
	return ss;
}

int
main(void)
{
	struct conn_rates *r = calloc(1, sizeof(*r));
	struct sockaddr_storage a = v4("192.0.2.1"), b = v4("192.0.2.2");
	unsigned rate = 0;
	uint64_t t = 1000000;	/* ms, at the start of a second */

	if (r == NULL)
		return 1;
	conn_rates_init(r);

	TEST_CASE("per address: the limit-th in one second is refused, not counted");
	for (int i = 0; i < 3; i++)
		CHECK_INT(conn_rates_take(r, &a, 3, 0, t + 10, &rate), CONN_RATE_OK);
	CHECK_INT(conn_rates_take(r, &a, 3, 0, t + 20, &rate), CONN_RATE_CLIENT);
	CHECK_INT(rate, 3);
	CHECK_INT(conn_rates_take(r, &a, 3, 0, t + 30, &rate), CONN_RATE_CLIENT);
	CHECK_INT(rate, 3);
	CHECK_INT(conn_rates_take(r, &b, 3, 0, t + 40, &rate), CONN_RATE_OK);

	TEST_CASE("per address: the previous second weighs by what is left of it");
	/* 250 ms into the next second: 3 * 750 / 1000 rounded up = 3 */
	CHECK_INT(conn_rates_take(r, &a, 3, 0, t + 1250, &rate), CONN_RATE_CLIENT);
	CHECK_INT(rate, 3);
	/* 700 ms in: 3 * 300 / 1000 rounded up = 1, so one more passes */
	CHECK_INT(conn_rates_take(r, &a, 3, 0, t + 1700, &rate), CONN_RATE_OK);
	CHECK_INT(conn_rates_take(r, &a, 3, 0, t + 1701, &rate), CONN_RATE_OK);
	CHECK_INT(conn_rates_take(r, &a, 3, 0, t + 1702, &rate), CONN_RATE_CLIENT);
	/* two seconds later nothing is left */
	CHECK_INT(conn_rates_take(r, &a, 3, 0, t + 3000, &rate), CONN_RATE_OK);

	TEST_CASE("in all: every address together; 0 turns both off");
	t += 10000;
	CHECK_INT(conn_rates_take(r, &a, 0, 2, t, &rate), CONN_RATE_OK);
	CHECK_INT(conn_rates_take(r, &b, 0, 2, t, &rate), CONN_RATE_OK);
	CHECK_INT(conn_rates_take(r, &b, 0, 2, t, &rate), CONN_RATE_ALL);
	CHECK_INT(rate, 2);
	CHECK_INT(conn_rates_take(r, &b, 0, 0, t, &rate), CONN_RATE_OK);

	TEST_CASE("a full table forgets an address seen longest ago");
	t += 10000;
	for (unsigned i = 0; i < 3 * CONN_RATE_SLOTS; i++) {
		struct sockaddr_storage c;
		struct sockaddr_in *s4 = (struct sockaddr_in *)&c;

		memset(&c, 0, sizeof(c));
		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(0x0a000000u + i);
		CHECK_INT(conn_rates_take(r, &c, 1, 0, t, &rate), CONN_RATE_OK);
	}
	CHECK_INT(conn_rates_take(r, &a, 1, 0, t, &rate), CONN_RATE_OK);
	CHECK_INT(conn_rates_take(r, &a, 1, 0, t, &rate), CONN_RATE_CLIENT);

	conn_rates_fini(r);
	free(r);
	return TEST_DONE();
}
