"""
test_dupmsg.py - duplicate Message-ID suppression (issue 9 point 9, as
smtpf's dupmsg-ttl): check "duplicates" at end of data, keyed on the
Message-ID, the sender and each final destination, over the state store.
A destination that already received the message within duplicates.ttl is
dropped silently (250 to the client, POLICY-DUPLICATE in the log); the
others get it; a message whose destinations are all duplicates is stored
nowhere. The key is recorded only once the message is durable
(POLICY-DUPLICATE-RECORDED), so a commit that failed leaves the retry
alone. Off by default (duplicates.ttl = 0).

Clients bind 127.0.0.2 (127.0.0.1 is trusted by default, and trusted
clients are not checked). The state-store tests run on both back ends
(redisfix.py's state_backend: SQLite, then a redis-server of their own).
"""
import base64
import re
import time

from conftest import DOMAIN, make_message, run_cli, split_delivered
from redisfix import state_backend  # noqa: F401 (fixture: sqlite and redis)
from test_commit_path import arm_shim, shim  # noqa: F401 (shim: the LD_PRELOAD fixture)

ALICE = "alice@" + DOMAIN
BOB = "bob@" + DOMAIN
CAROL = "carol@" + DOMAIN
SENDER = "sender@example.org"
CLIENT = "127.0.0.2"


def dup_server(make_server, state_backend, ttl="1h", conf=None, **kw):  # noqa: F811
    c = {sec: dict(kv) for sec, kv in state_backend.items()}
    if ttl is not None:
        c.setdefault("duplicates", {})["ttl"] = ttl
    for sec, kv in (conf or {}).items():
        c.setdefault(sec, {}).update(kv)
    return make_server(conf=c, **kw)


def send(srv, data, rcpts, frm=SENDER, source=CLIENT):
    """One message; asserts 250 and returns its queue ID."""
    code, text = srv.send_mail(frm=frm, rcpts=rcpts, data=data, source=source)
    assert code == 250, (code, text)
    m = re.search(rb"queued as ([0-9A-Z]+)", text)
    assert m, text
    return m.group(1).decode()


def recorded(srv, mark, msgid, nrcpt):
    """Waits until the message's keys are in the store."""
    return srv.wait_event("POLICY-DUPLICATE-RECORDED", after=mark, msgid=msgid,
                          nrcpt=str(nrcpt))[0]


def stored(srv, user):
    """The bytes of each message in user's Maildir, as sent (our Received
    field and the delivery lines taken off)."""
    return [split_delivered(p.read_bytes())[3] for p in srv.maildir(user)]


def message_done(srv, mark, qid):
    """Waits for SESSION-MESSAGE of the transaction that got qid."""
    return srv.wait_event("SESSION-MESSAGE", after=mark, reply="250 2.0.0 Ok: queued as " + qid)


def first_copy(srv, tag, users):
    """A new message sent to users (of DOMAIN), stored and recorded;
    returns its Message-ID, its bytes and the POLICY-DUPLICATE-RECORDED."""
    msgid = "<dup-%s.%d@client.example.org>" % (tag, time.monotonic_ns())
    data = make_message(tag, msgid=msgid)
    mark = srv.mark()
    send(srv, data, tuple("%s@%s" % (u, DOMAIN) for u in users))
    ev = recorded(srv, mark, msgid, len(users))
    for u in users:
        srv.wait_mail(u)
    return msgid, data, ev


def delivered_twice(srv, data):
    """Sends data to alice twice: both stored, neither dropped nor
    recorded; returns the two SESSION-MESSAGE events."""
    mark = srv.mark()
    qids = [send(srv, data, (ALICE,)) for _ in range(2)]
    srv.wait_mail("alice", count=2)
    assert stored(srv, "alice") == [data, data]
    summs = [message_done(srv, mark, q)[0] for q in qids]
    for summ in summs:
        assert summ["verdict"] == "accepted", summ
    assert srv.events("POLICY-DUPLICATE", after=mark) == []
    assert srv.events("POLICY-DUPLICATE-RECORDED", after=mark) == []
    return summs


