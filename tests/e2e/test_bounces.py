"""
test_bounces.py - issue 8 points 7 and 8 with local deliveries: RFC 3464
delivery status notifications (multipart/report) for local permanent
failures, successes (NOTIFY=SUCCESS), delays (outbound.delay_warning) and
the queue lifetime (outbound.max_queue_lifetime); NOTIFY, RET, ENVID and
ORCPT honoured; no DSN for <>; a failed DSN goes to the postmaster once and
never loops; restarts send no second DSN; the original is streamed.

Messages are accepted while example.test is not yet a local domain (they
wait in the queue as non-local, DELIVERY-DEFERRED), then a reload makes it
local with the account removed (DELIVERY-LOCAL-GONE) or over quota
(DELIVERY-LOCAL-QUOTA), so delivery meets the condition the test wants.
"""

import signal
import time

from conftest import DOMAIN, make_message, proc_status_kib
from dsnmail import read_dsn, send_dsn

SENDER = "bob@example.test"


def reload(srv, conf=None, accounts=None, extra=None):
    """Rewrites the configuration and accounts file and HUPs."""
    mark = srv.mark()
    if conf is not None:
        srv.conf = conf
    if accounts is not None:
        srv.accounts = accounts
    if extra is not None:
        srv.account_extra = extra
    srv.write_config()
    srv.signal(signal.SIGHUP)
    srv.wait_event("CONFIG-RELOADED", after=mark)
    return mark


def queued_server(make_server, conf=None):
    """A server whose example.test is not local yet: mail for it waits."""
    base = {"local": {"domains": "other.test"}}
    for k, v in (conf or {}).items():
        base.setdefault(k, {}).update(v)
    return make_server(conf=base)


def local_conf(conf=None):
    base = {"local": {"domains": DOMAIN}}
    for k, v in (conf or {}).items():
        base.setdefault(k, {}).update(v)
    return base


def without(srv, user):
    return {u: h for u, h in srv.accounts.items() if u != user}


def dsns(srv, user):
    return [read_dsn(p) for p in srv.maildir(user)]


# ------------------------------------------------------------ failures

def test_vanished_mailbox_bounces_to_local_sender(make_server):
    """An account removed between acceptance and delivery: the recipient
    fails with 5.1.1 [DELIVERY-LOCAL-GONE] and the local sender finds a
    DSN in its Maildir: every report field, ENVID and ORCPT echoed, the
    whole original attached (RET=FULL), the catalog ID in the text."""
    srv = queued_server(make_server)
    msg = make_message("gone", subject="to carol")
    code, _ = send_dsn(srv, SENDER, ["carol@example.test", "alice@example.test"], msg,
                       mail_opts=["RET=FULL", "ENVID=env-carol-1"],
                       rcpt_opts={"carol@example.test":
                                  ["NOTIFY=FAILURE", "ORCPT=rfc822;Carol@example.test"]})
    assert code == 250
    srv.wait_event("DELIVERY-DEFERRED")
    mark = reload(srv, local_conf(), accounts=without(srv, "carol"))
    ev = srv.wait_event("DELIVERY-FAILED", after=mark)[0]
    assert ev["rcpt"] == "<carol@example.test>" and ev["status"] == "5.1.1", ev
    assert ev["cause"] == "DELIVERY-LOCAL-GONE", ev
    sent = srv.wait_event("DELIVERY-BOUNCE-SENT", after=mark)[0]
    assert sent["action"] == "failed" and sent["to"] == SENDER, sent
    assert sent["rcpts"] == "carol@example.test", sent
    files = srv.wait_mail("bob")
    srv.wait_mail("alice")
    srv.wait_queue_empty()
    assert len(files) == 1
    d = read_dsn(files[0])
    m = d.msg
    assert m["From"].endswith("<MAILER-DAEMON@mx.example.test>"), m["From"]
    assert m["To"] == "<%s>" % SENDER
    assert m["Return-Path"] == "<>"
    assert m["Auto-Submitted"] == "auto-replied"
    assert d.per_message["Reporting-MTA"] == "dns; mx.example.test"
    assert d.per_message["Original-Envelope-Id"] == "env-carol-1"
    assert d.per_message["Arrival-Date"]
    assert len(d.per_rcpt) == 1
    r = d.rcpt("carol@example.test")
    assert r["Original-Recipient"] == "rfc822;Carol@example.test"
    assert r["Action"] == "failed" and r["Status"] == "5.1.1"
    assert r["Diagnostic-Code"].startswith("smtp; 550 5.1.1 <carol@example.test>"), r
    assert "[DELIVERY-LOCAL-GONE]" in r["Diagnostic-Code"]
    assert r["Last-Attempt-Date"] and r["Remote-MTA"] is None
    assert r["Will-Retry-Until"] is None
    assert "<carol@example.test>: failed [DELIVERY-LOCAL-GONE]" in d.text, d.text
    assert "What you can do" in d.text and "alice" not in d.text
    assert d.original_type == "message/rfc822"
    orig = d.original_bytes()
    assert orig.startswith(b"Received: from "), orig[:100]
    assert orig.endswith(msg), orig[-200:]


