"""
queuecmd.py - helpers for tests of `postern queue`: run the command on a
Server's configuration, parse its --json answer, keep its log lines (the
command logs offline edits to stderr) in the server's log so that
check_coverage.py sees them, and talk to the control socket directly.
"""

import json
import socket
import subprocess

from conftest import BIN

SCHEMA = "postern-queue/1"


def queue(srv, *args, json_out=True, timeout=30, check=None):
    """Runs `postern queue -c CONF ARGS [--json]`; returns (rc, parsed JSON
    or stdout text, stderr). Its stderr log lines go into the server log."""
    argv = [BIN, "queue", "-c", str(srv.config), *args]
    if json_out:
        argv.append("--json")
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       cwd=str(srv.dir.parent))
    if p.stderr:
        with open(srv.logfile, "a", encoding="utf-8") as f:
            f.write(p.stderr if p.stderr.endswith("\n") else p.stderr + "\n")
    out = p.stdout
    if json_out and out.strip():
        out = json.loads(out)
    if check is not None:
        assert p.returncode == check, (p.returncode, p.stdout, p.stderr)
    return p.returncode, out, p.stderr


def control(srv, line, timeout=10):
    """One request on the control socket; the raw answer bytes."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(str(srv.dir / "state" / "control"))
        s.sendall(line)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)
    finally:
        s.close()
