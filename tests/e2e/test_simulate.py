"""
test_simulate.py - `postern simulate` (issue 9 point 10): one transaction
through the configured policy chain without sending mail, against a real
NSD on loopback (dnszone.py) serving a DNS block list and SPF records, and
the live state store (read-only: a simulation never creates a greylist
triplet). Clients outside 127/8 (192.0.2.x, 198.51.100.x, 2001:db8::x)
come in through --client; the greylisting proofs against a running server
use 127.0.0.2 (not in the default trusted networks), the address a real
session binds to.
"""
import ipaddress
import json
import sqlite3
import time

import pytest

from conftest import DOMAIN, free_port, run_cli
from dnszone import DnsServer, a, txt

ALICE = "alice@" + DOMAIN
LISTED4 = "192.0.2.66"
LISTED6 = "2001:db8::66"
CLEAN = "192.0.2.10"          # in example.org's SPF record, not listed
OUTSIDE = "198.51.100.7"      # not in example.org's SPF record
RCPT_CHAIN = "dnsbl, spf, limits, recipient, relay, access, greylist, quota, free_space"
DELAY = 2
EX_REJECTED, EX_USAGE, EX_NOINPUT, EX_TEMPFAIL = 1, 64, 66, 75


def bl_name(ip):
    """The RFC 5782 query name of ip under a list, without the zone."""
    return ipaddress.ip_address(ip).reverse_pointer.rsplit(".", 2)[0]


def zones():
    return {
        "bl.test": [a(bl_name(LISTED4), "127.0.0.2"), a(bl_name(LISTED6), "127.0.0.2"),
                    txt(bl_name(LISTED4), "Listed for testing")],
        "example.org": [txt("@", "v=spf1 ip4:192.0.2.0/27 ip6:2001:db8::/64 -all")],
        "example.net": [a("@", "192.0.2.200")],   # no SPF record: none
    }


@pytest.fixture
def dns(tmp_path):
    with DnsServer(tmp_path, zones=zones()) as d:
        yield d


def policy_server(make_server, dns, start=False, conf=None):
    c = {"dns": {"servers": dns.servers, "timeout": "2", "attempts": "1"},
         "dnsbl.testbl": {"zone": "bl.test"},
         "policy": {"rcpt": RCPT_CHAIN},
         "greylist": {"delay": "%ds" % DELAY, "auto_allow": "0"},
         "access": {"file": "access"}}
    for sec, kv in (conf or {}).items():
        c.setdefault(sec, {}).update(kv)
    srv = make_server(conf=c, start=False)
    (srv.dir / "access").write_text("From:spammer@example.org REJECT No mail from you\n")
    if start:
        srv.start()
    return srv


def simulate(srv, client, frm="someone@example.org", to=(ALICE,), extra=(), json_out=True):
    args = ["simulate", "-c", str(srv.config), "--client", client, "--from", frm]
    for t in to:
        args += ["--to", t]
    args += list(extra)
    if json_out:
        args.append("--json")
    return run_cli(*args)


def sim_json(srv, client, expect_rc, **kw):
    r = simulate(srv, client, **kw)
    assert r.returncode == expect_rc, (r.returncode, r.stdout, r.stderr)
    out = json.loads(r.stdout)
    assert out["schema"] == "postern-simulate/1", out
    assert out["exit"] == expect_rc, out
    return out


def stage(out, name, rcpt=None):
    found = [s for s in out["stages"] if s["stage"] == name and s["rcpt"] == rcpt]
    assert len(found) == 1, (name, rcpt, out["stages"])
    return found[0]


def check(st, name):
    found = [c for c in st["checks"] if c["check"] == name]
    assert len(found) == 1, (name, st["checks"])
    return found[0]


def grey_rows(srv):
    db = srv.dir / "state" / "state.db"
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=5)
    try:
        return con.execute("SELECT count(*) FROM kv WHERE k LIKE 'grey:%'").fetchone()[0]
    finally:
        con.close()


