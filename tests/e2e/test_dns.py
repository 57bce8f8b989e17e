"""
test_dns.py - the DNS resolver (issue 8 point 2) through `postern dns`,
against a real NSD serving test zones and a dnslib server that drops,
refuses and fails: each record type with the TTLs served, MX in
preference order, long multi-string TXT joined, PTR from an address,
NXDOMAIN vs NODATA (permanent, exit 2) vs TEMPFAIL (exit 75), the forms
of dns.servers (and their errors at load), the failover to a second
server. The cache and the parser's bounds are unit-tested
(tests/unit/test_dns.c).
"""

import time

import pytest

from conftest import run_cli
from dnszone import (DnsServer, FailingDnsServer, a, aaaa, cname, ipv6_loopback_available,
                     mx, ptr, txt)

LONG_TXT = "v=spf1 " + " ".join(f"ip4:192.0.2.{i}" for i in range(60)) + " -all"

ZONES = {
    "example.test": [
        mx("@", 20, "mx2.example.test", ttl=300),
        mx("@", 10, "mx1.example.test", ttl=120),
        a("mx1", "127.0.0.1", ttl=300),
        a("mx1", "127.0.0.2", ttl=300),
        aaaa("mx1", "::1", ttl=200),
        txt("@", "v=spf1 ", "ip4:127.0.0.1 -all"),
        txt("long", LONG_TXT, ttl=90),
        cname("www", "mx1.example.test", ttl=30),
        mx("nullmx", 0, "."),
        txt("big", "b" * 4000, ttl=70),
        *[a("many", f"127.0.1.{i}") for i in range(1, 101)],
    ],
    "127.in-addr.arpa": [ptr("127.0.0.1", "mx1.example.test", ttl=500)],
    "ip6.arpa": [ptr("::1", "Six.Example.Test", ttl=400)],
}


@pytest.fixture(scope="module")
def dns(tmp_path_factory):
    with DnsServer(tmp_path_factory.mktemp("dns"), ZONES, neg_ttl=45) as d:
        yield d


@pytest.fixture(scope="module")
def failing(tmp_path_factory):
    rules = {"drop.test": "drop", "refused.test": "refused", "servfail.test": "servfail"}
    with FailingDnsServer(tmp_path_factory.mktemp("faildns"), rules) as d:
        yield d


def lookup(servers, qtype, name, *opts):
    args = ["dns", "-o", f"dns.servers={servers}"]
    for o in opts:
        args += ["-o", o]
    r = run_cli(*args, qtype, name, timeout=30)
    return r.returncode, r.stdout.splitlines(), r.stderr


def test_a_records_with_their_ttls(dns):
    rc, lines, _ = lookup(dns.servers, "a", "mx1.example.test")
    assert rc == 0
    assert lines[0] == "status=ok ttl=300"
    assert sorted(lines[1:]) == ["a 127.0.0.1 ttl=300", "a 127.0.0.2 ttl=300"]


def test_aaaa(dns):
    rc, lines, _ = lookup(dns.servers, "AAAA", "MX1.Example.Test.")
    assert (rc, lines) == (0, ["status=ok ttl=200", "aaaa ::1 ttl=200"])


def test_mx_in_preference_order_and_lowest_ttl(dns):
    rc, lines, _ = lookup(dns.servers, "mx", "example.test")
    assert (rc, lines) == (0, ["status=ok ttl=120", "mx 10 mx1.example.test ttl=120",
                               "mx 20 mx2.example.test ttl=300"])


def test_null_mx(dns):
    rc, lines, _ = lookup(dns.servers, "mx", "nullmx.example.test")
    assert (rc, lines) == (0, ["status=ok ttl=60", "mx 0 . ttl=60"])


def test_txt_strings_joined(dns):
    rc, lines, _ = lookup(dns.servers, "txt", "example.test")
    assert (rc, lines) == (0, ["status=ok ttl=60", 'txt "v=spf1 ip4:127.0.0.1 -all" ttl=60'])


def test_long_txt_over_several_strings(dns):
    assert len(LONG_TXT) > 600
    rc, lines, _ = lookup(dns.servers, "txt", "long.example.test")
    assert (rc, lines) == (0, ["status=ok ttl=90", f'txt "{LONG_TXT}" ttl=90'])


def test_ptr_from_an_address_and_a_name(dns):
    rc, lines, _ = lookup(dns.servers, "ptr", "127.0.0.1")
    assert (rc, lines) == (0, ["status=ok ttl=500", "ptr mx1.example.test ttl=500"])
    rc, lines2, _ = lookup(dns.servers, "ptr", "1.0.0.127.in-addr.arpa")
    assert (rc, lines2) == (0, lines)


