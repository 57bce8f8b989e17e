#!/bin/bash
# bench/run-bench.sh - durable messages per second and server CPU per message,
# Postern beside Postfix, in the same run, through ../shared/bench, on two
# paths: "maildir" (receive, queue, local delivery into a Maildir) and "relay"
# (the full outbound path: receive, queue, deliver over SMTP to Postfix's
# smtp-sink on 127.0.0.1:2626).
#
#   bench/run-bench.sh            # everything: install, build, both servers, report
#
# What it does, in order (about 10 minutes here with both paths; CI does not run it):
#  1. Installs what it needs: python3, strace, and Postfix (for smtp-source, the
#     load generator, and as the anchor) through ../shared/bench/setup-postfix.sh
#     install (apt, "Local only", Postfix on 127.0.0.1:2525).  Builds Postern as
#     `make build` does (meson --buildtype=debugoptimized, i.e. -O2 -g) but in
#     its own folder $BUILD_DIR (/var/tmp/postern-bench-build, kept between
#     runs) with ninja -j2, so it never races a developer's build/.
#  2. Makes a work folder on the same disk as /work (/var/tmp/postern-bench.XXXXXX)
#     and starts Postern there on 127.0.0.1:$PORT (2530) with bench.conf: local
#     domain example.test, accounts a@ and b@example.test (smtp-source sends
#     from a@ to b@), spool, state and Maildirs in the work folder, log.level
#     notice, connections_per_ip off (Postfix exempts $mynetworks from its
#     per-client limit too).  Waits for event=STARTUP-READY on its log.
#  3. Starts Postfix on 127.0.0.1:2525 (setup-postfix.sh start) and points
#     example.test at Postfix's virtual(8) Maildir delivery in the same work
#     folder: receive -> fsync'd queue file -> qmgr -> virtual -> Maildir/new,
#     the same path Postern runs (the anchors in RESULTS-anchors.md used discard).
#     Relay path (PATHS has relay): smtp-sink is started first (lib.sh
#     sink_start, 127.0.0.1:2626, in our work folder); Postern gets a route
#     `[route.sink] domains = sink.test, via = [127.0.0.1]:2626, tls = none` and
#     Postfix `sink.test=smtp:[127.0.0.1]:2626` in transport_maps (the shared
#     relay mode's line, for sink.test; Postfix's smtp client does no TLS by
#     default either); smtp-source sends to b@sink.test and the count is the
#     sink's (lib.sh sink_count).  One sink serves both servers; runs are one
#     after the other and each counts its own difference.
#  4. Runs bench/drive.py: for each message size x session count x repetition it
#     runs ../shared/bench/smtp-load.py once against each server, alternately
#     (interleaved, so both see the same machine), with --count-cmd counting the
#     files in the Maildir's new/ folder, so each run yields the acceptance rate
#     (every message got its 250 = is on disk) and the end-to-end rate (until
#     every message is in the Maildir).  Around each run it samples
#     utime+stime(+reaped children) of the server's process tree from /proc and
#     divides by the messages: server CPU ms per message.  Maildirs are emptied
#     between runs.  After each run drive.py waits (bounded) for the server's
#     queue to be empty (Postern: files in spool/queue; Postfix:
#     setup-postfix.sh queue) and checks that the count grew by exactly the
#     messages sent; it also records the peak RSS of the run (VmHWM, reset
#     before each run).
#  5. strace -f -c counts of fsync-type calls per message, for both servers on
#     each path of PATHS (200 messages over each of SYNC_SESSIONS, 1 and 10
#     sessions by default, after the timed runs: strace slows the servers
#     down, these are counts, not speeds).
#     SYSCALL_PROFILE=1 adds strace -f -c of every system call Postern makes
#     on the relay path, 1 and 50 sessions (syscalls-relay.txt): where its
#     time goes.
#  6. Then Postfix alone on its discard path, the anchors' own configuration,
#     so this run can be set against RESULTS-anchors.md (the VM's speed drifts).
#  7. Writes bench/results/<date-time>/ (load.csv = smtp-load.py rows, bench.csv
#     = the same runs with server CPU, summary.md, machine.txt, fsync-count.txt,
#     commands.txt, postern.log) and prints summary.md.  Stops everything it
#     started (Postern by PID, Postfix with `postfix stop` if this script
#     started it), restores the Postfix settings it changed, deletes the work
#     folder (KEEP_WORK=1 keeps it).
#
# Environment (all optional):
#   REPS=3  SIZES=5120,102400  SESSIONS=1,10,50  WARMUP=300  PORT=2530
#   PATHS=maildir,relay  which paths to measure (one or both)
#   MSGS_TABLE="5120x1=1000,..."   messages per run for each SIZExSESSIONS
#   POSTERN_BIN=path     use this binary, build nothing
#   BUILD_DIR=/var/tmp/postern-bench-build  BUILDTYPE=debugoptimized (or release)
#   SKIP_POSTERN=1       Postfix only (e.g. while Postern does not run yet)
#   POSTERN_LOG_LEVEL=notice   (info logs one summary line per message and session,
#                        as Postfix does; notice keeps logging out of the figure)
#   FSYNC_COUNT=0 skip step 5;  SYNC_SESSIONS="1 10"  session counts of step 5;  POSTFIX_DISCARD=0 skip step 6
#   RESULTS=dir          default bench/results/<date-time>
#
# Only 127.0.0.1 is used.  Every load run is bounded (--run-timeout 120 s,
# --drain-timeout 60 s) and the whole measurement by a timeout of 45 minutes.
# Needs root (apt, Postfix).  Never uses port 2525 for Postern: Postfix is there.
set -uo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
SHARED="$(cd "$REPO/../shared/bench" 2>/dev/null && pwd)" || {
    echo "run-bench.sh: ../shared/bench not found next to the repository" >&2; exit 1; }

