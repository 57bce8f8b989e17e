"""
test_durability.py - issue 2 point 6: a 250 after the data means the message
survives SIGKILL and is delivered to each mailbox once (no reader touches the
mailboxes here; docs/design.md states the guarantee); a write failure
gives 451 4.3.0 and leaves nothing half-written; the spool recovers and
quarantines damaged files.
"""

import re
import resource
import signal
import smtplib
import threading
import time

from conftest import make_message, split_delivered

USERS = ("alice", "bob", "carol")
TOKEN = re.compile(rb"Subject: durable (tok-\d+-\d+)")


def ids_in(reply):
    return re.findall(r"\[([A-Z0-9-]+)\]\s*$", reply.last)


def _sender(port, tid, nmsg, acked, lock, stop, deadline):
    """One client thread: nmsg messages over a few sessions; records
    (token, rcpts) for every 250 after the data."""
    i = 0
    while i < nmsg and not stop.is_set() and time.monotonic() < deadline:
        try:
            s = smtplib.SMTP("127.0.0.1", port, timeout=10)
        except OSError:
            return
        try:
            s.ehlo("client%d.example.org" % tid)
            for _ in range(5):
                if i >= nmsg or stop.is_set() or time.monotonic() >= deadline:
                    break
                token = "tok-%d-%d" % (tid, i)
                rcpts = [USERS[(tid + i) % 3]]
                if i % 4 == 0:
                    rcpts.append(USERS[(tid + i + 1) % 3])
                i += 1
                if s.mail("sender@example.org")[0] != 250:
                    return
                for r in rcpts:
                    if s.rcpt(r + "@example.test")[0] != 250:
                        return
                body = (b"token %s\r\n" % token.encode()) + b"x" * (200 * (i % 7)) + b"\r\n"
                code, _ = s.data(make_message(token, subject="durable", body=body))
                if code == 250:
                    with lock:
                        acked.append((token, tuple(rcpts)))
            s.quit()
        except (smtplib.SMTPException, OSError):
            return
        finally:
            try:
                s.close()
            except OSError:
                pass


def mailbox_tokens(srv, user):
    out = {}
    for f in srv.maildir(user):
        m = TOKEN.search(f.read_bytes())
        if m:
            t = m.group(1).decode()
            out[t] = out.get(t, 0) + 1
    return out


def test_sigkill_under_load_loses_nothing_acknowledged(make_server):
    srv = make_server(conf={"log": {"level": "info"}})
    acked, lock, stop = [], threading.Lock(), threading.Event()
    deadline = time.monotonic() + 60
    threads = [threading.Thread(target=_sender,
                                args=(srv.port, t, 25, acked, lock, stop, deadline),
                                daemon=True)
               for t in range(20)]
    for t in threads:
        t.start()
    # kill mid-way: after about a third of the messages, or after 20 s
    kill_by = time.monotonic() + 20
    while time.monotonic() < kill_by:
        with lock:
            if len(acked) >= 170:
                break
        time.sleep(0.02)
    srv.kill9()
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "client threads hung"
    with lock:
        got = list(acked)
    assert len(got) > 0, "no message was acknowledged before the kill"

    mark = srv.mark()
    srv.start()
    srv.wait_queue_empty(timeout=60)
    assert srv.spool_files("incoming") == []
    # every copy is linked into new/ before its spool file is removed, so
    # an empty queue means every delivery is there to count
    boxes = {u: mailbox_tokens(srv, u) for u in USERS}
    dups = {u: [t for t, n in b.items() if n > 1] for u, b in boxes.items()}
    assert not any(dups.values()), "delivered twice: %r" % dups
    missing = [(t, u) for t, rc in got for u in rc if t not in boxes[u]]
    assert not missing, "acknowledged but not delivered (%d of %d): %r" % (
        len(missing), len(got), missing[:20])
    # and nothing went to a mailbox it was not sent to
    sent_to = {}
    for t, rc in got:
        sent_to[t] = set(rc)
    for u, b in boxes.items():
        for t in b:
            if t in sent_to:
                assert u in sent_to[t], (t, u)
    srv.assert_serves()


