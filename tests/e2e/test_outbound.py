"""
test_outbound.py - outbound delivery end to end (issue 8): a message for a
remote domain is routed through a real DNS server (NSD on loopback) to
real peers on loopback addresses: Postfix's smtp-sink and ScriptPeer
(smtppeer.py), which answers as each test says. Each test waits for the
events that prove what happened.
"""

import email
import time

import pytest

from conftest import make_message
from dnszone import DnsServer, FailingDnsServer, a, aaaa, mx, ipv6_loopback_available
from smtppeer import ScriptPeer, SmtpSink, free_port, wait_until

REMOTE = "remote.test"


def unstuff(data):
    """DATA as received (dot-stuffed, CRLF) -> the message's bytes."""
    lines = data.split(b"\r\n")
    return b"\r\n".join(l[1:] if l.startswith(b".") else l for l in lines)


def out_conf(dns, port, **extra):
    conf = {
        "dns": {"servers": dns.servers, "timeout": "1", "attempts": "1"},
        "outbound": {"port": str(port), "allow_loopback": "yes",
                     "retry_schedule": "1", "connection_cache_time": "2"},
    }
    for k, v in extra.items():
        sec, key = k.split("__")
        conf.setdefault(sec, {})[key] = v
    return conf


def raw_send(srv, mail, rcpt, data, chunk=None):
    """One message over a raw session, with the MAIL and RCPT lines as
    given (parameters and all); data is sent in pieces of chunk octets."""
    with srv.raw(timeout=60) as c:
        c.cmd("EHLO client.example.org")
        assert c.cmd(mail).code == 250
        assert c.cmd(rcpt).code == 250
        assert c.cmd("DATA").code == 354
        step = chunk or len(data) or 1
        for off in range(0, len(data), step):
            c.send(data[off:off + step])
        c.send(b".\r\n")
        r = c.reply(timeout=60)
        assert r.code == 250, r
        c.cmd("QUIT")


def zone_remote(*recs):
    return {REMOTE: list(recs) or [mx("@", 10, "mx1.remote.test"), a("mx1", "127.0.0.1")]}


def test_mx_delivery_reaches_smtp_sink_byte_for_byte(tmp_path, make_server):
    with SmtpSink(tmp_path) as sink, DnsServer(tmp_path, zones=zone_remote()) as dns:
        srv = make_server(conf=out_conf(dns, sink.port))
        body = make_message(token="mx-sink", subject="to the sink")
        code, _ = srv.send_mail(rcpts=("bob@remote.test",), data=body)
        assert code == 250
        ev = srv.wait_event("DELIVERY-REMOTE-SENT", timeout=20)[0]
        assert ev["rcpt"] == "<bob@remote.test>"
        assert ev["relay"] == "mx1.remote.test[127.0.0.1]:%d" % sink.port
        assert ev["dsn"].startswith("2.")
        assert ev["status"] == "sent"
        assert len(ev["delays"].split("/")) == 3
        srv.wait_queue_empty()
        (env, got), = sink.wait_count(1)
        assert "<bob@remote.test>" in env["rcpts"][0]
        # our Received field first, then the message exactly as sent
        got = got.replace(b"\r\n", b"\n")
        sent = body.replace(b"\r\n", b"\n")
        assert got.startswith(b"Received: from ")
        assert got.endswith(sent.rstrip(b"\n") + b"\n") or got.rstrip(b"\n").endswith(sent.rstrip(b"\n"))


def test_recipients_grouped_per_domain_and_connection_reused(tmp_path, make_server):
    zones = {REMOTE: [mx("@", 10, "mx1.remote.test"), a("mx1", "127.0.0.1")],
             "other.test": [mx("@", 10, "mx1.remote.test.")]}
    with ScriptPeer() as peer, DnsServer(tmp_path, zones=zones) as dns:
        srv = make_server(conf=out_conf(dns, peer.port, outbound__destination_key="mx_domain",
                                        outbound__destination_concurrency="1"))
        code, _ = srv.send_mail(rcpts=("a1@remote.test", "a2@remote.test", "b1@other.test"))
        assert code == 250
        srv.wait_event("DELIVERY-REMOTE-SENT", count=3, timeout=20)
        txns = peer.wait_transactions(2)
        by = sorted(sorted(t.rcpts) for t in txns)
        assert by == [["a1@remote.test", "a2@remote.test"], ["b1@other.test"]]
        # one destination (both domains' MX host is in remote.test), one
        # connection at a time: the second transaction reused the first's
        assert peer.connections == 1
        srv.wait_queue_empty()


