"""
test_open_relay.py - open-relay tricks (issue 4 point 4): every trick in
TRICKS, sent from an untrusted address (127.0.0.2), must be refused at RCPT
with a 5xx and a known ID, must be logged with client=127.0.0.2, and must
leave nothing in the spool or in any Maildir. The same table sent from a
trusted address (127.0.0.1) shows that the test can tell the difference:
plain foreign recipients are then accepted, the syntax tricks still get 553.
ORCPT names the original recipient only and never routes.

One server serves the whole untrusted table (a fresh connection per trick);
the trusted runs and the DATA checks use servers of their own, so that a
relayed message cannot hide a leak in the shared one.
"""

import re
import time

import pytest

from conftest import Server, make_message, split_delivered

UNTRUSTED = "127.0.0.2"
TRUSTED = "127.0.0.1"
SENDER = "sender@example.org"          # foreign, so anti-spoofing stays out

RELAY = "ACCESS-RELAY-DENIED"
SYNTAX = "RCPT-SYNTAX"
UNKNOWN = "RCPT-UNKNOWN-USER"
ARG = "SMTP-ARG-SYNTAX"                # no angle brackets at all (501 5.5.2)
UTF8REQ = "SMTP-UTF8-REQUIRED"         # UTF-8 without SMTPUTF8 (553 5.6.7)

# IDs that are a refusal of a relay attempt. ARG and UTF8REQ are refusals
# too, but only the cases that name them may get them.
REFUSALS = {RELAY, SYNTAX, UNKNOWN}

U8 = " SMTPUTF8"

# A foreign domain just inside RFC 5321 4.5.3.1.3 (path <= 254 octets
# with "user@"), one past 255 octets, and one with a 64-octet label.
LONG_OK = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 45]) + ".example"
LONG_BAD = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 63]) + ".example"
LABEL_64 = "x" * 64 + ".example"
assert len("user@" + LONG_OK) <= 254 and len(LONG_BAD) > 255

