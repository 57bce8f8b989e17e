"""
test_bounds.py - every bound of issue 2 point 5: each test crosses it, checks
the reply and the log event, then checks that the next client is served.
"""

import re
import resource
import socket
import time

import pytest

from conftest import make_message, dot_stuff, split_delivered


def ids_in(reply):
    return re.findall(r"\[([A-Z0-9-]+)\]\s*$", reply.last)


def open_tx(srv, rcpts=("alice@example.test",), mail_params=""):
    c = srv.raw()
    assert c.cmd("EHLO client.example.org").code == 250
    r = c.cmd("MAIL FROM:<sender@example.org>" + mail_params)
    assert r.code == 250, r
    for a in rcpts:
        assert c.cmd("RCPT TO:<%s>" % a).code == 250
    return c


def assert_dropped(srv, mark, cause):
    """The one transaction since mark ended refused with cause, before any
    commit (SESSION-MESSAGE verdict=rejected is logged only then): nothing
    of it was queued, so no mailbox can receive it later. This event is the
    proof, not a pause."""
    ev = srv.wait_event("SESSION-MESSAGE", after=mark, verdict="rejected",
                        cause=cause)
    assert len(srv.events("SESSION-MESSAGE", after=mark)) == 1, ev
    assert srv.spool_files("queue") == []
    assert srv.maildir("alice") == []


# ------------------------------------------------------------ command line

def test_command_line_too_long(server):
    with server.raw() as c:
        c.cmd("EHLO client.example.org")
        ok = b"NOOP " + b"x" * (2048 - 7)        # 2048 octets with CRLF
        assert c.cmd(ok).code == 250
        r = c.cmd(ok + b"x")                     # 2049
        assert r.code == 500 and r.text.startswith("5.5.2"), r
        assert ids_in(r) == ["SMTP-LINE-TOO-LONG"], r
        r = c.cmd(b"NOOP " + b"y" * 20000)
        assert r.code == 500, r
        assert c.cmd("NOOP").code == 250      # the session goes on
        assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
    ev = server.wait_event("SMTP-LINE-TOO-LONG")[0]
    assert ev["limit"] == "2048" and ev["sev"] == "notice", ev
    server.assert_serves()


def test_input_overflow_without_line_end(server):
    mark = server.mark()
    with server.raw() as c:
        c.cmd("EHLO client.example.org")
        try:
            c.send(b"x" * 70000)
        except OSError:
            pass
        r = c.reply()
        assert r.code == 421 and r.text.startswith("4.5.0"), r
        assert ids_in(r) == ["SMTP-INPUT-OVERFLOW"], r
        assert c.closed()
    server.wait_event("SMTP-INPUT-OVERFLOW", after=mark)
    end = server.wait_event("SESSION-END", after=mark)[0]
    assert end["cause"] == "SMTP-INPUT-OVERFLOW", end
    server.assert_serves()


def test_input_overflow_option(make_server):
    srv = make_server(opts=["limits.line_buffer=4096"])
    with srv.raw() as c:
        c.send(b"y" * 5000)
        r = c.reply()
        assert r.code == 421 and ids_in(r) == ["SMTP-INPUT-OVERFLOW"], r
        assert c.closed()
    srv.assert_serves()


# ---------------------------------------------------------------- timeouts

def test_command_timeout(make_server):
    srv = make_server(opts=["limits.command_timeout=1"])
    mark = srv.mark()
    with srv.raw() as c:
        t0 = time.monotonic()
        r = c.reply(timeout=6)
        took = time.monotonic() - t0
        assert r.code == 421 and r.text.startswith("4.4.2"), r
        assert ids_in(r) == ["SMTP-TIMEOUT"], r
        assert 0.5 <= took <= 4.0, took
        assert c.closed()
    end = srv.wait_event("SESSION-END", after=mark)[0]
    assert end["cause"] == "SMTP-TIMEOUT", end
    # an active client is not cut: each command that does work restarts
    # the clock (NOOP, RSET, HELP, VRFY do not: issue 7, test_edge_bounds.py)
    with srv.raw() as c:
        for _ in range(4):
            time.sleep(0.5)     # pacing, not a negative check: 2 s > timeout
            assert c.cmd("EHLO client.example.org").code == 250
    srv.assert_serves()


