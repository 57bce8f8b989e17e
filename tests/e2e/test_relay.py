"""
test_relay.py - relaying: only server.trusted_networks may send to domains
that are not local (issue 2 points 3 and 4).
"""

import re


def ids_in(reply):
    return re.findall(r"\[([A-Z0-9-]+)\]\s*$", reply.last)


def rcpt(server, source, addr):
    with server.raw(source=source) as c:
        assert c.cmd("EHLO client.example.org").code == 250
        assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
        r = c.cmd("RCPT TO:<%s>" % addr)
        c.cmd("QUIT")
        return r


def test_relay_denied_from_untrusted(server):
    r = rcpt(server, "127.0.0.2", "someone@other.example")
    assert r.code == 550 and r.text.startswith("5.7.1"), r
    assert ids_in(r) == ["ACCESS-RELAY-DENIED"], r
    assert "<someone@other.example>" in r.text
    ev = server.wait_event("ACCESS-RELAY-DENIED")[0]
    assert ev["client"] == "127.0.0.2", ev
    assert ev["sev"] == "notice", ev
    # local mail from the same client is fine
    assert rcpt(server, "127.0.0.2", "alice@example.test").code == 250


def test_relay_allowed_from_trusted(server):
    r = rcpt(server, "127.0.0.1", "someone@other.example")
    assert r.code == 250, r


def test_relay_subdomain_is_not_local(server):
    r = rcpt(server, "127.0.0.2", "alice@sub.example.test")
    assert r.code == 550 and ids_in(r) == ["ACCESS-RELAY-DENIED"], r
    r = rcpt(server, "127.0.0.2", "alice@example.test.other.example")
    assert r.code == 550 and ids_in(r) == ["ACCESS-RELAY-DENIED"], r


def test_trusted_networks_override(make_server):
    srv = make_server(opts=["server.trusted_networks=127.0.0.2/32"])
    assert rcpt(srv, "127.0.0.2", "someone@other.example").code == 250
    r = rcpt(srv, "127.0.0.1", "someone@other.example")
    assert r.code == 550 and ids_in(r) == ["ACCESS-RELAY-DENIED"], r
