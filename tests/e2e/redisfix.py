"""
redisfix.py - a real redis-server for the end-to-end suite (issue 9 point
10: the state store on Redis), and a Redis that never answers.

RedisServer starts `redis-server` on a free 127.0.0.1 port with no
persistence, waits until PING answers (bounded), and stops it by PID;
kill() and start() again on the same port play a Redis that goes away and
comes back. state_conf(redis) is the configuration that puts a Postern on
it: merge it into a server's conf to run any test against Redis.

Fixtures (import them into a test module to use them):
    redis_server    a running RedisServer, stopped after the test
    state_backend   parametrized "sqlite" / "redis": the conf dict of that
                    back end ({} for SQLite), with a fresh Redis for "redis"

SilentRedis is a TCP server that accepts and reads but never writes: a
Redis that hangs.
"""

import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import free_port

REDIS_BIN = shutil.which("redis-server") or "/usr/bin/redis-server"
START_TIMEOUT = 10.0


def state_conf(redis, timeout_ms=None, **state):
    """The conf dict ({section: {key: value}}) of state.backend = redis on
    redis (a RedisServer, SilentRedis, or "host:port")."""
    addr = redis if isinstance(redis, str) else redis.address
    c = {"backend": "redis", "redis": addr}
    if timeout_ms is not None:
        c["redis_timeout"] = str(timeout_ms)
    c.update(state)
    return {"state": c}


def merge_conf(*confs):
    """Merges conf dicts section by section (later ones win)."""
    out = {}
    for conf in confs:
        for sec, kv in (conf or {}).items():
            out.setdefault(sec, {}).update(kv)
    return out


class RedisServer:
    """redis-server on 127.0.0.1:port, in the foreground, stopped by PID."""

    def __init__(self, workdir, port=None, unixsocket=None):
        self.dir = str(workdir)
        os.makedirs(self.dir, exist_ok=True)
        self.port = port or free_port()
        self.unixsocket = unixsocket  # also listen there (state.redis = path)
        self.proc = None
        self.log = os.path.join(self.dir, "redis-%d.log" % self.port)

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        if not os.path.exists(REDIS_BIN):
            pytest.fail("redis-server not found (Debian package redis-server)")
        logf = open(self.log, "ab")
        try:
            self.proc = subprocess.Popen(
                [REDIS_BIN, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--daemonize", "no",
                 "--dir", self.dir]
                + (["--unixsocket", str(self.unixsocket)] if self.unixsocket else []),
                stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            logf.close()
        end = time.monotonic() + START_TIMEOUT
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                break
            try:
                if self.command("PING") == "+PONG":
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        pytest.fail("redis-server did not answer PING on port %d (log %s)"
                    % (self.port, self.log))

    def command(self, *args, timeout=2.0):
        """One command over RESP; returns the first reply line (str)."""
        req = "*%d\r\n" % len(args) + "".join(
            "$%d\r\n%s\r\n" % (len(a.encode()), a) for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(req.encode())
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            line, _, rest = data.partition(b"\r\n")
            if line.startswith(b"$") and line != b"$-1":
                n = int(line[1:])
                while len(rest) < n + 2:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    rest += chunk
                return rest[:n].decode()
            return line.decode()

    def kill(self):
        """SIGKILL by PID, and wait for it: a Redis that goes away."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


class SilentRedis:
    """Accepts on 127.0.0.1:port, reads whatever comes, never answers."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.received = 0
        self.conns = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def run(self):
        while not self.stopping.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                pass
            except OSError:
                return
            else:
                c.setblocking(False)
                self.conns.append(c)
                self.accepted += 1
            for c in list(self.conns):
                try:
                    data = c.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.conns.remove(c)
                    c.close()
                else:
                    self.received += len(data)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(timeout=5)
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def redis_server(tmp_path):
    r = RedisServer(tmp_path / "redis").start()
    yield r
    r.stop()


@pytest.fixture(params=["sqlite", "redis"])
def state_backend(request, tmp_path):
    """The conf dict of the state back end under test: {} (SQLite, the
    default) or state.backend = redis on a fresh redis-server."""
    if request.param == "sqlite":
        yield {}
        return
    r = RedisServer(tmp_path / "redis").start()
    try:
        yield state_conf(r)
    finally:
        r.stop()
