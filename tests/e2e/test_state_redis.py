"""
test_state_redis.py - the state store on Redis (issue 9 point 10): two
nodes sharing one redis-server see the same greylisting triplets; a Redis
that goes away makes greylisting fail open (logged) or closed (451 4.3.0
[POLICY-STATE-UNAVAILABLE]) without a session ever hanging, and is used
again when it comes back (STORE-STATE-REDIS-DOWN, STORE-STATE-REDIS-UP);
a Redis that accepts and never answers times out after
state.redis_timeout. Clients bind 127.0.0.x (127.0.0.1 is trusted).
"""
import base64
import json
import socket
import time

import pytest

from conftest import RawClient, free_port, make_message, run_cli
from redisfix import RedisServer, SilentRedis, merge_conf, redis_server, state_conf  # noqa: F401
from test_greylist import ALICE, BOB, DELAY, assert_greylisted, grey_server, rcpt, wait_pass

REPLY_BOUND = 5.0	# every reply, Redis up, down or silent


def raw_at(host, port, source, timeout=10.0):
    """A RawClient to host:port (the conftest's connects to 127.0.0.1)."""
    c = RawClient.__new__(RawClient)
    c.sock = socket.create_connection((host, port), timeout=timeout,
                                      source_address=(source, 0))
    c.sock.settimeout(timeout)
    c.timeout = timeout
    c.buf = b""
    c.greeting = c.reply()
    return c


def rcpt_at(host, port, frm="sender@example.org", to=ALICE, source="127.0.0.2"):
    with raw_at(host, port, source) as c:
        assert c.cmd("EHLO client.example.org").code == 250
        assert c.cmd("MAIL FROM:<%s>" % frm).code == 250
        r = c.cmd("RCPT TO:<%s>" % to)
        c.cmd("QUIT")
        return r


def timed_rcpt(srv, **kw):
    t0 = time.monotonic()
    r = rcpt(srv, **kw)
    took = time.monotonic() - t0
    assert took < REPLY_BOUND, (took, r)
    return r, took


def test_two_nodes_share_greylisting(make_server, redis_server):
    """A triplet first seen on node A passes on node B after the delay,
    and a triplet B passed is known on A: one Redis, two nodes on
    different loopback addresses."""
    nodes = {}
    for name, host in (("a", "127.0.0.10"), ("b", "127.0.0.11")):
        port = free_port()
        srv = grey_server(make_server, backend=state_conf(redis_server), name="node_" + name,
                          listeners={"mx": "%s:%d" % (host, port)})
        nodes[name] = (srv, host, port)
    (a, ahost, aport), (b, bhost, bport) = nodes["a"], nodes["b"]
    mark_a, mark_b = a.mark(), b.mark()
    t0 = time.monotonic()
    assert assert_greylisted(rcpt_at(ahost, aport)) == DELAY
    a.wait_event("POLICY-GREYLISTED", after=mark_a, client="127.0.0.2")
    # B knows the first attempt: too early there too
    if time.monotonic() - t0 < DELAY - 0.5:
        assert 1 <= assert_greylisted(rcpt_at(bhost, bport)) <= DELAY
    time.sleep(max(0.0, DELAY + 0.2 - (time.monotonic() - t0)))
    # the retry, on B: 250 at once
    r = rcpt_at(bhost, bport)
    assert r.code == 250, r
    b.wait_event("POLICY-GREYLIST-PASSED", after=mark_b, reason="retried")
    # and what B recorded, A honours
    mark_a = a.mark()
    assert rcpt_at(ahost, aport, source="127.0.0.3").code == 250
    a.wait_event("POLICY-GREYLIST-PASSED", after=mark_a, reason="known")
    # another recipient is a new triplet on both
    assert_greylisted(rcpt_at(bhost, bport, to=BOB))
    assert_greylisted(rcpt_at(ahost, aport, to=BOB))
    # the triplets are in the shared Redis
    assert int(redis_server.command("DBSIZE")[1:]) >= 2


