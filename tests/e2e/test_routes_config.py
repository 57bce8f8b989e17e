"""
test_routes_config.py - issue 8 points 3 to 7, their configuration:
[route.NAME] sections and the [outbound] options, through `postern
check` (errors with FILE:LINE, `--route DOMAIN` showing the route a
domain takes and its precedence), `postern config-doc`, and SIGHUP
(a broken route is refused and the old configuration kept; an auth
file's password never reaches the log or the output).
"""

import os
import re
import signal

from conftest import REPO, run_cli, Server

OUTBOUND_DEF = REPO / "src" / "config" / "options_outbound.def"

ROW = re.compile(r'^OPT\(\s*(\w+)\s*,\s*(\w+)\s*,\s*(\w+)\s*,\s*"([^"]*)"', re.M)

# the names the outbound engine reads (cfg->outbound_<key>), with their
# defaults as `postern config-doc` must show them
DEFAULTS = {
    "port": "25", "allow_loopback": "no", "helo_name": "", "bind_address": "",
    "bind_address6": "", "address_preference": "ipv6", "destination_concurrency": "20",
    "destination_key": "mx_domain", "recipient_limit": "50",
    "retry_schedule": "5m, 10m, 20m, 40m, 1h, 2h, 4h", "connection_cache_time": "30",
    "connection_reuse_limit": "100", "connect_timeout": "30", "greeting_timeout": "300",
    "helo_timeout": "300", "starttls_timeout": "300", "mail_timeout": "300",
    "rcpt_timeout": "300", "data_timeout": "120", "data_block_timeout": "180",
    "data_done_timeout": "600", "rset_timeout": "20", "quit_timeout": "30",
}

# a value other than the default for every option, seconds where a
# duration is asked (tests shorten them)
OTHER = {
    "port": "2525", "allow_loopback": "yes", "helo_name": "out.example.test",
    "bind_address": "127.0.0.1", "bind_address6": "::1", "address_preference": "any",
    "destination_concurrency": "3", "destination_key": "domain", "recipient_limit": "2",
    "retry_schedule": "1s, 2s 3", "connection_cache_time": "0",
    "connection_reuse_limit": "1", "connect_timeout": "2s", "greeting_timeout": "3",
    "helo_timeout": "3", "starttls_timeout": "3", "mail_timeout": "3", "rcpt_timeout": "3",
    "data_timeout": "3", "data_block_timeout": "3", "data_done_timeout": "3",
    "rset_timeout": "1", "quit_timeout": "1",
}


def outbound_rows():
    return [(m.group(2), m.group(3), m.group(4)) for m in ROW.finditer(OUTBOUND_DEF.read_text())]


def conf_text(srv, extra):
    return srv.config_text() + "\n" + extra


def check(srv, *args):
    return run_cli("check", "-c", str(srv.config), *args)


def assert_errors(r, path, want):
    """`postern check` failed with exactly these (line, message) errors."""
    assert r.returncode == 78
    for line, msg in want:
        assert "%s:%d: %s" % (path, line, msg) in r.stderr, (line, msg, r.stderr)
    assert len(r.stderr.strip().splitlines()) == len(want), r.stderr


def route_of(srv, domain, *args):
    r = check(srv, "--route", domain, *args)
    assert r.returncode == 0, r.stderr
    return dict(line.split(": ", 1) for line in r.stdout.splitlines() if ": " in line), r.stdout