def test_rcpt_5xx_fails_that_recipient_only(tmp_path, make_server):
    def rr(addr, n):
        return "550 5.1.1 no such user here" if addr.startswith("nobody") else None
    with ScriptPeer(rcpt_reply=rr) as peer, DnsServer(tmp_path, zones=zone_remote()) as dns:
        srv = make_server(conf=out_conf(dns, peer.port))
        srv.send_mail(rcpts=("ok@remote.test", "nobody@remote.test"))
        rej = srv.wait_event("DELIVERY-REMOTE-REJECTED", timeout=20)[0]
        assert rej["rcpt"] == "<nobody@remote.test>"
        assert rej["dsn"] == "5.1.1"
        assert "550 5.1.1 no such user here" in rej["reply"]
        sent = srv.wait_event("DELIVERY-REMOTE-SENT", timeout=20)[0]
        assert sent["rcpt"] == "<ok@remote.test>"
        (t,) = peer.wait_transactions(1)
        assert t.accepted == ["ok@remote.test"]
        srv.wait_queue_empty()


def test_4xx_defers_then_delivers_on_retry(tmp_path, make_server):
    seen = []

    def rr(addr, n):
        seen.append(addr)
        return "451 4.7.1 greylisted, come back later" if len(seen) == 1 else None
    with ScriptPeer(rcpt_reply=rr) as peer, DnsServer(tmp_path, zones=zone_remote()) as dns:
        srv = make_server(conf=out_conf(dns, peer.port))
        srv.send_mail(rcpts=("grey@remote.test",))
        d = srv.wait_event("DELIVERY-DEFERRED", timeout=20)[0]
        assert d["dsn"] == "4.7.1" and d["status"] == "deferred"
        assert d["retry_s"] == "1"
        # a 4xx to RCPT backs off nothing: the retry comes on schedule
        srv.wait_event("DELIVERY-REMOTE-SENT", timeout=20)
        assert not srv.events("DELIVERY-DESTINATION-BACKOFF")
        peer.wait_transactions(1)
        srv.wait_queue_empty()


def test_mx_preference_and_failover_to_next_host(tmp_path, make_server):
    port = free_port("127.0.0.3")
    zones = {REMOTE: [mx("@", 10, "mx1.remote.test"), mx("@", 20, "mx2.remote.test"),
                      a("mx1", "127.0.0.2"), a("mx2", "127.0.0.3")]}
    with ScriptPeer(host="127.0.0.3", port=port) as peer, \
            DnsServer(tmp_path, zones=zones) as dns:
        srv = make_server(conf=out_conf(dns, port))
        srv.send_mail(rcpts=("x@remote.test",))
        ev = srv.wait_event("DELIVERY-REMOTE-SENT", timeout=20)[0]
        # mx1 (127.0.0.2) refuses the connection; mx2 takes it
        assert ev["relay"] == "mx2.remote.test[127.0.0.3]:%d" % port
        cf = srv.wait_event("DELIVERY-CONNECT-FAILED")[0]
        assert cf["host"] == "mx1.remote.test" and cf["errno"] == "ECONNREFUSED", cf
        peer.wait_transactions(1)


def test_greeting_5xx_moves_on_to_next_mx(tmp_path, make_server):
    port = free_port("127.0.0.4")
    zones = {REMOTE: [mx("@", 10, "mx1.remote.test"), mx("@", 20, "mx2.remote.test"),
                      a("mx1", "127.0.0.4"), a("mx2", "127.0.0.5")]}
    with ScriptPeer(host="127.0.0.4", port=port, greeting="554 5.3.2 not now") as bad, \
            ScriptPeer(host="127.0.0.5", port=port) as good, \
            DnsServer(tmp_path, zones=zones) as dns:
        srv = make_server(conf=out_conf(dns, port))
        srv.send_mail(rcpts=("x@remote.test",))
        ev = srv.wait_event("DELIVERY-REMOTE-SENT", timeout=20)[0]
        assert ev["relay"].startswith("mx2.remote.test[127.0.0.5]")
        good.wait_transactions(1)
        assert bad.connections >= 1


