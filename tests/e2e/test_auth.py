"""
test_auth.py - SMTP AUTH (RFC 4954) with PLAIN (RFC 4616) and LOGIN against
the accounts file, and the failure counters in the state store (issue 4
point 2).

Every client here is on loopback and the servers have no TLS, so the
tests of AUTH itself turn auth.plaintext_on_loopback on (issue 7 point 7
made it default to no: since then AUTH is neither offered nor accepted in
clear, from loopback too, unless a listener allows it); the tests at the
end check that rule and its per-listener override. What cannot be tested
here: AUTH refused to a client outside loopback (127.0.0.2 is loopback
too). The accounts' passwords are "<user>-pw" (conftest.py).
"""

import base64
import smtplib
import time

from conftest import DOMAIN, RawClient, free_port, run_cli
from redisfix import merge_conf, state_backend  # noqa: F401 (fixture: sqlite and redis)

ALICE = "alice@" + DOMAIN
NO_DELAY = {"auth": {"fail_delay": "0"}}


def b64(s):
    if isinstance(s, str):
        s = s.encode("utf-8")
    return base64.b64encode(s).decode("ascii")


def plain(user, pw, authzid=""):
    return b64("%s\0%s\0%s" % (authzid, user, pw))


def smtp_raw(port):
    return RawClient(port)


def ehlo(c):
    r = c.cmd("EHLO client.example.org")
    assert r.code == 250, r
    return r


def assert_reply(r, code, esc, cond=None):
    assert r.code == code, r
    assert r.last[4:].startswith(esc), r
    if cond:
        assert r.last.endswith("[%s]" % cond), r


def srv_auth(make_server, conf=None, **kw):
    c = {"auth": {"fail_delay": "0", "plaintext_on_loopback": "yes"}}
    for sec, kv in (conf or {}).items():
        c.setdefault(sec, {}).update(kv)
    return make_server(conf=c, **kw)


# ---------------------------------------------------------------- offer

def test_offered_after_ehlo_on_loopback(make_server):
    srv = srv_auth(make_server)
    with srv.smtp() as s:
        code, _ = s.ehlo("client.example.org")
        assert code == 250
        assert s.has_extn("auth")
        mechs = s.esmtp_features["auth"].upper().split()
        assert "PLAIN" in mechs and "LOGIN" in mechs
    with srv.raw() as c:
        r = c.cmd("HELO client.example.org")
        assert r.code == 250 and "AUTH" not in r.text


def test_not_before_ehlo(make_server):
    srv = srv_auth(make_server)
    with srv.raw() as c:
        assert_reply(c.cmd("AUTH PLAIN " + plain(ALICE, "alice-pw")), 503, "5.5.1")
        r = c.cmd("HELO client.example.org")
        assert r.code == 250
        # after HELO the extension was never offered
        assert_reply(c.cmd("AUTH PLAIN " + plain(ALICE, "alice-pw")), 503, "5.5.1")
    assert not srv.events("AUTH-OK")


# ---------------------------------------------------------------- success

def test_plain_initial_response_smtplib(make_server):
    srv = srv_auth(make_server)
    with srv.smtp() as s:
        s.ehlo("client.example.org")
        s.user, s.password = ALICE, "alice-pw"
        code, msg = s.auth("PLAIN", s.auth_plain, initial_response_ok=True)
        assert code == 235 and msg.startswith(b"2.7.0"), (code, msg)
        # an authenticated session still sends mail
        code, _ = s.mail("alice@" + DOMAIN)
        assert code == 250
        code, _ = s.rcpt("bob@" + DOMAIN)
        assert code == 250
        code, _ = s.data(b"Subject: x\r\n\r\nhi\r\n")
        assert code == 250
    ev = srv.wait_event("AUTH-OK", mech="PLAIN", user=ALICE)[0]
    assert ev["sev"] == "info"
    end = srv.wait_event("SESSION-END")[-1]
    assert "auth" in end.get("flags", "").split(",")


def test_plain_without_initial_response(make_server):
    srv = srv_auth(make_server)
    with srv.raw() as c:
        ehlo(c)
        r = c.cmd("AUTH PLAIN")
        assert r.code == 334 and r.raw == ["334 "], r
        assert_reply(c.cmd(plain(ALICE, "alice-pw")), 235, "2.7.0")