def test_every_outbound_option_defined_documented_and_parsed(tmp_path):
    rows = outbound_rows()
    assert {k: d for k, _, d in rows} == DEFAULTS
    doc = run_cli("config-doc")
    assert doc.returncode == 0
    text = doc.stdout
    assert (REPO / "docs" / "configuration.md").read_text() == text
    # one [outbound] section holding every option, with its default
    assert text.count("\n## [outbound]\n") == 1
    section = text.split("\n## [outbound]\n", 1)[1].split("\n## ", 1)[0]
    for key, typ, default in rows:
        part = section.split("\n### outbound.%s\n" % key, 1)
        assert len(part) == 2, key
        table = part[1].split("\n### ", 1)[0]
        if default:
            assert "| default | `%s`" % default in table, key
        else:
            assert "| default | (empty) |" in table, key
    assert "| type | durations |" in section
    assert "| range | each 1 to 604800 (168h) |" in section
    # every option takes its default and another value, on -o and in the file
    srv = Server(tmp_path)
    for values in (DEFAULTS, OTHER):
        args = []
        for k, v in values.items():
            args += ["-o", "outbound.%s=%s" % (k, v)]
        r = check(srv, *args)
        assert r.returncode == 0, r.stderr
    body = "[outbound]\n" + "".join("%s = %s\n" % kv for kv in OTHER.items())
    srv.write_config(text=conf_text(srv, body))
    r = check(srv)
    assert r.returncode == 0, r.stderr
    # route.*: documented in the reference
    for key in ("domains", "via", "tls", "tls_ca_file", "auth_file", "rate"):
        assert "\n### route.NAME.%s\n" % key in text, key


def test_outbound_option_errors_have_their_line(tmp_path):
    srv = Server(tmp_path)
    base = srv.config_text()
    n = base.count("\n") + 2            # the line of "[outbound]"
    bad = ("[outbound]\nport = 0\nretry_schedule = 5m, later\naddress_preference = ipv5\n"
           "destination_key = mx\nbind_address = ::1\nconnect_timeout = 0\n"
           "retry_schedule = 1m\nallow_loopback = maybe\n")
    srv.write_config(text=base + "\n" + bad)
    r = check(srv)
    assert r.returncode == 78
    path = str(srv.config)
    want = [
        (n + 1, "outbound.port: 0 is out of range (1..65535)"),
        (n + 2, 'outbound.retry_schedule: "later" is not a duration'),
        (n + 3, 'outbound.address_preference: "ipv5" is not ipv6, ipv4 or any'),
        (n + 4, 'outbound.destination_key: "mx" is not domain or mx_domain'),
        (n + 5, 'outbound.bind_address: "::1" is not an IPv4 address'),
        (n + 6, "outbound.connect_timeout: 0 is out of range"),
        (n + 7, "duplicate option outbound.retry_schedule"),
        (n + 8, 'outbound.allow_loopback: "maybe" is not yes or no'),
    ]
    assert_errors(r, path, want)


def test_route_errors_have_their_line(tmp_path):
    srv = Server(tmp_path)
    base = srv.config_text()
    n = base.count("\n") + 1            # the line before the first added one
    (srv.dir / "open.auth").write_text("relay-user:s3cret-open\n")
    os.chmod(srv.dir / "open.auth", 0o644)
    body = "\n".join([
        "[route.a]",                                    # n+1
        "domains = partner.example, .partner.example",
        "via = [192.0.2.1]:2525, relay.example.net",
        "colour = blue",                                # n+4 unknown key
        "[route.b]",                                    # n+5
        "domains = partner.example",                    # n+6 claimed by a
        "via = 192.0.2.1",                              # n+7 bad via
        "tls = always",                                 # n+8 bad tls
        "[route.c]",                                    # n+9 no domains
        "via = [smart.example.net]:587",
        "[route.d]",                                    # n+11
        "domains = d.example",
        "via = [smart.example.net]:587",
        "auth_file = missing.auth",                     # n+14 no such file
        "[route.e]",                                    # n+15
        "domains = e.example",
        "via = [smart.example.net]",
        "auth_file = open.auth",                        # n+18 world-readable
        "[route.f]",                                    # n+19
        "domains = f.example",
        "auth_file = open.auth",                        # n+21 auth without hosts
        "[route.g]",                                    # n+22
        "domains = example.test",                       # n+23 a local domain
        "rate = fast",                                  # n+24
        "[route.h]",                                    # n+25
        "domains = h.example",
        "via = [h.example]:99999",                      # n+27
        "",
    ])
    srv.write_config(text=base + "\n" + body)
    r = check(srv)
    assert r.returncode == 78
    path = str(srv.config)
    want = [
        (n + 4, "unknown option route.a.colour"),
        (n + 6, "route.b.domains: partner.example is already in route.a (line %d)" % (n + 2)),
        (n + 7, 'route.b.via: "192.0.2.1": an address has no MX; write [192.0.2.1]'),
        (n + 8, 'route.b.tls: "always" is not none, may, encrypt or verify'),
        (n + 9, "route.c: missing domains"),
        (n + 14, "route.d.auth_file: cannot open %s/missing.auth" % srv.dir),
        (n + 18, "route.e.auth_file: %s/open.auth is open to other users (mode 0644)" % srv.dir),
        (n + 21, "route.f.auth_file: AUTH is for routes with via = hosts"),
        (n + 23, "route.g.domains: example.test is in local.domains"),
        (n + 24, 'route.g.rate: "fast" is not a number of messages per minute'),
        (n + 27, 'route.h.via: "[h.example]:99999": bad port'),
    ]
    assert_errors(r, path, want)
    assert "s3cret" not in r.stderr + r.stdout