def test_implicit_mx_from_address_record(tmp_path, make_server):
    with ScriptPeer() as peer, DnsServer(tmp_path, zones={REMOTE: [a("@", "127.0.0.1")]}) as dns:
        srv = make_server(conf=out_conf(dns, peer.port))
        srv.send_mail(rcpts=("x@remote.test",))
        ev = srv.wait_event("DELIVERY-REMOTE-SENT", timeout=20)[0]
        assert ev["relay"] == "remote.test[127.0.0.1]:%d" % peer.port


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no ::1 here")
def test_ipv6_mx_host(tmp_path, make_server):
    port = free_port("::1")
    with ScriptPeer(host="::1", port=port) as peer, \
            DnsServer(tmp_path, zones={REMOTE: [mx("@", 10, "mx6.remote.test"), aaaa("mx6", "::1")]}) as dns:
        srv = make_server(conf=out_conf(dns, port))
        srv.send_mail(rcpts=("x@remote.test",))
        ev = srv.wait_event("DELIVERY-REMOTE-SENT", timeout=20)[0]
        assert ev["relay"] == "mx6.remote.test[::1]:%d" % port
        peer.wait_transactions(1)


def test_null_mx_bounces_at_once(tmp_path, make_server):
    with DnsServer(tmp_path, zones={REMOTE: [mx("@", 0, ".")]}) as dns:
        srv = make_server(conf=out_conf(dns, free_port()))
        srv.send_mail(rcpts=("x@remote.test",))
        ev = srv.wait_event("DELIVERY-DNS-NULL-MX", timeout=20)[0]
        assert ev["domain"] == REMOTE and ev["status"] == "5.1.10"
        rej = srv.wait_event("DELIVERY-REMOTE-REJECTED", timeout=20)[0]
        assert rej["dsn"] == "5.1.10" and rej["status"] == "bounced"
        srv.wait_queue_empty()


def test_nonexistent_domain_bounces(tmp_path, make_server):
    with DnsServer(tmp_path, zones={"other.test": [a("@", "127.0.0.1")]}) as dns:
        srv = make_server(conf=out_conf(dns, free_port()))
        srv.send_mail(rcpts=("x@nowhere.test",))
        ev = srv.wait_event("DELIVERY-DNS-NXDOMAIN", timeout=20)[0]
        assert ev["domain"] == "nowhere.test" and ev["status"] == "5.1.2"
        srv.wait_queue_empty()


def test_dns_timeout_defers_never_bounces(tmp_path, make_server):
    with FailingDnsServer(tmp_path, rules={REMOTE: "drop"}) as bad:
        srv = make_server(conf=out_conf(bad, free_port()))
        srv.send_mail(rcpts=("x@remote.test",))
        ev = srv.wait_event("DELIVERY-DNS-TEMPFAIL", timeout=20)[0]
        assert ev["status"] == "4.4.3"
        d = srv.wait_event("DELIVERY-DEFERRED", timeout=20)[0]
        assert d["dsn"] == "4.4.3" and d["cause"] == "DELIVERY-DNS-TEMPFAIL"
        assert not srv.events("DELIVERY-REMOTE-REJECTED")
        assert srv.spool_files("queue")


def test_loopback_mx_refused_without_allow_loopback(tmp_path, make_server):
    with DnsServer(tmp_path, zones=zone_remote()) as dns:
        srv = make_server(conf=out_conf(dns, free_port(), outbound__allow_loopback="no"))
        srv.send_mail(rcpts=("x@remote.test",))
        ev = srv.wait_event("DELIVERY-MX-UNUSABLE", timeout=20)[0]
        assert ev["status"] == "4.4.4"
        srv.wait_event("DELIVERY-DEFERRED", timeout=20)


