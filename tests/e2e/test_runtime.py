"""
test_runtime.py - issue 7 points 5 and 8: RLIMIT_NOFILE is raised to what
limits.connections needs, or a clear event names the connection limit in
force; 2,000 concurrent sessions are held and a new client is still served.
"""

import resource
import selectors
import socket
import time

from conftest import make_message

GREETING_TIMEOUT = 20.0


def nofile_limits(pid):
    """(soft, hard) of "Max open files" in /proc/<pid>/limits."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                parts = line.split()
                return int(parts[3]), int(parts[4])
    raise AssertionError("no Max open files line")


def low_nofile(soft, hard):
    def preexec():
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return preexec


def test_nofile_soft_limit_raised_to_what_connections_need(make_server):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    # 1000 sessions x 2 + 1 loop x (1 listener + 2) + 2 workers x 4 pools
    # x 4 + 64 = 2099 descriptors.
    assert hard == resource.RLIM_INFINITY or hard >= 2099, \
        "the test machine's hard limit is below 2099"
    srv = make_server(preexec=low_nofile(256, hard),
                      conf={"limits": {"connections": "1000"}, "server": {"loops": "1"}})
    soft, _ = nofile_limits(srv.pid)
    assert soft >= 2099, soft
    assert not srv.events("STARTUP-NOFILE-TOO-LOW")
    srv.assert_serves()


def test_nofile_hard_limit_too_low_warns_with_the_sessions_that_fit(make_server):
    # Not root: the hard limit of 300 cannot be raised. 2099 are needed;
    # 300 - 99 fixed leaves 100 sessions at 2 descriptors each.
    srv = make_server(preexec=low_nofile(256, 300),
                      conf={"limits": {"connections": "1000", "connections_per_ip": "0"},
                            "server": {"loops": "1"}})
    ev = srv.wait_event("STARTUP-NOFILE-TOO-LOW")
    assert len(ev) == 1
    ev = ev[0]
    assert ev["sev"] == "warning", ev
    assert (ev["needed"], ev["limit"], ev["connections"], ev["effective"]) == \
        ("2099", "300", "1000", "100"), ev
    assert nofile_limits(srv.pid) == (300, 300)     # soft raised to the hard
    clients = []
    try:
        for _ in range(100):
            c = srv.raw()
            assert c.greeting.code == 220, c.greeting
            clients.append(c)
        srv.assert_serves()
    finally:
        for c in clients:
            c.close()


def read_greetings(socks, timeout):
    """Reads one 220 line from every socket, concurrently."""
    sel = selectors.DefaultSelector()
    bufs = {}
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        bufs[s] = b""
    pending = len(socks)
    deadline = time.monotonic() + timeout
    while pending:
        left = deadline - time.monotonic()
        assert left > 0, "%d greetings missing" % pending
        for key, _ in sel.select(min(left, 1.0)):
            s = key.fileobj
            chunk = s.recv(4096)
            assert chunk, "closed before its greeting: %r" % bufs[s]
            bufs[s] += chunk
            if b"\r\n" in bufs[s]:
                assert bufs[s].startswith(b"220 "), bufs[s]
                sel.unregister(s)
                pending -= 1
    sel.close()
    for s in socks:
        s.setblocking(True)


def test_two_thousand_sessions_and_a_new_client_is_served(make_server):
    n = 2000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 256
    assert hard == resource.RLIM_INFINITY or hard >= want, hard
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    srv = make_server(conf={"limits": {"connections": "3000", "connections_per_ip": "0"},
                            "log": {"level": "info"}})
    start = time.monotonic()
    socks = []
    try:
        # In rounds of 100 so the listen backlog never overflows.
        for _ in range(n // 100):
            batch = [socket.create_connection(("127.0.0.1", srv.port), timeout=10)
                     for _ in range(100)]
            socks += batch
            read_greetings(batch, GREETING_TIMEOUT)
        assert len(socks) == n
        # With all 2,000 open, a new client: greeting, EHLO, a message.
        srv.assert_serves()
        code, msg = srv.send_mail(data=make_message("beside-2000"))
        assert code == 250, (code, msg)
        srv.wait_mail("alice")
        # Every one of the 2,000 is still a live session.
        for s in socks:
            s.sendall(b"NOOP\r\n")
        sel = selectors.DefaultSelector()
        for s in socks:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
        ok, deadline = 0, time.monotonic() + GREETING_TIMEOUT
        while ok < n and time.monotonic() < deadline:
            for key, _ in sel.select(1.0):
                data = key.fileobj.recv(4096)
                assert data.startswith(b"250 "), data
                sel.unregister(key.fileobj)
                ok += 1
        sel.close()
        assert ok == n
        assert not srv.events("NET-SERVER-BUSY")
    finally:
        for s in socks:
            s.close()
    assert srv.wait_event("SESSION-END", count=n + 2, timeout=30)
    assert time.monotonic() - start < 30
