"""
test_proxy.py - the HAProxy PROXY protocol on a listener with
proxy_protocol = yes (issue 9 point 11): v1 and v2 headers sent by raw
socket from 127.0.0.1 (the proxy) carry the client's address, which then
stands for the client in the log, the Received field and the trusted
networks; a header from outside proxy.networks, a malformed, truncated,
over-long or slow one drops the connection with its NET-PROXY-* event.
"""

import ipaddress
import re
import socket
import struct
import time

import pytest

from conftest import free_port, make_message

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src, dst=None, sport=40000, dport=25):
    fam = "TCP6" if ":" in src else "TCP4"
    dst = dst or ("::1" if fam == "TCP6" else "127.0.0.1")
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst, sport, dport)).encode()


def v2(src=None, dst="127.0.0.1", sport=40000, dport=25, local=False, tlv=b""):
    """A v2 header: PROXY over TCP for src, or LOCAL (a health check)."""
    if local:
        return V2_SIG + bytes([0x20, 0x00]) + struct.pack("!H", len(tlv)) + tlv
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version == 4:
        fam, d = 0x11, ipaddress.ip_address(dst)
    else:
        fam = 0x21
        if d.version == 4:
            d = ipaddress.ip_address("::ffff:" + dst)
    body = s.packed + d.packed + struct.pack("!HH", sport, dport) + tlv
    return V2_SIG + bytes([0x21, fam]) + struct.pack("!H", len(body)) + body


def ids_in(reply):
    return re.findall(r"\[([A-Z0-9-]+)\]\s*$", reply.last)


@pytest.fixture
def proxied(make_server):
    """An mx listener behind a proxy at 127.0.0.1; clients of 192.0.2.0/24
    may relay; the proxy itself may not."""
    def factory(extra=None, **kw):
        conf = {"listen.mx": {"proxy_protocol": "yes"},
                "proxy": {"networks": "127.0.0.1/32", "timeout": "2"},
                "server": {"trusted_networks": "192.0.2.0/24"}}
        for sec, kv in (extra or {}).items():
            conf.setdefault(sec, {}).update(kv)
        return make_server(conf=conf, **kw)
    return factory


def connect(srv, header, source=None, rest=b""):
    """Sends header (and rest, in the same write) before any greeting."""
    c = srv.raw(source=source, read_greeting=False)
    c.send(header + rest)
    return c


def assert_dropped(c):
    """The connection is closed with nothing said."""
    assert c.closed(timeout=10.0)
    assert c.buf == b"", c.buf


@pytest.mark.parametrize("make_header", [v1, v2], ids=["v1", "v2"])
@pytest.mark.parametrize("client", ["198.51.100.9", "2001:db8::9"], ids=["ipv4", "ipv6"])
def test_client_from_header(proxied, make_header, client):
    srv = proxied()
    mark = srv.mark()
    # the header and the first command in one write: the command is the
    # protocol's, read after the greeting
    c = connect(srv, make_header(client, sport=40123), rest=b"EHLO client.example.org\r\n")
    assert c.reply().code == 220
    assert c.reply().code == 250
    assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
    assert c.cmd("RCPT TO:<alice@example.test>").code == 250
    assert c.cmd("DATA").code == 354
    c.send(make_message(token="proxy-" + client) + b".\r\n")
    assert c.reply().code == 250
    assert c.cmd("QUIT").code == 221
    c.close()
    ev = srv.wait_event("SESSION-START", after=mark)[0]
    assert ev["client"] == client, ev
    assert ev["port"] == "40123", ev
    assert ev["proxy"] == "127.0.0.1", ev
    end = srv.wait_event("SESSION-END", after=mark)[0]
    assert end["client"] == client, end
    assert "proxied" in end.get("flags", ""), end
    stored = srv.wait_mail("alice")[0].read_bytes()
    assert ("Received: from client.example.org (unknown [%s])" % client).encode() in stored, \
        stored[:300]