def test_mx_pointing_at_ourselves_is_a_loop(tmp_path, make_server):
    # the MX host's address and port are our own listener's
    with DnsServer(tmp_path, zones=zone_remote()) as dns:
        srv = make_server(start=False)
        srv.conf = out_conf(dns, srv.port)
        srv.write_config()
        srv.start()
        srv.send_mail(rcpts=("x@remote.test",))
        rej = srv.wait_event("DELIVERY-REMOTE-REJECTED", timeout=20)[0]
        assert rej["dsn"] == "5.3.5"
        srv.wait_queue_empty()
        # never delivered to ourselves: no second message came in
        assert len(srv.events("SESSION-END")) == 1


def test_mx_named_as_our_hostname_is_a_loop(tmp_path, make_server):
    from conftest import HOSTNAME
    zones = {REMOTE: [mx("@", 10, HOSTNAME + ".")],
             "example.test": [a("mx", "127.0.0.9")]}
    with DnsServer(tmp_path, zones=zones) as dns:
        srv = make_server(conf=out_conf(dns, free_port()))
        srv.send_mail(rcpts=("x@remote.test",))
        rej = srv.wait_event("DELIVERY-REMOTE-REJECTED", timeout=20)[0]
        assert rej["dsn"] == "5.3.5"


def test_peer_greeting_with_our_name_is_a_loop(tmp_path, make_server):
    from conftest import HOSTNAME
    with ScriptPeer(name=HOSTNAME) as peer, DnsServer(tmp_path, zones=zone_remote()) as dns:
        srv = make_server(conf=out_conf(dns, peer.port))
        srv.send_mail(rcpts=("x@remote.test",))
        rej = srv.wait_event("DELIVERY-REMOTE-REJECTED", timeout=20)[0]
        assert rej["dsn"] == "5.3.5"
        assert not peer.all_transactions


def test_smart_host_route_without_dns(tmp_path, make_server):
    with SmtpSink(tmp_path) as sink:
        srv = make_server(conf={
            "route.smarthost": {"domains": "*", "via": "[127.0.0.1]:%d" % sink.port},
            "dns": {"servers": "127.0.0.1:%d" % free_port(), "timeout": "1", "attempts": "1"},
        })
        srv.send_mail(rcpts=("x@anywhere.test", "y@elsewhere.test"))
        evs = srv.wait_event("DELIVERY-REMOTE-SENT", count=2, timeout=20)
        assert {e["relay"] for e in evs} == {"127.0.0.1[127.0.0.1]:%d" % sink.port}
        # one route, one destination: both recipients in one transaction
        (env, _), = sink.wait_count(1)
        assert len(env["rcpts"]) == 2


def test_refuse_route_bounces(tmp_path, make_server):
    srv = make_server(conf={"route.nowhere": {"domains": ".blocked.test, blocked.test",
                                              "via": "refuse"}})
    srv.send_mail(frm="alice@example.test", rcpts=("x@blocked.test",))
    ev = srv.wait_event("DELIVERY-ROUTE-REFUSED", timeout=20)[0]
    assert ev["status"] == "5.7.1"
    rej = srv.wait_event("DELIVERY-REMOTE-REJECTED", timeout=20)[0]
    assert rej["dsn"] == "5.7.1"
    assert b"Status: 5.7.1" in srv.wait_mail("alice")[0].read_bytes()
    srv.wait_queue_empty()


def test_421_backs_off_the_destination(tmp_path, make_server):
    with ScriptPeer(replies={"MAIL": "421 4.7.0 too many messages, slow down"}) as peer, \
            DnsServer(tmp_path, zones=zone_remote()) as dns:
        srv = make_server(conf=out_conf(dns, peer.port, outbound__retry_schedule="1h"))
        srv.send_mail(rcpts=("x@remote.test",))
        b = srv.wait_event("DELIVERY-DESTINATION-BACKOFF", timeout=20)[0]
        assert b["destination"] == REMOTE and b["seconds"] == "3600"
        srv.wait_event("DELIVERY-DEFERRED", timeout=20)
        # a second message to the same destination is deferred at once,
        # without a new connection
        conns = peer.connections
        mark = srv.mark()
        srv.send_mail(rcpts=("y@remote.test",))
        d = srv.wait_event("DELIVERY-DEFERRED", after=mark, timeout=20)[0]
        assert d["cause"] == "DELIVERY-DESTINATION-BACKOFF"
        assert peer.connections == conns


