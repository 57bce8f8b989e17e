"""
test_queue_cmd.py - issue 8 point 9: `postern queue` list, show, flush,
hold, release, delete (bounce waits for the DSN writer), their --json
schema "postern-queue/1" (docs/queue.md), the control socket of a running
daemon (owner-only), and the queue lock that makes a `serve` starting
during an offline edit wait.

Messages wait in the queue the honest way: they are accepted while their
domain is not local and routed to a port where nothing listens, so each
attempt is deferred (DELIVERY-DEFERRED) and waits for the retry schedule;
a restart with the domain local delivers them.
"""

import fcntl
import json
import os
import stat
import time

import pytest

import email

from conftest import free_port, make_message, split_delivered
from queuecmd import SCHEMA, control, queue

DEAD_PORT = free_port()
RELAY = {"local": {"domains": "other.test"},
         "route.dead": {"domains": "example.test, elsewhere.test",
                        "via": "[127.0.0.1]:%d" % DEAD_PORT}}


def queued(srv, n=1, rcpts=("alice@example.test",), token="q"):
    """n messages accepted for a non-local domain: waiting in queue/."""
    msgs = []
    for i in range(n):
        m = make_message("%s%d" % (token, i))
        code, reply = srv.send_mail(rcpts=rcpts, data=m)
        assert code == 250, reply
        msgs.append(m)
    srv.wait_event("DELIVERY-DEFERRED", count=n)
    assert len(srv.spool_files("queue")) == n
    return msgs


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check_message(m, show=False):
    """The keys and types of one message of the schema."""
    keys = {"qid", "received", "age", "size", "sender", "held", "recipients"}
    if show:
        keys |= {"envelope", "headers", "headers_truncated", "history",
                 "history_dropped"}
    assert set(m) == keys, sorted(m)
    assert isinstance(m["qid"], str) and len(m["qid"]) == 16
    assert is_int(m["received"]) and is_int(m["age"]) and m["age"] >= 0
    assert is_int(m["size"]) and m["size"] > 0
    assert isinstance(m["sender"], str) and isinstance(m["held"], bool)
    assert isinstance(m["recipients"], list) and m["recipients"]
    for r in m["recipients"]:
        rk = {"address", "state", "attempts", "last_reply", "next_attempt"}
        if show:
            rk |= {"orcpt", "notify"}
        assert set(r) == rk, sorted(r)
        assert isinstance(r["address"], str)
        assert r["state"] in ("waiting", "done", "failed", "held")
        assert is_int(r["attempts"])
        assert r["last_reply"] is None or isinstance(r["last_reply"], str)
        assert r["next_attempt"] is None or is_int(r["next_attempt"])
        if show:
            assert r["orcpt"] is None or isinstance(r["orcpt"], str)
            assert isinstance(r["notify"], list)
    if show:
        env = m["envelope"]
        assert set(env) == {"ret", "envid", "body_8bit", "smtputf8", "client", "helo"}
        assert isinstance(env["body_8bit"], bool) and isinstance(env["smtputf8"], bool)
        assert isinstance(env["client"], str) and isinstance(env["helo"], str)
        assert isinstance(m["headers"], str) and isinstance(m["headers_truncated"], bool)
        assert is_int(m["history_dropped"])
        for h in m["history"]:
            assert set(h) == {"kind", "rcpt", "detail"}
            assert isinstance(h["kind"], str) and is_int(h["rcpt"])
            assert isinstance(h["detail"], str)


def check_result(res, command, ok, via):
    assert set(res) == {"schema", "command", "ok", "via", "target", "count",
                        "error", "message"}, sorted(res)
    assert res["schema"] == SCHEMA
    assert res["command"] == command
    assert res["ok"] is ok, res
    assert res["via"] == via, res
    assert is_int(res["count"])
    assert isinstance(res["message"], str)
    assert (res["error"] is None) == ok