def test_data_timeout(make_server):
    srv = make_server(opts=["limits.data_timeout=1"])
    mark = srv.mark()
    with open_tx(srv) as c:
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: slow\r\n\r\nhalf a message")
        r = c.reply(timeout=6)
        assert r.code == 421 and r.text.startswith("4.4.2"), r
        assert ids_in(r) == ["SMTP-TIMEOUT"], r
        assert c.closed()
    end = srv.wait_event("SESSION-END", after=mark)[0]
    assert end["cause"] == "SMTP-TIMEOUT", end
    assert end["msgs"].startswith("0/"), end
    # the transaction was dropped at the timeout, never committed: nothing
    # can reach a mailbox later (the only way there is a spool commit)
    assert_dropped(srv, mark, "SMTP-TIMEOUT")
    srv.assert_serves()


def test_bare_lf_dot_lf_is_not_end_of_data(make_server):
    srv = make_server(opts=["limits.data_timeout=2"])
    mark = srv.mark()
    with open_tx(srv) as c:
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: bare\r\n\r\nbody\n.\n")
        # no reply may come for the bare <LF>.<LF>: only the timeout
        r = c.reply(timeout=8)
        assert r.code == 421 and ids_in(r) == ["SMTP-TIMEOUT"], r
    ev = srv.wait_event("SMTP-DATA-BARE-DOT-LF", after=mark)[0]
    assert ev["sev"] == "warning", ev
    assert_dropped(srv, mark, "SMTP-TIMEOUT")
    srv.assert_serves()


def test_smuggling_attempt_is_one_message(make_server):
    """<LF>.<LF> followed by a second envelope: all of it is data of the
    first message, nothing is taken as commands."""
    srv = make_server(opts=["limits.data_timeout=2"])
    mark = srv.mark()
    with open_tx(srv) as c:
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: smuggle\r\n\r\nbody\n.\nMAIL FROM:<evil@example.org>\n"
               b"RCPT TO:<bob@example.test>\nDATA\n")
        r = c.reply(timeout=8)
        assert r.code == 421 and ids_in(r) == ["SMTP-TIMEOUT"], r
    # one transaction only (the smuggled envelope was data), dropped
    assert_dropped(srv, mark, "SMTP-TIMEOUT")
    assert len(srv.events("SESSION-MAIL", after=mark)) == 1
    assert srv.maildir("bob") == []
    srv.assert_serves()


def test_bare_lf_dot_crlf_variants_not_end(make_server):
    """<CR>.<CR>, <LF>.<CR><LF> and <CR><LF>.<LF> do not end data either;
    the real CRLF.CRLF afterwards does, and the text before is kept."""
    srv = make_server()
    with open_tx(srv) as c:
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: variants\r\n\r\na\r.\rb\r\nc\n.\r\nd\r\n.\ne\r\n.\r\n")
        r = c.reply()
        assert r.code == 250, r
    f = srv.wait_mail("alice")[0]
    rest = split_delivered(f.read_bytes())[3]
    assert b"e\r\n" in rest and b"d\r\n" in rest, rest


# -------------------------------------------------------------- recipients

def test_too_many_recipients(make_server):
    srv = make_server(opts=["limits.recipients=3"])
    with open_tx(srv, rcpts=["alice@example.test", "bob@example.test",
                             "carol@example.test"]) as c:
        r = c.cmd("RCPT TO:<postmaster@example.test>")
        assert r.code == 452 and r.text.startswith("4.5.3"), r
        assert ids_in(r) == ["RCPT-TOO-MANY"], r
        assert c.cmd("DATA").code == 354
        c.send(make_message("three") + b".\r\n")
        assert c.reply().code == 250
        c.cmd("QUIT")
    for u in ("alice", "bob", "carol"):
        srv.wait_mail(u)
    # the message carries three recipients, and its spool file is removed
    # only once every one of them is delivered: after that no copy can come
    m = srv.wait_event("SESSION-MESSAGE", verdict="accepted")[0]
    assert m["nrcpt"] == "3", m
    srv.wait_queue_empty()
    assert srv.maildir("postmaster") == []
    srv.assert_serves()


# -------------------------------------------------------------- size

def test_size_declared_too_big(make_server):
    srv = make_server(opts=["limits.message_size=2048"])
    with srv.raw() as c:
        r = c.cmd("EHLO client.example.org")
        assert "SIZE 2048" in r.lines, r
        r = c.cmd("MAIL FROM:<sender@example.org> SIZE=2049")
        assert r.code == 552 and r.text.startswith("5.3.4"), r
        assert ids_in(r) == ["CONTENT-SIZE-EXCEEDED"], r
        assert c.cmd("MAIL FROM:<sender@example.org> SIZE=2048").code == 250
    srv.assert_serves()


