"""
test_dnsl.py - DNS block and allow lists (issue 9 point 2): [dnsbl.NAME]
and [dnswl.NAME] sections asked by the checks "dnsbl" and "dnswl" against
a real NSD serving the list zones on loopback. Clients pick their
address by binding to 127.0.0.x (or ::1).
"""

import re
import socket

import pytest

from conftest import RawClient, free_port, run_cli
from dnszone import DnsServer, FailingDnsServer, a, txt, ipv6_loopback_available

RCPT_CHAIN = "dnswl, dnsbl, limits, recipient, relay, quota, free_space"
V6_LOOPBACK = ".".join(reversed("0" * 31 + "1"))   # ::1, RFC 5782 2.4


def ids_in(text):
    return re.findall(r"\[([A-Z0-9-]+)\]\s*$", text)


def zones():
    return {
        "bl.test": [a("2.0.0.127", "127.0.0.2"), a("5.0.0.127", "127.0.0.2"),
                    txt("2.0.0.127", "Listed for testing, see http://bl.test/"),
                    a("4.0.0.127", "127.0.0.4"),
                    a(V6_LOOPBACK, "127.0.0.2")],
        "refusing.test": [a("2.0.0.127", "127.255.255.254")],
        "rhs.test": [a("spammer.example", "127.0.0.2"), a("bad-helo.example", "127.0.0.2")],
        "wl.test": [a("5.0.0.127", "127.0.0.2")],
        "tag.test": [a("2.0.0.127", "127.0.0.2")],
        "s1.test": [a("2.0.0.127", "127.0.0.2"), a("3.0.0.127", "127.0.0.2")],
        "s2.test": [a("2.0.0.127", "127.0.0.2")],
    }


@pytest.fixture
def dns(tmp_path):
    with DnsServer(tmp_path, zones=zones()) as d:
        yield d


def serve(make_server, dns, lists, policy=None, **kw):
    conf = {"dns": {"servers": dns.servers, "timeout": "2", "attempts": "1"},
            "policy": {"rcpt": RCPT_CHAIN}}
    conf["policy"].update(policy or {})
    conf.update(lists)
    return make_server(conf=conf, **kw)


def rcpt(srv, source, rcpt="alice@example.test", frm="someone@example.org",
         helo="client.example.org"):
    with srv.raw(source=source) as c:
        assert c.cmd("EHLO " + helo).code == 250
        r = c.cmd("MAIL FROM:<%s>" % frm)
        if r.code != 250:
            return r
        return c.cmd("RCPT TO:<%s>" % rcpt)


def test_listed_client_refused_with_list_name(make_server, dns):
    srv = serve(make_server, dns, {"dnsbl.testbl": {"zone": "bl.test"}})
    mark = srv.mark()
    r = rcpt(srv, "127.0.0.2")
    assert r.code == 554 and r.text.startswith("5.7.1"), r
    assert "listed at the DNS list testbl" in r.text and ids_in(r.text) == ["POLICY-DNSBL-LISTED"], r
    ev = srv.wait_event("POLICY-DNSBL-LISTED", after=mark)[0]
    assert ev["list"] == "testbl" and ev["item"] == "127.0.0.2", ev
    assert ev["answer"] == "127.0.0.2" and ev["stage"] == "rcpt", ev
    assert ev["reason"] == "Listed for testing, see http://bl.test/", ev
    # not listed: accepted and delivered
    assert srv.send_mail(source="127.0.0.3")[0] == 250
    srv.wait_mail("alice")


def test_listed_at_connect_refused_before_greeting(make_server, dns):
    srv = serve(make_server, dns, {"dnsbl.testbl": {"zone": "bl.test"}},
                policy={"connect": "dnsbl"})
    mark = srv.mark()
    c = RawClient(srv.port, source="127.0.0.2")
    try:
        assert c.greeting.code == 554 and ids_in(c.greeting.text) == ["POLICY-DNSBL-LISTED"], \
            c.greeting
    finally:
        c.close()
    ev = srv.wait_event("POLICY-DNSBL-LISTED", after=mark)[0]
    assert ev["stage"] == "connect", ev
    srv.assert_serves(source="127.0.0.3")


def test_codes_limit_what_counts(make_server, dns):
    # bl.test answers 127.0.0.4 for 127.0.0.4 and 127.0.0.2 for 127.0.0.2
    srv = serve(make_server, dns, {"dnsbl.only4": {"zone": "bl.test", "codes": "127.0.0.4/32"}})
    r = rcpt(srv, "127.0.0.2")
    assert r.code == 250, r
    r = rcpt(srv, "127.0.0.4")
    assert r.code == 554 and "listed at the DNS list only4" in r.text, r


