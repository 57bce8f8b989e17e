"""
test_outbound_tls.py - outbound delivery to a second Postern instance (issue
8 points 5 and 10): opportunistic STARTTLS, tls = verify against the
peer's certificate, AUTH to a smart host over TLS (and never in clear),
and the full path from an authenticated submission to smtp-sink through
the MX route. The peer is the real daemon, with its own hostname, local
domain and certificate.
"""

import smtplib

from conftest import ACCOUNTS, free_port, make_message, run_cli, split_delivered
from dnszone import DnsServer, a, mx
from smtppeer import ScriptPeer, SmtpSink
from test_tls import client_ctx, tls_server

PEER_HOST = "mx.remote.test"


def peer_server(make_server, extra=None):
    """Postern B: hostname mx.remote.test, local domain remote.test with
    bob and alice, a self-signed certificate, an mx and a submission
    listener (STARTTLS, AUTH)."""
    sub = free_port()
    conf = {"server": {"hostname": PEER_HOST},
            "local": {"domains": "remote.test"},
            "tls": {"cert_file": "tls/cert.pem", "key_file": "tls/key.pem"},
            "listen.sub": {"address": "127.0.0.1:%d" % sub, "role": "submission"}}
    for sec, kv in (extra or {}).items():
        conf.setdefault(sec, {}).update(kv)
    b = make_server(name="peer", conf=conf, start=False, accounts={})
    (b.dir / "accounts").write_text(
        "bob@remote.test:{CRYPT}%s\nalice@remote.test:{CRYPT}%s\n"
        % (ACCOUNTS["bob"], ACCOUNTS["alice"]))
    (b.dir / "tls").mkdir(exist_ok=True)
    r = run_cli("make-cert", "-c", str(b.config))
    assert r.returncode == 0, r.stderr
    b.start()
    b.sub_port = sub
    return b


def remote_zone():
    return {"remote.test": [mx("@", 10, PEER_HOST), a("mx", "127.0.0.1")]}


def sender_conf(dns, port, tls=None, **route):
    conf = {"dns": {"servers": dns.servers, "timeout": "1", "attempts": "1"},
            "outbound": {"port": str(port), "allow_loopback": "yes", "retry_schedule": "1",
                         "connection_cache_time": "1"}}
    if tls is not None or route:
        r = {"domains": "remote.test", "via": "mx"}
        if tls is not None:
            r["tls"] = tls
        r.update(route)
        conf["route.remote"] = r
    return conf


def test_second_postern_over_opportunistic_starttls(tmp_path, make_server):
    b = peer_server(make_server)
    with DnsServer(tmp_path, zones=remote_zone()) as dns:
        a_srv = make_server(conf=sender_conf(dns, b.port))
        body = make_message(token="to-peer")
        a_srv.send_mail(rcpts=("bob@remote.test",), data=body)
        ev = a_srv.wait_event("DELIVERY-REMOTE-SENT", timeout=20)[0]
        assert ev["relay"] == "%s[127.0.0.1]:%d" % (PEER_HOST, b.port)
        f = b.wait_mail("bob", domain="remote.test")[0]
        rp, dt, received, rest = split_delivered(f.read_bytes())
        # B's Received says ESMTPS (TLS); A's own Received follows it
        assert b" with ESMTPS " in received, received
        assert rest.startswith(b"Received: from ")
        assert rest.endswith(body)
        # (A keeps the connection open for its next message: B's session
        # has not ended; its TLS event is there)
        assert b.wait_event("TLS-ESTABLISHED", timeout=10)[0]["version"].startswith("TLS")


def test_tls_verify_against_the_peers_certificate(tmp_path, make_server):
    b = peer_server(make_server)
    with DnsServer(tmp_path, zones=remote_zone()) as dns:
        conf = sender_conf(dns, b.port, tls="verify",
                           tls_ca_file=str(b.dir / "tls" / "cert.pem"))
        a_srv = make_server(conf=conf)
        a_srv.send_mail(rcpts=("bob@remote.test",))
        a_srv.wait_event("DELIVERY-REMOTE-SENT", timeout=20)
        b.wait_mail("bob", domain="remote.test")


def test_tls_verify_fails_on_an_unknown_certificate(tmp_path, make_server):
    b = peer_server(make_server)
    with DnsServer(tmp_path, zones=remote_zone()) as dns:
        # the system's CA store does not know B's self-signed certificate
        a_srv = make_server(conf=sender_conf(dns, b.port, tls="verify"))
        a_srv.send_mail(rcpts=("bob@remote.test",))
        ev = a_srv.wait_event("DELIVERY-TLS-FAILED", timeout=20)[0]
        assert ev["host"] == PEER_HOST
        d = a_srv.wait_event("DELIVERY-DEFERRED", timeout=20)[0]
        assert d["status"] == "deferred"
        assert not b.maildir("bob", domain="remote.test")