def test_list_and_show_json_schema_on_a_live_and_a_stopped_server(make_server):
    srv = make_server(conf=RELAY)
    msgs = queued(srv, 2, rcpts=("alice@example.test", "bob@example.test"))

    for live in (True, False):
        if not live:
            srv.stop()
        rc, out, _ = queue(srv, "list", check=0)
        assert out["schema"] == SCHEMA and out["command"] == "list"
        assert set(out) == {"schema", "command", "now", "messages", "unreadable"}
        assert out["unreadable"] == []
        assert len(out["messages"]) == 2
        for m in out["messages"]:
            check_message(m)
            assert m["sender"] == "sender@example.org"
            assert [r["address"] for r in m["recipients"]] == \
                ["alice@example.test", "bob@example.test"]
            for r in m["recipients"]:
                assert r["state"] == "waiting"
                assert r["attempts"] >= 1
                # the detail of the last deferral: STATUS COND MTA DIAG
                assert r["last_reply"].split(" ")[0].startswith("4."), r
                assert " DELIVERY-" in r["last_reply"], r
                assert r["next_attempt"] > m["received"]
        assert [m["qid"] for m in out["messages"]] == srv.spool_files("queue")

        qid = out["messages"][0]["qid"]
        rc, show, _ = queue(srv, "show", qid, check=0)
        assert show["schema"] == SCHEMA and show["command"] == "show"
        m = show["message"]
        check_message(m, show=True)
        assert m["qid"] == qid
        assert m["envelope"]["client"] == "127.0.0.1"
        assert m["envelope"]["helo"] == "client.example.org"
        # the header section, without the body; our Received field first
        assert m["headers"].startswith("Received: ")
        head, body = msgs[0].split(b"\r\n\r\n", 1)
        assert m["headers"].endswith(head.decode() + "\r\n"), m["headers"]
        assert body.decode() not in m["headers"]
        assert m["headers_truncated"] is False
        kinds = [h["kind"] for h in m["history"]]
        assert "deferred" in kinds
        first = m["history"][0]["detail"].split(" ")
        assert int(first[0]) >= 1 and int(first[1]) > m["received"], first
        assert first[2].startswith("4."), first

    # the human forms say the same
    rc, text, _ = queue(srv, "list", json_out=False, check=0)
    assert qid in text and "alice@example.test" in text and "waiting" in text
    rc, text, _ = queue(srv, "show", qid, json_out=False, check=0)
    assert "history:" in text and "Received: " in text

    # an unknown queue ID
    rc, _, err = queue(srv, "show", "0000000000000000", json_out=False, check=1)
    assert "[QUEUE-NOT-FOUND]" in err


def test_offline_hold_keeps_a_message_from_delivery_until_release(make_server):
    srv = make_server(conf=RELAY)
    msgs = queued(srv, 2, token="hold")
    qids = srv.spool_files("queue")
    srv.stop()

    rc, res, _ = queue(srv, "hold", qids[0], check=0)
    check_result(res, "hold", True, "offline")
    assert res["target"] == qids[0] and res["count"] == 1
    srv.wait_event("QUEUE-HELD", by="offline", qid=qids[0])
    rc, out, _ = queue(srv, "list", check=0)
    held = {m["qid"]: m for m in out["messages"]}
    assert held[qids[0]]["held"] is True
    assert held[qids[0]]["recipients"][0]["state"] == "held"
    assert held[qids[1]]["held"] is False

    # the domain is local now: the other message is delivered, the held
    # one is left in queue/ at start
    srv.conf = {}
    srv.write_config()
    mark = srv.mark()
    srv.start()
    srv.wait_event("QUEUE-HELD-SKIPPED", after=mark, qid=qids[0])
    files = srv.wait_mail("alice", count=1)
    ev = srv.wait_event("QUEUE-RECOVERED", after=mark)[0]
    assert ev["count"] == "1", ev
    assert split_delivered(files[0].read_bytes())[3] == msgs[1]
    deadline = time.monotonic() + 10
    while srv.spool_files("queue") != [qids[0]] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.spool_files("queue") == [qids[0]]

    srv.stop()
    rc, res, _ = queue(srv, "release", qids[0], check=0)
    check_result(res, "release", True, "offline")
    srv.wait_event("QUEUE-RELEASED", by="offline", qid=qids[0])
    mark = srv.mark()
    srv.start()
    files = srv.wait_mail("alice", count=2)
    srv.wait_queue_empty()
    got = sorted(split_delivered(f.read_bytes())[3] for f in files)
    assert got == sorted(msgs)
    rc, out, _ = queue(srv, "list", check=0)
    assert out["messages"] == []


