"""
test_uribl.py - URI block lists (issue 9 point 2, smtpf's uri-bl):
[dnsbl.NAME] sections with type = uri, asked by the check "uribl" at the
end of data for the domains of the links in the message body, against a
real NSD serving the list zone on loopback. The body is scanned as it
streams (src/policy/uri_scan.c): quoted-printable, base64 and HTML
character references decoded, within uribl.scan_size and
uribl.max_domains.
"""

import base64
import json
import re

from conftest import make_message, run_cli
from dnszone import DnsServer, FailingDnsServer, a, txt

import pytest

EOD_CHAIN = "size, content, uribl, quota, free_space"
CLIENT = "127.0.0.3"      # not trusted (server.trusted_networks is 127.0.0.1)


def ids_in(text):
    return re.findall(r"\[([A-Z0-9-]+)\]\s*$", text)


def zones():
    return {"uri.test": [a("spam.example", "127.0.0.2"),
                         txt("spam.example", "Spam domain, see http://uri.test/"),
                         a("qp.example", "127.0.0.2"),
                         a("b64.example", "127.0.0.2"),
                         a("late.example", "127.0.0.2"),
                         a("d5.example", "127.0.0.2"),
                         a("10.2.0.192", "127.0.0.2"),
                         a("refuse.example", "127.255.255.254")]}


@pytest.fixture
def dns(tmp_path):
    with DnsServer(tmp_path, zones=zones()) as d:
        yield d


def serve(make_server, dns, lists, uribl=None, policy=None):
    conf = {"dns": {"servers": dns.servers, "timeout": "2", "attempts": "1"},
            "policy": {"end_of_data": EOD_CHAIN}}
    conf["policy"].update(policy or {})
    if uribl:
        conf["uribl"] = uribl
    conf.update(lists)
    return make_server(conf=conf)


def body_of(text):
    return text.replace("\n", "\r\n").encode()


def test_plain_link_refused_with_list_and_domain(make_server, dns):
    srv = serve(make_server, dns, {"dnsbl.testuri": {"zone": "uri.test", "type": "uri"}})
    mark = srv.mark()
    msg = make_message(body=body_of("Buy now at http://www.Spam.Example/offer?id=1\n"))
    code, text = srv.send_mail(source=CLIENT, data=msg)
    text = text.decode()
    assert code == 554 and text.startswith("5.7.1"), (code, text)
    assert ids_in(text) == ["POLICY-URIBL-LISTED"], text
    assert "spam.example (list testuri)" in text, text
    ev = srv.wait_event("POLICY-URIBL-LISTED", after=mark)[0]
    assert ev["list"] == "testuri" and ev["item"] == "spam.example", ev
    assert ev["answer"] == "127.0.0.2", ev
    assert ev["reason"] == "Spam domain, see http://uri.test/", ev
    # the same list in the client chains asks nothing there
    assert not srv.events("POLICY-DNSBL-LISTED", after=mark)
    # a clean link: accepted and delivered
    msg = make_message(body=body_of("See http://clean.example/ and www.other.example\n"))
    assert srv.send_mail(source=CLIENT, data=msg)[0] == 250
    srv.wait_mail("alice")


def test_quoted_printable_link_with_soft_breaks(make_server, dns):
    srv = serve(make_server, dns, {"dnsbl.testuri": {"zone": "uri.test", "type": "uri"}})
    mark = srv.mark()
    extra = (b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=us-ascii\r\n"
             b"Content-Transfer-Encoding: quoted-printable\r\n")
    body = body_of('<p>Click <a href=3D"http://w=\nww.qp.exa=\nmple/x">here</a></p>\n')
    code, text = srv.send_mail(source=CLIENT, data=make_message(extra=extra, body=body))
    assert code == 554 and ids_in(text.decode()) == ["POLICY-URIBL-LISTED"], (code, text)
    ev = srv.wait_event("POLICY-URIBL-LISTED", after=mark)[0]
    assert ev["item"] == "qp.example", ev


def test_base64_html_part_with_entities(make_server, dns):
    srv = serve(make_server, dns, {"dnsbl.testuri": {"zone": "uri.test", "type": "uri"}})
    mark = srv.mark()
    html = b'<a href="http://b64&#46;example/?a=1&amp;b=2">offer</a> &amp; more\r\n'
    enc = base64.encodebytes(html).replace(b"\n", b"\r\n")
    extra = (b"MIME-Version: 1.0\r\n"
             b"Content-Type: multipart/alternative; boundary=\"=_b1\"\r\n")
    body = (b"--=_b1\r\nContent-Type: text/plain\r\n\r\nNo link here.\r\n"
            b"--=_b1\r\nContent-Type: text/html; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + enc +
            b"--=_b1--\r\n")
    assert b"b64" not in enc   # only decoding finds it
    code, text = srv.send_mail(source=CLIENT, data=make_message(extra=extra, body=body))
    assert code == 554 and ids_in(text.decode()) == ["POLICY-URIBL-LISTED"], (code, text)
    ev = srv.wait_event("POLICY-URIBL-LISTED", after=mark)[0]
    assert ev["item"] == "b64.example", ev


