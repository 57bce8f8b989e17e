#!/usr/bin/python3
"""
check_coverage.py - checks that the end-to-end suite made every catalog
condition happen that the catalog says it must.

Reads `postern catalog --ids` (ID<TAB>untested reason per line) and the log
lines collected in $POSTERN_EVENTS_LOG (or the file given as argument) by
the suite's servers. Every ID with an empty reason must occur at least once
as event=ID or cause=ID. Prints the missing IDs and exits 1 if any.

Usage: POSTERN_EVENTS_LOG=/tmp/ev.log python3 -m pytest tests/e2e
       python3 tests/e2e/check_coverage.py [/tmp/ev.log]
"""

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = os.path.abspath(os.environ.get("POSTERN_BIN") or str(REPO / "build" / "postern"))

SEEN = re.compile(r"(?:^|\s)(?:event|cause)=([A-Za-z0-9_-]+)")


def catalog_ids():
    out = subprocess.run([BIN, "catalog", "--ids"], capture_output=True,
                         text=True, timeout=30)
    if out.returncode != 0:
        sys.exit("postern catalog --ids failed (%d): %s" % (out.returncode, out.stderr))
    ids = {}
    for line in out.stdout.splitlines():
        if not line.strip():
            continue
        cid, _, reason = line.partition("\t")
        ids[cid.strip()] = reason.strip()
    return ids


def seen_ids(path):
    seen = set()
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            for m in SEEN.finditer(line):
                seen.add(m.group(1))
    return seen


def main(argv):
    path = argv[1] if len(argv) > 1 else os.environ.get("POSTERN_EVENTS_LOG")
    if not path:
        sys.exit("usage: check_coverage.py EVENTS_LOG (or set POSTERN_EVENTS_LOG)")
    if not os.path.exists(path):
        sys.exit("no events log at %s: run the suite with POSTERN_EVENTS_LOG set" % path)
    ids = catalog_ids()
    seen = seen_ids(path)
    must = sorted(i for i, r in ids.items() if not r)
    missing = [i for i in must if i not in seen]
    unknown = sorted(i for i in seen if i not in ids)
    print("catalog: %d IDs, %d must be reached by the suite, %d reached"
          % (len(ids), len(must), len(must) - len(missing)))
    if unknown:
        print("IDs in the logs that are not in the catalog: %s" % " ".join(unknown))
    if missing:
        print("not reached by any test:")
        for i in missing:
            print("  " + i)
        return 1
    return 1 if unknown else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
