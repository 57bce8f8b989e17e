"""
test_peername.py - the client's verified name on every connection
(smtp.peername_lookup, issue 9 point 5's last sentence): PTR, then the
PTR name's A, which must include the client's address (FCrDNS), asked at
connect on the session loop's resolver, shown in our Received field
(from HELO (name [ip]) or (unknown [ip])) and on SESSION-END (ptr=,
ptr_status=), and used by client_ptr and the access map's Connect: name
patterns without asking again. Against a real NSD on loopback, or a
failing dnslib server; clients bind 127.0.0.x (127.0.0.1 is trusted).
"""

import re
import time

import pytest

from conftest import make_message, split_delivered
from dnszone import DnsServer, FailingDnsServer, a, mx, ptr

HELO = "client.good.test"


def zones():
    return {
        "good.test": [mx("@", 10, "mx.good.test"), a("mx", "192.0.2.1"),
                      a("host2", "127.0.0.2"), a("liar", "192.0.2.7")],
        # 127.0.0.2 verifies; 127.0.0.3 points to a name that does not
        # point back; 127.0.0.4 has no PTR
        "127.in-addr.arpa": [ptr("127.0.0.2", "host2.good.test"),
                             ptr("127.0.0.3", "liar.good.test")],
    }


def serve(make_server, servers, smtp=None, policy=None, extra=None, **kw):
    conf = {"dns": {"servers": servers, "timeout": "1", "attempts": "1"}}
    if smtp:
        conf["smtp"] = smtp
    if policy:
        conf["policy"] = policy
    conf.update(extra or {})
    return make_server(conf=conf, **kw)


def deliver(srv, source, token):
    """One message from source to alice; returns (stored Received field,
    the session's SESSION-END event)."""
    mark = srv.mark()
    with srv.smtp(source=source) as s:
        assert s.ehlo(HELO)[0] == 250
        assert s.mail("someone@good.test")[0] == 250
        assert s.rcpt("alice@example.test")[0] == 250
        code, msg = s.data(make_message(token))
        assert code == 250, (code, msg)
    end = srv.wait_event("SESSION-END", after=mark, client=source)[0]
    for f in srv.wait_mail("alice", count=1, timeout=10):
        blob = f.read_bytes()
        if token.encode() in blob:
            return split_delivered(blob)[2], end
    raise AssertionError("message %s not stored" % token)


def test_verified_name_in_received_and_session_end(make_server, tmp_path):
    with DnsServer(tmp_path, zones=zones()) as dns:
        srv = serve(make_server, dns.servers)
        received, end = deliver(srv, "127.0.0.2", "verified")
    assert received.startswith(b"Received: from client.good.test "
                               b"(host2.good.test [127.0.0.2])\r\n\tby mx.example.test"), received
    assert end["ptr"] == "host2.good.test" and end["ptr_status"] == "verified", end


@pytest.mark.parametrize("source,status", [("127.0.0.3", "mismatch"),  # PTR not pointing back
                                           ("127.0.0.4", "missing")])   # no PTR
def test_unverified_name_is_unknown(make_server, tmp_path, source, status):
    with DnsServer(tmp_path, zones=zones()) as dns:
        srv = serve(make_server, dns.servers)
        received, end = deliver(srv, source, status)
    assert received.startswith(("Received: from client.good.test (unknown [%s])\r\n"
                                % source).encode()), received
    assert end["ptr"] == "unknown" and end["ptr_status"] == status, end


def test_dns_failure_is_logged_and_mail_accepted(make_server, tmp_path):
    with FailingDnsServer(tmp_path, rules={"in-addr.arpa": "servfail"}) as bad:
        srv = serve(make_server, bad.servers)
        mark = srv.mark()
        received, end = deliver(srv, "127.0.0.2", "servfail")
        ev = srv.wait_event("SMTP-PEERNAME-TEMPFAIL", after=mark)[0]
    assert ev["client"] == "127.0.0.2" and ev["query"] == "2.0.0.127.in-addr.arpa", ev
    assert received.startswith(b"Received: from client.good.test (unknown [127.0.0.2])\r\n"), \
        received
    assert end["ptr"] == "unknown" and end["ptr_status"] == "tempfail", end
    assert end["msgs"] == "1/1", end


def test_slow_dns_never_holds_the_greeting(make_server, tmp_path):
    # the server never answers: the greeting comes while the lookup is
    # still pending; DATA waits for it at most smtp.peername_timeout
    with FailingDnsServer(tmp_path, rules={"in-addr.arpa": "drop"}) as bad:
        srv = make_server(conf={"dns": {"servers": bad.servers, "timeout": "30",
                                        "attempts": "1"},
                                "smtp": {"peername_timeout": "2"}})
        mark = srv.mark()
        with srv.raw(source="127.0.0.2") as c:
            assert c.greeting.code == 220, c.greeting
            # greeted before the lookup ended (it ends only at its bound)
            assert srv.events("SMTP-PEERNAME-TEMPFAIL", after=mark) == []
            assert c.cmd("EHLO " + HELO).code == 250
            assert c.cmd("MAIL FROM:<someone@good.test>").code == 250
            assert c.cmd("RCPT TO:<alice@example.test>").code == 250
            t0 = time.monotonic()
            r = c.cmd("DATA", timeout=15)
            assert r.code == 354, r
            ev = srv.wait_event("SMTP-PEERNAME-TEMPFAIL", after=mark)[0]
            assert time.monotonic() - t0 < 10
            c.send(b"Subject: slow\r\n\r\nbody\r\n.\r\n")
            assert c.reply().code == 250
        assert ev["query"] == "2.0.0.127.in-addr.arpa" and "timeout" in ev["error"], ev
        assert 1500 <= int(ev["elapsed_ms"]) < 9000, ev
        blob = srv.wait_mail("alice")[0].read_bytes()
        assert b"Received: from client.good.test (unknown [127.0.0.2])\r\n" in blob, blob[:300]
        assert bad.queries("2.0.0.127.in-addr.arpa") == 1


