#!/usr/bin/python3
"""bench/scaling.py - how Postern scales with cores and with message size
(issue 10 point 6).

Part 1, loops: the same load (Postfix's smtp-source, 5 KiB messages, one
per connection, --sessions parallel) against Postern with server.loops = 1
and = 2, alternating, --rounds times; prints accepted msgs/s (until every
250 and QUIT) and the daemon's CPU ms per message (/proc/PID/stat, all
threads), medians.

Part 2, size: one session sends --per-size messages of each size from
1 KiB to 50 MiB (fewer for the large ones: at most --max-bytes per size)
and prints the time per message, the time per MiB, and the daemon's peak
RSS (VmHWM, reset through /proc/PID/clear_refs before each size): time per
MiB should stay flat as the size grows (no quadratic copy), and so should
RSS (the data streams to disk).

Loopback only, every run bounded in count and time:

    bench/scaling.py [--sessions 50] [--msgs 2000] [--rounds 3]
                     [--per-size 200] [--max-bytes 200M] [--parts loops,size]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
os.environ.setdefault("POSTERN_BIN", os.path.join(HERE, "..", "build", "postern"))

import conftest  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
SIZES = [1024, 10 * 1024, 100 * 1024, 1024 * 1024, 10 * 1024 * 1024, 50 * 1024 * 1024]
RUN_TIMEOUT = 600


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])   # utime + stime (all threads)


def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def reset_hwm(pid):
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
    except OSError:
        pass


def source(port, sessions, msgs, size):
    """smtp-source: returns seconds until it exits (every 250 and 221);
    raises if it failed (any unexpected reply aborts it)."""
    cmd = ["smtp-source", "-c", "-s", str(sessions), "-m", str(msgs), "-l", str(size),
           "-f", "bench@example.org", "-t", "alice@example.test", "127.0.0.1:%d" % port]
    t0 = time.monotonic()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=RUN_TIMEOUT)
    if r.returncode != 0:
        raise RuntimeError("smtp-source failed: %s" % r.stderr.decode(errors="replace")[-400:])
    return time.monotonic() - t0


def server(root, loops, message_size=None):
    conf = {"log": {"level": "notice"}, "limits": {"connections_per_ip": "0"},
            "server": {"loops": str(loops)}}
    if message_size:
        conf["limits"]["message_size"] = str(message_size)
    srv = conftest.Server(root, conf=conf, name="loops%d" % loops)
    srv.start()
    srv.send_mail()            # the mailbox exists before the timed runs
    srv.wait_mail("alice")
    srv.wait_queue_empty()
    return srv


def part_loops(args):
    results = {1: [], 2: []}
    with tempfile.TemporaryDirectory(prefix="postern-scale-") as root:
        srvs = {n: server(os.path.join(root, "l%d" % n), n) for n in (1, 2)}
        try:
            for rnd in range(args.rounds):
                order = (1, 2) if rnd % 2 == 0 else (2, 1)
                for n in order:
                    srv = srvs[n]
                    before = len(srv.maildir("alice"))
                    t0 = cpu_ticks(srv.pid)
                    secs = source(srv.port, args.sessions, args.msgs, 5120)
                    srv.wait_mail("alice", count=before + args.msgs, timeout=RUN_TIMEOUT)
                    srv.wait_queue_empty(timeout=RUN_TIMEOUT)
                    cpu_ms = (cpu_ticks(srv.pid) - t0) * 1000.0 / CLK_TCK
                    results[n].append((args.msgs / secs, cpu_ms / args.msgs))
                    print("round %d loops=%d: %.0f msgs/s, %.3f CPU ms/msg"
                          % (rnd + 1, n, args.msgs / secs, cpu_ms / args.msgs), file=sys.stderr)
        finally:
            for srv in srvs.values():
                srv.close()
    print("| loops | sessions | messages per run | median msgs/s (runs) | median CPU ms/msg |")
    print("|---:|---:|---:|---|---:|")
    for n in (1, 2):
        rates = [r for r, _ in results[n]]
        print("| %d | %d | %d | %.0f (%s) | %.3f |" % (
            n, args.sessions, args.msgs, statistics.median(rates),
            ", ".join("%.0f" % r for r in rates),
            statistics.median(c for _, c in results[n])))


def part_size(args):
    print("| size | messages | s per message | ms per MiB | peak RSS MiB |")
    print("|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="postern-size-") as root:
        srv = server(os.path.join(root, "s"), 0, message_size=64 * 1024 * 1024)
        try:
            for size in SIZES:
                n = max(3, min(args.per_size, args.max_bytes // size))
                before = len(srv.maildir("alice"))
                reset_hwm(srv.pid)
                secs = source(srv.port, 1, n, size)
                srv.wait_mail("alice", count=before + n, timeout=RUN_TIMEOUT)
                srv.wait_queue_empty(timeout=RUN_TIMEOUT)
                hwm = vm_hwm_kib(srv.pid) / 1024.0
                per = secs / n
                print("| %s | %d | %.4f | %.1f | %.1f |" % (
                    human(size), n, per, per * 1000.0 / (size / 1048576.0), hwm))
                sys.stdout.flush()
        finally:
            srv.close()


def human(n):
    for unit, f in (("MiB", 1048576), ("KiB", 1024)):
        if n >= f:
            return "%d %s" % (n // f, unit)
    return "%d B" % n


def size_arg(s):
    mult = {"K": 1024, "M": 1048576, "G": 1073741824}
    return int(s[:-1]) * mult[s[-1].upper()] if s[-1].upper() in mult else int(s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--msgs", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--per-size", type=int, default=200)
    ap.add_argument("--max-bytes", type=size_arg, default=200 * 1048576)
    ap.add_argument("--parts", default="loops,size")
    args = ap.parse_args()
    parts = args.parts.split(",")
    if "loops" in parts:
        part_loops(args)
    if "size" in parts:
        part_size(args)


if __name__ == "__main__":
    main()
