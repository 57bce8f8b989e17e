"""
conftest.py - shared fixtures of the end-to-end suite: a Server that runs the
real postern binary on a generated configuration, a logfmt parser, and a raw
socket SMTP client for what smtplib cannot do.

Every wait here is bounded. Servers listen on 127.0.0.1 on a port picked by
binding port 0. When POSTERN_EVENTS_LOG is set, each server's log lines are
appended to that file when the server is torn down, for check_coverage.py.
"""

import os
import re
import signal
import smtplib
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = os.path.abspath(os.environ.get("POSTERN_BIN") or str(REPO / "build" / "postern"))

HOSTNAME = "mx.example.test"
DOMAIN = "example.test"

# user -> yescrypt hash of "<user>-pw" (made with crypt(3)); AUTH is not part
# of this issue, the accounts only have to exist.
ACCOUNTS = {
    "alice": "$y$j9T$TtDXYbRDAyByxfdr$Cd6GKiu7V7PdjiJChHYWbL8Zlyi/lwYWgvr.3/a2Fe4",
    "bob": "$y$j9T$aIaLdRPecaVuy3fR$XqZ.7D5YdY35JLDN6Aapxn9A1ivLfyjySgJNyZsN1lB",
    "postmaster": "$y$j9T$o5VLURUhoXwSj9fF$hvDVvxmfVZfygXTZwPt9oLWNBrIXTWPN9RVPerXuyjB",
    "carol": "$y$j9T$A.zMzZzWdAewtIMB$Yzftw126rXpNX1XfGcnOs6OJPwsO85nYm6Q0s5FviEC",
    "jos\u00e9": "$y$j9T$GN3EyM9sDNmrtbCx$N2lymDz09C5gqtlNetbIm/XRnMBRF0HqVrRF52VNpZ8",
}

START_TIMEOUT = 15.0
STOP_TIMEOUT = 20.0
MAIL_TIMEOUT = 10.0


# ---------------------------------------------------------------- helpers

def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def run_cli(*args, stdin=None, timeout=30):
    """Runs `postern ARGS`; returns CompletedProcess with text output."""
    return subprocess.run([BIN, *args], input=stdin, capture_output=True,
                          text=True, timeout=timeout)


