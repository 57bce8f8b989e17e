"""
test_edge_bounds.py - bounds and edge cases of issue 7 (point 6, and the
BDAT bare-LF finding of point 7): BDAT with an unreadable size closes the
session, a BDAT chunk past limits.message_size is refused at the command,
bare LF in BDAT follows smtp.bare_lf, junk commands have their own limit
and never extend the command deadline, the per-session message limit,
pipelined input, and a RCPT whose expansion would pass the spool's bound is
refused at RCPT (the accepted message is read back at the next start).
"""

import signal
import time

import pytest

from conftest import DOMAIN, make_message, split_delivered
from test_bounds import ids_in, open_tx


# ------------------------------------------------------------ BDAT sizes

@pytest.mark.parametrize("arg", ["abc", "", "99999999999999999999999", "-5 LAST",
                                 "5 " + "x" * 3000])
def test_bdat_unreadable_size_closes(server, arg):
    mark = server.mark()
    with open_tx(server) as c:
        # what follows is the chunk the client meant: it must never be
        # taken as commands
        c.send(("BDAT %s\r\nRSET\r\nQUIT\r\n" % arg).encode())
        r = c.reply()
        if len(arg) > 2048:
            # a line past limits.command_line is refused as such first
            assert ids_in(r) == ["SMTP-LINE-TOO-LONG"], r
            r = c.reply()
        assert r.code == 421 and r.text.startswith("4.5.2"), r
        assert ids_in(r) == ["SMTP-BDAT-SIZE-INVALID"], r
        assert c.closed()
    ev = server.wait_event("SMTP-BDAT-SIZE-INVALID", after=mark)[0]
    assert ev["client"] == "127.0.0.1", ev
    end = server.wait_event("SESSION-END", after=mark)[0]
    assert end["cause"] == "SMTP-BDAT-SIZE-INVALID", end
    server.assert_serves()


def test_bdat_bad_marker_chunk_dropped(server):
    with open_tx(server) as c:
        c.send(b"BDAT 6 FIRST\r\nQUIT\r\n")
        r = c.reply()
        assert r.code == 501 and r.text.startswith("5.5.2"), r
        # the 6 octets "QUIT\r\n" were the chunk, not a command
        r = c.cmd("NOOP")
        assert r.code == 250, r


def test_bdat_chunk_over_limit_refused_at_command(make_server):
    srv = make_server(opts=["limits.message_size=2048"])
    mark = srv.mark()
    with open_tx(srv) as c:
        first = make_message("bdatbig", body=b"x" * 1000 + b"\r\n")
        c.send(b"BDAT %d\r\n" % len(first) + first)
        r = c.reply()
        assert r.code == 250, r
        # not LAST: the old code stored it and answered 250; it is refused
        # at the command, and its octets (which look like commands) are
        # read and dropped
        chunk = b"RSET\r\nQUIT\r\n" * 100
        c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
        r = c.reply()
        assert r.code == 552 and r.text.startswith("5.3.4"), r
        assert ids_in(r) == ["CONTENT-SIZE-EXCEEDED"], r
        # the transaction is over: a further chunk is refused, read too
        c.send(b"BDAT 5 LAST\r\nhello")
        r = c.reply()
        assert r.code == 503 and ids_in(r) == ["SMTP-NEED-RCPT"], r
        # and the session goes on with a new transaction
        assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        small = make_message("bdatsmall")
        c.send(b"BDAT %d LAST\r\n" % len(small) + small)
        r = c.reply()
        assert r.code == 250 and "queued as" in r.text, r
        assert c.cmd("QUIT").code == 221
    ev = srv.wait_event("CONTENT-SIZE-EXCEEDED", after=mark)[0]
    assert ev["limit"] == "2048", ev
    msg = srv.wait_event("SESSION-MESSAGE", after=mark, verdict="rejected")[0]
    assert msg["cause"] == "CONTENT-SIZE-EXCEEDED", msg
    got = srv.wait_mail("alice")
    assert len(got) == 1
    assert split_delivered(got[0].read_bytes())[3] == small


def test_bdat_first_chunk_over_limit(make_server):
    srv = make_server(opts=["limits.message_size=1024"])
    with open_tx(srv) as c:
        chunk = b"NOOP\r\n" * 200
        c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
        r = c.reply()
        assert r.code == 552 and ids_in(r) == ["CONTENT-SIZE-EXCEEDED"], r
        r = c.cmd("NOOP")
        assert r.code == 250, r


