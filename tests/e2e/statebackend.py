"""
statebackend.py - the [state] section the state-store tests run with, so
one test file covers both back ends (issue 9 point 10).

By default the store is SQLite under server.state (nothing to add). With
POSTERN_TEST_STATE=redis the fixture starts a redis-server of its own on
127.0.0.1 and a free port (no persistence), points state.backend and
state.redis at it, and stops it by PID afterwards; with
POSTERN_TEST_STATE=redis:HOST:PORT it uses that server as is.

    from statebackend import state_conf  # the fixture; then
    def test_x(make_server, state_conf):
        srv = make_server(conf=dict(state_conf, **{...}))
"""
import os
import shutil
import socket
import subprocess
import time

import pytest

from conftest import free_port

REDIS_START_TIMEOUT = 10.0


class RedisServer:
    """A throwaway redis-server on 127.0.0.1:port, stopped by PID."""

    def __init__(self, workdir):
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.fail("POSTERN_TEST_STATE=redis needs redis-server (Debian redis-server)")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [exe, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + REDIS_START_TIMEOUT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail("redis-server did not start on port %d" % self.port)
            time.sleep(0.05)

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def state_conf(tmp_path):
    """{} for SQLite, or {"state": {"backend": "redis", "redis": ...}}."""
    want = os.environ.get("POSTERN_TEST_STATE", "sqlite")
    if want in ("", "sqlite"):
        yield {}
        return
    if want.startswith("redis:"):
        yield {"state": {"backend": "redis", "redis": want[len("redis:"):]}}
        return
    if want != "redis":
        pytest.fail("POSTERN_TEST_STATE must be sqlite, redis or redis:HOST:PORT")
    d = tmp_path / "redis"
    d.mkdir()
    srv = RedisServer(d)
    try:
        yield {"state": {"backend": "redis", "redis": srv.address}}
    finally:
        srv.stop()
