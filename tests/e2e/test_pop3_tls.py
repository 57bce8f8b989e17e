"""
test_pop3_tls.py - TLS for POP3 (issue 4 point 1, issue 3 point 5): STLS
(RFC 2595 4), implicit TLS on role pop3s (RFC 8314), plaintext logins
refused without TLS (RFC 2595 2.1), the STLS injection attack, failed and
timed-out handshakes, and SESSION-END's tls key.

Every test client is on loopback. Since issue 7 point 7 loopback is no
longer exempt from the plaintext rule by default (auth.plaintext_on_loopback
= no, one option for SMTP and POP3, overridable per listener): the tests
that log in in clear turn it on. Clients: poplib (stls, POP3_SSL) and raw
sockets with Python's ssl.
"""

import base64
import poplib
import signal
import socket
import ssl
import time

from conftest import free_port, run_cli
from test_pop3 import PW, USER, Raw, deliver, ids_in
from test_tls import client_ctx, tls_server


def pop3_tls_server(make_server, conf=None, make_cert=True):
    """tls_server plus a pop3 listener (.pop3_port) and a pop3s listener
    (.pop3s_port); no delay on failed logins."""
    p, ps = free_port(), free_port()
    c = {"listen.pop3": {"address": "127.0.0.1:%d" % p, "role": "pop3"},
         "listen.pop3s": {"address": "127.0.0.1:%d" % ps, "role": "pop3s"},
         "pop3": {"fail_delay": "0"}}
    for sec, kv in (conf or {}).items():
        c.setdefault(sec, {}).update(kv)
    srv = tls_server(make_server, conf=c, make_cert=make_cert)
    srv.pop3_port, srv.pop3s_port = p, ps
    return srv


def capa(p):
    return set(p.capa())


def pop(srv):
    return poplib.POP3("127.0.0.1", srv.pop3_port, timeout=10)


def err_ids(fn, *a):
    try:
        fn(*a)
    except poplib.error_proto as e:
        return ids_in(e.args[0])
    raise AssertionError("no -ERR")


def plain_b64(user=USER, pw=PW):
    return base64.b64encode(b"\0" + user.encode() + b"\0" + pw.encode()).decode()


def assert_pop3_serves(srv):
    p = poplib.POP3_SSL("127.0.0.1", srv.pop3s_port, timeout=10, context=client_ctx())
    p.user(USER)
    p.pass_(PW)
    p.quit()


def test_stls_then_login_and_retrieve(make_server):
    srv = pop3_tls_server(make_server)
    msgs = deliver(srv, 1)
    mark = srv.mark()
    p = pop(srv)
    caps = capa(p)
    assert "STLS" in caps and "USER" not in caps, caps  # no password in clear
    assert p.stls(context=client_ctx()).startswith(b"+OK Begin TLS negotiation")
    assert p.sock.version() in ("TLSv1.2", "TLSv1.3")
    caps = capa(p)
    assert "STLS" not in caps and "USER" in caps and "SASL" in caps, caps
    p.user(USER)
    p.pass_(PW)
    resp, lines, _ = p.retr(1)
    assert resp.startswith(b"+OK")
    assert (b"\r\n".join(lines) + b"\r\n").endswith(msgs[0])
    p.quit()
    ev = srv.wait_event("TLS-ESTABLISHED", after=mark)[0]
    assert ev["version"] in ("TLSv1.2", "TLSv1.3") and ev["cipher"], ev
    end = srv.wait_event("SESSION-END", after=mark, proto="pop3")[0]
    assert end["tls"].startswith("TLSv1.") and "/" in end["tls"], end
    assert end["cause"] == "POP3-QUIT-UPDATE", end