def test_encrypt_without_starttls_offered_defers(tmp_path, make_server):
    with ScriptPeer() as peer, DnsServer(tmp_path, zones=remote_zone()) as dns:
        a_srv = make_server(conf=sender_conf(dns, peer.port, tls="encrypt"))
        a_srv.send_mail(rcpts=("bob@remote.test",))
        d = a_srv.wait_event("DELIVERY-DEFERRED", timeout=20)[0]
        assert d["cause"] == "DELIVERY-TLS-REQUIRED"
        assert not peer.all_transactions


def write_auth_file(path, user, pw):
    path.write_text("%s:%s\n" % (user, pw))
    path.chmod(0o600)


def smart_host_pair(tmp_path, make_server, password):
    """B (peer_server) as the smart host of A for every domain, on its
    submission listener, tls = encrypt, AUTH as alice@remote.test."""
    b = peer_server(make_server)
    auth = tmp_path / "smarthost.auth"
    write_auth_file(auth, "alice@remote.test", password)
    a_srv = make_server(conf={
        "route.smarthost": {"domains": "*", "via": "[127.0.0.1]:%d" % b.sub_port,
                            "tls": "encrypt", "auth_file": str(auth)},
        "outbound": {"connection_cache_time": "1"}})
    return b, a_srv


def test_auth_to_a_smart_host_over_starttls(tmp_path, make_server):
    b, a_srv = smart_host_pair(tmp_path, make_server, "alice-pw")
    # B takes it from an authenticated client sending as itself
    a_srv.send_mail(frm="alice@remote.test", rcpts=("bob@remote.test",))
    a_srv.wait_event("DELIVERY-REMOTE-SENT", timeout=20)
    b.wait_mail("bob", domain="remote.test")
    ok = b.wait_event("AUTH-OK", timeout=10)[0]
    assert ok.get("user", ok.get("login")) == "alice@remote.test", ok
    assert b.events("TLS-ESTABLISHED")
    assert "alice-pw" not in a_srv.log_text()


def test_auth_is_never_sent_in_clear(tmp_path, make_server):
    auth = tmp_path / "smarthost.auth"
    write_auth_file(auth, "alice@remote.test", "alice-pw")
    with ScriptPeer(ext=("AUTH PLAIN LOGIN", "ENHANCEDSTATUSCODES")) as peer:
        a_srv = make_server(conf={
            "route.smarthost": {"domains": "*", "via": "[127.0.0.1]:%d" % peer.port,
                                "tls": "may", "auth_file": str(auth)}})
        a_srv.send_mail(rcpts=("bob@remote.test",))
        d = a_srv.wait_event("DELIVERY-DEFERRED", timeout=20)[0]
        assert d["status"] == "deferred" and d["cause"] == "DELIVERY-AUTH-NO-TLS"
        assert not any(l.upper().startswith("AUTH") for n, l in peer.commands)


def test_full_path_submission_to_smtp_sink_through_mx(tmp_path, make_server):
    with SmtpSink(tmp_path) as sink, \
            DnsServer(tmp_path, zones={"far.test": [mx("@", 10, "mx.far.test"),
                                                     a("mx", "127.0.0.1")]}) as dns:
        conf = {"dns": {"servers": dns.servers, "timeout": "1", "attempts": "1"},
                "outbound": {"port": str(sink.port), "allow_loopback": "yes"}}
        a_srv = tls_server(make_server, conf=conf)
        body = make_message(token="submitted")
        with smtplib.SMTP("127.0.0.1", a_srv.sub_port, timeout=10) as s:
            s.ehlo("client.example.org")
            s.starttls(context=client_ctx())
            s.ehlo("client.example.org")
            s.login("alice@example.test", "alice-pw")
            s.sendmail("alice@example.test", ["carol@far.test"], body)
        a_srv.wait_event("DELIVERY-REMOTE-SENT", rcpt="<carol@far.test>", timeout=20)
        a_srv.wait_queue_empty()
        (env, got), = sink.wait_count(1)
        assert "alice@example.test" in env["mail"]
        got = got.replace(b"\r\n", b"\n").rstrip(b"\n")
        sent = body.replace(b"\r\n", b"\n").rstrip(b"\n")
        assert got.startswith(b"Received: from ")
        assert b" with ESMTPSA " in got.split(sent)[0]
        assert got.endswith(sent)


def test_auth_refused_by_the_smart_host_defers(tmp_path, make_server):
    b, a_srv = smart_host_pair(tmp_path, make_server, "not-the-password")
    a_srv.send_mail(frm="alice@remote.test", rcpts=("bob@remote.test",))
    d = a_srv.wait_event("DELIVERY-DEFERRED", timeout=20)[0]
    assert d["cause"] == "DELIVERY-AUTH-FAILED", d
    assert d["dsn"].startswith("5.7") or d["dsn"].startswith("4."), d
    b.wait_event("AUTH-FAILED", timeout=10)
    assert not b.maildir("bob", domain="remote.test")
