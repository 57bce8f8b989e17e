"""
test_srs.py - the Sender Rewriting Scheme (issue 8, "forwards that now
leave the machine"): a message a forward= of ours sends on to another
domain leaves with its envelope sender rewritten to
SRS0=HHHH=TT=domain=local@<srs.domain> (libsrs2's format; the expected
addresses are computed here with Python's hmac module from the secret
file), mail from trusted clients, local senders and <> leaves as it came,
a bounce to an SRS address of ours is accepted and sent on to the
original sender's domain, forged and expired ones are refused with
RCPT-SRS-INVALID. Peers: ScriptPeer behind a real DNS server (NSD).
"""

import base64
import hashlib
import hmac
import os
import signal
import smtplib
import stat
import time

import pytest

from conftest import HOSTNAME, ServerStartError, make_message, run_cli
from dnszone import DnsServer, a, mx
from smtppeer import ScriptPeer

UNTRUSTED = "127.0.0.2"     # not in the default server.trusted_networks
B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
SECRET = "test-secret-one"


def stamp(now=None, days_ago=0):
    day = int(now if now is not None else time.time()) // 86400 - days_ago
    return B32[(day >> 5) & 31] + B32[day & 31]


def srs_hash(secret, *fields):
    data = "".join(fields).lower().encode()
    mac = hmac.new(secret.encode(), data, hashlib.sha1).digest()
    return base64.b64encode(mac).decode()[:4]


def srs0(secret, sender, days_ago=0, domain=HOSTNAME):
    local, dom = sender.rsplit("@", 1)
    ts = stamp(days_ago=days_ago)
    return "SRS0=%s=%s=%s=%s@%s" % (srs_hash(secret, ts, dom, local), ts, dom, local, domain)


def zones():
    """Every domain's MX is the peer on 127.0.0.1."""
    return {"remote.test": [mx("@", 10, "mx1.remote.test"), a("mx1", "127.0.0.1")],
            "sender.test": [mx("@", 10, "mx1.remote.test.")],
            "first.example": [mx("@", 10, "mx1.remote.test.")]}


def conf(dns, port, **extra):
    c = {
        "dns": {"servers": dns.servers, "timeout": "1", "attempts": "1"},
        "outbound": {"port": str(port), "allow_loopback": "yes",
                     "retry_schedule": "1", "connection_cache_time": "0"},
        "auth": {"fail_delay": "0", "plaintext_on_loopback": "yes"},
    }
    for k, v in extra.items():
        sec, key = k.split("__")
        c.setdefault(sec, {})[key] = v
    return c


def srs_server(make_server, dns, peer, secret=SECRET, **extra):
    """A server whose carol forwards to x@remote.test; secret None lets
    the server make its own secret file."""
    srv = make_server(conf=conf(dns, peer.port, **extra), start=False,
                      account_extra={"carol": "forward=x@remote.test"})
    if secret is not None:
        write_secret(srv, secret)
    srv.start()
    return srv


def write_secret(srv, text):
    d = srv.dir / "state"
    d.mkdir(exist_ok=True)
    p = d / "srs.secret"
    p.write_text(text if text.endswith("\n") else text + "\n")
    os.chmod(p, 0o600)
    return p


def send(srv, frm, rcpts, source=UNTRUSTED, token="srs"):
    code, msg = srv.send_mail(frm=frm, rcpts=rcpts, data=make_message(token=token), source=source)
    assert code == 250, (code, msg)


def rcpt_reply(srv, rcpt, frm="", source=UNTRUSTED):
    with srv.raw(source) as c:
        assert c.cmd("EHLO client.example.org").code == 250
        assert c.cmd("MAIL FROM:<%s>" % frm).code == 250
        return c.cmd("RCPT TO:<%s>" % rcpt)


def test_forward_leaves_with_srs0_and_the_secret_file_is_made(tmp_path, make_server):
    with ScriptPeer() as peer, DnsServer(tmp_path, zones=zones()) as dns:
        srv = srs_server(make_server, dns, peer, secret=None)
        path = srv.dir / "state" / "srs.secret"
        ev = srv.events("SRS-SECRET-CREATED")
        assert len(ev) == 1 and ev[0]["path"] == str(path), ev
        st = os.stat(path)
        assert stat.S_IMODE(st.st_mode) == 0o600
        secret = path.read_text()
        assert secret.endswith("\n") and len(base64.b64decode(secret.strip(), validate=True)) == 32
        secret = secret.strip()

        send(srv, "Frank.Sender@Sender.Test", ["carol@example.test"])
        (t,) = peer.wait_transactions(1)
        want = srs0(secret, "Frank.Sender@Sender.Test")
        assert t.mail == want, (t.mail, want)
        assert t.mail.startswith("SRS0=") and t.mail.endswith("=Sender.Test=Frank.Sender@" + HOSTNAME)
        assert t.rcpts == ["x@remote.test"]
        ev = srv.wait_event("DELIVERY-REMOTE-SENT", rcpt="<x@remote.test>", timeout=20)[0]
        assert ev["status"] == "sent"
        srv.wait_queue_empty()

        # a restart keeps the secret: the file is made once
        mark = srv.mark()
        srv.restart()
        assert path.read_text().strip() == secret
        assert not srv.events("SRS-SECRET-CREATED", after=mark)


