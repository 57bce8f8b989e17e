"""
test_pop3.py - the POP3 service (issue 3 point 5): RFC 1939 commands and
the UPDATE state, RFC 2449 CAPA and response codes, RFC 5034 AUTH PLAIN,
one session per maildrop, failed-login delays and lockout, bounded input,
idle timeout, and fetchmail as a real client.

Mail is delivered through SMTP first, then read with poplib or a raw
socket. Each refusal is checked for its [ID] and its log event.
"""

import base64
import os
import poplib
import re
import shutil
import socket
import struct
import subprocess
import time

import pytest

from conftest import ACCOUNTS, DOMAIN, free_port, make_message
from redisfix import merge_conf, state_backend  # noqa: F401 (fixture: sqlite and redis)

PW = "alice-pw"
USER = "alice@" + DOMAIN


def ids_in(line):
    if isinstance(line, bytes):
        line = line.decode("utf-8", "replace")
    return re.findall(r"\[([A-Z0-9-]+)\]\s*$", line)


def pop3_server(make_server, conf=None, accounts=None, **kw):
    """A server with an mx and a pop3 listener; .pop3_port is the latter."""
    port = free_port()
    c = {"listen.pop3": {"address": "127.0.0.1:%d" % port, "role": "pop3"},
         "pop3": {"fail_delay": "0"}}
    for sec, kv in (conf or {}).items():
        c.setdefault(sec, {}).update(kv)
    srv = make_server(conf=c, accounts=accounts, **kw)
    srv.pop3_port = port
    return srv


def deliver(srv, n=1, user="alice", bodies=None):
    """Delivers n messages to user over SMTP; returns the message bytes."""
    msgs = []
    before = len(srv.maildir(user))
    for i in range(n):
        data = bodies[i] if bodies else make_message("m%d" % i)
        code, _ = srv.send_mail(rcpts=("%s@%s" % (user, DOMAIN),), data=data)
        assert code == 250
        msgs.append(data)
    srv.wait_mail(user, count=before + n)
    return msgs


def pop(srv, timeout=10):
    return poplib.POP3("127.0.0.1", srv.pop3_port, timeout=timeout)


def login(srv, user=USER, pw=PW):
    p = pop(srv)
    p.user(user)
    p.pass_(pw)
    return p


class Raw:
    """Line-level POP3 client for what poplib does not do."""

    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.greeting = self.line()

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed; partial=%r" % self.buf)
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line.decode("utf-8", "replace")

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.line()

    def multi(self):
        out = []
        while True:
            l = self.line()
            if l == ".":
                return out
            out.append(l)

    def closed(self, timeout=5.0):
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def unstuff(lines):
    """poplib returns lines with the stuffing removed already; join them."""
    return b"\r\n".join(lines) + b"\r\n"


# ------------------------------------------------------------------ login