# (name, RCPT argument after "RCPT TO:", MAIL parameters, expected ID from
# an untrusted client). The expected ID documents today's behaviour; the
# security property checked first is only "refused with one of REFUSALS".
TRICKS = [
    # --- %-hack (RFC 5321 2.3.11 / 3.6.1: not honoured)
    ("percent", "<user%foreign.example@example.test>", "", UNKNOWN),
    ("percent-known-user", "<alice%foreign.example@example.test>", "", UNKNOWN),
    ("percent-double", "<user%foreign.example%other.example@example.test>", "", UNKNOWN),
    ("percent-to-literal", "<user%foreign.example@[127.0.0.1]>", "", RELAY),
    ("percent-to-hostname", "<user%foreign.example@mx.example.test>", "", RELAY),
    ("percent-in-domain", "<user@foreign.example%example.test>", "", SYNTAX),
    ("percent-trailing-dot", "<user%foreign.example@example.test.>", "", SYNTAX),
    # --- quoted local parts holding @ or %
    ("quoted-at", '<"user@foreign.example"@example.test>', "", UNKNOWN),
    ("quoted-at-known-user", '<"alice@foreign.example"@example.test>', "", UNKNOWN),
    ("quoted-percent", '<"user%foreign.example"@example.test>', "", UNKNOWN),
    ("quoted-escaped-at", '<"user\\@foreign.example"@example.test>', "", UNKNOWN),
    ("quoted-brackets", '<"<user@foreign.example>"@example.test>', "", UNKNOWN),
    ("escaped-at-unquoted", "<user\\@foreign.example@example.test>", "", SYNTAX),
    ("quoted-domain", '<user@"foreign.example">', "", SYNTAX),
    # --- several @
    ("at-foreign-at-local", "<user@foreign.example@example.test>", "", SYNTAX),
    ("at-local-at-foreign", "<user@example.test@foreign.example>", "", SYNTAX),
    ("double-at", "<user@@foreign.example>", "", SYNTAX),
    ("double-at-local", "<user@@example.test>", "", SYNTAX),
    ("quoted-local-domain-foreign", '<"user@example.test"@foreign.example>', "", RELAY),
    # --- source routes (RFC 5321 4.1.1.3, C: the route is ignored)
    ("route-through-us", "<@example.test:user@foreign.example>", "", RELAY),
    ("route-list", "<@example.test,@other.example:user@foreign.example>", "", RELAY),
    ("route-hostname", "<@mx.example.test:user@foreign.example>", "", RELAY),
    ("route-literal", "<@[127.0.0.1]:user@foreign.example>", "", RELAY),
    ("route-to-postmaster", "<@foreign.example:postmaster>", "", SYNTAX),
    ("route-no-colon", "<@example.test,user@foreign.example>", "", SYNTAX),
    # --- bang paths (UUCP)
    ("bang", "<foreign.example!user@example.test>", "", UNKNOWN),
    ("bang-known-user", "<foreign.example!alice@example.test>", "", UNKNOWN),
    ("bang-percent", "<foreign.example!user%other.example@example.test>", "", UNKNOWN),
    ("bang-to-hostname", "<foreign.example!user@mx.example.test>", "", RELAY),
    # --- trailing dots
    ("trailing-dot", "<user@foreign.example.>", "", SYNTAX),
    ("trailing-dots", "<user@foreign.example..>", "", SYNTAX),
    ("trailing-dot-local-domain", "<alice@example.test.>", "", SYNTAX),
    # --- our own host name and IP literals (not local domains)
    ("literal-127.0.0.1", "<user@[127.0.0.1]>", "", RELAY),
    ("literal-127.0.0.2", "<user@[127.0.0.2]>", "", RELAY),
    ("literal-ipv6-loopback", "<user@[IPv6:::1]>", "", RELAY),
    ("literal-foreign", "<user@[192.0.2.1]>", "", RELAY),
    ("literal-general", "<user@[foreign:example]>", "", SYNTAX),
    ("literal-hostname", "<user@[mx.example.test]>", "", SYNTAX),
    ("hostname", "<user@mx.example.test>", "", RELAY),
    ("hostname-known-user", "<alice@mx.example.test>", "", RELAY),
    ("hostname-case", "<user@MX.Example.Test>", "", RELAY),
    ("localhost", "<user@localhost>", "", RELAY),
    ("subdomain", "<alice@sub.example.test>", "", RELAY),
    ("local-as-prefix", "<alice@example.test.foreign.example>", "", RELAY),
    # --- case mixes
    ("upper", "<USER@FOREIGN.EXAMPLE>", "", RELAY),
    ("mixed", "<User@Foreign.Example>", "", RELAY),
    ("postmaster-foreign", "<postmaster@foreign.example>", "", RELAY),
    ("postmaster-foreign-upper", "<POSTMASTER@FOREIGN.EXAMPLE>", "", RELAY),
    ("postmaster-foreign-space", " <Postmaster@foreign.example>", "", RELAY),
    # --- spaces, brackets, comments
    ("space-after-open", "< user@foreign.example>", "", SYNTAX),
    ("space-before-close", "<user@foreign.example >", "", SYNTAX),
    ("space-before-at", "<user @foreign.example>", "", SYNTAX),
    ("space-after-at", "<user@ foreign.example>", "", SYNTAX),
    ("nested-brackets", "<<user@foreign.example>>", "", ARG),
    ("no-brackets", "user@foreign.example", "", ARG),
    ("text-after-bracket", "<user@foreign.example>,<alice@example.test>", "", ARG),
    ("comment-local", "<user(c)@foreign.example>", "", SYNTAX),
    ("comment-domain", "<user@foreign.example(example.test)>", "", SYNTAX),
    ("comma-list", "<user@foreign.example,alice@example.test>", "", SYNTAX),
    # --- SMTPUTF8 / IDN
    ("smtputf8", "<user@foreign.example>", U8, RELAY),
    ("utf8-local", "<jos\u00e9@foreign.example>", U8, RELAY),
    ("utf8-local-no-smtputf8", "<jos\u00e9@foreign.example>", "", UTF8REQ),
    ("utf8-domain", "<user@b\u00fccher.example>", U8, RELAY),
    ("homoglyph-local-domain", "<alice@ex\u0430mple.test>", U8, RELAY),
    ("ideographic-dot", "<alice@example\u3002test>", U8, RELAY),
    ("punycode", "<user@xn--bcher-kva.example>", "", RELAY),
    # --- lengths
    ("long-domain", "<user@%s>" % LONG_OK, "", RELAY),
    ("too-long-domain", "<user@%s>" % LONG_BAD, "", SYNTAX),
    ("label-64", "<user@%s>" % LABEL_64, "", SYNTAX),
    # --- ORCPT on a foreign recipient does not make it local
    ("orcpt-local-on-foreign", "<user@foreign.example> ORCPT=rfc822;alice@example.test", "", RELAY),
]