def test_trusted_client_relays_proxy_does_not(proxied):
    srv = proxied()
    c = connect(srv, v1("192.0.2.7"))
    assert c.reply().code == 220
    assert c.cmd("EHLO client.example.org").code == 250
    assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
    assert c.cmd("RCPT TO:<someone@other.example>").code == 250
    c.cmd("QUIT")
    c.close()
    # the proxy's own connection (v2 LOCAL, a health check) keeps the
    # proxy's address, which is not trusted here
    mark = srv.mark()
    c = connect(srv, v2(local=True))
    assert c.reply().code == 220
    assert c.cmd("EHLO client.example.org").code == 250
    assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
    r = c.cmd("RCPT TO:<someone@other.example>")
    assert r.code == 550 and ids_in(r) == ["ACCESS-RELAY-DENIED"], r
    c.cmd("QUIT")
    c.close()
    ev = srv.wait_event("SESSION-START", after=mark)[0]
    assert ev["client"] == "127.0.0.1" and "proxy" not in ev, ev
    assert srv.wait_event("ACCESS-RELAY-DENIED", after=mark)[0]["client"] == "127.0.0.1"
    # an untrusted client behind the proxy may not relay either
    mark = srv.mark()
    c = connect(srv, v2("203.0.113.5"))
    assert c.reply().code == 220
    assert c.cmd("EHLO client.example.org").code == 250
    assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
    r = c.cmd("RCPT TO:<someone@other.example>")
    assert r.code == 550 and ids_in(r) == ["ACCESS-RELAY-DENIED"], r
    c.close()
    assert srv.wait_event("ACCESS-RELAY-DENIED", after=mark)[0]["client"] == "203.0.113.5"


def test_not_from_proxy_networks(proxied):
    srv = proxied()
    mark = srv.mark()
    c = connect(srv, v1("192.0.2.7"), source="127.0.0.2")
    assert_dropped(c)
    ev = srv.wait_event("NET-PROXY-NOT-ALLOWED", after=mark)[0]
    assert ev["client"] == "127.0.0.2", ev
    end = srv.wait_event("SESSION-END", after=mark)[0]
    assert end["cause"] == "NET-PROXY-NOT-ALLOWED", end
    assert not srv.events("SESSION-START", after=mark)


@pytest.mark.parametrize("data,reason", [
    (b"EHLO client.example.org\r\n", "no PROXY header"),
    (b"PROXY TCP4 192.0.2.7 127.0.0.1 40000\r\n", "not four fields"),
    (b"PROXY TCP4 2001:db8::1 127.0.0.1 40000 25\r\n", "family"),
    (b"PROXY UNKNOWN " + b"a" * 200 + b"\r\n", "longer than 107"),
    (V2_SIG + b"\x21\x11\x00\x04\x01\x02\x03\x04", "shorter than its family"),
    (V2_SIG + b"\x21\x11\xff\xff", "longer than 1024"),
    (V2_SIG + b"\x31\x11\x00\x00", "version"),
], ids=["smtp", "v1-fields", "v1-family", "v1-long", "v2-short", "v2-long", "v2-version"])
def test_malformed(proxied, data, reason):
    srv = proxied()
    mark = srv.mark()
    c = connect(srv, data)
    assert_dropped(c)
    ev = srv.wait_event("NET-PROXY-MALFORMED", after=mark)[0]
    assert ev["client"] == "127.0.0.1" and reason in ev["reason"], ev
    assert srv.wait_event("SESSION-END", after=mark)[0]["cause"] == "NET-PROXY-MALFORMED"
    # the listener still serves a good header
    c = connect(srv, v1("192.0.2.7"))
    assert c.reply().code == 220
    c.close()


def test_truncated(proxied):
    srv = proxied()
    mark = srv.mark()
    c = connect(srv, v1("192.0.2.7")[:12])
    c.sock.shutdown(socket.SHUT_WR)
    assert_dropped(c)
    ev = srv.wait_event("NET-PROXY-MALFORMED", after=mark)[0]
    assert "closed before the header ended" in ev["reason"], ev
    assert ev["bytes"] == "12", ev


@pytest.mark.parametrize("data", [b"", v1("192.0.2.7")[:20], v2("192.0.2.7")[:20]],
                         ids=["nothing", "v1-part", "v2-part"])
def test_slow_header(proxied, data):
    srv = proxied(extra={"proxy": {"timeout": "1"}})
    mark = srv.mark()
    t0 = time.monotonic()
    c = connect(srv, data)
    ev = srv.wait_event("NET-PROXY-TIMEOUT", after=mark, timeout=10.0)[0]
    assert ev["bytes"] == str(len(data)), ev
    assert int(ev["elapsed_ms"]) >= 900, ev
    assert_dropped(c)
    assert time.monotonic() - t0 >= 0.9
    assert srv.wait_event("SESSION-END", after=mark)[0]["cause"] == "NET-PROXY-TIMEOUT"