@pytest.mark.parametrize("declared", ["", " SIZE=100"])
def test_size_actual_too_big(make_server, declared):
    srv = make_server(opts=["limits.message_size=2048"])
    mark = srv.mark()
    with open_tx(srv, mail_params=declared) as c:
        assert c.cmd("DATA").code == 354
        body = b"".join(b"line %04d of a message that is too long\r\n" % i
                        for i in range(200))
        c.send(dot_stuff(make_message("big", body=body)) + b".\r\n")
        r = c.reply()
        assert r.code == 552 and r.text.startswith("5.3.4"), r
        assert ids_in(r) == ["CONTENT-SIZE-EXCEEDED"], r
        # the session continues and a small message fits
        assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(make_message("small") + b".\r\n")
        assert c.reply().code == 250
    msg = srv.wait_event("SESSION-MESSAGE", after=mark, verdict="rejected")[0]
    assert msg["cause"] == "CONTENT-SIZE-EXCEEDED", msg
    assert len(srv.wait_mail("alice")) == 1
    srv.assert_serves()


def test_size_bdat_too_big(make_server):
    srv = make_server(opts=["limits.message_size=2048"])
    with open_tx(srv) as c:
        chunk = b"x" * 1500 + b"\r\n"
        c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
        r1 = c.reply()
        c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
        r2 = c.reply()
        assert 552 in (r1.code, r2.code), (r1, r2)
        bad = r1 if r1.code == 552 else r2
        assert ids_in(bad) == ["CONTENT-SIZE-EXCEEDED"], bad
        assert c.cmd("NOOP").code == 250
    srv.assert_serves()


# ------------------------------------------------------------ text lines

def test_data_line_too_long(server):
    with open_tx(server) as c:
        assert c.cmd("DATA").code == 354
        c.send(make_message("long", body=b"y" * 999 + b"\r\n") + b".\r\n")
        r = c.reply()
        assert r.code == 554 and r.text.startswith("5.6.0"), r
        assert ids_in(r) == ["SMTP-DATA-LINE-TOO-LONG"], r
        assert "998" in r.text
        # 998 is fine
        assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        assert c.cmd("DATA").code == 354
        msg = make_message("ok998", body=b"z" * 998 + b"\r\n")
        c.send(msg + b".\r\n")
        assert c.reply().code == 250
    f = server.wait_mail("alice")[0]
    assert split_delivered(f.read_bytes())[3] == msg
    server.assert_serves()


def test_bare_lf_normalized(server):
    with open_tx(server) as c:
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: lf\r\nMessage-ID: <lf@example.org>\n\nline a\nline b\r\n.\r\n")
        r = c.reply()
        assert r.code == 250, r
    f = server.wait_mail("alice")[0]
    rest = split_delivered(f.read_bytes())[3]
    assert rest == (b"Subject: lf\r\nMessage-ID: <lf@example.org>\r\n\r\n"
                    b"line a\r\nline b\r\n"), rest


def test_bare_lf_reject(make_server):
    srv = make_server(opts=["smtp.bare_lf=reject"])
    with open_tx(srv) as c:
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: lf\r\n\r\nline a\nline b\r\n.\r\n")
        r = c.reply()
        assert r.code == 554 and r.text.startswith("5.6.0"), r
        assert ids_in(r) == ["CONTENT-BARE-LF"], r
        assert c.cmd("NOOP").code == 250
    srv.wait_event("CONTENT-BARE-LF")
    srv.assert_serves()


# -------------------------------------------------------------- hops

def hops_message(n):
    rec = b"".join(b"Received: from relay%d.example.org by relay%d.example.org;"
                   b" Sat, 23 Nov 2024 12:00:00 +0000\r\n" % (i, i + 1)
                   for i in range(n))
    return rec + make_message("hops%d" % n)


def test_too_many_hops(make_server):
    srv = make_server(opts=["limits.hops=3"])
    with open_tx(srv) as c:
        assert c.cmd("DATA").code == 354
        c.send(hops_message(4) + b".\r\n")
        r = c.reply()
        assert r.code == 554 and r.text.startswith("5.4.0"), r
        assert ids_in(r) == ["CONTENT-TOO-MANY-HOPS"], r
        assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(hops_message(3) + b".\r\n")
        assert c.reply().code == 250
    ev = srv.wait_event("CONTENT-TOO-MANY-HOPS")[0]
    assert ev["hops"] == "4" and ev["limit"] == "3", ev
    srv.assert_serves()