IDS = [t[0] for t in TRICKS]
assert len(set(IDS)) == len(IDS) and len(TRICKS) >= 40


def ids_in(reply):
    return re.findall(r"\[([A-Z0-9-]+)\]\s*$", reply.last)


def allowed_for(expected):
    return REFUSALS | {expected}


# ---------------------------------------------------------------- helpers

def stored_files(srv):
    """Every file in the spool's incoming and queue folders and under the
    mail root, as paths relative to the server folder."""
    out = []
    for top in (srv.spool / "incoming", srv.spool / "queue", srv.mail):
        if top.is_dir():
            out += sorted(str(p.relative_to(srv.dir)) for p in top.rglob("*")
                          if p.is_file())
    return out


def end_session(srv, c, mark, source):
    """QUIT, then wait until the server logged the end of that session."""
    try:
        c.cmd("QUIT")
    except (OSError, ConnectionError):
        pass
    c.close()
    srv.wait_event("SESSION-END", after=mark, client=source)


def try_rcpt(srv, source, rcpt_arg, mail_params=""):
    """One session: EHLO, MAIL FROM a foreign sender, the RCPT. If the RCPT
    is accepted, DATA is sent too, so that a relay can be seen in the
    spool. Returns (rcpt reply, DATA reply or None, log mark)."""
    mark = srv.mark()
    c = srv.raw(source=source)
    try:
        assert c.cmd("EHLO client.example.org").code == 250
        r = c.cmd("MAIL FROM:<%s>%s" % (SENDER, mail_params))
        assert r.code == 250, r
        rr = c.cmd("RCPT TO:" + rcpt_arg)
        dr = None
        if rr.code < 400:
            d = c.cmd("DATA")
            dr = d
            if d.code == 354:
                c.send(make_message("relay-probe") + b".\r\n")
                dr = c.reply()
    finally:
        end_session(srv, c, mark, source)
    return rr, dr, mark


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def relay_server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("open_relay"), name="untrusted")
    srv.start()
    yield srv
    srv.close()


# ---------------------------------------------------------------- untrusted

@pytest.mark.parametrize("name,rcpt_arg,params,expected", TRICKS, ids=IDS)
def test_trick_refused_from_untrusted(relay_server, name, rcpt_arg, params, expected):
    srv = relay_server
    before = stored_files(srv)
    line = "RCPT TO:" + rcpt_arg
    rr, dr, mark = try_rcpt(srv, UNTRUSTED, rcpt_arg, params)
    got = ids_in(rr)

    # 1. the security property: refused, permanently, for a known reason
    if rr.code < 400:
        # no pause for the report: a 250 to DATA comes only after the spool
        # file is in queue/, so the listing below already shows the relay
        pytest.fail("OPEN RELAY from %s: MAIL FROM:<%s>%s / %r -> %r; DATA -> %r; "
                    "stored now: %r" % (UNTRUSTED, SENDER, params, line, rr.last,
                                        dr.last if dr else None,
                                        sorted(set(stored_files(srv)) - set(before))))
    assert rr.code >= 500, "%r -> %r (temporary, not a refusal)" % (line, rr.last)
    assert len(got) == 1 and got[0] in allowed_for(expected), \
        "%r -> %r: ID not one of %r" % (line, rr.last, sorted(allowed_for(expected)))

    # 2. the documented reply for this trick
    assert got == [expected], "%r -> %r, expected [%s]" % (line, rr.last, expected)
    if expected == RELAY:
        assert rr.code == 550 and rr.text.startswith("5.7.1"), rr
        assert "Relay access denied" in rr.text, rr
    elif expected == SYNTAX:
        assert rr.code == 553 and rr.text.startswith("5.1.3"), rr
    elif expected == UNKNOWN:
        assert rr.code == 550 and rr.text.startswith("5.1.1"), rr

    # 3. the refusal is logged with the untrusted client
    ev = srv.wait_event(expected, after=mark, client=UNTRUSTED)
    assert len(ev) == 1, ev
    if expected == RELAY:
        assert ev[0].get("from") == "<%s>" % SENDER, ev[0]
        assert ev[0].get("rcpt"), ev[0]
    summ = srv.events("SESSION-RCPT", after=mark)
    assert [e.get("cause") for e in summ] == [expected], summ

    # 4. nothing stored anywhere, nothing deferred for delivery
    assert stored_files(srv) == before, stored_files(srv)
    assert not srv.events("DELIVERY-DEFERRED", after=mark)
    assert not srv.events("DELIVERY-SUCCESS", after=mark)
    assert not srv.events("SESSION-MESSAGE", after=mark)


