"""
test_rates.py - rates and limits (issue 9 point 8): connections per
second per client address and overall (421 4.7.0 at connect, in memory
per node), messages and recipients per client address, per sender and
per authenticated user over a sliding window in the state store (451
4.7.1 at MAIL / RCPT, counted only when accepted, across sessions), the
listeners' own values (listen.NAME.rates_*, limits_errors), errors before
drop (421 4.7.0), and the PROXY client's real address for
limits.connections_per_ip. Clients bind 127.0.0.x: 127.0.0.1 is trusted
by default, and trusted clients are exempt from the client and sender
limits.

The state-store tests run on both back ends (the state_backend fixture of
redisfix.py: SQLite, then a redis-server of the test's own); the two-node
test shares one SQLite folder, or one Redis.
"""
import base64
import time

import pytest

from conftest import DOMAIN, make_message
from redisfix import state_backend  # noqa: F401 (fixture: sqlite and redis)

ALICE = "alice@" + DOMAIN
BOB = "bob@" + DOMAIN
CAROL = "carol@" + DOMAIN


@pytest.fixture
def rates_server(make_server, state_backend):
    def factory(rates=None, conf=None, **kw):
        c = {"rates": dict(rates or {})}
        for sec, kv in list(state_backend.items()) + list((conf or {}).items()):
            c.setdefault(sec, {}).update(kv)
        return make_server(conf=c, **kw)
    return factory


def plain(user, pw):
    return base64.b64encode(("\0%s\0%s" % (user, pw)).encode()).decode()


def assert_rate(r, kind, by):
    """by: "client 127.0.0.2", "user alice@..." (the reply names only who)."""
    who = by.split(" ", 1)[1]
    assert r.code == 451, r
    assert r.last[4:].startswith("4.7.1 Too many %s from %s, try again later" % (kind, who)), r
    assert r.last.endswith("[POLICY-RATE-%s]" % kind.upper()), r


def session(srv, source="127.0.0.2", frm="sender@example.org", auth=None):
    c = srv.raw(source=source)
    assert c.cmd("EHLO client.example.org").code == 250
    if auth is not None:
        r = c.cmd("AUTH PLAIN " + plain(auth, auth.split("@")[0] + "-pw"))
        assert r.code == 235, r
    return c


def send(c, frm, rcpts, token="rates"):
    """One transaction; returns (MAIL reply, [RCPT replies], end reply or None)."""
    r = c.cmd("MAIL FROM:<%s>" % frm)
    if r.code != 250:
        return r, [], None
    rr = [c.cmd("RCPT TO:<%s>" % to) for to in rcpts]
    if not any(x.code == 250 for x in rr):
        c.cmd("RSET")
        return r, rr, None
    assert c.cmd("DATA").code == 354
    c.send(make_message(token) + b".\r\n")
    return r, rr, c.reply()


# ---------------------------------------------------------------- recipients

def test_recipients_per_client_across_sessions(rates_server):
    srv = rates_server({"client_recipients": "3"})
    mark = srv.mark()
    with session(srv) as c:
        _, rr, end = send(c, "a@example.org", [ALICE, BOB])
        assert [x.code for x in rr] == [250, 250] and end.code == 250
    # the count goes on in a new session: the third passes, the fourth not
    with session(srv) as c:
        assert c.cmd("MAIL FROM:<b@example.org>").code == 250
        assert c.cmd("RCPT TO:<%s>" % CAROL).code == 250
        r = c.cmd("RCPT TO:<%s>" % ALICE)
        assert_rate(r, "recipients", "client 127.0.0.2")
    ev = srv.wait_event("POLICY-RATE-RECIPIENTS", after=mark)[0]
    assert ev["by"] == "client" and ev["who"] == "127.0.0.2", ev
    assert ev["count"] == "3" and ev["limit"] == "3" and ev["window_s"] == "3600", ev
    rc = srv.wait_event("SESSION-RCPT", after=mark, cause="POLICY-RATE-RECIPIENTS")[0]
    assert rc["check"] == "rates", rc
    # another client address has its own count; a trusted one is exempt
    with session(srv, source="127.0.0.3") as c:
        _, rr, _ = send(c, "a@example.org", [ALICE, BOB, CAROL])
        assert [x.code for x in rr] == [250, 250, 250]
    with session(srv, source="127.0.0.1") as c:
        _, rr, _ = send(c, "a@example.org", [ALICE, BOB, CAROL, ALICE])
        assert all(x.code == 250 for x in rr), rr


