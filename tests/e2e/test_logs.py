"""
test_logs.py - issue 2 point 8: one logfmt line per event; the summary
lines of one known session are parsed and their keys checked.
"""

import os
import re
import select
import threading
import time

from conftest import make_message, parse_logfmt

LINE = re.compile(r'^ts=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) '
                  r'sev=(debug|info|notice|warning|error|crit) '
                  r'event=([A-Z0-9-]+) sid=([0-9a-f]{16}|-) qid=(\S+)( |$)')


def test_parse_logfmt_helper():
    d = parse_logfmt('ts=1 a=b c="x y \\"q\\" \\\\ \\n" d=<> e="\\x01"')
    assert d == {"ts": "1", "a": "b", "c": 'x y "q" \\ \n', "d": "<>", "e": "\x01"}


def known_session(server):
    msgid = "<known.%d@client.example.org>" % time.monotonic_ns()
    msg = make_message("known", msgid=msgid)
    with server.raw() as c:
        cport = c.sock.getsockname()[1]
        c.cmd("EHLO client.example.org")
        assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        bad = c.cmd("RCPT TO:<nobody@example.test>")
        assert bad.code == 550
        assert c.cmd("DATA").code == 354
        c.send(msg + b".\r\n")
        ok = c.reply()
        assert ok.code == 250
        assert c.cmd("QUIT").code == 221
    qid = re.search(r"queued as ([0-9A-Z]+)", ok.text).group(1)
    return dict(msgid=msgid, msg=msg, cport=cport, bad=bad, ok=ok, qid=qid)


def test_every_line_has_the_common_shape(server):
    known_session(server)
    server.wait_event("SESSION-END")
    server.wait_event("DELIVERY-SUCCESS")
    lines = server.log_lines()
    assert lines
    for l in lines:
        assert LINE.match(l), "bad line shape: %r" % l
        d = parse_logfmt(l)
        keys = list(d)
        assert keys[:5] == ["ts", "sev", "event", "sid", "qid"], keys
        assert keys[-1] == "msg", keys
        for k in keys:
            assert re.match(r"^[a-z][a-z0-9_]*$", k), (k, l)


def test_session_summary_lines(server):
    k = known_session(server)
    end = server.wait_event("SESSION-END")[0]
    sid = end["sid"]
    assert re.match(r"^[0-9a-f]{16}$", sid)
    mine = [d for d in server.events() if d.get("sid") == sid]
    by = {}
    for d in mine:
        by.setdefault(d["event"], []).append(d)

    st = by["SESSION-START"][0]
    assert st["sev"] == "info"
    assert st["proto"] == "smtp"
    assert st["client"] == "127.0.0.1"
    assert st["port"] == str(k["cport"])
    assert st["local"] == "127.0.0.1:%d" % server.port
    assert int(st["sessions"]) >= 1

    tid = sid + ".1"
    mail = by["SESSION-MAIL"][0]
    assert mail["tid"] == tid, mail
    assert mail["from"] == "<sender@example.org>"
    assert mail["cause"] == "SMTP-MAIL-OK"
    assert mail["reply"].startswith("250 2.1.0"), mail

    rcpts = by["SESSION-RCPT"]
    assert len(rcpts) == 2, rcpts
    assert rcpts[0]["rcpt"] == "<alice@example.test>" and rcpts[0]["cause"] == "RCPT-OK"
    assert rcpts[0]["reply"].startswith("250 2.1.5")
    assert rcpts[1]["rcpt"] == "<nobody@example.test>"
    assert rcpts[1]["cause"] == "RCPT-UNKNOWN-USER"
    assert rcpts[1]["reply"] == k["bad"].last
    assert all(r["tid"] == tid for r in rcpts)

    # the refusal has its own line with the catalog severity
    rej = by["RCPT-UNKNOWN-USER"][0]
    assert rej["sev"] == "info" and rej["rcpt"] == "<nobody@example.test>", rej
    assert rej["client"] == "127.0.0.1"

    data = by["SESSION-DATA"][0]
    assert data["nrcpt"] == "1" and data["cause"] == "SMTP-DATA-GO", data
    assert data["reply"].startswith("354 "), data

    m = by["SESSION-MESSAGE"][0]
    assert m["qid"] == k["qid"], m
    assert m["tid"] == tid
    assert m["from"] == "<sender@example.org>"
    assert m["rcpts"] == "<alice@example.test>", m
    assert m["nrcpt"] == "1" and m["nbad"] == "1", m
    assert m["msgid"] == k["msgid"], m
    assert m["verdict"] == "accepted"
    assert m["cause"] == "SMTP-MSG-ACCEPTED"
    assert m["reply"] == k["ok"].last, m
    assert int(m["elapsed_ms"]) >= 0
    size = int(m["size"])
    f = server.wait_mail("alice")[0]
    stored = f.read_bytes()
    rest = stored.split(b"\r\nReceived: ", 1)[1]
    received_and_msg = b"Received: " + rest
    assert size in (len(k["msg"]), len(received_and_msg)), \
        (size, len(k["msg"]), len(received_and_msg))

    assert end["proto"] == "smtp"
    assert end["client"] == "127.0.0.1"
    assert end["helo"] == "client.example.org"
    assert end["tls"] == "no"
    assert "ehlo" in end["flags"].split(","), end
    assert end["msgs"] == "1/1", end
    assert end["rcpts"] == "1/1", end
    assert end["rejects"] == "1", end
    assert end["last_reject"] == k["bad"].last, end
    assert end["cause"] == "SMTP-QUIT"
    assert int(end["bytes"]) >= len(k["msg"])
    assert float(end["duration_s"]) >= 0

    # order of the summary lines
    order = [d["event"] for d in mine if d["event"].startswith("SESSION-")]
    assert order == ["SESSION-START", "SESSION-MAIL", "SESSION-RCPT",
                     "SESSION-RCPT", "SESSION-DATA", "SESSION-MESSAGE",
                     "SESSION-END"], order

    dl = server.wait_event("DELIVERY-SUCCESS", qid=k["qid"])[0]
    assert dl["rcpt"] == "<alice@example.test>" or dl["rcpt"] == "alice@example.test", dl


