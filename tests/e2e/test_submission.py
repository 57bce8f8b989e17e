"""
test_submission.py - submission (issue 4 point 3) and relay for
authenticated users (point 4): on a submission listener MAIL needs AUTH
(530 5.7.0 [AUTH-REQUIRED]) and, with require_tls, STARTTLS first
(530 5.7.0 [TLS-REQUIRED]); an authenticated user's sender must be one of
its addresses (553 5.7.1 [ACCESS-SENDER-LOGIN-MISMATCH]); authenticated
users may relay. The Received field says ESMTPSA (RFC 3848).
"""

import re
import smtplib

from conftest import make_message, split_delivered
from test_tls import client_ctx, tls_server

PW = "alice-pw"


def ids_in(text):
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return re.findall(r"\[([A-Z0-9-]+)\]\s*$", text)


def submission(srv):
    s = smtplib.SMTP("127.0.0.1", srv.sub_port, timeout=10)
    s.ehlo("client.example.org")
    s.starttls(context=client_ctx())
    s.ehlo("client.example.org")
    return s


def test_submit_after_starttls_and_auth(make_server):
    srv = tls_server(make_server)
    with submission(srv) as s:
        assert "auth" in s.esmtp_features and "PLAIN" in s.esmtp_features["auth"].upper()
        code, text = s.login("alice@example.test", PW)
        assert code == 235 and text.startswith(b"2.7.0"), text
        s.sendmail("alice@example.test", ["bob@example.test"], make_message("submit"))
    f = srv.wait_mail("bob")[0]
    received = split_delivered(f.read_bytes())[2]
    assert b" with ESMTPSA id " in received, received
    end = srv.wait_event("SESSION-END", auth="alice@example.test")[0]
    assert "auth" in end["flags"].split(","), end


def test_submissions_implicit_tls_with_auth(make_server):
    srv = tls_server(make_server)
    with smtplib.SMTP_SSL("127.0.0.1", srv.subs_port, timeout=10, context=client_ctx()) as s:
        s.ehlo("client.example.org")
        s.login("alice@example.test", PW)
        s.sendmail("alice@example.test", ["bob@example.test"], make_message("implicit"))
    srv.wait_mail("bob")


def test_sender_must_be_own_address(make_server):
    srv = tls_server(make_server)
    mark = srv.mark()
    with submission(srv) as s:
        s.login("alice@example.test", PW)
        for sender in ("bob@example.test", "alice@example.org", "ceo@example.test"):
            code, text = s.docmd("MAIL FROM:<%s>" % sender)
            assert code == 553 and text.startswith(b"5.7.1"), (sender, text)
            assert ids_in(text) == ["ACCESS-SENDER-LOGIN-MISMATCH"], text
        code, text = s.docmd("MAIL FROM:<Alice@Example.Test>")
        assert code == 250, text
    ev = srv.wait_event("ACCESS-SENDER-LOGIN-MISMATCH", after=mark)[0]
    assert ev["auth"] == "alice@example.test" and ev["from"] == "<bob@example.test>", ev


def test_alias_of_the_user_is_its_address(make_server):
    srv = tls_server(make_server)
    (srv.dir / "aliases").write_text("info@example.test: alice\n")
    srv.conf.setdefault("local", {})["aliases"] = "aliases"
    srv.write_config()
    srv.restart()
    with submission(srv) as s:
        s.login("alice@example.test", PW)
        code, text = s.docmd("MAIL FROM:<info@example.test>")
        assert code == 250, text


def test_authenticated_user_may_relay(make_server):
    srv = tls_server(make_server)
    with submission(srv) as s:
        s.login("alice@example.test", PW)
        assert s.docmd("MAIL FROM:<alice@example.test>")[0] == 250
        code, text = s.docmd("RCPT TO:<friend@example.org>")
        assert code == 250, text
    # and the same without AUTH, from outside, on the mx port: refused
    with srv.raw(source="127.0.0.2") as c:
        c.cmd("EHLO client.example.org")
        assert c.cmd("MAIL FROM:<someone@example.net>").code == 250
        r = c.cmd("RCPT TO:<friend@example.org>")
        assert r.code == 550 and ids_in(r.text) == ["ACCESS-RELAY-DENIED"], r


def test_require_tls_never_takes_auth_in_clear(make_server):
    """Issue 7 point 7: a require_tls listener neither offers nor accepts
    AUTH before STARTTLS, from loopback too, even where
    plaintext_on_loopback allows clear-text AUTH (as it does on the mx
    listener here); so does a listener's own plaintext_on_loopback."""
    srv = tls_server(make_server, conf={"auth": {"plaintext_on_loopback": "yes"},
                                        "listen.sub": {"plaintext_on_loopback": "yes"}})
    mark = srv.mark()
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:   # mx: allowed
        s.ehlo("client.example.org")
        assert s.has_extn("auth"), s.esmtp_features
    with smtplib.SMTP("127.0.0.1", srv.sub_port, timeout=10) as s:
        code, text = s.ehlo("client.example.org")
        assert code == 250 and not s.has_extn("auth") and b"STARTTLS" in text, text
        for cmd in ("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wdw==", "AUTH LOGIN"):
            code, text = s.docmd(cmd)
            assert code == 530 and text.startswith(b"5.7.0"), text
            assert ids_in(text) == ["TLS-REQUIRED"], text
        s.starttls(context=client_ctx())
        s.ehlo("client.example.org")
        assert s.has_extn("auth")
        code, text = s.login("alice@example.test", PW)
        assert code == 235, text
    ev = srv.wait_event("TLS-REQUIRED", after=mark, cmd="AUTH")[0]
    assert ev["client"] == "127.0.0.1", ev
    oks = srv.events("AUTH-OK", after=mark)
    assert oks and all(e["tls"] == "yes" for e in oks), oks