def test_ipv6_client(make_server, dns):
    if not ipv6_loopback_available():
        pytest.skip("no ::1 on this machine")
    port = free_port()
    # ::1 is trusted by default: trusted clients skip DNS lists
    srv = serve(make_server, dns, {"dnsbl.testbl": {"zone": "bl.test"},
                                   "server": {"trusted_networks": "127.0.0.1/32"}},
                listeners={"mx": "[::1]:%d" % port})
    mark = srv.mark()
    with socket.create_connection(("::1", port), timeout=10) as s:
        f = s.makefile("rwb")

        def cmd(line):
            if line:
                f.write(line.encode() + b"\r\n")
                f.flush()
            lines = []
            while True:
                ln = f.readline().decode()
                lines.append(ln)
                if len(ln) < 4 or ln[3] != "-":
                    return lines
        assert cmd("")[0].startswith("220")
        cmd("EHLO client.example.org")
        assert cmd("MAIL FROM:<someone@example.org>")[0].startswith("250")
        r = cmd("RCPT TO:<alice@example.test>")[-1]
        assert r.startswith("554 5.7.1") and "[POLICY-DNSBL-LISTED]" in r, r
    ev = srv.wait_event("POLICY-DNSBL-LISTED", after=mark)[0]
    assert ev["item"] == "::1", ev


def test_rhsbl_sender_and_helo(make_server, dns):
    srv = serve(make_server, dns, {
        "dnsbl.rhs": {"zone": "rhs.test", "type": "sender"},
        "dnsbl.helos": {"zone": "rhs.test", "type": "helo"}},
        policy={"mail": "dnsbl", "helo": "dnsbl"})
    mark = srv.mark()
    with srv.raw(source="127.0.0.3") as c:
        assert c.cmd("EHLO client.example.org").code == 250
        r = c.cmd("MAIL FROM:<x@spammer.example>")
        assert r.code == 554 and "listed at the DNS list rhs" in r.text, r
        assert ids_in(r.text) == ["POLICY-DNSBL-LISTED"], r
        assert c.cmd("MAIL FROM:<x@example.org>").code == 250
    ev = srv.wait_event("POLICY-DNSBL-LISTED", after=mark)[0]
    assert ev["list"] == "rhs" and ev["stage"] == "mail", ev
    assert ev["item"] == "spammer.example", ev
    with srv.raw(source="127.0.0.3") as c:
        r = c.cmd("EHLO bad-helo.example")
        assert r.code == 554 and "listed at the DNS list helos" in r.text, r
    ev = srv.wait_event("POLICY-DNSBL-LISTED", after=mark, list="helos")[0]
    assert ev["stage"] == "helo" and ev["item"] == "bad-helo.example", ev


def test_tag_adds_header(make_server, dns):
    srv = serve(make_server, dns, {"dnsbl.tagger": {"zone": "tag.test", "action": "tag"}})
    mark = srv.mark()
    assert srv.send_mail(source="127.0.0.2",
                         rcpts=("alice@example.test", "bob@example.test"))[0] == 250
    body = srv.wait_mail("alice")[0].read_bytes()
    assert body.count(b"X-Postern-Policy: dnsbl=tagger; client=127.0.0.2\r\n") == 1 or \
        body.count(b"X-Postern-Policy: dnsbl=tagger; client=127.0.0.2\n") == 1, body[:600]
    hits = srv.wait_event("POLICY-DNSBL-HIT", after=mark)
    assert len(hits) == 1 and hits[0]["action"] == "tag", hits


def test_score_refuses_only_past_reject_score(make_server, dns):
    lists = {"dnsbl.s1": {"zone": "s1.test", "action": "score", "weight": "3"},
             "dnsbl.s2": {"zone": "s2.test", "action": "score", "weight": "3"}}
    srv = serve(make_server, dns, lists, policy={"reject_score": "5"})
    # 127.0.0.3 is only in s1: 3 points, under 5
    assert srv.send_mail(source="127.0.0.3")[0] == 250
    srv.wait_mail("alice")
    mark = srv.mark()
    r = rcpt(srv, "127.0.0.2")
    assert r.code == 550 and ids_in(r.text) == ["POLICY-SCORE-REJECT"], r
    assert "score 6" in r.text, r
    assert len(srv.wait_event("POLICY-DNSBL-HIT", after=mark, count=2)) == 2


def test_refusing_resolver_answer_is_ignored(make_server, dns):
    srv = serve(make_server, dns, {"dnsbl.refusing": {"zone": "refusing.test"}})
    mark = srv.mark()
    assert srv.send_mail(source="127.0.0.2")[0] == 250
    ev = srv.wait_event("POLICY-DNSBL-REFUSED-RESOLVER", after=mark)[0]
    assert ev["answer"] == "127.255.255.254" and ev["list"] == "refusing", ev
    assert ev["query"] == "2.0.0.127.refusing.test", ev
    assert not srv.events("POLICY-DNSBL-LISTED", after=mark)