def test_ptr_of_an_ipv6_address(dns):
    rc, lines, _ = lookup(dns.servers, "ptr", "::1")
    assert (rc, lines) == (0, ["status=ok ttl=400", "ptr six.example.test ttl=400"])


def test_answer_too_big_for_udp_comes_over_tcp(dns):
    """4000 bytes of TXT do not fit the EDNS UDP size: the server sets TC
    and c-ares asks again over TCP, on the same loop."""
    rc, lines, _ = lookup(dns.servers, "txt", "big.example.test")
    assert (rc, lines) == (0, ["status=ok ttl=70", 'txt "%s" ttl=70' % ("b" * 4000)])


def test_many_records(dns):
    """100 A records (over TCP): the first 64 are kept."""
    rc, lines, _ = lookup(dns.servers, "a", "many.example.test")
    assert rc == 0
    assert lines[0] == "status=ok ttl=60 truncated=1"
    assert len(lines) == 1 + 64
    assert all(l.startswith("a 127.0.1.") for l in lines[1:])


def test_cname_followed(dns):
    rc, lines, _ = lookup(dns.servers, "a", "www.example.test")
    assert rc == 0
    assert lines[0] == "status=ok ttl=30"
    assert sorted(lines[1:]) == ["a 127.0.0.1 ttl=300", "a 127.0.0.2 ttl=300"]


def test_nxdomain_and_nodata_are_permanent_with_the_negative_ttl(dns):
    rc, lines, _ = lookup(dns.servers, "a", "nope.example.test")
    assert (rc, lines) == (2, ["status=nxdomain ttl=45"])
    rc, lines, _ = lookup(dns.servers, "mx", "nope.invalid")	# the root zone
    assert (rc, lines) == (2, ["status=nxdomain ttl=45"])
    rc, lines, _ = lookup(dns.servers, "aaaa", "mx2.example.test")
    assert (rc, lines) == (2, ["status=nxdomain ttl=45"])
    rc, lines, _ = lookup(dns.servers, "txt", "mx1.example.test")
    assert (rc, lines) == (2, ["status=nodata ttl=45"])


def test_timeout_is_temporary(failing):
    t0 = time.monotonic()
    rc, lines, _ = lookup(failing.servers, "mx", "x.drop.test", "dns.timeout=1",
                          "dns.attempts=2")
    took = time.monotonic() - t0
    assert (rc, lines) == (75, ['status=tempfail ttl=0 err="timeout"'])
    assert failing.queries("x.drop.test") == 2     # one per attempt
    assert 2.5 < took < 8       # 1 s, then 2 s (each round doubles)


# c-ares 1.18 reports both (and a port nobody listens on) alike
FAILED = 'status=tempfail ttl=0 err="SERVFAIL, REFUSED or unreachable"'


def test_refused_and_servfail_are_temporary(failing):
    rc, lines, _ = lookup(failing.servers, "a", "x.refused.test", "dns.attempts=1")
    assert (rc, lines) == (75, [FAILED])
    assert failing.queries("x.refused.test") == 1
    rc, lines, _ = lookup(failing.servers, "txt", "servfail.test", "dns.attempts=2")
    assert (rc, lines) == (75, [FAILED])
    assert failing.queries("servfail.test") == 2


def test_nobody_listening_is_temporary(failing):
    # the failing server's port plus nothing: use a port nobody serves
    from dnszone import _free_port
    rc, lines, _ = lookup(f"127.0.0.1:{_free_port()}", "a", "x.test", "dns.timeout=1",
                          "dns.attempts=1")
    assert (rc, lines) == (75, [FAILED])


@pytest.mark.parametrize("how", ["refused", "servfail", "drop"])
def test_second_server_answers_when_the_first_fails(dns, tmp_path, how):
    with FailingDnsServer(tmp_path, {"example.test": how}) as bad:
        rc, lines, _ = lookup(f"{bad.servers}, {dns.servers}", "mx", "example.test",
                              "dns.attempts=1", "dns.timeout=1")
        assert rc == 0
        assert lines[1] == "mx 10 mx1.example.test ttl=120"
        assert bad.queries("example.test") == 1


