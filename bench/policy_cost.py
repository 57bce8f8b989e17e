#!/usr/bin/python3
"""bench/policy_cost.py - what the policy chain costs: accepted messages per
second with the chain on (DNS lists, SPF, client checks, greylisting, the
client's verified name) beside the same load with it off.

    bench/policy_cost.py [--rounds 3] [--msgs 1000] [--sessions 10] [--size 5120]

Starts, on loopback only:
  * NSD (tests/e2e/dnszone.py's DnsServer) serving the zones the checks ask:
    the client's PTR (1.0.0.127.in-addr.arpa -> mail.bench.test, whose A is
    127.0.0.1: forward-confirmed), the sender's domain sender.bench.test (MX,
    A, SPF "v=spf1 ip4:127.0.0.1 -all": pass), and the zones of one DNS block
    list and one allow list where 127.0.0.1 is not listed (NXDOMAIN);
  * two Postern daemons (tests/e2e/conftest.py's Server, POSTERN_BIN, default
    build/postern), both with dns.servers = that NSD and 127.0.0.1 outside
    server.trusted_networks (trusted clients skip most checks):
      on:  policy.connect = access, dnswl, dnsbl; helo = access, helo,
           client_ptr; mail = the default list + sender_domain; rcpt =
           dnswl, dnsbl, limits, recipient, relay, access, spf, greylist,
           quota, free_space; smtp.peername_lookup = yes; greylisting with
           auto_allow = 0 (every recipient's triplet is looked up in the
           state store), delay 1 s;
      off: every [policy] list empty but rcpt = recipient (routing, which
           is not policy), smtp.peername_lookup = no.
Before measuring, the greylist triplet of the load (127.0.0.1/24, sender,
recipient) is passed on "on": one RCPT greylisted, one retry after the
delay accepted. Then ../shared/bench/smtp-load.py (Postfix's smtp-source,
one message per connection, HELO mail.bench.test) runs --rounds times
against each, alternating on/off (off first in odd rounds), each run
--msgs messages over --sessions sessions, waiting (bounded) until every
message is in the Maildir before the next. smtp-source stops at any reply
that is not the expected one, so rc=0 means every message got its 250.

Prints the runs and a Markdown table: median accepted messages per second
of each side and their ratio. The resolver's cache (dns.cache_size,
default) is on, as on a real server: after the first connection the DNS
answers come from it. The machine may be shared: alternate rounds and
medians are there for that; say so when quoting the figures.
"""
import argparse
import csv
import os
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
os.environ.setdefault("POSTERN_BIN", os.path.join(HERE, "..", "build", "postern"))

import conftest  # noqa: E402
from dnszone import DnsServer, a, mx, ptr, txt  # noqa: E402

LOAD = os.path.join(HERE, "..", "..", "shared", "bench", "smtp-load.py")
SENDER = "bench@sender.bench.test"
RCPT = "alice@example.test"
HELO = "mail.bench.test"
GREY_DELAY = 1

ZONES = {
    "bench.test": [a("mail", "127.0.0.1"),
                   mx("sender", 10, "mx.sender.bench.test"), a("mx.sender", "192.0.2.1"),
                   a("sender", "192.0.2.1"),
                   txt("sender", "v=spf1 ip4:127.0.0.1 -all")],
    "127.in-addr.arpa": [ptr("127.0.0.1", "mail.bench.test")],
    "bl.bench.test": [],
    "wl.bench.test": [],
}

DEFAULT_MAIL = "tls_required, auth_required, access, size, antispoof, sender_login, free_space"

ON = {
    "policy": {"connect": "access, dnswl, dnsbl",
               "helo": "access, helo, client_ptr",
               "mail": DEFAULT_MAIL + ", sender_domain",
               "rcpt": "dnswl, dnsbl, limits, recipient, relay, access, spf, greylist, "
                       "quota, free_space"},
    "smtp": {"peername_lookup": "yes"},
    "dnsbl.bl": {"zone": "bl.bench.test"},
    "dnswl.wl": {"zone": "wl.bench.test"},
    "greylist": {"delay": "%ds" % GREY_DELAY, "auto_allow": "0"},
}
OFF = {
    "policy": {"connect": "", "helo": "", "mail": "", "rcpt": "recipient", "data": "",
               "end_of_data": ""},
    "smtp": {"peername_lookup": "no"},
}


