#!/usr/bin/python3
"""bench/syscalls.py - system calls, context switches and sync calls per message.

Starts Postern (POSTERN_BIN, default build/postern) in a temporary folder
with the configuration bench/run-bench.sh uses (local domain example.test,
accounts a@ and b@, a Maildir under the folder, log.level notice,
connections_per_ip off), sends one warm-up message, then for each session
count runs Postfix's smtp-source (one message per connection, 5 KiB) with a
bounded number of messages and, until every message is in new/ and the
queue is empty, counts on the daemon:

  - system calls by type, with `perf trace -s -p PID` (tracepoints: low
    overhead, the batch sizes stay those of an untraced run); strace only
    with --strace (it slows the daemon enough to change the batches);
  - context switches summed over every thread, voluntary + nonvoluntary,
    from /proc/PID/task/*/status before and after;
  - sync calls (fsync, fdatasync, syncfs, sync_file_range, sync, msync);
  - thread hand-offs: calls of loop_post (a post to a loop thread: worker
    completions, in batches) and workpool_submit_after (a job for a
    worker), counted with uprobes (`perf probe -x BIN`, removed at the end;
    --no-handoffs skips them). Each is a hand-off at most: a post to the
    calling thread's own loop counts too.

It prints a Markdown table per session count (calls per message by type,
EAGAIN returns beside them) and a summary. Counts, not times: they mean the
same on a machine shared with other work.

    bench/syscalls.py [--sessions 1,10,50] [--messages 1:300,10:1000,50:2000]
                      [--size 5120] [--port 2531] [--keep]

Needs root for perf (or kernel.perf_event_paranoid <= 1) and smtp-source
(Debian's postfix package; it does not need to run).
"""
import argparse
import crypt
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("POSTERN_BIN", os.path.join(HERE, "..", "build", "postern"))
SYNC_CALLS = ("fsync", "fdatasync", "syncfs", "sync_file_range", "sync", "msync")
ROW = re.compile(r"^\s+([a-z_0-9]+)\s+(\d+)\s+(\d+)\s+[\d.]+")


def die(msg):
    sys.stderr.write("syscalls.py: %s\n" % msg)
    sys.exit(1)


def write_conf(work, port):
    h = crypt.crypt("bench", crypt.mksalt(crypt.METHOD_SHA512))
    with open(os.path.join(work, "accounts"), "w") as f:
        f.write("a@example.test:{SHA512-CRYPT}%s\nb@example.test:{SHA512-CRYPT}%s\n" % (h, h))
    conf = os.path.join(work, "bench.conf")
    with open(conf, "w") as f:
        f.write("""# written by bench/syscalls.py (as bench/run-bench.sh's bench.conf)
[server]
hostname = bench.example.test
spool = spool
state = state
mail_root = mail
shutdown_grace = 2

[listen.mx]
address = 127.0.0.1:%d
role = mx

[local]
domains = example.test
accounts = accounts

[limits]
connections_per_ip = 0

[log]
level = notice
""" % port)
    return conf


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def delivered(work):
    return len(glob.glob(os.path.join(work, "mail", "**", "new", "*"), recursive=True))


def queued(work):
    q = os.path.join(work, "spool", "queue")
    n = 0
    for _root, _dirs, files in os.walk(q):
        n += len(files)
    return n


def ctx_switches(pid):
    total, threads = 0, 0
    for st in glob.glob("/proc/%d/task/*/status" % pid):
        try:
            with open(st) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except OSError:
            continue
        threads += 1
    return total, threads