def test_offline_delete_and_flush(make_server):
    srv = make_server(conf=RELAY)
    queued(srv, 2, rcpts=("alice@example.test", "carol@elsewhere.test"), token="del")
    qids = srv.spool_files("queue")
    srv.stop()

    rc, res, _ = queue(srv, "delete", qids[0], check=0)
    check_result(res, "delete", True, "offline")
    ev = srv.wait_event("QUEUE-DELETED", qid=qids[0])[0]
    assert ev["by"] == "offline" and ev["rcpts_left"] == "2", ev
    assert srv.spool_files("queue") == [qids[1]]
    rc, res, _ = queue(srv, "delete", qids[0], check=1)
    check_result(res, "delete", False, "offline")
    assert res["error"] == "QUEUE-NOT-FOUND"

    # flush --domain: the next attempt of the waiting recipients is cleared
    rc, res, _ = queue(srv, "flush", "--domain", "nowhere.test", check=0)
    assert res["count"] == 0
    rc, res, _ = queue(srv, "flush", "--domain", "EXAMPLE.test", check=0)
    check_result(res, "flush", True, "offline")
    assert res["count"] == 1
    ev = srv.wait_event("QUEUE-FLUSHED", scope="EXAMPLE.test")[0]
    assert ev["by"] == "offline" and ev["count"] == "1", ev
    rc, out, _ = queue(srv, "list", check=0)
    assert [r["next_attempt"] for r in out["messages"][0]["recipients"]] == [None, None]
    rc, res, _ = queue(srv, "flush", qids[1], check=0)
    assert res["count"] == 1 and res["target"] == qids[1]

    # bounce: every open recipient failed with the operator's reason; the
    # DSN goes at the next start
    rc, res, _ = queue(srv, "bounce", qids[1], check=0)
    check_result(res, "bounce", True, "offline")
    ev = srv.wait_event("QUEUE-BOUNCED-BY-ADMIN", qid=qids[1])[0]
    assert ev["by"] == "offline" and ev["rcpts"] == "2", ev
    rc, out, _ = queue(srv, "list", check=0)
    for r in out["messages"][0]["recipients"]:
        assert r["state"] == "failed"
        assert r["last_reply"].startswith("5.0.0 QUEUE-BOUNCED-BY-ADMIN "), r

    rc, res, _ = queue(srv, "status", check=0)
    check_result(res, "status", True, "offline")
    assert res["count"] == 1

    # at the start the failed message is bounced (to a sender elsewhere:
    # the DSN is queued like any message) and leaves the queue
    mark = srv.mark()
    srv.start()
    ev = srv.wait_event("DELIVERY-BOUNCE-SENT", after=mark, qid=qids[1], timeout=20)[0]
    assert ev["action"] == "failed", ev
    deadline = time.monotonic() + 20
    while qids[1] in srv.spool_files("queue") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert qids[1] not in srv.spool_files("queue")