def test_452_too_many_recipients_sends_the_rest_at_once(tmp_path, make_server):
    def rr(addr, n):
        return "452 4.5.3 too many recipients" if n >= 2 else None
    with ScriptPeer(rcpt_reply=rr) as peer, DnsServer(tmp_path, zones=zone_remote()) as dns:
        srv = make_server(conf=out_conf(dns, peer.port, outbound__retry_schedule="1h"))
        rcpts = ["r%d@remote.test" % i for i in range(5)]
        srv.send_mail(rcpts=rcpts)
        srv.wait_event("DELIVERY-REMOTE-SENT", count=5, timeout=20)
        txns = peer.wait_transactions(3)
        assert sorted(sum((t.accepted for t in txns), [])) == sorted(rcpts)
        assert [len(t.accepted) for t in txns] == [2, 2, 1]
        assert not srv.events("DELIVERY-DEFERRED")


def test_recipient_limit_splits_transactions(tmp_path, make_server):
    with ScriptPeer() as peer, DnsServer(tmp_path, zones=zone_remote()) as dns:
        srv = make_server(conf=out_conf(dns, peer.port, outbound__recipient_limit="2"))
        rcpts = ["r%d@remote.test" % i for i in range(5)]
        srv.send_mail(rcpts=rcpts)
        srv.wait_event("DELIVERY-REMOTE-SENT", count=5, timeout=20)
        txns = peer.wait_transactions(3)
        assert [len(t.rcpts) for t in txns] == [2, 2, 1]
        assert peer.connections == 1


def test_end_of_data_goes_with_the_last_block(tmp_path, make_server):
    with ScriptPeer(ext=("ENHANCEDSTATUSCODES",)) as peer, \
            DnsServer(tmp_path, zones=zone_remote()) as dns:
        srv = make_server(conf=out_conf(dns, peer.port))
        srv.send_mail(rcpts=("x@remote.test",), data=make_message(body=b"short body\r\n"))
        peer.wait_transactions(1)
        # the read that carried the end of data also carried the body's end
        last = [r for n, r in peer.reads if b"\r\n.\r\n" in r]
        assert last and b"short body\r\n.\r\n" in last[0]


def test_50mib_message_to_a_remote_domain_streams_with_bounded_memory(tmp_path, make_server):
    import hashlib
    from conftest import proc_status_kib
    from test_streaming import MIB, asan_build, body_of
    with SmtpSink(tmp_path) as sink, DnsServer(tmp_path, zones=zone_remote()) as dns:
        conf = out_conf(dns, sink.port)
        conf["limits"] = {"message_size": str(64 * MIB)}
        conf["log"] = {"level": "info"}
        srv = make_server(conf=conf)
        # warm the path (a first message out), then measure the big one
        srv.send_mail(rcpts=("warm@remote.test",))
        sink.wait_count(1)
        srv.wait_queue_empty()
        base = proc_status_kib(srv.pid, "VmRSS")
        data = make_message("big-out", body=body_of(50 * MIB))
        raw_send(srv, "MAIL FROM:<sender@example.org>", "RCPT TO:<big@remote.test>", data,
                 chunk=MIB)
        srv.wait_event("DELIVERY-REMOTE-SENT", rcpt="<big@remote.test>", timeout=120)
        srv.wait_queue_empty(timeout=60)
        rise = proc_status_kib(srv.pid, "VmHWM") - base
        msgs = sink.wait_count(2)
        big = [m for env, m in msgs if b"big-out" in m[:4096]]
        assert len(big) == 1
        # the sink's copy is our Received field, then the data as sent
        got = big[0].replace(b"\r\n", b"\n").rstrip(b"\n")
        sent = data.replace(b"\r\n", b"\n").rstrip(b"\n")
        assert got.startswith(b"Received: ")
        assert hashlib.sha256(got[len(got) - len(sent):]).hexdigest() == \
            hashlib.sha256(sent).hexdigest()
        print("outbound 50 MiB: peak RSS rise %d KiB" % rise)
        if not asan_build():    # ASan's quarantine says nothing of ours
            assert rise <= 2 * 1024, "peak RSS rose by %d KiB" % rise