def test_recipients_counted_across_nodes(rates_server, tmp_path):
    """Two nodes on one state store (one SQLite file here, one Redis with
    state_backend) count the same client: 2 recipients on a, 1 on b, and
    b refuses the 4th."""
    shared = tmp_path / "shared-state"
    shared.mkdir()
    conf = {"server": {"state": str(shared)}}
    a = rates_server({"client_recipients": "3"}, conf=conf, name="a")
    b = rates_server({"client_recipients": "3"}, conf=conf, name="b")
    mark = b.mark()
    with session(a) as c:
        _, rr, end = send(c, "a@example.org", [ALICE, BOB])
        assert [x.code for x in rr] == [250, 250] and end.code == 250
    with session(b) as c:
        assert c.cmd("MAIL FROM:<a@example.org>").code == 250
        assert c.cmd("RCPT TO:<%s>" % CAROL).code == 250
        assert_rate(c.cmd("RCPT TO:<%s>" % ALICE), "recipients", "client 127.0.0.2")
    assert b.wait_event("POLICY-RATE-RECIPIENTS", after=mark)[0]["count"] == "3"


def test_refused_recipients_not_counted(rates_server):
    srv = rates_server({"client_recipients": "2"})
    mark = srv.mark()
    with session(srv) as c:
        assert c.cmd("MAIL FROM:<a@example.org>").code == 250
        for _ in range(3):
            r = c.cmd("RCPT TO:<nobody@%s>" % DOMAIN)
            assert r.code == 550, r
        assert c.cmd("RCPT TO:<%s>" % ALICE).code == 250
        assert c.cmd("RCPT TO:<%s>" % BOB).code == 250
        assert_rate(c.cmd("RCPT TO:<%s>" % CAROL), "recipients", "client 127.0.0.2")
    assert srv.wait_event("POLICY-RATE-RECIPIENTS", after=mark)[0]["count"] == "2"


# ---------------------------------------------------------------- messages

def test_messages_per_sender(rates_server):
    srv = rates_server({"sender_messages": "2"})
    mark = srv.mark()
    for i in range(2):
        with session(srv, source="127.0.0.%d" % (2 + i)) as c:
            _, _, end = send(c, "Bulk@Example.org", [ALICE], token="m%d" % i)
            assert end.code == 250, end
    srv.wait_mail("alice", count=2)
    with session(srv, source="127.0.0.4") as c:
        # the sender compares without case; refused at MAIL, before any data
        assert_rate(c.cmd("MAIL FROM:<bulk@example.ORG>"), "messages",
                    "sender bulk@example.ORG")
        # another sender, and the null sender, pass
        assert c.cmd("MAIL FROM:<other@example.org>").code == 250
        assert c.cmd("RSET").code == 250
        assert c.cmd("MAIL FROM:<>").code == 250
    ev = srv.wait_event("POLICY-RATE-MESSAGES", after=mark)[0]
    assert ev["by"] == "sender" and ev["count"] == "2" and ev["limit"] == "2", ev
    m = srv.wait_event("SESSION-MAIL", after=mark, cause="POLICY-RATE-MESSAGES")[0]
    assert m["check"] == "rates", m