def test_link_past_the_scan_bound_not_found(make_server, dns):
    srv = serve(make_server, dns, {"dnsbl.testuri": {"zone": "uri.test", "type": "uri"}},
                uribl={"scan_size": "2048"})
    mark = srv.mark()
    body = b"".join(b"filler line %04d ........................................\r\n" % i
                    for i in range(60))
    body += b"http://late.example/\r\n"
    assert len(body) > 2048
    code, text = srv.send_mail(source=CLIENT, data=make_message(body=body))
    assert code == 250, (code, text)
    ev = srv.wait_event("POLICY-URIBL-SCAN-BOUND", after=mark)[0]
    assert ev["limit"] == "2048" and ev["scanned"] == "2048", ev
    # the verdict came before the 250: no listing was logged for it
    assert not srv.events("POLICY-URIBL-LISTED", after=mark)
    srv.wait_mail("alice")
    # the same link within the bound is found
    code, text = srv.send_mail(source=CLIENT,
                               data=make_message(body=b"http://late.example/\r\n"))
    assert code == 554, (code, text)


def test_tag_adds_header_to_stored_message(make_server, dns):
    srv = serve(make_server, dns, {"dnsbl.tagger": {"zone": "uri.test", "type": "uri",
                                                    "action": "tag"}})
    mark = srv.mark()
    msg = make_message(body=body_of("http://spam.example/ http://www.spam.example/a "
                                     "http://192.0.2.10/x\n"))
    assert srv.send_mail(source=CLIENT, data=msg)[0] == 250
    stored = srv.wait_mail("alice")[0].read_bytes()
    want = b"X-Postern-Policy: uribl=tagger:spam.example; client=127.0.0.3"
    assert stored.count(want + b"\r\n") == 1 or stored.count(want + b"\n") == 1, stored[:800]
    hits = srv.wait_event("POLICY-URIBL-HIT", after=mark)
    assert len(hits) == 1 and hits[0]["action"] == "tag", hits
    assert hits[0]["item"] == "spam.example", hits


def test_ipv4_link_and_score(make_server, dns):
    srv = serve(make_server, dns, {"dnsbl.scored": {"zone": "uri.test", "type": "uri",
                                                    "action": "score", "weight": "5"}},
                policy={"reject_score": "5"})
    mark = srv.mark()
    msg = make_message(body=body_of("Go to http://192.0.2.10/login now\n"))
    code, text = srv.send_mail(source=CLIENT, data=msg)
    assert code == 550 and ids_in(text.decode()) == ["POLICY-SCORE-REJECT"], (code, text)
    hit = srv.wait_event("POLICY-URIBL-HIT", after=mark)[0]
    assert hit["item"] == "192.0.2.10" and hit["action"] == "score", hit


def test_tempfail_action_defers(make_server, dns):
    srv = serve(make_server, dns, {"dnsbl.soft": {"zone": "uri.test", "type": "uri",
                                                  "action": "tempfail"}})
    mark = srv.mark()
    code, text = srv.send_mail(source=CLIENT,
                               data=make_message(body=b"https://spam.example/\r\n"))
    text = text.decode()
    assert code == 451 and text.startswith("4.7.1"), (code, text)
    assert ids_in(text) == ["POLICY-URIBL-TEMPFAIL"] and "(list soft)" in text, text
    srv.wait_event("POLICY-URIBL-TEMPFAIL", after=mark, list="soft")


def test_list_that_times_out_is_logged_and_skipped(make_server, tmp_path):
    with FailingDnsServer(tmp_path, rules={"slow.test": "drop"}) as bad:
        srv = serve(make_server, bad, {"dnsbl.slow": {"zone": "slow.test", "type": "uri"}})
        mark = srv.mark()
        msg = make_message(body=body_of("http://one.example/ http://two.example/ "
                                        "http://three.example/\n"))
        code, text = srv.send_mail(source=CLIENT, data=msg)
        assert code == 250, (code, text)
        errs = srv.events("POLICY-DNSBL-ERROR", after=mark, list="slow")
        # the three lookups failed before the 250; logged once for the list
        assert len(errs) == 1 and errs[0]["status"] == "tempfail", errs
        assert bad.queries("one.example.slow.test") >= 1
        assert bad.queries("three.example.slow.test") >= 1
        srv.wait_mail("alice")


def test_many_domains_capped(make_server, dns):
    srv = serve(make_server, dns, {"dnsbl.testuri": {"zone": "uri.test", "type": "uri"}},
                uribl={"max_domains": "3"})
    mark = srv.mark()
    links = "".join("http://www.d%d.example/\n" % i for i in range(1, 9))
    code, text = srv.send_mail(source=CLIENT, data=make_message(body=body_of(links)))
    # d5.example is listed, but only d1..d3 are asked
    assert code == 250, (code, text)
    ev = srv.wait_event("POLICY-URIBL-DOMAINS-CAPPED", after=mark)[0]
    assert ev["kept"] == "3" and ev["dropped"] == "5", ev
    assert not srv.events("POLICY-URIBL-LISTED", after=mark)
    srv.wait_mail("alice")


