"""
test_tls.py - TLS (issue 4 point 1): STARTTLS on mx and submission,
implicit TLS on submissions, the protocol policy, the STARTTLS injection
attack (CVE-2011-0411), failed handshakes, certificate reload on SIGHUP,
and the Received field's protocol (RFC 3848).

Clients: smtplib (starttls, SMTP_SSL), raw sockets with Python's ssl
module, and openssl s_client.
"""

import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from conftest import free_port, make_message, run_cli, split_delivered


def ids_in(text):
    return re.findall(r"\[([A-Z0-9-]+)\]\s*$", text)


def client_ctx(max_version=None, min_version=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if max_version is not None:
        ctx.maximum_version = max_version
    if min_version is not None:
        ctx.minimum_version = min_version
    return ctx


def tls_server(make_server, conf=None, opts=(), make_cert=True):
    """A server with TLS configured: mx, submission (require_tls) and
    submissions listeners; .sub_port and .subs_port."""
    sub, subs = free_port(), free_port()
    c = {"tls": {"cert_file": "tls/cert.pem", "key_file": "tls/key.pem"},
         "listen.sub": {"address": "127.0.0.1:%d" % sub, "role": "submission",
                        "require_tls": "yes"},
         "listen.subs": {"address": "127.0.0.1:%d" % subs, "role": "submissions"}}
    for sec, kv in (conf or {}).items():
        c.setdefault(sec, {}).update(kv)
    srv = make_server(conf=c, opts=opts, start=False)
    (srv.dir / "tls").mkdir(exist_ok=True)
    if make_cert:
        r = run_cli("make-cert", "-c", str(srv.config))
        assert r.returncode == 0, r.stderr
        assert "self-signed" in r.stdout, r.stdout
    srv.start()
    srv.sub_port, srv.subs_port = sub, subs
    return srv


def cert_der(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with client_ctx().wrap_socket(raw) as s:
            return s.getpeercert(binary_form=True)


def read_reply(f):
    lines = []
    while True:
        line = f.readline()
        if not line:
            raise ConnectionError("closed")
        lines.append(line.decode("utf-8", "replace").rstrip("\r\n"))
        if len(line) >= 4 and line[3:4] == b" ":
            return lines


def test_starttls_then_mail_is_esmtps(make_server):
    srv = tls_server(make_server)
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        code, text = s.ehlo("client.example.org")
        assert code == 250 and b"STARTTLS" in text
        code, text = s.starttls(context=client_ctx())
        assert code == 220 and text.startswith(b"2.0.0"), text
        assert s.sock.version() in ("TLSv1.2", "TLSv1.3")
        code, text = s.ehlo("client.example.org")
        assert code == 250 and b"STARTTLS" not in text, text
        s.sendmail("sender@example.org", ["alice@example.test"], make_message("tls"))
    f = srv.wait_mail("alice")[0]
    rp, dt, received, rest = split_delivered(f.read_bytes())
    assert b" with ESMTPS id " in received, received
    assert b"(using TLSv1." in received and b"bits))" in received, received
    ev = srv.wait_event("TLS-ESTABLISHED")[0]
    assert ev["version"] in ("TLSv1.2", "TLSv1.3") and ev["cipher"], ev
    end = srv.wait_event("SESSION-END", cause="SMTP-QUIT")[0]
    assert end["tls"].startswith("TLSv1."), end
    assert "tls" in end["flags"].split(","), end


def test_starttls_twice_and_inside_transaction(make_server):
    srv = tls_server(make_server)
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        s.ehlo("client.example.org")
        assert s.mail("sender@example.org")[0] == 250
        code, text = s.docmd("STARTTLS")
        assert code == 503 and ids_in(text.decode()) == ["SMTP-SEQUENCE-ERROR"], text
        s.rset()
        s.starttls(context=client_ctx())
        s.ehlo("client.example.org")
        code, text = s.docmd("STARTTLS")
        assert code == 503 and text.startswith(b"5.5.1"), text
        assert ids_in(text.decode()) == ["TLS-ALREADY-ACTIVE"], text
    srv.assert_serves()


def test_starttls_injection_is_discarded(make_server):
    """CVE-2011-0411: commands sent in clear after STARTTLS, in the same
    packet, must not be run inside the TLS session."""
    srv = tls_server(make_server)
    mark = srv.mark()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw:
        f = raw.makefile("rb")
        assert read_reply(f)[0].startswith("220")
        raw.sendall(b"EHLO client.example.org\r\n")
        read_reply(f)
        raw.sendall(b"STARTTLS\r\nMAIL FROM:<injected@example.org>\r\n")
        assert read_reply(f)[0].startswith("220 2.0.0")
        with client_ctx().wrap_socket(raw) as t:
            tf = t.makefile("rb")
            t.sendall(b"NOOP\r\n")
            r = read_reply(tf)
            # the first reply over TLS answers our NOOP, not the injected MAIL
            assert r[0].startswith("250 2.0.0"), r
            t.sendall(b"QUIT\r\n")
            read_reply(tf)
    mails = srv.events("SESSION-MAIL", after=mark)
    assert not mails, mails          # the injected MAIL never ran


def test_state_reset_after_starttls(make_server):
    """RFC 3207 4.2: after the handshake the client must say EHLO again."""
    srv = tls_server(make_server)
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        s.ehlo("client.example.org")
        s.starttls(context=client_ctx())
        code, text = s.docmd("MAIL FROM:<sender@example.org>")
        assert code == 503 and ids_in(text.decode()) == ["SMTP-NEED-HELO"], text


def test_implicit_tls_submissions_needs_auth(make_server):
    srv = tls_server(make_server)
    with smtplib.SMTP_SSL("127.0.0.1", srv.subs_port, timeout=10,
                          context=client_ctx()) as s:
        code, text = s.ehlo("client.example.org")
        assert code == 250 and b"STARTTLS" not in text
        code, text = s.docmd("MAIL FROM:<alice@example.test>")
        assert code == 530 and text.startswith(b"5.7.0"), text
        assert ids_in(text.decode()) == ["AUTH-REQUIRED"], text


def test_submission_requires_starttls(make_server):
    srv = tls_server(make_server)
    with smtplib.SMTP("127.0.0.1", srv.sub_port, timeout=10) as s:
        s.ehlo("client.example.org")
        code, text = s.docmd("MAIL FROM:<alice@example.test>")
        assert code == 530 and text.startswith(b"5.7.0"), text
        assert ids_in(text.decode()) == ["TLS-REQUIRED"], text
        s.starttls(context=client_ctx())
        s.ehlo("client.example.org")
        code, text = s.docmd("MAIL FROM:<alice@example.test>")
        assert code == 530 and ids_in(text.decode()) == ["AUTH-REQUIRED"], text


def test_old_protocol_refused_and_logged(make_server):
    srv = tls_server(make_server)
    mark = srv.mark()
    with socket.create_connection(("127.0.0.1", srv.subs_port), timeout=10) as raw:
        ctx = client_ctx(max_version=ssl.TLSVersion.TLSv1_1,
                         min_version=ssl.TLSVersion.TLSv1)
        try:
            ctx.set_ciphers("ALL:@SECLEVEL=0")
        except ssl.SSLError:
            pass
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            with ctx.wrap_socket(raw) as t:
                t.recv(100)
    ev = srv.wait_event("TLS-HANDSHAKE-FAILED", after=mark)[0]
    assert ev["client"] == "127.0.0.1" and ev["err"], ev
    srv.assert_serves()


def test_garbage_on_implicit_port(make_server):
    srv = tls_server(make_server)
    mark = srv.mark()
    with socket.create_connection(("127.0.0.1", srv.subs_port), timeout=10) as raw:
        raw.sendall(b"EHLO this is not TLS\r\n" * 20)
        raw.settimeout(5)
        try:
            while raw.recv(4096):
                pass
        except OSError:
            pass
    srv.wait_event("TLS-HANDSHAKE-FAILED", after=mark)
    assert srv.alive()
    srv.assert_serves()


def test_handshake_timeout(make_server):
    srv = tls_server(make_server, conf={"tls": {"handshake_timeout": "1"}})
    mark = srv.mark()
    with socket.create_connection(("127.0.0.1", srv.subs_port), timeout=10) as raw:
        raw.settimeout(8)
        t0 = time.monotonic()
        assert raw.recv(100) == b""          # closed by the server, no reply
        assert time.monotonic() - t0 < 6
    ev = srv.wait_event("TLS-HANDSHAKE-FAILED", after=mark)[0]
    assert "timeout" in ev["err"], ev


def test_without_tls_configured(make_server):
    srv = make_server()
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        code, text = s.ehlo("client.example.org")
        assert b"STARTTLS" not in text
        code, text = s.docmd("STARTTLS")
        assert code == 502 and ids_in(text.decode()) == ["SMTP-COMMAND-NOT-IMPLEMENTED"], text


def test_broken_pair_not_offered_then_fixed_by_reload(make_server):
    srv = tls_server(make_server, make_cert=False)
    ev = srv.wait_event("TLS-CONTEXT-INIT-FAILED")[0]
    assert ev["cert"].endswith("cert.pem") and ev["err"], ev
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        code, text = s.ehlo("client.example.org")
        assert b"STARTTLS" not in text
        code, text = s.docmd("STARTTLS")
        assert code == 454 and text.startswith(b"4.7.0"), text
        assert ids_in(text.decode()) == ["TLS-STARTTLS-UNAVAILABLE"], text
    r = run_cli("make-cert", "-c", str(srv.config))
    assert r.returncode == 0, r.stderr
    mark = srv.mark()
    srv.signal(signal.SIGHUP)
    srv.wait_event("CONFIG-RELOADED", after=mark)
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        code, text = s.ehlo("client.example.org")
        assert b"STARTTLS" in text
        assert s.starttls(context=client_ctx())[0] == 220


def test_certificate_reload_on_sighup(make_server):
    srv = tls_server(make_server)
    before = cert_der(srv.subs_port)
    # a new pair in place of the old one
    for n in ("cert.pem", "key.pem"):
        (srv.dir / "tls" / n).unlink()
    r = run_cli("make-cert", "-c", str(srv.config))
    assert r.returncode == 0, r.stderr
    mark = srv.mark()
    srv.signal(signal.SIGHUP)
    srv.wait_event("CONFIG-RELOADED", after=mark)
    after = cert_der(srv.subs_port)
    assert before != after
    # a broken pair on reload keeps the working one
    (srv.dir / "tls" / "key.pem").write_text("not a key\n")
    mark = srv.mark()
    srv.signal(signal.SIGHUP)
    srv.wait_event("TLS-CONTEXT-INIT-FAILED", after=mark)
    assert cert_der(srv.subs_port) == after


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_openssl_s_client_starttls(make_server):
    srv = tls_server(make_server)
    p = subprocess.run(
        ["openssl", "s_client", "-connect", "127.0.0.1:%d" % srv.port,
         "-starttls", "smtp", "-quiet", "-no_tls1", "-no_tls1_1"],
        input=b"EHLO client.example.org\r\nQUIT\r\n", capture_output=True, timeout=30)
    out = p.stdout.decode("utf-8", "replace")
    assert "250-" in out and "221 2.0.0" in out, (out, p.stderr[-500:])
    # no compression, TLS 1.2 or 1.3
    p = subprocess.run(
        ["openssl", "s_client", "-connect", "127.0.0.1:%d" % srv.subs_port, "-brief"],
        input=b"QUIT\r\n", capture_output=True, timeout=30)
    err = p.stderr.decode("utf-8", "replace")
    assert re.search(r"Protocol version: TLSv1\.[23]", err), err


def test_make_cert_creates_the_folder_and_keeps_existing(tmp_path):
    """`make run` on a fresh clone: etc/tls/ does not exist yet."""
    conf = tmp_path / "postern.conf"
    (tmp_path / "accounts").write_text("")
    conf.write_text("[tls]\ncert_file = tls/cert.pem\nkey_file = tls/key.pem\n"
                    "[listen.mx]\naddress = 127.0.0.1:%d\nrole = mx\n" % free_port())
    r = run_cli("make-cert", "-c", str(conf))
    assert r.returncode == 0 and "self-signed" in r.stdout, r
    key = tmp_path / "tls" / "key.pem"
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    before = key.read_bytes()
    r = run_cli("make-cert", "-c", str(conf))
    assert r.returncode == 0 and "kept" in r.stdout, r
    assert key.read_bytes() == before