def test_plain_empty_initial_response_is_equals(make_server):
    # RFC 4954 4: "=" is a zero-length initial response: PLAIN's message
    # cannot be empty, so it is undecodable as PLAIN
    srv = srv_auth(make_server)
    with srv.raw() as c:
        ehlo(c)
        assert_reply(c.cmd("AUTH PLAIN ="), 501, "5.5.2", "AUTH-RESPONSE-INVALID")


def test_login_mechanism(make_server):
    srv = srv_auth(make_server)
    with srv.raw() as c:
        ehlo(c)
        r = c.cmd("AUTH LOGIN")
        assert r.raw == ["334 VXNlcm5hbWU6"], r
        r = c.cmd(b64(ALICE))
        assert r.raw == ["334 UGFzc3dvcmQ6"], r
        assert_reply(c.cmd(b64("alice-pw")), 235, "2.7.0")
    with srv.smtp() as s:  # smtplib: LOGIN with the user as initial response
        s.ehlo("client.example.org")
        s.user, s.password = "bob@" + DOMAIN, "bob-pw"
        code, _ = s.auth("LOGIN", s.auth_login, initial_response_ok=True)
        assert code == 235
    with srv.smtp() as s:
        s.ehlo("client.example.org")
        s.login("carol@" + DOMAIN, "carol-pw")
    assert len(srv.wait_event("AUTH-OK", count=3)) >= 3
    assert srv.events("AUTH-OK", mech="LOGIN", user="bob@" + DOMAIN)


def test_secrets_never_logged(make_server):
    srv = srv_auth(make_server)
    payload = plain(ALICE, "alice-pw")
    with srv.raw() as c:
        ehlo(c)
        assert c.cmd("AUTH PLAIN " + payload).code == 235
    with srv.raw() as c:
        ehlo(c)
        c.cmd("AUTH LOGIN")
        c.cmd(b64("bob@" + DOMAIN))
        assert c.cmd(b64("bob-wrong")).code == 535
    srv.wait_event("AUTH-FAILED")
    text = srv.log_text()
    for secret in (payload, "alice-pw", b64("bob-wrong"), "bob-wrong", b64("bob@" + DOMAIN)):
        assert secret not in text, secret


# ---------------------------------------------------------------- refusals

def test_wrong_password_and_unknown_user(make_server):
    srv = srv_auth(make_server)
    with srv.raw() as c:
        ehlo(c)
        r1 = c.cmd("AUTH PLAIN " + plain(ALICE, "nope"))
        assert_reply(r1, 535, "5.7.8", "AUTH-FAILED")
        r2 = c.cmd("AUTH PLAIN " + plain("nobody@" + DOMAIN, "nope"))
        assert_reply(r2, 535, "5.7.8", "AUTH-FAILED")
        assert r1.raw == r2.raw  # the client cannot tell them apart
        r3 = c.cmd("AUTH PLAIN " + plain("alice", "alice-pw"))  # no domain
        assert r3.code == 535
    srv.wait_event("AUTH-FAILED", reason="bad_password", user=ALICE)
    srv.wait_event("AUTH-FAILED", reason="unknown_user", user="nobody@" + DOMAIN)
    with srv.smtp() as s:
        s.ehlo("client.example.org")
        try:
            s.login(ALICE, "wrong")
            raise AssertionError("login succeeded")
        except smtplib.SMTPAuthenticationError as e:
            assert e.smtp_code == 535


def test_authzid_other_user_refused(make_server):
    srv = srv_auth(make_server)
    with srv.raw() as c:
        ehlo(c)
        r = c.cmd("AUTH PLAIN " + plain(ALICE, "alice-pw", authzid="bob@" + DOMAIN))
        assert_reply(r, 535, "5.7.8", "AUTH-FAILED")
        r = c.cmd("AUTH PLAIN " + plain(ALICE, "alice-pw", authzid=ALICE))
        assert_reply(r, 235, "2.7.0")
    srv.wait_event("AUTH-FAILED", reason="authzid")