# ------------------------------------------------------------ BDAT bare LF

BARE = [b"Subject: bare\nFrom: <sender@example.org>\r", b"\n\nline one\nline two\r",
        b"\nend\n"]


def send_bdat(c, parts):
    for p in parts[:-1]:
        c.send(b"BDAT %d\r\n" % len(p) + p)
        r = c.reply()
        assert r.code == 250, r
    c.send(b"BDAT %d LAST\r\n" % len(parts[-1]) + parts[-1])
    return c.reply()


def test_bdat_bare_lf_normalized(server):
    mark = server.mark()
    with open_tx(server) as c:
        r = send_bdat(c, BARE)
        assert r.code == 250 and "queued as" in r.text, r
        c.cmd("QUIT")
    f = server.wait_mail("alice")[0]
    body = split_delivered(f.read_bytes())[3]
    # every bare LF stored as CRLF; the CR that ends one chunk and the LF
    # that starts the next stay one CRLF
    assert body == (b"Subject: bare\r\nFrom: <sender@example.org>\r\n\r\n"
                    b"line one\r\nline two\r\nend\r\n"), body
    end = server.wait_event("SESSION-END", after=mark)[0]
    assert "bare_lf_fixed" in end["flags"], end


def test_bdat_bare_lf_rejected(make_server):
    srv = make_server(conf={"smtp": {"bare_lf": "reject"}})
    mark = srv.mark()
    with open_tx(srv) as c:
        r = send_bdat(c, BARE)
        assert r.code == 554 and r.text.startswith("5.6.0"), r
        assert ids_in(r) == ["CONTENT-BARE-LF"], r
        # a clean message still goes through
        assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        ok = make_message("clean")
        r = send_bdat(c, [ok[:7], ok[7:]])
        assert r.code == 250, r
        c.cmd("QUIT")
    ev = srv.wait_event("CONTENT-BARE-LF", after=mark)[0]
    assert ev["offset"] == "13", ev    # after "Subject: bare"
    got = srv.wait_mail("alice")
    assert len(got) == 1
    assert split_delivered(got[0].read_bytes())[3] == ok


# ------------------------------------------------------------ junk commands

def test_junk_commands_limit(make_server):
    srv = make_server(opts=["limits.junk_commands=6", "limits.errors=2"])
    mark = srv.mark()
    with srv.raw() as c:
        assert c.cmd("EHLO client.example.org").code == 250
        # six junk commands: each answered as usual, none counts as an error
        # (limits.errors=2 would have closed the session)
        for line, code in [("NOOP", 250), ("RSET", 250), ("HELP", 214),
                           ("VRFY alice", 252), ("NOOP", 250), ("RSET", 250)]:
            r = c.cmd(line)
            assert r.code == code, (line, r)
        r = c.cmd("NOOP")
        assert r.code == 421 and r.text.startswith("4.7.0"), r
        assert ids_in(r) == ["SMTP-TOO-MANY-JUNK-COMMANDS"], r
        assert c.closed()
    ev = srv.wait_event("SMTP-TOO-MANY-JUNK-COMMANDS", after=mark)[0]
    assert ev["count"] == "7" and ev["limit"] == "6", ev
    end = srv.wait_event("SESSION-END", after=mark)[0]
    assert end["cause"] == "SMTP-TOO-MANY-JUNK-COMMANDS", end


def test_junk_count_starts_again_after_a_message(make_server):
    srv = make_server(opts=["limits.junk_commands=3"])
    with srv.raw() as c:
        assert c.cmd("EHLO client.example.org").code == 250
        for _ in range(3):
            assert c.cmd("RSET").code == 250
        assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(make_message("junkreset") + b".\r\n")
        assert c.reply().code == 250
        for _ in range(3):
            assert c.cmd("NOOP").code == 250
        r = c.cmd("NOOP")
        assert r.code == 421 and ids_in(r) == ["SMTP-TOO-MANY-JUNK-COMMANDS"], r


