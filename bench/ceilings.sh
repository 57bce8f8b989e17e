#!/bin/bash
# bench/ceilings.sh - issue 10 point 3: the two ceilings Postern's acceptance
# rate is set against, measured on this machine in one run:
#  1. the disk's limit: bench/disk_rate.c (built here with cc) makes REPS x
#     durable 5 KiB files in a folder on the same disk as the bench's work
#     folder (/var/tmp), serially and from 16 writer threads, three ways:
#     fsync (create, write, fsync, close), rename (the same, then rename into
#     another folder and fsync that folder: a classic durable queue entry) and
#     syncfs (create, write, close, rename, syncfs: Postern's commit, one
#     flush per round, spool.c);
#  2. the load generator's ceiling: smtp-source (the generator of
#     bench/run-bench.sh, same flags through ../shared/bench/smtp-load.py, one
#     connection per message) against Postfix's smtp-sink, which answers and
#     discards without storing, at 1, 10 and 50 sessions.
# Runs alternate (disk, then generator, REPS times) and the summary gives
# medians. With POSTERN_CSV=.../load.csv of a bench/run-bench.sh run (maildir
# path, 5 KiB), it adds Postern's accepted msgs/s and its share of each
# ceiling (docs/benchmarks.md).
#
#   bench/ceilings.sh                      # results in bench/results/ceilings-<date>/
#   POSTERN_CSV=bench/results/<run>/load.csv bench/ceilings.sh
#
# Environment: REPS=3, SESSIONS=1,10,50, SINK_PORT=2547, DISK_DIR=/var/tmp,
# DISK_COUNT=1000 (serial; 16 writers do 4 x DISK_COUNT), MSGS_TABLE (messages
# per run: about a second each against smtp-sink), RESULTS=dir.
# Bounded: every disk run stops at 60 s (disk_rate), every load run at 120 s
# (smtp-load.py --run-timeout). 127.0.0.1 only.
set -uo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
SHARED="$(cd "$REPO/../shared/bench" 2>/dev/null && pwd)" || {
    echo "ceilings.sh: ../shared/bench not found next to the repository" >&2; exit 1; }
REPS="${REPS:-3}"
SESSIONS="${SESSIONS:-1,10,50}"
SINK_PORT="${SINK_PORT:-2547}"
DISK_DIR="${DISK_DIR:-/var/tmp}"
DISK_COUNT="${DISK_COUNT:-1000}"
MSGS_TABLE="${MSGS_TABLE:-5120x1=3000,5120x10=10000,5120x50=10000}"
RESULTS="${RESULTS:-$HERE/results/ceilings-$(date +%Y%m%d-%H%M%S)}"
POSTERN_CSV="${POSTERN_CSV:-}"
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
WORK="$(mktemp -d "$DISK_DIR/postern-ceilings.XXXXXX")" || exit 1
mkdir -p "$RESULTS"
SINK_PID=""
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
cleanup() {
    [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null && wait "$SINK_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
[ "$(id -u)" = 0 ] && SINK_USER=(-u nobody) || SINK_USER=()
command -v smtp-source >/dev/null && command -v smtp-sink >/dev/null || {
    echo "ceilings.sh: smtp-source and smtp-sink come with Postfix (apt-get install postfix)" >&2; exit 1; }

cc -O2 -Wall -Wextra -Werror -pthread -o "$WORK/disk_rate" "$HERE/disk_rate.c" || exit 1
mkdir -p "$WORK/disk"
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "kernel: $(uname -r); cores: $(nproc); load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "disk: $(df -h "$DISK_DIR" | tail -1); $(findmnt -no FSTYPE,OPTIONS -T "$DISK_DIR")"
    echo "smtp-source: $(command -v smtp-source); sink: smtp-sink ${SINK_USER[*]} -c 127.0.0.1:$SINK_PORT 1000"
} >"$RESULTS/machine.txt"

# smtp-sink: -c counts, backlog 1000; it discards every message
smtp-sink "${SINK_USER[@]}" -c "127.0.0.1:$SINK_PORT" 1000 >"$WORK/sink.out" 2>&1 &
SINK_PID=$!
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$SINK_PORT") 2>/dev/null && break
    sleep 0.1
done

: >"$RESULTS/disk.txt"
for rep in $(seq "$REPS"); do
    for w in 1 16; do
        n=$(( w == 1 ? DISK_COUNT : 4 * DISK_COUNT ))
        for mode in fsync rename syncfs; do
            echo "rep=$rep $(timeout 90 "$WORK/disk_rate" "$WORK/disk" "$n" 5120 "$w" "$mode")" \
                >>"$RESULTS/disk.txt"
        done
    done
    log "rep $rep: disk done; smtp-source -> smtp-sink at $SESSIONS sessions"
    timeout 600 "$SHARED/smtp-load.py" --server smtp-sink --path discard --port "$SINK_PORT" \
        --sizes 5120 --sessions "$SESSIONS" --reps 1 --msgs-table "$MSGS_TABLE" \
        --warmup $(( rep == 1 ? 300 : 0 )) --run-timeout 120 --drain-timeout 10 \
        --note "rep $rep" --out "$RESULTS/sink.csv" >&2
done
log "done; summary:"

/usr/bin/python3 - "$RESULTS" "$POSTERN_CSV" >"$RESULTS/summary.md" <<'EOF'
import csv, re, statistics, sys
res, pcsv = sys.argv[1], sys.argv[2]
med = lambda v: statistics.median(v) if v else None
disk = {}
for line in open(res + "/disk.txt"):
    d = dict(re.findall(r"(\w+)=(\S+)", line))
    disk.setdefault((d["mode"], int(d["writers"])), []).append(float(d["rate"]))
print("### The disk's limit (5 KiB files, files/s, median of %d)\n" % max(len(v) for v in disk.values()))
print("| per file | 1 writer | 16 writers |\n|---|---|---|")
for mode, what in (("fsync", "create, write, fsync, close"),
                   ("rename", "+ rename, fsync of the folder"),
                   ("syncfs", "create, write, close, rename, syncfs (Postern's commit)")):
    print("| %s: %s | %.0f | %.0f |" % (mode, what, med(disk.get((mode, 1), [0])), med(disk.get((mode, 16), [0]))))
sink = {}
for r in csv.DictReader(open(res + "/sink.csv")):
    if r["rc"] == "0":
        sink.setdefault(int(r["sessions"]), []).append(float(r["accept_rate"]))
ours = {}
if pcsv:
    for r in csv.DictReader(open(pcsv)):
        if r["server"].startswith("postern") and r["size"] == "5120" and r["rc"] == "0" and not r["extra"]:
            ours.setdefault(int(r["sessions"]), []).append(float(r["accept_rate"]))
disk16 = med(disk.get(("syncfs", 16), []))
print("\n### The load generator's ceiling and Postern's share\n")
print("| sessions | smtp-source -> smtp-sink, msgs/s | Postern accepted (Maildir), msgs/s | share of the generator's ceiling | share of the disk's (syncfs, 16 writers) |")
print("|---|---|---|---|---|")
for s in sorted(sink):
    c, o = med(sink[s]), med(ours.get(s, []))
    print("| %d | %.0f (n=%d) | %s | %s | %s |" % (
        s, c, len(sink[s]), "%.0f (n=%d)" % (o, len(ours[s])) if o else "-",
        "%.0f%%" % (100 * o / c) if o else "-", "%.0f%%" % (100 * o / disk16) if o and disk16 else "-"))
EOF
cat "$RESULTS/summary.md"
