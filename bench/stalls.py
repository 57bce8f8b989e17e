#!/usr/bin/python3
"""
stalls.py - the stalls of issue 10 point 8, measured on any SMTP server on
127.0.0.1 (Postern and its peers alike); bench/stalls.sh runs it on each.

  stalls.py backlog PORT            the listening socket's backlog (ss Send-Q)
  stalls.py burst PORT N            N connections opened at once (from
                                    127.0.0.2..11): greetings within 1 s,
                                    later (a dropped SYN waits for its
                                    retransmission, 1 s, 3 s...), none, and
                                    the kernel's ListenOverflows counter
  stalls.py quit PORT               EHLO, then the time from QUIT to 221 and
                                    to the close, median of 5
  stalls.py recorder PORT SECONDS   a receiving SMTP server that records the
                                    time of every read; at the end, per
                                    message: was the end of data (CRLF . CRLF)
                                    in the same read as the data before it,
                                    and the gap between them
  stalls.py send PORT FROM TO N     N messages of 5 KiB, one per connection

Every count and wait is bounded. Prints one JSON object per command.
"""
import json
import select
import socket
import statistics
import subprocess
import sys
import threading
import time


def listen_overflows():
    with open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
    for i in range(0, len(lines) - 1, 2):
        if lines[i].startswith("TcpExt:"):
            d = dict(zip(lines[i].split()[1:], lines[i + 1].split()[1:]))
            return int(d.get("ListenOverflows", 0))
    return 0


def cmd_backlog(port):
    out = subprocess.run(["ss", "-ltnH", "sport = :%d" % port], capture_output=True,
                         text=True, timeout=10).stdout
    return {"port": port, "backlogs": [int(l.split()[2]) for l in out.splitlines() if l.strip()]}