def test_junk_commands_do_not_extend_deadline(make_server):
    """A client sending NOOP forever is cut at limits.command_timeout from
    its last real command. The NOOPs are paced; the test ends on the 421,
    within a bounded time."""
    srv = make_server(opts=["limits.command_timeout=2"])
    mark = srv.mark()
    with srv.raw() as c:
        assert c.cmd("EHLO client.example.org").code == 250
        t0 = time.monotonic()
        noops = 0
        got = None
        while time.monotonic() - t0 < 15:
            c.send(b"NOOP\r\n")
            r = c.reply(timeout=10)
            if r.code != 250:
                got = r
                break
            noops += 1
            # pacing, not a negative check: the NOOPs span the timeout
            time.sleep(0.2)
        elapsed = time.monotonic() - t0
        assert got is not None, "NOOPs kept the session alive for %.1fs" % elapsed
        assert got.code == 421 and ids_in(got) == ["SMTP-TIMEOUT"], got
        assert noops >= 5, noops       # NOOPs did arrive within the timeout
        assert 1.5 <= elapsed < 4.5, elapsed
        assert c.closed()
    ev = srv.wait_event("SMTP-TIMEOUT", after=mark)[0]
    assert ev["state"] == "ready", ev


def test_real_commands_extend_deadline(make_server):
    srv = make_server(opts=["limits.command_timeout=2"])
    with srv.raw() as c:
        assert c.cmd("EHLO client.example.org").code == 250
        t0 = time.monotonic()
        # MAIL/RSET pairs are work (MAIL) plus junk: the session lives on
        # past the timeout as long as MAIL comes
        while time.monotonic() - t0 < 3.5:
            assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
            assert c.cmd("RSET").code == 250
            # pacing, not a negative check: the pairs span the timeout
            time.sleep(0.3)
        assert c.cmd("EHLO client.example.org").code == 250


# ------------------------------------------------------------ messages per session

def test_messages_per_session(make_server):
    srv = make_server(opts=["limits.messages_per_session=2"])
    mark = srv.mark()
    with srv.raw() as c:
        assert c.cmd("EHLO client.example.org").code == 250
        for i in range(2):
            assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
            assert c.cmd("RCPT TO:<alice@example.test>").code == 250
            assert c.cmd("DATA").code == 354
            c.send(make_message("mps%d" % i) + b".\r\n")
            assert c.reply().code == 250
        r = c.cmd("MAIL FROM:<sender@example.org>")
        assert r.code == 421 and r.text.startswith("4.7.0"), r
        assert ids_in(r) == ["SMTP-TOO-MANY-MESSAGES"], r
        assert c.closed()
    ev = srv.wait_event("SMTP-TOO-MANY-MESSAGES", after=mark)[0]
    assert ev["count"] == "2" and ev["limit"] == "2", ev
    assert len(srv.wait_mail("alice", count=2)) == 2
    srv.assert_serves()


# ------------------------------------------------------------ pipelining

def test_long_pipelined_burst(server):
    """Thousands of commands in one write are all answered, in order."""
    n = 3000
    with server.raw() as c:
        c.send(b"HELO client.example.org\r\nMAIL FROM:<sender@example.org>\r\n" * n
               + b"QUIT\r\n")
        for i in range(n):
            r = c.reply()
            assert r.code == 250 and "mx.example.test" in r.text, (i, r)
            assert c.reply().code == 250, i
        assert c.reply().code == 221


# ------------------------------------------------------------ expansion bound

SPOOL_MAX_RCPTS = 100000
PER_ALIAS = 1000


