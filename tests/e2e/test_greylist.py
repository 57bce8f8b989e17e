"""
test_greylist.py - greylisting (issue 9 point 4): check "greylist" in
policy.rcpt over the state store. A new triplet is refused with 451 4.7.1
[POLICY-GREYLISTED] and the seconds left; a retry before greylist.delay is
refused again; one after it passes (POLICY-GREYLIST-PASSED). The triplet's
parts follow greylist.key; trusted and authenticated clients and
postmaster@ of local domains are exempt; a network with
greylist.auto_allow passed triplets passes outright; triplets survive a
restart (SQLite in server.state, or Redis). Each test that runs a server
runs on both state back ends (the state_backend fixture of redisfix.py:
SQLite, and a redis-server started for the test). Clients bind 127.0.0.x
(127.0.0.1 is trusted by default).
"""
import base64
import re
import time

from conftest import DOMAIN, run_cli
from redisfix import state_backend  # noqa: F401 (fixture)

RCPT_CHAIN = "limits, recipient, relay, access, greylist, quota, free_space"
ALICE = "alice@" + DOMAIN
BOB = "bob@" + DOMAIN
DELAY = 2


def grey_server(make_server, greylist=None, conf=None, backend=None, **kw):
    c = {"policy": {"rcpt": RCPT_CHAIN},
         "greylist": {"delay": "%ds" % DELAY, "auto_allow": "0"}}
    for sec, kv in (backend or {}).items():
        c.setdefault(sec, {}).update(kv)
    c["greylist"].update(greylist or {})
    for sec, kv in (conf or {}).items():
        c.setdefault(sec, {}).update(kv)
    return make_server(conf=c, **kw)


def rcpt(srv, frm="sender@example.org", to=ALICE, source="127.0.0.2",
         helo="client.example.org"):
    """One MAIL + RCPT from source; returns the RCPT reply."""
    with srv.raw(source=source) as c:
        assert c.cmd("EHLO " + helo).code == 250
        assert c.cmd("MAIL FROM:<%s>" % frm).code == 250
        r = c.cmd("RCPT TO:<%s>" % to)
        c.cmd("QUIT")
        return r


def assert_greylisted(r):
    assert r.code == 451, r
    assert r.last[4:].startswith("4.7.1 Greylisted"), r
    assert r.last.endswith("[POLICY-GREYLISTED]"), r
    m = re.search(r"try again in (\d+) seconds", r.last)
    assert m, r
    return int(m.group(1))


def wait_pass(srv, timeout=15.0, **kw):
    """Retries (bounded) until the triplet passes; returns the reply."""
    end = time.monotonic() + timeout
    while True:
        r = rcpt(srv, **kw)
        if r.code != 451 or time.monotonic() > end:
            return r
        time.sleep(0.3)


def test_first_attempt_retry_too_early_then_pass(make_server, state_backend):
    srv = grey_server(make_server, backend=state_backend)
    mark = srv.mark()
    t0 = time.monotonic()
    r = rcpt(srv)
    assert assert_greylisted(r) == DELAY
    ev = srv.wait_event("POLICY-GREYLISTED", after=mark)[0]
    assert ev["client"] == "127.0.0.2" and ev["network"] == "127.0.0.0/24", ev
    assert ev["wait_s"] == str(DELAY), ev
    # a retry at once: refused again, with the time left
    r = rcpt(srv)
    if time.monotonic() - t0 < DELAY - 0.5:
        assert 1 <= assert_greylisted(r) <= DELAY
    r = wait_pass(srv)
    assert r.code == 250, r
    assert time.monotonic() - t0 >= DELAY - 1
    ev = srv.wait_event("POLICY-GREYLIST-PASSED", after=mark, reason="retried")[0]
    assert ev["to"] == "<%s>" % ALICE, ev
    # known from now on, also from another host of the same /24
    mark = srv.mark()
    assert rcpt(srv, source="127.0.0.3").code == 250
    srv.wait_event("POLICY-GREYLIST-PASSED", after=mark, reason="known")
    # and the message goes through
    assert srv.send_mail(source="127.0.0.2")[0] == 250


def test_key_parts(make_server, state_backend):
    srv = grey_server(make_server, backend=state_backend)
    assert_greylisted(rcpt(srv))
    assert wait_pass(srv).code == 250
    # another sender, or another recipient: a new triplet
    assert_greylisted(rcpt(srv, frm="other@example.org"))
    assert_greylisted(rcpt(srv, to=BOB))
    # another /24: a new triplet
    assert_greylisted(rcpt(srv, source="127.0.1.2"))
    # the HELO is not in the default key
    assert rcpt(srv, helo="other.example.org").code == 250


def test_key_sender_only_and_prefix(make_server, state_backend):
    srv = grey_server(make_server, backend=state_backend,
                      greylist={"key": "client, sender", "client_prefix4": "16"})
    assert_greylisted(rcpt(srv))
    assert wait_pass(srv).code == 250
    # recipient not in the key; 127.0.1.2 is in the same /16
    assert rcpt(srv, to=BOB, source="127.0.1.2").code == 250
    assert_greylisted(rcpt(srv, frm="other@example.org"))


def test_key_with_helo(make_server, state_backend):
    srv = grey_server(make_server, backend=state_backend,
                      greylist={"key": "client, sender, recipient, helo"})
    assert_greylisted(rcpt(srv))
    assert wait_pass(srv).code == 250
    assert_greylisted(rcpt(srv, helo="other.example.org"))