def test_disabled_account(make_server):
    srv = srv_auth(make_server, account_extra={"carol": "disabled"})
    with srv.raw() as c:
        ehlo(c)
        r = c.cmd("AUTH PLAIN " + plain("carol@" + DOMAIN, "carol-pw"))
        assert_reply(r, 525, "5.7.13", "AUTH-ACCOUNT-DISABLED")
        # a wrong password does not reveal the state
        r = c.cmd("AUTH PLAIN " + plain("carol@" + DOMAIN, "bad"))
        assert_reply(r, 535, "5.7.8", "AUTH-FAILED")


def test_unknown_mechanism(make_server):
    srv = srv_auth(make_server)
    with srv.raw() as c:
        ehlo(c)
        assert_reply(c.cmd("AUTH CRAM-MD5"), 504, "5.5.4", "AUTH-MECH-UNSUPPORTED")
        assert_reply(c.cmd("AUTH XOAUTH2 abcd"), 504, "5.5.4", "AUTH-MECH-UNSUPPORTED")
        # the session goes on
        assert c.cmd("AUTH PLAIN " + plain(ALICE, "alice-pw")).code == 235


def test_without_mechanism(make_server):
    srv = srv_auth(make_server)
    with srv.raw() as c:
        ehlo(c)
        assert_reply(c.cmd("AUTH"), 501, "5.5.4", "AUTH-MECH-MISSING")


def test_cancel(make_server):
    srv = srv_auth(make_server)
    with srv.raw() as c:
        ehlo(c)
        assert c.cmd("AUTH LOGIN").code == 334
        assert_reply(c.cmd("*"), 501, "5.0.0", "AUTH-CANCELLED")
        assert c.cmd("AUTH LOGIN").code == 334
        assert c.cmd(b64(ALICE)).code == 334
        assert_reply(c.cmd("*"), 501, "5.0.0", "AUTH-CANCELLED")
        assert c.cmd("AUTH PLAIN").code == 334
        assert_reply(c.cmd("*"), 501, "5.0.0", "AUTH-CANCELLED")
        # a cancel is not a failure and the session is back to commands
        assert c.cmd("NOOP").code == 250
    assert not srv.events("AUTH-FAILED")


def test_bad_base64(make_server):
    srv = srv_auth(make_server)
    with srv.raw() as c:
        ehlo(c)
        assert_reply(c.cmd("AUTH PLAIN !!!!"), 501, "5.5.2", "AUTH-RESPONSE-INVALID")
        assert c.cmd("AUTH PLAIN").code == 334
        assert_reply(c.cmd("AGFsaWNl=AHB3"), 501, "5.5.2", "AUTH-RESPONSE-INVALID")
        assert c.cmd("AUTH LOGIN").code == 334
        assert_reply(c.cmd("YWJ"), 501, "5.5.2", "AUTH-RESPONSE-INVALID")
        # PLAIN without its NULs decodes but is not a PLAIN message
        assert_reply(c.cmd("AUTH PLAIN " + b64("alicealice-pw")), 501, "5.5.2",
                     "AUTH-RESPONSE-INVALID")
        assert c.cmd("NOOP").code == 250
    srv.wait_event("AUTH-RESPONSE-INVALID", reason="base64")
    srv.wait_event("AUTH-RESPONSE-INVALID", reason="message")


def test_second_auth_and_auth_in_transaction(make_server):
    srv = srv_auth(make_server)
    with srv.raw() as c:
        ehlo(c)
        assert c.cmd("MAIL FROM:<x@example.org>").code == 250
        assert_reply(c.cmd("AUTH PLAIN " + plain(ALICE, "alice-pw")), 503, "5.5.1")
        assert c.cmd("RSET").code == 250
        assert c.cmd("AUTH PLAIN " + plain(ALICE, "alice-pw")).code == 235
        assert_reply(c.cmd("AUTH PLAIN " + plain(ALICE, "alice-pw")), 503, "5.5.1",
                     "AUTH-ALREADY")
        assert_reply(c.cmd("AUTH LOGIN"), 503, "5.5.1", "AUTH-ALREADY")