def test_two_nodes_share_the_greeting_pass_cache(make_server, redis_server):
    """smtp.greet_pause's pass cache is in the shared store: a client that
    passed the pause on node A is greeted at once on node B."""
    nodes = []
    for name, host in (("a", "127.0.0.12"), ("b", "127.0.0.13")):
        port = free_port()
        srv = make_server(conf=merge_conf(state_conf(redis_server),
                                          {"smtp": {"greet_pause": "2"}}),
                          name="pause_" + name, listeners={"mx": "%s:%d" % (host, port)})
        nodes.append((srv, host, port))
    (a, ahost, aport), (b, bhost, bport) = nodes
    mark = a.mark()
    t0 = time.monotonic()
    with raw_at(ahost, aport, "127.0.0.4") as c:
        assert c.greeting.code == 220 and time.monotonic() - t0 >= 1.9
        assert c.cmd("EHLO client.example.org").code == 250
        a.wait_event("SMTP-TRIAGE-PASSED", after=mark, client="127.0.0.4")
        c.cmd("QUIT")
    # written after the pass is logged: wait (bounded) until it is in Redis
    end = time.monotonic() + REPLY_BOUND
    while redis_server.command("EXISTS", "greetpass:127.0.0.4") != ":1":
        assert time.monotonic() < end, "greetpass never reached Redis"
        time.sleep(0.05)
    t0 = time.monotonic()
    with raw_at(bhost, bport, "127.0.0.4") as c:
        assert c.greeting.code == 220 and time.monotonic() - t0 < 1.5, c.greeting
        c.cmd("QUIT")
    # another client still waits on B
    t0 = time.monotonic()
    with raw_at(bhost, bport, "127.0.0.5") as c:
        assert c.greeting.code == 220 and time.monotonic() - t0 >= 1.9


def test_simulate_reads_redis_and_writes_nothing(make_server, redis_server):
    """postern simulate on a Redis store: it sees the triplet a real
    session passed (known), and a new triplet is greylisted without being
    written (Redis holds the same keys after it)."""
    srv = grey_server(make_server, backend=state_conf(redis_server))
    assert_greylisted(rcpt(srv))
    assert wait_pass(srv).code == 250

    def simulate(to):
        r = run_cli("simulate", "-c", str(srv.config), "--client", "127.0.0.2",
                    "--helo", "client.example.org", "--from", "sender@example.org",
                    "--to", to, "--json")
        return r.returncode, json.loads(r.stdout)

    keys = redis_server.command("DBSIZE")
    rc, out = simulate(ALICE)
    assert rc == 0 and out["result"] == "accepted", out
    rc, out = simulate(BOB)
    assert rc == 75, out
    rcpt_stage = [st for st in out["stages"] if st["stage"] == "rcpt"][0]
    assert rcpt_stage["id"] == "POLICY-GREYLISTED", rcpt_stage
    rc, out = simulate(BOB)
    assert rc == 75, out   # still new: the first simulation wrote nothing
    assert redis_server.command("DBSIZE") == keys


def test_unix_socket(make_server, tmp_path):
    """state.redis as a socket path: greylisting works over it."""
    sock = tmp_path / "r.sock"
    red = RedisServer(tmp_path / "redis", unixsocket=sock).start()
    try:
        srv = grey_server(make_server, backend=state_conf(str(sock)))
        mark = srv.mark()
        assert_greylisted(rcpt(srv))
        srv.wait_event("POLICY-GREYLISTED", after=mark)
        # the first attempt is recorded after the answer: wait for it
        end = time.monotonic() + 5.0
        while int(red.command("DBSIZE")[1:]) == 0 and time.monotonic() < end:
            time.sleep(0.05)
        assert int(red.command("DBSIZE")[1:]) == 1
        assert wait_pass(srv).code == 250
    finally:
        red.stop()


