"""
test_bdat_dsn.py - CHUNKING (RFC 3030) and DSN parameters (RFC 3461):
BDAT with LAST, BDAT 0 LAST, BDAT mixed with DATA refused; RET, ENVID,
NOTIFY, ORCPT parsed, logged and kept with the message (issue 2 point 4).
"""

import re
import time

import pytest

from conftest import make_message, split_delivered


def ids_in(reply):
    return re.findall(r"\[([A-Z0-9-]+)\]\s*$", reply.last)


def open_tx(server, rcpt="alice@example.test"):
    c = server.raw()
    assert c.cmd("EHLO client.example.org").code == 250
    assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
    assert c.cmd("RCPT TO:<%s>" % rcpt).code == 250
    return c


def test_bdat_chunks_stored_verbatim(server):
    msg = make_message("bdat", body=b".a line with a leading dot\r\n..two\r\n.\r\nend\r\n")
    parts = [msg[:10], msg[10:57], msg[57:]]
    with open_tx(server) as c:
        for p in parts[:-1]:
            c.send(b"BDAT %d\r\n" % len(p) + p)
            r = c.reply()
            assert r.code == 250 and r.text.startswith("2.0.0"), r
            assert str(len(p)) in r.text
        c.send(b"BDAT %d LAST\r\n" % len(parts[-1]) + parts[-1])
        r = c.reply()
        assert r.code == 250 and "queued as" in r.text, r
        assert c.cmd("QUIT").code == 221
    f = server.wait_mail("alice")[0]
    assert split_delivered(f.read_bytes())[3] == msg
    server.wait_event("SMTP-BDAT-OK")


def test_bdat_zero_last(server):
    msg = make_message("bdat0")
    with open_tx(server) as c:
        c.send(b"BDAT %d\r\n" % len(msg) + msg)
        assert c.reply().code == 250
        r = c.cmd("BDAT 0 LAST")
        assert r.code == 250 and "queued as" in r.text, r
        c.cmd("QUIT")
    f = server.wait_mail("alice")[0]
    assert split_delivered(f.read_bytes())[3] == msg


def test_bdat_pipelined_one_write(server):
    msg = make_message("bdatpipe")
    with server.raw() as c:
        c.send(b"EHLO client.example.org\r\nMAIL FROM:<sender@example.org>\r\n"
               b"RCPT TO:<bob@example.test>\r\n"
               + b"BDAT %d\r\n" % 20 + msg[:20]
               + b"BDAT %d LAST\r\n" % (len(msg) - 20) + msg[20:]
               + b"QUIT\r\n")
        codes = [c.reply().code for _ in range(6)]
        assert codes == [250, 250, 250, 250, 250, 221], codes
    f = server.wait_mail("bob")[0]
    assert split_delivered(f.read_bytes())[3] == msg


def test_bdat_then_data_refused(server):
    with open_tx(server) as c:
        c.send(b"BDAT 5\r\nhello")
        assert c.reply().code == 250
        r = c.cmd("DATA")
        assert r.code == 503 and r.text.startswith("5.5.1"), r
        assert ids_in(r) == ["SMTP-SEQUENCE-ERROR"], r
        assert c.cmd("NOOP").code == 250


def test_bdat_without_transaction_consumes_chunk(server):
    with server.raw() as c:
        c.cmd("EHLO client.example.org")
        c.send(b"BDAT 12\r\nNOOP\r\nNOOP\r\n")
        r = c.reply()
        assert r.code == 503, r
        assert ids_in(r) == ["SMTP-NEED-RCPT"], r
        # the chunk was read and discarded, not taken as commands
        r = c.cmd("RSET")
        assert r.code == 250, r
        c.cmd("MAIL FROM:<sender@example.org>")
        c.cmd("RCPT TO:<nobody@example.test>")
        c.send(b"BDAT 3 LAST\r\nabc")
        r = c.reply()
        assert r.code == 554 and ids_in(r) == ["SMTP-NO-VALID-RCPTS"], r
        assert c.cmd("NOOP").code == 250


def test_bdat_bad_syntax(server):
    # issue 7: a bad end marker is refused and its chunk (size known) is
    # read and dropped; an unreadable size closes the session (its chunk
    # cannot be found), see test_edge_bounds.py
    with open_tx(server) as c:
        c.send(b"BDAT 3 FIRST\r\nabc")
        r = c.reply()
        assert r.code == 501, r
        assert c.cmd("NOOP").code == 250
        r = c.cmd("BDAT abc")
        assert r.code == 421 and ids_in(r) == ["SMTP-BDAT-SIZE-INVALID"], r
        assert c.closed()


def test_bdat_empty_message(server):
    with open_tx(server) as c:
        r = c.cmd("BDAT 0 LAST")
        assert r.code == 554 and ids_in(r) == ["CONTENT-EMPTY"], r


def test_data_after_last_needs_new_transaction(server):
    msg = make_message("after")
    with open_tx(server) as c:
        c.send(b"BDAT %d LAST\r\n" % len(msg) + msg)
        assert c.reply().code == 250
        c.send(b"BDAT 3\r\nabc")
        r = c.reply()
        assert r.code == 503, r


