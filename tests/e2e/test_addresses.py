"""
test_addresses.py - address parsing per RFC 5321/6531: quoted local parts,
UTF-8 with and without SMTPUTF8, <>, <postmaster>, unknown users, and
source routes / %-hacks that must never widen what is accepted (issue 2
point 4).
"""

import re

import pytest

from conftest import make_message, split_delivered


def ids_in(reply):
    return re.findall(r"\[([A-Z0-9-]+)\]\s*$", reply.last)


def session(server, source=None):
    c = server.raw(source=source)
    assert c.cmd("EHLO client.example.org").code == 250
    return c


def test_unknown_user(server):
    with session(server) as c:
        c.cmd("MAIL FROM:<sender@example.org>")
        r = c.cmd("RCPT TO:<nobody@example.test>")
        assert r.code == 550 and r.text.startswith("5.1.1"), r
        assert ids_in(r) == ["RCPT-UNKNOWN-USER"]
        assert "<nobody@example.test>" in r.text
        assert r.last == ("550 5.1.1 <nobody@example.test>: Recipient address "
                          "rejected: User unknown [RCPT-UNKNOWN-USER]"), r


def test_domain_case_insensitive(server):
    with session(server) as c:
        c.cmd("MAIL FROM:<sender@example.org>")
        r = c.cmd("RCPT TO:<alice@EXAMPLE.Test>")
        assert r.code == 250, r


def test_null_sender(server):
    with session(server) as c:
        r = c.cmd("MAIL FROM:<>")
        assert r.code == 250, r
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(make_message("bounce") + b".\r\n")
        assert c.reply().code == 250
        c.cmd("QUIT")
    f = server.wait_mail("alice")[0]
    assert f.read_bytes().startswith(b"Return-Path: <>\r\n")


def test_postmaster_without_domain(server):
    with session(server) as c:
        c.cmd("MAIL FROM:<sender@example.org>")
        r = c.cmd("RCPT TO:<postmaster>")
        assert r.code == 250, r
        r = c.cmd("RCPT TO:<Postmaster>")
        assert r.code == 250, r
        assert c.cmd("DATA").code == 354
        c.send(make_message("pm") + b".\r\n")
        assert c.reply().code == 250
        c.cmd("QUIT")
    server.wait_mail("postmaster")


def test_postmaster_from_untrusted(server):
    with session(server, source="127.0.0.2") as c:
        c.cmd("MAIL FROM:<sender@example.org>")
        assert c.cmd("RCPT TO:<postmaster>").code == 250
        assert c.cmd("RCPT TO:<postmaster@example.test>").code == 250


def test_bare_local_part_is_not_postmaster(server):
    with session(server) as c:
        c.cmd("MAIL FROM:<sender@example.org>")
        r = c.cmd("RCPT TO:<alice>")
        assert r.code in (550, 553), r


def test_quoted_local_parts(server):
    with session(server) as c:
        r = c.cmd('MAIL FROM:<"john doe"@example.org>')
        assert r.code == 250, r
        # a quoted form of a plain local part is the same mailbox
        r = c.cmd('RCPT TO:<"alice"@example.test>')
        assert r.code == 250, r
        # a quoted local part with specials is one local part, not a route
        r = c.cmd('RCPT TO:<"bob@other.example"@example.test>')
        assert r.code == 550 and ids_in(r) == ["RCPT-UNKNOWN-USER"], r
        r = c.cmd('RCPT TO:<"john \\"x\\" doe"@example.test>')
        assert r.code == 550 and ids_in(r) == ["RCPT-UNKNOWN-USER"], r
        # unterminated quote
        r = c.cmd('RCPT TO:<"alice@example.test>')
        assert r.code in (501, 553), r
        assert c.cmd("DATA").code == 354
        c.send(make_message("quoted") + b".\r\n")
        assert c.reply().code == 250
        c.cmd("QUIT")
    f = server.wait_mail("alice")[0]
    assert f.read_bytes().startswith(b'Return-Path: <"john doe"@example.org>\r\n')