def test_refused_message_not_counted(rates_server):
    """A message refused at end of data (too many Received fields) does
    not count; the accepted ones do."""
    srv = rates_server({"client_messages": "1"}, conf={"limits": {"hops": "1"}})
    with session(srv) as c:
        assert c.cmd("MAIL FROM:<a@example.org>").code == 250
        assert c.cmd("RCPT TO:<%s>" % ALICE).code == 250
        assert c.cmd("DATA").code == 354
        c.send(b"Received: from a\r\nReceived: from b\r\n" + make_message("hops") + b".\r\n")
        assert c.reply().code == 554
        _, _, end = send(c, "a@example.org", [ALICE])
        assert end.code == 250, end
        assert_rate(c.cmd("MAIL FROM:<a@example.org>"), "messages", "client 127.0.0.2")


def test_messages_per_authenticated_user(rates_server):
    """A compromised account is stopped: per user, whatever its address,
    trusted networks included; the listener's own value applies on it."""
    sub = "127.0.0.1:%d"
    from conftest import free_port
    port = free_port()
    srv = rates_server({"user_messages": "5"},
                       conf={"auth": {"fail_delay": "0", "plaintext_on_loopback": "yes"},
                             "listen.sub": {"address": sub % port, "role": "submission",
                                            "rates_user_messages": "2"}})
    mark = srv.mark()

    def sub_session(source):
        from conftest import RawClient
        c = RawClient(port, source=source)
        assert c.cmd("EHLO client.example.org").code == 250
        r = c.cmd("AUTH PLAIN " + plain(ALICE, "alice-pw"))
        assert r.code == 235, r
        return c

    for i, source in enumerate(("127.0.0.2", "127.0.0.3")):
        with sub_session(source) as c:
            _, _, end = send(c, ALICE, [BOB], token="u%d" % i)
            assert end.code == 250, end
    srv.wait_mail("bob", count=2)
    with sub_session("127.0.0.1") as c:
        assert_rate(c.cmd("MAIL FROM:<%s>" % ALICE), "messages", "user " + ALICE)
    ev = srv.wait_event("POLICY-RATE-MESSAGES", after=mark)[0]
    assert ev["by"] == "user" and ev["who"] == ALICE and ev["limit"] == "2", ev
    # on the mx listener the [rates] value (5) applies to alice
    with session(srv, source="127.0.0.3", auth=ALICE) as c:
        assert c.cmd("MAIL FROM:<%s>" % ALICE).code == 250


def test_recipients_per_user_and_sender(rates_server):
    srv = rates_server({"user_recipients": "2", "sender_recipients": "3"},
                       conf={"auth": {"fail_delay": "0", "plaintext_on_loopback": "yes"}})
    mark = srv.mark()
    with session(srv, auth=BOB) as c:
        assert c.cmd("MAIL FROM:<%s>" % BOB).code == 250
        assert c.cmd("RCPT TO:<%s>" % ALICE).code == 250
        assert c.cmd("RCPT TO:<%s>" % CAROL).code == 250
        assert_rate(c.cmd("RCPT TO:<x@elsewhere.example>"), "recipients", "user " + BOB)
    with session(srv) as c:
        _, rr, _ = send(c, "s@example.org", [ALICE, BOB, CAROL, ALICE])
        assert [x.code for x in rr[:3]] == [250, 250, 250], rr
        assert_rate(rr[3], "recipients", "sender s@example.org")
    got = [e["by"] for e in srv.wait_event("POLICY-RATE-RECIPIENTS", after=mark, count=2)]
    assert got == ["user", "sender"], got