def test_too_many_hops_default(server):
    with open_tx(server) as c:
        assert c.cmd("DATA").code == 354
        c.send(hops_message(101) + b".\r\n")
        r = c.reply()
        assert r.code == 554 and ids_in(r) == ["CONTENT-TOO-MANY-HOPS"], r
        assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(hops_message(100) + b".\r\n")
        assert c.reply().code == 250


# -------------------------------------------------------------- errors

def test_too_many_errors(make_server):
    srv = make_server(opts=["limits.errors=3"])
    mark = srv.mark()
    with srv.raw() as c:
        replies = []
        for i in range(5):
            try:
                replies.append(c.cmd("BOGUS%d" % i))
            except (ConnectionError, OSError):
                break
            if replies[-1].code == 421:
                break
        codes = [r.code for r in replies]
        assert codes[-1] == 421, codes
        assert codes[:-1] and set(codes[:-1]) == {500}, codes
        assert len(codes) <= 4, codes
        last = replies[-1]
        assert last.text.startswith("4.7.0") and ids_in(last) == ["SMTP-TOO-MANY-ERRORS"], last
        assert c.closed()
    end = srv.wait_event("SESSION-END", after=mark)[0]
    assert end["cause"] == "SMTP-TOO-MANY-ERRORS", end
    srv.assert_serves()


def test_errors_limit_off(make_server):
    srv = make_server(opts=["limits.errors=0"])
    with srv.raw() as c:
        for i in range(30):
            assert c.cmd("BOGUS").code == 500
        assert c.cmd("NOOP").code == 250


# ---------------------------------------------------------- connections

def test_connection_limit(make_server):
    srv = make_server(opts=["limits.connections=2"])
    a, b = srv.raw(), srv.raw()
    try:
        assert a.greeting.code == 220 and b.greeting.code == 220
        with srv.raw() as c:
            g = c.greeting
            assert g.code == 421 and g.text.startswith("4.3.2"), g
            assert ids_in(g) == ["NET-SERVER-BUSY"], g
            assert c.closed()
        ev = srv.wait_event("NET-SERVER-BUSY")[0]
        assert ev["limit"] == "2", ev
        a.cmd("QUIT")
        a.close()
        srv.wait_event("SESSION-END")
        deadline = time.monotonic() + 5
        while True:
            with srv.raw() as c:
                if c.greeting.code == 220:
                    break
            assert time.monotonic() < deadline, "slot not freed"
            time.sleep(0.1)
    finally:
        a.close()
        b.close()


def test_connection_limit_per_ip(make_server):
    srv = make_server(opts=["limits.connections_per_ip=2"])
    a, b = srv.raw(), srv.raw()
    try:
        with srv.raw() as c:
            g = c.greeting
            assert g.code == 421 and g.text.startswith("4.7.0"), g
            assert ids_in(g) == ["POLICY-CONCURRENCY-LIMIT"], g
            assert c.closed()
        # another address is served
        srv.assert_serves(source="127.0.0.2")
        ev = srv.wait_event("POLICY-CONCURRENCY-LIMIT")[0]
        assert ev["client"] == "127.0.0.1" and ev["limit"] == "2", ev
    finally:
        a.close()
        b.close()
    deadline = time.monotonic() + 5
    while True:
        with srv.raw() as c:
            if c.greeting.code == 220:
                break
        assert time.monotonic() < deadline
        time.sleep(0.1)


# ---------------------------------------------------------- descriptors

def _nofile(n):
    def f():
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    return f


def test_fd_exhaustion(make_server):
    """With a small open-file limit, more clients than descriptors: the
    listener pauses (RESOURCE-FD-EXHAUSTED) and serves again once
    descriptors are free."""
    srv = make_server(opts=["server.loops=1"], preexec=_nofile(48))
    clients = []
    try:
        for _ in range(70):
            try:
                s = socket.create_connection(("127.0.0.1", srv.port), timeout=2)
            except OSError:
                break
            clients.append(s)
            if srv.events("RESOURCE-FD-EXHAUSTED"):
                break
        srv.wait_event("RESOURCE-FD-EXHAUSTED", timeout=5)
    finally:
        for s in clients:
            s.close()
    assert srv.alive()
    deadline = time.monotonic() + 10
    while True:
        try:
            srv.assert_serves()
            break
        except (AssertionError, OSError, ConnectionError):
            assert time.monotonic() < deadline, "not serving after fd exhaustion"
            time.sleep(0.2)