def test_control_socket_status_owner_only_and_bad_requests(make_server):
    srv = make_server(conf=RELAY)
    queued(srv, 1)
    sock = srv.dir / "state" / "control"
    st = os.lstat(sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.geteuid()

    rc, res, _ = queue(srv, "status", check=0)
    assert res["schema"] == SCHEMA and res["via"] == "control" and res["ok"] is True
    assert res["pid"] == srv.pid and res["pending"] == 1
    assert isinstance(res["destinations"], str)

    ans = json.loads(control(srv, b"frobnicate\n"))
    assert ans["ok"] is False and ans["error"] == "QUEUE-CONTROL-BAD-REQUEST"
    srv.wait_event("QUEUE-CONTROL-BAD-REQUEST", reason="unknown command")
    ans = json.loads(control(srv, b"x" * 2000 + b"\n"))
    assert ans["error"] == "QUEUE-CONTROL-BAD-REQUEST"
    srv.wait_event("QUEUE-CONTROL-BAD-REQUEST", reason="line too long")
    ans = json.loads(control(srv, b"hold ../../etc\n"))
    assert ans["error"] == "QUEUE-CONTROL-BAD-REQUEST"
    srv.assert_serves()

    # stopped: the socket is gone; a state folder open to others gets none
    srv.stop()
    assert not sock.exists()
    os.chmod(srv.dir / "state", 0o755)
    mark = srv.mark()
    srv.start()
    ev = srv.wait_event("QUEUE-CONTROL-FAILED", after=mark)[0]
    assert ev["op"] == "check", ev
    assert not sock.exists()
    srv.assert_serves()
    os.chmod(srv.dir / "state", 0o700)


def test_serve_waits_for_the_queue_lock_of_an_edit(make_server):
    srv = make_server(conf=RELAY)
    queued(srv, 1)
    # the running daemon holds the lock: an edit goes through its socket
    lock = srv.spool / "queue.lock"
    fd = os.open(lock, os.O_RDONLY)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
    srv.stop()

    # an offline edit holding the lock (as `postern queue` does): a serve
    # started meanwhile says it waits, and is not ready until it is free
    fd = os.open(lock, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    mark = srv.mark()
    try:
        srv.start(wait=False)
        ev = srv.wait_event("QUEUE-LOCK-WAIT", after=mark)[0]
        assert ev["path"].endswith("queue.lock"), ev
        # the command sees the lock held and no daemon answering
        rc, _, err = queue(srv, "hold", srv.spool_files("queue")[0],
                           json_out=False, check=75)
        assert "[QUEUE-LOCKED]" in err
        srv.wait_event("QUEUE-LOCKED")
        assert not srv.events("STARTUP-READY", after=mark)
        assert not srv.events("QUEUE-RECOVERED", after=mark)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    srv.wait_event("STARTUP-READY", after=mark, timeout=15)
    srv.wait_event("QUEUE-RECOVERED", after=mark)


# ------------------------------------------------------------ live actions
# (issue 8 phase 2: the running daemon acts on its delivery queue)

def live_server(make_server):
    """A daemon whose mail for remote.test goes to a port where nothing
    listens: each attempt is deferred (connection refused) and waits for
    the retry schedule (5 minutes) in the delivery queue."""
    return make_server(conf={"route.dead": {"domains": "remote.test",
                                            "via": "[127.0.0.1]:%d" % DEAD_PORT}})


def queued_remote(srv, n=1, token="live"):
    msgs = []
    for i in range(n):
        m = make_message("%s%d" % (token, i))
        code, reply = srv.send_mail(frm="alice@example.test",
                                    rcpts=("bob@remote.test",), data=m)
        assert code == 250, reply
        msgs.append(m)
    srv.wait_event("DELIVERY-DEFERRED", count=n, timeout=20)
    return msgs


def attempts(srv, qid):
    rc, out, _ = queue(srv, "show", qid, check=0)
    return out["message"]["recipients"][0]["attempts"]


def test_live_flush_hold_release_delete(make_server):
    srv = live_server(make_server)
    queued_remote(srv, 2)
    qids = srv.spool_files("queue")
    before = attempts(srv, qids[0])

    # flush ID: an attempt now, not in 5 minutes
    mark = srv.mark()
    rc, res, _ = queue(srv, "flush", qids[0], check=0)
    check_result(res, "flush", True, "control")
    assert res["count"] == 1
    srv.wait_event("DELIVERY-DEFERRED", after=mark, qid=qids[0], timeout=20)
    assert attempts(srv, qids[0]) == before + 1
    assert not srv.events("DELIVERY-DEFERRED", after=mark, qid=qids[1])

    # hold: the delivery queue lets it go; list says held
    rc, res, _ = queue(srv, "hold", qids[0], check=0)
    check_result(res, "hold", True, "control")
    srv.wait_event("QUEUE-HELD", by="control", qid=qids[0])
    rc, st, _ = queue(srv, "status", check=0)
    assert st["pending"] == 1
    rc, out, _ = queue(srv, "list", check=0)
    held = {m["qid"]: m["held"] for m in out["messages"]}
    assert held == {qids[0]: True, qids[1]: False}
    # a flush does not touch a held message
    mark = srv.mark()
    rc, res, _ = queue(srv, "flush", check=0)
    assert res["count"] == 1
    srv.wait_event("DELIVERY-DEFERRED", after=mark, qid=qids[1], timeout=20)
    assert not srv.events("DELIVERY-DEFERRED", after=mark, qid=qids[0])

    # release: back in the delivery queue, tried
    mark = srv.mark()
    rc, res, _ = queue(srv, "release", qids[0], check=0)
    check_result(res, "release", True, "control")
    srv.wait_event("QUEUE-RELEASED", by="control", qid=qids[0])
    srv.wait_event("DELIVERY-DEFERRED", after=mark, qid=qids[0], timeout=20)
    rc, st, _ = queue(srv, "status", check=0)
    assert st["pending"] == 2

    # delete: gone from the spool and from the delivery queue
    rc, res, _ = queue(srv, "delete", qids[1], check=0)
    check_result(res, "delete", True, "control")
    ev = srv.wait_event("QUEUE-DELETED", by="control", qid=qids[1])[0]
    assert ev["rcpts_left"] == "1"
    assert srv.spool_files("queue") == [qids[0]]
    rc, st, _ = queue(srv, "status", check=0)
    assert st["pending"] == 1
    rc, res, _ = queue(srv, "delete", qids[1], check=1)
    assert res["error"] == "QUEUE-NOT-FOUND"

    # flush --domain: the messages with a waiting recipient there
    mark = srv.mark()
    rc, res, _ = queue(srv, "flush", "--domain", "nowhere.test", check=0)
    assert res["count"] == 0
    rc, res, _ = queue(srv, "flush", "--domain", "REMOTE.test", check=0)
    check_result(res, "flush", True, "control")
    assert res["count"] == 1 and res["target"] == "REMOTE.test"
    srv.wait_event("DELIVERY-DEFERRED", after=mark, qid=qids[0], timeout=20)

    # status: the outbound engine's destinations, read on its loop
    rc, st, _ = queue(srv, "status", check=0)
    assert "destination=route:dead " in st["destinations"], st


def test_live_bounce_sends_a_dsn(make_server):
    srv = live_server(make_server)
    queued_remote(srv, 1, token="bounce")
    qid = srv.spool_files("queue")[0]
    rc, res, _ = queue(srv, "bounce", qid, check=0)
    check_result(res, "bounce", True, "control")
    srv.wait_event("QUEUE-BOUNCED-BY-ADMIN", by="control", qid=qid)
    files = srv.wait_mail("alice", timeout=20)
    dsn = email.message_from_bytes(files[0].read_bytes())
    assert dsn.get_content_type() == "multipart/report"
    text = files[0].read_bytes().decode("utf-8", "replace")
    assert "QUEUE-BOUNCED-BY-ADMIN" in text
    assert "bob@remote.test" in text
    deadline = time.monotonic() + 20
    while qid in srv.spool_files("queue") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert qid not in srv.spool_files("queue")