def test_refusal_reply_carries_the_cause(server):
    with server.raw() as c:
        c.cmd("EHLO client.example.org")
        c.cmd("XYZZY")
        c.cmd("MAIL FROM:<sender@example.org> FOO=1")
        c.cmd("QUIT")
    server.wait_event("SESSION-END")
    for d in server.events():
        r = d.get("reply", "")
        if r[:1] in ("4", "5"):
            m = re.search(r"\[([A-Z0-9-]+)\]$", r)
            assert m, d
            if "cause" in d:
                assert m.group(1) == d["cause"], d
    assert server.events("SMTP-COMMAND-UNKNOWN")
    assert server.events("SMTP-PARAM-UNSUPPORTED")


def test_values_are_quoted_and_escaped(server):
    sender = '"john \\"x\\" doe"@example.org'
    with server.raw() as c:
        c.cmd("EHLO client.example.org")
        assert c.cmd("MAIL FROM:<%s>" % sender).code == 250
        c.cmd("QUIT")
    mail = server.wait_event("SESSION-MAIL")[0]
    assert mail["from"] == "<%s>" % sender, mail
    raw = [l for l in server.log_lines() if "event=SESSION-MAIL" in l][0]
    assert 'from="<' in raw, raw


def test_rejected_message_summary(make_server):
    srv = make_server(opts=["limits.hops=1"])
    with srv.raw() as c:
        c.cmd("EHLO client.example.org")
        c.cmd("MAIL FROM:<sender@example.org>")
        c.cmd("RCPT TO:<alice@example.test>")
        c.cmd("DATA")
        c.send(b"Received: from a by b; Sat, 23 Nov 2024 12:00:00 +0000\r\n"
               b"Received: from c by d; Sat, 23 Nov 2024 12:00:00 +0000\r\n"
               + make_message("loop", msgid="<loop@example.org>") + b".\r\n")
        r = c.reply()
        assert r.code == 554
        c.cmd("QUIT")
    m = srv.wait_event("SESSION-MESSAGE")[0]
    assert m["verdict"] == "rejected" and m["cause"] == "CONTENT-TOO-MANY-HOPS", m
    assert m["reply"] == r.last
    assert m["msgid"] == "<loop@example.org>"
    end = srv.wait_event("SESSION-END")[0]
    assert end["msgs"] == "0/1", end
    assert end["last_reject"] == r.last
    hop = srv.events("CONTENT-TOO-MANY-HOPS")[0]
    assert hop["sev"] == "warning" and hop["msgid"] == "<loop@example.org>", hop


def test_log_level_info_hides_debug(make_server):
    srv = make_server(conf={"log": {"level": "info"}})
    srv.assert_serves()
    srv.wait_event("SESSION-END")
    assert not srv.events("NET-TRACE")
    assert all(d["sev"] != "debug" for d in srv.events())


def test_log_to_file(make_server):
    srv = make_server(start=False, opts=["log.target=postern-file.log"])
    srv.start(wait=False)
    f = srv.dir / "postern-file.log"

    def wait_for(text):
        deadline = time.monotonic() + 10
        while not (f.exists() and text in f.read_text()):
            assert srv.alive(), srv.log_text()
            assert time.monotonic() < deadline, "%s not in %s" % (text, f)
            time.sleep(0.05)

    wait_for("event=STARTUP-READY")
    srv.assert_serves()
    wait_for("event=SESSION-END")
    srv.stop()
    wait_for("event=SHUTDOWN-COMPLETE")
    for l in f.read_text().splitlines():
        assert LINE.match(l), l
    # copy into the server log so the coverage check sees these lines
    with open(srv.logfile, "a") as out:
        out.write(f.read_text())