def test_sliding_window(rates_server):
    """With a 2 s window a client at its limit passes again once its
    accepted recipients slid out: not at once, and by 3 windows later."""
    # each refused RCPT counts toward limits.errors: off for the polling
    srv = rates_server({"client_recipients": "2", "window": "2s"},
                       conf={"limits": {"errors": "0"}})
    mark = srv.mark()
    with session(srv) as c:
        assert c.cmd("MAIL FROM:<a@example.org>").code == 250
        assert c.cmd("RCPT TO:<%s>" % ALICE).code == 250
        assert c.cmd("RCPT TO:<%s>" % BOB).code == 250
        t0 = time.monotonic()
        assert_rate(c.cmd("RCPT TO:<%s>" % CAROL), "recipients", "client 127.0.0.2")
        end = t0 + 10.0
        while True:
            r = c.cmd("RCPT TO:<%s>" % CAROL)
            if r.code == 250 or time.monotonic() > end:
                break
            assert_rate(r, "recipients", "client 127.0.0.2")
            time.sleep(0.2)
        assert r.code == 250, r
        waited = time.monotonic() - t0
    # the accepted ones count until their bucket and the next one are past
    assert 0.5 < waited < 7.0, waited
    assert srv.wait_event("POLICY-RATE-RECIPIENTS", after=mark)[0]["window_s"] == "2"


def test_limits_off_by_default_and_in_chain(rates_server):
    srv = rates_server()
    mark = srv.mark()
    with session(srv) as c:
        _, rr, end = send(c, "a@example.org", [ALICE] * 5)
        assert end.code == 250
    ev = srv.wait_event("SESSION-MESSAGE", after=mark)[0]
    assert "mail:rates=continue" in ev["checks"] and "rcpt:rates=continue" in ev["checks"], ev


def test_bad_on_state_error(make_server):
    from conftest import run_cli
    srv = make_server(conf={"rates": {"on_state_error": "maybe"}}, start=False)
    r = run_cli("check", "-c", str(srv.config))
    assert r.returncode == 78, r
    assert "rates.on_state_error: must be open, closed or empty" in r.stdout + r.stderr


# ---------------------------------------------------------------- errors

def test_errors_before_drop_per_listener(make_server):
    from conftest import free_port
    port = free_port()
    srv = make_server(conf={"limits": {"errors": "10"},
                            "listen.strict": {"address": "127.0.0.1:%d" % port,
                                              "role": "mx", "limits_errors": "2"}})
    mark = srv.mark()
    from conftest import RawClient
    with RawClient(port, source="127.0.0.2") as c:
        assert c.cmd("EHLO client.example.org").code == 250
        assert c.cmd("BOGUS").code == 500
        # the limit-th error is refused, then the 421 closes the session
        assert c.cmd("BOGUS").code == 500
        r = c.reply()
        assert r.code == 421 and r.last[4:].startswith("4.7.0 "), r
        assert r.last.endswith("[SMTP-TOO-MANY-ERRORS]"), r
        assert c.closed()
    ev = srv.wait_event("SMTP-TOO-MANY-ERRORS", after=mark)[0]
    assert ev["limit"] == "2" and ev["count"] == "2", ev
    # the other listener keeps limits.errors
    with srv.raw(source="127.0.0.2") as c:
        assert c.cmd("EHLO client.example.org").code == 250
        for _ in range(3):
            assert c.cmd("BOGUS").code == 500
        assert c.cmd("NOOP").code == 250


def test_listener_override_checked(make_server):
    from conftest import run_cli
    srv = make_server(conf={"listen.mx": {"rates_user_messages": "lots"}}, start=False)
    r = run_cli("check", "-c", str(srv.config))
    assert r.returncode == 78, r
    assert "rates.user_messages: \"lots\" is not a number" in r.stdout + r.stderr


# ---------------------------------------------------------------- connections

def connect_until_refused(srv, source, limit):
    """Opens connections from source until one is refused (at most
    limit + 5 within 10 s); returns (greetings taken, the refusal)."""
    opened, end = [], time.monotonic() + 10.0
    try:
        while len(opened) < limit + 5 and time.monotonic() < end:
            c = srv.raw(source=source, read_greeting=False)
            r = c.reply()
            if r.code != 220:
                assert c.closed()
                c.close()
                return len(opened), r
            opened.append(c)
        return len(opened), None
    finally:
        for c in opened:
            c.close()


