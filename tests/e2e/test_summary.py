"""
test_summary.py - every verdict is explainable (issue 9 point 12): the
message summary line (SESSION-MESSAGE checks=) lists every check asked
from MAIL on, in order, with its verdict and time; a command a check
refused names that check on its SESSION-RCPT / SESSION-MAIL line; and
`postern explain ID` names the options that govern the condition.
"""

import re

from conftest import make_message, run_cli

ENTRY = re.compile(r"^(mail|rcpt|data|eod):([a-z_0-9]+)=(continue|accept|tempfail|reject|discard)"
                   r"(\+tag)?(\+score-?\d+)?/(\d+)ms$")


def parse_checks(value):
    out = []
    for item in value.split(","):
        m = ENTRY.match(item)
        assert m, (item, value)
        out.append((m.group(1), m.group(2), m.group(3)))
    return out


MAIL = ["tls_required", "auth_required", "access", "size", "antispoof", "sender_login",
        "rates", "free_space"]
RCPT = ["limits", "recipient", "relay", "access", "rates", "quota", "free_space"]
EOD = ["size", "content", "quota", "free_space", "duplicates"]


def test_delivered_message_lists_its_checks_in_order(make_server):
    # the default chain (options_policy.def): every check of each stage,
    # RCPT's once per recipient, in the configured order
    srv = make_server()
    mark = srv.mark()
    assert srv.send_mail(rcpts=("alice@example.test", "bob@example.test"))[0] == 250
    srv.wait_mail("alice")
    ev = srv.wait_event("SESSION-MESSAGE", after=mark)[0]
    assert ev["verdict"] == "accepted", ev
    want = ([("mail", c, "continue") for c in MAIL] +
            [("rcpt", c, "continue") for c in RCPT] * 2 +
            [("eod", c, "continue") for c in EOD])
    assert parse_checks(ev["checks"]) == want, ev["checks"]
    # a configured order is the order listed
    srv2 = make_server(opts=["policy.rcpt=limits,relay,recipient", "policy.end_of_data=content"])
    mark = srv2.mark()
    assert srv2.send_mail()[0] == 250
    srv2.wait_mail("alice")
    ev = srv2.wait_event("SESSION-MESSAGE", after=mark)[0]
    got = parse_checks(ev["checks"])
    assert [c for c in got if c[0] != "mail"] == [
        ("rcpt", "limits", "continue"), ("rcpt", "relay", "continue"),
        ("rcpt", "recipient", "continue"), ("eod", "content", "continue")], ev["checks"]


def test_refused_rcpt_names_its_check(make_server):
    srv = make_server()
    mark = srv.mark()
    with srv.raw(source="127.0.0.2") as c:
        c.cmd("EHLO client.example.org")
        assert c.cmd("MAIL FROM:<someone@example.org>").code == 250
        r = c.cmd("RCPT TO:<x@elsewhere.example>")
        assert r.code == 550 and r.text.endswith("[ACCESS-RELAY-DENIED]"), r
        r = c.cmd("RCPT TO:<alice@example.test>")
        assert r.code == 250, r
        assert c.cmd("DATA").code == 354
        c.send(make_message("summary") + b".\r\n")
        assert c.reply().code == 250
    rc = srv.wait_event("SESSION-RCPT", after=mark, count=2)
    assert rc[0]["cause"] == "ACCESS-RELAY-DENIED" and rc[0]["check"] == "relay", rc[0]
    # an accepted recipient names no check
    assert rc[1]["cause"] == "RCPT-OK" and "check" not in rc[1], rc[1]
    ev = srv.wait_event("SESSION-MESSAGE", after=mark)[0]
    assert ev["verdict"] == "accepted" and ev["nbad"] == "1", ev
    got = parse_checks(ev["checks"])
    rcpt = [c for c in got if c[0] == "rcpt"]
    # the refused RCPT: checks up to relay, which decided; then all of the second
    assert rcpt == ([("rcpt", "limits", "continue"), ("rcpt", "recipient", "continue"),
                     ("rcpt", "relay", "reject")] +
                    [("rcpt", c, "continue") for c in RCPT]), ev["checks"]


def test_refused_mail_names_its_check(make_server):
    srv = make_server()
    mark = srv.mark()
    with srv.raw(source="127.0.0.2") as c:
        c.cmd("EHLO client.example.org")
        r = c.cmd("MAIL FROM:<alice@example.test>")
        assert r.code == 530 and r.text.endswith("[ACCESS-SPOOF-LOCAL-SENDER]"), r
    ev = srv.wait_event("SESSION-MAIL", after=mark)[0]
    assert ev["cause"] == "ACCESS-SPOOF-LOCAL-SENDER" and ev["check"] == "antispoof", ev


def test_explain_names_the_governing_options():
    r = run_cli("explain", "ACCESS-SPOOF-LOCAL-SENDER")
    assert r.returncode == 0, r.stderr
    assert "- Governed by: `server.trusted_networks`, `smtp.anti_spoof`\n" in r.stdout, r.stdout
    r = run_cli("explain", "NET-SERVER-BUSY")
    assert "- Governed by: `limits.connections`\n" in r.stdout, r.stdout
    # an action naming no option: no line
    r = run_cli("explain", "RCPT-UNKNOWN-USER")
    assert r.returncode == 0 and "Governed by" not in r.stdout, r.stdout
    # every option any entry names is a real one (in the configuration reference)
    doc = run_cli("config-doc").stdout
    ids = [l.split("\t")[0] for l in run_cli("catalog", "--ids").stdout.splitlines()]
    named = 0
    for cid in ids:
        out = run_cli("explain", cid).stdout
        for line in out.splitlines():
            if line.startswith("- Governed by:"):
                for name in re.findall(r"`([a-z0-9_]+\.[a-z0-9_]+)`", line):
                    named += 1
                    assert "`%s`" % name in doc or name in doc, (cid, name)
    assert named >= 20, named