def test_plain_listener_unchanged(make_server):
    """Without proxy_protocol a PROXY line is an SMTP command like any."""
    srv = make_server(conf={"proxy": {"networks": "127.0.0.1/32"}})
    mark = srv.mark()
    with srv.raw() as c:
        assert c.greeting.code == 220
        r = c.cmd(v1("192.0.2.7").rstrip(b"\r\n"))
        assert r.code == 500, r
    ev = srv.wait_event("SESSION-START", after=mark)[0]
    assert ev["client"] == "127.0.0.1" and "proxy" not in ev, ev


def test_pop3_behind_proxy(make_server):
    pop_port = free_port()
    srv = make_server(conf={
        "listen.pop": {"address": "127.0.0.1:%d" % pop_port, "role": "pop3",
                       "proxy_protocol": "yes"},
        "proxy": {"networks": "127.0.0.1/32"}})
    mark = srv.mark()
    s = socket.create_connection(("127.0.0.1", pop_port), timeout=10)
    try:
        s.sendall(v2("2001:db8::5"))
        f = s.makefile("rb")
        assert f.readline().startswith(b"+OK")
        s.sendall(b"QUIT\r\n")
        assert f.readline().startswith(b"+OK")
    finally:
        s.close()
    ev = srv.wait_event("SESSION-START", after=mark, proto="pop3")[0]
    assert ev["client"] == "2001:db8::5" and ev["proxy"] == "127.0.0.1", ev


def test_per_address_limit_counts_the_real_client(proxied):
    """limits.connections_per_ip counts the client of the PROXY header,
    not the proxy every client shares (changed on purpose by issue 9
    point 8: it used not to apply on a proxy_protocol listener)."""
    srv = proxied(extra={"limits": {"connections_per_ip": "1"}})
    mark = srv.mark()
    a = connect(srv, v1("192.0.2.7"))
    b = connect(srv, v1("192.0.2.8"))
    try:
        assert a.reply().code == 220
        assert b.reply().code == 220
        with connect(srv, v2("192.0.2.7")) as c:
            r = c.reply()
            assert r.code == 421 and r.last[4:].startswith("4.7.0 "), r
            assert ids_in(r) == ["POLICY-CONCURRENCY-LIMIT"], r
            assert c.closed()
    finally:
        a.close()
        b.close()
    ev = srv.wait_event("POLICY-CONCURRENCY-LIMIT", after=mark)[0]
    assert ev["client"] == "192.0.2.7" and ev["current"] == "1", ev
    # the slot goes with the session: 192.0.2.7 may come back
    srv.wait_event("SESSION-END", after=mark, count=3)
    with connect(srv, v1("192.0.2.7")) as c:
        assert c.reply().code == 220


def test_pop3_per_address_limit_counts_the_real_client(make_server):
    """The same for POP3: the third connection, the second of 192.0.2.7
    behind the proxy, is refused."""
    pop_port = free_port()
    srv = make_server(conf={
        "listen.pop": {"address": "127.0.0.1:%d" % pop_port, "role": "pop3",
                       "proxy_protocol": "yes"},
        "proxy": {"networks": "127.0.0.1/32"},
        "limits": {"connections_per_ip": "1"}})
    mark = srv.mark()
    socks = []
    try:
        for client in ("192.0.2.7", "192.0.2.8", "192.0.2.7"):
            s = socket.create_connection(("127.0.0.1", pop_port), timeout=10)
            socks.append(s)
            s.sendall(v1(client))
            line = s.makefile("rb").readline()
            if client == "192.0.2.8" or len(socks) == 1:
                assert line.startswith(b"+OK"), line
        assert line == (b"-ERR [SYS/TEMP] Too many connections from your address "
                        b"[POP3-TOO-MANY-CONNECTIONS]\r\n"), line
    finally:
        for s in socks:
            s.close()
    ev = srv.wait_event("POP3-TOO-MANY-CONNECTIONS", after=mark)[0]
    assert ev["client"] == "192.0.2.7" and ev["current"] == "1", ev
