#!/usr/bin/python3
"""bench/queue_recover.py - start-up with a large queue.

For each count N (default 25000, 50000, 100000) writes N queued messages
for a non-local domain into a fresh spool (version 2, a 64 KiB body each as
a sparse file, one deferred state record), starts Postern (POSTERN_BIN,
default build/postern) on it through the e2e harness and reports:

  * recovery time: from the daemon's first log line to QUEUE-RECOVERED;
  * bytes read (rchar of /proc/PID/io) per message;
  * peak RSS (VmHWM) when recovery ends, and again once the first delivery
    pass of every message is over (each message is due at once after a
    start; its deferred record is appended).

    bench/queue_recover.py [--counts 25000,50000,100000]

Target (issue 7 point 2): 100,000 messages under 128 MiB RSS, start-up
time growing linearly with the count.
"""
import argparse
import datetime
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
os.environ.setdefault("POSTERN_BIN", os.path.join(HERE, "..", "build", "postern"))

import conftest  # noqa: E402
import test_queue as fmt  # noqa: E402  (the spool format writer of the tests)

BODY = 64 * 1024


def ts(event):
    return datetime.datetime.strptime(event["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")


def run(root, n):
    srv = conftest.Server(root, name="q%d" % n,
                          conf={"log": {"level": "notice"}})
    q = srv.spool / "queue"
    q.mkdir(parents=True)
    crc = fmt.crc32c(bytes(BODY))
    st = fmt.state(b"deferred 0 3 %d 4.4.1 no route yet" % (int(time.time()) + 3600))
    for i in range(n):
        qid = fmt.qid_of(1000 + i)
        head, tail = fmt.v2_parts(qid, b"s@example.org", [b"r%d@remote.example" % i],
                                  BODY, crc, states=st)
        with open(q / qid.decode(), "wb") as fh:
            fh.write(head)
            fh.seek(len(head) + BODY)
            fh.write(tail)
    srv.start(timeout=600)
    try:
        rec = srv.wait_event("QUEUE-RECOVERED", timeout=600)[0]
        first = conftest.parse_logfmt(srv.log_lines()[0])
        secs = (ts(rec) - ts(first)).total_seconds()
        rchar = conftest.proc_value(srv.pid, "io", "rchar")
        hwm_rec = conftest.proc_status_kib(srv.pid, "VmHWM")
        # every message gets its first pass: its file grows by a record
        deadline = time.monotonic() + 600
        size0 = sum(p.stat().st_size for p in q.iterdir())
        while time.monotonic() < deadline:
            time.sleep(1.0)
            size = sum(p.stat().st_size for p in q.iterdir())
            if size == size0:
                break
            size0 = size
        hwm_pass = conftest.proc_status_kib(srv.pid, "VmHWM")
        assert int(rec["count"]) == n, rec
    finally:
        srv.close()
    return secs, rchar, hwm_rec, hwm_pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--counts", default="25000,50000,100000")
    args = ap.parse_args()
    print("| messages | recovery s | us per message | bytes read per message "
          "| peak RSS at recovery MiB | peak RSS after first pass MiB |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n in [int(x) for x in args.counts.split(",")]:
        with tempfile.TemporaryDirectory(prefix="postern-queue-") as root:
            secs, rchar, hwm_rec, hwm_pass = run(root, n)
        print("| %d | %.2f | %.0f | %.0f | %.1f | %.1f |" % (
            n, secs, secs * 1e6 / n, rchar / n, hwm_rec / 1024, hwm_pass / 1024))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
