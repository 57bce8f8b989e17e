"""
test_client_checks.py - the client checks of issue 9 point 5: "helo"
(HELO not fully qualified, HELO claiming to be us) and "sender_domain"
(no MX/A/AAAA, null MX, DNS failure), each with its action in
[client_checks], against a real NSD on loopback. Clients bind 127.0.0.x
(127.0.0.1 is in server.trusted_networks and skips the checks).
"""

import base64
import re

import pytest

from dnszone import DnsServer, FailingDnsServer, a, aaaa, mx, ptr

SRC = "127.0.0.2"


def ids_in(text):
    return re.findall(r"\[([A-Z0-9-]+)\]\s*$", text)


def zones():
    return {
        "good.test": [mx("@", 10, "mx.good.test"), a("mx", "192.0.2.1"),
                      aaaa("v6only", "2001:db8::1"),
                      mx("nullmx", 0, "."),
                      a("nomail", "192.0.2.3"),
                      a("host2", "127.0.0.2"), a("liar", "192.0.2.7")],
        # 127.0.0.2: forward-confirmed; 127.0.0.3: PTR to a name that does
        # not point back; 127.0.0.4: no PTR; 127.0.0.5: PTR to a missing name
        "127.in-addr.arpa": [ptr("127.0.0.2", "host2.good.test"),
                             ptr("127.0.0.3", "liar.good.test"),
                             ptr("127.0.0.5", "gone.good.test")],
    }


@pytest.fixture
def dns(tmp_path):
    with DnsServer(tmp_path, zones=zones()) as d:
        yield d


def serve(make_server, servers, checks=None, helo="access, helo", mail="helo, sender_domain",
          extra=None):
    conf = {"dns": {"servers": servers, "timeout": "1", "attempts": "1"},
            "policy": {"helo": helo, "mail": mail}}
    conf.update(extra or {})
    if checks:
        conf["client_checks"] = checks
    return make_server(conf=conf)


def ehlo(srv, name, source=SRC):
    with srv.raw(source=source) as c:
        return c.cmd("EHLO " + name)


def mail(srv, frm, source=SRC, helo="client.good.test"):
    with srv.raw(source=source) as c:
        assert c.cmd("EHLO " + helo).code == 250
        return c.cmd("MAIL FROM:<%s>" % frm)


def assert_refused(r, code, esc, cond):
    assert r.code == code, r
    assert r.text.split()[0] == esc, r
    assert ids_in(r.text) == [cond], r


def refused_event(srv, ask, code, esc, cond):
    """Runs ask() (a reply), checks the refusal, returns its log event."""
    mark = srv.mark()
    assert_refused(ask(), code, esc, cond)
    return srv.wait_event(cond, after=mark)[0]


def test_helo_not_fqdn_rejected(make_server, dns):
    srv = serve(make_server, dns.servers)
    ev = refused_event(srv, lambda: ehlo(srv, "localhostname"), 550, "5.7.1",
                       "POLICY-HELO-NOT-FQDN")
    assert ev["helo"] == "localhostname" and ev["client"] == SRC, ev
    assert ehlo(srv, "[192.0.2.9]").code == 250     # an address literal passes
    assert ehlo(srv, "client.good.test").code == 250


@pytest.mark.parametrize("name", ["mx.example.test", "EXAMPLE.TEST"])
def test_helo_claiming_to_be_us_rejected(make_server, dns, name):
    srv = serve(make_server, dns.servers)
    assert_refused(ehlo(srv, name), 550, "5.7.1", "POLICY-HELO-FORGED")


def test_helo_tempfail_and_off(make_server, dns):
    srv = serve(make_server, dns.servers,
                {"helo_not_fqdn": "tempfail", "helo_forged": "off"})
    mark = srv.mark()
    assert_refused(ehlo(srv, "shortname"), 450, "4.7.1", "POLICY-CLIENT-CHECK-TEMPFAIL")
    ev = srv.wait_event("POLICY-CLIENT-CHECK-TEMPFAIL", after=mark)[0]
    assert ev["check"] == "helo" and ev["reason"] == "POLICY-HELO-NOT-FQDN", ev
    assert ehlo(srv, "mx.example.test").code == 250


