"""
test_operations.py - issue 2 point 9: SIGTERM with a grace period, SIGHUP
reload (good and bad), pid file, dropping root to server.user.
"""

import os
import pwd
import re
import signal
import socket
import time

import pytest

from conftest import make_message


def ids_in(reply):
    return re.findall(r"\[([A-Z0-9-]+)\]\s*$", reply.last)


def open_tx(srv, rcpts=("alice@example.test",)):
    c = srv.raw()
    assert c.cmd("EHLO client.example.org").code == 250
    assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
    for a in rcpts:
        assert c.cmd("RCPT TO:<%s>" % a).code == 250
    return c


def connect_refused(port):
    """True when a new client is not served: refused, reset, or closed
    without a 220."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=3)
    except OSError:
        return True
    try:
        s.settimeout(3)
        data = s.recv(512)
        return not data.startswith(b"220")
    except socket.timeout:
        return False
    except OSError:
        return True
    finally:
        s.close()


# ------------------------------------------------------------------ SIGTERM

def test_sigterm_grace_then_421(make_server):
    srv = make_server(opts=["server.shutdown_grace=2"])
    idle = open_tx(srv)
    busy = open_tx(srv, rcpts=("bob@example.test",))
    mark = srv.mark()
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    sq = srv.wait_event("SIGNAL-SLOW-QUIT", after=mark)[0]
    assert sq["sessions"] == "2", sq
    assert sq["grace_s"] == "2", sq
    assert connect_refused(srv.port), "new connection served after SIGTERM"
    # a session that finishes its message within the grace gets 250
    assert busy.cmd("DATA").code == 354
    busy.send(make_message("during-grace") + b".\r\n")
    r = busy.reply()
    assert r.code == 250, r
    # the session may go on (QUIT -> 221) or be told 421; it must not be
    # dropped without a reply
    try:
        q = busy.cmd("QUIT")
    except (ConnectionError, OSError) as e:
        raise AssertionError("session closed without a reply after its 250 "
                             "during the grace period: %s" % e)
    assert q.code in (221, 421), q
    busy.close()
    # the idle one is closed with 421 when the grace is over
    r = idle.reply(timeout=8)
    took = time.monotonic() - t0
    assert r.code == 421 and r.text.startswith("4.3.2"), r
    assert ids_in(r) == ["SIGNAL-STOP-SESSIONS"], r
    assert 1.5 <= took <= 6, took
    assert idle.closed()
    idle.close()
    rc = srv.wait_exit(timeout=15)
    assert rc == 0, (rc, srv.log_text()[-2000:])
    srv.wait_event("SIGNAL-STOP-SESSIONS", after=mark)
    srv.wait_event("SHUTDOWN-COMPLETE", after=mark)
    ends = srv.events("SESSION-END", after=mark)
    assert len(ends) == 2, ends
    assert "SIGNAL-STOP-SESSIONS" in {e["cause"] for e in ends}, ends
    # the message accepted during the grace is delivered or still queued
    if not srv.maildir("bob"):
        assert srv.spool_files("queue"), "acknowledged message lost"
        srv.start()
        srv.wait_mail("bob")


def test_sigterm_idle_server_exits_fast(make_server):
    srv = make_server(opts=["server.shutdown_grace=30"])
    t0 = time.monotonic()
    assert srv.stop(timeout=10) == 0
    assert time.monotonic() - t0 < 5
    assert srv.events("SHUTDOWN-COMPLETE")


def test_sigint_stops_too(make_server):
    srv = make_server()
    srv.signal(signal.SIGINT)
    assert srv.wait_exit(timeout=10) == 0
    srv.wait_event("SIGNAL-SLOW-QUIT")
    srv.wait_event("SHUTDOWN-COMPLETE")


def test_unexpected_signal_ignored(make_server):
    srv = make_server()
    srv.signal(signal.SIGUSR2)
    srv.wait_event("SIGNAL-UNEXPECTED")
    assert srv.alive()
    srv.assert_serves()


# ------------------------------------------------------------------ SIGHUP

def test_sighup_reload_new_sessions_only(make_server):
    srv = make_server()
    old = srv.raw()
    old.cmd("EHLO client.example.org")
    srv.write_config(conf={"limits": {"recipients": "2"}})
    mark = srv.mark()
    srv.signal(signal.SIGHUP)
    ev = srv.wait_event("CONFIG-RELOADED", after=mark)[0]
    assert ev["generation"] == "2", ev
    try:
        # a new session has the new limit
        with srv.raw() as c:
            c.cmd("EHLO client.example.org")
            c.cmd("MAIL FROM:<sender@example.org>")
            assert c.cmd("RCPT TO:<alice@example.test>").code == 250
            assert c.cmd("RCPT TO:<bob@example.test>").code == 250
            r = c.cmd("RCPT TO:<carol@example.test>")
            assert r.code == 452 and ids_in(r) == ["RCPT-TOO-MANY"], r
        # the session opened before the reload keeps the old one
        old.cmd("MAIL FROM:<sender@example.org>")
        for u in ("alice", "bob", "carol"):
            r = old.cmd("RCPT TO:<%s@example.test>" % u)
            assert r.code == 250, r
        assert old.cmd("DATA").code == 354
        old.send(make_message("old-session") + b".\r\n")
        assert old.reply().code == 250
    finally:
        old.close()
    srv.wait_mail("carol")


def test_sighup_bad_config_keeps_old(make_server):
    srv = make_server(conf={"limits": {"recipients": "2"}})
    good = srv.config.read_text()
    srv.config.write_text(good + "\n[limits]\nrecipients = lots\nnonsense here\n")
    mark = srv.mark()
    srv.signal(signal.SIGHUP)
    fail = srv.wait_event("CONFIG-RELOAD-FAILED", after=mark)[0]
    inv = srv.wait_event("CONFIG-INVALID", after=mark)
    assert inv and all(i.get("line") for i in inv), inv
    assert int(fail.get("errors", "0")) >= 2, fail
    assert srv.alive()
    with srv.raw() as c:
        c.cmd("EHLO client.example.org")
        c.cmd("MAIL FROM:<sender@example.org>")
        c.cmd("RCPT TO:<alice@example.test>")
        c.cmd("RCPT TO:<bob@example.test>")
        r = c.cmd("RCPT TO:<carol@example.test>")
        assert r.code == 452, r        # still the old limit of 2
    # a missing accounts file on reload is refused too
    srv.write_config(conf={"local": {"accounts": "gone"}})
    mark = srv.mark()
    srv.signal(signal.SIGHUP)
    srv.wait_event("CONFIG-RELOAD-FAILED", after=mark)
    mo = srv.wait_event("CONFIG-MAP-OPEN-FAILED", after=mark)[0]
    assert mo.get("option") == "local.accounts" and mo.get("path", "").endswith("gone"), mo
    srv.assert_serves()
    assert srv.send_mail()[0] == 250


def test_sighup_restart_only_option(make_server):
    srv = make_server()
    srv.write_config(conf={"server": {"workers": "3"}})
    mark = srv.mark()
    srv.signal(signal.SIGHUP)
    srv.wait_event("CONFIG-RELOADED", after=mark)
    ev = srv.wait_event("CONFIG-RESTART-NEEDED", after=mark)
    assert any(e.get("option") == "server.workers" for e in ev), ev
    srv.assert_serves()


# ---------------------------------------------------------------- pid file

def test_pid_file(make_server):
    srv = make_server(opts=["server.pid_file=postern.pid"])
    pf = srv.dir / "postern.pid"
    assert pf.read_text().strip() == str(srv.pid)
    # a second instance on the same pid file refuses to start
    other = make_server(start=False, opts=["server.pid_file=%s" % pf])
    other.start(wait=False)
    rc = other.wait_exit(timeout=15)
    assert rc == 1, (rc, other.log_text())
    assert other.events("STARTUP-PIDFILE-FAILED")
    assert pf.read_text().strip() == str(srv.pid)
    assert srv.stop() == 0
    assert not pf.exists(), "pid file left after exit"


def test_pid_file_unwritable(make_server):
    srv = make_server(start=False, opts=["server.pid_file=no/such/dir/p.pid"])
    srv.start(wait=False)
    assert srv.wait_exit(timeout=15) == 1, srv.log_text()
    assert srv.events("STARTUP-PIDFILE-FAILED")


# ------------------------------------------------------------------ user

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def proc_ids(pid, field):
    for line in open("/proc/%d/status" % pid):
        if line.startswith(field + ":"):
            return [int(x) for x in line.split()[1:]]
    return []


def open_ancestors(path):
    """The unprivileged user must reach the server's folders: pytest's
    base temporary folder is 0700."""
    p = path.resolve()
    while p != p.parent and str(p) != "/tmp":
        os.chmod(p, os.stat(p).st_mode | 0o111)
        p = p.parent


@needs_root
def test_drop_to_server_user(make_server, tmp_path):
    nobody = pwd.getpwnam("nobody")
    open_ancestors(tmp_path)
    srv = make_server(opts=["server.user=nobody"])
    ev = srv.wait_event("STARTUP-PRIVDROP")[0]
    assert ev["user"] == "nobody" and ev["uid"] == str(nobody.pw_uid), ev
    for task in os.listdir("/proc/%d/task" % srv.pid):
        for line in open("/proc/%d/task/%s/status" % (srv.pid, task)):
            if line.startswith("Uid:") or line.startswith("Gid:"):
                want = nobody.pw_uid if line.startswith("Uid:") else nobody.pw_gid
                assert [int(x) for x in line.split()[1:]] == [want] * 4, (task, line)
            if line.startswith("Groups:"):
                assert line.split()[1:] in ([], [str(nobody.pw_gid)]), line
    assert not srv.events("STARTUP-RUNNING-AS-ROOT")
    assert srv.send_mail()[0] == 250
    f = srv.wait_mail("alice")[0]
    assert f.stat().st_uid == nobody.pw_uid
    assert srv.stop() == 0


@needs_root
def test_unknown_server_user(make_server):
    srv = make_server(start=False, opts=["server.user=no-such-user-xyz"])
    srv.start(wait=False)
    assert srv.wait_exit(timeout=15) == 78, srv.log_text()
    assert srv.events("STARTUP-PRIVDROP-FAILED")


@needs_root
def test_root_without_user_warns(server):
    ev = server.events("STARTUP-RUNNING-AS-ROOT")
    assert ev and ev[0]["sev"] == "warning", server.log_text()[:2000]
