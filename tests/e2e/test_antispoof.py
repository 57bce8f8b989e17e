"""
test_antispoof.py - anti-spoofing (issue 4 point 5): an unauthenticated
client outside the trusted networks may not use a sender in one of our
local domains on an mx listener (530 5.7.0 [ACCESS-SPOOF-LOCAL-SENDER]);
trusted clients may, the null sender always may, and smtp.anti_spoof = no
turns the rule off.
"""

import re


def ids_in(text):
    return re.findall(r"\[([A-Z0-9-]+)\]\s*$", text)


def mail_from(srv, sender, source=None):
    with srv.raw(source=source) as c:
        c.cmd("EHLO client.example.org")
        return c.cmd("MAIL FROM:<%s>" % sender)


def test_local_sender_from_outside_refused(make_server):
    srv = make_server()
    mark = srv.mark()
    for sender in ("alice@example.test", "ALICE@Example.Test", "nobody@example.test"):
        r = mail_from(srv, sender, source="127.0.0.2")
        assert r.code == 530 and r.text.startswith("5.7.0"), (sender, r)
        assert ids_in(r.text) == ["ACCESS-SPOOF-LOCAL-SENDER"], r
    ev = srv.wait_event("ACCESS-SPOOF-LOCAL-SENDER", after=mark)[0]
    assert ev["client"] == "127.0.0.2" and ev["from"] == "<alice@example.test>", ev
    assert ev["sev"] == "notice"
    srv.assert_serves()


def test_foreign_and_null_senders_from_outside_accepted(make_server):
    srv = make_server()
    assert mail_from(srv, "someone@example.org", source="127.0.0.2").code == 250
    assert mail_from(srv, "", source="127.0.0.2").code == 250


def test_trusted_client_may_use_local_sender(make_server):
    srv = make_server()
    assert mail_from(srv, "alice@example.test").code == 250     # from 127.0.0.1
    code, _ = srv.send_mail(frm="alice@example.test", rcpts=("bob@example.test",))
    assert code == 250
    srv.wait_mail("bob")


def test_anti_spoof_can_be_turned_off(make_server):
    srv = make_server(opts=["smtp.anti_spoof=no"])
    assert mail_from(srv, "alice@example.test", source="127.0.0.2").code == 250