_ESC = {'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}


def parse_logfmt(line):
    """Parses one logfmt line into an ordered dict of str -> str.
    Quoted values undo \\" \\\\ \\n \\r \\t \\xHH. Returns {} for a line that
    does not start with a key=value pair."""
    out = {}
    i, n = 0, len(line)
    while i < n:
        while i < n and line[i] == " ":
            i += 1
        if i >= n:
            break
        j = i
        while j < n and line[j] not in "= ":
            j += 1
        key = line[i:j]
        if j >= n or line[j] != "=":
            # a bare word: not logfmt (keep it as a flag)
            if key:
                out[key] = ""
            i = j
            continue
        j += 1
        if j < n and line[j] == '"':
            j += 1
            val = []
            while j < n and line[j] != '"':
                c = line[j]
                if c == "\\" and j + 1 < n:
                    e = line[j + 1]
                    if e == "x" and j + 3 < n:
                        try:
                            val.append(chr(int(line[j + 2:j + 4], 16)))
                            j += 4
                            continue
                        except ValueError:
                            pass
                    val.append(_ESC.get(e, e))
                    j += 2
                    continue
                val.append(c)
                j += 1
            out[key] = "".join(val)
            j += 1  # closing quote
        else:
            k = j
            while k < n and line[k] != " ":
                k += 1
            out[key] = line[j:k]
            j = k
        i = j
    return out


class Reply:
    """One SMTP reply: code, the text lines (without code), raw lines."""

    def __init__(self, lines):
        self.raw = lines
        self.code = int(lines[-1][:3]) if lines and lines[-1][:3].isdigit() else 0
        self.lines = [l[4:] for l in lines]

    @property
    def text(self):
        return "\n".join(self.lines)

    @property
    def last(self):
        return self.raw[-1] if self.raw else ""

    def __repr__(self):
        return "Reply(%r)" % (self.raw,)


class RawClient:
    """A byte-level SMTP client: send exactly what the test says, read
    complete (multi-line) replies."""

    def __init__(self, port, source=None, timeout=10.0, read_greeting=True):
        self.sock = socket.create_connection(
            ("127.0.0.1", port), timeout=timeout,
            source_address=(source, 0) if source else None)
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self.buf = b""
        self.greeting = self.reply() if read_greeting else None

    def send(self, data, timeout=None):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.settimeout(timeout or self.timeout)
        self.sock.sendall(data)

    def _line(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no reply line")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by server; partial=%r" % self.buf)
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def reply(self, timeout=None):
        lines = []
        while True:
            line = self._line(timeout)
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return Reply(lines)

    def cmd(self, line, timeout=None):
        if isinstance(line, str):
            line = line.encode("utf-8")
        self.send(line + b"\r\n")
        return self.reply(timeout)

    def closed(self, timeout=5.0):
        """True when the server closed the connection within timeout (any
        unread bytes are discarded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError):
                return True
            if not chunk:
                return True
            self.buf += chunk
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def reset_close(self):
        """Closes with RST (SO_LINGER 0)."""
        import struct
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def smtp_client(port, source=None, timeout=10.0):
    s = smtplib.SMTP(timeout=timeout,
                     source_address=(source, 0) if source else None)
    s.connect("127.0.0.1", port)
    return s


def make_message(token="", subject="test", body=None, msgid=None, extra=b""):
    """An RFC 5322 message as bytes with CRLF line ends."""
    msgid = msgid or "<%s.%d@client.example.org>" % (token or "m", time.monotonic_ns())
    lines = [
        b"From: Sender <sender@example.org>",
        b"To: Alice <alice@example.test>",
        ("Subject: %s %s" % (subject, token)).encode(),
        ("Message-ID: %s" % msgid).encode(),
        b"Date: Sat, 23 Nov 2024 12:00:00 +0000",
    ]
    head = b"\r\n".join(lines) + b"\r\n" + extra + b"\r\n"
    if body is None:
        body = ("Hello %s\r\n" % token).encode()
    return head + body


def dot_stuff(data):
    """What a client sends for message bytes data (ending with CRLF)."""
    out = []
    for line in data.split(b"\r\n"):
        out.append(b"." + line if line.startswith(b".") else line)
    return b"\r\n".join(out)


def split_delivered(blob):
    """Splits a delivered file into (return_path line, delivered_to line,
    received field, rest). Raises AssertionError on a bad shape."""
    assert blob.startswith(b"Return-Path: "), blob[:200]
    rp, _, rest = blob.partition(b"\r\n")
    dt, _, rest = rest.partition(b"\r\n")
    assert dt.startswith(b"Delivered-To: "), blob[:300]
    assert rest.startswith(b"Received: from "), blob[:400]
    # the Received field ends at the first CRLF not followed by SP/HT
    i = 0
    while True:
        k = rest.index(b"\r\n", i)
        if rest[k + 2:k + 3] not in (b" ", b"\t"):
            break
        i = k + 2
    return rp, dt, rest[:k + 2], rest[k + 2:]


# ---------------------------------------------------------------- server

class ServerStartError(Exception):
    pass


class Server:
    """One postern daemon on its own folder and port."""

    def __init__(self, root, opts=(), conf=None, preexec=None, accounts=None,
                 listeners=None, name="srv", account_extra=None):
        self.dir = Path(root) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.opts = list(opts)
        self.conf = conf or {}
        self.preexec = preexec
        self.accounts = ACCOUNTS if accounts is None else accounts
        # user -> extra fields of the passwd-file line ("quota=10K ...")
        self.account_extra = dict(account_extra or {})
        self.listeners = listeners  # {name: address} or None for one mx
        self.config = self.dir / "postern.conf"
        self.logfile = self.dir / "server.log"
        self.spool = self.dir / "spool"
        self.mail = self.dir / "mail"
        self.proc = None
        self.returncode = None
        self.write_config()

    # -- configuration
    def config_text(self, conf=None):
        conf = self.conf if conf is None else conf
        sections = {
            "server": {"hostname": HOSTNAME, "spool": "spool",
                       "state": "state", "mail_root": "mail"},
            "local": {"domains": DOMAIN, "accounts": "accounts"},
            "log": {"level": "debug"},
            # No test asks the machine's resolver: mail for other domains
            # defers (DELIVERY-DNS-TEMPFAIL) unless the test serves DNS
            # itself (dnszone.py) and sets dns.servers.
            "dns": {"servers": "127.0.0.1:9"},
        }
        listen = self.listeners or {"mx": "127.0.0.1:%d" % self.port}
        for lname, addr in listen.items():
            sections["listen." + lname] = {"address": addr, "role": "mx"}
        for sec, kv in conf.items():
            sections.setdefault(sec, {}).update(kv)
        out = ["# generated by tests/e2e/conftest.py"]
        for sec, kv in sections.items():
            out.append("[%s]" % sec)
            for k, v in kv.items():
                if v is not None:
                    out.append("%s = %s" % (k, v))
            out.append("")
        return "\n".join(out)

    def write_config(self, conf=None, text=None):
        self.config.write_text(text if text is not None else self.config_text(conf))
        self.write_accounts()

    def write_accounts(self):
        """(Re)writes the accounts file; users in account_extra get their
        extra fields after the 7th ':' (Dovecot passwd-file)."""
        acc = self.dir / "accounts"
        lines = []
        for u, h in self.accounts.items():
            extra = self.account_extra.get(u)
            if extra:
                lines.append("%s@%s:{CRYPT}%s::::::%s\n" % (u, DOMAIN, h, extra))
            else:
                lines.append("%s@%s:{CRYPT}%s\n" % (u, DOMAIN, h))
        acc.write_text("".join(lines), encoding="utf-8")

    # -- process
    def argv(self, extra=()):
        a = [BIN, "serve", "-c", str(self.config)]
        for o in self.opts + list(extra):
            a += ["-o", o]
        return a

    def mark(self):
        """Current number of log lines; pass as after= to wait only for new
        lines."""
        return len(self.log_lines())

    def start(self, wait=True, extra=(), timeout=START_TIMEOUT):
        if not Path(BIN).exists():
            pytest.fail("postern binary not found at %s (build it, or set "
                        "POSTERN_BIN)" % BIN)
        before = self.mark() if self.logfile.exists() else 0
        self._logfh = open(self.logfile, "ab")
        # A server killed (SIGKILL) while its log thread wrote may have
        # left its last line cut: the next run starts on a line of its own.
        if self.logfile.stat().st_size > 0:
            with open(self.logfile, "rb") as f:
                f.seek(-1, 2)
                if f.read(1) != b"\n":
                    self._logfh.write(b"\n")
                    self._logfh.flush()
        self.proc = subprocess.Popen(self.argv(extra), stdin=subprocess.DEVNULL,
                                     stdout=self._logfh, stderr=self._logfh,
                                     preexec_fn=self.preexec,
                                     # not the config folder: relative paths
                                     # must be resolved against the file
                                     cwd=str(self.dir.parent))
        self.returncode = None
        self._logfh.close()
        if wait:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.events("STARTUP-READY", after=before):
                    return self
                rc = self.proc.poll()
                if rc is not None:
                    self.returncode = rc
                    raise ServerStartError("postern exited %d before ready:\n%s"
                                           % (rc, self.log_text()[-4000:]))
                time.sleep(0.05)
            raise ServerStartError("no STARTUP-READY within %.0fs:\n%s"
                                   % (timeout, self.log_text()[-4000:]))
        return self

    def wait_exit(self, timeout=STOP_TIMEOUT):
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.proc.pid, sig)

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then SIGKILL after timeout. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.returncode = self.proc.returncode
        return self.returncode

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.returncode = self.proc.returncode if self.proc else None
        return self.returncode

    def restart(self, **kw):
        if self.alive():
            self.stop()
        return self.start(**kw)

    # -- logs
    def log_text(self):
        try:
            return self.logfile.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_lines(self):
        """Complete lines only (a line being written is left out)."""
        text = self.log_text()
        lines = text.split("\n")
        return [l for l in lines[:-1] if l]

    def events(self, name=None, after=0, **match):
        """Parsed lines with event=name (any event when None) among lines
        after the given mark, whose keys equal the given values."""
        out = []
        for line in self.log_lines()[after:]:
            if name is not None and ("event=" + name + " ") not in line + " ":
                continue
            d = parse_logfmt(line)
            if name is not None and d.get("event") != name:
                continue
            if all(d.get(k) == v for k, v in match.items()):
                out.append(d)
        return out

    def wait_event(self, name, timeout=10.0, after=0, count=1, **match):
        deadline = time.monotonic() + timeout
        while True:
            ev = self.events(name, after=after, **match)
            if len(ev) >= count:
                return ev
            if time.monotonic() >= deadline:
                raise AssertionError("no %d x event=%s %r within %.1fs; log tail:\n%s"
                                     % (count, name, match, timeout,
                                        "\n".join(self.log_lines()[-40:])))
            time.sleep(0.05)

    def causes(self, after=0):
        """Every ID named as event= or cause= after the mark."""
        ids = set()
        for d in self.events(after=after):
            for k in ("event", "cause"):
                if d.get(k):
                    ids.add(d[k])
        return ids

    # -- mail
    def maildir(self, user, domain=DOMAIN, sub=("new", "cur")):
        out = []
        for s in sub:
            d = self.mail / domain / user / s
            if d.is_dir():
                out += sorted(p for p in d.iterdir() if p.is_file())
        return out

    def wait_mail(self, user, count=1, timeout=MAIL_TIMEOUT, domain=DOMAIN):
        deadline = time.monotonic() + timeout
        while True:
            files = self.maildir(user, domain)
            if len(files) >= count:
                return files
            if time.monotonic() >= deadline:
                raise AssertionError("%s@%s has %d messages, wanted %d; log tail:\n%s"
                                     % (user, domain, len(files), count,
                                        "\n".join(self.log_lines()[-30:])))
            time.sleep(0.05)

    def spool_files(self, sub):
        d = self.spool / sub
        return sorted(p.name for p in d.iterdir()) if d.is_dir() else []

    def wait_queue_empty(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while self.spool_files("queue"):
            if time.monotonic() >= deadline:
                raise AssertionError("spool queue not drained: %r"
                                     % self.spool_files("queue")[:10])
            time.sleep(0.1)

    # -- clients
    def smtp(self, source=None, timeout=10.0):
        return smtp_client(self.port, source, timeout)

    def raw(self, source=None, timeout=10.0, read_greeting=True):
        return RawClient(self.port, source, timeout, read_greeting)

    def send_mail(self, frm="sender@example.org", rcpts=("alice@example.test",),
                  data=None, source=None):
        """One message with smtplib; returns (code, reply text) of DATA."""
        data = data if data is not None else make_message()
        with self.smtp(source) as s:
            s.ehlo("client.example.org")
            code, msg = s.mail(frm)
            assert code == 250, (code, msg)
            for r in rcpts:
                code, msg = s.rcpt(r)
                assert code == 250, (r, code, msg)
            return s.data(data)

    def assert_serves(self, source=None):
        """The server still answers a new client with 220 and EHLO 250."""
        with self.raw(source) as c:
            assert c.greeting.code == 220, c.greeting
            r = c.cmd("EHLO client.example.org")
            assert r.code == 250, r
            r = c.cmd("QUIT")
            assert r.code == 221, r

    def flush_events_log(self):
        path = os.environ.get("POSTERN_EVENTS_LOG")
        if path and self.logfile.exists():
            with open(path, "a", encoding="utf-8") as f:
                f.write(self.log_text())
                if not self.log_text().endswith("\n"):
                    f.write("\n")

    def close(self):
        try:
            if self.alive():
                self.stop()
        finally:
            self.flush_events_log()


# ---------------------------------------------------------------- fixtures

@pytest.fixture
def make_server(tmp_path):
    """Factory: make_server(opts=[...], conf={...}, preexec=f, start=True)."""
    servers = []

    def factory(opts=(), conf=None, preexec=None, start=True, name=None, **kw):
        srv = Server(tmp_path, opts=opts, conf=conf, preexec=preexec,
                     name=name or "srv%d" % len(servers), **kw)
        servers.append(srv)
        if start:
            srv.start()
        return srv

    yield factory
    for srv in servers:
        srv.close()


@pytest.fixture
def server(make_server):
    return make_server()


def pytest_report_header(config):
    return "postern binary: %s (%s)" % (BIN, "present" if Path(BIN).exists() else "MISSING")


def proc_value(pid, name, key):
    """The number after "key:" in /proc/PID/name (status: KiB, io: bytes)."""
    with open("/proc/%d/%s" % (pid, name)) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/%s" % (key, pid, name))


def proc_status_kib(pid, key):
    """A VmRSS / VmHWM figure of /proc/PID/status, in KiB."""
    return proc_value(pid, "status", key)
