"""
test_metrics.py - the Prometheus endpoint (issue 10 point 7): a listener of
role metrics serves GET /metrics, read here with the real Prometheus
client parser (python3-prometheus-client). The counters move as mail
flows: sessions, messages accepted / refused / deferred / delivered, the
count of each catalog ID (a refused RCPT moves its own), the reply and
delivery latency histograms, the commit batch sizes, the queue gauges and
the thread hand-offs. metrics.allow refuses other addresses with 403
(METRICS-ADDRESS-REFUSED); malformed, unknown, oversize and slow requests
get their status and a METRICS-BAD-REQUEST line from the bounded parser.
"""

import socket
import time

import pytest

from conftest import free_port, make_message, run_cli
from metricsfix import metrics_conf, raw_request, scrape, wait_sample


@pytest.fixture
def mserver(make_server):
    def factory(conf=None, **mkw):
        port = free_port()
        c = metrics_conf(port, **mkw)
        for sec, kv in (conf or {}).items():
            c.setdefault(sec, {}).update(kv)
        srv = make_server(conf=c)
        srv.mport = port
        return srv
    return factory


def test_exposition_format(mserver):
    srv = mserver()
    s = scrape(srv.mport)
    assert s.content_type == "text/plain; version=0.0.4; charset=utf-8"
    # every family has its HELP and TYPE (the parser keeps both)
    for name in ("postern_sessions", "postern_sessions_open", "postern_messages",
                 "postern_queue_messages", "postern_queue_oldest_age_seconds",
                 "postern_smtp_reply_latency_seconds", "postern_delivery_latency_seconds",
                 "postern_commit_batch_size", "postern_thread_handoffs", "postern_events"):
        f = s.families[name]
        assert f.documentation, name
        assert f.type in ("counter", "gauge", "histogram"), (name, f.type)
    assert s.families["postern_smtp_reply_latency_seconds"].type == "histogram"
    assert s.families["postern_events"].type == "counter"
    # a counter per catalog ID, zero or not: every row of `postern catalog`
    ids = {l[3:].strip() for l in run_cli("catalog").stdout.splitlines() if l.startswith("## ")}
    assert len(ids) > 200
    got = {dict(k[1])["id"] for k in s.samples if k[0] == "postern_events_total"}
    assert got == ids
    assert s.event("NET-LISTEN-READY") >= 2  # two listeners, each on every loop
    # this scrape is an open http session
    assert s.get("postern_sessions_open", protocol="http") >= 1
    # HEAD: the same fields, no body
    status, fields, body = raw_request(srv.mport, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200 and body == b"" and int(fields["content-length"]) > 1000


def test_counters_move_as_mail_flows(mserver):
    srv = mserver(conf={"limits": {"message_size": "1024"}})
    before = scrape(srv.mport)
    n = 3
    for i in range(n):
        code, _ = srv.send_mail(data=make_message("m%d" % i))
        assert code == 250
    srv.wait_mail("alice", n)
    after = wait_sample(srv.mport, "postern_messages_total",
                        before.get("postern_messages_total", result="delivered") + n,
                        result="delivered")
    d = lambda name, **l: after.get(name, **l) - before.get(name, **l)
    assert d("postern_messages_total", result="accepted") == n
    assert d("postern_sessions_total", protocol="smtp") == n
    assert after.event("SMTP-MSG-ACCEPTED") - before.event("SMTP-MSG-ACCEPTED") == n
    assert after.event("DELIVERY-SUCCESS") - before.event("DELIVERY-SUCCESS") == n
    # a reply per command: EHLO MAIL RCPT DATA end-of-data QUIT, each timed
    assert d("postern_smtp_reply_latency_seconds_count") >= 6 * n
    assert d("postern_smtp_reply_latency_seconds_bucket", le="+Inf") >= 6 * n
    assert d("postern_smtp_reply_latency_seconds_sum") > 0
    assert d("postern_delivery_latency_seconds_count") == n
    assert d("postern_delivery_latency_seconds_sum") > 0
    # every accepted message was in one commit round
    assert d("postern_commit_batch_size_sum") == n
    assert 1 <= d("postern_commit_batch_size_count") <= n
    assert d("postern_thread_handoffs_total", kind="workpool_submit") >= n
    assert d("postern_thread_handoffs_total", kind="loop_post") >= 1

    # a refused RCPT moves its own ID's count; a refused message, refused
    mark = srv.mark()
    with srv.raw() as c:
        assert c.cmd("EHLO client.example.org").code == 250
        assert c.cmd("MAIL FROM:<s@example.org>").code == 250
        r = c.cmd("RCPT TO:<nobody@example.test>")
        assert r.code == 550 and r.last.endswith("[RCPT-UNKNOWN-USER]"), r
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: big\r\n\r\n" + b"x" * 3000 + b"\r\n.\r\n")
        r = c.reply()
        assert r.code == 552, r
        assert c.cmd("QUIT").code == 221
    srv.wait_event("SESSION-END", after=mark)
    s2 = scrape(srv.mport)
    assert s2.event("RCPT-UNKNOWN-USER") - after.event("RCPT-UNKNOWN-USER") == 1
    assert s2.get("postern_messages_total", result="refused") - \
        after.get("postern_messages_total", result="refused") == 1
    assert s2.get("postern_messages_total", result="accepted") == \
        after.get("postern_messages_total", result="accepted")


def test_queue_gauges(mserver):
    # relay from 127.0.0.1 (trusted) to a domain whose DNS cannot answer:
    # the message waits in the queue, deferred
    srv = mserver()
    mark = srv.mark()
    code, _ = srv.send_mail(rcpts=("someone@example.org",))
    assert code == 250
    srv.wait_event("DELIVERY-DEFERRED", after=mark)
    s = wait_sample(srv.mport, "postern_messages_total", 1, result="deferred")
    assert s.get("postern_queue_messages") == 1
    time.sleep(0.2)  # the age grows from the queue ID's time
    s = scrape(srv.mport)
    assert s.get("postern_queue_messages") == 1
    assert 0.2 <= s.get("postern_queue_oldest_age_seconds") < 60
    assert s.get("postern_messages_total", result="delivered") == 0


def test_allow_list_refuses_other_addresses(mserver):
    srv = mserver(allow="127.0.0.2/32", address="0.0.0.0")
    mark = srv.mark()
    status, _, body = raw_request(srv.mport, b"GET /metrics HTTP/1.0\r\n\r\n",
                                  source="127.0.0.3")
    assert status == 403 and b"[METRICS-ADDRESS-REFUSED]" in body
    srv.wait_event("METRICS-ADDRESS-REFUSED", after=mark, client="127.0.0.3")
    s = scrape(srv.mport, source="127.0.0.2")
    assert s.event("METRICS-ADDRESS-REFUSED") == 1
    assert s.get("postern_sessions_total", protocol="http") == 1  # the refused one is not


BAD = [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /metrics HTTP/1.1\r\n\r\n", 400),                  # no Host
    (b"GET /metrics HTTP/1.0\r\nBad Field: x\r\n\r\n", 400),
    (b"GET /metrics HTTP/1.0\r\nA: b\r\n folded\r\n\r\n", 400),
    (b"GET /metrics HTTP/2.0\r\n\r\n", 505),
    (b"GET /other HTTP/1.0\r\n\r\n", 404),
    (b"POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n", 405),
    (b"GET /" + b"a" * 2000 + b" HTTP/1.0\r\n\r\n", 414),
    (b"GET /metrics HTTP/1.0\r\n" + b"".join(b"X%d: y\r\n" % i for i in range(65)) + b"\r\n", 431),
]


@pytest.mark.parametrize("data,status", BAD)
def test_bad_requests(mserver, data, status):
    srv = mserver()
    mark = srv.mark()
    got, fields, body = raw_request(srv.mport, data)
    assert got == status, (got, body)
    assert fields.get("connection") == "close"
    assert b"[METRICS-BAD-REQUEST]" in body
    ev = srv.wait_event("METRICS-BAD-REQUEST", after=mark, status=str(status))
    assert ev[0]["client"] == "127.0.0.1" and ev[0]["reason"]
    if status == 405:
        assert fields["allow"] == "GET, HEAD"
    # still serving
    assert scrape(srv.mport).event("METRICS-BAD-REQUEST") == 1


def test_oversize_request_is_bounded(mserver):
    # a head that never ends: answered 431 once 8 KiB are read, the rest
    # discarded (bounded), the connection closed
    srv = mserver()
    mark = srv.mark()
    got, _, body = raw_request(srv.mport, b"GET /metrics HTTP/1.0\r\nX: " + b"a" * 40000)
    assert got == 431, body
    ev = srv.wait_event("METRICS-BAD-REQUEST", after=mark, status="431")
    assert ev[0]["bytes"] == "8192"
    # a client that keeps sending is cut off, not read forever
    sock = socket.create_connection(("127.0.0.1", srv.mport), timeout=10)
    cut_off = False
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            sock.sendall(b"a" * 65536)
    except (BrokenPipeError, ConnectionResetError):
        cut_off = True  # the server closed: what it had not read resets
    except socket.timeout:
        pass
    finally:
        sock.close()
    assert cut_off
    srv.wait_event("METRICS-BAD-REQUEST", after=mark, count=2, status="431")
    assert scrape(srv.mport).get("postern_sessions_open", protocol="http") == 1


def test_slow_request_times_out(mserver):
    srv = mserver(timeout="1")
    mark = srv.mark()
    t0 = time.monotonic()
    got, _, body = raw_request(srv.mport, b"GET /metrics HTTP/1.0\r\n")
    assert got == 408, body
    assert 0.9 <= time.monotonic() - t0 < 5
    srv.wait_event("METRICS-BAD-REQUEST", after=mark, status="408")


def test_check_refuses_tls_or_proxy_on_metrics(tmp_path):
    conf = tmp_path / "m.conf"
    conf.write_text("[server]\nhostname = mx.example.test\n[listen.m]\n"
                    "address = 127.0.0.1:%d\nrole = metrics\nrequire_tls = yes\n" % free_port())
    r = run_cli("check", "-c", str(conf))
    assert r.returncode == 78, r
    assert "listen.m: role metrics takes neither require_tls nor proxy_protocol" in r.stdout + r.stderr