def test_redis_down_fails_open_then_recovers(make_server, tmp_path):
    """Redis killed under a running server: greylisting passes (logged,
    STORE-STATE-REDIS-DOWN once, however many failures), no reply waits;
    Redis back on the same port: triplets are greylisted again (from the
    new, empty store) and STORE-STATE-REDIS-UP says so."""
    red = RedisServer(tmp_path / "redis").start()
    try:
        srv = grey_server(make_server, backend=state_conf(red, timeout_ms=500))
        assert_greylisted(timed_rcpt(srv)[0])
        mark = srv.mark()
        red.kill()
        # a few recipients over ~2 s: several connection attempts
        end = time.monotonic() + 2.0
        n = 0
        while time.monotonic() < end or n < 3:
            r, _ = timed_rcpt(srv, frm="down%d@example.org" % n)
            assert r.code == 250, r
            n += 1
            time.sleep(0.25)
        errs = srv.wait_event("POLICY-GREYLIST-ERROR", after=mark, count=n)
        assert all(e["err"].startswith("redis %s: " % red.address) for e in errs), errs
        down = srv.wait_event("STORE-STATE-REDIS-DOWN", after=mark)
        assert down[0]["server"] == red.address, down
        # logged once for the outage (rate-limited), not per failure
        assert len(srv.events("STORE-STATE-REDIS-DOWN", after=mark)) == 1
        # the sessions' summaries say the check errored, the mail was taken
        assert srv.send_mail(source="127.0.0.2")[0] == 250
        # back on the same port
        mark = srv.mark()
        red = RedisServer(tmp_path / "redis", port=red.port).start()
        end = time.monotonic() + 15.0
        while True:
            r, _ = timed_rcpt(srv, frm="back@example.org")
            if r.code == 451 or time.monotonic() > end:
                break
            time.sleep(0.3)
        assert_greylisted(r)
        up = srv.wait_event("STORE-STATE-REDIS-UP", after=mark)[0]
        assert up["server"] == red.address and int(up["down_ms"]) > 0, up
        srv.wait_event("POLICY-GREYLISTED", after=mark, **{"from": "<back@example.org>"})
        # and the store works again: the retry passes
        assert wait_pass(srv, frm="back@example.org").code == 250
    finally:
        red.stop()


def test_redis_down_fails_closed(make_server):
    """greylist.on_state_error = closed, no Redis on the port: 451 4.3.0
    [POLICY-STATE-UNAVAILABLE] at once; the session goes on."""
    addr = "127.0.0.1:%d" % free_port()
    srv = grey_server(make_server, backend=state_conf(addr, timeout_ms=500),
                      greylist={"on_state_error": "closed"})
    mark = srv.mark()
    with srv.raw(source="127.0.0.2") as c:
        assert c.cmd("EHLO client.example.org").code == 250
        assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
        for to in (ALICE, BOB):
            t0 = time.monotonic()
            r = c.cmd("RCPT TO:<%s>" % to)
            assert time.monotonic() - t0 < REPLY_BOUND
            assert r.code == 451, r
            assert r.last[4:].startswith("4.3.0 "), r
            assert r.last.endswith("[POLICY-STATE-UNAVAILABLE]"), r
        # exempt recipients are not asked about
        assert c.cmd("RCPT TO:<postmaster@example.test>").code == 250
        assert c.cmd("QUIT").code == 221
    ev = srv.wait_event("POLICY-STATE-UNAVAILABLE", after=mark, count=2)[0]
    assert ev["check"] == "greylist" and ev["err"].startswith("redis %s: " % addr), ev
    down = srv.wait_event("STORE-STATE-REDIS-DOWN", after=mark)[0]
    assert down["server"] == addr and "refused" in down["err"].lower(), down