def test_sigkill_during_outbound_run_loses_nothing(tmp_path, make_server):
    n = 40
    with SmtpSink(tmp_path) as sink, DnsServer(tmp_path, zones=zone_remote()) as dns:
        srv = make_server(conf=out_conf(dns, sink.port))
        for i in range(n):
            code, _ = srv.send_mail(rcpts=("k%d@remote.test" % i,),
                                    data=make_message(token="kill-%d" % i))
            assert code == 250
            if i == n // 2:
                srv.wait_event("DELIVERY-REMOTE-SENT", timeout=20)
        srv.kill9()
        srv.start()
        srv.wait_queue_empty(timeout=60)
        # at least once: every accepted message reached the sink
        blobs = [m for env, m in sink.messages()]
        missing = [i for i in range(n)
                   if not any(b"kill-%d\n" % i in b or b"kill-%d\r" % i in b
                              or b"kill-%d " % i in b for b in blobs)]
        assert not missing, missing


def test_550_comes_back_to_the_local_sender_as_a_dsn(tmp_path, make_server):
    import email
    from email import policy

    def rr(addr, n):
        return "550 5.1.1 <%s>: no such user here" % addr
    with ScriptPeer(rcpt_reply=rr) as peer, DnsServer(tmp_path, zones=zone_remote()) as dns:
        srv = make_server(conf=out_conf(dns, peer.port))
        srv.send_mail(frm="alice@example.test", rcpts=("gone@remote.test",),
                      data=make_message(token="will-bounce"))
        f = srv.wait_mail("alice")[0]
        msg = email.message_from_bytes(f.read_bytes(), policy=policy.default)
        assert msg.get_content_type() == "multipart/report"
        assert msg.get_param("report-type") == "delivery-status"
        parts = list(msg.iter_parts())
        text = parts[0].get_content()
        assert "gone@remote.test" in text and "DELIVERY-REMOTE-REJECTED" in text
        status = parts[1]
        assert status.get_content_type() == "message/delivery-status"
        fields = {}
        for block in status.get_payload():
            for k, v in block.items():
                fields.setdefault(k.lower(), []).append(str(v))
        assert fields["final-recipient"] == ["rfc822; gone@remote.test"] or \
            fields["final-recipient"][0].replace(" ", "") == "rfc822;gone@remote.test"
        assert fields["action"] == ["failed"]
        assert fields["status"] == ["5.1.1"]
        assert "mx1.remote.test" in fields["remote-mta"][0]
        assert "550 5.1.1" in fields["diagnostic-code"][0]
        assert b"will-bounce" in f.read_bytes()
        srv.wait_queue_empty()


def test_mx_that_never_answers_bounces_after_the_queue_lifetime(tmp_path, make_server):
    with ScriptPeer(stall=("CONNECT",)) as peer, DnsServer(tmp_path, zones=zone_remote()) as dns:
        srv = make_server(conf=out_conf(dns, peer.port, outbound__greeting_timeout="1",
                                        outbound__max_queue_lifetime="4"))
        srv.send_mail(frm="alice@example.test", rcpts=("x@remote.test",))
        t = srv.wait_event("DELIVERY-TIMEOUT", timeout=20)[0]
        assert t["stage"] == "greeting"
        srv.wait_event("DELIVERY-DEFERRED", timeout=20)
        srv.wait_event("DELIVERY-EXPIRED", timeout=30)
        f = srv.wait_mail("alice", timeout=30)[0]
        assert b"Action: failed" in f.read_bytes()
        srv.wait_queue_empty()