def test_timeout_is_logged_and_skipped(make_server, tmp_path):
    with FailingDnsServer(tmp_path, rules={"slow.test": "drop"}) as bad:
        srv = serve(make_server, bad, {"dnsbl.slow": {"zone": "slow.test"}})
        mark = srv.mark()
        assert srv.send_mail(source="127.0.0.2")[0] == 250
        ev = srv.wait_event("POLICY-DNSBL-ERROR", after=mark)[0]
        assert ev["list"] == "slow" and ev["status"] == "tempfail", ev
        srv.wait_mail("alice")


def test_dnswl_hit_skips_following_dnsbl(make_server, dns):
    # 127.0.0.5 is in both wl.test and bl.test; 127.0.0.2 only in bl.test
    srv = serve(make_server, dns, {"dnswl.good": {"zone": "wl.test"},
                                   "dnsbl.testbl": {"zone": "bl.test"}})
    mark = srv.mark()
    assert srv.send_mail(source="127.0.0.5")[0] == 250
    ev = srv.wait_event("POLICY-DNSWL-LISTED", after=mark)[0]
    assert ev["list"] == "good" and ev["item"] == "127.0.0.5" and ev["stage"] == "rcpt", ev
    srv.wait_mail("alice")
    assert not srv.events("POLICY-DNSBL-LISTED", after=mark)
    assert rcpt(srv, "127.0.0.2").code == 554


def test_dnswl_at_connect_marks_the_session(make_server, dns):
    srv = serve(make_server, dns, {"dnswl.good": {"zone": "wl.test"},
                                   "dnsbl.testbl": {"zone": "bl.test"}},
                policy={"connect": "dnswl, dnsbl", "rcpt": "dnsbl, recipient, relay"})
    mark = srv.mark()
    assert srv.send_mail(source="127.0.0.5")[0] == 250
    ev = srv.wait_event("POLICY-DNSWL-LISTED", after=mark)[0]
    assert ev["stage"] == "connect", ev
    srv.wait_mail("alice")
    assert not srv.events("POLICY-DNSBL-LISTED", after=mark)


def test_postmaster_and_abuse_exempt(make_server, dns):
    srv = serve(make_server, dns, {"dnsbl.testbl": {"zone": "bl.test"}})
    with srv.raw(source="127.0.0.2") as c:
        assert c.cmd("EHLO client.example.org").code == 250
        assert c.cmd("MAIL FROM:<someone@example.org>").code == 250
        r = c.cmd("RCPT TO:<postmaster@example.test>")
        assert r.code == 250, r
        r = c.cmd("RCPT TO:<abuse@example.test>")
        assert r.code in (250, 550) and "DNSBL" not in r.text, r
        r = c.cmd("RCPT TO:<alice@example.test>")
        assert r.code == 554, r


def test_bad_sections_are_config_errors(tmp_path):
    conf = tmp_path / "p.conf"
    conf.write_text("[listen.mx]\naddress = 127.0.0.1:2525\nrole = mx\n"
                    "[dnsbl.a]\ncodes = 127.0.0.2, nonsense\naction = drop\n"
                    "[dnswl.b]\nzone = wl.test\ntype = uri\n")
    r = run_cli("check", "-c", str(conf))
    assert r.returncode == 78, r
    err = r.stderr
    assert "%s:5: dnsbl.a.codes: \"nonsense\" is not an IPv4 address" % conf in err, err
    assert "%s:6: dnsbl.a.action: \"drop\" is not reject, tempfail, tag or score" % conf in err, err
    assert "%s:4: dnsbl.a: missing zone" % conf in err, err
    assert "%s:9: dnswl.b.type: \"uri\" is not ip, helo or sender" % conf in err, err


def test_tempfail_action_defers(make_server, dns):
    srv = serve(make_server, dns, {"dnsbl.soft": {"zone": "bl.test", "action": "tempfail"}})
    mark = srv.mark()
    r = rcpt(srv, "127.0.0.2")
    assert r.code == 451 and r.text.startswith("4.7.1"), r
    assert "listed at the DNS list soft" in r.text and ids_in(r.text) == ["POLICY-DNSBL-TEMPFAIL"], r
    srv.wait_event("POLICY-DNSBL-TEMPFAIL", after=mark, list="soft")


def test_client_gone_while_lists_are_asked(make_server, tmp_path):
    # the pending queries are cancelled with the session (ASan: no leak, no
    # answer to a freed query); the server goes on serving
    with FailingDnsServer(tmp_path, rules={"slow.test": "drop"}) as bad:
        srv = serve(make_server, bad, {"dnsbl.slow": {"zone": "slow.test"},
                                       "dnsbl.slow2": {"zone": "b.slow.test"}})
        mark = srv.mark()
        c = RawClient(srv.port, source="127.0.0.2")
        c.cmd("EHLO client.example.org")
        assert c.cmd("MAIL FROM:<someone@example.org>").code == 250
        c.send("RCPT TO:<alice@example.test>\r\n")
        c.close()
        srv.wait_event("SESSION-END", after=mark)
        srv.assert_serves(source="127.0.0.3")