def test_greeting_capa(make_server):
    srv = pop3_server(make_server, conf={"pop3": {"login_delay": "0"}})
    p = pop(srv)
    assert p.getwelcome() == b"+OK mx.example.test POP3 server ready"
    caps = p.capa()
    for k in ("TOP", "UIDL", "USER", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"):
        assert k in caps, caps
    assert caps["SASL"] == ["PLAIN"]
    assert caps["IMPLEMENTATION"] == ["Postern"]
    assert "LOGIN-DELAY" not in caps
    p.quit()
    ev = srv.wait_event("SESSION-END", proto="pop3")
    assert ev[0]["cause"] == "POP3-QUIT"
    assert srv.events("SESSION-START", proto="pop3")


def test_login_ok_bad_unknown(make_server):
    srv = pop3_server(make_server)
    deliver(srv, 2)
    p = login(srv)
    assert p.stat()[0] == 2
    p.quit()
    srv.wait_event("POP3-LOGIN", user=USER, mech="USER")
    # bad password and unknown user: the same reply, different events
    replies = []
    for user, pw in ((USER, "wrong"), ("nobody@" + DOMAIN, "x")):
        p = pop(srv)
        p.user(user)
        with pytest.raises(poplib.error_proto) as e:
            p.pass_(pw)
        replies.append(e.value.args[0])
        p.quit()
    # the client cannot tell them apart
    assert replies[0] == replies[1] == \
        b"-ERR [AUTH] Authentication failed [POP3-AUTH-FAILED]", replies
    srv.wait_event("POP3-AUTH-BAD-PASSWORD", user=USER)
    srv.wait_event("POP3-AUTH-UNKNOWN-USER", user="nobody@" + DOMAIN)


def test_bare_local_part(make_server):
    srv = pop3_server(make_server)
    p = login(srv, user="alice")
    assert p.stat() == (0, 0)
    p.quit()
    srv.wait_event("POP3-LOGIN", user=USER)


def test_auth_plain(make_server):
    srv = pop3_server(make_server)
    deliver(srv, 1)
    tok = base64.b64encode(b"\0" + USER.encode() + b"\0" + PW.encode()).decode()
    with Raw(srv.pop3_port) as c:
        r = c.cmd("AUTH PLAIN " + tok)
        assert r.startswith("+OK "), r
        assert c.cmd("STAT").startswith("+OK 1 ")
        assert c.cmd("QUIT").startswith("+OK")
    # continuation form, then cancel, then an authzid that is not the user
    with Raw(srv.pop3_port) as c:
        assert c.cmd("AUTH PLAIN") == "+ "
        r = c.cmd("*")
        assert ids_in(r) == ["POP3-AUTH-CANCELLED"], r
        assert c.cmd("AUTH PLAIN") == "+ "
        r = c.cmd(tok)
        assert r.startswith("+OK"), r
        c.cmd("QUIT")
    with Raw(srv.pop3_port) as c:
        bad = base64.b64encode(b"bob@example.test\0" + USER.encode() + b"\0" + PW.encode())
        r = c.cmd("AUTH PLAIN " + bad.decode())
        assert r == "-ERR [AUTH] Access denied [POP3-ACCESS-DENIED]", r
        r = c.cmd("AUTH CRAM-MD5")
        assert ids_in(r) == ["POP3-AUTH-MECHANISM"], r
        r = c.cmd("AUTH PLAIN !!!!")
        assert ids_in(r) == ["POP3-SYNTAX"], r
        c.cmd("QUIT")
    srv.wait_event("POP3-LOGIN", mech="PLAIN")


def test_account_flags(make_server):
    acc = dict(ACCOUNTS)
    acc["carol"] = ACCOUNTS["carol"] + "::::::pop3=no"
    acc["bob"] = ACCOUNTS["bob"] + "::::::disabled=yes"
    srv = pop3_server(make_server, accounts=acc)
    for user, rid, text in (("carol", "POP3-ACCESS-DENIED", "-ERR [AUTH] Access denied"),
                            ("bob", "POP3-MAILBOX-DISABLED", "-ERR [AUTH] Mailbox disabled")):
        p = pop(srv)
        p.user(user + "@" + DOMAIN)
        with pytest.raises(poplib.error_proto) as e:
            p.pass_(user + "-pw")
        assert e.value.args[0].decode() == "%s [%s]" % (text, rid)
        p.quit()
        srv.wait_event(rid, user=user + "@" + DOMAIN)


def test_sequence_and_syntax(make_server):
    srv = pop3_server(make_server)
    with Raw(srv.pop3_port) as c:
        assert ids_in(c.cmd("STAT")) == ["POP3-SEQUENCE"]
        assert ids_in(c.cmd("PASS x")) == ["POP3-SEQUENCE"]
        assert ids_in(c.cmd("FOO")) == ["POP3-SYNTAX"]
        assert ids_in(c.cmd("APOP alice 0123")) == ["POP3-SYNTAX"]
        assert c.cmd("USER " + USER).startswith("+OK")
        assert c.cmd("PASS " + PW).startswith("+OK")
        assert ids_in(c.cmd("USER x")) == ["POP3-SEQUENCE"]
        assert c.cmd("NOOP") == "+OK"
        assert ids_in(c.cmd("STAT 1")) == ["POP3-SYNTAX"]
        assert c.cmd("QUIT").startswith("+OK")
    srv.wait_event("POP3-SEQUENCE", cmd="STAT", state="authorization")


# ------------------------------------------------------------- maildrop

def test_stat_list_uidl_retr_top(make_server):
    srv = pop3_server(make_server)
    body = (b"First line\r\n.starts with a dot\r\n..two dots\r\n.\r\n"
            b"line\r\n" + b"x" * 900 + b"\r\nlast\r\n")
    msgs = deliver(srv, 3, bodies=[make_message("a"), make_message("b", body=body),
                                   make_message("c")])
    files = sorted(srv.maildir("alice"), key=lambda f: f.name)
    p = login(srv)
    count, size = p.stat()
    assert count == 3
    assert size == sum(f.stat().st_size for f in files)
    resp, lines, _ = p.list()
    assert resp == b"+OK 3 messages (%d octets)" % size
    assert [l.split()[1] for l in lines] == [b"%d" % f.stat().st_size for f in files]
    assert p.list(2) == b"+OK 2 %d" % files[1].stat().st_size
    resp, uids, _ = p.uidl()
    assert [u.split()[1].decode() for u in uids] == [f.name.split(":")[0] for f in files]
    assert p.uidl(3) == b"+OK 3 " + files[2].name.split(":")[0].encode()
    # RETR: the exact bytes of the file (poplib removes the stuffing)
    resp, lines, octets = p.retr(2)
    assert resp == b"+OK %d octets" % files[1].stat().st_size
    assert unstuff(lines) == files[1].read_bytes()
    assert msgs[1].endswith(body)
    # TOP 2 2: the header, the blank line and two body lines
    resp, lines, _ = p.top(2, 2)
    head = files[1].read_bytes().split(b"\r\n\r\n")[0]
    assert unstuff(lines) == head + b"\r\n\r\nFirst line\r\n.starts with a dot\r\n"
    p.quit()
    for e in ("POP3-STAT", "POP3-LIST-ALL", "POP3-LIST-ONE", "POP3-UIDL-ALL",
              "POP3-UIDL-ONE", "POP3-RETR", "POP3-TOP"):
        srv.wait_event(e)


def test_retr_wire_bytes(make_server):
    """The raw bytes on the wire: dot-stuffed, ending CRLF.CRLF."""
    srv = pop3_server(make_server)
    deliver(srv, 1, bodies=[make_message("d", body=b".a\r\nb\r\n.\r\n")])
    f = srv.maildir("alice")[0]
    raw = f.read_bytes()
    with Raw(srv.pop3_port) as c:
        c.cmd("USER " + USER)
        c.cmd("PASS " + PW)
        c.send("RETR 1\r\n")
        first = c.line()
        assert first == "+OK %d octets" % len(raw)
        want = raw.replace(b"\r\n.", b"\r\n..") + b".\r\n"
        while len(c.buf) < len(want):
            c.buf += c.sock.recv(65536)
        assert c.buf[:len(want)] == want
        c.buf = c.buf[len(want):]
        c.cmd("QUIT")


def test_bare_lf_file(make_server):
    """A file dropped in with LF line ends is sent and counted with CRLF."""
    srv = pop3_server(make_server)
    new = srv.mail / DOMAIN / "alice" / "new"
    for sub in ("new", "cur", "tmp"):
        (srv.mail / DOMAIN / "alice" / sub).mkdir(parents=True, exist_ok=True)
    (new / "1000.lf.host").write_bytes(b"Subject: lf\n\n.dot\nend")
    p = login(srv)
    want = b"Subject: lf\r\n\r\n.dot\r\nend\r\n"
    assert p.stat() == (1, len(want))
    resp, lines, _ = p.retr(1)
    assert unstuff(lines) == want
    p.quit()


def test_large_message_streams(make_server):
    srv = pop3_server(make_server)
    big = b"".join(b"%07d %s\r\n" % (i, b"y" * 70) for i in range(40000))  # ~3 MB
    deliver(srv, 1, bodies=[make_message("big", body=big)])
    f = srv.maildir("alice")[0]
    p = login(srv)
    resp, lines, _ = p.retr(1)
    assert unstuff(lines) == f.read_bytes()
    p.quit()


def test_dele_quit_removes_and_dele_without_quit_keeps(make_server):
    srv = pop3_server(make_server)
    deliver(srv, 3)
    # DELE then drop the connection: nothing changes
    p = login(srv)
    assert p.dele(1).startswith(b"+OK")
    p.close()  # no QUIT
    srv.wait_event("SESSION-END", proto="pop3", cause="NET-CLIENT-READ-ERROR")
    assert len(srv.maildir("alice")) == 3
    # DELE, RSET, DELE another, QUIT: only that one is gone
    p = login(srv)
    assert p.stat()[0] == 3
    keep = p.uidl(1).split()[2]
    p.dele(1)
    assert p.stat()[0] == 2
    r = p.rset()
    assert r.startswith(b"+OK maildrop has 3 messages"), r
    p.dele(2)
    with pytest.raises(poplib.error_proto) as e:
        p.retr(2)
    assert ids_in(e.value.args[0]) == ["POP3-MSG-DELETED"]
    r = p.quit()
    assert r == b"+OK mx.example.test POP3 server signing off (2 messages left)", r
    names = [f.name.split(":")[0] for f in srv.maildir("alice")]
    assert len(names) == 2 and keep.decode() in names
    srv.wait_event("POP3-QUIT-UPDATE", dele="1")
    srv.wait_event("POP3-RSET")
    srv.wait_event("POP3-DELE")


def test_retr_quit_moves_to_cur_seen(make_server):
    srv = pop3_server(make_server)
    deliver(srv, 2)
    p = login(srv)
    p.retr(1)
    p.top(2, 0)  # TOP does not mark seen
    p.quit()
    cur = srv.maildir("alice", sub=("cur",))
    new = srv.maildir("alice", sub=("new",))
    assert len(cur) == 1 and cur[0].name.endswith(":2,S"), cur
    assert len(new) == 1
    # stays the same message with the same UIDL
    p = login(srv)
    assert len(p.uidl()[1]) == 2
    p.quit()


def test_uidl_stable_across_sessions_and_restart(make_server):
    srv = pop3_server(make_server)
    deliver(srv, 3)
    p = login(srv)
    first = p.uidl()[1]
    p.retr(2)
    p.quit()
    p = login(srv)
    assert p.uidl()[1] == first
    p.quit()
    srv.restart()
    p = login(srv)
    assert p.uidl()[1] == first
    p.quit()


def test_bad_numbers(make_server):
    srv = pop3_server(make_server)
    deliver(srv, 2)
    with Raw(srv.pop3_port) as c:
        c.cmd("USER " + USER)
        c.cmd("PASS " + PW)
        r = c.cmd("RETR 3")
        assert r == "-ERR No such message, only 2 messages in maildrop [POP3-MSG-OUT-OF-RANGE]", r
        assert ids_in(c.cmd("RETR 0")) == ["POP3-MSG-NUMBER-INVALID"]
        assert ids_in(c.cmd("LIST abc")) == ["POP3-MSG-NUMBER-INVALID"]
        assert ids_in(c.cmd("DELE 99")) == ["POP3-MSG-OUT-OF-RANGE"]
        assert c.cmd("DELE 1").startswith("+OK")
        assert ids_in(c.cmd("DELE 1")) == ["POP3-MSG-DELETED"]
        assert ids_in(c.cmd("LIST 1")) == ["POP3-MSG-DELETED"]
        assert ids_in(c.cmd("TOP 1 x")) == ["POP3-SYNTAX"]
        assert c.cmd("RSET").startswith("+OK")
        assert c.cmd("QUIT").startswith("+OK")
    srv.wait_event("POP3-MSG-NUMBER-INVALID", user=USER)
    ev = srv.wait_event("POP3-MSG-OUT-OF-RANGE", user=USER)
    assert ev[0]["count"] == "2" and ev[0]["msgno"] == "3", ev


def test_in_use(make_server):
    srv = pop3_server(make_server)
    deliver(srv, 1)
    p1 = login(srv)
    p2 = pop(srv)
    p2.user(USER)
    with pytest.raises(poplib.error_proto) as e:
        p2.pass_(PW)
    assert e.value.args[0] == b"-ERR [IN-USE] Mailbox is locked by another session [POP3-LOCKED]"
    p2.quit()
    p1.quit()
    ev = srv.wait_event("POP3-LOCKED", user=USER)
    start = srv.events("SESSION-START", proto="pop3")[0]
    assert ev[0]["holder_sid"] == start["sid"]
    # released at QUIT
    p3 = login(srv)
    p3.quit()
    # and when a session ends without QUIT
    p4 = login(srv)
    p4.close()  # no QUIT
    srv.wait_event("SESSION-END", proto="pop3", cause="NET-CLIENT-READ-ERROR")
    login(srv).quit()


def test_pipelining(make_server):
    srv = pop3_server(make_server)
    deliver(srv, 2)
    with Raw(srv.pop3_port) as c:
        c.send("USER %s\r\nPASS %s\r\nSTAT\r\nLIST\r\nRETR 1\r\nNOOP\r\nUIDL 2\r\nQUIT\r\n"
               % (USER, PW))
        assert c.line().startswith("+OK Send")
        assert c.line().startswith("+OK alice@")
        assert c.line().startswith("+OK 2 ")
        assert c.line().startswith("+OK 2 messages")
        assert len(c.multi()) == 2
        assert c.line().startswith("+OK ")
        c.multi()
        assert c.line() == "+OK"
        assert c.line().startswith("+OK 2 ")
        assert c.line().startswith("+OK ")
        assert c.closed()


def test_message_unavailable(make_server):
    srv = pop3_server(make_server)
    deliver(srv, 2)
    with Raw(srv.pop3_port) as c:
        c.cmd("USER " + USER)
        c.cmd("PASS " + PW)
        files = sorted(srv.maildir("alice"), key=lambda f: f.name)
        files[0].unlink()
        r = c.cmd("RETR 1")
        assert r == "-ERR [SYS/TEMP] Message unavailable [POP3-MSG-UNAVAILABLE]", r
        assert c.cmd("RETR 2").startswith("+OK")
        c.multi()
        c.cmd("QUIT")
    srv.wait_event("POP3-MSG-UNAVAILABLE", errno="ENOENT")


def test_mailbox_error(make_server):
    srv = pop3_server(make_server)
    d = srv.mail / DOMAIN / "alice"
    d.mkdir(parents=True)
    (d / "new").write_text("not a folder")
    p = pop(srv)
    p.user(USER)
    with pytest.raises(poplib.error_proto) as e:
        p.pass_(PW)
    assert e.value.args[0] == b"-ERR [SYS/PERM] Mailbox access error [POP3-MAILBOX-ERROR]"
    p.quit()
    srv.wait_event("POP3-MAILBOX-ERROR", errno="ENOTDIR")


def test_update_failed(make_server):
    srv = pop3_server(make_server)
    deliver(srv, 2)
    with Raw(srv.pop3_port) as c:
        c.cmd("USER " + USER)
        c.cmd("PASS " + PW)
        assert c.cmd("DELE 1").startswith("+OK")
        assert c.cmd("DELE 2").startswith("+OK")
        # the first message's file becomes a folder: unlink fails
        f = sorted(srv.maildir("alice"), key=lambda x: x.name)[0]
        f.unlink()
        f.mkdir()
        (f / "x").write_text("x")
        r = c.cmd("QUIT")
        assert r == "-ERR [SYS/TEMP] Some deleted messages not removed [POP3-UPDATE-FAILED]", r
    shutil.rmtree(f)
    assert srv.maildir("alice") == []
    ev = srv.wait_event("POP3-UPDATE-FAILED", errno="EISDIR")
    assert ev[0]["count"] == "1", ev


# ----------------------------------------------------- abuse and limits

def test_lockout_after_failures(make_server):
    srv = pop3_server(make_server, conf={"pop3": {"max_failures": "3", "lockout": "2",
                                                  "fail_delay": "100"}})
    times = []
    for i in range(3):
        with Raw(srv.pop3_port) as c:
            c.cmd("USER " + USER)
            t = time.monotonic()
            r = c.cmd("PASS wrong%d" % i)
            times.append(time.monotonic() - t)
            assert ids_in(r) == ["POP3-AUTH-FAILED"], r
    # the delay grows: 100, 200, 400 ms
    assert times[0] >= 0.09 and times[2] >= 0.38, times
    ev = srv.wait_event("POP3-AUTH-LOCKOUT")
    assert ev[0]["count"] == "3", ev
    assert len(srv.events("POP3-AUTH-BAD-PASSWORD", user=USER)) == 3
    with Raw(srv.pop3_port) as c:
        assert c.greeting == ("-ERR [SYS/TEMP] Too many failed logins from your address, "
                              "try again later [POP3-AUTH-LOCKOUT]"), c.greeting
        assert c.closed()
    # Not a negative check: the lockout's own clock runs out (its expiry is
    # stored, in ms, before the reply that set it; no event marks the end);
    # the check after is positive.
    time.sleep(2.2)
    p = login(srv)  # the lockout is over and the right password works
    p.quit()


def test_lockout_in_open_session(make_server, state_backend):
    srv = pop3_server(make_server, conf=merge_conf(state_backend,
                                                   {"pop3": {"max_failures": "2", "lockout": "30"}}))
    with Raw(srv.pop3_port) as other:
        for i in range(2):
            with Raw(srv.pop3_port) as c:
                c.cmd("USER " + USER)
                c.cmd("PASS bad")
        # USER does no I/O; the lockout is decided by the login job, in
        # the state store, before the password is tried (as SMTP AUTH)
        r = other.cmd("USER " + USER)
        assert r.startswith("+OK"), r
        r = other.cmd("PASS " + PW)
        assert ids_in(r) == ["POP3-AUTH-LOCKOUT"], r
        r = other.cmd("STAT")
        assert r.startswith("-ERR"), r  # not logged in


def test_lockout_survives_restart(make_server, state_backend):
    srv = pop3_server(make_server, conf=merge_conf(state_backend,
                                                   {"pop3": {"max_failures": "2", "lockout": "60"}}))
    for i in range(2):
        with Raw(srv.pop3_port) as c:
            c.cmd("USER " + USER)
            r = c.cmd("PASS bad")
            assert ids_in(r) == ["POP3-AUTH-FAILED"], r
    ev = srv.wait_event("POP3-AUTH-LOCKOUT")[0]
    assert ev["count"] == "2", ev
    if not state_backend:
        assert (srv.dir / "state" / "state.db").exists()
    # the lockout lives in the state store (one with SMTP AUTH; state.db or
    # Redis): a restart does not lift it
    srv.restart()
    mark = srv.mark()
    with Raw(srv.pop3_port) as c:
        assert ids_in(c.greeting) == ["POP3-AUTH-LOCKOUT"], c.greeting
        assert c.closed()
    ev = srv.wait_event("POP3-AUTH-LOCKOUT", after=mark)[0]
    assert ev["count"] == "2" and 0 < int(ev["remaining_s"]) <= 60, ev


def test_login_delay(make_server):
    srv = pop3_server(make_server, conf={"pop3": {"login_delay": "30"}})
    p = login(srv)
    assert p.capa()["LOGIN-DELAY"] == ["30"]
    p.quit()
    p = pop(srv)
    p.user(USER)
    with pytest.raises(poplib.error_proto) as e:
        p.pass_(PW)
    assert e.value.args[0].startswith(b"-ERR [LOGIN-DELAY] Login too soon, wait ")
    assert ids_in(e.value.args[0]) == ["POP3-LOGIN-DELAY"]
    p.quit()


def test_idle_timeout(make_server):
    srv = pop3_server(make_server, conf={"pop3": {"idle_timeout": "1"}})
    deliver(srv, 1)
    with Raw(srv.pop3_port) as c:
        c.cmd("USER " + USER)
        c.cmd("PASS " + PW)
        c.cmd("DELE 1")
        t = time.monotonic()
        assert c.closed(timeout=5)
        assert time.monotonic() - t < 4
        assert c.buf == b""  # no response (RFC 1939 3)
    srv.wait_event("POP3-TIMEOUT")
    srv.wait_event("SESSION-END", proto="pop3", cause="POP3-TIMEOUT")
    assert len(srv.maildir("alice")) == 1


def test_long_line_and_overflow(make_server):
    srv = pop3_server(make_server, conf={"limits": {"line_buffer": "4096"}})
    with Raw(srv.pop3_port) as c:
        r = c.cmd("USER " + "a" * 300)
        assert r == "-ERR Command line too long [POP3-LINE-TOO-LONG]", r
        assert c.cmd("CAPA").startswith("+OK")
        c.multi()
        c.send("X" * 5000)
        r = c.line()
        assert ids_in(r) == ["POP3-INPUT-OVERFLOW"], r
        assert c.closed()
    with Raw(srv.pop3_port) as c:  # still served
        assert c.greeting.startswith("+OK")


def test_too_many_errors(make_server):
    srv = pop3_server(make_server, conf={"limits": {"errors": "3"}})
    with Raw(srv.pop3_port) as c:
        c.cmd("BAD1")
        c.cmd("BAD2")
        c.send("BAD3\r\n")
        assert ids_in(c.line()) == ["POP3-SYNTAX"]
        assert ids_in(c.line()) == ["POP3-TOO-MANY-ERRORS"]
        assert c.closed()


def test_connection_limits(make_server):
    srv = pop3_server(make_server, conf={"limits": {"connections_per_ip": "1"}})
    with Raw(srv.pop3_port) as c1:
        with Raw(srv.pop3_port) as c2:
            assert c2.greeting == ("-ERR [SYS/TEMP] Too many connections from your address "
                                   "[POP3-TOO-MANY-CONNECTIONS]"), c2.greeting
            assert c2.closed()
        assert c1.cmd("QUIT").startswith("+OK")
    srv2 = pop3_server(make_server, conf={"limits": {"connections": "1"}}, name="busy")
    with Raw(srv2.pop3_port) as c1:
        with Raw(srv2.pop3_port) as c2:
            assert ids_in(c2.greeting) == ["POP3-SERVER-BUSY"], c2.greeting
        c1.cmd("QUIT")


def test_shutdown_stops_pop3_sessions(make_server):
    srv = pop3_server(make_server, conf={"server": {"shutdown_grace": "1"}})
    deliver(srv, 1)
    c = Raw(srv.pop3_port)
    c.cmd("USER " + USER)
    c.cmd("PASS " + PW)
    c.cmd("DELE 1")
    srv.signal(15)
    assert c.line() == ("-ERR [SYS/TEMP] Server shutting down, try again later "
                        "[POP3-SHUTDOWN]")
    assert c.closed()
    c.close()
    assert srv.wait_exit() == 0
    assert len(srv.maildir("alice")) == 1  # no UPDATE


# ------------------------------------------------------------- fetchmail

@pytest.mark.skipif(shutil.which("fetchmail") is None, reason="fetchmail not installed")
def test_fetchmail(make_server, tmp_path):
    srv = pop3_server(make_server)
    msgs = deliver(srv, 3, bodies=[make_message("f%d" % i, body=b".dot\r\nline %d\r\n" % i)
                                   for i in range(3)])
    files = sorted(srv.maildir("alice"), key=lambda f: f.name)
    want = [f.read_bytes() for f in files]
    out = tmp_path / "fetched"
    out.mkdir()
    mda = tmp_path / "mda.sh"
    mda.write_text('#!/bin/sh\ncat > "%s/msg.$$.$(date +%%s%%N)"\n' % out)
    mda.chmod(0o755)
    rc = tmp_path / "fetchmailrc"
    rc.write_text('poll 127.0.0.1 protocol POP3 port %d\n'
                  '  user "%s" password "%s" is "tester" here\n'
                  '  sslproto "" no keep\n' % (srv.pop3_port, USER, PW))
    rc.chmod(0o600)
    env = dict(os.environ, HOME=str(tmp_path), FETCHMAILHOME=str(tmp_path))
    r = subprocess.run(["fetchmail", "-f", str(rc), "-p", "POP3", "-P", str(srv.pop3_port),
                        "--nosslcertck", "--mda", str(mda), "-v", "--nodetach",
                        "--pidfile", str(tmp_path / "fm.pid"), "127.0.0.1"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    got = sorted(p.read_bytes() for p in out.iterdir())
    assert len(got) == 3, r.stdout + r.stderr
    # fetchmail hands the MDA what it read, with LF line ends and its own
    # Return-Path and Received fields on top: compare from our Received on
    def tail(b):
        return b.replace(b"\r\n", b"\n").split(b"Received: from client.example.org", 1)[1]
    for g in got:
        assert tail(g) in [tail(w) for w in want], g[:600]
    assert srv.maildir("alice") == []  # "no keep": DELE + QUIT
    srv.wait_event("POP3-QUIT-UPDATE", dele="3")


def test_dele_frees_quota_at_once(make_server):
    """Messages deleted over POP3 give their room back at QUIT: the next
    RCPT is accepted at once, not after the quota cache's next rescan."""
    srv = pop3_server(make_server, account_extra={"alice": "quota_messages=2"})
    deliver(srv, 2)
    with srv.raw() as c:
        c.cmd("EHLO client.example.org")
        assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
        r = c.cmd("RCPT TO:<alice@example.test>")
        assert r.code == 452 and ids_in(r.text) == ["RCPT-MAILBOX-FULL"], r
    p = pop(srv)
    p.user(USER)
    p.pass_(PW)
    p.dele(1)
    p.dele(2)
    p.quit()
    with srv.raw() as c:
        c.cmd("EHLO client.example.org")
        assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
        r = c.cmd("RCPT TO:<alice@example.test>")
        assert r.code == 250, r


# ------------------------------------------------------------ issue 7 point 7

def raw_login_dele1(c):
    assert c.cmd("USER " + USER).startswith("+OK")
    assert c.cmd("PASS " + PW).startswith("+OK")
    assert c.cmd("DELE 1").startswith("+OK")


def test_ordinary_err_replies_do_not_count_as_errors(make_server):
    """-ERR answers a correct client gets (message deleted, no such
    message) do not count toward limits.errors: a client that RETRs a
    message it just deleted, again and again, is not closed, and its QUIT
    applies the DELEs (RFC 1939 6)."""
    srv = pop3_server(make_server, conf={"limits": {"errors": "3"}})
    deliver(srv, 2)
    mark = srv.mark()
    with Raw(srv.pop3_port) as c:
        raw_login_dele1(c)
        for _ in range(5):
            r = c.cmd("RETR 1")
            assert r.startswith("-ERR") and ids_in(r) == ["POP3-MSG-DELETED"], r
            r = c.cmd("DELE 1")
            assert ids_in(r) == ["POP3-MSG-DELETED"], r
            r = c.cmd("RETR 7")
            assert r.startswith("-ERR") and ids_in(r) == ["POP3-MSG-OUT-OF-RANGE"], r
        r = c.cmd("QUIT")
        assert r == "+OK mx.example.test POP3 server signing off (1 messages left)", r
    assert len(srv.maildir("alice")) == 1
    srv.wait_event("POP3-QUIT-UPDATE", after=mark, dele="1")
    assert not srv.events("POP3-TOO-MANY-ERRORS", after=mark)
    assert len(srv.events("POP3-MSG-DELETED", after=mark)) >= 10


def test_session_ended_other_than_by_quit_applies_nothing(make_server):
    """RFC 1939 3 and 6: DELEs are applied only in the UPDATE state, which
    only QUIT enters. A session closed for too many protocol errors, or
    dropped by the client, deletes nothing."""
    srv = pop3_server(make_server, conf={"limits": {"errors": "3"}})
    deliver(srv, 2)
    mark = srv.mark()
    with Raw(srv.pop3_port) as c:
        raw_login_dele1(c)
        assert c.cmd("DELE 2").startswith("+OK")
        assert ids_in(c.cmd("BOGUS")) == ["POP3-SYNTAX"]
        assert ids_in(c.cmd("BOGUS")) == ["POP3-SYNTAX"]
        c.send("BOGUS\r\n")
        assert ids_in(c.line()) == ["POP3-SYNTAX"]
        assert ids_in(c.line()) == ["POP3-TOO-MANY-ERRORS"]
        assert c.closed()
    end = srv.wait_event("SESSION-END", after=mark, proto="pop3")[0]
    assert end["cause"] == "POP3-TOO-MANY-ERRORS", end
    assert len(srv.maildir("alice")) == 2
    # DELE then the connection drops (a reset, no QUIT)
    mark = srv.mark()
    c = Raw(srv.pop3_port)
    raw_login_dele1(c)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.sock.close()
    end = srv.wait_event("SESSION-END", after=mark, proto="pop3")[0]
    assert end["cause"] == "NET-CLIENT-READ-ERROR", end
    assert len(srv.maildir("alice")) == 2
    assert not srv.events("POP3-QUIT-UPDATE")
    # and the maildrop is free again, with both messages
    p = login(srv)
    assert p.stat()[0] == 2
    p.quit()
