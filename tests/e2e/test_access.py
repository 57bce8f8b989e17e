"""
test_access.py - the access map (issue 9 point 6): access.file with keys
by client address and network, HELO, sender, sender domain, recipient and
the Connect:From:, Connect:To:, From:To: combinations; exact, CIDR, glob
and regex patterns; OK, REJECT, TEMPFAIL, DISCARD and custom reply text;
reloaded on SIGHUP, a bad line naming the file and line and keeping the
old map. Clients pick their address by binding 127.0.0.x.
"""

import re
import signal
import socket

import pytest

from conftest import free_port, run_cli
from dnszone import ipv6_loopback_available

MAP = """\
# the access map of these tests
Connect:127.0.0.3 REJECT
Connect:127.0.0.16/28 TEMPFAIL Busy here, come back later
Connect:127.0.0.8 OK
Connect:127.0.0.9:From:alice@example.test OK
Connect:127.0.0.10:To:alice@example.test REJECT Not from that host
Connect:/^127\\.0\\.0\\.11$/ DISCARD
Helo:bad.helo.example REJECT
Helo:/^spam[0-9]+\\./ REJECT
Helo:*.tempfail.example TEMPFAIL
From:spammer@example.org REJECT No mail from you
From:junk.example TEMPFAIL
From:*@glob.example REJECT
From:/^bulk-[a-z]+@/ DISCARD
From:boss@partner.example:To:bob@example.test REJECT
To:bob@example.test REJECT
To:alice@ OK
"""


def ids_in(text):
    return re.findall(r"\[([A-Z0-9-]+)\]\s*$", text)


def access_server(make_server, text=MAP, **kw):
    srv = make_server(conf={"access": {"file": "access"}}, start=False, **kw)
    (srv.dir / "access").write_text(text)
    srv.start()
    return srv


def test_connect_address_rejected_before_the_greeting(make_server):
    srv = access_server(make_server)
    mark = srv.mark()
    with srv.raw(source="127.0.0.3") as c:
        g = c.greeting
        assert g.code == 554 and g.text.startswith("5.7.1 Access denied"), g
        assert ids_in(g.text) == ["ACCESS-IP-DENIED"], g
        assert c.closed()
    ev = srv.wait_event("ACCESS-IP-DENIED", after=mark)[0]
    assert ev["client"] == "127.0.0.3" and ev["line"] == "2", ev
    assert ev["key"] == "Connect:127.0.0.3", ev
    srv.assert_serves(source="127.0.0.2")


def test_connect_network_tempfail_with_custom_text(make_server):
    srv = access_server(make_server)
    with srv.raw(source="127.0.0.17") as c:
        g = c.greeting
        assert g.code == 421 and g.text.startswith("4.7.1 Busy here, come back later"), g
        assert ids_in(g.text) == ["POLICY-ACCESS-CONNECT-TEMPFAIL"], g
        assert c.closed()
    # 127.0.0.32 is outside 127.0.0.16/28
    srv.assert_serves(source="127.0.0.32")


def test_helo_exact_regex_and_glob(make_server):
    srv = access_server(make_server)
    with srv.raw(source="127.0.0.2") as c:
        r = c.cmd("EHLO bad.helo.example")
        assert r.code == 554 and ids_in(r.text) == ["ACCESS-IP-DENIED"], r
        r = c.cmd("EHLO spam42.example.net")
        assert r.code == 554 and ids_in(r.text) == ["ACCESS-IP-DENIED"], r
        r = c.cmd("EHLO mx.tempfail.example")
        assert r.code == 451 and r.text.startswith("4.7.1 Try again later"), r
        assert ids_in(r.text) == ["POLICY-ACCESS-TEMPFAIL"], r
        assert c.cmd("EHLO client.example.org").code == 250


def test_sender_address_domain_and_glob(make_server):
    srv = access_server(make_server)
    mark = srv.mark()
    with srv.raw(source="127.0.0.2") as c:
        c.cmd("EHLO client.example.org")
        r = c.cmd("MAIL FROM:<Spammer@Example.org>")
        assert r.code == 550, r
        assert r.text.startswith("5.7.1 Sender address rejected: No mail from you"), r
        assert ids_in(r.text) == ["POLICY-ACCESS-SENDER-REJECT"], r
        r = c.cmd("MAIL FROM:<anyone@junk.example>")
        assert r.code == 451 and r.text.startswith("4.7.1 Try again later"), r
        assert ids_in(r.text) == ["POLICY-ACCESS-TEMPFAIL"], r
        r = c.cmd("MAIL FROM:<x@glob.example>")
        assert r.code == 550 and r.text.startswith("5.7.1 Sender address rejected: Access denied")
        # a domain entry is not a suffix match
        assert c.cmd("MAIL FROM:<x@sub.junk.example>").code == 250
    ev = srv.wait_event("POLICY-ACCESS-SENDER-REJECT", after=mark)[0]
    assert ev["from"] == "<Spammer@Example.org>" and ev["line"] == "11", ev