def test_silent_redis_times_out(make_server):
    """A Redis that accepts and never answers: each request fails after
    state.redis_timeout (fail open, logged), the connection is dropped
    and made again later; the session goes on."""
    with SilentRedis() as silent:
        srv = grey_server(make_server, backend=state_conf(silent, timeout_ms=300))
        mark = srv.mark()
        with srv.raw(source="127.0.0.2") as c:
            assert c.cmd("EHLO client.example.org").code == 250
            assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
            t0 = time.monotonic()
            r = c.cmd("RCPT TO:<%s>" % ALICE)
            took = time.monotonic() - t0
            assert r.code == 250, r
            assert 0.25 <= took < REPLY_BOUND, took
            ev = srv.wait_event("POLICY-GREYLIST-ERROR", after=mark)[0]
            assert ev["err"] == "redis %s: no reply in 300 ms" % silent.address, ev
            down = srv.wait_event("STORE-STATE-REDIS-DOWN", after=mark)[0]
            assert down["err"] == "no reply in 300 ms", down
            # the session goes on; after the back-off a new connection
            # is made (and times out again)
            time.sleep(0.3)
            t0 = time.monotonic()
            assert c.cmd("RCPT TO:<%s>" % BOB).code == 250
            assert time.monotonic() - t0 < REPLY_BOUND
            assert c.cmd("DATA").code == 354
            assert c.cmd("Subject: t\r\n\r\nbody\r\n.").code == 250, "message taken"
            assert c.cmd("QUIT").code == 221
        srv.wait_event("POLICY-GREYLIST-ERROR", after=mark, count=2)
        assert silent.accepted >= 2 and silent.received > 0


def test_stop_with_requests_pending(make_server):
    """A server stopped while a request waits on a silent Redis ends it
    as failed and exits cleanly (state_close; ASan builds check the
    frees)."""
    with SilentRedis() as silent:
        # the session is dropped after 1 s of grace, the request (10 s)
        # still waits: the loops stop with it pending
        srv = grey_server(make_server, backend=state_conf(silent, timeout_ms=10000),
                          conf={"server": {"shutdown_grace": "1"}})
        mark = srv.mark()
        c = srv.raw(source="127.0.0.2")
        try:
            assert c.cmd("EHLO client.example.org").code == 250
            assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
            c.send("RCPT TO:<%s>\r\n" % ALICE)
            end = time.monotonic() + 5.0
            while silent.received == 0 and time.monotonic() < end:
                time.sleep(0.05)
            assert silent.received > 0
            assert srv.stop() == 0
        finally:
            c.sock.close()
        srv.wait_event("SHUTDOWN-COMPLETE", after=mark)


def test_redis_killed_under_load(make_server, tmp_path):
    """Sessions on every loop keep asking while Redis is killed and comes
    back: each reply is 250 or 451 within the bound, none hangs, the
    server serves on (requests in flight when the connection breaks end
    failed; ASan builds check the frees)."""
    import threading
    red = RedisServer(tmp_path / "redis").start()
    try:
        srv = grey_server(make_server, backend=state_conf(red, timeout_ms=500),
                          conf={"server": {"loops": "2"}})
        stop = threading.Event()
        bad = []
        count = [0]

        def client(k):
            n = 0
            while not stop.is_set() and n < 3000:
                try:
                    with srv.raw(source="127.0.0.%d" % (2 + k)) as c:
                        assert c.cmd("EHLO client.example.org").code == 250
                        assert c.cmd("MAIL FROM:<s%d.%d@example.org>" % (k, n)).code == 250
                        for to in ("alice", "bob", "carol"):
                            t0 = time.monotonic()
                            r = c.cmd("RCPT TO:<%s@example.test>" % to)
                            if r.code not in (250, 451) or time.monotonic() - t0 > REPLY_BOUND:
                                bad.append((r, time.monotonic() - t0))
                            count[0] += 1
                        c.cmd("QUIT")
                except Exception as e:  # noqa: BLE001 - reported below
                    bad.append(repr(e))
                    return
                n += 1
                time.sleep(0.01)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        mark = srv.mark()
        for t in threads:
            t.start()
        time.sleep(0.5)
        red.kill()
        srv.wait_event("STORE-STATE-REDIS-DOWN", after=mark)
        time.sleep(0.5)
        red = RedisServer(tmp_path / "redis", port=red.port).start()
        srv.wait_event("STORE-STATE-REDIS-UP", after=mark, timeout=15.0)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        assert not [t for t in threads if t.is_alive()]
        assert not bad, bad[:5]
        assert count[0] > 20
        srv.assert_serves(source="127.0.0.2")
        assert srv.stop() == 0
    finally:
        red.stop()


