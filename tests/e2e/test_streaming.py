"""
test_streaming.py - issue 7 point 1: message data streams to the spool file
through a bounded buffer (store/body_sink.h), never whole in memory; a write
error in the middle of the data is answered 451 after the data was read to
its end, and leaves nothing behind.

Memory figures are asserted on the plain build with room (the issue's
precisions): a 50 MiB message raises the daemon's peak RSS by at most 8 MiB,
200 sessions each halfway through a 5 MiB message keep it under 96 MiB.
"""

import hashlib
import resource
import socket
import time

import pytest

from conftest import make_message, proc_status_kib, split_delivered

MIB = 1024 * 1024


def body_of(size, seed=b"line"):
    """size bytes of CRLF lines (no line starts with a dot)."""
    line = seed + b" " + b"x" * 90 + b"\r\n"
    n = size // len(line) + 1
    return (line * n)[:size - 2] + b"\r\n"


def asan_build():
    import os
    return "asan" in os.environ.get("POSTERN_BIN", "")


def big_message_peak_rise(srv, size):
    """Sends one message of size octets to bob (after a small one to warm
    the path), checks it arrived whole, and returns the daemon's peak RSS
    rise over receiving, committing and delivering it, in KiB (also used
    by bench/stream_memory.py)."""
    assert srv.send_mail()[0] == 250
    srv.wait_mail("alice")
    srv.wait_queue_empty()
    base = proc_status_kib(srv.pid, "VmRSS")

    data = make_message("big", body=body_of(size))
    want = hashlib.sha256(data).hexdigest()
    mark = srv.mark()
    with srv.raw(timeout=60) as c:
        c.cmd("EHLO client.example.org")
        assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
        assert c.cmd("RCPT TO:<bob@example.test>").code == 250
        assert c.cmd("DATA").code == 354
        for off in range(0, len(data), MIB):
            c.send(data[off:off + MIB])
        c.send(b".\r\n")
        r = c.reply(timeout=60)
        assert r.code == 250 and r.text.startswith("2.0.0"), r
        c.cmd("QUIT")
    files = srv.wait_mail("bob", timeout=60)
    srv.wait_queue_empty(timeout=60)
    ev = srv.wait_event("SESSION-MESSAGE", after=mark, verdict="accepted")[0]
    assert int(ev["size"]) == len(data), ev
    stored = split_delivered(files[0].read_bytes())[3]
    assert hashlib.sha256(stored).hexdigest() == want
    return proc_status_kib(srv.pid, "VmHWM") - base


def test_50mib_message_streams_with_bounded_memory(make_server):
    srv = make_server(conf={"limits": {"message_size": str(64 * MIB)},
                            "log": {"level": "info"}})
    rise = big_message_peak_rise(srv, 50 * MIB)
    # Memory is asserted on the plain build only (issue 7): ASan keeps freed
    # memory in quarantine, so its peak says nothing about Postern's.
    if not asan_build():
        assert rise <= 8 * 1024, "peak RSS rose by %d KiB" % rise


def sessions_halfway_rss(srv, n, half, socks):
    """Opens n sessions to carol, sends each half octets of data, waits
    until their spool files hold it, and returns the daemon's RSS in KiB.
    The sockets are appended to socks (the caller closes them); also used
    by bench/stream_memory.py."""
    chunk = 256 * 1024
    piece = body_of(chunk, b"half")
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        f = s.makefile("rb")
        socks.append((s, f))
        assert f.readline().startswith(b"220")
        s.sendall(b"EHLO c%d.example.org\r\n" % i)
        while True:
            line = f.readline()
            assert line.startswith(b"250"), line
            if line[3:4] == b" ":
                break
        s.sendall(b"MAIL FROM:<s@example.org>\r\nRCPT TO:<carol@example.test>\r\nDATA\r\n")
        for want in (b"250", b"250", b"354"):
            line = f.readline()
            assert line.startswith(want), line
    sent = 0
    while sent < half:
        for s, _ in socks:
            s.sendall(piece)
        sent += len(piece)
    # every session's data so far reached its spool file, but for what
    # the session's bounded buffer holds (under 64 KiB)
    on_disk = half - 64 * 1024
    deadline = time.monotonic() + 60
    incoming = srv.spool / "incoming"
    while time.monotonic() < deadline:
        sizes = [p.stat().st_size for p in incoming.iterdir()]
        if len(sizes) == n and min(sizes) >= on_disk:
            break
        time.sleep(0.1)
    sizes = [p.stat().st_size for p in incoming.iterdir()]
    assert len(sizes) == n and min(sizes) >= on_disk, (len(sizes), min(sizes or [0]))
    return proc_status_kib(srv.pid, "VmRSS")