def test_untrusted_server_stored_nothing(relay_server):
    """After the whole table: no file in the spool or under the mail root,
    and one refusal event per trick from 127.0.0.2 (run after the table)."""
    srv = relay_server
    assert stored_files(srv) == []
    n = sum(len(srv.events(i, client=UNTRUSTED))
            for i in REFUSALS | {ARG, UTF8REQ})
    ran = len(srv.events("SESSION-END", client=UNTRUSTED))
    # every session of the table carried exactly one refused RCPT
    assert n == ran, (n, ran)
    ok = [e for e in srv.events("SESSION-RCPT") if e.get("cause") == "RCPT-OK"]
    assert ok == [], ok


# ---------------------------------------------------------------- trusted

@pytest.fixture(scope="module")
def trusted_server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("open_relay_trusted"), name="trusted")
    srv.start()
    yield srv
    srv.close()


def trusted_expectation(expected):
    """What 127.0.0.1 gets for a trick: only the relay rule changes."""
    return "RCPT-OK" if expected == RELAY else expected


@pytest.mark.parametrize("name,rcpt_arg,params,expected", TRICKS, ids=IDS)
def test_same_trick_from_trusted(trusted_server, name, rcpt_arg, params, expected):
    """Without DATA (nothing gets queued): a trusted client may relay, so the
    relay-denied tricks get 250; syntax and local tricks answer the same."""
    srv = trusted_server
    mark = srv.mark()
    c = srv.raw(source=TRUSTED)
    try:
        assert c.cmd("EHLO client.example.org").code == 250
        assert c.cmd("MAIL FROM:<%s>%s" % (SENDER, params)).code == 250
        r = c.cmd("RCPT TO:" + rcpt_arg)
    finally:
        end_session(srv, c, mark, TRUSTED)
    want = trusted_expectation(expected)
    if want == "RCPT-OK":
        assert r.code == 250 and r.text.startswith("2.1.5"), (rcpt_arg, r)
        summ = srv.events("SESSION-RCPT", after=mark)
        assert [e.get("cause") for e in summ] == ["RCPT-OK"], summ
    else:
        assert r.code >= 500 and ids_in(r) == [want], (rcpt_arg, r)
        if want == SYNTAX:
            assert r.code == 553 and r.text.startswith("5.1.3"), r
        assert srv.wait_event(want, after=mark, client=TRUSTED)
    assert not srv.events(RELAY, after=mark)


def test_trusted_relay_is_queued(make_server):
    """The spool check can see a relay: from 127.0.0.1 a message to a
    foreign address is accepted and stays queued (no outbound delivery)."""
    srv = make_server()
    rr, dr, mark = try_rcpt(srv, TRUSTED, "<user@foreign.example>")
    assert rr.code == 250, rr
    assert dr is not None and dr.code == 250, dr
    srv.wait_event("SESSION-MESSAGE", after=mark)
    deadline = time.monotonic() + 10
    while not srv.spool_files("queue") and time.monotonic() < deadline:
        time.sleep(0.05)
    queued = [p for p in stored_files(srv) if p.startswith("spool/queue/")]
    assert queued, stored_files(srv)
    blob = b"".join((srv.dir / p).read_bytes() for p in queued)
    assert b"user@foreign.example" in blob
    assert srv.maildir("user", domain="foreign.example") == []

    # the same session from 127.0.0.2 queues nothing more
    before = stored_files(srv)
    rr, dr, mark = try_rcpt(srv, UNTRUSTED, "<user@foreign.example>")
    assert rr.code == 550 and ids_in(rr) == [RELAY], rr
    assert dr is None
    assert stored_files(srv) == before


# ---------------------------------------------------------------- ORCPT