# ------------------------------------------------------------------ DSN

def test_dsn_params_accepted_and_logged(server):
    with server.raw() as c:
        c.cmd("EHLO client.example.org")
        r = c.cmd("MAIL FROM:<sender@example.org> RET=HDRS ENVID=env+2Bid-42")
        assert r.code == 250, r
        r = c.cmd("RCPT TO:<alice@example.test> NOTIFY=SUCCESS,FAILURE "
                  "ORCPT=rfc822;alice+40example.test")
        assert r.code == 250, r
        r = c.cmd("RCPT TO:<bob@example.test> NOTIFY=NEVER")
        assert r.code == 250, r
        assert c.cmd("DATA").code == 354
        c.send(make_message("dsn") + b".\r\n")
        assert c.reply().code == 250
        c.cmd("QUIT")
    mail = server.wait_event("SESSION-MAIL")[0]
    assert mail.get("ret", "").upper() == "HDRS", mail
    assert "env" in mail.get("envid", ""), mail
    rc = server.wait_event("SESSION-RCPT", rcpt="<alice@example.test>")[0]
    assert rc.get("notify", "").upper() in ("SUCCESS,FAILURE", "FAILURE,SUCCESS"), rc
    assert "alice" in rc.get("orcpt", ""), rc
    server.wait_mail("alice")
    server.wait_mail("bob")


def test_dsn_params_kept_in_spool(make_server):
    """Delivery to alice cannot happen (her Maildir path is a file), so the
    message stays in the spool: its file holds the DSN parameters."""
    srv = make_server()
    box = srv.mail / "example.test"
    box.mkdir(parents=True)
    (box / "alice").write_text("not a maildir\n")
    with srv.raw() as c:
        c.cmd("EHLO client.example.org")
        assert c.cmd("MAIL FROM:<sender@example.org> RET=FULL ENVID=QQ-envid-77").code == 250
        assert c.cmd("RCPT TO:<alice@example.test> NOTIFY=DELAY "
                     "ORCPT=rfc822;orig-alice@example.test").code == 250
        assert c.cmd("DATA").code == 354
        c.send(make_message("kept") + b".\r\n")
        r = c.reply()
        assert r.code == 250, r
        c.cmd("QUIT")
    srv.wait_event("DELIVERY-LOCAL-WRITE-FAILED")
    srv.wait_event("DELIVERY-DEFERRED")
    q = srv.spool_files("queue")
    assert len(q) == 1, q
    blob = (srv.spool / "queue" / q[0]).read_bytes()
    assert b"QQ-envid-77" in blob, blob[:400]
    assert b"orig-alice@example.test" in blob, blob[:400]
    # repair the mailbox and restart: the recovered message is delivered
    (box / "alice").unlink()
    srv.stop()
    mark = srv.mark()
    srv.start()
    rec = srv.wait_event("QUEUE-RECOVERED", after=mark)[0]
    assert rec.get("count") == "1", rec
    srv.wait_mail("alice")
    srv.wait_queue_empty()


@pytest.mark.parametrize("cmd", [
    "MAIL FROM:<a@example.org> RET=FOO",
    "MAIL FROM:<a@example.org> RET=HDRS RET=FULL",
    "MAIL FROM:<a@example.org> ENVID=bad+ZZxtext",
    "MAIL FROM:<a@example.org> ENVID=" + "x" * 101,
    "MAIL FROM:<a@example.org> SIZE=",
    "MAIL FROM:<a@example.org> SIZE=-5",
])
def test_dsn_bad_mail_values(server, cmd):
    with server.raw() as c:
        c.cmd("EHLO client.example.org")
        r = c.cmd(cmd)
        assert r.code == 501 and r.text.startswith("5.5.4"), (cmd, r)
        assert ids_in(r) == ["SMTP-PARAM-INVALID"], r


@pytest.mark.parametrize("params", [
    "NOTIFY=NEVER,SUCCESS", "NOTIFY=SOMETIMES", "NOTIFY=",
    "ORCPT=noseparator", "ORCPT=rfc822;bad+ZZ",
    "NOTIFY=SUCCESS NOTIFY=FAILURE",
])
def test_dsn_bad_rcpt_values(server, params):
    with server.raw() as c:
        c.cmd("EHLO client.example.org")
        assert c.cmd("MAIL FROM:<a@example.org>").code == 250
        r = c.cmd("RCPT TO:<alice@example.test> " + params)
        assert r.code == 501 and r.text.startswith("5.5.4"), (params, r)
        assert ids_in(r) == ["SMTP-PARAM-INVALID"], r


def test_unknown_params(server):
    with server.raw() as c:
        c.cmd("EHLO client.example.org")
        r = c.cmd("MAIL FROM:<a@example.org> XFOO=1")
        assert (r.code, ids_in(r)) == (555, ["SMTP-PARAM-UNSUPPORTED"]), r
        assert r.text.startswith("5.5.4")
        assert c.cmd("MAIL FROM:<a@example.org>").code == 250
        r = c.cmd("RCPT TO:<alice@example.test> RET=HDRS")
        assert (r.code, ids_in(r)) == (555, ["SMTP-PARAM-UNSUPPORTED"]), r

