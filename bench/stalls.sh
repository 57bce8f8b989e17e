#!/bin/bash
# bench/stalls.sh - issue 10 point 8: the stalls the peers fall into, shown on
# each server in one run (bench/stalls.py does the measuring):
#   backlog   the listening socket's queue (ss Send-Q), and a burst of 10 and
#             50 connections opened at once: greeted within 1 s, or only after
#             a SYN retransmission (>= 1 s), and the kernel's ListenOverflows
#   quit      time from QUIT to 221 and to the close (median of 5)
#   dot       the server's SMTP client relaying 5 messages (one per
#             connection) to a recording peer: is the end of data (CRLF . CRLF)
#             a read of its own, and how long after the data before it
# Servers: Postern (this tree's build/postern, or POSTERN_BIN), OpenSMTPD
# and Exim through ../shared/bench/setup-opensmtpd.sh / setup-exim.sh as they
# are ("install" fetches their .debs; a server that cannot be installed or
# started is reported as such and the others go on).
#
#   bench/stalls.sh            # results in bench/results/stalls-<date>/
#
# Environment: POSTERN_BIN, PORT=2545 (Postern), REC_PORT=2546 (the recording
# peer), SERVERS="postern opensmtpd exim", RESULTS=dir.
# Only 127.0.0.1..11 are used; every step is bounded in count and time.
# Needs root for the peers (users, apt). Stops everything it started by PID.
set -uo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
SHARED="$(cd "$REPO/../shared/bench" 2>/dev/null && pwd)" || {
    echo "stalls.sh: ../shared/bench not found next to the repository" >&2; exit 1; }