def test_trusted_and_authenticated_skip(make_server, state_backend):
    srv = grey_server(make_server, backend=state_backend, conf={
        "server": {"trusted_networks": "127.0.0.1/32, 127.0.0.5/32"},
        "auth": {"plaintext_on_loopback": "yes", "fail_delay": "0"}})
    mark = srv.mark()
    assert rcpt(srv, source="127.0.0.5").code == 250
    with srv.raw(source="127.0.0.2") as c:
        assert c.cmd("EHLO client.example.org").code == 250
        pw = base64.b64encode(("\0%s\0alice-pw" % ALICE).encode()).decode()
        assert c.cmd("AUTH PLAIN " + pw).code == 235
        assert c.cmd("MAIL FROM:<%s>" % ALICE).code == 250
        assert c.cmd("RCPT TO:<%s>" % BOB).code == 250
    # the check proves it is on: an untrusted, unauthenticated client
    assert_greylisted(rcpt(srv, source="127.0.0.2"))
    evs = srv.events("POLICY-GREYLISTED", after=mark)
    assert [e["client"] for e in evs] == ["127.0.0.2"], evs


def test_postmaster_exempt(make_server, state_backend):
    srv = grey_server(make_server, backend=state_backend)
    assert rcpt(srv, to="postmaster@" + DOMAIN).code == 250
    assert rcpt(srv, to="postmaster").code == 250
    assert_greylisted(rcpt(srv, to=ALICE))


def test_auto_allow_after_passed_triplets(make_server, state_backend):
    srv = grey_server(make_server, backend=state_backend, greylist={"auto_allow": "2"})
    senders = ["s1@example.org", "s2@example.org"]
    for frm in senders:
        assert_greylisted(rcpt(srv, frm=frm))
    for frm in senders:
        assert wait_pass(srv, frm=frm).code == 250
    mark = srv.mark()
    # a new triplet from the same network passes outright
    assert rcpt(srv, frm="s3@example.org", source="127.0.0.7").code == 250
    ev = srv.wait_event("POLICY-GREYLIST-PASSED", after=mark, reason="auto_allow")[0]
    assert ev["network"] == "127.0.0.0/24", ev
    # another network is still greylisted
    assert_greylisted(rcpt(srv, frm="s3@example.org", source="127.0.2.2"))


def test_state_survives_restart(make_server, state_backend):
    srv = grey_server(make_server, backend=state_backend)
    assert_greylisted(rcpt(srv))
    assert wait_pass(srv).code == 250
    assert_greylisted(rcpt(srv, frm="late@example.org"))
    srv.restart()
    mark = srv.mark()
    assert rcpt(srv).code == 250
    srv.wait_event("POLICY-GREYLIST-PASSED", after=mark, reason="known")
    # the first attempt made before the restart counts too
    assert wait_pass(srv, frm="late@example.org").code == 250
    srv.wait_event("POLICY-GREYLIST-PASSED", after=mark, reason="retried")


def test_bad_key_and_window_are_configuration_errors(tmp_path):
    conf = tmp_path / "p.conf"
    conf.write_text("[greylist]\nkey = client, ip\ndelay = 1h\nretry_window = 30m\n")
    r = run_cli("check", "-c", str(conf))
    out = r.stderr + r.stdout
    assert r.returncode != 0, out
    assert "greylist.key" in out and "greylist.retry_window" in out, out
    conf.write_text("[greylist]\nkey = Client, helo\n")
    r = run_cli("check", "-c", str(conf))
    assert "greylist" not in r.stderr + r.stdout, r


def test_spf_pass_for_a_configured_domain_is_exempt(make_server, state_backend, tmp_path):
    """greylist.spf_pass_domains: an SPF pass for the domain (or a
    subdomain) skips greylisting; an SPF pass for another domain, or a
    softfail for a configured one, is greylisted."""
    from spfzone import SpfZoneServer
    zone = {"pass.example.org": [{"SPF": "v=spf1 ip4:127.0.0.2 -all"}],
            "sub.pass.example.org": [{"SPF": "v=spf1 ip4:127.0.0.2 -all"}],
            "other.example.net": [{"SPF": "v=spf1 ip4:127.0.0.2 -all"}],
            "soft.example.org": [{"SPF": "v=spf1 ~all"}]}
    with SpfZoneServer(tmp_path, zone) as dns:
        srv = grey_server(make_server, backend=state_backend,
                          greylist={"spf_pass_domains": "pass.example.org, soft.example.org"},
                          conf={"dns": {"servers": dns.servers, "timeout": "1", "attempts": "1"},
                                "policy": {"rcpt": "limits, spf, recipient, relay, greylist, quota"}})
        mark = srv.mark()
        assert rcpt(srv, frm="a@pass.example.org").code == 250
        assert rcpt(srv, frm="a@sub.pass.example.org").code == 250
        assert_greylisted(rcpt(srv, frm="a@other.example.net"))
        assert_greylisted(rcpt(srv, frm="a@soft.example.org"))
        evs = srv.wait_event("POLICY-GREYLISTED", after=mark, count=2)
        assert {e["from"] for e in evs} == {"<a@other.example.net>", "<a@soft.example.org>"}, evs
        assert not [e for e in srv.events("POLICY-GREYLISTED", after=mark)
                    if "pass.example.org" in e.get("from", "")]
        # the passes were SPF's: the sessions' summaries show spf then greylist continuing
        assert len(srv.events("SPF-PASS", after=mark)) >= 3
