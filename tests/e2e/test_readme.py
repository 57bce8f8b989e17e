"""
test_readme.py - the README's own examples work as written (issue 7
point 7): the ```sh blocks after "In another terminal" are run, command by
command, against Postern on the default configuration etc/postern.conf.
Only the port numbers are rewritten (to free ports); the configuration
and the accounts file are copied into a temporary tree laid out like the
repository (etc/ beside var/), so the commands' relative paths (var/mail/
...) are the README's own. `make run` itself (the first block) is replaced
by what it runs: `postern make-cert` and `postern serve` on that file.

Each command must exit 0; after each swaks the mail must be in the
recipient's Maildir, and the POP3 example must print the maildrop's STAT.
"""

import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import REPO, free_port, run_cli

README = REPO / "README.md"
CONF = REPO / "etc" / "postern.conf"
ACCOUNTS = REPO / "etc" / "accounts"


def sh_blocks(text):
    return re.findall(r"^```sh\n(.*?)^```", text, re.M | re.S)


def commands(block):
    """Lines of a block, continuation lines joined, comments dropped."""
    out, cur = [], ""
    for line in block.splitlines():
        cur += line
        if cur.endswith("\\"):
            cur = cur[:-1] + " "
            continue
        cur = re.sub(r"\s+#.*$", "", cur).strip()
        if cur and not cur.startswith("#"):
            out.append(cur)
        cur = ""
    return out


def default_ports(conf_text):
    return [int(p) for p in re.findall(r"^address\s*=\s*127\.0\.0\.1:(\d+)\s*$", conf_text, re.M)]


def rewrite_ports(text, ports):
    for old, new in ports.items():
        text = re.sub(r"(?<!\d)%d(?!\d)" % old, str(new), text)
    return text


def wait_files(folder, count, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if folder.is_dir() and len(list(folder.iterdir())) >= count:
            return
        time.sleep(0.05)
    raise AssertionError("%s: fewer than %d files after %.0fs" % (folder, count, timeout))


def test_first_block_is_make_run_and_make_test():
    first = commands(sh_blocks(README.read_text())[0])
    assert first == ["make run", "make test"], first


def test_readme_examples_on_the_default_configuration(make_server):
    readme = README.read_text()
    blocks = sh_blocks(readme)
    start = readme.index("In another terminal")
    examples = [b for b in blocks if readme.index(b) > start]
    assert examples, "no ```sh block after 'In another terminal'"
    conf_text = CONF.read_text()
    ports = {p: free_port() for p in default_ports(conf_text)}
    assert {2525, 2587, 2465, 2110, 2995} <= set(ports), ports

    srv = make_server(start=False, name="readme")
    tree = srv.dir                      # plays the repository's root
    (tree / "etc").mkdir()
    srv.config = tree / "etc" / "postern.conf"
    srv.config.write_text(rewrite_ports(conf_text, ports))
    shutil.copy(ACCOUNTS, tree / "etc" / "accounts")
    # what `make run` runs after building
    r = run_cli("make-cert", "-c", str(srv.config))
    assert r.returncode == 0 and "self-signed" in r.stdout, r
    srv.start()
    ready = srv.wait_event("STARTUP-READY")[0]
    assert ready["listeners"] == str(len(ports)), ready

    mail = tree / "var" / "mail" / "example.test"
    seen = {}
    env = dict(os.environ, LC_ALL="C")
    for block in examples:
        for cmd in commands(block):
            run = rewrite_ports(cmd, ports)
            p = subprocess.run(run, shell=True, cwd=str(tree), env=env, capture_output=True,
                               timeout=60, stdin=subprocess.DEVNULL)
            out = p.stdout.decode("utf-8", "replace")
            err = p.stderr.decode("utf-8", "replace")
            assert p.returncode == 0, (run, out[-3000:], err[-3000:])
            if cmd.startswith("swaks"):
                to = re.search(r"--to\s+(\S+)@example\.test", cmd).group(1)
                seen[to] = seen.get(to, 0) + 1
                assert "<~  250 2.0.0" in out or "<~  250 " in out or "<-  250 " in out, out
                wait_files(mail / to / "new", seen[to])
            if "poplib" in cmd:
                m = re.search(r"\((\d+), (\d+)\)", out)
                user = re.search(r'p\.user\("([^@"]+)@', cmd).group(1)
                assert m and int(m.group(1)) == seen.get(user, 0) >= 1, (out, seen)
            if cmd.startswith("ls "):
                assert out.split(), "ls printed nothing: %r" % out
    # the submission example went through TLS and AUTH, as the README says
    assert srv.events("AUTH-OK", user="alice@example.test", tls="yes")
    assert not srv.events("AUTH-ENCRYPTION-REQUIRED")
    assert srv.events("POP3-LOGIN", user="bob@example.test")