def test_orcpt_never_routes(make_server):
    """ORCPT=rfc822;user@foreign.example on a local RCPT from 127.0.0.2 is
    accepted and delivered to the local user only."""
    srv = make_server()
    mark = srv.mark()
    c = srv.raw(source=UNTRUSTED)
    try:
        assert c.cmd("EHLO client.example.org").code == 250
        assert c.cmd("MAIL FROM:<%s>" % SENDER).code == 250
        r = c.cmd("RCPT TO:<alice@example.test> ORCPT=rfc822;user@foreign.example")
        assert r.code == 250, r
        assert c.cmd("DATA").code == 354
        c.send(make_message("orcpt") + b".\r\n")
        d = c.reply()
        assert d.code == 250, d
    finally:
        end_session(srv, c, mark, UNTRUSTED)
    files = srv.wait_mail("alice")
    assert len(files) == 1
    srv.wait_queue_empty()
    rp, dt, _, _ = split_delivered(files[0].read_bytes())
    assert dt == b"Delivered-To: alice@example.test", dt
    # only alice's Maildir holds anything; the spool is empty
    assert stored_files(srv) == [str(files[0].relative_to(srv.dir))], stored_files(srv)
    assert not (srv.mail / "foreign.example").exists()
    ok = srv.events("DELIVERY-SUCCESS", after=mark)
    assert [e.get("rcpt") for e in ok] == ["<alice@example.test>"], ok
    assert not srv.events("DELIVERY-DEFERRED", after=mark)
    summ = srv.events("SESSION-RCPT", after=mark)
    assert len(summ) == 1 and summ[0].get("orcpt") == "rfc822;user@foreign.example", summ


# ---------------------------------------------------------------- pipelining

@pytest.mark.parametrize("verb", ["DATA", "BDAT"])
def test_pipelined_data_after_refused_rcpt(make_server, verb):
    """MAIL, a refused foreign RCPT and the data sent in one packet from
    127.0.0.2 (PIPELINING, RFC 2920): the data is refused with 554 5.5.1 and
    nothing is stored."""
    srv = make_server()
    mark = srv.mark()
    msg = make_message("pipelined")
    c = srv.raw(source=UNTRUSTED)
    try:
        assert c.cmd("EHLO client.example.org").code == 250
        head = ("MAIL FROM:<%s>\r\nRCPT TO:<user@foreign.example>\r\n" % SENDER).encode()
        if verb == "DATA":
            c.send(head + b"DATA\r\n")
        else:
            c.send(head + b"BDAT %d LAST\r\n" % len(msg) + msg)
        assert c.reply().code == 250
        r = c.reply()
        assert r.code == 550 and ids_in(r) == [RELAY], r
        d = c.reply()
        assert d.code == 554 and ids_in(d) == ["SMTP-NO-VALID-RCPTS"], d
        if verb == "DATA":
            # the message text that follows is read as commands, never stored
            for line in (b"Subject: relay", b"hi"):
                assert c.cmd(line).code >= 500
            assert c.cmd(b".").code >= 500
        # the session is still in order
        assert c.cmd("RSET").code == 250
    finally:
        end_session(srv, c, mark, UNTRUSTED)
    assert stored_files(srv) == []
    assert srv.wait_event(RELAY, after=mark, client=UNTRUSTED)
    assert not srv.events("DELIVERY-DEFERRED", after=mark)


# ---------------------------------------------------------------- catch-all

LOCAL_TRICKS = [t for t in TRICKS if t[3] == UNKNOWN]


def test_catch_all_keeps_tricks_local(make_server):
    """With a catch-all for example.test, the tricks whose domain is ours
    are accepted from 127.0.0.2, but only as local mail for the catch-all
    mailbox: nothing is queued for a foreign address."""
    srv = make_server(conf={"local": {"aliases": "aliases"}}, start=False)
    (srv.dir / "aliases").write_text("@example.test: bob\n", encoding="utf-8")
    srv.write_config()
    srv.start()
    mark = srv.mark()
    for name, rcpt_arg, params, _ in LOCAL_TRICKS:
        rr, dr, _m = try_rcpt(srv, UNTRUSTED, rcpt_arg, params)
        assert rr.code == 250, (name, rcpt_arg, rr)
        assert dr is not None and dr.code == 250, (name, dr)
    files = srv.wait_mail("bob", count=len(LOCAL_TRICKS))
    srv.wait_queue_empty()
    assert len(files) == len(LOCAL_TRICKS)
    assert sorted(stored_files(srv)) == sorted(str(f.relative_to(srv.dir)) for f in files)
    ok = srv.events("DELIVERY-SUCCESS", after=mark)
    assert len(ok) == len(LOCAL_TRICKS), ok
    assert {e.get("rcpt") for e in ok} == {"<bob@example.test>"}, ok
    assert not srv.events("DELIVERY-DEFERRED", after=mark)
    assert not srv.events(RELAY, after=mark)