def test_sender_regex_discards_the_message(make_server):
    srv = access_server(make_server)
    mark = srv.mark()
    code, _ = srv.send_mail(frm="bulk-news@lists.example.org", source="127.0.0.2")
    assert code == 250
    ev = srv.wait_event("POLICY-ACCESS-DISCARD", after=mark)[0]
    assert ev["stage"] == "mail" and ev["line"] == "14", ev
    srv.wait_event("SESSION-MESSAGE", after=mark)
    assert srv.maildir("alice") == []
    # another sender is delivered
    assert srv.send_mail(source="127.0.0.2")[0] == 250
    srv.wait_mail("alice")


def test_connect_regex_discards_every_message_of_the_session(make_server):
    srv = access_server(make_server)
    mark = srv.mark()
    with srv.smtp(source="127.0.0.11") as c:
        c.ehlo("client.example.org")
        for _ in range(2):
            assert c.mail("someone@example.org")[0] == 250
            assert c.rcpt("alice@example.test")[0] == 250
            assert c.data(b"Subject: x\r\n\r\nbody\r\n")[0] == 250
    ev = srv.wait_event("POLICY-ACCESS-DISCARD", after=mark)[0]
    assert ev["stage"] == "connect" and ev["line"] == "7", ev
    done = srv.wait_event("SESSION-MESSAGE", after=mark, count=2)
    assert all(d.get("verdict") == "discarded" for d in done), done
    assert srv.maildir("alice") == []


def test_recipient_and_combinations(make_server):
    srv = access_server(make_server)
    with srv.raw(source="127.0.0.2") as c:
        c.cmd("EHLO client.example.org")
        assert c.cmd("MAIL FROM:<someone@example.org>").code == 250
        r = c.cmd("RCPT TO:<bob@example.test>")
        assert r.code == 550 and ids_in(r.text) == ["POLICY-ACCESS-RCPT-REJECT"], r
        assert r.text.startswith("5.7.1 Recipient address rejected: Access denied"), r
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
    # From:To: matches only that pair (line 15 before line 16)
    mark = srv.mark()
    with srv.raw(source="127.0.0.2") as c:
        c.cmd("EHLO client.example.org")
        assert c.cmd("MAIL FROM:<boss@partner.example>").code == 250
        r = c.cmd("RCPT TO:<bob@example.test>")
        assert r.code == 550 and ids_in(r.text) == ["POLICY-ACCESS-RCPT-REJECT"], r
    ev = srv.wait_event("POLICY-ACCESS-RCPT-REJECT", after=mark)[0]
    assert ev["line"] == "15" and ev["from"] == "<boss@partner.example>", ev
    # Connect:To: only from that client
    with srv.raw(source="127.0.0.10") as c:
        c.cmd("EHLO client.example.org")
        assert c.cmd("MAIL FROM:<someone@example.org>").code == 250
        r = c.cmd("RCPT TO:<alice@example.test>")
        assert r.code == 550 and ids_in(r.text) == ["POLICY-ACCESS-RCPT-REJECT"], r
        assert r.text.startswith("5.7.1 Recipient address rejected: Not from that host"), r


def test_ok_skips_the_stage_but_never_opens_a_relay(make_server):
    srv = access_server(make_server)
    # without an OK, a local sender from outside is spoofing
    with srv.raw(source="127.0.0.2") as c:
        c.cmd("EHLO client.example.org")
        r = c.cmd("MAIL FROM:<alice@example.test>")
        assert r.code == 530 and ids_in(r.text) == ["ACCESS-SPOOF-LOCAL-SENDER"], r
    # Connect: OK allows the session: antispoof (after access at MAIL) is skipped
    mark = srv.mark()
    with srv.raw(source="127.0.0.8") as c:
        c.cmd("EHLO client.example.org")
        assert c.cmd("MAIL FROM:<alice@example.test>").code == 250
        # relaying still needs trusted networks or AUTH
        r = c.cmd("RCPT TO:<x@elsewhere.example>")
        assert r.code == 550 and ids_in(r.text) == ["ACCESS-RELAY-DENIED"], r
        # OK decides the recipient too: To:bob REJECT (after it) is not asked
        assert c.cmd("RCPT TO:<bob@example.test>").code == 250
    ev = srv.wait_event("POLICY-ACCESS-ALLOW", after=mark)[0]
    assert ev["stage"] == "connect" and ev["key"] == "Connect:127.0.0.8", ev
    # Connect:From: OK: only that sender from that client
    with srv.raw(source="127.0.0.9") as c:
        c.cmd("EHLO client.example.org")
        assert c.cmd("MAIL FROM:<alice@example.test>").code == 250
        assert c.cmd("RSET").code == 250
        r = c.cmd("MAIL FROM:<bob@example.test>")
        assert r.code == 530 and ids_in(r.text) == ["ACCESS-SPOOF-LOCAL-SENDER"], r