def test_line_too_long(make_server):
    srv = srv_auth(make_server)
    with srv.raw() as c:
        ehlo(c)
        assert c.cmd("AUTH LOGIN").code == 334
        assert_reply(c.cmd("A" * 12289), 500, "5.5.6", "AUTH-LINE-TOO-LONG")
        # 12288 octets must be accepted (RFC 4954 4): here they decode to
        # NULs, not a user name, so the reply is 501, not "too long"
        assert c.cmd("AUTH LOGIN").code == 334
        assert_reply(c.cmd("A" * 12288), 501, "5.5.2", "AUTH-RESPONSE-INVALID")
        # an initial response of 12288 octets on the AUTH line itself
        assert_reply(c.cmd("AUTH PLAIN " + "A" * 12288), 501, "5.5.2")
        assert c.cmd("NOOP").code == 250
    srv.assert_serves()


# ---------------------------------------------------------------- counters

def fail(c, user=ALICE):
    return c.cmd("AUTH PLAIN " + plain(user, "wrong"))


def test_failure_delay_grows(make_server):
    srv = srv_auth(make_server, conf={"auth": {"fail_delay": "300", "max_failures": "10"}})
    with srv.raw() as c:
        ehlo(c)
        t0 = time.monotonic()
        assert fail(c).code == 535
        t1 = time.monotonic()
        assert fail(c).code == 535
        t2 = time.monotonic()
        assert t1 - t0 >= 0.29, t1 - t0
        assert t2 - t1 >= 0.59, t2 - t1  # doubled
        # the session holds pipelined input while it waits, then answers it
        c.send("NOOP\r\nNOOP\r\n")
        assert c.reply().code == 250 and c.reply().code == 250
    srv.wait_event("AUTH-FAILED", count=2)
    assert srv.events("AUTH-FAILED")[-1]["count"] == "2"


def test_lockout_and_restart(make_server, state_backend):
    srv = srv_auth(make_server, conf=merge_conf(state_backend,
                                                {"auth": {"max_failures": "3", "lockout": "60"}}))
    with srv.raw() as c:
        ehlo(c)
        for i in range(3):
            assert_reply(fail(c), 535, "5.7.8", "AUTH-FAILED")
        # locked out: even the right password gets 454, the session stays
        r = c.cmd("AUTH PLAIN " + plain(ALICE, "alice-pw"))
        assert_reply(r, 454, "4.7.0", "AUTH-TEMPBAN")
        assert c.cmd("NOOP").code == 250
    ev = srv.wait_event("AUTH-TEMPBAN")[0]
    assert ev["count"] == "3" and 0 < int(ev["remaining_s"]) <= 60
    if not state_backend:
        assert (srv.dir / "state" / "state.db").exists()
    # the lockout lives in the state store (state.db, or Redis): it
    # survives a restart
    srv.restart()
    with srv.raw() as c:
        ehlo(c)
        r = c.cmd("AUTH PLAIN " + plain(ALICE, "alice-pw"))
        assert_reply(r, 454, "4.7.0", "AUTH-TEMPBAN")


def test_counter_survives_restart_and_success_clears(make_server, state_backend):
    srv = srv_auth(make_server, conf=merge_conf(state_backend,
                                                {"auth": {"max_failures": "3", "lockout": "60"}}))
    with srv.raw() as c:
        ehlo(c)
        assert fail(c).code == 535
        assert fail(c).code == 535
    srv.restart()
    with srv.raw() as c:
        ehlo(c)
        assert fail(c).code == 535  # third, counted across the restart
        assert c.cmd("AUTH PLAIN " + plain(ALICE, "alice-pw")).code == 454
    # a success clears the count
    srv2 = srv_auth(make_server, conf={"auth": {"max_failures": "2", "lockout": "60"}})
    with srv2.raw() as c:
        ehlo(c)
        assert fail(c).code == 535
    with srv2.raw() as c:
        ehlo(c)
        assert c.cmd("AUTH PLAIN " + plain(ALICE, "alice-pw")).code == 235
    with srv2.raw() as c:
        ehlo(c)
        assert fail(c).code == 535  # count 1 again, not 2
        assert c.cmd("AUTH PLAIN " + plain(ALICE, "alice-pw")).code == 235


