"""
test_commit_path.py - issue 7 point 3: the commit path makes a round of
messages durable with one syncfs (store/flush.c: callers that wait share
one), and the 250 still goes out only after it; a failure of write, syncfs
or rename at each step gives a 4xx, leaves nothing in the spool or the
mailbox, and the next message goes through.

The failures come from an LD_PRELOAD shim built here with cc: while a flag
file exists, the chosen call fails (write: only on spool files; syncfs,
rename: every call), as a full or failing disk would make them.
"""

import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from conftest import make_message, split_delivered

SHIM_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int armed(const char *op)
{
	const char *want = getenv("SHIM_OP"), *flag = getenv("SHIM_FLAG");

	return want != NULL && flag != NULL && strcmp(want, op) == 0 &&
	       access(flag, F_OK) == 0;
}

static int spool_file(int fd)
{
	char link[64], path[4096];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n <= 0)
		return 0;
	path[n] = '\0';
	return strstr(path, "/spool/incoming/") != NULL;
}

ssize_t write(int fd, const void *p, size_t n)
{
	static ssize_t (*real)(int, const void *, size_t);

	if (real == NULL)
		real = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
	if (armed("write") && spool_file(fd)) {
		errno = EIO;
		return -1;
	}
	return real(fd, p, n);
}

int syncfs(int fd)
{
	static int (*real)(int);

	if (real == NULL)
		real = (int (*)(int))dlsym(RTLD_NEXT, "syncfs");
	if (armed("syncfs")) {
		errno = EIO;
		return -1;
	}
	return real(fd);
}