def test_dnsbl_listed_client_refused_at_rcpt(make_server, dns):
    srv = policy_server(make_server, dns)
    out = sim_json(srv, LISTED4, EX_REJECTED)
    assert out["result"] == "rejected" and out["client"] == LISTED4, out
    assert out["listener"] == "mx" and out["helo"] == "[%s]" % LISTED4, out
    # no recipient accepted: the client would not send DATA
    assert [s["stage"] for s in out["stages"]] == ["connect", "helo", "mail", "rcpt"]
    r = stage(out, "rcpt", ALICE)
    assert r["refused"] and r["result"] == "reject" and r["decided_by"] == "dnsbl", r
    assert r["id"] == "POLICY-DNSBL-LISTED" and r["code"] == 554 and r["status"] == "5.7.1", r
    assert r["reply"].startswith("554 5.7.1 ") and "testbl" in r["reply"], r
    assert r["reply"].endswith("[POLICY-DNSBL-LISTED]"), r
    c = check(r, "dnsbl")
    assert c["verdict"] == "reject" and c["id"] == "POLICY-DNSBL-LISTED", c
    assert c["reply"] == r["reply"] and isinstance(c["ms"], int), c
    # no check after the deciding one was asked
    assert [c["check"] for c in r["checks"]] == ["dnsbl"], r
    # the same client over IPv6
    out = sim_json(srv, LISTED6, EX_REJECTED)
    assert stage(out, "rcpt", ALICE)["id"] == "POLICY-DNSBL-LISTED", out
    assert out["helo"] == "[IPv6:%s]" % LISTED6, out


def test_dnsbl_at_connect_stops_before_the_greeting(make_server, dns):
    srv = policy_server(make_server, dns, conf={"policy": {"connect": "dnsbl, access"}})
    out = sim_json(srv, LISTED4, EX_REJECTED)
    assert [s["stage"] for s in out["stages"]] == ["connect"], out
    c = stage(out, "connect")
    assert c["id"] == "POLICY-DNSBL-LISTED" and c["reply"].startswith("554 5.7.1"), c
    # the table says the same
    r = simulate(srv, LISTED4, json_out=False)
    assert r.returncode == EX_REJECTED, r
    assert "POLICY-DNSBL-LISTED" in r.stdout and "result=rejected exit=1" in r.stdout, r.stdout
    # a clean client is greeted
    out = sim_json(srv, CLEAN, EX_TEMPFAIL)
    assert stage(out, "connect")["reply"].startswith("220 "), out


def test_spf_fail(make_server, dns):
    srv = policy_server(make_server, dns)
    out = sim_json(srv, OUTSIDE, EX_REJECTED, extra=["--helo", "client.example.net"])
    r = stage(out, "rcpt", ALICE)
    assert r["decided_by"] == "spf" and r["id"] == "SPF-FAIL", r
    assert r["code"] == 550 and r["status"] == "5.7.23" and r["reply"].endswith("[SPF-FAIL]"), r
    assert check(r, "dnsbl")["verdict"] == "continue", r
    # from inside the record: SPF passes, and the chain goes on to greylisting
    out = sim_json(srv, CLEAN, EX_TEMPFAIL)
    r = stage(out, "rcpt", ALICE)
    assert check(r, "spf")["verdict"] == "continue", r
    assert r["decided_by"] == "greylist", r


def test_greylisting_is_read_only(make_server, dns):
    srv = policy_server(make_server, dns)
    db = srv.dir / "state" / "state.db"
    for _ in range(2):
        out = sim_json(srv, "127.0.0.2", EX_TEMPFAIL, frm="a@example.net")
        r = stage(out, "rcpt", ALICE)
        assert r["id"] == "POLICY-GREYLISTED" and r["code"] == 451, r
        assert r["reply"].startswith("451 4.7.1 Greylisted") and "in %d seconds" % DELAY in r["reply"], r
        assert out["result"] == "tempfailed", out
    # the server never ran: the simulation made no store either
    assert not db.exists()
    srv.start()
    out = sim_json(srv, "127.0.0.2", EX_TEMPFAIL, frm="a@example.net")
    assert stage(out, "rcpt", ALICE)["id"] == "POLICY-GREYLISTED", out
    assert grey_rows(srv) == 0
    # a real session: greylisted as new, and it records its triplet
    mark = srv.mark()
    with srv.raw(source="127.0.0.2") as c:
        assert c.cmd("EHLO client.example.net").code == 250
        assert c.cmd("MAIL FROM:<a@example.net>").code == 250
        r = c.cmd("RCPT TO:<%s>" % ALICE)
    assert r.code == 451 and r.last.endswith("[POLICY-GREYLISTED]"), r
    ev = srv.wait_event("POLICY-GREYLISTED", after=mark)[0]
    assert ev["wait_s"] == str(DELAY), ev
    deadline = time.monotonic() + 10
    while grey_rows(srv) == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert grey_rows(srv) == 1


