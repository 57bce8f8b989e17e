#!/usr/bin/python3
"""bench/idle_sessions.py - memory per idle SMTP session after EHLO, and
whether a new client is still served at once (issue 10 point 5).

Starts Postern (POSTERN_BIN, default build/postern) through the e2e
harness with limits.connections raised and no per-address limit, opens
--n connections from several loopback source addresses (127.0.0.2 and up,
--per-source each, so the ephemeral ports of one address are not the
bound), reads each greeting, sends EHLO and reads its reply, and holds them
all idle. It prints the daemon's RSS (VmRSS) before and with every session
held, the difference per session in KiB, and the time a new client then
takes from connect to its EHLO reply. Raises its own descriptor limit.

    bench/idle_sessions.py [--n 50000] [--per-source 20000] [--max-seconds 300]

Loopback only; bounded by --n (at most 100,000) and --max-seconds.
"""
import argparse
import json
import os
import resource
import selectors
import socket
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
os.environ.setdefault("POSTERN_BIN", os.path.join(HERE, "..", "build", "postern"))

import conftest  # noqa: E402

N_MAX = 100000


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def open_sessions(port, n, per_source, deadline):
    """n sessions, each greeted and past EHLO; returns the sockets."""
    sel = selectors.DefaultSelector()
    socks = []
    state = {}
    for i in range(n):
        src = "127.0.0.%d" % (2 + i // per_source)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.bind((src, 0))
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        socks.append(s)
        state[s] = [0, b""]     # 0: wait greeting, 1: wait EHLO reply, 2: idle
        sel.register(s, selectors.EVENT_READ)
        # keep the number of handshakes in flight bounded
        while len(socks) - sum(1 for v in state.values() if v[0] == 2) > 2000:
            pump(sel, state, deadline)
    while any(v[0] != 2 for v in state.values()):
        pump(sel, state, deadline)
    sel.close()
    return socks


def pump(sel, state, deadline):
    if time.monotonic() > deadline:
        raise SystemExit("idle_sessions: out of time")
    for key, _ in sel.select(timeout=1.0):
        s = key.fileobj
        st = state[s]
        data = s.recv(4096)
        if not data:
            raise SystemExit("idle_sessions: the server closed a session")
        st[1] += data
        # a reply is complete at a line whose 4th octet is a space
        lines = st[1].split(b"\r\n")
        if not any(len(x) >= 4 and x[3:4] == b" " for x in lines[:-1]):
            continue
        st[1] = b""
        if st[0] == 0:
            s.send(b"EHLO idle.example.org\r\n")
            st[0] = 1
        elif st[0] == 1:
            st[0] = 2
            sel.unregister(s)


def new_client_ms(port):
    t0 = time.monotonic()
    c = conftest.RawClient(port, "127.0.0.250", 10.0)
    r = c.cmd("EHLO late.example.org")
    ms = (time.monotonic() - t0) * 1000.0
    c.cmd("QUIT")
    c.close()
    assert r.code == 250, r
    return ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50000)
    ap.add_argument("--per-source", type=int, default=20000)
    ap.add_argument("--max-seconds", type=int, default=300)
    args = ap.parse_args()
    n = min(args.n, N_MAX)
    # ours: n sockets; the daemon's (inherited): two per session and more
    want = 3 * n + 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
        except (ValueError, OSError):
            # no CAP_SYS_RESOURCE (a sandbox): the hard limit bounds n
            print("idle_sessions: descriptor hard limit %d, cannot raise it to %d"
                  % (hard, want), file=sys.stderr)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    deadline = time.monotonic() + args.max_seconds
    with tempfile.TemporaryDirectory(prefix="postern-idle-") as root:
        srv = conftest.Server(root, conf={
            "log": {"level": "notice"},
            "limits": {"connections": str(n + 100), "connections_per_ip": "0",
                       "command_timeout": "3600"}})
        srv.start()
        try:
            srv.assert_serves()
            before = rss_kib(srv.pid)
            t0 = time.monotonic()
            socks = open_sessions(srv.port, n, args.per_source, deadline)
            opened_s = time.monotonic() - t0
            time.sleep(1.0)     # the last replies' buffers released
            held = rss_kib(srv.pid)
            late = new_client_ms(srv.port)
            out = {"sessions": n, "rss_before_kib": before, "rss_held_kib": held,
                   "kib_per_session": round((held - before) / n, 2),
                   "open_seconds": round(opened_s, 1), "new_client_ms": round(late, 1)}
            print(json.dumps(out))
            for s in socks:
                s.close()
        finally:
            srv.close()


if __name__ == "__main__":
    main()