def test_helo_tag_header_in_stored_message(make_server, dns):
    srv = serve(make_server, dns.servers, {"helo_not_fqdn": "tag"},
                mail="helo, sender_domain")
    mark = srv.mark()
    with srv.smtp(source=SRC) as s:
        assert s.ehlo("shortname")[0] == 250
        r = s.mail("someone@good.test")
        assert r[0] == 250, r
        assert s.rcpt("alice@example.test")[0] == 250
        assert s.data(b"Subject: t\r\n\r\nbody\r\n")[0] == 250
    body = srv.wait_mail("alice")[0].read_bytes()
    assert re.search(rb"X-Postern-Policy: helo=POLICY-HELO-NOT-FQDN; item=shortname\r?\n",
                     body), body[:600]
    ev = srv.wait_event("POLICY-CLIENT-CHECK-TAG", after=mark)[0]
    assert ev["check"] == "helo", ev


def test_trusted_client_skips(make_server, dns):
    srv = serve(make_server, dns.servers)
    assert ehlo(srv, "shortname", source="127.0.0.1").code == 250
    assert mail(srv, "x@nonexistent.good.test", source="127.0.0.1").code == 250


def test_sender_domain_unknown_rejected(make_server, dns):
    srv = serve(make_server, dns.servers)
    ev = refused_event(srv, lambda: mail(srv, "x@nonexistent.good.test"), 550, "5.1.8",
                       "POLICY-SENDER-DOMAIN-NXDOMAIN")
    assert ev["domain"] == "nonexistent.good.test", ev


@pytest.mark.parametrize("frm", ["x@good.test", "x@v6only.good.test", "x@nomail.good.test"])
def test_sender_domain_with_mx_a_or_aaaa_accepted(make_server, dns, frm):
    srv = serve(make_server, dns.servers)
    assert mail(srv, frm).code == 250


def test_null_sender_never_checked(make_server, dns):
    srv = serve(make_server, dns.servers)
    with srv.raw(source=SRC) as c:
        assert c.cmd("EHLO client.good.test").code == 250
        assert c.cmd("MAIL FROM:<>").code == 250


def test_sender_null_mx_rejected(make_server, dns):
    srv = serve(make_server, dns.servers)
    assert_refused(mail(srv, "x@nullmx.good.test"), 550, "5.7.27", "POLICY-SENDER-NULL-MX")


def test_sender_domain_dns_failure_tempfails(make_server, tmp_path):
    with FailingDnsServer(tmp_path, rules={"broken.test": "drop"}) as bad:
        srv = serve(make_server, bad.servers)
        mark = srv.mark()
        r = mail(srv, "x@broken.test")
        assert_refused(r, 450, "4.1.8", "POLICY-SENDER-DOMAIN-TEMPFAIL")
        ev = srv.wait_event("POLICY-SENDER-DOMAIN-TEMPFAIL", after=mark)[0]
        assert ev["domain"] == "broken.test", ev


def test_sender_domain_dns_failure_with_tag_continues(make_server, tmp_path):
    with FailingDnsServer(tmp_path, rules={"broken.test": "servfail"}) as bad:
        srv = serve(make_server, bad.servers, {"sender_domain_unknown": "tag"})
        assert mail(srv, "x@broken.test").code == 250



def test_client_ptr_fcrdns_passes(make_server, dns):
    srv = serve(make_server, dns.servers, mail="client_ptr")
    assert mail(srv, "x@good.test", source="127.0.0.2").code == 250


def test_client_ptr_missing_rejected(make_server, dns):
    srv = serve(make_server, dns.servers, mail="client_ptr")
    mark = srv.mark()
    r = mail(srv, "x@good.test", source="127.0.0.4")
    assert_refused(r, 550, "5.7.25", "POLICY-RDNS-MISSING")
    assert srv.wait_event("POLICY-RDNS-MISSING", after=mark)[0]["client"] == "127.0.0.4"


@pytest.mark.parametrize("source,name", [("127.0.0.3", "liar.good.test"),
                                         ("127.0.0.5", "gone.good.test")])
