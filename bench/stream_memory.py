#!/usr/bin/python3
"""bench/stream_memory.py - memory while message data streams to disk.

Starts Postern (POSTERN_BIN, default build/postern) through the e2e
harness and reports, against the issue 7 point 1 targets:

  * the daemon's peak RSS rise (VmHWM) over receiving, committing and
    delivering one 50 MiB message (target: at most 2 MiB);
  * its RSS with 200 sessions each halfway through a 5 MiB message
    (target: under 64 MiB).

The e2e tests assert the same with room (8 MiB, 96 MiB); this prints the
exact figures for docs/benchmarks.md.

    bench/stream_memory.py [--runs 3]
"""
import argparse
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
os.environ.setdefault("POSTERN_BIN", os.path.join(HERE, "..", "build", "postern"))

import conftest  # noqa: E402
import test_streaming as st  # noqa: E402  (the measurements of the tests)

MIB = 1024 * 1024


def one_run(root, i):
    srv = conftest.Server(root, name="big%d" % i,
                          conf={"limits": {"message_size": str(64 * MIB)},
                                "log": {"level": "info"}})
    srv.start()
    try:
        rise = st.big_message_peak_rise(srv, 50 * MIB)
    finally:
        srv.close()
    srv = conftest.Server(root, name="half%d" % i,
                          conf={"limits": {"message_size": str(8 * MIB),
                                           "connections_per_ip": "0"},
                                "log": {"level": "info"}})
    srv.start()
    socks = []
    try:
        rss = st.sessions_halfway_rss(srv, 200, 5 * MIB // 2, socks)
    finally:
        for s, f in socks:
            f.close()
            s.close()
        srv.close()
    return rise, rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for i in range(args.runs):
            rows.append(one_run(__import__("pathlib").Path(d), i))
    print("| run | peak RSS rise, one 50 MiB message | RSS, 200 sessions halfway through 5 MiB |")
    print("|---:|---:|---:|")
    for i, (rise, rss) in enumerate(rows, 1):
        print("| %d | %.2f MiB | %.1f MiB |" % (i, rise / 1024.0, rss / 1024.0))
    print("targets: at most 2 MiB; under 64 MiB")


if __name__ == "__main__":
    main()