def test_endless_greeting_is_cut_at_its_bound_and_the_queue_goes_on(tmp_path, make_server):
    zones = {REMOTE: [mx("@", 10, "mx1.remote.test"), a("mx1", "127.0.0.6")],
             "fine.test": [mx("@", 10, "mx.fine.test"), a("mx", "127.0.0.7")]}
    port = free_port("127.0.0.6")
    with ScriptPeer(host="127.0.0.6", port=port) as bad, \
            ScriptPeer(host="127.0.0.7", port=port) as good, \
            DnsServer(tmp_path, zones=zones) as dns:
        bad.endless = "greeting"
        srv = make_server(conf=out_conf(dns, port))
        srv.send_mail(rcpts=("x@remote.test",))
        ev = srv.wait_event("DELIVERY-PROTOCOL-ERROR", timeout=20)[0]
        assert ev["stage"] == "greeting"
        srv.wait_event("DELIVERY-DEFERRED", rcpt="<x@remote.test>", timeout=20)
        srv.send_mail(rcpts=("y@fine.test",))
        srv.wait_event("DELIVERY-REMOTE-SENT", rcpt="<y@fine.test>", timeout=20)
        good.wait_transactions(1)


def test_smtputf8_message_to_a_peer_without_it_bounces_5_6_7(tmp_path, make_server):
    with ScriptPeer() as peer, DnsServer(tmp_path, zones=zone_remote()) as dns:
        srv = make_server(conf=out_conf(dns, peer.port))
        raw_send(srv, "MAIL FROM:<j\u00f6rg@example.org> SMTPUTF8", "RCPT TO:<x@remote.test>",
                 make_message("utf8"))
        rej = srv.wait_event("DELIVERY-REMOTE-REJECTED", timeout=20)[0]
        assert rej["dsn"] == "5.6.7"
        assert not peer.all_transactions


def test_peer_size_limit_fails_the_message_without_sending_it(tmp_path, make_server):
    with ScriptPeer(ext=("SIZE 100", "ENHANCEDSTATUSCODES")) as peer, \
            DnsServer(tmp_path, zones=zone_remote()) as dns:
        srv = make_server(conf=out_conf(dns, peer.port))
        srv.send_mail(rcpts=("x@remote.test",))
        rej = srv.wait_event("DELIVERY-REMOTE-REJECTED", timeout=20)[0]
        assert rej["dsn"] == "5.3.4"
        assert not any(l.upper().startswith("MAIL") for n, l in peer.commands)


def test_dsn_parameters_go_to_a_peer_that_offers_dsn(tmp_path, make_server):
    with ScriptPeer(ext=("PIPELINING", "DSN", "8BITMIME", "ENHANCEDSTATUSCODES")) as peer, \
            DnsServer(tmp_path, zones=zone_remote()) as dns:
        srv = make_server(conf=out_conf(dns, peer.port))
        raw_send(srv, "MAIL FROM:<s@example.org> RET=HDRS ENVID=env+2B42",
                 "RCPT TO:<x@remote.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;orig@remote.test",
                 make_message("dsn"))
        (t,) = peer.wait_transactions(1)
        assert "RET=HDRS" in t.mail_params and "ENVID=env+2B42" in t.mail_params
        assert "NOTIFY=SUCCESS,FAILURE" in t.rcpt_params[0]
        assert "ORCPT=rfc822;orig@remote.test" in t.rcpt_params[0]
        srv.wait_event("DELIVERY-REMOTE-SENT", timeout=20)


def test_dsn_parameters_withheld_from_a_peer_without_dsn(tmp_path, make_server):
    with ScriptPeer() as peer, DnsServer(tmp_path, zones=zone_remote()) as dns:
        srv = make_server(conf=out_conf(dns, peer.port))
        raw_send(srv, "MAIL FROM:<s@example.org> RET=HDRS ENVID=e1",
                 "RCPT TO:<x@remote.test> NOTIFY=FAILURE", make_message("nodsn"))
        (t,) = peer.wait_transactions(1)
        assert "RET=" not in t.mail_params and "NOTIFY" not in t.rcpt_params[0]


def test_chunking_peer_gets_bdat(tmp_path, make_server):
    with ScriptPeer(ext=("PIPELINING", "CHUNKING", "8BITMIME", "ENHANCEDSTATUSCODES")) as peer, \
            DnsServer(tmp_path, zones=zone_remote()) as dns:
        srv = make_server(conf=out_conf(dns, peer.port))
        body = make_message("bdat", body=b".leading dot\r\nline\r\n")
        srv.send_mail(rcpts=("x@remote.test",), data=body)
        (t,) = peer.wait_transactions(1)
        assert t.bdat
        # BDAT carries the data as it is: no dot-stuffing
        assert t.data.endswith(body)
        srv.wait_event("DELIVERY-REMOTE-SENT", timeout=20)