def test_client_ptr_mismatch_rejected(make_server, dns, source, name):
    srv = serve(make_server, dns.servers, mail="client_ptr")
    mark = srv.mark()
    r = mail(srv, "x@good.test", source=source)
    assert_refused(r, 550, "5.7.25", "POLICY-RDNS-MISMATCH")
    assert srv.wait_event("POLICY-RDNS-MISMATCH", after=mark)[0]["ptr"] == name


def test_client_ptr_at_helo_and_trusted_skip(make_server, dns):
    srv = serve(make_server, dns.servers, helo="client_ptr", mail="")
    assert_refused(ehlo(srv, "client.good.test", source="127.0.0.4"), 550, "5.7.25",
                   "POLICY-RDNS-MISSING")
    assert ehlo(srv, "client.good.test", source="127.0.0.1").code == 250


def test_client_ptr_tag_header(make_server, dns):
    srv = serve(make_server, dns.servers, {"client_ptr_missing": "tag"}, mail="client_ptr")
    with srv.smtp(source="127.0.0.4") as s:
        assert s.ehlo("client.good.test")[0] == 250
        assert s.mail("x@good.test")[0] == 250
        assert s.rcpt("alice@example.test")[0] == 250
        assert s.data(b"Subject: t\r\n\r\nbody\r\n")[0] == 250
    body = srv.wait_mail("alice")[0].read_bytes()
    assert re.search(rb"X-Postern-Policy: client_ptr=POLICY-RDNS-MISSING; item=127.0.0.4\r?\n",
                     body), body[:600]


def test_client_ptr_dns_failure_tempfails(make_server, tmp_path):
    with FailingDnsServer(tmp_path, rules={"in-addr.arpa": "drop"}) as bad:
        srv = serve(make_server, bad.servers, mail="client_ptr")
        mark = srv.mark()
        r = mail(srv, "x@good.test", source="127.0.0.4")
        assert_refused(r, 451, "4.4.3", "POLICY-RDNS-TEMPFAIL")
        ev = srv.wait_event("POLICY-RDNS-TEMPFAIL", after=mark)[0]
        assert ev["query"] == "4.0.0.127.in-addr.arpa", ev


def test_authenticated_client_skips(make_server, dns):
    # 127.0.0.4 has no PTR, "shortname" no dot, the sender's domain does
    # not exist: refused without AUTH, passed after it
    srv = serve(make_server, dns.servers, helo="access",
                mail="helo, client_ptr, sender_domain",
                extra={"auth": {"fail_delay": "0", "plaintext_on_loopback": "yes"}})
    plain = base64.b64encode(b"\0alice@example.test\0alice-pw").decode()
    for authenticate, code in ((False, 550), (True, 250)):
        with srv.raw(source="127.0.0.4") as c:
            assert c.cmd("EHLO shortname").code == 250
            if authenticate:
                assert c.cmd("AUTH PLAIN " + plain).code == 235
            assert c.cmd("MAIL FROM:<x@nonexistent.good.test>").code == code


def test_helo_ip_mismatch_off_by_default_rejected_when_asked(make_server, dns):
    srv = serve(make_server, dns.servers)
    assert ehlo(srv, "liar.good.test").code == 250     # RFC 5321 4.1.4: off
    srv = serve(make_server, dns.servers, {"helo_ip_mismatch": "reject"})
    assert ehlo(srv, "host2.good.test").code == 250    # A 127.0.0.2
    for name in ("liar.good.test", "missing.good.test"):
        ev = refused_event(srv, lambda: ehlo(srv, name), 550, "5.7.1",
                           "POLICY-HELO-IP-MISMATCH")
        assert ev["helo"] == name, ev


def test_helo_ip_lookup_failure_passes(make_server, tmp_path):
    with FailingDnsServer(tmp_path, rules={"broken.test": "servfail"}) as bad:
        srv = serve(make_server, bad.servers, {"helo_ip_mismatch": "reject"})
        assert ehlo(srv, "mx.broken.test").code == 250
        assert bad.queries("mx.broken.test") >= 1       # it was asked, and failed