def test_ret_hdrs_attaches_headers_only(make_server):
    srv = queued_server(make_server)
    msg = make_message("hdrs", subject="only headers", body=b"the body line\r\n" * 20)
    code, _ = send_dsn(srv, SENDER, ["carol@example.test"], msg,
                       mail_opts=["RET=HDRS"])
    assert code == 250
    srv.wait_event("DELIVERY-DEFERRED")
    reload(srv, local_conf(), accounts=without(srv, "carol"))
    d = read_dsn(srv.wait_mail("bob")[0])
    assert d.original_type == "text/rfc822-headers"
    hdrs = d.original_bytes()
    assert b"Subject: only headers" in hdrs and hdrs.endswith(b"\r\n\r\n"), hdrs
    assert b"the body line" not in d.raw
    assert d.per_message["Original-Envelope-Id"] is None
    assert d.rcpt("carol@example.test")["Original-Recipient"] is None


def test_notify_never_sends_no_dsn(make_server):
    srv = queued_server(make_server)
    code, _ = send_dsn(srv, SENDER, ["carol@example.test"], make_message("never"),
                       rcpt_opts={"carol@example.test": ["NOTIFY=NEVER"]})
    assert code == 250
    srv.wait_event("DELIVERY-DEFERRED")
    mark = reload(srv, local_conf(), accounts=without(srv, "carol"))
    srv.wait_event("DELIVERY-FAILED", after=mark, rcpt="<carol@example.test>")
    ev = srv.wait_event("DELIVERY-BOUNCE-SKIPPED", after=mark)[0]
    assert ev["reason"] == "notify" and ev["action"] == "failed", ev
    srv.wait_queue_empty()
    assert srv.events("DELIVERY-BOUNCE-SENT") == []
    assert srv.maildir("bob") == []


def test_null_sender_failure_sends_no_dsn(make_server):
    srv = queued_server(make_server)
    code, _ = send_dsn(srv, "", ["carol@example.test"], make_message("null"))
    assert code == 250
    srv.wait_event("DELIVERY-DEFERRED")
    mark = reload(srv, local_conf(), accounts=without(srv, "carol"))
    srv.wait_event("DELIVERY-FAILED", after=mark, rcpt="<carol@example.test>")
    ev = srv.wait_event("DELIVERY-BOUNCE-SKIPPED", after=mark)[0]
    assert ev["reason"] == "null-sender", ev
    srv.wait_queue_empty()
    assert srv.events("DELIVERY-BOUNCE-SENT") == []


def test_failed_dsn_goes_to_postmaster_once(make_server):
    """The sender's own mailbox is gone too: the DSN fails, goes once to
    the postmaster (postmaster@ the first local domain, as server.hostname
    is not local), and is not bounced again."""
    srv = queued_server(make_server)
    code, _ = send_dsn(srv, SENDER, ["carol@example.test"], make_message("double"))
    assert code == 250
    srv.wait_event("DELIVERY-DEFERRED")
    accounts = {u: h for u, h in srv.accounts.items() if u not in ("carol", "bob")}
    mark = reload(srv, local_conf(), accounts=accounts)
    first = srv.wait_event("DELIVERY-BOUNCE-SENT", after=mark)[0]
    assert first["to"] == SENDER, first
    second = srv.wait_event("DELIVERY-BOUNCE-SENT", after=mark, qid=first["dsn_qid"])[0]
    assert second["to"] == "postmaster@example.test", second
    files = srv.wait_mail("postmaster")
    srv.wait_queue_empty()
    d = read_dsn(files[0])
    assert d.msg["Subject"] == "Undeliverable delivery status notification"
    assert d.rcpt(SENDER)["Action"] == "failed"
    assert d.rcpt(SENDER)["Status"] == "5.1.1"
    # the failed DSN itself is attached whole
    inner = d.original_part.get_payload()[0]
    assert inner.get_content_type() == "multipart/report"
    assert len(srv.events("DELIVERY-BOUNCE-SENT")) == 2
    assert len(srv.maildir("postmaster")) == 1


