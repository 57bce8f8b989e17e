"""
test_net_client.py - issue 7, precision "The session core serves clients
too": the core's outbound side (non-blocking connect, TLS client with SNI
and certificate verification) against Postern's own implicit-TLS
listener on loopback. The client is the unit-test program
test_net_session in its "client" mode, built next to the daemon.
"""

import os
import pathlib
import subprocess

import pytest

from conftest import HOSTNAME
from test_tls import tls_server


def client_bin():
    b = pathlib.Path(os.environ.get("POSTERN_BIN", "build/postern")).resolve().parent
    return b / "src" / "net" / "test_net_session"


def run_client(port, ca, name):
    p = subprocess.run([str(client_bin()), "client", "127.0.0.1", str(port), str(ca), name],
                       capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout.strip()


@pytest.fixture
def srv(make_server):
    if not client_bin().exists():
        pytest.fail("%s not built (meson builds it with the daemon)" % client_bin())
    return tls_server(make_server)


def test_client_verifies_the_listener_certificate(srv):
    rc, out = run_client(srv.subs_port, srv.dir / "tls" / "cert.pem", HOSTNAME)
    assert rc == 0, out
    assert out.startswith("ok 220 "), out
    ev = srv.wait_event("TLS-ESTABLISHED")
    assert ev[0]["client"] == "127.0.0.1", ev


def test_client_refuses_a_wrong_name(srv):
    rc, out = run_client(srv.subs_port, srv.dir / "tls" / "cert.pem", "wrong.example.test")
    assert rc == 1, out
    assert out.startswith("fail certificate verify failed: hostname mismatch"), out
    # The server saw the client give up during the handshake.
    ev = srv.wait_event("TLS-HANDSHAKE-FAILED")
    assert ev[0]["client"] == "127.0.0.1", ev
    srv.assert_serves()


def test_client_refuses_an_unknown_ca(srv, tmp_path):
    # A certificate for the same name, by another issuer.
    other = tmp_path / "other.pem"
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=" + HOSTNAME, "-keyout", str(tmp_path / "other.key"),
                        "-out", str(other)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    rc, out = run_client(srv.subs_port, other, HOSTNAME)
    assert rc == 1, out
    assert out.startswith("fail certificate verify failed:"), out