def test_empty_map_and_no_map_change_nothing(make_server):
    srv = access_server(make_server, text="# nothing yet\n\n")
    assert srv.send_mail(source="127.0.0.3")[0] == 250
    srv.wait_mail("alice")


def test_sighup_reloads_a_changed_map(make_server):
    srv = access_server(make_server)
    assert srv.send_mail(frm="friend@example.org", source="127.0.0.2")[0] == 250
    mark = srv.mark()
    (srv.dir / "access").write_text(MAP + "From:friend@example.org REJECT\n")
    srv.signal(signal.SIGHUP)
    srv.wait_event("CONFIG-RELOADED", after=mark)
    with srv.raw(source="127.0.0.2") as c:
        c.cmd("EHLO client.example.org")
        r = c.cmd("MAIL FROM:<friend@example.org>")
        assert r.code == 550 and ids_in(r.text) == ["POLICY-ACCESS-SENDER-REJECT"], r


def test_bad_regex_on_reload_keeps_the_old_map(make_server):
    srv = access_server(make_server)
    path = srv.dir / "access"
    mark = srv.mark()
    path.write_text("From:ok@example.org OK\nFrom:/(unclosed/ REJECT\n")
    srv.signal(signal.SIGHUP)
    srv.wait_event("CONFIG-RELOAD-FAILED", after=mark)
    inv = srv.wait_event("CONFIG-INVALID", after=mark)
    bad = [i for i in inv if i.get("path") == str(path)]
    assert bad and bad[0]["line"] == "2" and "bad regex" in bad[0]["err"], inv
    # the old map still refuses
    with srv.raw(source="127.0.0.2") as c:
        c.cmd("EHLO client.example.org")
        r = c.cmd("MAIL FROM:<spammer@example.org>")
        assert r.code == 550 and ids_in(r.text) == ["POLICY-ACCESS-SENDER-REJECT"], r


def test_check_names_file_and_line(tmp_path):
    acc = tmp_path / "access"
    acc.write_text("Connect:192.0.2.0/24 REJECT\n"
                   "Connect:2001:db8::/32:To:*@example.test OK\n"
                   "Connect:10.0.0.0/99 REJECT\n"
                   "From:x@example.org MAYBE\n"
                   "Body:foo REJECT\n"
                   "To:x@example.test REJECT \x01\n"
                   "From:/a(/ REJECT\n")
    conf = tmp_path / "p.conf"
    conf.write_text("[listen.mx]\naddress = 127.0.0.1:2525\nrole = mx\n"
                    "[access]\nfile = access\n")
    r = run_cli("check", "-c", str(conf))
    assert r.returncode == 78, r
    err = r.stderr
    for line, what in ((3, "bad network"), (4, "unknown action"), (5, "unknown tag"),
                       (6, "printable ASCII"), (7, "bad regex")):
        assert re.search(r"^%s:%d: .*%s" % (re.escape(str(acc)), line, what), err, re.M), err
    for line in (1, 2):
        assert "%s:%d:" % (acc, line) not in err, err
    acc.write_text("Connect:192.0.2.0/24 REJECT\nConnect:2001:db8::/32:To:*@example.test OK\n")
    r = run_cli("check", "-c", str(conf))
    assert r.returncode == 0, r
    acc.unlink()
    r = run_cli("check", "-c", str(conf))
    assert r.returncode == 78 and str(acc) in r.stderr, r


def test_ipv6_network(make_server):
    if not ipv6_loopback_available():
        pytest.skip("no ::1 here")
    srv = make_server(conf={"access": {"file": "access"}}, start=False)
    p6 = free_port()
    srv.listeners = {"mx": "127.0.0.1:%d" % srv.port, "v6": "[::1]:%d" % p6}
    srv.write_config()
    (srv.dir / "access").write_text("Connect:::1/128 REJECT No IPv6 loopback here\n")
    srv.start()
    mark = srv.mark()
    with socket.create_connection(("::1", p6), timeout=10) as s:
        s.settimeout(10)
        greeting = b""
        while not greeting.endswith(b"\r\n"):
            chunk = s.recv(512)
            assert chunk, greeting
            greeting += chunk
    assert greeting.startswith(b"554 5.7.1 No IPv6 loopback here"), greeting
    assert greeting.rstrip().endswith(b"[ACCESS-IP-DENIED]"), greeting
    ev = srv.wait_event("ACCESS-IP-DENIED", after=mark)[0]
    assert ev["client"] == "::1" and ev["key"] == "Connect:::1/128", ev
    srv.assert_serves(source="127.0.0.2")