def test_lockout_expires(make_server):
    srv = srv_auth(make_server, conf={"auth": {"max_failures": "2", "lockout": "2"}})
    with srv.raw() as c:
        ehlo(c)
        assert fail(c).code == 535
        assert fail(c).code == 535
        assert c.cmd("AUTH PLAIN " + plain(ALICE, "alice-pw")).code == 454
    # Not a negative check: the lockout's own clock runs out (its expiry is
    # stored, in ms, before the 535 that set it; no event marks the end);
    # the check after is positive.
    time.sleep(2.5)
    with srv.raw() as c:
        ehlo(c)
        assert c.cmd("AUTH PLAIN " + plain(ALICE, "alice-pw")).code == 235


def test_store_open_failure_fails_open(make_server):
    srv = srv_auth(make_server, conf={"auth": {"max_failures": "2", "lockout": "60"}},
                   start=False)
    # a folder where the database file should be: SQLite cannot open it
    (srv.dir / "state" / "state.db").mkdir(parents=True)
    srv.start()
    ev = srv.wait_event("STORE-STATE-OPEN-FAILED")[0]
    assert ev["fallback"] == "memory" and ev["sev"] == "error"
    with srv.raw() as c:
        ehlo(c)
        assert c.cmd("AUTH PLAIN " + plain(ALICE, "alice-pw")).code == 235
    with srv.raw() as c:  # counters still work, in memory
        ehlo(c)
        assert fail(c).code == 535
        assert fail(c).code == 535
        assert c.cmd("AUTH PLAIN " + plain(ALICE, "alice-pw")).code == 454


# ------------------------------------------ plaintext on loopback (issue 7)

def test_not_offered_in_clear_by_default(make_server):
    """auth.plaintext_on_loopback defaults to no: on a listener without TLS
    AUTH is not offered to a loopback client, and refused with 538."""
    srv = make_server(conf=NO_DELAY)
    mark = srv.mark()
    with srv.raw() as c:
        r = ehlo(c)
        assert "AUTH" not in r.text, r
        assert_reply(c.cmd("AUTH PLAIN " + plain(ALICE, "alice-pw")), 538, "5.7.11",
                     "AUTH-ENCRYPTION-REQUIRED")
        assert_reply(c.cmd("AUTH LOGIN"), 538, "5.7.11", "AUTH-ENCRYPTION-REQUIRED")
        # the session goes on
        assert c.cmd("MAIL FROM:<someone@example.org>").code == 250
    ev = srv.wait_event("AUTH-ENCRYPTION-REQUIRED", after=mark)[0]
    assert ev["client"] == "127.0.0.1" and ev["mech"] == "PLAIN", ev
    assert not srv.events("AUTH-OK")


def test_listener_overrides_the_global_option(make_server):
    """listen.NAME.plaintext_on_loopback wins over auth.plaintext_on_loopback,
    both ways."""
    on, off = free_port(), free_port()
    srv = make_server(conf={"auth": {"fail_delay": "0", "plaintext_on_loopback": "no"},
                            "listen.on": {"plaintext_on_loopback": "yes"},
                            "listen.off": {"plaintext_on_loopback": "no"}},
                      listeners={"on": "127.0.0.1:%d" % on, "off": "127.0.0.1:%d" % off})
    with smtp_raw(on) as c:
        assert "AUTH PLAIN LOGIN" in ehlo(c).text
        assert_reply(c.cmd("AUTH PLAIN " + plain(ALICE, "alice-pw")), 235, "2.7.0")
    srv.wait_event("AUTH-OK", user=ALICE)
    srv.write_config(conf={"auth": {"fail_delay": "0", "plaintext_on_loopback": "yes"},
                           "listen.on": {"plaintext_on_loopback": "yes"},
                           "listen.off": {"plaintext_on_loopback": "no"}})
    srv.restart()
    with smtp_raw(off) as c:
        assert "AUTH" not in ehlo(c).text
        assert_reply(c.cmd("AUTH PLAIN " + plain(ALICE, "alice-pw")), 538, "5.7.11",
                     "AUTH-ENCRYPTION-REQUIRED")


def test_listener_option_is_checked(make_server):
    srv = make_server(conf={"listen.mx": {"plaintext_on_loopback": "maybe"}}, start=False)
    r = run_cli("check", "-c", str(srv.config))
    assert r.returncode == 78, r
    assert "listen.mx.plaintext_on_loopback: maybe is not yes or no" in r.stderr, r.stderr