def test_only_recipients_that_had_it_are_dropped(make_server, state_backend):  # noqa: F811
    srv = dup_server(make_server, state_backend)
    msgid, data, ev = first_copy(srv, "dup", ("alice", "bob"))
    assert ev["client"] == CLIENT and ev["ttl_s"] == "3600", ev
    # the same message again to B and C: only C gets it, the client sees 250
    mark = srv.mark()
    qid = send(srv, data, (BOB, CAROL))
    ev = srv.wait_event("POLICY-DUPLICATE", after=mark)[0]
    assert ev["to"] == "<%s>" % BOB and ev["from"] == "<%s>" % SENDER, ev
    assert ev["msgid"] == msgid and ev["client"] == CLIENT and ev["ttl_s"] == "3600", ev
    srv.wait_mail("carol")
    srv.wait_queue_empty()
    assert stored(srv, "carol") == [data]
    assert stored(srv, "bob") == [data]
    assert stored(srv, "alice") == [data]
    dels = srv.events("DELIVERY-SUCCESS", after=mark, qid=qid)
    assert [d["rcpt"] for d in dels] == ["<%s>" % CAROL], dels
    assert len(srv.events("POLICY-DUPLICATE", after=mark)) == 1
    summ = message_done(srv, mark, qid)[0]
    assert summ["verdict"] == "accepted", summ
    assert "eod:duplicates=continue" in summ["checks"], summ
    # and C's copy is remembered now, B's still
    recorded(srv, mark, msgid, 1)


def test_split_transactions_lose_nothing(make_server, state_backend):  # noqa: F811
    srv = dup_server(make_server, state_backend)
    msgid = "<dup-split.%d@client.example.org>" % time.monotonic_ns()
    data = make_message("split", msgid=msgid)
    mark = srv.mark()
    # one session, one message split over two transactions (A, then B, C)
    with srv.raw(source=CLIENT) as c:
        assert c.cmd("EHLO client.example.org").code == 250
        for rcpts in ((ALICE,), (BOB, CAROL)):
            assert c.cmd("MAIL FROM:<%s>" % SENDER).code == 250
            for r in rcpts:
                assert c.cmd("RCPT TO:<%s>" % r).code == 250
            assert c.cmd("DATA").code == 354
            c.send(data + b".\r\n")
            r = c.reply()
            assert r.code == 250, r
            recorded(srv, mark, msgid, len(rcpts))
        c.cmd("QUIT")
    for u in ("alice", "bob", "carol"):
        srv.wait_mail(u)
        assert stored(srv, u) == [data], u
    assert srv.events("POLICY-DUPLICATE", after=mark) == []


def test_without_message_id_never_dropped(make_server, state_backend):  # noqa: F811
    srv = dup_server(make_server, state_backend)
    data = (b"From: Sender <sender@example.org>\r\nTo: alice@example.test\r\n"
            b"Subject: no id\r\nDate: Sat, 23 Nov 2024 12:00:00 +0000\r\n\r\nHello\r\n")
    for summ in delivered_twice(srv, data):
        assert "msgid" not in summ, summ


def test_all_duplicates_answered_250_and_stored_nowhere(make_server, state_backend):  # noqa: F811
    srv = dup_server(make_server, state_backend)
    msgid, data, _ = first_copy(srv, "all", ("alice", "bob"))
    srv.wait_queue_empty()
    mark = srv.mark()
    qid = send(srv, data, (BOB, ALICE))
    evs = srv.wait_event("POLICY-DUPLICATE", after=mark, count=2)
    assert sorted(e["to"] for e in evs) == ["<%s>" % ALICE, "<%s>" % BOB], evs
    summ = message_done(srv, mark, qid)[0]
    # the 250 went out once the message was dropped: nothing can follow
    assert summ["verdict"] == "discarded", summ
    assert "eod:duplicates=discard" in summ["checks"], summ
    assert srv.spool_files("queue") == []
    # the same through BDAT (one chunk, LAST)
    with srv.raw(source=CLIENT) as c:
        assert c.cmd("EHLO client.example.org").code == 250
        assert c.cmd("MAIL FROM:<%s>" % SENDER).code == 250
        assert c.cmd("RCPT TO:<%s>" % ALICE).code == 250
        c.send(b"BDAT %d LAST\r\n" % len(data) + data)
        r = c.reply()
        assert r.code == 250 and r.text.startswith("2.0.0 Ok: queued as "), r
        c.cmd("QUIT")
    srv.wait_event("POLICY-DUPLICATE", after=mark, count=3)
    summ = srv.wait_event("SESSION-MESSAGE", after=mark, count=2)[1]
    assert summ["verdict"] == "discarded", summ
    assert stored(srv, "alice") == [data] and stored(srv, "bob") == [data]
    assert srv.events("DELIVERY-SUCCESS", after=mark) == []


def test_ttl_expiry(make_server, state_backend):  # noqa: F811
    ttl = 3
    srv = dup_server(make_server, state_backend, ttl="%ds" % ttl)
    t0 = time.monotonic()
    msgid, data, _ = first_copy(srv, "ttl", ("alice",))
    # within the TTL: dropped
    mark = srv.mark()
    send(srv, data, (ALICE,))
    srv.wait_event("POLICY-DUPLICATE", after=mark, to="<%s>" % ALICE)
    assert time.monotonic() - t0 < ttl, "too slow to test within the TTL"
    # after it (bounded retries, each answered with a duplicate or stored)
    deadline = time.monotonic() + ttl + 15
    while True:
        mark = srv.mark()
        qid = send(srv, data, (ALICE,))
        summ = message_done(srv, mark, qid)[0]
        if summ["verdict"] == "accepted":
            break
        assert summ["verdict"] == "discarded", summ
        assert time.monotonic() < deadline, "the key did not expire"
        time.sleep(0.3)
    assert time.monotonic() - t0 >= ttl - 1
    srv.wait_mail("alice", count=2)
    assert stored(srv, "alice") == [data, data]


