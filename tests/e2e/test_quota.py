"""
test_quota.py - issue 3 points 3 and 6: per-account quotas (bytes and
messages), the free-space floor, and "delivery is never lost".

- 452 4.2.2 [RCPT-MAILBOX-FULL] at RCPT when the mailbox is already full;
  452 4.2.2 [RCPT-MESSAGE-OVER-QUOTA] at the end of data when this message
  would cross the quota; a message accepted and then found over quota at
  delivery is deferred (DELIVERY-LOCAL-QUOTA), never dropped.
- limits.min_free_space above the disk's free space: MAIL, RCPT and the end
  of data get 452 4.3.1 [QUEUE-DISK-FULL], local deliveries wait in the
  spool; lowering the floor with SIGHUP lets mail in again and the waiting
  delivery resumes by itself.
- SIGKILL in the middle of a burst of local deliveries, then restart: every
  acknowledged message is in each of its mailboxes exactly once (no reader
  moves or deletes a copy meanwhile: the guarantee is at least once,
  docs/design.md, Durability).

Messages that must wait in the spool before delivery are made the honest
way: they are accepted while their domain is not local (relay from a
trusted client; there is no outbound transport yet, so they stay queued),
then a reload makes the domain local.
"""

import re
import signal
import threading
import time

import pytest

from conftest import DOMAIN, make_message, split_delivered

BIG_FLOOR = "100000G"		# far above any test machine's free space


def ids_in(reply_text):
    return re.findall(r"\[([A-Z0-9-]+)\]\s*$", reply_text)


def reload(srv, conf):
    """Rewrites the configuration (and the accounts file) and HUPs."""
    mark = srv.mark()
    srv.conf = conf
    srv.write_config()
    srv.signal(signal.SIGHUP)
    srv.wait_event("CONFIG-RELOADED", after=mark)
    return mark


