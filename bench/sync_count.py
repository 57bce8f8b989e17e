#!/usr/bin/python3
"""bench/sync_count.py - synchronous disk operations per message.

Starts Postern (POSTERN_BIN, default build/postern) on a temporary folder
through the e2e harness (tests/e2e/conftest.py), sends one warm-up message
(its mailbox is created then), attaches `strace -f` to the daemon and sends
N messages to one local mailbox from 1, 10 and 50 concurrent sessions (one
message per connection, as smtp-source does). It counts every fsync,
fdatasync, syncfs, sync_file_range, sync and msync call, and every open
with O_SYNC or O_DSYNC, until each message is in new/ and the queue is
empty, and prints a Markdown table:

    sessions | messages | sync calls | per message | messages per flush

    bench/sync_count.py [--messages 400] [--sessions 1,10,50] [--state-checks]

--state-checks runs the checks that write the shared state store on every
message (issue 9: rates per client and sender, duplicate Message-IDs; the
client is made untrusted so they apply), to show that their writes add no
sync call per message (SQLite in WAL, synchronous=NORMAL, batched).

Targets (issue 7 point 3): at most 2 per message at 1 session, at most 0.5
at 50 sessions. strace slows the daemon: these are counts, not speeds.
"""
import argparse
import os
import re
import signal
import smtplib
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
os.environ.setdefault("POSTERN_BIN", os.path.join(HERE, "..", "build", "postern"))

import conftest  # noqa: E402

SYNC_CALLS = ("fsync", "fdatasync", "syncfs", "sync_file_range", "sync", "msync")
LINE = re.compile(r"^\s*(?:\[pid\s+\d+\]\s*|\d+\s+)?(\w+)\(")


def send(port, count, errors):
    for _ in range(count):
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
                s.ehlo("bench.example.org")
                s.sendmail("sender@example.org", ["alice@example.test"],
                           conftest.make_message("bench"))
        except (smtplib.SMTPException, OSError) as e:
            errors.append(repr(e))


def run(srv, sessions, messages):
    before = len(srv.maildir("alice"))
    out = tempfile.NamedTemporaryFile(prefix="sync-count-", suffix=".strace", delete=False)
    out.close()
    st = subprocess.Popen(["strace", "-f", "-qq", "--seccomp-bpf", "-o", out.name, "-e",
                           "trace=" + ",".join(SYNC_CALLS + ("openat",)),
                           "-p", str(srv.pid)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)     # attached to every thread
    errors = []
    per = messages // sessions
    threads = [threading.Thread(target=send, args=(srv.port, per, errors))
               for _ in range(sessions)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    srv.wait_mail("alice", count=before + per * sessions, timeout=600)
    srv.wait_queue_empty(timeout=600)
    elapsed = time.monotonic() - t0
    st.send_signal(signal.SIGINT)
    st.wait(timeout=30)
    counts = {}
    osync = 0
    with open(out.name) as f:
        for line in f:
            m = LINE.match(line)
            if not m:
                continue
            name = m.group(1)
            if name == "openat":
                if "O_SYNC" in line or "O_DSYNC" in line:
                    osync += 1
                continue
            if name in SYNC_CALLS:
                counts[name] = counts.get(name, 0) + 1
    os.unlink(out.name)
    if errors:
        print("errors: %r" % errors[:5], file=sys.stderr)
    return per * sessions, counts, osync, elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=400)
    ap.add_argument("--sessions", default="1,10,50")
    ap.add_argument("--state-checks", action="store_true")
    args = ap.parse_args()
    conf = {"log": {"level": "notice"}, "limits": {"connections_per_ip": "0"}}
    if args.state_checks:
        conf["server"] = {"trusted_networks": "192.0.2.1/32"}
        conf["rates"] = {"client_recipients": "100000000", "sender_messages": "100000000"}
        conf["duplicates"] = {"ttl": "3600"}
    with tempfile.TemporaryDirectory(prefix="postern-sync-") as root:
        srv = conftest.Server(root, conf=conf)
        srv.start()
        try:
            srv.send_mail()
            srv.wait_mail("alice")
            srv.wait_queue_empty()
            print("| sessions | messages | sync calls | per message | messages per flush "
                  "| O_SYNC opens | calls |")
            print("|---:|---:|---:|---:|---:|---:|---|")
            for sessions in [int(x) for x in args.sessions.split(",")]:
                n, counts, osync, _ = run(srv, sessions, args.messages)
                total = sum(counts.values()) + osync
                print("| %d | %d | %d | %.2f | %s | %d | %s |" % (
                    sessions, n, total, total / n,
                    "%.1f" % (n / total) if total else "-", osync,
                    ", ".join("%s %d" % kv for kv in sorted(counts.items()))))
                sys.stdout.flush()
        finally:
            srv.close()


if __name__ == "__main__":
    main()
