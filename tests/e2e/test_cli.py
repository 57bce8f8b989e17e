"""
test_cli.py - the command line: check, explain, catalog, version, passwd,
and serve's -o and loops (issue 2 points 2, 7 and 10).
"""

import re
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest

from conftest import BIN, REPO, Server, run_cli, parse_logfmt

CATALOG_DEF = REPO / "src" / "catalog" / "catalog.def"


def catalog_def_ids():
    """Every COND row of catalog.def and of the .def files it includes."""
    ids = []
    files = [CATALOG_DEF]
    while files:
        text = files.pop(0).read_text()
        ids += [m.group(1).replace("_", "-")
                for m in re.finditer(r"^COND\(\s*([A-Z0-9_]+)\s*,", text, re.M)]
        files += [CATALOG_DEF.parent / m.group(1)
                  for m in re.finditer(r'^#include "([a-z0-9_]+\.def)"', text, re.M)]
    return ids


def test_version():
    r = run_cli("version")
    assert r.returncode == 0, r.stderr
    assert re.search(r"\d+\.\d+\.\d+", r.stdout), r.stdout


def test_check_good_config(tmp_path):
    srv = Server(tmp_path)
    r = run_cli("check", "-c", str(srv.config))
    assert r.returncode == 0, r.stderr
    # the shipped default configuration checks too, once its certificate
    # exists (`make run` writes it first): its submission, submissions and
    # pop3s listeners need TLS (issue 7 point 7)
    shipped = REPO / "etc" / "postern.conf"
    etc = tmp_path / "shipped" / "etc"
    etc.mkdir(parents=True)
    shutil.copy(shipped, etc / "postern.conf")
    shutil.copy(REPO / "etc" / "accounts", etc / "accounts")
    r = run_cli("check", "-c", str(etc / "postern.conf"))
    assert r.returncode == 78, r
    assert "listeners needing TLS (submission,submissions,pop3s)" in r.stderr, r.stderr
    assert r.stderr.rstrip().endswith("[STARTUP-LISTENER-NEEDS-TLS]"), r.stderr
    assert run_cli("make-cert", "-c", str(etc / "postern.conf")).returncode == 0
    r = run_cli("check", "-c", str(etc / "postern.conf"))
    assert r.returncode == 0, r.stderr


def _bad_config(tmp_path):
    srv = Server(tmp_path)
    lines = srv.config_text().splitlines()
    # append a section with three bad lines; remember their numbers
    lines += ["[limits]",
              "recipients = many",          # not a number
              "no_such_option = 1",         # unknown key
              "message_size = 1",           # below the minimum (1024)
              "[server]",
              "this line has no equals sign"]
    text = "\n".join(lines) + "\n"
    srv.config.write_text(text)
    nums = [i + 1 for i, l in enumerate(lines)
            if l in ("recipients = many", "no_such_option = 1",
                     "message_size = 1", "this line has no equals sign")]
    return srv, nums


def test_check_bad_config_lists_every_error(tmp_path):
    srv, nums = _bad_config(tmp_path)
    r = run_cli("check", "-c", str(srv.config))
    assert r.returncode == 78, (r.returncode, r.stderr)
    err = r.stderr
    for n in nums:
        assert re.search(r"(^|\n)[^\n]*postern\.conf:%d: \S" % n, err), \
            "no FILE:%d: line in:\n%s" % (n, err)
    for line in err.strip().splitlines():
        assert re.match(r"^[^:]+:\d+: .+", line), "not FILE:LINE: message: %r" % line


def test_check_override_errors(tmp_path):
    srv = Server(tmp_path)
    r = run_cli("check", "-c", str(srv.config), "-o", "limits.recipients=abc",
                "-o", "nosuch.key=1")
    assert r.returncode == 78, (r.returncode, r.stderr)
    assert "-o:1:" in r.stderr, r.stderr
    assert "-o:2:" in r.stderr, r.stderr
    # a good override passes
    r = run_cli("check", "-c", str(srv.config), "-o", "limits.recipients=5")
    assert r.returncode == 0, r.stderr


def test_check_missing_file(tmp_path):
    r = run_cli("check", "-c", str(tmp_path / "nope.conf"))
    assert r.returncode != 0
    assert r.stderr.strip()


def test_serve_bad_config_exits_78(tmp_path):
    srv, nums = _bad_config(tmp_path)
    p = subprocess.run([BIN, "serve", "-c", str(srv.config)], capture_output=True,
                       text=True, timeout=20)
    assert p.returncode == 78, (p.returncode, p.stderr)
    # each error is named with its line, as a CONFIG-INVALID event or as
    # the FILE:LINE: line that check prints (the log is not open yet)
    for n in nums:
        assert re.search(r"postern\.conf:%d\b" % n, p.stderr), (n, p.stderr)