def test_pop3s_implicit_tls(make_server):
    srv = pop3_tls_server(make_server)
    deliver(srv, 2)
    mark = srv.mark()
    p = poplib.POP3_SSL("127.0.0.1", srv.pop3s_port, timeout=10, context=client_ctx())
    assert p.getwelcome() == b"+OK mx.example.test POP3 server ready"
    caps = capa(p)
    assert "STLS" not in caps and "USER" in caps, caps
    p.user(USER)
    p.pass_(PW)
    assert p.stat()[0] == 2
    assert p.retr(2)[0].startswith(b"+OK")
    # STLS inside TLS, in the TRANSACTION state: wrong state first
    assert err_ids(p._shortcmd, "STLS") == ["POP3-SEQUENCE"]
    p.quit()
    end = srv.wait_event("SESSION-END", after=mark, proto="pop3")[0]
    assert end["tls"].startswith("TLSv1."), end
    p = poplib.POP3_SSL("127.0.0.1", srv.pop3s_port, timeout=10, context=client_ctx())
    assert err_ids(p._shortcmd, "STLS") == ["POP3-STLS-ACTIVE"]
    p.quit()


def test_stls_twice_and_after_login(make_server):
    srv = pop3_tls_server(make_server, conf={"auth": {"plaintext_on_loopback": "yes"}})
    p = pop(srv)
    p.stls(context=client_ctx())
    line = None
    try:
        p._shortcmd("STLS")
    except poplib.error_proto as e:
        line = e.args[0]
    assert line == b"-ERR Command not permitted when TLS active [POP3-STLS-ACTIVE]", line
    p.user(USER)
    p.pass_(PW)
    p.quit()
    # STLS only in the AUTHORIZATION state
    p = pop(srv)
    p.user(USER)
    p.pass_(PW)
    assert err_ids(p._shortcmd, "STLS") == ["POP3-SEQUENCE"]
    p.quit()
    srv.wait_event("POP3-STLS-ACTIVE")


def test_injection_after_stls_discarded(make_server):
    """Commands sent in clear after STLS, in the same packet, must not be
    run inside the TLS session (the CVE-2011-0411 pattern)."""
    srv = pop3_tls_server(make_server)
    deliver(srv, 1)
    mark = srv.mark()
    with socket.create_connection(("127.0.0.1", srv.pop3_port), timeout=10) as raw:
        f = raw.makefile("rb")
        assert f.readline().startswith(b"+OK")
        raw.sendall(b"STLS\r\nUSER " + USER.encode() + b"\r\nPASS " + PW.encode() + b"\r\n")
        assert f.readline() == b"+OK Begin TLS negotiation\r\n"
        with client_ctx().wrap_socket(raw) as t:
            tf = t.makefile("rb")
            t.sendall(b"STAT\r\n")
            r = tf.readline()
            # the first reply over TLS answers STAT, in AUTHORIZATION: the
            # injected USER/PASS never ran
            assert r.startswith(b"-ERR") and b"[POP3-SEQUENCE]" in r, r
            t.sendall(b"PASS " + PW.encode() + b"\r\n")
            r = tf.readline()
            assert b"[POP3-SEQUENCE]" in r, r          # no USER is pending
            t.sendall(b"QUIT\r\n")
            assert tf.readline().startswith(b"+OK")
    assert not srv.events("POP3-LOGIN", after=mark)


def test_plaintext_refused_before_stls_allowed_after(make_server):
    """The default (auth.plaintext_on_loopback = no): loopback too."""
    srv = pop3_tls_server(make_server)
    deliver(srv, 1)
    p = pop(srv)
    caps = capa(p)
    assert "STLS" in caps, caps
    assert "USER" not in caps and "SASL" not in caps, caps
    try:
        p.user(USER)
        raise AssertionError("USER accepted")
    except poplib.error_proto as e:
        assert e.args[0] == (b"-ERR [AUTH] Plaintext login disabled; use SASL or STLS"
                             b" [POP3-PLAINTEXT-DISABLED]"), e
    assert err_ids(p._shortcmd, "AUTH PLAIN " + plain_b64()) == ["POP3-PLAINTEXT-DISABLED"]
    ev = srv.wait_event("POP3-PLAINTEXT-DISABLED")[0]
    assert ev["client"] == "127.0.0.1" and ev["user"] == USER, ev
    p.stls(context=client_ctx())
    caps = capa(p)
    assert "USER" in caps and "SASL" in caps and "STLS" not in caps, caps
    assert p._shortcmd("AUTH PLAIN " + plain_b64()).startswith(b"+OK")
    assert p.stat()[0] == 1
    p.quit()
    # the same on pop3s: TLS from the start
    p = poplib.POP3_SSL("127.0.0.1", srv.pop3s_port, timeout=10, context=client_ctx())
    assert "USER" in capa(p)
    p.user(USER)
    p.pass_(PW)
    p.quit()