REPS="${REPS:-3}"
SIZES="${SIZES:-5120,102400}"
SESSIONS="${SESSIONS:-1,10,50}"
WARMUP="${WARMUP:-300}"
PORT="${PORT:-2530}"
PF_PORT=2525
MSGS_TABLE="${MSGS_TABLE:-5120x1=1000,5120x10=2000,5120x50=2000,102400x1=600,102400x10=1200,102400x50=1200}"
STAMP="$(date +%Y%m%d-%H%M%S)"
RESULTS="${RESULTS:-$HERE/results/$STAMP}"
POSTFIX_DISCARD="${POSTFIX_DISCARD:-1}"
FSYNC_COUNT="${FSYNC_COUNT:-1}"
SYSCALL_PROFILE="${SYSCALL_PROFILE:-0}"
PATHS="${PATHS:-maildir,relay}"
has_path() { case ",$PATHS," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
has_path maildir || has_path relay || { echo "run-bench.sh: PATHS must name maildir and/or relay" >&2; exit 1; }
SKIP_POSTERN="${SKIP_POSTERN:-0}"
POSTERN_LOG_LEVEL="${POSTERN_LOG_LEVEL:-notice}"
# Our own build folder (not the repository's build/, which the developers use:
# two ninjas in one folder at once would trip over each other).  Same flags as
# `make build` (debugoptimized = -O2 -g), at most 2 compile jobs.
BUILD_DIR="${BUILD_DIR:-/var/tmp/postern-bench-build}"
BUILDTYPE="${BUILDTYPE:-debugoptimized}"

# The shared scripts keep runtime files in STATE_DIR (default: inside
# ../shared/bench, which is not ours to write): give them our work folder.
WORK="$(mktemp -d /var/tmp/postern-bench.XXXXXX)" || exit 1
chmod 755 "$WORK"           # Postfix's virtual(8) runs as nobody and must get in
export STATE_DIR="$WORK/state-shared"
mkdir -p "$STATE_DIR" "$RESULTS"
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
# Others' jobs on this 2-core machine change every figure: say so up front.
awk '$1 > 1.0 {exit 1}' /proc/loadavg ||
    echo "[$(date +%H:%M:%S)] note: load average is $LOAD_START; the figures will be noisy" >&2
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

POSTERN_PID=""
POSTERN_STATUS="not run"
SINK_STARTED=0    # 1: smtp-sink runs (lib.sh keeps its pid in $STATE_DIR)
PF_STARTED=0      # 1: this script started Postfix, so it stops it
PF_TOUCHED=0      # 1: main.cf has our Maildir settings, restore PF_SAVED
PF_SAVED=""       # postconf -n lines of PF_CHANGED before we changed them
PF_CHANGED=(transport_maps virtual_mailbox_base virtual_mailbox_maps virtual_uid_maps
            virtual_gid_maps)

stop_postern() {
    [ -n "$POSTERN_PID" ] || return 0
    if kill -0 "$POSTERN_PID" 2>/dev/null; then
        kill -TERM "$POSTERN_PID" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$POSTERN_PID" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$POSTERN_PID" 2>/dev/null; then
            log "postern $POSTERN_PID still running 10 s after SIGTERM: SIGKILL"
            kill -KILL "$POSTERN_PID" 2>/dev/null
        fi
    fi
    wait "$POSTERN_PID" 2>/dev/null
    POSTERN_PID=""
}

restore_postfix() {
    [ "$PF_TOUCHED" = 1 ] || return 0
    # put back what we changed: first drop ours, then re-apply the saved lines
    postconf -X "${PF_CHANGED[@]}" 2>/dev/null
    while IFS= read -r l; do [ -n "$l" ] && postconf -e "$l"; done <<<"$PF_SAVED"
    PF_TOUCHED=0
}

cleanup() {
    stop_postern
    if [ "$SINK_STARTED" = 1 ]; then
        (source "$SHARED/lib.sh"; sink_stop) || log "smtp-sink stop failed"
        SINK_STARTED=0
    fi
    if [ "$PF_STARTED" = 1 ]; then
        "$SHARED/setup-postfix.sh" stop >/dev/null 2>&1 || log "postfix stop failed"
        PF_STARTED=0
    fi
    restore_postfix
    [ -f "$WORK/postern.log" ] && cp "$WORK/postern.log" "$RESULTS/postern.log" 2>/dev/null
    if [ "${KEEP_WORK:-0}" = 1 ]; then log "work folder kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || die "needs root (apt-get, Postfix)"
[ "$PORT" != "$PF_PORT" ] || die "PORT must not be $PF_PORT (Postfix is there)"
if port_open "$PORT"; then die "127.0.0.1:$PORT is already in use"; fi
SINK_PORT=2626      # lib.sh's
if has_path relay && port_open "$SINK_PORT"; then die "127.0.0.1:$SINK_PORT is already in use"; fi

# ---- 1. install and build ----------------------------------------------------
log "=== install ==="
need=()
[ -x /usr/bin/python3 ] || need+=(python3)
command -v strace >/dev/null || need+=(strace)
if [ "${#need[@]}" -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=120 \
        "${need[@]}" || die "apt-get install ${need[*]}"
fi
"$SHARED/setup-postfix.sh" install >"$WORK/postfix-install.log" 2>&1 ||
    { tail -20 "$WORK/postfix-install.log" >&2; die "postfix install"; }
PF_LABEL="postfix-$(postconf -h mail_version)"

BIN="${POSTERN_BIN:-$BUILD_DIR/postern}"
if [ "$SKIP_POSTERN" != 1 ] && [ -z "${POSTERN_BIN:-}" ]; then
    log "=== build: meson setup $BUILD_DIR --buildtype=$BUILDTYPE; ninja -j2 ==="
    (cd "$REPO" && sh tests/install-deps.sh gcc meson ninja-build pkg-config libssl-dev \
        libsqlite3-dev libcrypt-dev) >"$WORK/build.log" 2>&1 || log "install-deps failed"
    # a folder left half-configured by a failed setup cannot be set up again
    [ ! -f "$BUILD_DIR/build.ninja" ] && [ -d "$BUILD_DIR/meson-private" ] && rm -rf "$BUILD_DIR"
    if ! { [ -f "$BUILD_DIR/build.ninja" ] ||
           (cd "$REPO" && meson setup "$BUILD_DIR" --buildtype="$BUILDTYPE"); } \
           >>"$WORK/build.log" 2>&1 ||
       ! timeout 1200 ninja -C "$BUILD_DIR" -j2 postern >>"$WORK/build.log" 2>&1; then
        cp "$WORK/build.log" "$RESULTS/build.log"
        tail -30 "$WORK/build.log" >&2
        log "build failed: Postern's rows will be missing"
        POSTERN_STATUS="build failed"
        SKIP_POSTERN=1
    fi
fi
if [ "$SKIP_POSTERN" != 1 ] && [ ! -x "$BIN" ]; then
    log "$BIN missing: Postern's rows will be missing"
    POSTERN_STATUS="no binary"
    SKIP_POSTERN=1
fi

# ---- 2. smtp-sink, Postern ---------------------------------------------------
if has_path relay; then
    log "=== start smtp-sink on 127.0.0.1:$SINK_PORT ==="
    (source "$SHARED/lib.sh"; sink_start) || die "smtp-sink did not start"
    SINK_STARTED=1
fi
SINK_COUNT="bash -c 'source $SHARED/lib.sh; sink_count'"
POSTERN_QUEUE="find $WORK/postern/spool/queue -type f | wc -l"
hash_pw() {
    /usr/bin/python3 -W ignore -c \
        'import crypt; print(crypt.crypt("bench", crypt.mksalt(crypt.METHOD_SHA512)))'
}
POSTERN_MAIL="$WORK/postern/mail"
if [ "$SKIP_POSTERN" != 1 ]; then
    log "=== start Postern on 127.0.0.1:$PORT ==="
    mkdir -p "$WORK/postern"
    {
        echo "a@example.test:{SHA512-CRYPT}$(hash_pw)"
        echo "b@example.test:{SHA512-CRYPT}$(hash_pw)"
    } >"$WORK/postern/accounts"
    cat >"$WORK/postern/bench.conf" <<EOF
# Postern benchmark configuration (written by bench/run-bench.sh)
[server]
hostname = bench.example.test
spool = spool
state = state
mail_root = mail
shutdown_grace = 2

[listen.mx]
address = 127.0.0.1:$PORT
role = mx

[local]
domains = example.test
accounts = accounts

[limits]
# smtp-source opens up to 50 sessions from 127.0.0.1; Postfix does not apply
# its per-client connection limit to \$mynetworks either.
connections_per_ip = 0

[log]
level = $POSTERN_LOG_LEVEL

# No DNS, as the peers run under ../shared/bench/no-dns.sh: nothing listens
# there, so a lookup (the client's PTR at connect) fails at once instead of
# waiting on a resolver this machine cannot reach.
[dns]
servers = 127.0.0.1:53

# Relay path: mail for sink.test goes to smtp-sink, without DNS or TLS.
[route.sink]
domains = sink.test
via = [127.0.0.1]:$SINK_PORT
tls = none
EOF
    cp "$WORK/postern/bench.conf" "$RESULTS/postern-bench.conf"
    "$BIN" check -c "$WORK/postern/bench.conf" >"$WORK/check.out" 2>&1 ||
        { cat "$WORK/check.out" >&2; log "postern check failed (going on: serve decides)"; }
    "$BIN" serve -c "$WORK/postern/bench.conf" -o "listen.mx.address=127.0.0.1:$PORT" \
        -o "log.level=$POSTERN_LOG_LEVEL" 2>"$WORK/postern.log" >/dev/null &
    POSTERN_PID=$!
    echo "$POSTERN_PID" >"$WORK/postern.pid"
    ready=0
    for _ in $(seq 150); do       # 30 s
        kill -0 "$POSTERN_PID" 2>/dev/null || break
        if grep -q 'STARTUP-READY' "$WORK/postern.log" 2>/dev/null && port_open "$PORT"; then
            ready=1; break
        fi
        sleep 0.2
    done
    if [ "$ready" = 1 ]; then
        POSTERN_STATUS="ran"
        log "postern pid $POSTERN_PID ready"
        # one message end to end before timing anything
        timeout 30 smtp-source -m 1 -f a@example.test -t b@example.test "127.0.0.1:$PORT" ||
            log "postern: a single test message failed"
        for _ in $(seq 50); do
            [ "$(find "$POSTERN_MAIL" -type f -path '*/new/*' 2>/dev/null | wc -l)" -ge 1 ] && break
            sleep 0.2
        done
        if [ "$(find "$POSTERN_MAIL" -type f -path '*/new/*' 2>/dev/null | wc -l)" -lt 1 ]; then
            log "postern: the test message did not reach $POSTERN_MAIL/*/*/new: skipping Postern"
            tail -20 "$WORK/postern.log" >&2
            POSTERN_STATUS="started, but delivered nothing"
            stop_postern; SKIP_POSTERN=1
        fi
    fi
    if [ "$ready" = 1 ] && [ "$SKIP_POSTERN" != 1 ] && has_path relay; then
        # and one message out to the sink
        c0="$(bash -c "$SINK_COUNT")"
        timeout 30 smtp-source -m 1 -f a@example.test -t b@sink.test "127.0.0.1:$PORT" ||
            log "postern: a single relay test message failed"
        for _ in $(seq 50); do
            [ "$(bash -c "$SINK_COUNT")" -gt "$c0" ] && break
            sleep 0.2
        done
        if [ "$(bash -c "$SINK_COUNT")" -le "$c0" ]; then
            log "postern: the relay test message did not reach smtp-sink: skipping Postern"
            tail -20 "$WORK/postern.log" >&2
            POSTERN_STATUS="started, but relayed nothing"
            stop_postern; SKIP_POSTERN=1
        fi
    elif [ "$ready" != 1 ]; then
        log "postern did not become ready within 30 s; its log:"
        tail -20 "$WORK/postern.log" >&2
        POSTERN_STATUS="did not start"
        stop_postern; SKIP_POSTERN=1
    fi
fi

# ---- 3. Postfix, Maildir path ------------------------------------------------
log "=== start Postfix on 127.0.0.1:$PF_PORT, virtual(8) Maildir ==="
if postfix status >/dev/null 2>&1; then
    log "Postfix was already running: it is reconfigured, and left running at the end"
else
    port_open "$PF_PORT" && die "127.0.0.1:$PF_PORT is in use, and not by Postfix"
    PF_STARTED=1
fi
PF_SAVED="$(postconf -n "${PF_CHANGED[@]}" 2>/dev/null)"
PF_MAIL="$WORK/postfix/mail"
mkdir -p "$PF_MAIL" && chmod 755 "$WORK/postfix" && chown 65534:65534 "$PF_MAIL"
"$SHARED/setup-postfix.sh" start discard || die "postfix start"
PF_TOUCHED=1
postconf -e "transport_maps = inline:{ example.test=virtual:, sink.test=smtp:[127.0.0.1]:$SINK_PORT }" \
    "virtual_mailbox_base = $PF_MAIL" \
    "virtual_mailbox_maps = inline:{ a@example.test=example.test/a/, b@example.test=example.test/b/ }" \
    "virtual_uid_maps = static:65534" "virtual_gid_maps = static:65534" || die "postconf"
postfix reload >/dev/null 2>&1 || die "postfix reload"
sleep 1

maildir_count() { echo "find $1 -type f -path '*/new/*' | wc -l"; }
maildir_clean() { echo "find $1 -type f -path '*/new/*' -delete"; }
PF_PIDS="tr -d ' ' </var/spool/postfix/pid/master.pid"

/usr/bin/python3 - "$WORK/targets.json" "$SKIP_POSTERN" "$PORT" "$PF_LABEL" \
    "$(maildir_count "$POSTERN_MAIL")" "$(maildir_clean "$POSTERN_MAIL")" "cat $WORK/postern.pid" \
    "$(maildir_count "$PF_MAIL")" "$(maildir_clean "$PF_MAIL")" "$PF_PIDS" \
    "$PATHS" "$SINK_COUNT" "$POSTERN_QUEUE" "$SHARED/setup-postfix.sh queue" <<'EOF'
import json, sys
out, skip, port, pflabel, pc, pcl, pp, fc, fcl, fp, paths, sc, pq, fq = sys.argv[1:]
paths = paths.split(',')
t = []
if 'maildir' in paths:
    t.append(dict(label=pflabel, path='maildir (virtual)', port=2525, count_cmd=fc,
                  clean_cmd=fcl, pids_cmd=fp, queue_cmd=fq))
    if skip != '1':
        t.append(dict(label='postern', path='maildir', port=int(port), count_cmd=pc,
                      clean_cmd=pcl, pids_cmd=pp, queue_cmd=pq))
if 'relay' in paths:
    t.append(dict(label=pflabel, path='relay (smtp-sink)', port=2525, count_cmd=sc,
                  pids_cmd=fp, queue_cmd=fq, rcpt='b@sink.test'))
    if skip != '1':
        t.append(dict(label='postern', path='relay (smtp-sink)', port=int(port), count_cmd=sc,
                      pids_cmd=pp, queue_cmd=pq, rcpt='b@sink.test'))
json.dump(t, open(out, 'w'), indent=1)
EOF

DRIVE=(/usr/bin/python3 "$HERE/drive.py" --load "$SHARED/smtp-load.py" --out-dir "$RESULTS"
       --reps "$REPS" --sizes "$SIZES" --sessions "$SESSIONS" --msgs-table "$MSGS_TABLE"
       --warmup "$WARMUP" --run-timeout 120 --drain-timeout 60)
{
    echo "# $(date -u '+%F %T UTC') bench/run-bench.sh"
    echo "REPS=$REPS SIZES=$SIZES SESSIONS=$SESSIONS WARMUP=$WARMUP MSGS_TABLE=$MSGS_TABLE"
    echo "postern: $BIN serve -c bench.conf -o listen.mx.address=127.0.0.1:$PORT -o log.level=$POSTERN_LOG_LEVEL"
    echo "${DRIVE[*]} --targets targets.json"
    cat "$WORK/targets.json"
} >"$RESULTS/commands.txt"

log "=== 4. timed runs ($PATHS): ${PF_LABEL}$([ "$SKIP_POSTERN" != 1 ] && echo ' and Postern, interleaved') ==="
timeout 2700 "${DRIVE[@]}" --targets "$WORK/targets.json" >"$RESULTS/drive.log" 2>&1
rc=$?
tail -n +1 "$RESULTS/drive.log" | grep -E 'warm-up|->|rc=' | tail -5 >&2
[ "$rc" = 0 ] || log "drive.py exited $rc (see $RESULTS/drive.log)"

# ---- 5. fsync counts (each path) ----------------------------------------------
# sync_count LABEL PORT PIDS-CMD COUNT-CMD MSGS SESSIONS [RCPT [TRACE]]: strace -f
# -c on the server's processes/threads while smtp-source sends MSGS 5 KiB
# messages to RCPT (b@example.test) over SESSIONS sessions and they are
# delivered; prints the sync-type calls per message.  TRACE "all" counts every
# system call instead (then the "per message" figure is all calls).
sync_count() {
    local label="$1" port="$2" pidscmd="$3" cnt="$4" n="$5" s="$6" args=() p sp c0 calls
    local rcpt="${7:-b@example.test}" trace=(-e trace=fsync,fdatasync,sync_file_range,syncfs,sync,msync)
    [ "${8:-}" = all ] && trace=()
    for p in $(bash -c "$pidscmd"); do args+=(-p "$p"); done
    local out="$WORK/strace-$label-s$s.txt"
    c0="$(bash -c "$cnt")"
    timeout 120 strace -f -c -o "$out" "${trace[@]}" "${args[@]}" 2>/dev/null &
    sp=$!
    sleep 2
    timeout 100 smtp-source -s "$s" -m "$n" -l 5120 -f a@example.test -t "$rcpt" \
        "127.0.0.1:$port" >/dev/null 2>&1 || echo "($label: smtp-source failed)"
    for _ in $(seq 300); do
        [ "$(( $(bash -c "$cnt") - c0 ))" -ge "$n" ] && break; sleep 0.1
    done
    sleep 1
    kill -INT "$sp" 2>/dev/null; wait "$sp" 2>/dev/null
    calls="$(awk '$NF == "total" {print $4}' "$out" 2>/dev/null)"
    echo "== $label: $n messages of 5 KiB over $s session(s), delivered $(( $(bash -c "$cnt") - c0 )):" \
         "${calls:-0} $([ "${8:-}" = all ] && echo 'system calls' || echo 'sync-type calls')" \
         "= $(awk -v c="${calls:-0}" -v n="$n" 'BEGIN {printf "%.2f", c / n}') per message =="
    grep -E '^ *[0-9]' "$out" 2>/dev/null | grep -v total
}
if [ "$FSYNC_COUNT" = 1 ]; then
    log "=== fsync-type calls per message (strace, 200 msgs, ${SYNC_SESSIONS:-1 10} sessions) ==="
    : >"$RESULTS/fsync-count.txt"
    for s in ${SYNC_SESSIONS:-1 10}; do
        if has_path maildir; then
            sync_count "$PF_LABEL-maildir" "$PF_PORT" "$SHARED/setup-postfix.sh pids" \
                "$(maildir_count "$PF_MAIL")" 200 "$s" >>"$RESULTS/fsync-count.txt"
            if [ "$SKIP_POSTERN" != 1 ] && [ -n "$POSTERN_PID" ]; then
                # every thread of the one process (strace -f also follows new ones)
                sync_count postern-maildir "$PORT" "ls /proc/$POSTERN_PID/task" \
                    "$(maildir_count "$POSTERN_MAIL")" 200 "$s" >>"$RESULTS/fsync-count.txt"
            fi
        fi
        if has_path relay; then
            sync_count "$PF_LABEL-relay" "$PF_PORT" "$SHARED/setup-postfix.sh pids" \
                "$SINK_COUNT" 200 "$s" b@sink.test >>"$RESULTS/fsync-count.txt"
            if [ "$SKIP_POSTERN" != 1 ] && [ -n "$POSTERN_PID" ]; then
                sync_count postern-relay "$PORT" "ls /proc/$POSTERN_PID/task" \
                    "$SINK_COUNT" 200 "$s" b@sink.test >>"$RESULTS/fsync-count.txt"
            fi
        fi
    done
    cat "$RESULTS/fsync-count.txt" >&2
fi
if [ "$SYSCALL_PROFILE" = 1 ] && has_path relay && [ "$SKIP_POSTERN" != 1 ] && [ -n "$POSTERN_PID" ]; then
    log "=== every system call Postern makes on the relay path (strace -c, 500 msgs) ==="
    : >"$RESULTS/syscalls-relay.txt"
    for s in 1 50; do
        sync_count postern-relay-all "$PORT" "ls /proc/$POSTERN_PID/task" \
            "$SINK_COUNT" 500 "$s" b@sink.test all >>"$RESULTS/syscalls-relay.txt"
    done
fi

# ---- 6. Postfix discard path (the anchors' configuration) ---------------------
stop_postern
if [ "$POSTFIX_DISCARD" = 1 ]; then
    log "=== 6. ${PF_LABEL} discard path (as in RESULTS-anchors.md) ==="
    restore_postfix
    "$SHARED/setup-postfix.sh" start discard || die "postfix start discard"
    cat >"$WORK/targets-discard.json" <<EOF
[{"label": "$PF_LABEL", "path": "discard", "port": $PF_PORT,
  "count_cmd": "$SHARED/setup-postfix.sh count", "pids_cmd": "$PF_PIDS"}]
EOF
    echo "${DRIVE[*]} --targets targets-discard.json" >>"$RESULTS/commands.txt"
    cat "$WORK/targets-discard.json" >>"$RESULTS/commands.txt"
    timeout 1200 "${DRIVE[@]}" --targets "$WORK/targets-discard.json" \
        >>"$RESULTS/drive.log" 2>&1 || log "drive.py (discard) failed"
fi

# ---- 7. report ------------------------------------------------------------------
{
    echo "date: $(date -u '+%F %T UTC')"
    echo "kernel: $(uname -r)"
    echo "debian: $(cat /etc/debian_version 2>/dev/null)"
    echo "nproc: $(nproc)"
    echo "load average (1/5/15 min) at start: $LOAD_START, at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "mem: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "work folder fs: $(df -T "$WORK" | awk 'NR==2 {print $1, $2}')"
    echo "disk: $(lsblk -dno NAME,SIZE,ROTA,MODEL 2>/dev/null | tr '\n' ';')"
    echo "postfix: $(postconf -h mail_version)"
    echo "postern: $([ -x "$BIN" ] && "$BIN" version 2>&1 | head -1) ($POSTERN_STATUS)"
    echo "postern git: $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo 'no commit')" \
         "$(cd "$REPO" && git status --porcelain 2>/dev/null | grep -q . && echo '(+ uncommitted changes)')"
    [ -z "${POSTERN_BIN:-}" ] && [ -f "$BUILD_DIR/meson-info/intro-buildoptions.json" ] &&
        echo "postern build: $BUILD_DIR, $(/usr/bin/python3 -c '
import json, sys
o = {x["name"]: x["value"] for x in json.load(open(sys.argv[1]))}
print("buildtype", o.get("buildtype"), "optimization", o.get("optimization"), "b_ndebug", o.get("b_ndebug"))' \
        "$BUILD_DIR/meson-info/intro-buildoptions.json" 2>/dev/null)"
    echo "gcc: $(gcc --version | head -1)"
} >"$RESULTS/machine.txt"
/usr/bin/python3 "$HERE/drive.py" --summary-only --targets /dev/null --load /dev/null \
    --out-dir "$RESULTS" >/dev/null
log "=== results in $RESULTS ==="
cat "$RESULTS/machine.txt"
echo
cat "$RESULTS/summary.md"
echo "Postern: $POSTERN_STATUS"
