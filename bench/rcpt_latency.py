#!/usr/bin/python3
"""bench/rcpt_latency.py - the time from a client's RCPT to our reply under
many active sessions (issue 10 point 5), as the client sees it.

Starts Postern (POSTERN_BIN, default build/postern) through the e2e
harness, opens --sessions sessions (EHLO done), then has every session
loop MAIL FROM / RCPT TO / RSET for --seconds, all at once, from one
process with non-blocking sockets (each session has one command in flight
at a time, and waits --think-ms after each reply before its next command,
as a real client does between its commands). Every RCPT's latency, from
its send to the reply's last line, is recorded; prints the count, median,
90th, 99th and maximum in ms as JSON. No DNS check is enabled (the default
chain), as the issue asks. With --think-ms 0 every session always has a
command waiting: the latency is then the queue that load builds (Little's
law), not the server's answer time.

    bench/rcpt_latency.py [--sessions 1000] [--seconds 10] [--think-ms 20]

The figure includes this client's own scheduling (one Python process
driving every session on a machine with 2 cores); the server-side
histogram of /metrics (issue 10 point 7) is the figure to set beside it.
Loopback only; bounded by --sessions (at most 5,000) and --seconds.
"""
import argparse
import collections
import json
import os
import resource
import selectors
import socket
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
os.environ.setdefault("POSTERN_BIN", os.path.join(HERE, "..", "build", "postern"))

import conftest  # noqa: E402
import metricsfix  # noqa: E402

HISTOGRAM = "postern_smtp_reply_latency_seconds"

SESSIONS_MAX = 5000
SEQUENCE = [b"MAIL FROM:<bench@example.org>\r\n", b"RCPT TO:<alice@example.test>\r\n",
            b"RSET\r\n"]


class Session:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.step = -2          # -2 greeting, -1 EHLO reply, then SEQUENCE index
        self.sent_at = 0.0


def complete(buf):
    """The length of the first complete reply in buf, or 0."""
    pos = 0
    while True:
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return 0
        line = buf[pos:end]
        if len(line) < 4 or line[3:4] != b"-":
            return end + 2
        pos = end + 2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--think-ms", type=float, default=20.0)
    args = ap.parse_args()
    n = min(args.sessions, SESSIONS_MAX)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory(prefix="postern-lat-") as root:
        mport = conftest.free_port()
        conf = {"log": {"level": "notice"},
                "limits": {"connections": str(n + 100), "connections_per_ip": "0",
                           "junk_commands": "0"}}
        conf.update(metricsfix.metrics_conf(mport))
        srv = conftest.Server(root, conf=conf)
        srv.start()
        try:
            before = buckets(metricsfix.scrape(mport))
            lat = run(srv.port, n, args.seconds, args.think_ms / 1000.0)
            after = buckets(metricsfix.scrape(mport))
        finally:
            srv.close()
    server = [(le, after[le] - before.get(le, 0.0)) for le in sorted(after)]
    lat.sort()
    out = {"sessions": n, "think_ms": args.think_ms, "rcpts": len(lat),
           "median_ms": round(statistics.median(lat), 3),
           "p90_ms": round(lat[int(0.90 * (len(lat) - 1))], 3),
           "p99_ms": round(lat[int(0.99 * (len(lat) - 1))], 3),
           "max_ms": round(lat[-1], 3),
           # the daemon's own histogram of every reply in the run (MAIL,
           # RCPT, RSET): from a complete command line to its reply queued
           "server_replies": int(server[-1][1]) if server else 0,
           "server_median_ms": quantile(server, 0.5),
           "server_p99_ms": quantile(server, 0.99)}
    print(json.dumps(out))


def buckets(scrape):
    """{upper bound in s: cumulative count} of the reply latency histogram."""
    out = {}
    for (name, labels), value in scrape.samples.items():
        if name == HISTOGRAM + "_bucket":
            le = dict(labels)["le"]
            out[float("inf") if le == "+Inf" else float(le)] = value
    return out


def quantile(cumulative, q):
    """q's value in ms from cumulative buckets, interpolated within the
    bucket it falls in (as Prometheus' histogram_quantile does)."""
    if not cumulative or cumulative[-1][1] <= 0:
        return None
    rank = q * cumulative[-1][1]
    lower, below = 0.0, 0.0
    for le, count in cumulative:
        if count >= rank:
            if le == float("inf"):
                return round(lower * 1000.0, 3)
            frac = (rank - below) / (count - below) if count > below else 1.0
            return round((lower + (le - lower) * frac) * 1000.0, 3)
        lower, below = le, count
    return None


def run(port, n, seconds, think):
    sel = selectors.DefaultSelector()
    due = collections.deque()      # (time, session): think is constant, so FIFO
    sessions = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.setblocking(False)
        se = Session(s)
        sessions.append(se)
        sel.register(s, selectors.EVENT_READ, se)
    lat = []
    end = None
    ready = 0
    while True:
        now = time.monotonic()
        if end is not None and now > end:
            break
        if end is None and now > 120 + (sessions[0].sent_at or now):
            raise SystemExit("rcpt_latency: sessions not ready in time")
        while due and due[0][0] <= now:
            _, se = due.popleft()
            se.sent_at = time.monotonic()
            se.sock.send(SEQUENCE[se.step])
        wait = max(0.0, min(1.0, due[0][0] - now)) if due else 1.0
        for key, _ in sel.select(timeout=wait):
            se = key.data
            data = se.sock.recv(65536)
            if not data:
                raise SystemExit("rcpt_latency: the server closed a session")
            se.buf += data
            while True:
                k = complete(se.buf)
                if k == 0:
                    break
                reply, se.buf = se.buf[:k], se.buf[k:]
                t = time.monotonic()
                if se.step == -2:
                    se.step = -1
                    se.sock.send(b"EHLO bench.example.org\r\n")
                    continue
                if se.step == -1:
                    ready += 1
                    se.step = 0
                    if ready < n:
                        continue        # wait until every session is past EHLO
                    end = time.monotonic() + seconds
                    for other in sessions:
                        other.sent_at = time.monotonic()
                        other.sock.send(SEQUENCE[0])
                    continue
                if not reply.startswith(b"2"):
                    raise SystemExit("rcpt_latency: unexpected reply %r" % reply)
                if se.step == 1:
                    lat.append((t - se.sent_at) * 1000.0)
                se.step = (se.step + 1) % len(SEQUENCE)
                if end is not None and t > end:
                    continue
                if think > 0:
                    due.append((t + think, se))
                    continue
                se.sent_at = time.monotonic()
                se.sock.send(SEQUENCE[se.step])
    for se in sessions:
        se.sock.close()
    sel.close()
    return lat


if __name__ == "__main__":
    main()