def test_dot_stuffing_is_byte_exact(tmp_path, make_server):
    with ScriptPeer() as peer, DnsServer(tmp_path, zones=zone_remote()) as dns:
        srv = make_server(conf=out_conf(dns, peer.port))
        body = make_message("dots", body=b".one\r\n..two\r\n.\r\nend\r\n")
        srv.send_mail(rcpts=("x@remote.test",), data=body)
        (t,) = peer.wait_transactions(1)
        assert unstuff(t.data).endswith(body)


def test_one_provider_is_one_destination_by_registered_domain(tmp_path, make_server):
    zones = {"first.test": [mx("@", 10, "mx1.provider.co.uk")],
             "second.test": [mx("@", 10, "mx2.provider.co.uk")],
             "provider.co.uk": [a("mx1", "127.0.0.1"), a("mx2", "127.0.0.1")]}
    with ScriptPeer(replies={"MAIL": "421 4.7.0 slow down"}) as peer, \
            DnsServer(tmp_path, zones=zones) as dns:
        srv = make_server(conf=out_conf(dns, peer.port, outbound__retry_schedule="1h"))
        srv.send_mail(rcpts=("x@first.test",))
        b = srv.wait_event("DELIVERY-DESTINATION-BACKOFF", timeout=20)[0]
        assert b["destination"] == "provider.co.uk"
        conns = peer.connections
        mark = srv.mark()
        srv.send_mail(rcpts=("y@second.test",))
        d = srv.wait_event("DELIVERY-DEFERRED", after=mark, timeout=20)[0]
        assert d["cause"] == "DELIVERY-DESTINATION-BACKOFF"
        assert peer.connections == conns


def test_route_rate_spaces_the_messages(tmp_path, make_server):
    with ScriptPeer() as peer:
        srv = make_server(conf={"route.slow": {"domains": "slow.test",
                                               "via": "[127.0.0.1]:%d" % peer.port,
                                               "rate": "60"}})
        for i in range(3):
            srv.send_mail(rcpts=("r%d@slow.test" % i,))
        evs = srv.wait_event("DELIVERY-REMOTE-SENT", count=3, timeout=30)
        peer.wait_transactions(3)
        # 60 a minute: each start at least a second after the one before
        from datetime import datetime
        ts = sorted(datetime.strptime(e["ts"], "%Y-%m-%dT%H:%M:%S.%fZ") for e in evs)
        assert (ts[2] - ts[0]).total_seconds() >= 1.8


def test_bind_address_sets_our_source(tmp_path, make_server):
    with ScriptPeer() as peer, DnsServer(tmp_path, zones=zone_remote()) as dns:
        srv = make_server(conf=out_conf(dns, peer.port, outbound__bind_address="127.0.0.9"))
        srv.send_mail(rcpts=("x@remote.test",))
        peer.wait_transactions(1)
        assert peer.clients == ["127.0.0.9"]


def test_retry_schedule_survives_a_restart(tmp_path, make_server):
    seen = []

    def rr(addr, n):
        seen.append(addr)
        return "451 4.3.0 try later" if addr.startswith("first") else None
    with ScriptPeer(rcpt_reply=rr) as peer, DnsServer(tmp_path, zones=zone_remote()) as dns:
        srv = make_server(conf=out_conf(dns, peer.port, outbound__retry_schedule="1h"))
        srv.send_mail(rcpts=("first@remote.test",))
        d = srv.wait_event("DELIVERY-DEFERRED", timeout=20)[0]
        assert d["retry_s"] == "3600"
        srv.stop()
        srv.start()
        srv.wait_event("QUEUE-RECOVERED", count=2)
        # a message sent after the restart goes at once; the first one
        # waits for its hour: the peer saw it once only
        srv.send_mail(rcpts=("second@remote.test",))
        srv.wait_event("DELIVERY-REMOTE-SENT", rcpt="<second@remote.test>", timeout=20)
        assert seen.count("first@remote.test") == 1
        assert srv.spool_files("queue")