def test_off_by_default(make_server, state_backend):  # noqa: F811
    srv = dup_server(make_server, state_backend, ttl=None)
    data = make_message("off")
    for summ in delivered_twice(srv, data):
        # in the default chain, saying nothing
        assert "eod:duplicates=continue" in summ["checks"], summ


def test_trusted_not_checked_authenticated_checked(make_server, state_backend):  # noqa: F811
    srv = dup_server(make_server, state_backend,
                     conf={"auth": {"plaintext_on_loopback": "yes", "fail_delay": "0"}})
    msgid = "<dup-who.%d@client.example.org>" % time.monotonic_ns()
    data = make_message("who", msgid=msgid)
    mark = srv.mark()
    # 127.0.0.1 is in server.trusted_networks: never checked nor recorded
    send(srv, data, (ALICE,), source="127.0.0.1")
    send(srv, data, (ALICE,), source="127.0.0.1")
    srv.wait_mail("alice", count=2)
    assert srv.events("POLICY-DUPLICATE-RECORDED", after=mark) == []
    # an authenticated client is: its second copy is dropped

    def auth_send():
        with srv.raw(source=CLIENT) as c:
            assert c.cmd("EHLO client.example.org").code == 250
            pw = base64.b64encode(("\0%s\0alice-pw" % ALICE).encode()).decode()
            assert c.cmd("AUTH PLAIN " + pw).code == 235
            assert c.cmd("MAIL FROM:<%s>" % ALICE).code == 250
            assert c.cmd("RCPT TO:<%s>" % BOB).code == 250
            assert c.cmd("DATA").code == 354
            c.send(data + b".\r\n")
            r = c.reply()
            assert r.code == 250, r
            c.cmd("QUIT")
    auth_send()
    recorded(srv, mark, msgid, 1)
    mark = srv.mark()
    auth_send()
    ev = srv.wait_event("POLICY-DUPLICATE", after=mark)[0]
    assert ev["to"] == "<%s>" % BOB and ev["from"] == "<%s>" % ALICE, ev
    srv.wait_mail("bob")
    assert stored(srv, "bob") == [data]


def test_failed_commit_records_nothing(make_server, state_backend, shim, tmp_path,  # noqa: F811
                                       monkeypatch):
    """A commit that fails with 4xx records no key: the client's retry of
    the same message is stored, not dropped as a duplicate."""
    flag = tmp_path / "fail-now"
    arm_shim(monkeypatch, shim, "syncfs", flag)
    srv = dup_server(make_server, state_backend)
    msgid = "<dup-fail.%d@client.example.org>" % time.monotonic_ns()
    data = make_message("fail", msgid=msgid)
    mark = srv.mark()
    flag.write_text("1")
    with srv.raw(source=CLIENT) as c:
        assert c.cmd("EHLO client.example.org").code == 250
        assert c.cmd("MAIL FROM:<%s>" % SENDER).code == 250
        assert c.cmd("RCPT TO:<%s>" % ALICE).code == 250
        assert c.cmd("DATA").code == 354
        c.send(data + b".\r\n")
        r = c.reply(timeout=20)
        assert 400 <= r.code < 500 and r.text.startswith("4.3."), r
        c.cmd("QUIT")
    summ = srv.wait_event("SESSION-MESSAGE", after=mark, verdict="tempfail")[0]
    assert "eod:duplicates=continue" in summ["checks"], summ
    flag.unlink()
    # the retry: stored, and recorded now
    send(srv, data, (ALICE,))
    recorded(srv, mark, msgid, 1)
    srv.wait_mail("alice")
    assert stored(srv, "alice") == [data]
    assert srv.events("POLICY-DUPLICATE", after=mark) == []
    assert srv.events("POLICY-DUPLICATE-RECORDED", after=mark, msgid=msgid) != []


def test_bad_on_state_error_is_a_configuration_error(tmp_path):
    conf = tmp_path / "p.conf"
    conf.write_text("[duplicates]\nttl = 24h\non_state_error = maybe\n")
    r = run_cli("check", "-c", str(conf))
    out = r.stderr + r.stdout
    assert r.returncode != 0, out
    assert "duplicates.on_state_error" in out, out
    conf.write_text("[duplicates]\nttl = 24h\non_state_error = closed\n")
    r = run_cli("check", "-c", str(conf))
    assert "duplicates" not in r.stderr + r.stdout, r