def test_200_sessions_halfway_through_5mib_stay_small(make_server):
    srv = make_server(conf={"limits": {"message_size": str(8 * MIB),
                                       "connections_per_ip": "0"},
                            "log": {"level": "info"}})
    n, half = 200, 5 * MIB // 2
    socks = []
    try:
        rss = sessions_halfway_rss(srv, n, half, socks)
        if not asan_build():	# plain build only, as above
            assert rss < 96 * 1024, "RSS %d KiB with %d sessions halfway" % (rss, n)
        # one of them finishes: its message is whole
        s, f = socks[0]
        s.sendall(b".\r\n")
        line = f.readline()
        assert line.startswith(b"250 2.0.0"), line
        files = srv.wait_mail("carol", timeout=60)
        assert len(split_delivered(files[0].read_bytes())[3]) >= half
    finally:
        for s, f in socks:
            f.close()
            s.close()
    # the others left mid-data: their files go
    mark_deadline = time.monotonic() + 30
    while srv.spool_files("incoming") and time.monotonic() < mark_deadline:
        time.sleep(0.1)
    assert srv.spool_files("incoming") == []
    srv.wait_queue_empty()
    srv.assert_serves()


def limit_fsize_1mib():
    resource.setrlimit(resource.RLIMIT_FSIZE, (MIB, MIB))


@pytest.mark.parametrize("verb", ["DATA", "BDAT"])
def test_write_error_mid_body_gives_451_after_the_data(make_server, verb):
    """The spool file hits RLIMIT_FSIZE at 1 MiB, in the middle of a 3 MiB
    message: the data is still read to its end, the answer is 451 4.3.0
    [QUEUE-WRITE-FAILED] (op=write, EFBIG), the session goes on, and no
    file stays in incoming/ or queue/."""
    srv = make_server(conf={"log": {"level": "info"}}, preexec=limit_fsize_1mib)
    body = make_message("toolong", body=body_of(3 * MIB))
    mark = srv.mark()
    with srv.raw(timeout=30) as c:
        c.cmd("EHLO client.example.org")
        assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        if verb == "DATA":
            assert c.cmd("DATA").code == 354
            c.send(body + b".\r\n")
            r = c.reply(timeout=30)
        else:
            third = len(body) // 3
            for i, part in enumerate((body[:third], body[third:2 * third], body[2 * third:])):
                last = b" LAST" if i == 2 else b""
                c.send(b"BDAT %d%s\r\n" % (len(part), last) + part)
                r = c.reply(timeout=30)
                if i < 2:
                    # the chunks are taken; the failure is told at the end
                    assert r.code == 250, r
        assert r.code == 451 and r.text.startswith("4.3.0"), r
        assert r.text.rstrip().endswith("[QUEUE-WRITE-FAILED]"), r
        # the session goes on: a small message is accepted
        assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        assert c.cmd("DATA").code == 354
        small = make_message("small")
        c.send(small + b".\r\n")
        assert c.reply().code == 250
        c.cmd("QUIT")
    ev = srv.wait_event("QUEUE-WRITE-FAILED", after=mark)[0]
    assert ev["op"] == "write" and ev["errno"] == "EFBIG", ev
    msg = srv.wait_event("SESSION-MESSAGE", after=mark, verdict="tempfail")[0]
    assert msg["cause"] == "QUEUE-WRITE-FAILED", msg
    files = srv.wait_mail("alice")
    assert len(files) == 1
    assert split_delivered(files[0].read_bytes())[3] == small
    srv.wait_queue_empty()
    assert srv.spool_files("incoming") == []
    assert srv.spool_files("queue") == []
    assert srv.alive()