def test_ipv6_server_form(tmp_path):
    if not ipv6_loopback_available():
        pytest.skip("::1 is not available on this machine")
    with DnsServer(tmp_path, {"example.test": [a("mx", "127.0.0.1", ttl=77)]},
                   ipv6=True) as d:
        rc, lines, _ = lookup(d.servers6, "a", "mx.example.test")
        assert (rc, lines) == (0, ["status=ok ttl=77", "a 127.0.0.1 ttl=77"])
        # a bare IPv6 address means port 53, where nobody answers here
        rc, lines, _ = lookup("::1", "a", "mx.example.test", "dns.timeout=1",
                              "dns.attempts=1")
        assert rc == 75


def test_server_forms_and_errors_at_load(dns, tmp_path):
    conf = tmp_path / "p.conf"
    conf.write_text("[listen.mx]\naddress = 127.0.0.1:2525\nrole = mx\n"
                    f"[dns]\nservers = 127.0.0.1:{dns.port}\ntimeout = 2s\nattempts = 1\n"
                    "cache_size = 0\n")
    r = run_cli("dns", "-c", str(conf), "mx", "example.test")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1] == "mx 10 mx1.example.test ttl=120"

    conf.write_text("[listen.mx]\naddress = 127.0.0.1:2525\nrole = mx\n"
                    "[dns]\nservers = 127.0.0.1, ns.example.test, 1.2.3.4:99999\n")
    r = run_cli("check", "-c", str(conf))
    assert r.returncode == 78
    assert f"{conf}:5: dns.servers: \"ns.example.test\" is not an IP address" in r.stderr
    assert f"{conf}:5: dns.servers: \"1.2.3.4:99999\" is not an IP address" in r.stderr


def test_usage_errors():
    assert run_cli("dns", "a").returncode == 64
    assert run_cli("dns", "srv", "example.test").returncode == 64


def test_invalid_name_is_permanent_without_a_query(failing):
    before = len(failing.queries())
    rc, lines, _ = lookup(failing.servers, "a", "bad..name")
    assert (rc, lines) == (2, ["status=nxdomain ttl=0"])
    assert len(failing.queries()) == before


def test_daemon_reload_changes_and_checks_dns_servers(make_server, dns):
    """One resolver per loop: the daemon starts with dns.*, a SIGHUP that
    changes them reaches every loop (and it still serves), a reload with
    a bad server is refused with the file's line."""
    import signal
    conf = {"server": {"loops": "3"}, "dns": {"servers": dns.servers, "timeout": "2"}}
    srv = make_server(conf=conf)
    mark = srv.mark()
    conf["dns"] = {"servers": f"{dns.servers}, [::1]:{dns.port}", "attempts": "3"}
    srv.write_config(conf)
    srv.signal(signal.SIGHUP)
    srv.wait_event("CONFIG-RELOADED", after=mark)
    srv.assert_serves()
    mark = srv.mark()
    conf["dns"] = {"servers": "ns.example.test"}
    srv.write_config(conf)
    srv.signal(signal.SIGHUP)
    ev = srv.wait_event("CONFIG-RELOAD-FAILED", after=mark)[0]
    assert ev["errors"] == "1"
    assert any('dns.servers: \\"ns.example.test\\" is not an IP address' in line
               or 'dns.servers: "ns.example.test" is not an IP address' in line
               for line in srv.log_lines()), srv.log_text()
    srv.assert_serves()


def test_failing_server_mixes_records_and_failures(tmp_path):
    """The module's mixed mode, as outbound tests use it: the MX answers,
    its host's AAAA times out, its A answers."""
    with FailingDnsServer(tmp_path, {"mx.mixed.test:AAAA": "drop"},
                          records=[mx("mixed.test.", 5, "mx.mixed.test", ttl=40),
                                   a("mx.mixed.test.", "127.0.0.3", ttl=30)]) as d:
        rc, lines, _ = lookup(d.servers, "mx", "mixed.test")
        assert (rc, lines) == (0, ["status=ok ttl=40", "mx 5 mx.mixed.test ttl=40"])
        rc, lines, _ = lookup(d.servers, "a", "mx.mixed.test")
        assert (rc, lines) == (0, ["status=ok ttl=30", "a 127.0.0.3 ttl=30"])
        rc, lines, _ = lookup(d.servers, "aaaa", "mx.mixed.test", "dns.timeout=1",
                              "dns.attempts=1")
        assert (rc, lines) == (75, ['status=tempfail ttl=0 err="timeout"'])
        rc, lines, _ = lookup(d.servers, "txt", "mixed.test")
        assert (rc, lines) == (2, ["status=nodata ttl=0"])
        assert d.queries("mx.mixed.test") == 2