def test_write_failure_gives_451_and_leaves_nothing(make_server):
    def limit_fsize():
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    srv = make_server(conf={"log": {"level": "info"}}, preexec=limit_fsize)
    mark = srv.mark()
    with srv.raw() as c:
        c.cmd("EHLO client.example.org")
        c.cmd("MAIL FROM:<sender@example.org>")
        c.cmd("RCPT TO:<alice@example.test>")
        assert c.cmd("DATA").code == 354
        body = b"".join(b"%06d %s\r\n" % (i, b"w" * 90) for i in range(2100))  # ~200 KiB
        c.send(make_message("huge", body=body) + b".\r\n")
        r = c.reply(timeout=20)
        assert r.code == 451 and r.text.startswith("4.3.0"), r
        assert ids_in(r) == ["QUEUE-WRITE-FAILED"], r
        # the session survives; a small message is accepted and delivered
        assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        assert c.cmd("DATA").code == 354
        small = make_message("small")
        c.send(small + b".\r\n")
        assert c.reply().code == 250
        c.cmd("QUIT")
    assert srv.alive(), "server died on the write failure:\n" + srv.log_text()[-2000:]
    ev = srv.wait_event("QUEUE-WRITE-FAILED", after=mark)[0]
    assert ev["sev"] == "error", ev
    msg = srv.wait_event("SESSION-MESSAGE", after=mark, verdict="tempfail")[0]
    assert msg["cause"] == "QUEUE-WRITE-FAILED", msg
    files = srv.wait_mail("alice")
    assert len(files) == 1
    assert split_delivered(files[0].read_bytes())[3] == small
    srv.wait_queue_empty()
    assert srv.spool_files("incoming") == []
    assert srv.spool_files("queue") == []
    srv.assert_serves()


def test_spool_create_failure_gives_451(make_server):
    srv = make_server()
    inc = srv.spool / "incoming"
    assert inc.is_dir()
    inc.rmdir()
    inc.write_text("not a folder\n")
    try:
        with srv.raw() as c:
            c.cmd("EHLO client.example.org")
            c.cmd("MAIL FROM:<sender@example.org>")
            c.cmd("RCPT TO:<alice@example.test>")
            r = c.cmd("DATA")
            if r.code == 354:
                c.send(make_message("nocreate") + b".\r\n")
                r = c.reply()
            assert r.code == 451 and r.text.startswith("4.3.0"), r
            assert ids_in(r)[0] in ("QUEUE-SPOOL-CREATE-FAILED", "QUEUE-WRITE-FAILED"), r
    finally:
        inc.unlink()
        inc.mkdir()
    srv.wait_event("QUEUE-SPOOL-CREATE-FAILED")
    assert srv.alive()
    # the server may hold the old folder open: restart it on the repaired one
    srv.restart()
    assert srv.send_mail()[0] == 250
    srv.wait_mail("alice")


def test_recovery_quarantines_corrupt_and_unreadable(make_server):
    srv = make_server(start=False)
    q = srv.spool / "queue"
    q.mkdir(parents=True)
    (q / "00000000000000Z1").write_bytes(b"garbage that is no spool file\n")
    (q / "00000000000000Z2").mkdir()
    (q / "00000000000000Z3").symlink_to(q / "no-such-target")
    srv.start()
    srv.wait_event("QUEUE-SPOOL-CORRUPT")
    srv.wait_event("QUEUE-SPOOL-READ-FAILED")
    assert "00000000000000Z1" in srv.spool_files("corrupt")
    assert srv.alive()
    srv.assert_serves()
    assert srv.send_mail()[0] == 250
    srv.wait_mail("alice")


def test_truncated_spool_file_is_never_delivered(make_server):
    """A committed message whose delivery is blocked stays in queue/;
    truncated (as a damaged disk would), it is moved to corrupt/ at the next
    start and no half message reaches the mailbox."""
    srv = make_server()
    box = srv.mail / "example.test"
    box.mkdir(parents=True)
    (box / "alice").write_text("blocks delivery\n")
    body = b"".join(b"line %04d zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz\r\n" % i for i in range(120))
    assert srv.send_mail(data=make_message("trunc", body=body))[0] == 250
    srv.wait_event("DELIVERY-DEFERRED")
    srv.stop()
    q = srv.spool_files("queue")
    assert len(q) == 1, q
    p = srv.spool / "queue" / q[0]
    data = p.read_bytes()
    p.write_bytes(data[:len(data) // 2])
    (box / "alice").unlink()
    mark = srv.mark()
    srv.start()
    srv.wait_event("QUEUE-SPOOL-CORRUPT", after=mark)
    assert q[0] in srv.spool_files("corrupt")
    # recovery handed nothing to delivery: the empty mailbox is final
    rec = srv.wait_event("QUEUE-RECOVERED", after=mark)[0]
    assert rec["count"] == "0", rec
    assert srv.maildir("alice") == []


def test_sigterm_keeps_queued_mail(make_server):
    """Stop while a message waits for delivery: it is still there after the
    restart (QUEUE-RECOVERED) and delivered then."""
    srv = make_server()
    box = srv.mail / "example.test"
    box.mkdir(parents=True)
    (box / "bob").write_text("blocks delivery\n")
    assert srv.send_mail(rcpts=["bob@example.test"])[0] == 250
    srv.wait_event("DELIVERY-LOCAL-WRITE-FAILED")
    assert srv.stop() == 0
    assert len(srv.spool_files("queue")) == 1
    (box / "bob").unlink()
    mark = srv.mark()
    srv.start()
    assert srv.wait_event("QUEUE-RECOVERED", after=mark)[0]["count"] == "1"
    srv.wait_mail("bob")
    srv.wait_queue_empty()
