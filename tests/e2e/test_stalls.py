"""
test_stalls.py - no stalls the peers fall into (issue 10 point 8).

The listen backlog: server.listen_backlog (default 4096) is what every
listening socket gets, capped by net.core.somaxconn with
NET-LISTEN-BACKLOG-CAPPED; a burst of 300 connections from ten 127.0.0.x
addresses against a server that accepts nothing (SIGSTOP) completes
every handshake in the kernel's queue, and each gets its greeting once
the server runs again (OpenSMTPD's backlog of 5 drops them).

Replies under pipelining (RFC 2920 3.2): the replies to a pipelined batch
come in one write as soon as no further complete command is buffered (a
partial command after them does not hold them back), a lone command's
reply comes at once, and QUIT's 221 and the close are not delayed
(Exim waits 200 ms). Times are bounded with the smallest of a few
samples, so a loaded machine does not fail them and a reply held on a
timer cannot pass. The outbound client's end of data sent with the last
block is tested in test_outbound.py (test_end_of_data_with_last_block).
"""
import select
import signal
import socket
import subprocess
import time

import pytest

from conftest import DOMAIN, RawClient

ALICE = "alice@" + DOMAIN
BOB = "bob@" + DOMAIN


def somaxconn():
    with open("/proc/sys/net/core/somaxconn") as f:
        return int(f.read().strip())


def listen_backlogs(port):
    """The backlog (ss's Send-Q of a listening socket) of each socket
    listening on 127.0.0.1:port."""
    out = subprocess.run(["ss", "-ltnH", "sport = :%d" % port], capture_output=True,
                         text=True, timeout=10, check=True).stdout
    return [int(line.split()[2]) for line in out.splitlines() if line.strip()]


def test_listen_backlog_default_is_large(make_server):
    srv = make_server(opts=["server.loops=2"])
    want = min(4096, somaxconn())
    assert listen_backlogs(srv.port) == [want, want]
    if somaxconn() >= 4096:
        assert srv.events("NET-LISTEN-BACKLOG-CAPPED") == []


def test_listen_backlog_option_and_cap(make_server):
    srv = make_server(opts=["server.listen_backlog=700", "server.loops=1"])
    assert listen_backlogs(srv.port) == [min(700, somaxconn())]
    srv.stop()

    cap = somaxconn()
    if cap >= 1048576:
        pytest.skip("net.core.somaxconn is at least the option's maximum")
    srv = make_server(opts=["server.listen_backlog=%d" % (cap + 1), "server.loops=1"])
    ev = srv.wait_event("NET-LISTEN-BACKLOG-CAPPED")[0]
    assert ev["backlog"] == str(cap + 1) and ev["somaxconn"] == str(cap)
    assert listen_backlogs(srv.port) == [cap]
    srv.assert_serves()


def open_burst(port, n, sources, timeout):
    """Starts n non-blocking connects spread over the source addresses;
    returns (connected sockets, failures) once every one has completed or
    failed, or when timeout runs out (the rest count as failures)."""
    pending, done, failed = {}, [], []
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.bind((sources[i % len(sources)], 0))
        err = s.connect_ex(("127.0.0.1", port))
        if err not in (0, 115):  # EINPROGRESS
            failed.append(err)
            s.close()
            continue
        pending[s.fileno()] = s
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        _, w, _ = select.select([], list(pending.values()), [], 0.1)
        for s in w:
            del pending[s.fileno()]
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                failed.append(err)
                s.close()
            else:
                done.append(s)
    for s in pending.values():
        failed.append("timeout")
        s.close()
    return done, failed


def read_greeting(s, deadline):
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            return buf
        s.settimeout(left)
        try:
            chunk = s.recv(4096)
        except (socket.timeout, ConnectionError):
            return buf
        if not chunk:
            return buf
        buf += chunk
    return buf


def test_burst_while_loops_do_not_accept(make_server):
    """300 connections land while the server accepts none: all complete
    in the kernel's queue and all are served once it runs again."""
    n = 300
    sources = ["127.0.0.%d" % i for i in range(2, 12)]  # 30 per address
    srv = make_server(opts=["server.loops=1"])
    srv.signal(signal.SIGSTOP)
    socks = []
    try:
        socks, failed = open_burst(srv.port, n, sources, timeout=10.0)
        assert failed == [] and len(socks) == n
    finally:
        srv.signal(signal.SIGCONT)
    try:
        deadline = time.monotonic() + 30.0
        greetings = [read_greeting(s, deadline) for s in socks]
        assert [g[:4] for g in greetings] == [b"220 "] * n
        for s in socks:
            s.sendall(b"QUIT\r\n")
        for s in socks:
            assert read_greeting(s, deadline).startswith(b"221 ")
    finally:
        for s in socks:
            s.close()
    srv.assert_serves()


# ---------------------------------------------------------------- replies

def pipelined_batch(port):
    """MAIL, two RCPT and DATA in one write, then the start of a command
    that has no end yet: returns the first chunk read, the seconds until
    it came, and the client."""
    c = RawClient(port)
    assert c.cmd("EHLO client.example.org").last.startswith("250")
    batch = ("MAIL FROM:<sender@example.org>\r\nRCPT TO:<%s>\r\nRCPT TO:<%s>\r\n"
             "NOOP\r\nRSET\r\nNO" % (ALICE, BOB)).encode()
    t0 = time.monotonic()
    c.sock.sendall(batch)
    c.sock.settimeout(5.0)
    first = c.sock.recv(65536)
    return first, time.monotonic() - t0, c


def test_pipelined_replies_in_one_write_at_once(server):
    samples = []
    for _ in range(3):
        first, took, c = pipelined_batch(server.port)
        with c:
            lines = first.decode().split("\r\n")
            # all five replies in the first read: one write, not held for
            # the partial "NO" after them
            assert [l[:3] for l in lines[:5]] == ["250"] * 5 and lines[5] == ""
            assert lines[1].startswith("250 2.1.5") and lines[2].startswith("250 2.1.5")
            c.buf = b""
            c.send(b"OP\r\n")
            assert c.reply().last.startswith("250 2.0.0")
            samples.append(took)
    assert min(samples) < 0.1, samples


def test_lone_command_and_quit_answered_at_once(server):
    noop, quit_, close = [], [], []
    for _ in range(3):
        c = RawClient(server.port)
        with c:
            assert c.cmd("EHLO client.example.org").last.startswith("250")
            t0 = time.monotonic()
            assert c.cmd("NOOP").last.startswith("250")
            noop.append(time.monotonic() - t0)
            t0 = time.monotonic()
            assert c.cmd("QUIT").last.startswith("221 2.0.0")
            quit_.append(time.monotonic() - t0)
            assert c.closed(timeout=5.0)
            close.append(time.monotonic() - t0)
    assert min(noop) < 0.1, noop
    assert min(quit_) < 0.1, quit_
    assert min(close) < 0.1, close