def test_auth_file_permissions_and_secret_never_shown(tmp_path):
    srv = Server(tmp_path)
    auth = srv.dir / "smart.auth"
    auth.write_text("# the provider's account\nrelay-user@example.test:pa:ss w0rd\n")
    os.chmod(auth, 0o600)
    srv.write_config(text=conf_text(srv, "[route.smart]\ndomains = *\n"
                                         "via = [smart.example.net]:587\ntls = encrypt\n"
                                         "auth_file = smart.auth\n"))
    info, out = route_of(srv, "example.org")
    assert info["auth"] == "user relay-user@example.test (password from %s, not shown)" % auth
    assert "pa:ss" not in out
    os.chmod(auth, 0o640)               # group-readable is fine
    assert check(srv).returncode == 0
    for mode in (0o604, 0o606, 0o644):
        os.chmod(auth, mode)
        r = check(srv)
        assert r.returncode == 78, mode
        assert "is open to other users (mode %04o)" % mode in r.stderr, r.stderr
        assert "pa:ss" not in r.stderr
    # a malformed line is reported with the auth file's line, not its text
    auth.write_text("relay-user pa-ss-w0rd\n")
    os.chmod(auth, 0o600)
    r = check(srv)
    assert r.returncode == 78
    assert '%s:1: expected "user:password"' % auth in r.stderr, r.stderr
    assert "pa-ss-w0rd" not in r.stderr
    # tls = none would send the password in clear: refused
    srv.write_config(text=conf_text(srv, "[route.smart]\ndomains = *\n"
                                         "via = [smart.example.net]:587\ntls = none\n"
                                         "auth_file = smart.auth\n"))
    r = check(srv)
    assert r.returncode == 78 and "AUTH needs tls = may, encrypt or verify" in r.stderr