def test_refusing_resolver_answer_is_ignored(make_server, dns):
    srv = serve(make_server, dns, {"dnsbl.testuri": {"zone": "uri.test", "type": "uri"}})
    mark = srv.mark()
    code, _ = srv.send_mail(source=CLIENT, data=make_message(body=b"http://refuse.example/\r\n"))
    assert code == 250
    ev = srv.wait_event("POLICY-DNSBL-REFUSED-RESOLVER", after=mark)[0]
    assert ev["query"] == "refuse.example.uri.test", ev


def test_postmaster_only_message_and_trusted_client_exempt(make_server, dns):
    srv = serve(make_server, dns, {"dnsbl.testuri": {"zone": "uri.test", "type": "uri"}})
    mark = srv.mark()
    msg = make_message(body=b"http://spam.example/\r\n")
    assert srv.send_mail(source=CLIENT, rcpts=("postmaster@example.test",), data=msg)[0] == 250
    # with another recipient the message is refused
    code, _ = srv.send_mail(source=CLIENT, rcpts=("postmaster@example.test",
                                                  "alice@example.test"), data=msg)
    assert code == 554
    # a trusted client is not asked about
    assert srv.send_mail(source="127.0.0.1", data=msg)[0] == 250
    assert len(srv.events("POLICY-URIBL-LISTED", after=mark)) == 1


def test_config_errors(tmp_path):
    conf = tmp_path / "p.conf"
    conf.write_text("[listen.mx]\naddress = 127.0.0.1:2525\nrole = mx\n"
                    "[dnsbl.u]\nzone = uri.test\ntype = url\n"
                    "[uribl]\nmax_domains = 500\n"
                    "[policy]\nend_of_data = size, uribl\n")
    r = run_cli("check", "-c", str(conf))
    assert r.returncode == 78, r
    err = r.stderr
    assert "%s:6: dnsbl.u.type: \"url\" is not ip, helo, sender or uri" % conf in err, err
    assert "%s:8:" % conf in err and "uribl.max_domains" in err, err
    conf.write_text("[listen.mx]\naddress = 127.0.0.1:2525\nrole = mx\n"
                    "[dnsbl.u]\nzone = uri.test\ntype = uri\n"
                    "[uribl]\nmax_domains = 100\nscan_size = 64K\n"
                    "[policy]\nend_of_data = size, uribl\n")
    r = run_cli("check", "-c", str(conf))
    assert r.returncode == 0, r


def test_bdat_message_scanned_too(make_server, dns):
    srv = serve(make_server, dns, {"dnsbl.testuri": {"zone": "uri.test", "type": "uri"}})
    mark = srv.mark()
    msg = make_message(body=b"Two chunks: http://sp")
    rest = b"am.example/ end\r\n"
    with srv.raw(source=CLIENT) as c:
        assert c.cmd("EHLO client.example.org").code == 250
        assert c.cmd("MAIL FROM:<someone@example.org>").code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        c.send(b"BDAT %d\r\n" % len(msg) + msg)
        assert c.reply().code == 250
        c.send(b"BDAT %d LAST\r\n" % len(rest) + rest)
        r = c.reply()
        assert r.code == 554 and ids_in(r.text) == ["POLICY-URIBL-LISTED"], r
    ev = srv.wait_event("POLICY-URIBL-LISTED", after=mark)[0]
    assert ev["item"] == "spam.example", ev


def test_simulate_sees_the_links_of_a_message_file(make_server, dns, tmp_path):
    """postern simulate --message feeds the file to the same link
    extractor, so the uribl check judges it as a session would."""
    srv = serve(make_server, dns, {"dnsbl.testuri": {"zone": "uri.test", "type": "uri"}})
    msg = tmp_path / "spam.eml"
    msg.write_bytes(b"Subject: offer\n\nBuy now at http://www.spam.example/offer\n")
    r = run_cli("simulate", "-c", str(srv.config), "--client", "192.0.2.9", "--from",
                "a@example.org", "--to", "alice@example.test", "--message", str(msg), "--json")
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    out = json.loads(r.stdout)
    eod = [s for s in out["stages"] if s["stage"] == "end_of_data"][0]
    assert eod["id"] == "POLICY-URIBL-LISTED" and eod["reply"].startswith("554 5.7.1"), eod
    clean = tmp_path / "clean.eml"
    clean.write_bytes(b"Subject: hi\n\nSee http://clean.example/\n")
    r = run_cli("simulate", "-c", str(srv.config), "--client", "192.0.2.9", "--from",
                "a@example.org", "--to", "alice@example.test", "--message", str(clean))
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