BIN="${POSTERN_BIN:-$REPO/build/postern}"
PORT="${PORT:-2545}"
REC_PORT="${REC_PORT:-2546}"
SERVERS="${SERVERS:-postern opensmtpd exim}"
RESULTS="${RESULTS:-$HERE/results/stalls-$(date +%Y%m%d-%H%M%S)}"
WORK="$(mktemp -d /var/tmp/postern-stalls.XXXXXX)" || exit 1
chmod 755 "$WORK"
export STATE_DIR="$WORK/state-shared" SINK_PORT="$REC_PORT"
mkdir -p "$STATE_DIR" "$RESULTS"
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
OUT="$RESULTS/stalls.jsonl"
POSTERN_PID=""
REC_PID=""

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
row() {  # server, step, JSON object from stalls.py
    /usr/bin/python3 -c 'import json,sys; d=json.loads(sys.argv[3]); d["server"]=sys.argv[1]; d["step"]=sys.argv[2]; print(json.dumps(d))' \
        "$1" "$2" "$3" >>"$OUT"
}
cleanup() {
    [ -n "$REC_PID" ] && kill "$REC_PID" 2>/dev/null
    [ -n "$POSTERN_PID" ] && kill "$POSTERN_PID" 2>/dev/null && wait "$POSTERN_PID" 2>/dev/null
    for s in opensmtpd exim; do
        timeout 30 "$SHARED/setup-$s.sh" stop >/dev/null 2>&1
    done
    cp "$WORK"/*.log "$RESULTS/" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

start_postern() {
    mkdir -p "$WORK/postern"
    echo "b@example.test:{SHA512-CRYPT}$(/usr/bin/python3 -W ignore -c 'import crypt; print(crypt.crypt("bench", crypt.mksalt(crypt.METHOD_SHA512)))')" >"$WORK/postern/accounts"
    # spool, state and mail folders at their defaults, beside the file
    printf '%s\n' "[server]" "hostname = bench.example.test" \
        "[listen.mx]" "address = 127.0.0.1:$PORT" "role = mx" \
        "[local]" "domains = example.test" "accounts = accounts" \
        "[route.sink]" "domains = sink.test" "via = [127.0.0.1]:$REC_PORT" "tls = none" \
        >"$WORK/postern/stalls.conf"
    "$BIN" serve -c "$WORK/postern/stalls.conf" -o log.level=notice 2>"$WORK/postern.log" >/dev/null &
    POSTERN_PID=$!
    for _ in $(seq 100); do      # 20 s
        grep -q STARTUP-READY "$WORK/postern.log" 2>/dev/null && return 0
        kill -0 "$POSTERN_PID" 2>/dev/null || break
        sleep 0.2
    done
    return 1
}
stop_postern() {
    [ -n "$POSTERN_PID" ] && kill "$POSTERN_PID" 2>/dev/null && wait "$POSTERN_PID" 2>/dev/null
    POSTERN_PID=""
}

# server name -> its port and the recipient its relay path sends to the sink
port_of() { case "$1" in postern) echo "$PORT" ;; opensmtpd) echo 2527 ;; exim) echo 2528 ;; esac; }
rcpt_of() { case "$1" in postern) echo b@sink.test ;; *) echo b@example.test ;; esac; }

start_server() {
    case "$1" in
        postern) [ -x "$BIN" ] || { log "no $BIN: run make first"; return 1; }; start_postern ;;
        *) timeout 300 "$SHARED/setup-$1.sh" start relay >"$WORK/$1-start.log" 2>&1 ;;
    esac
}
stop_server() {
    case "$1" in
        postern) stop_postern ;;
        *) timeout 30 "$SHARED/setup-$1.sh" stop >/dev/null 2>&1 ;;
    esac
}

{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "kernel: $(uname -r); cores: $(nproc); load: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "somaxconn: $(cat /proc/sys/net/core/somaxconn)"
    echo "postern: $BIN"
} >"$RESULTS/machine.txt"

for s in $SERVERS; do
    log "=== $s ==="
    if ! start_server "$s"; then
        log "$s could not be started here (see $RESULTS/$s-start.log)"
        cp "$WORK/$s-start.log" "$RESULTS/" 2>/dev/null
        echo "{\"server\": \"$s\", \"step\": \"start\", \"error\": \"could not be installed or started\"}" >>"$OUT"
        continue
    fi
    p="$(port_of "$s")"
    row "$s" backlog "$(timeout 20 /usr/bin/python3 "$HERE/stalls.py" backlog "$p")"
    for n in 10 50; do
        row "$s" "burst$n" "$(timeout 30 /usr/bin/python3 "$HERE/stalls.py" burst "$p" "$n")"
    done
    row "$s" quit "$(timeout 60 /usr/bin/python3 "$HERE/stalls.py" quit "$p")"
    # the client's end of data: a recording peer on REC_PORT, 5 messages
    /usr/bin/python3 "$HERE/stalls.py" recorder "$REC_PORT" 40 >"$WORK/rec-$s.out" 2>&1 &
    REC_PID=$!
    for _ in $(seq 50); do grep -q ready "$WORK/rec-$s.out" 2>/dev/null && break; sleep 0.1; done
    row "$s" send "$(timeout 60 /usr/bin/python3 "$HERE/stalls.py" send "$p" a@example.org "$(rcpt_of "$s")" 5)"
    wait "$REC_PID"    # the recorder ends by itself after 40 s
    REC_PID=""
    row "$s" dot "$(tail -1 "$WORK/rec-$s.out")"
    stop_server "$s"
done

/usr/bin/python3 - "$OUT" >"$RESULTS/summary.md" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["server"], {})[r["step"]] = r
print("| server | listen backlog | burst of 10: greeted <1 s / later / none | burst of 50: greeted <1 s / later / none | ListenOverflows (50) | QUIT to 221 / close, ms | end of data in its own read | gap before it, ms (median) |")
print("|---|---|---|---|---|---|---|---|")
for s, d in by.items():
    if "start" in d:
        print("| %s | could not be installed or started here | | | | | | |" % s)
        continue
    b = lambda k: "%s / %s / %s" % (d[k]["greeted_within_1s"], d[k]["greeted_later"],
                                     d[k]["not_greeted_in_10s"] + d[k]["closed_or_reset"]) if k in d else "-"
    dot = d.get("dot", {})
    print("| %s | %s | %s | %s | %s | %s / %s | %s of %s | %s |" % (
        s, ",".join(map(str, d.get("backlog", {}).get("backlogs", []))), b("burst10"), b("burst50"),
        d.get("burst50", {}).get("listen_overflows", "-"),
        d.get("quit", {}).get("quit_to_221_ms", "-"), d.get("quit", {}).get("quit_to_close_ms", "-"),
        dot.get("dot_in_own_read", "-"), dot.get("messages", "-"), dot.get("dot_gap_ms_median", "-")))
EOF
cat "$RESULTS/summary.md"