def test_failed_postmaster_copy_is_dropped(make_server):
    """The postmaster address fails too: logged
    (DELIVERY-DOUBLE-BOUNCE-DROPPED) and dropped; nothing loops."""
    srv = queued_server(make_server, {"outbound": {
        "double_bounce_recipient": "nobody@example.test"}})
    code, _ = send_dsn(srv, SENDER, ["carol@example.test"], make_message("loop"))
    assert code == 250
    srv.wait_event("DELIVERY-DEFERRED")
    accounts = {u: h for u, h in srv.accounts.items() if u not in ("carol", "bob")}
    conf = local_conf({"outbound": {"double_bounce_recipient": "nobody@example.test"}})
    mark = reload(srv, conf, accounts=accounts)
    ev = srv.wait_event("DELIVERY-DOUBLE-BOUNCE-DROPPED", after=mark)[0]
    assert ev["rcpt"] == "<nobody@example.test>" and ev["status"] == "5.1.1", ev
    srv.wait_queue_empty()
    sent = srv.events("DELIVERY-BOUNCE-SENT")
    assert [e["to"] for e in sent] == [SENDER, "nobody@example.test"], sent
    assert len(srv.events("DELIVERY-FAILED")) == 3


# ------------------------------------------------------------ successes

def test_notify_success_sends_delivered_dsn(make_server):
    srv = make_server()
    msg = make_message("ok", subject="fine")
    code, _ = send_dsn(srv, SENDER, ["alice@example.test", "carol@example.test"], msg,
                       mail_opts=["ENVID=ok-1"],
                       rcpt_opts={"alice@example.test": ["NOTIFY=SUCCESS,FAILURE"]})
    assert code == 250
    srv.wait_mail("alice")
    srv.wait_mail("carol")
    sent = srv.wait_event("DELIVERY-BOUNCE-SENT")[0]
    assert sent["action"] == "delivered" and sent["rcpts"] == "alice@example.test", sent
    d = read_dsn(srv.wait_mail("bob")[0])
    srv.wait_queue_empty()
    assert d.msg["Subject"] == "Successful Mail Delivery Report"
    assert d.per_message["Original-Envelope-Id"] == "ok-1"
    assert len(d.per_rcpt) == 1
    r = d.rcpt("alice@example.test")
    assert r["Action"] == "delivered" and r["Status"] == "2.0.0", r
    assert "[DELIVERY-SUCCESS]" in d.text
    # success notices carry the headers only
    assert d.original_type == "text/rfc822-headers"
    assert b"Subject: fine" in d.original_bytes()
    assert len(srv.maildir("bob")) == 1


# ------------------------------------------------- delays and expiry

QUOTA_CONF = {"outbound": {"delay_warning": "2s", "max_queue_lifetime": "7s"}}


def quota_setup(make_server, notify=None):
    srv = queued_server(make_server, QUOTA_CONF)
    opts = {"alice@example.test": [notify]} if notify else {}
    code, _ = send_dsn(srv, SENDER, ["alice@example.test"],
                       make_message("full", body=b"z" * 60 + b"\r\n" * 50),
                       rcpt_opts=opts)
    assert code == 250
    srv.wait_event("DELIVERY-DEFERRED")
    mark = reload(srv, local_conf(QUOTA_CONF), extra={"alice": "quota=100"})
    srv.wait_event("DELIVERY-LOCAL-QUOTA", after=mark)
    return srv, mark


