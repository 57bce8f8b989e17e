"""
test_policy.py - the policy chain as data (issue 7 point 4): the [policy]
lists decide which checks run at each stage, in which order; a bad list is
a configuration error with its line; a recipient no check routes is
refused with RCPT-NOT-ROUTED; taking a check out of a list really turns it
off, and putting it back in another order changes which refusal comes
first.
"""

import re
import signal

from conftest import RawClient, free_port, run_cli


def ids_in(text):
    return re.findall(r"\[([A-Z0-9-]+)\]\s*$", text)


def test_default_chain_reproduces_builtin_behaviour(make_server):
    srv = make_server()
    # relay from outside the trusted networks: the relay check
    with srv.raw(source="127.0.0.2") as c:
        c.cmd("EHLO client.example.org")
        assert c.cmd("MAIL FROM:<someone@example.org>").code == 250
        r = c.cmd("RCPT TO:<x@elsewhere.example>")
        assert r.code == 550 and ids_in(r.text) == ["ACCESS-RELAY-DENIED"], r
        r = c.cmd("RCPT TO:<nobody@example.test>")
        assert r.code == 550 and ids_in(r.text) == ["RCPT-UNKNOWN-USER"], r
    assert srv.send_mail()[0] == 250
    srv.wait_mail("alice")


def test_unknown_check_is_a_config_error_with_its_line(tmp_path):
    conf = tmp_path / "p.conf"
    conf.write_text("[listen.mx]\naddress = 127.0.0.1:2525\nrole = mx\n"
                    "[policy]\nrcpt = limits, recipient, no_such_check\n"
                    "connect = quota\n")
    r = run_cli("check", "-c", str(conf))
    assert r.returncode == 78, r
    lines = r.stderr.strip().splitlines()
    assert "%s:5: policy.rcpt: unknown check: no_such_check" % conf in lines, r.stderr
    assert ("%s:6: policy.connect: check has nothing to say at this stage: quota" % conf
            in lines), r.stderr


def test_bad_list_on_reload_keeps_the_running_chain(make_server):
    srv = make_server()
    mark = srv.mark()
    srv.write_config(conf={"policy": {"rcpt": "limits, relay, nonsense"}})
    srv.signal(signal.SIGHUP)
    srv.wait_event("CONFIG-RELOAD-FAILED", after=mark)
    inv = srv.wait_event("CONFIG-INVALID", after=mark)
    assert any(i.get("err", "").endswith("policy.rcpt: unknown check: nonsense") for i in inv), inv
    # the running chain still routes local mail
    assert srv.send_mail()[0] == 250
    srv.wait_mail("alice")


def test_recipient_no_check_routes_is_refused(make_server):
    srv = make_server(opts=["policy.rcpt=limits,quota"])
    mark = srv.mark()
    with srv.raw() as c:
        c.cmd("EHLO client.example.org")
        assert c.cmd("MAIL FROM:<someone@example.org>").code == 250
        r = c.cmd("RCPT TO:<alice@example.test>")
        assert r.code == 451 and r.text.startswith("4.3.5"), r
        assert ids_in(r.text) == ["RCPT-NOT-ROUTED"], r
    ev = srv.wait_event("RCPT-NOT-ROUTED", after=mark)[0]
    assert ev["rcpt"] == "<alice@example.test>" and ev["sev"] == "error", ev
    rc = srv.wait_event("SESSION-RCPT", after=mark)[0]
    assert rc["cause"] == "RCPT-NOT-ROUTED", rc


def test_check_taken_out_is_off(make_server):
    # without antispoof in policy.mail a local sender from outside passes
    srv = make_server(opts=["policy.mail=tls_required,auth_required,size,sender_login"])
    with srv.raw(source="127.0.0.2") as c:
        c.cmd("EHLO client.example.org")
        assert c.cmd("MAIL FROM:<alice@example.test>").code == 250
    srv2 = make_server()
    with srv2.raw(source="127.0.0.2") as c:
        c.cmd("EHLO client.example.org")
        r = c.cmd("MAIL FROM:<alice@example.test>")
        assert r.code == 530 and ids_in(r.text) == ["ACCESS-SPOOF-LOCAL-SENDER"], r


def test_order_decides_which_refusal_comes_first(make_server):
    # SIZE= too big and a spoofed sender: the first check in the list wins
    line = "MAIL FROM:<alice@example.test> SIZE=999999999999"
    for order, want in (("size,antispoof", "CONTENT-SIZE-EXCEEDED"),
                        ("antispoof,size", "ACCESS-SPOOF-LOCAL-SENDER")):
        srv = make_server(opts=["policy.mail=%s" % order])
        mark = srv.mark()
        with srv.raw(source="127.0.0.2") as c:
            c.cmd("EHLO client.example.org")
            r = c.cmd(line)
            assert ids_in(r.text) == [want], (order, r)
        ev = srv.wait_event("SESSION-MAIL", after=mark)[0]
        assert ev["cause"] == want, ev


def test_listener_list_overrides_its_stage_only(make_server):
    # two mx listeners: "mx" keeps [policy]; "open" drops antispoof
    srv = make_server(start=False)
    open_port = free_port()
    srv.config.write_text(srv.config.read_text() + (
        "\n[listen.open]\naddress = 127.0.0.1:%d\nrole = mx\n"
        "policy_mail = tls_required, auth_required, size, sender_login\n" % open_port))
    srv.start()
    for port, want in ((srv.port, 530), (open_port, 250)):
        with RawClient(port, source="127.0.0.2") as c:
            c.cmd("EHLO client.example.org")
            r = c.cmd("MAIL FROM:<alice@example.test>")
            assert r.code == want, (port, r)
            if want == 530:
                assert ids_in(r.text) == ["ACCESS-SPOOF-LOCAL-SENDER"], r


def test_listener_list_errors_carry_their_line(tmp_path):
    conf = tmp_path / "p.conf"
    conf.write_text("[listen.mx]\naddress = 127.0.0.1:2525\nrole = mx\n"
                    "policy_rcpt = limits, bogus\n")
    r = run_cli("check", "-c", str(conf))
    assert r.returncode == 78, r
    assert "%s:4: listen.mx.policy_rcpt: unknown check: bogus" % conf in r.stderr, r.stderr