@pytest.mark.parametrize("addr", [
    "alice..dots@example.test", ".alice@example.test", "alice.@example.test",
    "alice@", "@example.test", "alice@exa mple.test", "alice@-bad.example.test",
    "a" * 65 + "@example.test",
])
def test_bad_recipient_syntax(server, addr):
    with session(server) as c:
        c.cmd("MAIL FROM:<sender@example.org>")
        r = c.cmd("RCPT TO:<%s>" % addr)
        assert r.code in (501, 553), (addr, r)
        assert c.cmd("NOOP").code == 250


def test_utf8_with_smtputf8(server):
    with session(server) as c:
        r = c.cmd("MAIL FROM:<j\u00f6rg@b\u00fccher.example> SMTPUTF8")
        assert r.code == 250, r
        r = c.cmd("RCPT TO:<jos\u00e9@example.test>")
        assert r.code == 250, r
        r = c.cmd("RCPT TO:<\u00fcnknown@example.test>")
        assert r.code == 550 and ids_in(r) == ["RCPT-UNKNOWN-USER"], r
        assert c.cmd("DATA").code == 354
        msg = make_message("utf8", body="Gr\u00fc\u00dfe\r\n".encode())
        c.send(msg + b".\r\n")
        assert c.reply().code == 250
        c.cmd("QUIT")
    f = server.wait_mail("jos\u00e9")[0]
    blob = f.read_bytes()
    assert blob.startswith("Return-Path: <j\u00f6rg@b\u00fccher.example>\r\n".encode())
    assert split_delivered(blob)[3] == msg


def test_utf8_without_smtputf8(server):
    with session(server) as c:
        r = c.cmd("MAIL FROM:<j\u00f6rg@example.org>")
        assert r.code == 553 and r.text.startswith("5.6.7"), r
        assert ids_in(r) == ["SMTP-UTF8-REQUIRED"]
        assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
        r = c.cmd("RCPT TO:<jos\u00e9@example.test>")
        assert r.code == 553 and r.text.startswith("5.6.7"), r
        assert ids_in(r) == ["SMTP-UTF8-REQUIRED"]


def test_invalid_utf8_refused(server):
    with session(server) as c:
        r = c.cmd(b"MAIL FROM:<j\xc3\x28rg@example.org> SMTPUTF8")
        assert r.code in (500, 501, 553), r


@pytest.mark.parametrize("addr", [
    "@example.test:bob@other.example",             # source route to a remote user
    "@a.example,@example.test:bob@other.example",
    "bob%other.example@example.test",              # %-hack
    "bob%other.example",
    "other.example!bob@example.test",              # bang path
    '"bob@other.example"@example.test',
])
def test_routes_never_relay_from_untrusted(server, addr):
    with session(server, source="127.0.0.2") as c:
        c.cmd("MAIL FROM:<sender@example.org>")
        r = c.cmd("RCPT TO:<%s>" % addr)
        assert r.code in (550, 553), (addr, r)
        assert ids_in(r)[0] in ("ACCESS-RELAY-DENIED", "RCPT-UNKNOWN-USER",
                                "RCPT-SYNTAX"), r
        if r.code == 550:
            assert r.text[:5] in ("5.7.1", "5.1.1"), r


def test_source_route_to_local_user(server):
    """RFC 5321 4.1.1.3 / appendix C: a source route is ignored; the mailbox
    after the colon is the recipient (or the route is refused outright)."""
    with session(server, source="127.0.0.2") as c:
        r = c.cmd("MAIL FROM:<@relay.example:sender@example.org>")
        assert r.code in (250, 553), r
        if r.code != 250:
            assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
        r = c.cmd("RCPT TO:<@other.example:bob@example.test>")
        assert r.code in (250, 553), r
        if r.code != 250:
            return
        assert c.cmd("DATA").code == 354
        c.send(make_message("route") + b".\r\n")
        assert c.reply().code == 250
        c.cmd("QUIT")
    server.wait_mail("bob")