def test_delay_warning_then_expiry_on_quota(make_server):
    """Over quota: one delay warning after outbound.delay_warning (Status
    4.2.2, Will-Retry-Until), then after outbound.max_queue_lifetime the
    recipient fails (DELIVERY-EXPIRED) with a DSN, and the queue is empty."""
    srv, mark = quota_setup(make_server)
    ev = srv.wait_event("DELIVERY-DELAY-NOTICE", after=mark, timeout=15)[0]
    assert ev["rcpt"] == "<alice@example.test>" and int(ev["age_s"]) >= 2, ev
    delayed = read_dsn(srv.wait_mail("bob")[0])
    assert delayed.msg["Subject"] == "Delayed Mail (still being retried)"
    r = delayed.rcpt("alice@example.test")
    assert r["Action"] == "delayed" and r["Status"] == "4.2.2", r
    assert r["Will-Retry-Until"], r
    assert "[DELIVERY-LOCAL-QUOTA]" in r["Diagnostic-Code"], r
    assert delayed.original_type == "text/rfc822-headers"
    exp = srv.wait_event("DELIVERY-EXPIRED", after=mark, timeout=20)[0]
    assert exp["last"] == "DELIVERY-LOCAL-QUOTA" and int(exp["age_s"]) >= 7, exp
    srv.wait_queue_empty()
    files = srv.wait_mail("bob", count=2)
    assert len(files) == 2
    failed = [d for d in map(read_dsn, files)
              if d.rcpt("alice@example.test")["Action"] == "failed"]
    assert len(failed) == 1
    r = failed[0].rcpt("alice@example.test")
    assert r["Status"] == "4.2.2", r
    assert "Mailbox full" in r["Diagnostic-Code"], r
    assert "[DELIVERY-EXPIRED]" in failed[0].text
    assert failed[0].original_type == "message/rfc822"
    assert len(srv.events("DELIVERY-DELAY-NOTICE")) == 1
    assert srv.maildir("alice") == []


def test_notify_failure_only_skips_delay_warning(make_server):
    srv, mark = quota_setup(make_server, "NOTIFY=FAILURE")
    ev = srv.wait_event("DELIVERY-BOUNCE-SKIPPED", after=mark, timeout=15)[0]
    assert ev["action"] == "delayed" and ev["reason"] == "notify", ev
    srv.wait_event("DELIVERY-EXPIRED", after=mark, timeout=20)
    srv.wait_queue_empty()
    files = srv.wait_mail("bob")
    assert [read_dsn(f).rcpt("alice@example.test")["Action"] for f in files] == ["failed"]
    assert srv.events("DELIVERY-DELAY-NOTICE") == []


def test_restarts_send_no_second_dsn(make_server):
    """SIGKILL after the delay warning, SIGTERM after the bounce: each
    restart recovers the state log, and no DSN is sent twice."""
    srv, mark = quota_setup(make_server)
    srv.wait_event("DELIVERY-DELAY-NOTICE", after=mark, timeout=15)
    srv.wait_mail("bob")
    srv.kill9()
    mark = srv.mark()
    srv.start()
    srv.wait_event("DELIVERY-LOCAL-QUOTA", after=mark)
    srv.wait_event("DELIVERY-EXPIRED", after=mark, timeout=20)
    srv.wait_queue_empty()
    srv.wait_mail("bob", count=2)
    mark = srv.mark()
    srv.stop()
    srv.start()
    # the two DSNs themselves were delivered: nothing is left to recover
    rec = srv.wait_event("QUEUE-RECOVERED", after=mark)[0]
    assert rec["count"] == "0", rec
    actions = sorted(e["action"] for e in srv.events("DELIVERY-BOUNCE-SENT"))
    assert actions == ["delayed", "failed"], actions
    assert len(srv.maildir("bob")) == 2


# ------------------------------------------------------------ streaming

def test_large_original_is_streamed(make_server):
    """A 10 MiB original with RET=FULL: the DSN attaches it whole, byte for
    byte, and the daemon's peak RSS rises by far less than its size."""
    srv = queued_server(make_server, {"limits": {"message_size": "20M"}})
    line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUV\r\n"
    msg = make_message("big", body=line * (10 * 1024 * 1024 // len(line)))
    code, _ = send_dsn(srv, SENDER, ["carol@example.test"], msg, mail_opts=["RET=FULL"])
    assert code == 250
    srv.wait_event("DELIVERY-DEFERRED")
    hwm = proc_status_kib(srv.pid, "VmHWM")
    mark = reload(srv, local_conf({"limits": {"message_size": "20M"}}),
                  accounts=without(srv, "carol"))
    srv.wait_event("DELIVERY-BOUNCE-SENT", after=mark)
    files = srv.wait_mail("bob", timeout=30)
    srv.wait_queue_empty()
    rise = proc_status_kib(srv.pid, "VmHWM") - hwm
    print("VmHWM rise while bouncing 10 MiB: %d KiB" % rise)
    assert rise < 8 * 1024, rise
    d = read_dsn(files[0])
    assert d.original_type == "message/rfc822"
    assert d.original_bytes().endswith(msg)