def cmd_burst(port, n):
    n = max(1, min(n, 1000))
    sources = ["127.0.0.%d" % i for i in range(2, 12)]
    ov0 = listen_overflows()
    socks, started, got = [], {}, {}
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.bind((sources[i % len(sources)], 0))
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
        started[s.fileno()] = time.monotonic()
    bufs = {s.fileno(): b"" for s in socks}
    failed = 0
    deadline = time.monotonic() + 10.0
    live = list(socks)
    while live and time.monotonic() < deadline:
        r, _, _ = select.select(live, [], [], 0.1)
        for s in r:
            try:
                chunk = s.recv(4096)
            except OSError:
                chunk = b""
            if not chunk:
                failed += 1
                live.remove(s)
                continue
            bufs[s.fileno()] += chunk
            if b"\n" in bufs[s.fileno()]:
                got[s.fileno()] = time.monotonic() - started[s.fileno()]
                live.remove(s)
    for s in socks:
        try:
            s.setblocking(True)
            s.settimeout(1.0)
            if s.fileno() in got:
                s.sendall(b"QUIT\r\n")
        except OSError:
            pass
    time.sleep(0.2)  # let the QUITs go out before the closes (not a check)
    for s in socks:
        s.close()
    times = sorted(got.values())
    return {"port": port, "connections": n,
            "greeted_within_1s": sum(1 for t in times if t < 1.0),
            "greeted_later": sum(1 for t in times if t >= 1.0),
            "not_greeted_in_10s": n - len(times) - failed, "closed_or_reset": failed,
            "greeting_p50_ms": round(times[len(times) // 2] * 1e3, 1) if times else None,
            "greeting_max_ms": round(times[-1] * 1e3, 1) if times else None,
            "listen_overflows": listen_overflows() - ov0}


def read_reply(s, deadline):
    buf = b""
    while True:
        lines = buf.split(b"\r\n")
        for l in lines[:-1]:
            if len(l) >= 4 and l[3:4] == b" ":
                return l
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        s.settimeout(left)
        chunk = s.recv(4096)
        if not chunk:
            return None
        buf += chunk


def cmd_quit(port):
    to_221, to_close = [], []
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        d = time.monotonic() + 10
        read_reply(s, d)
        s.sendall(b"EHLO client.example.org\r\n")
        read_reply(s, d)
        t0 = time.monotonic()
        s.sendall(b"QUIT\r\n")
        r = read_reply(s, d)
        to_221.append(time.monotonic() - t0 if r and r.startswith(b"221") else float("nan"))
        s.settimeout(max(0.1, d - time.monotonic()))
        try:
            while s.recv(4096):
                pass
        except OSError:
            pass
        to_close.append(time.monotonic() - t0)
        s.close()
    return {"port": port, "quit_to_221_ms": round(statistics.median(to_221) * 1e3, 2),
            "quit_to_close_ms": round(statistics.median(to_close) * 1e3, 2), "samples": 5}


def serve_recorder(c, record):
    """One connection of the recorder: 220, answers every command, keeps
    (time, bytes) of each read during DATA."""
    c.settimeout(2.0)
    # replies go out at once (the peer's own writes are what is measured)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.sendall(b"220 sink.example.net ESMTP\r\n")
    buf, in_data, reads, t_data = b"", False, [], None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = c.recv(65536)
        except OSError:
            break
        if not chunk:
            break
        now = time.monotonic()
        if in_data:
            reads.append((now, chunk))
            buf += chunk
            if buf.endswith(b"\r\n.\r\n"):
                last = reads[-1][1]
                alone = last in (b".\r\n", b"\r\n.\r\n") and len(reads) > 1
                record.append({"reads": len(reads), "dot_in_own_read": alone,
                               "dot_gap_ms": round((reads[-1][0] - reads[-2][0]) * 1e3, 2)
                               if len(reads) > 1 else 0.0,
                               "data_to_dot_ms": round((now - t_data) * 1e3, 2)})
                in_data, buf, reads = False, b"", []
                c.sendall(b"250 2.0.0 Ok\r\n")
            continue
        buf += chunk
        out = b""   # replies to every complete command, in one write
        while b"\r\n" in buf and not in_data:
            line, buf = buf.split(b"\r\n", 1)
            verb = line[:4].upper()
            if verb in (b"EHLO",):
                out += b"250-sink.example.net\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
            elif verb == b"DATA":
                out += b"354 go ahead\r\n"
                in_data, t_data = True, time.monotonic()
                if buf:
                    reads.append((now, buf))
            elif verb == b"QUIT":
                c.sendall(out + b"221 bye\r\n")
                c.close()
                return
            else:
                out += b"250 Ok\r\n"
        if out:
            c.sendall(out)
    c.close()


def cmd_recorder(port, seconds):
    seconds = max(1, min(seconds, 600))
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(64)
    ls.settimeout(0.2)
    record, threads = [], []
    end = time.monotonic() + seconds
    print("ready", flush=True)
    while time.monotonic() < end:
        try:
            c, _ = ls.accept()
        except socket.timeout:
            continue
        t = threading.Thread(target=serve_recorder, args=(c, record), daemon=True)
        t.start()
        threads.append(t)
    ls.close()
    for t in threads:
        t.join(5)
    own = sum(1 for r in record if r["dot_in_own_read"])
    gaps = [r["dot_gap_ms"] for r in record]
    return {"port": port, "messages": len(record), "dot_in_own_read": own,
            "dot_gap_ms_median": statistics.median(gaps) if gaps else None,
            "data_to_dot_ms_median": statistics.median([r["data_to_dot_ms"] for r in record])
            if record else None, "each": record[:20]}


def cmd_send(port, frm, to, n):
    n = max(1, min(n, 100))
    body = ("From: <%s>\r\nTo: <%s>\r\nSubject: stall bench\r\nMessage-ID: <%%d.%f@bench>\r\n"
            "Date: Thu, 03 Dec 2026 00:00:00 +0000\r\n\r\n" % (frm, to, time.time()))
    line = b"x" * 76 + b"\r\n"
    ok = 0
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        d = time.monotonic() + 20
        read_reply(s, d)
        replies = []
        for c in (b"EHLO client.example.org", b"MAIL FROM:<%s>" % frm.encode(),
                  b"RCPT TO:<%s>" % to.encode(), b"DATA"):
            s.sendall(c + b"\r\n")
            replies.append(read_reply(s, d))
        s.sendall((body % i).encode() + line * 66 + b".\r\n")
        r = read_reply(s, d)
        s.sendall(b"QUIT\r\n")
        read_reply(s, d)
        s.close()
        ok += 1 if r and r.startswith(b"250") else 0
    return {"port": port, "sent": n, "accepted": ok}


def main(a):
    if len(a) >= 2 and a[0] == "backlog":
        out = cmd_backlog(int(a[1]))
    elif len(a) >= 3 and a[0] == "burst":
        out = cmd_burst(int(a[1]), int(a[2]))
    elif len(a) >= 2 and a[0] == "quit":
        out = cmd_quit(int(a[1]))
    elif len(a) >= 3 and a[0] == "recorder":
        out = cmd_recorder(int(a[1]), int(a[2]))
    elif len(a) >= 5 and a[0] == "send":
        out = cmd_send(int(a[1]), a[2], a[3], int(a[4]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