def server(root, name, dns, extra):
    conf = {"log": {"level": "notice"},
            "limits": {"connections_per_ip": "0"},
            "server": {"trusted_networks": "192.0.2.255/32"},
            "dns": {"servers": dns.servers, "timeout": "2", "attempts": "2"}}
    for k, v in extra.items():
        conf.setdefault(k, {}).update(v)
    srv = conftest.Server(root, conf=conf, name=name)
    srv.start()
    return srv


def pass_greylist(srv):
    """The load's triplet, greylisted once and passed after the delay."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=30) as s:
            s.ehlo(HELO)
            assert s.mail(SENDER)[0] == 250
            code, msg = s.rcpt(RCPT)
            if code == 250:
                assert s.data(conftest.make_message("greylist"))[0] == 250
                return
            assert code == 451 and b"POLICY-GREYLISTED" in msg, (code, msg)
        time.sleep(GREY_DELAY + 0.2)
    raise SystemExit("the greylist triplet did not pass within 30 s")


def check_on(srv):
    """The pre-pass message shows that the checks ran on "on": greylisting
    passed it after a 451, the client's name is verified, SPF passed."""
    blob = srv.wait_mail("alice")[0].read_bytes()
    head = blob.split(b"\r\n\r\n", 1)[0]
    if (b"(mail.bench.test [127.0.0.1])" not in head or
            b"Received-SPF: pass" not in head):
        raise SystemExit("policy not in force on 'on':\n%s" % head.decode(errors="replace"))


def count_cmd(srv):
    d = srv.mail / conftest.DOMAIN / "alice" / "new"
    return "mkdir -p %s && ls -f %s | wc -l" % (d, d)


def run(srv, label, args, out):
    cmd = [sys.executable, LOAD, "--port", str(srv.port), "--server", label,
           "--path", "policy-" + label, "--sizes", str(args.size),
           "--sessions", str(args.sessions), "--reps", "1", "--msgs", str(args.msgs),
           "--from", SENDER, "--to", RCPT, "--extra", "-M " + HELO,
           "--count-cmd", count_cmd(srv), "--warmup", "0", "--run-timeout", "120",
           "--drain-timeout", "60", "--out", out]
    subprocess.run(cmd, check=True, timeout=300)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--msgs", type=int, default=1000)
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--size", type=int, default=5120)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="postern-policy-cost-") as root:
        out = os.path.join(root, "load.csv")
        with DnsServer(root, zones=ZONES) as dns:
            on = server(root, "on", dns, ON)
            off = server(root, "off", dns, OFF)
            try:
                pass_greylist(on)
                check_on(on)
                for label, srv in (("on", on), ("off", off)):   # warm-up, not counted
                    run(srv, label, argparse.Namespace(**{**vars(args), "msgs": 200}),
                        os.path.join(root, "warmup.csv"))
                for r in range(args.rounds):
                    order = [("off", off), ("on", on)] if r % 2 == 0 else [("on", on),
                                                                            ("off", off)]
                    for label, srv in order:
                        run(srv, label, args, out)
            finally:
                on.close()
                off.close()
        rows = list(csv.DictReader(open(out)))
    bad = [r for r in rows if r["rc"] != "0" or r["data_done"] != str(args.msgs)]
    rates = {k: [float(r["accept_rate"]) for r in rows if r["server"] == k] for k in ("on", "off")}
    print("\n| run | side | messages | sessions | accepted/s | rc |")
    print("|---:|---|---:|---:|---:|---:|")
    for i, r in enumerate(rows):
        print("| %d | %s | %s | %s | %s | %s |" % (i + 1, r["server"], r["data_done"],
                                                   r["sessions"], r["accept_rate"], r["rc"]))
    med = {k: statistics.median(v) for k, v in rates.items() if v}
    print("\n| policy | median accepted/s | runs |")
    print("|---|---:|---:|")
    for k in ("off", "on"):
        print("| %s | %.1f | %s |" % (k, med.get(k, 0), ", ".join("%.1f" % x for x in rates[k])))
    if med.get("off"):
        print("\non/off = %.2f" % (med["on"] / med["off"]))
    if bad:
        print("runs that did not complete: %r" % bad, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