class FifoPump:
    """Reads the daemon's log FIFO into server.log (whole lines only);
    pause() stops reading, so the daemon's log target becomes slow."""

    def __init__(self, fifo, logfile):
        self.fifo, self.logfile = fifo, logfile
        self.cv = threading.Condition()
        self.paused = False
        self.parked = False     # paused and reading no more
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        rest = b""
        with open(self.fifo, "rb", buffering=0) as f, open(self.logfile, "ab") as out:
            while True:
                with self.cv:
                    while self.paused:
                        self.parked = True
                        self.cv.wait()
                    self.parked = False
                chunk = f.read(65536)
                if not chunk:
                    break
                rest += chunk
                whole, nl, rest = rest.rpartition(b"\n")
                if nl:
                    out.write(whole + nl)
                    out.flush()

    def pause(self):
        """Stops reading after the read under way, if any (is_parked())."""
        with self.cv:
            self.paused = True

    def is_parked(self):
        """True once paused and past its last read until resume()."""
        with self.cv:
            return self.parked

    def resume(self):
        with self.cv:
            self.paused = False
            self.cv.notify_all()


def test_log_flood_drops_only_debug_lines_and_reports_them(make_server, tmp_path):
    """Issue 7 point 5: a log target slower than the flood never makes a
    summary line go missing; debug lines are dropped, counted and reported
    as LOG-LINES-DROPPED (design.md, Logs)."""
    fifo = tmp_path / "log.fifo"
    os.mkfifo(fifo)
    srv = make_server(start=False, conf={"log": {"target": str(fifo), "level": "debug",
                                                 "queue_lines": "16"}})
    pump = FifoPump(fifo, srv.logfile)
    srv.start()
    nclients, ehlos = 30, 60
    burst = b"EHLO flood.example.org\r\n" * ehlos
    sent = [0] * nclients       # EHLOs per client
    before = srv.mark()
    clients = [srv.raw() for _ in range(nclients)]   # SESSION-STARTs logged

    def ehlo_burst(i):
        clients[i].send(burst)
        for _ in range(ehlos):
            assert clients[i].reply(timeout=20).code == 250
        sent[i] += ehlos

    # No fixed pause: the test waits for the states it needs. 1. The log
    # thread is stuck: the first client's EHLOs are sent until the pump has
    # made its last read and then the FIFO has no room for another page
    # (poll() without POLLOUT on a write end of our own, asked in that
    # order); the log thread can then place less than one page more (4096
    # bytes: at most 64 lines, each longer than 64 bytes) before it blocks.
    pump.pause()
    probe = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    try:
        room = select.poll()
        room.register(probe, select.POLLOUT)
        while not pump.is_parked() or room.poll(0):
            assert sent[0] < 200 * ehlos, "the log FIFO never filled"
            ehlo_burst(0)
    finally:
        os.close(probe)     # else the pump never sees the FIFO's end
    # 2. The other clients are served while it is stuck: each reply proves
    # its command's NET-TRACE lines were logged after that point, far more
    # than that page and the 16 queued lines can hold, so debug lines were
    # dropped, and no loop waited for the log (or these replies never come).
    assert 2 * ehlos * (nclients - 1) > 4096 // 64 + 16
    for i in range(1, nclients):
        ehlo_burst(i)
    pump.resume()
    for c in clients:
        assert c.cmd("QUIT", timeout=20).code == 221
        c.close()
    ends = srv.wait_event("SESSION-END", after=before, count=nclients, timeout=20)
    assert len(ends) == nclients
    drop = srv.wait_event("LOG-LINES-DROPPED", after=before, timeout=20)[0]
    assert drop["sev"] == "warning" and int(drop["dropped"]) > 0, drop
    assert srv.stop() == 0
    pump.thread.join(timeout=10)
    assert not pump.thread.is_alive()
    # After the flush at shutdown: every summary line is there, the reports
    # add up, and every NET-TRACE line missing was counted as dropped (the
    # count also holds the other debug lines, the accepted replies' events).
    reports = srv.events("LOG-LINES-DROPPED", after=before)
    total = int(reports[-1]["total"])
    assert sum(int(r["dropped"]) for r in reports) == total
    assert len(srv.events("SESSION-START", after=before)) == nclients
    assert len(srv.events("SESSION-END", after=before)) == nclients
    assert srv.events("SHUTDOWN-COMPLETE", after=before)
    # NET-TRACE: one line per command read and per reply written (a
    # multi-line EHLO reply is one line), and the greeting.
    traced = len(srv.events("NET-TRACE", after=before))
    missing = sum(1 + 2 * (n + 1) for n in sent) - traced
    assert 0 < missing <= total, (traced, total, sent)   # all counted


def test_log_file_cut_line_left_alone(make_server):
    """A daemon killed mid-write leaves its log file's last line cut; the
    next start writes its own first line on a line of its own."""
    srv = make_server(start=False, opts=["log.target=postern-file.log"])
    f = srv.dir / "postern-file.log"
    f.write_text('ts=2026-01-01T00:00:00.000Z sev=info event=SESSION-R')
    srv.start(wait=False)
    deadline = time.monotonic() + 10
    while "event=STARTUP-READY" not in f.read_text():
        assert srv.alive(), srv.log_text()
        assert time.monotonic() < deadline, f.read_text()
        time.sleep(0.05)
    lines = f.read_text().splitlines()
    assert lines[0].endswith("event=SESSION-R"), lines[:2]
    assert all(LINE.match(l) for l in lines[1:]), lines[:3]
    srv.stop()