def test_route_precedence_and_via_forms(tmp_path):
    srv = Server(tmp_path)
    srv.write_config(text=conf_text(srv, "\n".join([
        "[route.smart]",
        "domains = *",
        "via = [smart.example.net]:587, smart2.example.net, [192.0.2.1], [IPv6:2001:db8::1]:2526",
        "rate = 30",
        "[route.org]",
        "domains = .org",
        "tls = verify",
        "[route.exact]",
        "domains = Example.ORG, .deep.example.org",
        "via = [127.0.0.1]:10025",
        "tls = none",
        "[route.sub]",
        "domains = .example.org",
        "via = refuse",
        "[outbound]",
        "port = 2500",
        ""])))
    cases = {
        "example.org": ("exact", "example.org"),
        "EXAMPLE.ORG.": ("exact", "example.org"),
        "a.example.org": ("sub", ".example.org"),
        "b.a.example.org": ("sub", ".example.org"),
        "x.deep.example.org": ("exact", ".deep.example.org"),
        "deep.example.org": ("sub", ".example.org"),
        "other.org": ("org", ".org"),
        "example.net": ("smart", "*"),
    }
    for domain, (name, entry) in cases.items():
        info, out = route_of(srv, domain)
        assert info["local"] == "no"
        assert info["route"] == "%s (matched %s)" % (name, entry), (domain, out)
    info, out = route_of(srv, "example.net")
    hosts = [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("host: ")]
    assert hosts == ["smart.example.net (its A/AAAA, no MX), port 587",
                     "MX of smart2.example.net, port 2500",
                     "address 192.0.2.1, port 2500",
                     "address 2001:db8::1, port 2526"], out
    assert info["via"] == "hosts" and info["tls"] == "may"
    assert info["rate"] == "30 messages per minute per destination"
    info, out = route_of(srv, "other.org")
    assert info["via"] == "mx" and info["host"] == "MX of other.org, port 2500"
    assert info["tls"] == "verify (CA: the system's store)" and info["rate"] == "no limit"
    info, out = route_of(srv, "a.example.org")
    assert info["via"] == "refuse" and "host" not in info
    info, out = route_of(srv, "example.org")
    assert info["host"] == "address 127.0.0.1, port 10025" and info["tls"] == "none"
    # a local domain never goes out, whatever the routes say
    info, out = route_of(srv, "example.test")
    assert info["local"].startswith("yes")
    assert "route" not in info
    # not a domain: a usage error
    r = check(srv, "--route", "not a domain")
    assert r.returncode == 64 and "not a domain name" in r.stderr


def test_no_route_means_mx_and_overrides_make_routes(tmp_path):
    srv = Server(tmp_path)
    info, out = route_of(srv, "example.net")
    assert info["route"] == "(default) (no route matches and none has domains = *)"
    assert info["via"] == "mx" and info["host"] == "MX of example.net, port 25"
    assert info["tls"] == "may" and info["auth"] == "none"
    # -o creates and completes a route, as for listeners
    info, out = route_of(srv, "example.net", "-o", "route.relay.domains=*",
                         "-o", "route.relay.via=[192.0.2.7]:2525", "-o", "route.relay.rate=5")
    assert info["route"] == "relay (matched *)" and info["host"] == "address 192.0.2.7, port 2525"
    r = check(srv, "-o", "route.relay.via=[192.0.2.7]:2525")
    assert r.returncode == 78 and "-o:1: route.relay: missing domains" in r.stderr, r.stderr
    r = check(srv, "-o", "route.a b.via=mx")
    assert r.returncode == 78 and 'bad route name "a b"' in r.stderr


def test_sighup_keeps_old_routes_on_error_and_never_logs_the_password(make_server):
    srv = make_server()
    auth = srv.dir / "smart.auth"
    auth.write_text("relay-user:hup-s3cret\n")
    os.chmod(auth, 0o600)
    good = conf_text(srv, "[route.smart]\ndomains = *\nvia = [smart.example.net]:587\n"
                          "auth_file = smart.auth\n")
    srv.write_config(text=good)
    mark = srv.mark()
    srv.signal(signal.SIGHUP)
    srv.wait_event("CONFIG-RELOADED", after=mark)
    # a broken route: refused with its line, the old configuration kept
    lines = good.count("\n") + 1
    srv.write_config(text=good + "[route.bad]\ndomains = x.example\nvia = mx, [h.example]\n")
    mark = srv.mark()
    srv.signal(signal.SIGHUP)
    srv.wait_event("CONFIG-RELOAD-FAILED", after=mark)
    inv = srv.wait_event("CONFIG-INVALID", after=mark)[0]
    assert inv.get("line") == str(lines + 2), inv
    assert srv.alive()
    srv.assert_serves()
    # the auth file made open to others: refused too
    srv.write_config(text=good)
    os.chmod(auth, 0o644)
    mark = srv.mark()
    srv.signal(signal.SIGHUP)
    srv.wait_event("CONFIG-RELOAD-FAILED", after=mark)
    assert srv.alive()
    assert "hup-s3cret" not in srv.log_text()