def test_sees_a_triplet_a_running_server_passed(make_server, dns):
    srv = policy_server(make_server, dns, start=True)

    def real_rcpt():
        with srv.raw(source="127.0.0.2") as c:
            assert c.cmd("EHLO client.example.net").code == 250
            assert c.cmd("MAIL FROM:<a@example.net>").code == 250
            return c.cmd("RCPT TO:<%s>" % ALICE)

    assert real_rcpt().code == 451
    deadline = time.monotonic() + 15
    while True:
        r = real_rcpt()
        if r.code == 250 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert r.code == 250, r
    out = sim_json(srv, "127.0.0.2", 0, frm="a@example.net")
    r = stage(out, "rcpt", ALICE)
    assert r["id"] == "RCPT-OK" and r["reply"].startswith("250 2.1.5"), r
    assert check(r, "greylist")["verdict"] == "continue", r
    assert out["result"] == "accepted", out


def test_access_map_reject(make_server, dns):
    srv = policy_server(make_server, dns)
    out = sim_json(srv, CLEAN, EX_REJECTED, frm="spammer@example.org")
    assert [s["stage"] for s in out["stages"]] == ["connect", "helo", "mail"], out
    m = stage(out, "mail")
    assert m["decided_by"] == "access" and m["id"] == "POLICY-ACCESS-SENDER-REJECT", m
    assert m["reply"].startswith("550 5.7.1 ") and "No mail from you" in m["reply"], m


def test_clean_pass_with_message(make_server, dns, tmp_path):
    srv = policy_server(make_server, dns)
    msg = tmp_path / "msg.eml"
    msg.write_bytes(b"From: someone@example.org\nSubject: hi\nMessage-ID: <m1@example.org>\n\n"
                    + b"body line\n" * 5000)
    pm = "postmaster@" + DOMAIN   # exempt from greylisting
    out = sim_json(srv, CLEAN, 0, to=(pm,), extra=["--message", str(msg), "--helo",
                                                   "client.example.org"])
    assert out["result"] == "accepted" and out["to"] == [pm], out
    assert [s["stage"] for s in out["stages"]] == ["connect", "helo", "mail", "rcpt", "data",
                                                   "end_of_data"], out
    assert all(not s["refused"] for s in out["stages"]), out
    r = stage(out, "rcpt", pm)
    assert check(r, "spf")["verdict"] == "continue" and check(r, "greylist")["verdict"] == "continue"
    assert stage(out, "data")["reply"].startswith("354 "), out
    e = stage(out, "end_of_data")
    assert e["id"] == "SMTP-MSG-ACCEPTED" and e["reply"].startswith("250 2.0.0 "), e
    assert [c["check"] for c in e["checks"]] == ["size", "content", "quota", "free_space",
                                                 "duplicates"], e
    # the table
    r = simulate(srv, CLEAN, to=(pm,), extra=["--message", str(msg)], json_out=False)
    assert r.returncode == 0 and r.stdout.rstrip().endswith("result=accepted exit=0"), r.stdout
    assert "end_of_data" in r.stdout and "=> 250 2.0.0" in r.stdout, r.stdout


