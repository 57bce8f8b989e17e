"""
test_triage.py - pre-greeting triage (issue 9 point 7): smtp.greet_pause
holds the greeting for clients not known yet; an early talker, or a
client that pipelines behind HELO/EHLO before the reply, gets 554 5.5.1
and is closed; a client that passed is remembered and is greeted at once
next time. Clients outside server.trusted_networks bind to 127.0.0.x.
"""

import re
import signal
import time

import pytest


def ids_in(reply):
    return re.findall(r"\[([A-Z0-9-]+)\]\s*$", reply.last)


def assert_refused_and_closed(c, cond):
    """The next reply is 554 5.5.1 [cond], then the server closes."""
    r = c.reply()
    assert r.code == 554 and r.text.startswith("5.5.1"), r
    assert ids_in(r) == [cond], r
    assert c.closed()
    c.close()


def greeting_wait(srv, source):
    """Seconds from connect to the greeting, for a client that waits."""
    t0 = time.monotonic()
    with srv.raw(source=source) as c:
        assert c.greeting.code == 220, c.greeting
        return time.monotonic() - t0


def early_pipelined_session(srv, source):
    """A client that talks first and pipelines EHLO and MAIL: greeted at
    once and served; returns its SESSION-END."""
    mark = srv.mark()
    c = srv.raw(source=source, read_greeting=False)
    t0 = time.monotonic()
    c.send(b"EHLO client.example.org\r\nMAIL FROM:<a@example.org>\r\n")
    assert c.reply().code == 220
    assert time.monotonic() - t0 < 0.9
    assert c.reply().code == 250
    assert c.reply().code == 250
    assert c.cmd("QUIT").code == 221
    c.close()
    end = srv.wait_event("SESSION-END", after=mark)[0]
    assert "greet-pause" not in end.get("flags", ""), end
    return end


@pytest.fixture
def paused(make_server):
    return make_server(conf={"smtp": {"greet_pause": "1"}})


def test_early_talker_refused(paused):
    mark = paused.mark()
    c = paused.raw(source="127.0.0.2", read_greeting=False)
    c.send(b"EHLO client.example.org\r\n")
    assert_refused_and_closed(c, "SMTP-EARLY-TALKER")
    ev = paused.wait_event("SMTP-EARLY-TALKER", after=mark)[0]
    assert ev["client"] == "127.0.0.2" and ev["bytes"] == "25", ev
    assert int(ev["waited_ms"]) < 1000, ev
    end = paused.wait_event("SESSION-END", after=mark)[0]
    assert end["cause"] == "SMTP-EARLY-TALKER", end
    assert not paused.events("SMTP-TRIAGE-PASSED", after=mark)


@pytest.mark.parametrize("verb", ["EHLO", "HELO"])
def test_pipelining_before_helo_reply_refused(paused, verb):
    mark = paused.mark()
    c = paused.raw(source="127.0.0.3")
    assert c.greeting.code == 220
    c.send(("%s client.example.org\r\nMAIL FROM:<a@example.org>\r\n" % verb).encode())
    assert_refused_and_closed(c, "SMTP-PIPELINING-EARLY")
    ev = paused.wait_event("SMTP-PIPELINING-EARLY", after=mark)[0]
    assert ev["client"] == "127.0.0.3" and ev["cmd"] == verb, ev
    # refused clients are not remembered: the next one waits again
    assert greeting_wait(paused, "127.0.0.3") >= 0.9


def test_honest_client_pays_the_pause_once(paused):
    mark = paused.mark()
    t0 = time.monotonic()
    with paused.raw(source="127.0.0.4") as c:
        assert c.greeting.code == 220
        assert time.monotonic() - t0 >= 0.9
        assert c.cmd("EHLO client.example.org").code == 250
        ev = paused.wait_event("SMTP-TRIAGE-PASSED", after=mark)[0]
        assert ev["client"] == "127.0.0.4" and ev["ttl_s"] == "86400", ev
        # after the reply, pipelining is the client's right
        c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<alice@example.test>\r\n")
        assert c.reply().code == 250
        assert c.reply().code == 250
        assert c.cmd("QUIT").code == 221
    end = paused.wait_event("SESSION-END", after=mark)[0]
    assert "greet-pause" in end["flags"], end
    # remembered: greeted at once, and may talk early and pipeline
    early_pipelined_session(paused, "127.0.0.4")
    # another address is not
    assert greeting_wait(paused, "127.0.0.5") >= 0.9


def test_trusted_not_paused(paused):
    end = early_pipelined_session(paused, "127.0.0.1")
    assert "trusted" in end["flags"], end


def test_stop_during_pause(make_server):
    """SIGTERM while the greeting waits: 421, never a late 220."""
    srv = make_server(conf={"smtp": {"greet_pause": "30"},
                            "server": {"shutdown_grace": "0"}})
    mark = srv.mark()
    c = srv.raw(source="127.0.0.6", read_greeting=False)
    srv.wait_event("SESSION-START", after=mark, client="127.0.0.6")
    srv.signal(signal.SIGTERM)
    r = c.reply(timeout=10)
    assert r.code == 421 and ids_in(r) == ["SIGNAL-STOP-SESSIONS"], r
    assert c.closed()
    c.close()
    assert srv.wait_exit(timeout=15) == 0
    end = srv.wait_event("SESSION-END", after=mark)[0]
    assert end["cause"] == "SIGNAL-STOP-SESSIONS", end


def test_pass_cache_is_in_the_state_store(paused):
    """The pass cache lives in the shared state store (state.db here, a
    Redis shared by nodes otherwise): a client that passed is still
    greeted at once after a restart."""
    mark = paused.mark()
    with paused.raw(source="127.0.0.7") as c:
        assert c.greeting.code == 220
        assert c.cmd("EHLO client.example.org").code == 250
        paused.wait_event("SMTP-TRIAGE-PASSED", after=mark, client="127.0.0.7")
        assert c.cmd("QUIT").code == 221
    paused.restart()
    early_pipelined_session(paused, "127.0.0.7")
    assert greeting_wait(paused, "127.0.0.8") >= 0.9