def test_lookup_off_asks_nothing_at_connect(make_server, tmp_path):
    # sender_domain asks MX/A/AAAA at MAIL: once that query is in the DNS
    # server's log, a PTR asked at connect (before it) would be too
    records = [mx("good.test.", 10, "mx.good.test", ttl=60),
               a("mx.good.test.", "192.0.2.1", ttl=60),
               ptr("127.0.0.2", "host2.good.test", ttl=60),
               a("host2.good.test.", "127.0.0.2", ttl=60)]
    with FailingDnsServer(tmp_path, rules={}, records=records) as dns:
        srv = serve(make_server, dns.servers, smtp={"peername_lookup": "no"},
                    policy={"mail": "sender_domain"})
        mark = srv.mark()
        with srv.smtp(source="127.0.0.2") as s:
            assert s.ehlo(HELO)[0] == 250
            assert s.mail("someone@good.test")[0] == 250
            assert s.rcpt("alice@example.test")[0] == 250
            assert s.data(make_message("off"))[0] == 250
        end = srv.wait_event("SESSION-END", after=mark, client="127.0.0.2")[0]
        assert dns.queries("good.test") >= 1, dns.queries()
        assert [q for q in dns.queries() if q.endswith("in-addr.arpa")] == [], dns.queries()
    assert end["ptr"] == "unknown" and end["ptr_status"] == "off", end
    blob = srv.wait_mail("alice")[0].read_bytes()
    assert b"Received: from client.good.test (unknown [127.0.0.2])\r\n" in blob, blob[:300]


def test_lookup_off_client_ptr_still_checks(make_server, tmp_path):
    # with the lookup off, the check that needs the name looks it up
    with DnsServer(tmp_path, zones=zones()) as dns:
        srv = serve(make_server, dns.servers, smtp={"peername_lookup": "no"},
                    policy={"mail": "client_ptr"})
        with srv.raw(source="127.0.0.4") as c:
            assert c.cmd("EHLO " + HELO).code == 250
            r = c.cmd("MAIL FROM:<someone@good.test>")
            assert r.code == 550 and "[POLICY-RDNS-MISSING]" in r.text, r
        received, end = deliver(srv, "127.0.0.2", "offcheck")
    assert end["ptr_status"] == "verified", end
    assert b"(host2.good.test [127.0.0.2])" in received, received


def test_client_ptr_uses_the_session_lookup(make_server, tmp_path):
    # client_ptr at HELO and at MAIL, access with a name pattern: the PTR
    # is asked once for the session
    records = [ptr("127.0.0.2", "host2.good.test", ttl=0),
               a("host2.good.test.", "127.0.0.2", ttl=0)]
    with FailingDnsServer(tmp_path, rules={}, records=records) as dns:
        srv = serve(make_server, dns.servers, policy={"helo": "client_ptr",
                                                      "mail": "client_ptr"},
                    extra={"dns": {"servers": dns.servers, "timeout": "1",
                                   "attempts": "1", "cache_size": "0"}})
        deliver(srv, "127.0.0.2", "once")
        assert dns.queries("2.0.0.127.in-addr.arpa") == 1, dns.queries()
        assert dns.queries("host2.good.test") == 1, dns.queries()


def access_server(make_server, servers, text, policy=None):
    srv = serve(make_server, servers, policy=policy,
                extra={"access": {"file": "access"}}, start=False)
    (srv.dir / "access").write_text(text)
    srv.start()
    return srv


def test_access_map_client_name_keys(make_server, tmp_path):
    text = ("Connect:host2.good.test REJECT Not from that host\n"
            "Connect:liar.good.test REJECT\n"
            "Connect:*.good.test:From:blocked@good.test REJECT\n")
    with DnsServer(tmp_path, zones=zones()) as dns:
        srv = access_server(make_server, dns.servers, text)
        mark = srv.mark()
        with srv.raw(source="127.0.0.2") as c:
            g = c.greeting
            assert g.code == 554 and "Not from that host" in g.text, g
            assert re.search(r"\[ACCESS-IP-DENIED\]$", g.text), g
        ev = srv.wait_event("ACCESS-IP-DENIED", after=mark)[0]
        assert ev["key"] == "Connect:host2.good.test" and ev["line"] == "1", ev
        # an unverified PTR name is no name: 127.0.0.3's liar.good.test
        # does not match
        received, end = deliver(srv, "127.0.0.3", "liar")
        assert end["ptr_status"] == "mismatch", end
        srv = access_server(make_server, dns.servers,
                            "Connect:*.good.test:From:blocked@good.test REJECT\n")
        with srv.raw(source="127.0.0.2") as c:
            assert c.greeting.code == 220
            assert c.cmd("EHLO " + HELO).code == 250
            r = c.cmd("MAIL FROM:<blocked@good.test>")
            assert r.code == 550 and "[POLICY-ACCESS-SENDER-REJECT]" in r.text, r
            assert c.cmd("MAIL FROM:<other@good.test>").code == 250