def test_trusted_local_and_null_senders_are_not_rewritten(tmp_path, make_server):
    with ScriptPeer() as peer, DnsServer(tmp_path, zones=zones()) as dns:
        srv = srs_server(make_server, dns, peer)
        # a client in server.trusted_networks (127.0.0.1): its own relay
        send(srv, "frank@sender.test", ["carol@example.test"], source="127.0.0.1", token="trusted")
        # an authenticated user of ours, from an untrusted address
        with srv.smtp(UNTRUSTED) as s:
            s.ehlo("client.example.org")
            s.login("alice@example.test", "alice-pw")
            s.sendmail("alice@example.test", ["carol@example.test"], make_message("local"))
        # the null sender (a bounce passing through a forward)
        send(srv, "", ["carol@example.test"], token="null")
        # another forwarder's SRS0 sender becomes SRS1, signed by us
        other = "SRS0=AbCd=%s=orig.example=joe@first.example" % stamp()
        send(srv, other, ["carol@example.test"], token="srs1")
        txns = peer.wait_transactions(4)
        froms = sorted(t.mail for t in txns)
        opaque = "=AbCd=%s=orig.example=joe" % stamp()
        srs1 = "SRS1=%s=first.example=%s@%s" % (srs_hash(SECRET, "first.example", opaque),
                                                opaque, HOSTNAME)
        assert froms == sorted(["frank@sender.test", "alice@example.test", "", srs1]), froms
        assert all(t.rcpts == ["x@remote.test"] for t in txns)
        srv.wait_queue_empty()


def test_bounce_to_srs_address_goes_home(tmp_path, make_server):
    with ScriptPeer() as peer, DnsServer(tmp_path, zones=zones()) as dns:
        srv = srs_server(make_server, dns, peer)
        addr = srs0(SECRET, "frank@sender.test")
        r = rcpt_reply(srv, addr)
        assert r.code == 250, r
        # a bounce from outside, as the next hop sends it: MAIL FROM:<>;
        # mailers may lower-case the local part
        send(srv, "", [addr.lower()], token="bounce")
        (t,) = peer.wait_transactions(1)
        assert t.mail == "" and t.rcpts == ["frank@sender.test"], (t.mail, t.rcpts)
        srv.wait_event("DELIVERY-REMOTE-SENT", rcpt="<frank@sender.test>", timeout=20)
        # SRS1: goes back to the first forwarder, as its own SRS0 address
        opaque = "=AbCd=%s=orig.example=joe" % stamp()
        srs1 = "SRS1=%s=first.example=%s@%s" % (srs_hash(SECRET, "first.example", opaque),
                                                opaque, HOSTNAME)
        send(srv, "", [srs1], token="bounce1")
        t2 = peer.wait_transactions(2)[1]
        assert t2.rcpts == ["SRS0%s@first.example" % opaque], t2.rcpts
        # an SRS address standing for one of our own users is delivered here
        send(srv, "", [srs0(SECRET, "bob@example.test")], token="home")
        srv.wait_mail("bob")
        srv.wait_queue_empty()


def test_forged_expired_and_malformed_srs_refused(tmp_path, make_server):
    with ScriptPeer() as peer, DnsServer(tmp_path, zones=zones()) as dns:
        srv = srs_server(make_server, dns, peer)
        good = srs0(SECRET, "frank@sender.test")
        forged = srs0("not-our-secret", "frank@sender.test")
        old = srs0(SECRET, "frank@sender.test", days_ago=22)
        assert good != forged
        cases = [(forged, "bad-hash"), (old, "expired"),
                 ("SRS0=abcd=%s=sender.test@%s" % (stamp(), HOSTNAME), "malformed")]
        for addr, reason in cases:
            mark = srv.mark()
            r = rcpt_reply(srv, addr)
            assert r.code == 550 and r.last[4:].startswith("5.1.1"), (addr, r)
            assert r.last.endswith("[RCPT-SRS-INVALID]"), r
            ev = srv.wait_event("RCPT-SRS-INVALID", after=mark)[0]
            assert ev["reason"] == reason and ev["rcpt"] == "<%s>" % addr, ev
        # 21 days is still in time
        assert rcpt_reply(srv, srs0(SECRET, "frank@sender.test", days_ago=21)).code == 250
        # srs.domain is ours for SRS addresses only: anything else there is relaying
        r = rcpt_reply(srv, "someone@" + HOSTNAME)
        assert r.code == 550 and r.last.endswith("[ACCESS-RELAY-DENIED]"), r


