"""
test_tls_resume.py - issue 7 point 5: TLS session resumption from tickets
whose keys rotate (src/net/net_tls_ticket.c), with openssl s_client
-sess_out then -sess_in, on STARTTLS and implicit TLS, TLS 1.2 and 1.3, and
across a reload.
"""

import re
import shutil
import signal
import subprocess

import pytest

from test_tls import tls_server


def s_client_session(port, version, sess, starttls, reuse):
    """One openssl s_client session (EHLO, QUIT) that writes its session
    to sess, or resumes from it; returns stdout (the session summary)."""
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, version,
            "-ign_eof", "-sess_in" if reuse else "-sess_out", str(sess)]
    if starttls:
        argv += ["-starttls", "smtp"]
    p = subprocess.run(argv, input=b"EHLO client.example.org\r\nQUIT\r\n",
                       capture_output=True, timeout=30)
    out = p.stdout.decode("utf-8", "replace")
    assert "221 2.0.0" in out, (out[-2000:], p.stderr[-500:])
    return out


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
@pytest.mark.parametrize("starttls", [True, False], ids=["starttls", "implicit"])
def test_session_resumed_from_a_ticket(make_server, tmp_path, version, starttls):
    """Issue 7 point 5: a returning client resumes without a full handshake,
    on STARTTLS (mx) and on the implicit-TLS port (submissions)."""
    srv = tls_server(make_server)
    port = srv.port if starttls else srv.subs_port
    sess = tmp_path / "session.pem"
    first = s_client_session(port, version, sess, starttls, reuse=False)
    assert re.search(r"^New, TLSv1\.[23]", first, re.M), first[-2000:]
    assert sess.exists() and sess.stat().st_size > 0
    again = s_client_session(port, version, sess, starttls, reuse=True)
    assert re.search(r"^Reused, TLSv1\.[23]", again, re.M), again[-2000:]
    want = "TLSv1.2" if version == "-tls1_2" else "TLSv1.3"
    assert "Reused, %s" % want in again


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_ticket_keys_survive_a_reload(make_server, tmp_path):
    """SIGHUP rebuilds the TLS context; the ticket keys are kept, so a
    client resumes across it. A restart forgets them: full handshake."""
    srv = tls_server(make_server)
    sess = tmp_path / "session.pem"
    first = s_client_session(srv.subs_port, "-tls1_3", sess, False, reuse=False)
    assert re.search(r"^New, TLSv1\.3", first, re.M), first[-2000:]
    mark = srv.mark()
    srv.signal(signal.SIGHUP)
    srv.wait_event("CONFIG-RELOADED", after=mark)
    again = s_client_session(srv.subs_port, "-tls1_3", sess, False, reuse=True)
    assert re.search(r"^Reused, TLSv1\.3", again, re.M), again[-2000:]
    srv.restart()
    cold = s_client_session(srv.subs_port, "-tls1_3", sess, False, reuse=True)
    assert re.search(r"^New, TLSv1\.3", cold, re.M), cold[-2000:]