def test_connection_rate_per_client(rates_server):
    srv = rates_server({"client_connections": "3"})
    mark = srv.mark()
    n, r = connect_until_refused(srv, "127.0.0.2", 3)
    # 3 per second: a slow machine may see a second go by in between
    assert r is not None and 3 <= n <= 6, (n, r)
    assert r.code == 421 and r.last[4:].startswith("4.7.0 "), r
    assert r.last.endswith("[POLICY-RATE-CONNECTIONS]"), r
    ev = srv.wait_event("POLICY-RATE-CONNECTIONS", after=mark)[0]
    assert ev["client"] == "127.0.0.2" and ev["limit"] == "3" and int(ev["rate"]) >= 3, ev
    # another address has its own count; trusted 127.0.0.1 is exempt
    with srv.raw(source="127.0.0.3") as c:
        assert c.cmd("NOOP").code == 250
    n, r = connect_until_refused(srv, "127.0.0.1", 3)
    assert r is None and n == 8, (n, r)
    # and the address passes again once the second slid by
    end = time.monotonic() + 5.0
    while True:
        c = srv.raw(source="127.0.0.2", read_greeting=False)
        code = c.reply().code
        c.close()
        if code == 220 or time.monotonic() > end:
            break
        time.sleep(0.2)
    assert code == 220


def test_connection_rate_overall(rates_server):
    srv = rates_server({"connections": "4"})
    mark = srv.mark()
    opened, refused = [], None
    try:
        for i in range(10):
            c = srv.raw(source="127.0.0.%d" % (2 + i), read_greeting=False)
            r = c.reply()
            if r.code != 220:
                refused = r
                c.close()
                break
            opened.append(c)
    finally:
        for c in opened:
            c.close()
    assert refused is not None and 4 <= len(opened) <= 8, (len(opened), refused)
    assert refused.code == 421 and refused.last.endswith("[POLICY-RATE-CONNECTIONS-ALL]")
    ev = srv.wait_event("POLICY-RATE-CONNECTIONS-ALL", after=mark)[0]
    assert ev["limit"] == "4", ev


def test_connection_rate_behind_proxy(make_server):
    """On a proxy_protocol listener the rate is the PROXY client's: two
    clients behind the same proxy each have their own."""
    from test_proxy import v1
    srv = make_server(conf={"listen.mx": {"proxy_protocol": "yes"},
                            "proxy": {"networks": "127.0.0.1/32"},
                            "rates": {"client_connections": "2"}})
    mark = srv.mark()
    replies = []
    for client in ("192.0.2.7", "192.0.2.7", "192.0.2.8", "192.0.2.7"):
        c = srv.raw(read_greeting=False)
        c.send(v1(client))
        replies.append(c.reply())
        c.close()
    codes = [r.code for r in replies]
    # the third from 192.0.2.7 within about a second is refused; 192.0.2.8 is not
    assert codes[2] == 220, codes
    if codes[3] == 421:
        assert replies[3].last.endswith("[POLICY-RATE-CONNECTIONS]"), replies[3]
        ev = srv.wait_event("POLICY-RATE-CONNECTIONS", after=mark)[0]
        assert ev["client"] == "192.0.2.7", ev
    else:
        # a second went by between them on a slow machine: try a burst
        n, r = connect_until_refused_proxied(srv, "192.0.2.9", 2)
        assert r is not None, n
        ev = srv.wait_event("POLICY-RATE-CONNECTIONS", after=mark)[0]
        assert ev["client"] == "192.0.2.9", ev


def connect_until_refused_proxied(srv, client, limit):
    from test_proxy import v1
    for i in range(limit + 5):
        c = srv.raw(read_greeting=False)
        c.send(v1(client))
        r = c.reply()
        c.close()
        if r.code != 220:
            return i, r
    return limit + 5, None