def test_plaintext_on_loopback_when_allowed(make_server):
    """auth.plaintext_on_loopback = yes, or the listener's own
    plaintext_on_loopback = yes, lets a loopback client log in in clear;
    the listener's no wins over the global yes."""
    for conf in ({"auth": {"plaintext_on_loopback": "yes"}},
                 {"listen.pop3": {"plaintext_on_loopback": "yes"}}):
        srv = pop3_tls_server(make_server, conf=conf)
        p = pop(srv)
        assert "USER" in capa(p)
        p.user(USER)
        p.pass_(PW)
        p.quit()
        end = srv.wait_event("SESSION-END", proto="pop3")[0]
        assert end["tls"] == "no", end
        srv.stop()
    srv = pop3_tls_server(make_server, conf={"auth": {"plaintext_on_loopback": "yes"},
                                             "listen.pop3": {"plaintext_on_loopback": "no"}})
    p = pop(srv)
    assert "USER" not in capa(p)
    assert err_ids(p.user, USER) == ["POP3-PLAINTEXT-DISABLED"]
    p.quit()


def test_require_tls_listener(make_server):
    """require_tls refuses logins before STLS even where loopback is
    allowed in clear."""
    srv = pop3_tls_server(make_server, conf={"listen.pop3": {"require_tls": "yes",
                                                             "plaintext_on_loopback": "yes"}})
    p = pop(srv)
    caps = capa(p)
    assert "USER" not in caps and "SASL" not in caps and "STLS" in caps, caps
    assert err_ids(p.user, USER) == ["POP3-TLS-REQUIRED"]
    assert err_ids(p._shortcmd, "AUTH PLAIN " + plain_b64()) == ["POP3-TLS-REQUIRED"]
    ev = srv.wait_event("POP3-TLS-REQUIRED")[0]
    assert ev["cmd"] == "USER", ev
    p.stls(context=client_ctx())
    p.user(USER)
    p.pass_(PW)
    p.quit()


def test_without_tls_configured(make_server):
    port = free_port()
    srv = make_server(conf={"listen.pop3": {"address": "127.0.0.1:%d" % port,
                                            "role": "pop3"}})
    p = poplib.POP3("127.0.0.1", port, timeout=10)
    caps = capa(p)
    assert "STLS" not in caps and "USER" in caps, caps
    assert err_ids(p._shortcmd, "STLS") == ["POP3-SYNTAX"]
    p.user(USER)
    p.pass_(PW)
    p.quit()


def test_broken_context(make_server):
    """A pop3 listener (no require_tls) starts with a broken pair: STLS is
    not offered, and plaintext where the listener allows it. (A pop3s listener would not
    start at all: test_tls.py test_listener_needing_tls_without_certificate.)"""
    port = free_port()
    srv = make_server(conf={"tls": {"cert_file": "tls/cert.pem", "key_file": "tls/key.pem"},
                            "listen.pop3": {"address": "127.0.0.1:%d" % port,
                                            "role": "pop3", "plaintext_on_loopback": "yes"}})
    srv.pop3_port = port
    srv.wait_event("TLS-CONTEXT-INIT-FAILED")
    p = pop(srv)
    assert "STLS" not in capa(p)
    try:
        p._shortcmd("STLS")
        raise AssertionError("STLS accepted")
    except poplib.error_proto as e:
        assert e.args[0] == (b"-ERR [SYS/TEMP] TLS not available, try again later"
                             b" [POP3-STLS-UNAVAILABLE]"), e
    p.user(USER)
    p.pass_(PW)
    p.quit()
    # fixed by a reload
    r = run_cli("make-cert", "-c", str(srv.config))
    assert r.returncode == 0, r.stderr
    mark = srv.mark()
    srv.signal(signal.SIGHUP)
    srv.wait_event("CONFIG-RELOADED", after=mark)
    p = pop(srv)
    assert "STLS" in capa(p)
    p.stls(context=client_ctx())
    p.user(USER)
    p.pass_(PW)
    p.quit()