def test_bad_redis_address_refuses_start(make_server):
    """A state.redis that is no address stops the start with a message
    naming the option (a host name is resolved once, at start, so that no
    loop waits for DNS; one that does not resolve stops it the same way,
    not tested here: no test asks the machine's resolver)."""
    from conftest import ServerStartError
    for addr in ("no-port", "127.0.0.1:0", "[::1", ":6379"):
        srv = make_server(conf=state_conf(addr), start=False, name="bad%d" % len(addr))
        try:
            srv.start(timeout=10)
        except ServerStartError as e:
            assert "state.redis" in str(e), (addr, str(e)[-500:])
        else:
            raise AssertionError("started with state.redis = %s" % addr)


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_rates_and_duplicates_without_redis(make_server, mode):
    """No Redis on the port: the rates check (at MAIL and RCPT) and the
    duplicates check (at end of data) log their error and pass by default,
    or refuse with 451 4.3.0 [POLICY-STATE-UNAVAILABLE] when set closed;
    every reply within the bound."""
    addr = "127.0.0.1:%d" % free_port()
    conf = merge_conf(state_conf(addr, timeout_ms=300),
                      {"rates": {"client_recipients": "100", "on_state_error": mode},
                       "duplicates": {"ttl": "1h", "on_state_error": mode}})
    srv = make_server(conf=conf)
    mark = srv.mark()
    with srv.raw(source="127.0.0.2") as c:
        assert c.cmd("EHLO client.example.org").code == 250
        t0 = time.monotonic()
        r = c.cmd("MAIL FROM:<sender@example.org>")
        assert r.code == 250, r   # no message limit set: nothing asked at MAIL
        r = c.cmd("RCPT TO:<%s>" % ALICE)
        assert time.monotonic() - t0 < REPLY_BOUND
        if mode == "closed":
            assert r.code == 451 and r.last.endswith("[POLICY-STATE-UNAVAILABLE]"), r
            ev = srv.wait_event("POLICY-STATE-UNAVAILABLE", after=mark)[0]
            assert ev["check"] == "rates", ev
            srv.wait_event("POLICY-RATE-ERROR", after=mark, op="get")
            c.cmd("QUIT")
            return
        assert r.code == 250, r
        srv.wait_event("POLICY-RATE-ERROR", after=mark, op="get")
        assert c.cmd("DATA").code == 354
        c.send(make_message("no redis", msgid="<nr@example.org>") + b".\r\n")
        r = c.reply()
        assert r.code == 250, r
        c.cmd("QUIT")
    srv.wait_event("POLICY-DUPLICATE-ERROR", after=mark, op="get")
    srv.wait_mail("alice")


def test_duplicates_closed_without_redis(make_server):
    """duplicates.on_state_error = closed: the message is refused 451
    4.3.0 at end of data when the seen Message-IDs cannot be read."""
    addr = "127.0.0.1:%d" % free_port()
    srv = make_server(conf=merge_conf(state_conf(addr, timeout_ms=300),
                                      {"duplicates": {"ttl": "1h", "on_state_error": "closed"}}))
    mark = srv.mark()
    code, text = srv.send_mail(source="127.0.0.2", rcpts=[ALICE],
                               data=make_message("closed", msgid="<dc@example.org>"))
    assert code == 451 and text.endswith(b"[POLICY-STATE-UNAVAILABLE]"), (code, text)
    ev = srv.wait_event("POLICY-STATE-UNAVAILABLE", after=mark)[0]
    assert ev["check"] == "duplicates", ev
    srv.wait_event("POLICY-DUPLICATE-ERROR", after=mark, op="get")