def test_rotation_second_secret_verifies_and_reload_rereads(tmp_path, make_server):
    with ScriptPeer() as peer, DnsServer(tmp_path, zones=zones()) as dns:
        srv = srs_server(make_server, dns, peer, secret="# rotated\nnew-secret\nold-secret\n")
        # the first secret signs
        send(srv, "frank@sender.test", ["carol@example.test"])
        (t,) = peer.wait_transactions(1)
        assert t.mail == srs0("new-secret", "frank@sender.test"), t.mail
        # both verify
        assert rcpt_reply(srv, srs0("old-secret", "frank@sender.test")).code == 250
        assert rcpt_reply(srv, srs0("new-secret", "frank@sender.test")).code == 250
        # the old secret retired: read again on SIGHUP
        write_secret(srv, "newer-secret\nnew-secret\n")
        mark = srv.mark()
        srv.signal(signal.SIGHUP)
        srv.wait_event("CONFIG-RELOADED", after=mark)
        r = rcpt_reply(srv, srs0("old-secret", "frank@sender.test"))
        assert r.code == 550 and r.last.endswith("[RCPT-SRS-INVALID]"), r
        assert rcpt_reply(srv, srs0("new-secret", "frank@sender.test")).code == 250
        srv.wait_queue_empty()


def test_srs_disabled(tmp_path, make_server):
    with ScriptPeer() as peer, DnsServer(tmp_path, zones=zones()) as dns:
        srv = srs_server(make_server, dns, peer, secret=None, srs__enabled="no")
        # ready, and no secret made
        assert not (srv.dir / "state" / "srs.secret").exists()
        assert not srv.events("SRS-SECRET-CREATED")
        send(srv, "frank@sender.test", ["carol@example.test"])
        (t,) = peer.wait_transactions(1)
        assert t.mail == "frank@sender.test"
        # an SRS address is no address of ours then
        r = rcpt_reply(srv, srs0(SECRET, "frank@sender.test"))
        assert r.code == 550 and r.last.endswith("[ACCESS-RELAY-DENIED]"), r
        srv.wait_queue_empty()


def test_own_srs_domain_and_unusable_secret_file(tmp_path, make_server):
    with ScriptPeer() as peer, DnsServer(tmp_path, zones=zones()) as dns:
        # srs.domain apart from the host name
        srv = srs_server(make_server, dns, peer, srs__domain="Fwd.Example.Test")
        send(srv, "frank@sender.test", ["carol@example.test"])
        (t,) = peer.wait_transactions(1)
        assert t.mail == srs0(SECRET, "frank@sender.test", domain="fwd.example.test"), t.mail
        assert rcpt_reply(srv, srs0(SECRET, "frank@sender.test", domain="fwd.example.test")).code == 250
        srv.wait_queue_empty()
        srv.stop()
        # a secret file others may read is a configuration error
        os.chmod(srv.dir / "state" / "srs.secret", 0o644)
        r = run_cli("check", "-c", str(srv.config))
        assert r.returncode == 78 and "srs.secret_file" in r.stderr and "open to other users" in r.stderr, r
        os.chmod(srv.dir / "state" / "srs.secret", 0o600)
        r = run_cli("check", "-c", str(srv.config), "-o", "srs.domain=fwd..example.test")
        assert r.returncode == 78 and 'srs.domain: "fwd..example.test" is not a domain name' in r.stderr, r
        assert run_cli("check", "-c", str(srv.config)).returncode == 0
    # a secret file that cannot be made: no start
    bad = make_server(conf={"srs": {"secret_file": "nowhere/srs.secret"}}, start=False)
    with pytest.raises(ServerStartError):
        bad.start()
    assert bad.wait_exit() == 78
    ev = bad.events("SRS-SECRET-FAILED")
    assert len(ev) == 1 and ev[0]["path"].endswith("/nowhere/srs.secret") and \
        "No such file" in ev[0]["err"], ev