def test_expansion_past_spool_bound_refused_at_rcpt(make_server):
    naliases = SPOOL_MAX_RCPTS // PER_ALIAS + 1
    lines = []
    for a in range(naliases):
        targets = ["m%03d.%03d@remote.example" % (a, k) for k in range(PER_ALIAS)]
        chunks = [", ".join(targets[k:k + 50]) for k in range(0, PER_ALIAS, 50)]
        lines.append("big%03d@%s: %s," % (a, DOMAIN, chunks[0]))
        lines.extend("    %s%s" % (ch, "," if i < len(chunks) - 2 else "")
                     for i, ch in enumerate(chunks[1:]))
    srv = make_server(conf={"local": {"aliases": "aliases"}, "log": {"level": "notice"}},
                      start=False)
    (srv.dir / "aliases").write_text("\n".join(lines) + "\n")
    srv.write_config()
    srv.start(timeout=60)
    with srv.raw(timeout=60) as c:
        assert c.cmd("EHLO client.example.org").code == 250
        assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
        for a in range(naliases - 1):
            r = c.cmd("RCPT TO:<big%03d@%s>" % (a, DOMAIN))
            assert r.code == 250, (a, r)
        # the next expansion would take the message past the spool's bound
        r = c.cmd("RCPT TO:<big%03d@%s>" % (naliases - 1, DOMAIN))
        assert r.code == 452 and r.text.startswith("4.5.3"), r
        assert ids_in(r) == ["RCPT-TOO-MANY-TARGETS"], r
        ev = srv.wait_event("RCPT-TOO-MANY-TARGETS")[0]
        assert ev["ntargets"] == str(SPOOL_MAX_RCPTS + PER_ALIAS), ev
        assert ev["limit"] == str(SPOOL_MAX_RCPTS), ev
        # the same targets again add nothing: still accepted
        assert c.cmd("RCPT TO:<big000@%s>" % DOMAIN).code == 250
        assert c.cmd("DATA").code == 354
        c.send(make_message("expansion") + b".\r\n")
        r = c.reply()
        assert r.code == 250 and "queued as" in r.text, r
        qid = r.text.split()[-1]
        c.cmd("QUIT")
    # the accepted message, at the bound, is read back at the next start
    mark = srv.mark()
    srv.stop()
    srv.start(timeout=60)
    ev = srv.wait_event("QUEUE-RECOVERED", after=mark, timeout=60)[0]
    assert ev["count"] == "1", ev
    assert not srv.events("QUEUE-SPOOL-CORRUPT")
    assert srv.spool_files("queue") == [qid]


# ------------------------------------------------------------ delivery guarantee

def _queued_with_local_copy(srv):
    """A message to alice and to a non-local recipient (from a trusted
    client): alice's copy is delivered, the spool file stays (the other
    recipient waits for outbound delivery)."""
    code, msg = srv.send_mail(rcpts=("alice@example.test", "bob@remote.example"),
                              data=make_message("guarantee"))
    assert code == 250, (code, msg)
    got = srv.wait_mail("alice")
    assert len(got) == 1 and got[0].parent.name == "new", got
    # the pass ended: its state records are written before this event
    srv.wait_event("DELIVERY-DEFERRED", rcpt="<bob@remote.example>")
    assert len(srv.spool_files("queue")) == 1
    return got[0]


def _restarted_after_pass(srv):
    """Restarts srv and waits for the first delivery pass of the queued
    message (the remote recipient is deferred again)."""
    srv.stop()
    mark = srv.mark()
    srv.start()
    srv.wait_event("QUEUE-RECOVERED", after=mark)
    # issue 8: outbound retry times survive a restart; a reload makes them due
    srv.signal(signal.SIGHUP)
    srv.wait_event("DELIVERY-DEFERRED", after=mark, rcpt="<bob@remote.example>")
    return mark


def test_restart_leaves_copy_moved_to_cur(make_server):
    """docs/design.md, Durability: alice's delivery is in the spool file's
    state log, so a restart does not try her again (not even a look in
    cur/); the copy the reader moved stays the only one."""
    srv = make_server()
    f = _queued_with_local_copy(srv)
    moved = f.parent.parent / "cur" / (f.name + ":2,S")
    f.rename(moved)
    mark = _restarted_after_pass(srv)
    assert not srv.events("DELIVERY-SUCCESS", after=mark, rcpt="<alice@example.test>")
    assert srv.maildir("alice") == [moved]


def test_restart_never_redelivers_a_recorded_recipient(make_server):
    """Issue 7 point 2 (changed on purpose: this was the documented
    duplicate): the reader deleted alice's copy while the message was still
    queued for another recipient; a restart does not deliver it again,
    because her delivery is durably recorded in the state log."""
    srv = make_server()
    f = _queued_with_local_copy(srv)
    f.unlink()
    q = srv.spool_files("queue")
    assert b"state " in (srv.spool / "queue" / q[0]).read_bytes()
    mark = _restarted_after_pass(srv)
    assert not srv.events("DELIVERY-SUCCESS", after=mark, rcpt="<alice@example.test>")
    assert srv.maildir("alice") == []
    assert srv.spool_files("queue") == q