def put_mail(srv, user, name, size):
    d = srv.mail / DOMAIN / user
    for sub in ("tmp", "new", "cur"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    (d / "new" / name).write_bytes(b"x" * size)


def rcpt_until(c, rcpt, code, timeout=5.0):
    """RCPT until the reply has code (usage unknown at first sight is
    treated as fine while a scan runs); returns the last reply."""
    deadline = time.monotonic() + timeout
    while True:
        r = c.cmd("RCPT TO:<%s>" % rcpt)
        if r.code == code or time.monotonic() >= deadline:
            return r
        if r.code == 250:
            c.cmd("RSET")
            c.cmd("MAIL FROM:<sender@example.org>")
        time.sleep(0.1)


# ------------------------------------------------------------- quotas

def test_rcpt_refused_when_mailbox_already_full(make_server):
    srv = make_server(start=False, account_extra={"alice": "quota=2000"})
    put_mail(srv, "alice", "1700000000.Q0R0.elsewhere,S=2500", 2500)
    srv.start()
    mark = srv.mark()
    with srv.raw() as c:
        c.cmd("EHLO client.example.org")
        assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
        r = rcpt_until(c, "alice@example.test", 452)
        assert r.code == 452 and r.text.startswith("4.2.2"), r
        assert ids_in(r.last) == ["RCPT-MAILBOX-FULL"], r
        assert "Mailbox full" in r.text, r
        # other recipients are unaffected
        assert c.cmd("RCPT TO:<bob@example.test>").code == 250
        c.cmd("QUIT")
    ev = srv.wait_event("RCPT-MAILBOX-FULL", after=mark)[0]
    assert ev["kind"] == "bytes" and ev["used"] == "2500" and ev["quota"] == "2000", ev
    srv.assert_serves()


def test_end_of_data_refused_when_message_would_cross(make_server):
    srv = make_server(account_extra={"bob": "quota=5000"})
    mark = srv.mark()
    big = make_message("big", body=b"".join(b"%04d %s\r\n" % (i, b"b" * 90)
                                            for i in range(60)))	# ~5.7 KB
    with srv.raw() as c:
        c.cmd("EHLO client.example.org")
        assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
        assert c.cmd("RCPT TO:<bob@example.test>").code == 250
        # the first RCPT scheduled the scan: its result is what the end
        # of data checks
        srv.wait_event("QUOTA-SCANNED", after=mark, maildir=str(srv.mail / "example.test" / "bob"))
        assert c.cmd("DATA").code == 354
        c.send(big + b".\r\n")
        r = c.reply(timeout=20)
        assert r.code == 452 and r.text.startswith("4.2.2"), r
        assert ids_in(r.last) == ["RCPT-MESSAGE-OVER-QUOTA"], r
        # a small one fits, in the same session
        assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
        assert c.cmd("RCPT TO:<bob@example.test>").code == 250
        assert c.cmd("DATA").code == 354
        small = make_message("small")
        c.send(small + b".\r\n")
        assert c.reply().code == 250
        c.cmd("QUIT")
    ev = srv.wait_event("RCPT-MESSAGE-OVER-QUOTA", after=mark)[0]
    assert ev["kind"] == "bytes" and ev["quota"] == "5000", ev
    files = srv.wait_mail("bob")
    srv.wait_queue_empty()
    assert len(files) == 1
    assert split_delivered(files[0].read_bytes())[3] == small


def test_message_count_quota(make_server):
    srv = make_server(account_extra={"carol": "quota_messages=2"})
    for i in range(2):
        code, reply = srv.send_mail(rcpts=["carol@example.test"],
                                    data=make_message("count%d" % i))
        assert code == 250, reply
    srv.wait_mail("carol", count=2)
    srv.wait_queue_empty()
    mark = srv.mark()
    with srv.raw() as c:
        c.cmd("EHLO client.example.org")
        assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
        r = rcpt_until(c, "carol@example.test", 452)
        assert r.code == 452 and ids_in(r.last) == ["RCPT-MAILBOX-FULL"], r
        c.cmd("QUIT")
    # the refusal's line may be written just after the reply went out
    assert srv.wait_event("RCPT-MAILBOX-FULL", after=mark)[-1]["kind"] == "messages"
    assert len(srv.maildir("carol")) == 2


def test_over_quota_at_delivery_is_deferred_never_dropped(make_server):
    """A message acknowledged with 250 that finds the mailbox over quota
    when it is delivered waits in the spool (DELIVERY-LOCAL-QUOTA) and is
    delivered once the quota allows it; no 250 is ever followed by a drop."""
    conf_relay = {"local": {"domains": "other.test"}}
    srv = make_server(conf=conf_relay)
    msg = make_message("later", body=b"z" * 60 + b"\r\n" * 50)
    code, reply = srv.send_mail(rcpts=["alice@example.test"], data=msg)
    assert code == 250, reply
    srv.wait_event("DELIVERY-DEFERRED")
    assert len(srv.spool_files("queue")) == 1

    srv.account_extra = {"alice": "quota=100"}
    mark = reload(srv, {})
    ev = srv.wait_event("DELIVERY-LOCAL-QUOTA", after=mark)[0]
    assert ev["kind"] == "bytes" and ev["quota"] == "100", ev
    srv.wait_event("DELIVERY-DEFERRED", after=mark, cause="DELIVERY-LOCAL-QUOTA")
    # a second attempt refused too: still waiting, still queued
    srv.wait_event("DELIVERY-LOCAL-QUOTA", after=mark, count=2, timeout=20)
    assert srv.maildir("alice") == []
    assert len(srv.spool_files("queue")) == 1

    srv.account_extra = {"alice": "quota=1M"}
    reload(srv, {})
    files = srv.wait_mail("alice")
    srv.wait_queue_empty()	# the copy is in new/ before the spool file goes
    assert len(srv.maildir("alice")) == 1
    assert split_delivered(files[0].read_bytes())[3] == msg


# ------------------------------------------------------------- free space

def test_free_space_floor_defers_delivery_until_space_returns(make_server):
    # 1. A message waits in the spool (its domain is not local yet).
    srv = make_server(conf={"local": {"domains": "other.test"}})
    waiting = make_message("waiting")
    code, reply = srv.send_mail(rcpts=["bob@example.test"], data=waiting)
    assert code == 250, reply
    srv.wait_event("DELIVERY-DEFERRED")

    # 2. The domain becomes local, but the floor is above the free space:
    # the delivery is deferred for QUEUE-DISK-FULL and stays queued.
    mark = reload(srv, {"limits": {"min_free_space": BIG_FLOOR}})
    ev = srv.wait_event("QUEUE-DISK-FULL", after=mark)[0]
    assert ev["sev"] == "crit" and int(ev["floor"]) > int(ev["free_bytes"]), ev
    assert ev["fs"] == str(srv.mail), ev
    srv.wait_event("DELIVERY-DEFERRED", after=mark, cause="QUEUE-DISK-FULL")
    assert srv.maildir("bob") == []
    assert len(srv.spool_files("queue")) == 1

    # 3. The floor comes down: the waiting delivery resumes by itself.
    reload(srv, {"limits": {"min_free_space": "1M"}})
    files = srv.wait_mail("bob", timeout=20)
    assert split_delivered(files[0].read_bytes())[3] == waiting
    srv.wait_queue_empty()
    assert len(srv.maildir("bob")) == 1


def test_free_space_floor_refuses_mail_then_accepts_after_reload(make_server):
    srv = make_server(conf={"limits": {"min_free_space": BIG_FLOOR}})
    mark = srv.mark()
    with srv.raw() as c:
        c.cmd("EHLO client.example.org")
        r = c.cmd("MAIL FROM:<sender@example.org> SIZE=1000")
        assert r.code == 452 and r.text.startswith("4.3.1"), r
        assert ids_in(r.last) == ["QUEUE-DISK-FULL"], r
        r = c.cmd("MAIL FROM:<sender@example.org>")
        if r.code == 250:
            r = c.cmd("RCPT TO:<alice@example.test>")
        if r.code == 250:
            assert c.cmd("DATA").code == 354
            c.send(make_message("nofloor") + b".\r\n")
            r = c.reply()
        assert r.code == 452 and ids_in(r.last) == ["QUEUE-DISK-FULL"], r
        c.cmd("QUIT")
    ev = srv.wait_event("QUEUE-DISK-FULL", after=mark)[0]
    assert int(ev["floor"]) > int(ev["free_bytes"]), ev
    assert srv.maildir("alice") == []
    assert srv.spool_files("queue") == []

    reload(srv, {"limits": {"min_free_space": "1M"}})
    code, reply = srv.send_mail(rcpts=["alice@example.test"])
    assert code == 250, reply
    srv.wait_mail("alice")
    srv.wait_queue_empty()


# ------------------------------------------------------------- never lost

USERS = ("alice", "bob", "carol", "postmaster")
TOKEN = re.compile(rb"Subject: burst (b-\d+-\d+)")


def _burst_sender(port, tid, nmsg, acked, lock):
    import smtplib
    s = smtplib.SMTP("127.0.0.1", port, timeout=20)
    try:
        s.ehlo("client%d.example.org" % tid)
        for i in range(nmsg):
            token = "b-%d-%d" % (tid, i)
            rcpts = [USERS[(tid + i) % 4]]
            if i % 3 == 0:
                rcpts.append(USERS[(tid + i + 1) % 4])
            if i % 5 == 0:
                rcpts.append(USERS[(tid + i + 2) % 4])
            assert s.mail("sender@example.org")[0] == 250
            for r in rcpts:
                assert s.rcpt(r + "@example.test")[0] == 250
            body = b"token %s\r\n" % token.encode() + b"q" * 70 + b"\r\n" * (5 * (i % 5))
            code, _ = s.data(make_message(token, subject="burst", body=body))
            if code == 250:
                with lock:
                    acked.append((token, tuple(rcpts)))
        s.quit()
    finally:
        s.close()


def tokens_in(srv, user):
    out = {}
    for f in srv.maildir(user):
        try:
            m = TOKEN.search(f.read_bytes())
        except FileNotFoundError:
            continue
        if m:
            t = m.group(1).decode()
            out[t] = out.get(t, 0) + 1
    return out


def test_sigkill_during_local_delivery_exactly_once(make_server):
    """Promise checked: no duplicate after a crash when no reader moved or
    deleted a copy (docs/design.md, Durability). 20 clients x 20 messages (1 to 3 recipients each) are
    acknowledged while the domain is not local, so all wait in the spool;
    a reload makes the domain local and the delivery threads start on the
    backlog; SIGKILL arrives while they are writing into the Maildirs. After
    a restart on the same folders and a drained spool, every acknowledged
    message is in each of its recipients' mailboxes exactly once, and in no
    other mailbox."""
    srv = make_server(conf={"local": {"domains": "other.test"},
                            "log": {"level": "info"}})
    acked, lock = [], threading.Lock()
    threads = [threading.Thread(target=_burst_sender,
                                args=(srv.port, t, 20, acked, lock), daemon=True)
               for t in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "client threads hung"
    assert len(acked) == 400, len(acked)
    copies = sum(len(r) for _, r in acked)
    assert len(srv.spool_files("queue")) == 400

    # Deliveries start on the reload; kill when about a third is written.
    srv.conf = {"log": {"level": "info"}}
    srv.write_config()
    srv.signal(signal.SIGHUP)
    deadline = time.monotonic() + 60
    written = 0
    while time.monotonic() < deadline:
        written = sum(len(srv.maildir(u)) for u in USERS)
        if written >= copies // 3:
            break
        time.sleep(0.005)
    srv.kill9()
    left = len(srv.spool_files("queue"))
    print("killed with %d of %d copies written, %d spool entries left"
          % (written, copies, left))
    assert 0 < written < copies, "the kill did not land mid-delivery"
    assert left > 0

    mark = srv.mark()
    srv.start()
    assert int(srv.wait_event("QUEUE-RECOVERED", after=mark)[0]["count"]) == left
    srv.wait_queue_empty(timeout=120)	# every copy is in new/ before its spool file goes
    boxes = {u: tokens_in(srv, u) for u in USERS}
    dups = {u: sorted(t for t, n in b.items() if n > 1) for u, b in boxes.items()}
    assert not any(dups.values()), "delivered twice: %r" % dups
    missing = [(t, u) for t, rc in acked for u in rc if t not in boxes[u]]
    assert not missing, "acknowledged, not delivered: %r" % missing[:20]
    sent_to = {t: set(rc) for t, rc in acked}
    stray = [(t, u) for u, b in boxes.items() for t in b if u not in sent_to[t]]
    assert not stray, stray
    assert sum(sum(b.values()) for b in boxes.values()) == copies
    # the repeats after the restart found their earlier copies
    assert not srv.events("DELIVERY-LOCAL-WRITE-FAILED", after=mark)
    srv.assert_serves()


def test_write_failure_stays_queued_and_is_retried(make_server):
    """A temporary failure (the Maildir is not writable: here a file where
    the folder should be) keeps the message in the spool and retries it
    with back-off; when the cause is gone it is delivered exactly once."""
    srv = make_server()
    box = srv.mail / DOMAIN
    box.mkdir(parents=True, exist_ok=True)
    (box / "bob").write_text("in the way\n")
    msg = make_message("retry")
    code, _ = srv.send_mail(rcpts=["bob@example.test"], data=msg)
    assert code == 250
    srv.wait_event("DELIVERY-DEFERRED", cause="DELIVERY-LOCAL-WRITE-FAILED",
                   count=2, timeout=10)
    assert len(srv.spool_files("queue")) == 1
    (box / "bob").unlink()
    files = srv.wait_mail("bob", timeout=20)
    srv.wait_queue_empty()
    assert len(files) == 1
    assert split_delivered(files[0].read_bytes())[3] == msg
