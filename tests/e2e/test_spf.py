"""
test_spf.py - the "spf" policy check (issue 9 point 3) in real sessions:
clients bound to 127.0.0.2 (outside server.trusted_networks) send as
domains whose SPF records a loopback DNS server of ours (spfzone.py)
serves. fail is refused with 550 5.7.23 [SPF-FAIL] and the domain's exp=
text; pass, softfail, neutral, none and permerror are taken with a
Received-SPF field; a DNS timeout is 451 4.7.24 [SPF-TEMPERROR]; trusted
clients and postmaster@ of our domains are not refused; spf.helo checks
the HELO name; a bad action is a configuration error.
"""

import re
import smtplib

import pytest

from conftest import make_message, run_cli
from spfzone import SpfZoneServer
from test_tls import client_ctx, tls_server

CLIENT = "127.0.0.2"
ZONE = {
    "pass.example.org": [{"SPF": "v=spf1 ip4:127.0.0.2 -all"}],
    "fail.example.org": [{"SPF": "v=spf1 ip4:192.0.2.1 -all exp=why.fail.example.org"}],
    "why.fail.example.org": [{"TXT": "%{i} is not a mail server of %{d}"}],
    "soft.example.org": [{"SPF": "v=spf1 ~all"}],
    "neutral.example.org": [{"SPF": "v=spf1 ?all"}],
    "none.example.org": [{"A": "192.0.2.9"}],
    "perm.example.org": [{"SPF": "v=spf1 nonsense:x.example.org -all"}],
    "temp.example.org": ["TIMEOUT"],
    "badhelo.example.org": [{"SPF": "v=spf1 -all"}],
    "example.test": [{"SPF": "v=spf1 -all"}],
}
RCPT_STAGE = "limits, spf, recipient, relay, quota, free_space"


def ids_in(text):
    return re.findall(r"\[([A-Z0-9-]+)\]\s*$", text)


@pytest.fixture
def spf_server(make_server, tmp_path):
    with SpfZoneServer(tmp_path, ZONE) as dns:
        def factory(**conf):
            c = {"dns": {"servers": dns.servers, "timeout": "1", "attempts": "1"},
                 "policy": {"rcpt": RCPT_STAGE}}
            for sec, kv in conf.items():
                c.setdefault(sec, {}).update(kv)
            return make_server(conf=c)
        yield factory


def rcpt(srv, sender, to="alice@example.test", source=CLIENT, helo="client.example.org"):
    with srv.raw(source=source) as c:
        assert c.cmd("EHLO " + helo).code == 250
        assert c.cmd("MAIL FROM:<%s>" % sender).code == 250
        return c.cmd("RCPT TO:<%s>" % to)


def test_fail_refused_with_the_domains_explanation(spf_server):
    srv = spf_server()
    mark = srv.mark()
    r = rcpt(srv, "forger@fail.example.org")
    assert r.code == 550 and r.text.startswith("5.7.23"), r
    assert ids_in(r.text) == ["SPF-FAIL"], r
    assert "127.0.0.2 is not a mail server of fail.example.org" in r.text, r
    ev = srv.wait_event("SPF-FAIL", after=mark)[0]
    assert ev["client"] == CLIENT and ev["identity"] == "mailfrom", ev
    assert ev["domain"] == "fail.example.org" and ev["reason"] == "all", ev


@pytest.mark.parametrize("domain,result,event", [
    ("pass.example.org", "pass", "SPF-PASS"),
    ("soft.example.org", "softfail", "SPF-SOFTFAIL"),
    ("neutral.example.org", "neutral", "SPF-NEUTRAL"),
    ("none.example.org", "none", "SPF-NONE"),
    ("perm.example.org", "permerror", "SPF-PERMERROR"),
])
def test_taken_with_received_spf(spf_server, domain, result, event):
    srv = spf_server()
    mark = srv.mark()
    code, _ = srv.send_mail(frm="someone@" + domain, source=CLIENT)
    assert code == 250
    ev = srv.wait_event(event, after=mark)[0]
    assert ev["domain"] == domain and ev["client"] == CLIENT, ev
    blob = srv.wait_mail("alice")[0].read_bytes()
    head = blob.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in blob else blob.split(b"\n\n", 1)[0]
    fields = [l for l in re.split(rb"\r?\n(?![ \t])", head) if l.startswith(b"Received-SPF:")]
    assert len(fields) == 1, head
    assert fields[0].startswith(b"Received-SPF: " + result.encode() + b" ("), fields
    assert b"client-ip=127.0.0.2;" in fields[0], fields
    assert b'envelope-from="someone@' + domain.encode() + b'"' in fields[0], fields
    assert b"identity=mailfrom;" in fields[0], fields