def test_handshake_failures_logged_server_serves(make_server):
    srv = pop3_tls_server(make_server)
    mark = srv.mark()
    # garbage on the pop3s port
    with socket.create_connection(("127.0.0.1", srv.pop3s_port), timeout=10) as raw:
        raw.sendall(b"USER this is not TLS\r\n" * 20)
        raw.settimeout(5)
        try:
            while raw.recv(4096):
                pass
        except OSError:
            pass
    ev = srv.wait_event("TLS-HANDSHAKE-FAILED", after=mark)[0]
    assert ev["client"] == "127.0.0.1" and ev["err"], ev
    # an old protocol after STLS
    mark = srv.mark()
    with socket.create_connection(("127.0.0.1", srv.pop3_port), timeout=10) as raw:
        f = raw.makefile("rb")
        f.readline()
        raw.sendall(b"STLS\r\n")
        assert f.readline().startswith(b"+OK")
        ctx = client_ctx(max_version=ssl.TLSVersion.TLSv1_1,
                         min_version=ssl.TLSVersion.TLSv1)
        try:
            ctx.set_ciphers("ALL:@SECLEVEL=0")
        except ssl.SSLError:
            pass
        try:
            with ctx.wrap_socket(raw) as t:
                t.recv(100)
        except (ssl.SSLError, ConnectionError, OSError):
            pass
    srv.wait_event("TLS-HANDSHAKE-FAILED", after=mark)
    end = srv.wait_event("SESSION-END", after=mark, proto="pop3")[0]
    assert end["cause"] == "TLS-HANDSHAKE-FAILED", end
    assert srv.alive()
    assert_pop3_serves(srv)
    srv.assert_serves()


def test_handshake_timeout(make_server):
    srv = pop3_tls_server(make_server, conf={"tls": {"handshake_timeout": "1"}})
    for port, stls in ((srv.pop3s_port, False), (srv.pop3_port, True)):
        mark = srv.mark()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            if stls:
                f = raw.makefile("rb")
                f.readline()
                raw.sendall(b"STLS\r\n")
                assert f.readline().startswith(b"+OK")
            raw.settimeout(8)
            t0 = time.monotonic()
            assert raw.recv(100) == b""      # closed by the server, no reply
            assert time.monotonic() - t0 < 6
        ev = srv.wait_event("TLS-HANDSHAKE-FAILED", after=mark)[0]
        assert "timeout" in ev["err"], ev
    assert_pop3_serves(srv)


def test_pipelining_over_tls(make_server):
    """Many commands in one TLS record: the ones OpenSSL holds decrypted
    after a read are answered without a further socket event."""
    srv = pop3_tls_server(make_server)
    deliver(srv, 2)
    with socket.create_connection(("127.0.0.1", srv.pop3s_port), timeout=10) as raw:
        with client_ctx().wrap_socket(raw) as t:
            f = t.makefile("rb")
            assert f.readline().startswith(b"+OK")
            t.sendall(("USER %s\r\nPASS %s\r\n" % (USER, PW)).encode() + b"STAT\r\n" * 200
                      + b"QUIT\r\n")
            assert f.readline().startswith(b"+OK Send")
            assert f.readline().startswith(b"+OK " + USER.encode())
            for _ in range(200):
                assert f.readline().startswith(b"+OK 2 ")
            assert f.readline().startswith(b"+OK")