def wait_for(cond, timeout, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


def parse_perf(path):
    """Sums perf trace -s's per-thread tables: {syscall: [calls, errors]}."""
    calls = {}
    with open(path, errors="replace") as f:
        for line in f:
            m = ROW.match(line)
            if not m:
                continue
            c = calls.setdefault(m.group(1), [0, 0])
            c[0] += int(m.group(2))
            c[1] += int(m.group(3))
    return calls


def parse_strace(path):
    calls = {}
    with open(path, errors="replace") as f:
        for line in f:
            parts = line.split()
            # % time  seconds  usecs/call  calls  [errors]  syscall
            if len(parts) >= 5 and re.match(r"^[\d.]+$", parts[0]) and parts[-1] != "total":
                try:
                    n = int(parts[3])
                    err = int(parts[4]) if len(parts) == 6 else 0
                except ValueError:
                    continue
                c = calls.setdefault(parts[-1], [0, 0])
                c[0] += n
                c[1] += err
    return calls


HANDOFF_FUNCS = ("loop_post", "workpool_submit_after")


def probes_add(group):
    for f in HANDOFF_FUNCS:
        r = subprocess.run(["perf", "probe", "-q", "-x", os.path.realpath(BIN), "-a",
                            "%s:%s=%s" % (group, f, f)], capture_output=True, text=True)
        if r.returncode != 0:
            sys.stderr.write("perf probe %s: %s (hand-offs not counted)\n" % (f, r.stderr.strip()))
            probes_del(group)
            return False
    return True


def probes_del(group):
    subprocess.run(["perf", "probe", "-q", "-d", "%s:*" % group], capture_output=True)


def parse_stat(path):
    counts = {}
    with open(path, errors="replace") as f:
        for line in f:
            parts = line.replace(",", "").split()
            if len(parts) >= 2 and parts[0].isdigit() and ":" in parts[1]:
                counts[parts[1].split(":", 1)[1]] = int(parts[0])
    return counts


def run_one(pid, work, port, sessions, messages, size, use_strace, group):
    base = delivered(work)
    counter = None
    if group:
        stat_out = tempfile.NamedTemporaryFile(prefix="handoffs-", suffix=".txt", delete=False)
        stat_out.close()
        counter = subprocess.Popen(["perf", "stat", "-x", " ", "-o", stat_out.name, "-e",
                                    ",".join("%s:%s" % (group, f) for f in HANDOFF_FUNCS),
                                    "-p", str(pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = tempfile.NamedTemporaryFile(prefix="syscalls-", suffix=".txt", delete=False)
    out.close()
    if use_strace:
        tracer = subprocess.Popen(["strace", "-c", "-f", "-o", out.name, "-p", str(pid)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        tracer = subprocess.Popen(["perf", "trace", "-s", "-o", out.name, "-p", str(pid)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)                 # attached to every thread
    if tracer.poll() is not None:
        die("the tracer exited at once (perf cannot attach? try --strace)")
    cs0, nthreads = ctx_switches(pid)
    t0 = time.monotonic()
    src = subprocess.run(["timeout", "180", "smtp-source", "-c", "-s", str(sessions),
                          "-m", str(messages), "-l", str(size), "-f", "a@example.test",
                          "-t", "b@example.test", "127.0.0.1:%d" % port],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ok = wait_for(lambda: delivered(work) - base >= messages and queued(work) == 0, 120)
    elapsed = time.monotonic() - t0
    cs1, _ = ctx_switches(pid)
    for t in (tracer, counter):
        if t is None:
            continue
        t.send_signal(signal.SIGINT)
        try:
            t.wait(timeout=60)
        except subprocess.TimeoutExpired:
            t.kill()
            t.wait()
    handoffs = None
    if counter is not None:
        handoffs = parse_stat(stat_out.name)
        os.unlink(stat_out.name)
    got = delivered(work) - base
    if src.returncode != 0 or not ok:
        sys.stderr.write("sessions %d: smtp-source rc %d, %d of %d delivered, queue %d\n%s\n" %
                         (sessions, src.returncode, got, messages, queued(work), src.stderr[-500:]))
    calls = parse_strace(out.name) if use_strace else parse_perf(out.name)
    os.unlink(out.name)
    return {"sessions": sessions, "messages": messages, "delivered": got,
            "calls": calls, "ctx": cs1 - cs0, "threads": nthreads, "seconds": elapsed,
            "handoffs": handoffs}


def report(r, tracer):
    n = max(r["messages"], 1)
    calls = r["calls"]
    total = sum(c[0] for c in calls.values())
    sync = sum(calls.get(s, [0, 0])[0] for s in SYNC_CALLS)
    print("\n### %d sessions: %d messages of 5 KiB, %d delivered (%s)\n" %
          (r["sessions"], r["messages"], r["delivered"], tracer))
    print("| system call | calls | per message | errors per message |")
    print("|---|---:|---:|---:|")
    for name, (c, e) in sorted(calls.items(), key=lambda kv: -kv[1][0]):
        if c / n < 0.005:
            continue
        print("| %s | %d | %.2f | %s |" % (name, c, c / n, "%.2f" % (e / n) if e else ""))
    print("| **total** | %d | **%.1f** | |" % (total, total / n))
    return {"sessions": r["sessions"], "per_msg": total / n, "sync": sync / n,
            "ctx": r["ctx"] / n, "threads": r["threads"],
            "eagain": sum(c[1] for k, c in calls.items()
                          if k in ("read", "recvfrom", "recvmsg")) / n,
            "futex": calls.get("futex", [0, 0])[0] / n,
            "posts": (r["handoffs"] or {}).get("loop_post", -n) / n,
            "submits": (r["handoffs"] or {}).get("workpool_submit_after", -n) / n,
            "epoll_ctl": calls.get("epoll_ctl", [0, 0])[0] / n}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", default="1,10,50")
    ap.add_argument("--messages", default="1:300,10:1000,50:2000",
                    help="SESSIONS:MESSAGES,... messages per run")
    ap.add_argument("--size", type=int, default=5120)
    ap.add_argument("--port", type=int, default=2531)
    ap.add_argument("--strace", action="store_true", help="strace -c -f instead of perf")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--no-handoffs", action="store_true", help="no uprobes on hand-offs")
    a = ap.parse_args()
    msgs = dict((int(k), int(v)) for k, v in (p.split(":") for p in a.messages.split(",")))
    sessions = [int(s) for s in a.sessions.split(",")]
    for tool in ("smtp-source", "strace" if a.strace else "perf"):
        if shutil.which(tool) is None:
            die("%s not found (Debian: %s)" % (tool, {"smtp-source": "postfix",
                "perf": "linux-perf", "strace": "strace"}[tool]))
    if port_open(a.port):
        die("port %d is in use" % a.port)
    work = tempfile.mkdtemp(prefix="postern-syscalls.", dir="/var/tmp")
    conf = write_conf(work, a.port)
    log = open(os.path.join(work, "postern.log"), "w")
    srv = subprocess.Popen([BIN, "serve", "-c", conf], cwd=work, stdout=subprocess.DEVNULL,
                           stderr=log)
    rows = []
    group = None
    if not a.no_handoffs:
        group = "postern_hp%d" % os.getpid()
        if not probes_add(group):
            group = None
    try:
        if not wait_for(lambda: srv.poll() is None and port_open(a.port) and
                        "STARTUP-READY" in open(os.path.join(work, "postern.log")).read(), 30):
            die("postern did not start; see %s/postern.log" % work)
        subprocess.run(["timeout", "30", "smtp-source", "-m", "1", "-f", "a@example.test",
                        "-t", "b@example.test", "127.0.0.1:%d" % a.port], check=False)
        if not wait_for(lambda: delivered(work) >= 1, 20):
            die("the warm-up message was not delivered; see %s/postern.log" % work)
        tracer = "strace -c -f" if a.strace else "perf trace -s"
        print("## Postern %s: system calls per accepted message\n" % os.path.basename(BIN))
        print("%s, %s, one message per connection, until every message is in the "
              "Maildir and the queue is empty." % (time.strftime("%Y-%m-%d %H:%M UTC",
                                                                time.gmtime()), tracer))
        for s in sessions:
            r = run_one(srv.pid, work, a.port, s, msgs.get(s, 500), a.size, a.strace, group)
            rows.append(report(r, tracer))
        print("\n### Summary (per message)\n")
        print("| sessions | system calls | futex | epoll_ctl | reads into EAGAIN | "
              "sync calls | context switches (all %d threads) | loop posts | "
              "worker jobs |" % rows[0]["threads"])
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print("| %d | %.1f | %.2f | %.2f | %.2f | %.2f | %.2f | %s | %s |" %
                  (r["sessions"], r["per_msg"], r["futex"], r["epoll_ctl"], r["eagain"],
                   r["sync"], r["ctx"], "%.2f" % r["posts"] if r["posts"] >= 0 else "-",
                   "%.2f" % r["submits"] if r["submits"] >= 0 else "-"))
    finally:
        if group:
            probes_del(group)
        srv.send_signal(signal.SIGTERM)
        try:
            srv.wait(timeout=30)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()
        log.close()
        if a.keep:
            sys.stderr.write("work folder kept: %s\n" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