def test_explain_case_insensitive():
    a = run_cli("explain", "RCPT-UNKNOWN-USER")
    b = run_cli("explain", "rcpt-unknown-user")
    assert a.returncode == 0 and b.returncode == 0, (a.stderr, b.stderr)
    assert a.stdout == b.stdout
    assert "RCPT-UNKNOWN-USER" in a.stdout
    assert "550" in a.stdout and "5.1.1" in a.stdout
    assert "User unknown" in a.stdout


def test_explain_unknown_id():
    r = run_cli("explain", "NO-SUCH-CONDITION")
    assert r.returncode == 1


def test_explain_every_id():
    for cid in catalog_def_ids():
        r = run_cli("explain", cid.lower())
        assert r.returncode == 0, (cid, r.stderr)
        assert cid in r.stdout, cid


def test_catalog_equals_docs_events_md():
    r = run_cli("catalog")
    assert r.returncode == 0, r.stderr
    doc = REPO / "docs" / "events.md"
    assert doc.exists(), "docs/events.md is missing"
    assert r.stdout == doc.read_text(), \
        "docs/events.md differs from `postern catalog` output; regenerate it"
    for cid in catalog_def_ids():
        assert cid in r.stdout, cid


def test_catalog_ids_lists_every_row():
    r = run_cli("catalog", "--ids")
    assert r.returncode == 0, r.stderr
    got = {}
    for line in r.stdout.splitlines():
        assert "\t" in line, repr(line)
        cid, _, reason = line.partition("\t")
        got[cid] = reason
    assert sorted(got) == sorted(catalog_def_ids())
    # the ones with a reason say something
    text = CATALOG_DEF.read_text()
    assert got["INTERNAL-ERROR"], "INTERNAL-ERROR should carry an untested reason"
    assert got["RCPT-UNKNOWN-USER"] == ""


def test_passwd():
    r = run_cli("passwd", stdin="s3cret-pw\n")
    assert r.returncode == 0, r.stderr
    line = r.stdout.strip()
    assert line.startswith("{CRYPT}$y$"), line
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import crypt
    h = line[len("{CRYPT}"):]
    assert crypt.crypt("s3cret-pw", h) == h
    assert crypt.crypt("other", h) != h


def test_unknown_subcommand():
    r = run_cli("no-such-subcommand")
    assert r.returncode != 0


def test_serve_loops_two_listeners(make_server):
    srv = make_server(opts=["server.loops=2"])
    ready = srv.wait_event("NET-LISTEN-READY", count=2)
    assert len(ready) == 2, ready
    assert {e.get("loop") for e in ready} != {None}
    srv.assert_serves()
    sr = srv.events("STARTUP-READY")[-1]
    assert sr.get("pid") == str(srv.pid)
    assert sr.get("loops") == "2"


def test_serve_override_applies(make_server):
    """-o overrides the file: a recipients limit of 1 given with -o."""
    srv = make_server(opts=["limits.recipients=1"])
    with srv.smtp() as s:
        s.ehlo("client.example.org")
        assert s.mail("a@example.org")[0] == 250
        assert s.rcpt("alice@example.test")[0] == 250
        code, msg = s.rcpt("bob@example.test")
        assert code == 452, (code, msg)


def test_serve_listen_failed(make_server, tmp_path):
    import socket
    hold = socket.socket()
    hold.bind(("127.0.0.1", 0))
    hold.listen(1)
    try:
        srv = make_server(start=False, opts=["listen.mx.address=127.0.0.1:%d"
                                             % hold.getsockname()[1]])
        srv.start(wait=False)
        rc = srv.wait_exit(timeout=15)
        assert rc is not None and rc != 0, rc
        assert srv.events("NET-LISTEN-FAILED"), srv.log_text()
    finally:
        hold.close()


def test_serve_missing_accounts_file(make_server):
    srv = make_server(start=False, conf={"local": {"accounts": "no-such-accounts"}})
    srv.start(wait=False)
    rc = srv.wait_exit(timeout=15)
    assert rc is not None and rc != 0, rc
    assert (srv.events("CONFIG-MAP-OPEN-FAILED")
            or re.search(r"no-such-accounts\b.*(cannot open|No such file)", srv.log_text())), \
        srv.log_text()


def test_serve_spool_init_failed(make_server):
    srv = make_server(start=False)
    srv.spool.write_text("not a folder\n")
    srv.start(wait=False)
    rc = srv.wait_exit(timeout=15)
    assert rc == 1, (rc, srv.log_text())
    assert srv.events("STARTUP-INIT-FAILED"), srv.log_text()


def test_startup_version_line(server):
    v = server.events("STARTUP-VERSION")
    assert v and v[0].get("version"), server.log_text()