def test_failed_logins_fail_open_without_redis(make_server):
    """No Redis: the lockout check and the failure count are logged as
    STORE-STATE-OP-FAILED and AUTH is answered as if nothing were known;
    the right password still works."""
    addr = "127.0.0.1:%d" % free_port()
    srv = make_server(conf=merge_conf(state_conf(addr, timeout_ms=300),
                                      {"auth": {"max_failures": "2", "fail_delay": "0",
                                                "plaintext_on_loopback": "yes"}}))

    def plain(user, pw):
        return base64.b64encode(b"\0" + user.encode() + b"\0" + pw.encode()).decode()

    mark = srv.mark()
    with srv.raw() as c:
        assert c.cmd("EHLO client.example.org").code == 250
        for _ in range(3):
            r = c.cmd("AUTH PLAIN " + plain(ALICE, "wrong"))
            assert r.code == 535, r   # never a lockout: nothing is counted
        assert c.cmd("AUTH PLAIN " + plain(ALICE, "alice-pw")).code == 235
    ev = srv.wait_event("STORE-STATE-OP-FAILED", after=mark, op="get")[0]
    assert ev["key"] == "authban:127.0.0.1" and ev["err"].startswith("redis "), ev
    srv.wait_event("STORE-STATE-OP-FAILED", after=mark, op="incr")


def test_two_nodes_count_one_rate(make_server, redis_server):
    """rates.client_recipients = 3 on two nodes (127.0.0.14, 127.0.0.15)
    sharing one Redis: 2 recipients accepted on A and 1 on B use up the
    client's 3; the next one on either node is refused 451 4.7.1."""
    nodes = []
    for name, host in (("a", "127.0.0.14"), ("b", "127.0.0.15")):
        port = free_port()
        srv = make_server(conf=merge_conf(state_conf(redis_server),
                                          {"rates": {"client_recipients": "3"}}),
                          name="rate_" + name, listeners={"mx": "%s:%d" % (host, port)})
        nodes.append((srv, host, port))
    (a, ahost, aport), (b, bhost, bport) = nodes

    def recipients(host, port, rcpts):
        with raw_at(host, port, "127.0.0.2") as c:
            assert c.cmd("EHLO client.example.org").code == 250
            assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
            rr = [c.cmd("RCPT TO:<%s>" % to) for to in rcpts]
            if any(r.code == 250 for r in rr):
                assert c.cmd("DATA").code == 354
                c.send(make_message("rates") + b".\r\n")
                assert c.reply().code == 250
            c.cmd("QUIT")
            return rr

    def counted(n):
        """Waits (bounded) until the client's recipients in Redis reach n
        (counted on acceptance, written just after the reply)."""
        end = time.monotonic() + REPLY_BOUND
        while True:
            key = "rate:rc:127.0.0.2:%d" % (int(time.time()) // 3600)
            v = redis_server.command("GET", key)
            if v.isdigit() and int(v) >= n:
                return
            assert time.monotonic() < end, (key, v)
            time.sleep(0.05)

    assert [r.code for r in recipients(ahost, aport, [ALICE, BOB])] == [250, 250]
    counted(2)
    mark = b.mark()
    assert recipients(bhost, bport, ["carol@example.test"])[0].code == 250
    counted(3)
    r = recipients(bhost, bport, [ALICE])[0]
    assert r.code == 451 and r.last.endswith("[POLICY-RATE-RECIPIENTS]"), r
    assert b.wait_event("POLICY-RATE-RECIPIENTS", after=mark)[0]["count"] == "3"
    r = recipients(ahost, aport, [BOB])[0]
    assert r.code == 451 and r.last.endswith("[POLICY-RATE-RECIPIENTS]"), r