int renameat2(int a, const char *b, int c, const char *d, unsigned f)
{
	static int (*real)(int, const char *, int, const char *, unsigned);

	if (real == NULL)
		real = (int (*)(int, const char *, int, const char *, unsigned))
			dlsym(RTLD_NEXT, "renameat2");
	if (armed("rename")) {
		errno = EIO;
		return -1;
	}
	return real(a, b, c, d, f);
}
"""


@pytest.fixture(scope="module")
def shim(tmp_path_factory):
    cc = shutil.which("cc")
    if cc is None:
        pytest.fail("cc is needed to build the LD_PRELOAD shim")
    d = tmp_path_factory.mktemp("shim")
    (d / "shim.c").write_text(SHIM_C)
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", str(d / "shim.so"),
                    str(d / "shim.c"), "-ldl"], check=True)
    return d / "shim.so"


def arm_shim(monkeypatch, shim, op, flag):
    """Runs the servers started from now on under the shim: op fails
    while the file flag exists."""
    monkeypatch.setenv("LD_PRELOAD", str(shim))
    monkeypatch.setenv("SHIM_OP", op)
    monkeypatch.setenv("SHIM_FLAG", str(flag))
    monkeypatch.setenv("ASAN_OPTIONS", "verify_asan_link_order=0:" +
                       os.environ.get("ASAN_OPTIONS", ""))


def ids_in(reply):
    return re.findall(r"\[([A-Z0-9-]+)\]\s*$", reply.text)


@pytest.mark.parametrize("op,event_op", [("write", "write"), ("syncfs", "syncfs"),
                                         ("rename", "rename")])
def test_failure_at_each_step_gives_4xx_and_leaves_nothing(make_server, shim, tmp_path,
                                                            monkeypatch, op, event_op):
    flag = tmp_path / "fail-now"
    monkeypatch.setenv("LD_PRELOAD", str(shim))
    monkeypatch.setenv("SHIM_OP", op)
    monkeypatch.setenv("SHIM_FLAG", str(flag))
    monkeypatch.setenv("ASAN_OPTIONS", "verify_asan_link_order=0:" +
                       os.environ.get("ASAN_OPTIONS", ""))
    srv = make_server(conf={"log": {"level": "info"}})
    # a first message goes through (and creates the mailbox)
    assert srv.send_mail()[0] == 250
    srv.wait_mail("alice")
    srv.wait_queue_empty()
    mark = srv.mark()
    flag.write_text("1")
    with srv.raw() as c:
        c.cmd("EHLO client.example.org")
        assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        r = c.cmd("DATA")
        if r.code == 354:
            body = b"".join(b"%05d %s\r\n" % (i, b"x" * 90) for i in range(700))
            c.send(make_message("failing", body=body) + b".\r\n")
            r = c.reply(timeout=20)
        assert 400 <= r.code < 500 and r.text.startswith("4.3."), r
        assert ids_in(r)[0] in ("QUEUE-WRITE-FAILED", "QUEUE-SPOOL-CREATE-FAILED"), r
        ev = srv.wait_event(ids_in(r)[0], after=mark)[0]
        assert ev.get("op", event_op) == event_op, ev
        # nothing of it anywhere
        assert srv.spool_files("incoming") == []
        assert srv.spool_files("queue") == []
        assert len(srv.maildir("alice")) == 1
        flag.unlink()
        # the session goes on: the next message is taken and delivered
        assert c.cmd("RSET").code == 250
        assert c.cmd("MAIL FROM:<sender@example.org>").code == 250
        assert c.cmd("RCPT TO:<alice@example.test>").code == 250
        assert c.cmd("DATA").code == 354
        ok = make_message("after-" + op)
        c.send(ok + b".\r\n")
        assert c.reply(timeout=20).code == 250
        c.cmd("QUIT")
    files = srv.wait_mail("alice", count=2)
    assert sorted(split_delivered(f.read_bytes())[3] == ok for f in files) == [False, True]
    srv.wait_queue_empty()
    assert srv.spool_files("incoming") == []
    assert srv.alive()


def test_delivery_flush_failure_keeps_the_message(make_server, shim, tmp_path, monkeypatch):
    """syncfs fails while delivering (the commit's own flush went well):
    the copy does not count, the message stays queued and is delivered
    once the disk is back, exactly once."""
    flag = tmp_path / "fail-now"
    monkeypatch.setenv("LD_PRELOAD", str(shim))
    monkeypatch.setenv("SHIM_OP", "syncfs")
    monkeypatch.setenv("SHIM_FLAG", str(flag))
    monkeypatch.setenv("ASAN_OPTIONS", "verify_asan_link_order=0:" +
                       os.environ.get("ASAN_OPTIONS", ""))
    srv = make_server(conf={"log": {"level": "info"}})
    box = srv.mail / "example.test"
    box.mkdir(parents=True)
    (box / "bob").write_text("blocks delivery\n")
    assert srv.send_mail(rcpts=["bob@example.test"])[0] == 250
    srv.wait_event("DELIVERY-DEFERRED")
    mark = srv.mark()
    flag.write_text("1")
    (box / "bob").unlink()
    ev = srv.wait_event("DELIVERY-LOCAL-WRITE-FAILED", after=mark, op="syncfs")[0]
    assert ev["errno"] == "EIO", ev
    assert len(srv.spool_files("queue")) == 1
    flag.unlink()
    srv.wait_queue_empty(timeout=30)
    assert len(srv.maildir("bob")) == 1


STRACE_LINE = re.compile(r"^(\d+)\s+(.*)$")


def test_250_is_written_after_the_flush(make_server):
    """strace: the message's rename into queue/ comes before a syncfs that
    started after it, and that syncfs ended before the 250 was written."""
    if shutil.which("strace") is None:
        pytest.fail("strace is needed")
    srv = make_server()
    out = srv.dir / "strace.txt"
    st = subprocess.Popen(["strace", "-f", "-qq", "-s", "120", "-o", str(out),
                           "-e", "trace=syncfs,fsync,fdatasync,renameat2,write,sendto,sendmsg",
                           "-p", str(srv.pid)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not out.exists():
            time.sleep(0.05)
        time.sleep(0.5)
        code, text = srv.send_mail()
        assert code == 250
        qid = text.decode().split()[-1]
        srv.wait_mail("alice")
        srv.wait_queue_empty()
    finally:
        st.send_signal(signal.SIGINT)
        st.wait(timeout=30)
    lines = out.read_text().splitlines()
    rename = next(i for i, l in enumerate(lines)
                  if "renameat2(" in l and qid in l and "= 0" in l)
    reply = next(i for i, l in enumerate(lines)
                 if "250 2.0.0" in l and qid in l)
    # a syncfs that started after the rename and ended before the reply
    started, ok = {}, False
    for i, l in enumerate(lines):
        m = STRACE_LINE.match(l)
        if not m:
            continue
        pid, call = m.group(1), m.group(2)
        if call.startswith("syncfs("):
            if "<unfinished" in call:
                started[pid] = i
            elif i > rename and i < reply and call.rstrip().endswith("= 0"):
                ok = True
        elif call.startswith("<... syncfs resumed>"):
            if started.get(pid, -1) > rename and i < reply and call.rstrip().endswith("= 0"):
                ok = True
    assert rename < reply, (rename, reply)
    assert ok, "no syncfs between the rename (line %d) and the 250 (line %d):\n%s" % (
        rename, reply, "\n".join(lines[rename:reply + 1])[-4000:])
