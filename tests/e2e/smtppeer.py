"""
smtppeer.py - receiving SMTP peers for the outbound tests.

SmtpSink runs Postfix's real smtp-sink on a loopback address and port,
dumping every transaction into a folder (its -d option), so a test can
count what arrived and compare the bytes.

ScriptPeer is a small threaded SMTP server the test steers: which
extensions its EHLO offers, what it answers to each command (4xx, 5xx,
421), and whether it stalls, drops the connection, sends an endless
line or trickles its greeting. It records every connection, every
transaction (envelope, parameters, data as received) and the socket
reads, so a test can see pipelining and where the end of data came.

Both are stopped by the test (context managers); every wait is bounded.
"""

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path


def free_port(host="127.0.0.1"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until(pred, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(0.05)


class SmtpSink:
    """Postfix's smtp-sink on host:port, one dump file per transaction."""

    def __init__(self, root, host="127.0.0.1", port=None, opts=()):
        self.host = host
        self.port = port or free_port(host)
        # smtp-sink writes as an unprivileged user: a folder it can reach
        self.dir = Path(tempfile.mkdtemp(prefix="postern-sink-", dir="/tmp"))
        os.chmod(self.dir, 0o777)
        self.root = Path(root)
        self.opts = list(opts)
        self.proc = None

    def start(self):
        user = "nobody"
        try:
            pwd.getpwnam(user)
        except KeyError:
            user = pwd.getpwuid(os.getuid()).pw_name
        addr = "[%s]:%d" % (self.host, self.port) if ":" in self.host else \
            "%s:%d" % (self.host, self.port)
        argv = ["smtp-sink", "-u", user, "-d", str(self.dir) + "/%H%M%S."] + \
            self.opts + [addr, "100"]
        self.log = open(self.root / ("sink-%d.log" % self.port), "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("smtp-sink exited: %s" % self.proc.returncode)
            with socket.socket(fam, socket.SOCK_STREAM) as s:
                s.settimeout(0.5)
                try:
                    s.connect((self.host, self.port))
                    s.recv(100)
                    return True
                except OSError:
                    return False
        wait_until(up, 10, "smtp-sink to listen")
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()

    def files(self):
        return sorted(p for p in self.dir.iterdir() if p.is_file())

    def messages(self):
        """Each dumped transaction as (envelope dict, message bytes)."""
        out = []
        for p in self.files():
            out.append(parse_sink_dump(p.read_bytes()))
        return out

    def wait_count(self, n, timeout=20.0):
        return wait_until(lambda: len(self.files()) >= n and self.messages(),
                          timeout, "%d messages at smtp-sink" % n)


def parse_sink_dump(blob):
    """smtp-sink -d writes "X-Client-Addr:", "X-Helo-Args:", "X-Mail-Args:",
    "X-Rcpt-Args:" lines and a blank line before the message."""
    env = {"rcpts": []}
    head, _, body = blob.partition(b"\n")
    lines = blob.split(b"\n")
    i = 0
    while i < len(lines) and lines[i].startswith(b"X-"):
        k, _, v = lines[i].partition(b":")
        v = v.strip().decode("latin-1")
        if k == b"X-Mail-Args":
            env["mail"] = v
        elif k == b"X-Rcpt-Args":
            env["rcpts"].append(v)
        elif k == b"X-Helo-Args":
            env["helo"] = v
        elif k == b"X-Client-Addr":
            env["client"] = v
        i += 1
    # the message follows the header block (smtp-sink writes it as received,
    # with CRLF line ends turned into LF)
    msg = b"\n".join(lines[i:])
    return env, msg


class Transaction:
    def __init__(self):
        self.mail = None
        self.mail_params = ""
        self.rcpts = []
        self.rcpt_params = []
        self.data = b""
        self.bdat = False
        self.accepted = []


class ScriptPeer:
    """A steerable SMTP server on host:port (threads, bounded)."""

    def __init__(self, host="127.0.0.1", port=None, name="peer.example.net",
                 ext=("PIPELINING", "SIZE 100000000", "8BITMIME", "ENHANCEDSTATUSCODES"),
                 greeting=None, replies=None, stall=(), drop=(), ehlo_code=250,
                 rcpt_reply=None, first_rcpt_replies=None):
        self.host = host
        self.port = port or free_port(host)
        self.name = name
        self.ext = list(ext)
        self.greeting = greeting or "220 %s ESMTP ready" % name
        # replies: command keyword (MAIL, RCPT, DATA, DOT, RSET, QUIT, EHLO,
        # HELO, BDAT) -> reply line; rcpt_reply(addr, n) -> reply or None
        self.replies = dict(replies or {})
        self.rcpt_reply = rcpt_reply
        self.stall = set(stall)     # commands never answered
        self.drop = set(drop)       # commands after which the peer closes
        self.ehlo_code = ehlo_code
        self.lock = threading.Lock()
        self.connections = 0
        self.transactions = []      # completed (end of data answered 250)
        self.all_transactions = []
        self.reads = []             # (connection no, bytes) per recv
        self.commands = []          # (connection no, line)
        self.clients = []           # the address each connection came from
        self.sock = None
        self.threads = []
        self.stopping = False
        self.trickle = None         # "greeting": send greeting 1 byte/s
        self.endless = None         # "greeting" or "ehlo": endless reply

    def start(self):
        fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((self.host, self.port))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)
        return self

    def stop(self):
        self.stopping = True
        if self.sock is not None:
            self.sock.close()
        for t in self.threads:
            t.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()

    def _accept(self):
        while not self.stopping:
            try:
                c, addr = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
                self.clients.append(addr[0])
                n = self.connections
            t = threading.Thread(target=self._serve, args=(c, n), daemon=True)
            t.start()
            self.threads.append(t)

    def _reply(self, key, default):
        return self.replies.get(key, default)

    def _serve(self, c, n):
        c.settimeout(0.2)
        buf = b""
        txn = None
        in_data = False
        bdat_left = 0
        deadline = time.monotonic() + 120
        try:
            if self.endless == "greeting":
                self._endless(c)
                return
            if self.trickle == "greeting":
                for ch in self.greeting.encode() + b"\r\n":
                    if self.stopping:
                        return
                    c.sendall(bytes([ch]))
                    time.sleep(1.0)
                return
            if "CONNECT" in self.stall:
                self._hold(c)
                return
            c.sendall(self.greeting.encode() + b"\r\n")
            if self.greeting[:1] in "45":
                self._hold_until_close(c)
                return
            while not self.stopping and time.monotonic() < deadline:
                try:
                    chunk = c.recv(65536)
                except socket.timeout:
                    continue
                if not chunk:
                    return
                with self.lock:
                    self.reads.append((n, chunk))
                buf += chunk
                out = []
                while True:
                    if bdat_left > 0:
                        take = buf[:bdat_left]
                        txn.data += take
                        buf = buf[len(take):]
                        bdat_left -= len(take)
                        if bdat_left > 0:
                            break
                        if txn.bdat_last:
                            out.append(self._end_of_data(txn))
                            txn = None
                        else:
                            out.append("250 2.0.0 chunk ok")
                        continue
                    if in_data:
                        # the data so far is txn.data; look for the end
                        # marker from just before the new bytes
                        start = max(0, len(txn.data) - 4)
                        txn.data += buf
                        buf = b""
                        if txn.data.startswith(b".\r\n"):
                            end, cut = 0, 3
                        else:
                            end = txn.data.find(b"\r\n.\r\n", start)
                            cut = end + 5
                            end = end + 2 if end >= 0 else -1
                        if end < 0:
                            break
                        buf = txn.data[cut:]
                        txn.data = txn.data[:end]
                        in_data = False
                        out.append(self._end_of_data(txn))
                        txn = None
                        continue
                    i = buf.find(b"\r\n")
                    if i < 0:
                        break
                    line = buf[:i].decode("utf-8", "replace")
                    buf = buf[i + 2:]
                    with self.lock:
                        self.commands.append((n, line))
                    verb = line.split(" ", 1)[0].upper()
                    key = verb
                    if verb == "MAIL":
                        key = "MAIL"
                    if key in self.stall:
                        self._flush(c, out)
                        self._hold(c)
                        return
                    r = self._command(line, verb, txn)
                    if isinstance(r, tuple):
                        r, txn_new = r
                        txn = txn_new
                    if r == "DATA-GO":
                        out.append(self._reply("DATA", "354 go ahead"))
                        if out[-1].startswith("354"):
                            in_data = True
                            txn.data = b""
                        continue
                    if isinstance(r, str) and r.startswith("BDAT-"):
                        size, last = r[5:].split(":")
                        bdat_left = int(size)
                        txn.bdat = True
                        txn.bdat_last = last == "1"
                        if bdat_left == 0 and txn.bdat_last:
                            out.append(self._end_of_data(txn))
                            txn = None
                        continue
                    out.append(r)
                    if verb in self.drop:
                        self._flush(c, out)
                        return
                    if verb == "QUIT":
                        self._flush(c, out)
                        return
                if "DOT" in self.drop and out and txn is None and not in_data and \
                        any(o.startswith("250") for o in out):
                    pass
                self._flush(c, out)
        except OSError:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def _flush(self, c, out):
        if out:
            c.sendall(("\r\n".join(out) + "\r\n").encode())
            del out[:]

    def _hold(self, c):
        while not self.stopping:
            try:
                if not c.recv(65536):
                    return
            except socket.timeout:
                continue
            except OSError:
                return

    def _hold_until_close(self, c):
        self._hold(c)

    def _endless(self, c):
        try:
            c.sendall(b"220-")
            while not self.stopping:
                c.sendall(b"x" * 4096)
                time.sleep(0.01)
        except OSError:
            return

    def _end_of_data(self, txn):
        txn.done_reply = self._reply("DOT", "250 2.0.0 Ok: queued")
        with self.lock:
            self.all_transactions.append(txn)
            if txn.done_reply.startswith("2"):
                self.transactions.append(txn)
        return txn.done_reply

    def _command(self, line, verb, txn):
        if verb in ("EHLO", "HELO"):
            if verb == "EHLO" and self.ehlo_code != 250:
                return "%d 5.5.1 EHLO not here" % self.ehlo_code
            if "EHLO" in self.replies and verb == "EHLO":
                return self.replies["EHLO"]
            if verb == "HELO":
                return self._reply("HELO", "250 %s" % self.name)
            lines = ["250-%s" % self.name] + ["250-%s" % e for e in self.ext[:-1]] + \
                ["250 %s" % self.ext[-1]] if self.ext else ["250 %s" % self.name]
            return "\r\n".join(lines)
        if verb == "MAIL":
            r = self._reply("MAIL", "250 2.1.0 Ok")
            if not r.startswith("2"):
                return r, None
            t = Transaction()
            m = re.match(r"MAIL FROM:<([^>]*)>(.*)", line, re.I)
            t.mail = m.group(1) if m else line
            t.mail_params = (m.group(2).strip() if m else "")
            return r, t
        if verb == "RCPT":
            if txn is None:
                return "503 5.5.1 need MAIL"
            m = re.match(r"RCPT TO:<([^>]*)>(.*)", line, re.I)
            addr = m.group(1) if m else line
            r = None
            if self.rcpt_reply is not None:
                r = self.rcpt_reply(addr, len(txn.rcpts))
            if r is None:
                r = self._reply("RCPT", "250 2.1.5 Ok")
            txn.rcpts.append(addr)
            txn.rcpt_params.append(m.group(2).strip() if m else "")
            if r.startswith("2"):
                txn.accepted.append(addr)
            return r
        if verb == "DATA":
            if txn is None or not txn.accepted:
                return "554 5.5.1 no valid recipients"
            return "DATA-GO"
        if verb == "BDAT":
            parts = line.split()
            size = int(parts[1])
            last = len(parts) > 2 and parts[2].upper() == "LAST"
            return "BDAT-%d:%d" % (size, 1 if last else 0)
        if verb == "RSET":
            return self._reply("RSET", "250 2.0.0 Ok"), None
        if verb == "NOOP":
            return "250 2.0.0 Ok"
        if verb == "QUIT":
            return self._reply("QUIT", "221 2.0.0 Bye")
        if verb == "STARTTLS":
            return "454 4.7.0 TLS not available"
        return "502 5.5.2 Error: command not recognized"

    def wait_transactions(self, n, timeout=20.0):
        return wait_until(lambda: len(self.transactions) >= n and list(self.transactions),
                          timeout, "%d transactions at the peer" % n)