def test_one_received_spf_for_several_recipients(spf_server):
    srv = spf_server()
    code, _ = srv.send_mail(frm="x@pass.example.org", rcpts=("alice@example.test",
                                                             "bob@example.test"),
                            source=CLIENT)
    assert code == 250
    blob = srv.wait_mail("bob")[0].read_bytes()
    assert blob.count(b"Received-SPF:") == 1, blob[:600]


def test_dns_timeout_is_a_temperror_451(spf_server):
    srv = spf_server()
    mark = srv.mark()
    r = rcpt(srv, "someone@temp.example.org")
    assert r.code == 451 and r.text.startswith("4.7.24"), r
    assert ids_in(r.text) == ["SPF-TEMPERROR"], r
    srv.wait_event("SPF-TEMPERROR", after=mark, domain="temp.example.org")


def test_softfail_rejected_when_configured(spf_server):
    srv = spf_server(spf={"softfail": "reject"})
    r = rcpt(srv, "someone@soft.example.org")
    assert r.code == 550 and ids_in(r.text) == ["SPF-SOFTFAIL"], r


def test_trusted_client_is_not_checked(spf_server):
    srv = spf_server()
    mark = srv.mark()
    r = rcpt(srv, "forger@fail.example.org", source="127.0.0.1")
    assert r.code == 250, r
    # the check answers before the RCPT reply: no SPF event was logged
    assert not [e for e in srv.events(after=mark) if e.get("event", "").startswith("SPF-")]


def test_authenticated_client_is_not_checked(make_server, tmp_path):
    # example.test's record says -all: only the skip lets alice's mail out
    with SpfZoneServer(tmp_path, ZONE) as dns:
        srv = tls_server(make_server, conf={
            "dns": {"servers": dns.servers, "timeout": "1", "attempts": "1"},
            "policy": {"rcpt": RCPT_STAGE}})
        mark = srv.mark()
        with smtplib.SMTP("127.0.0.1", srv.sub_port, timeout=10,
                          source_address=(CLIENT, 0)) as s:
            s.ehlo("client.example.org")
            s.starttls(context=client_ctx())
            s.ehlo("client.example.org")
            assert s.login("alice@example.test", "alice-pw")[0] == 235
            s.sendmail("alice@example.test", ["bob@example.test"], make_message("spf-auth"))
        blob = srv.wait_mail("bob")[0].read_bytes()
        assert b"Received-SPF:" not in blob
        assert not [e for e in srv.events(after=mark) if e.get("event", "").startswith("SPF-")]


def test_postmaster_and_abuse_are_never_refused(spf_server):
    srv = spf_server()
    with srv.raw(source=CLIENT) as c:
        assert c.cmd("EHLO client.example.org").code == 250
        assert c.cmd("MAIL FROM:<forger@fail.example.org>").code == 250
        assert c.cmd("RCPT TO:<postmaster@example.test>").code == 250
        assert c.cmd("RCPT TO:<postmaster>").code == 250
        # no such account: refused by the recipient check, not by SPF
        r = c.cmd("RCPT TO:<abuse@example.test>")
        assert r.code == 550 and ids_in(r.text) != ["SPF-FAIL"], r
        r = c.cmd("RCPT TO:<alice@example.test>")
        assert r.code == 550 and ids_in(r.text) == ["SPF-FAIL"], r


def test_null_sender_checks_the_helo_name(spf_server):
    srv = spf_server()
    r = rcpt(srv, "", helo="badhelo.example.org")
    assert r.code == 550 and ids_in(r.text) == ["SPF-FAIL"], r
    assert rcpt(srv, "", helo="pass.example.org").code == 250


def test_helo_identity_checked_first_when_asked(spf_server):
    srv = spf_server(spf={"helo": "yes"})
    mark = srv.mark()
    r = rcpt(srv, "x@pass.example.org", helo="badhelo.example.org")
    assert r.code == 550 and ids_in(r.text) == ["SPF-FAIL"], r
    ev = srv.wait_event("SPF-FAIL", after=mark)[0]
    assert ev["identity"] == "helo" and ev["domain"] == "badhelo.example.org", ev
    mark = srv.mark()
    assert rcpt(srv, "x@pass.example.org", helo="client.example.org").code == 250
    # client.example.org has no record: SPF-NONE for the HELO, then PASS
    srv.wait_event("SPF-NONE", after=mark, identity="helo", domain="client.example.org")
    srv.wait_event("SPF-PASS", after=mark, identity="mailfrom", domain="pass.example.org")


def test_bad_action_is_a_configuration_error(tmp_path):
    conf = tmp_path / "p.conf"
    conf.write_text("[spf]\nfail = bounce\nneutral = tempfail\n")
    r = run_cli("check", "-c", str(conf))
    assert r.returncode != 0
    assert "spf.fail" in r.stderr + r.stdout and "spf.neutral" in r.stderr + r.stdout, r