def test_message_seen_by_the_end_of_data_checks(make_server, dns, tmp_path):
    srv = policy_server(make_server, dns, conf={"limits": {"hops": "3"}})
    msg = tmp_path / "loop.eml"
    msg.write_bytes(b"".join(b"Received: from hop%d.example\r\n" % i for i in range(4))
                    + b"Subject: loop\r\n\r\n" + b"body\r\n" * 400)
    pm = "postmaster@" + DOMAIN
    out = sim_json(srv, CLEAN, EX_REJECTED, to=(pm,), extra=["--message", str(msg)])
    e = stage(out, "end_of_data")
    assert e["decided_by"] == "content" and e["id"] == "CONTENT-TOO-MANY-HOPS", e
    assert e["refused"] and e["code"] >= 500 and e["reply"].endswith("[CONTENT-TOO-MANY-HOPS]"), e
    # SIZE= was sent with the message's size: a too large one is refused at MAIL
    out = sim_json(srv, CLEAN, EX_REJECTED, to=(pm,),
                   extra=["--message", str(msg), "-o", "limits.message_size=1024"])
    m = stage(out, "mail")
    assert m["decided_by"] == "size" and m["code"] == 552, m


def test_refused_by_the_parser_as_in_a_session(make_server, dns):
    srv = policy_server(make_server, dns)
    out = sim_json(srv, CLEAN, EX_REJECTED, extra=["--helo", "bad_helo!"])
    assert [s["stage"] for s in out["stages"]] == ["connect", "helo"], out
    h = stage(out, "helo")
    assert h["id"] == "SMTP-HELO-INVALID" and h["reply"].startswith("501 5.5.2"), h
    assert h["decided_by"] is None and h["checks"] == [], h
    # a bad recipient is dropped, the other one still judged
    pm = "postmaster@" + DOMAIN
    out = sim_json(srv, CLEAN, EX_REJECTED, to=("a b@example.test", pm))
    bad = stage(out, "rcpt", "a b@example.test")
    assert bad["refused"] and bad["checks"] == [] and bad["code"] >= 500, bad
    assert stage(out, "rcpt", pm)["id"] == "RCPT-OK", out
    assert stage(out, "data")["reply"].startswith("354 "), out


def test_usage_errors(make_server, dns, tmp_path):
    srv = policy_server(make_server, dns)
    cfg = str(srv.config)
    cases = [
        (["simulate", "-c", cfg, "--client", CLEAN, "--from", "a@example.org"], "required"),
        (["simulate", "-c", cfg, "--client", "192.0.2.300", "--from", "a@b.example",
          "--to", ALICE], "not an IPv4 or IPv6 address"),
        (["simulate", "-c", cfg, "--client", CLEAN, "--from", "a@b.example", "--to", ALICE,
          "--bogus"], "unknown option"),
        (["simulate", "-c", cfg, "--client", CLEAN, "--from", "a@b.example", "--to", ALICE,
          "--listener", "nope"], "no SMTP listener"),
        (["simulate", "-c", cfg, "--client", CLEAN, "--from", "a@b.example",
          "--to", "x" * 1001 + "@example.test"], "at most 1000 octets"),
    ]
    for args, words in cases:
        r = run_cli(*args)
        assert r.returncode == EX_USAGE, (args, r.returncode, r.stderr)
        assert words in r.stderr, (args, r.stderr)
        assert r.stdout == "", r.stdout
    r = run_cli("simulate", "-c", cfg, "--client", CLEAN, "--from", "a@b.example", "--to", ALICE,
                "--message", str(tmp_path / "missing.eml"))
    assert r.returncode == EX_NOINPUT and "missing.eml" in r.stderr, r


def test_listener_chain_auth_and_tls(make_server, dns):
    srv = policy_server(make_server, dns, conf={
        "listen.sub": {"address": "127.0.0.1:%d" % free_port(), "role": "submission",
                       "policy_rcpt": "limits, recipient, relay, quota, free_space"}})
    # the submission listener's chain: no greylisting; auth_required refuses
    out = sim_json(srv, CLEAN, EX_REJECTED, extra=["--listener", "sub"])
    assert out["listener"] == "sub", out
    m = stage(out, "mail")
    assert m["refused"] and m["decided_by"] in ("tls_required", "auth_required"), m
    out = sim_json(srv, CLEAN, 0, frm=ALICE, to=("bob@" + DOMAIN, "x@elsewhere.example"),
                   extra=["--listener", "sub", "--auth", ALICE, "--tls"])
    assert out["tls"] is True and out["auth"] == ALICE, out
    r = stage(out, "rcpt", "x@elsewhere.example")
    assert r["id"] == "RCPT-OK" and [c["check"] for c in r["checks"]] == \
        ["limits", "recipient", "relay", "quota", "free_space"], r
