#!/usr/bin/python3
"""bench/drive.py - runs the shared load harness against several servers,
interleaved, and adds the servers' own CPU time per message.

Called by bench/run-bench.sh; not meant to be run by hand, but it can be:

    drive.py --targets targets.json --load ../shared/bench/smtp-load.py \
             --out-dir results/RUN [--reps 3] [--sizes 5120,102400] \
             [--sessions 1,10,50] [--msgs-table "5120x1=1000,..."] [--warmup 300]

targets.json is a list of objects:
    {"label": "postern", "path": "maildir", "port": 2530,
     "count_cmd": "prints messages delivered so far",
     "pids_cmd": "prints the root PID(s) of the server",
     "clean_cmd": "optional: run between runs, e.g. empties the Maildir",
     "rcpt": "optional: the recipient for this target (default --to)",
     "queue_cmd": "optional: prints how many messages are still queued"}

For every (size, sessions, repetition) it runs each target once, in turn
(the order flips every repetition, so neither server always goes first),
each run being one call of smtp-load.py --reps 1 --warmup 0 with the
target's count command, so smtp-load.py measures the acceptance rate and
the end-to-end rate (until count_cmd has grown by the run's messages) and
appends its usual row to <out-dir>/load.csv.

Around that call this script samples the CPU time of the server's whole
process tree: for every live process under the root PIDs,
utime + stime + cutime + cstime from /proc/PID/stat (clock ticks). A child
that exits between the two samples is then counted through its parent's
cutime/cstime once reaped, so the sum only grows and the difference is the
CPU the server spent on the run: receiving, queueing and delivering
(smtp-load.py waits for the deliveries). Threads are included (the stat of
a process covers all its threads). Divided by the messages delivered, that
is "server CPU ms per message"; user (utime) and kernel (stime) time are
kept apart in the CSV. One row per run goes to <out-dir>/bench.csv,
and <out-dir>/summary.md gets the Markdown table.

Checked, not assumed, after each run: count_cmd is read before the run and
again once queue_cmd prints 0 (waited for up to --drain-timeout), and the
difference must equal the messages sent (count_ok; a duplicate delivery
fails it as a loss does); the queue must be empty (queue_left = 0). Peak
RSS: /proc/PID/clear_refs is set to 5 (resets VmHWM) for every process of
the tree before the run, and the VmHWM of the tree's processes is summed
after it (one process for Postern: its peak during the run; for Postfix a
sum over processes that counts shared pages once per process).

Everything goes to loopback (smtp-load.py refuses anything else) and every
run is bounded by --run-timeout and --drain-timeout.
"""
import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

CLK_TCK = os.sysconf('SC_CLK_TCK')
SMTP_SOURCE = shutil.which('smtp-source') or '/usr/sbin/smtp-source'


def sh(cmd, timeout=30):
    """Runs a shell command, returns its stdout ('' on any failure)."""
    if not cmd:
        return ''
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                              timeout=timeout).stdout
    except (subprocess.SubprocessError, OSError):
        return ''


def count(cmd):
    out = sh(cmd).split()
    try:
        return int(out[-1])
    except (IndexError, ValueError):
        return None


def parent_map():
    kids = {}
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        st = read_stat(int(d))
        if st is not None:
            kids.setdefault(st[1], []).append(int(d))
    return kids


def read_stat(pid):
    """(pid, ppid, utime+cutime, stime+cstime) or None if gone."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rindex(')') + 2:].split()
    # rest[0] = state (field 3), so field N is rest[N - 3]
    ppid = int(rest[1])
    # fields 14 utime, 15 stime, 16 cutime, 17 cstime
    user = int(rest[11]) + int(rest[13])
    system = int(rest[12]) + int(rest[14])
    return pid, ppid, user, system


def tree_ticks(roots):
    """(user, system) CPU ticks of the roots and all their live descendants,
    and how many processes that was."""
    t, pids = tree_ticks_pids(roots)
    return t, len(pids)


def tree_ticks_pids(roots):
    """(user, system) CPU ticks of the tree, and its PIDs."""
    kids = parent_map()
    seen, todo, user, system = set(), list(roots), 0, 0
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        st = read_stat(p)
        if st is None:
            continue
        user += st[2]
        system += st[3]
        todo.extend(kids.get(p, []))
    return (user, system), seen


def reset_peak_rss(pids):
    """Resets VmHWM of every process (clear_refs 5, Linux >= 4.0)."""
    for p in pids:
        try:
            with open(f'/proc/{p}/clear_refs', 'w') as f:
                f.write('5')
        except OSError:
            pass


def peak_rss_kib(pids):
    """Sum of VmHWM (KiB) of the processes still alive, or None."""
    total, seen = 0, 0
    for p in pids:
        try:
            with open(f'/proc/{p}/status') as f:
                for line in f:
                    if line.startswith('VmHWM:'):
                        total += int(line.split()[1])
                        seen += 1
        except (OSError, ValueError, IndexError):
            pass
    return total if seen else None


def wait_queue_empty(t, limit):
    """Waits (bounded) until the target's queue_cmd prints 0; returns what
    it printed last (None without queue_cmd or when unreadable)."""
    if not t.get('queue_cmd'):
        return None
    deadline = time.monotonic() + limit
    while True:
        left = count(t['queue_cmd'])
        if left == 0 or time.monotonic() >= deadline:
            return left
        time.sleep(0.1)


def machine_busy_ticks():
    """Busy ticks of the whole machine (all CPUs): total - idle - iowait."""
    with open('/proc/stat') as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4]


def roots_of(t):
    return [int(x) for x in sh(t['pids_cmd']).split() if x.isdigit()]


def wait_drain(t, before, n, limit):
    if before is None:
        return
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        now = count(t['count_cmd'])
        if now is not None and now - before >= n:
            return
        time.sleep(0.1)
    print(f"  {t['label']}: warm-up did not drain within {limit:.0f} s", file=sys.stderr)


def warmup(t, n, sessions, a):
    if n <= 0:
        return
    before = count(t['count_cmd'])
    cmd = [SMTP_SOURCE, '-s', str(sessions), '-m', str(n), '-l', '5120',
           '-f', a.sender, '-t', t.get('rcpt', a.rcpt), f"127.0.0.1:{t['port']}"]
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=a.run_timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        rc = 124
    wait_drain(t, before, n, a.drain_timeout)
    wait_queue_empty(t, a.drain_timeout)
    print(f"warm-up {t['label']}/{t['path']}: {n} msgs, {sessions} sessions, rc={rc}", flush=True)
    sh(t.get('clean_cmd', ''))


def last_row(path):
    with open(path, newline='') as f:
        rows = list(csv.DictReader(f))
    return rows[-1] if rows else None


def msgs_for(table, size, sess):
    t = {}
    for item in table.split(','):
        if item.strip():
            k, v = item.split('=')
            sz, ss = k.split('x')
            t[(int(sz), int(ss))] = int(v)
    return t.get((size, sess), 1000 if size <= 16384 else 500)


def one_run(t, size, sess, m, a, load_csv):
    roots = roots_of(t)
    if not roots:
        print(f"  {t['label']}: no server PID, skipped", file=sys.stderr)
        return None
    c0, pids0 = tree_ticks_pids(roots)
    n0 = len(pids0)
    reset_peak_rss(pids0)
    k0 = count(t['count_cmd'])
    b0 = machine_busy_ticks()
    w0 = time.monotonic()
    cmd = [sys.executable, a.load, '--server', t['label'], '--path', t['path'],
           '--port', str(t['port']), '--sizes', str(size), '--sessions', str(sess),
           '--reps', '1', '--msgs', str(m), '--warmup', '0', '--settle', '0',
           '--count-cmd', t['count_cmd'], '--from', a.sender, '--to', t.get('rcpt', a.rcpt),
           '--run-timeout', str(a.run_timeout), '--drain-timeout', str(a.drain_timeout),
           '--out', load_csv]
    if a.note:
        cmd += ['--note', a.note]
    limit = a.run_timeout + a.drain_timeout + 60
    try:
        subprocess.run(cmd, timeout=limit, check=False)
    except subprocess.TimeoutExpired:
        print(f"  {t['label']}: smtp-load.py exceeded {limit:.0f} s", file=sys.stderr)
        return None
    wall = time.monotonic() - w0
    b1 = machine_busy_ticks()
    c1, pids1 = tree_ticks_pids(roots)
    n1 = len(pids1)
    rss = peak_rss_kib(pids1)
    # checked, not assumed: the queue drains and the count grew by exactly m
    left = wait_queue_empty(t, a.drain_timeout)
    if t.get('queue_cmd'):
        time.sleep(0.5)     # a last delivery's count line (smtp-sink: at ".")
    k1 = count(t['count_cmd'])
    counted = k1 - k0 if k0 is not None and k1 is not None else None
    r = last_row(load_csv)
    if r is None or r['server'] != t['label'] or int(r['size']) != size \
            or int(r['sessions']) != sess:
        return None
    done = int(r['data_done'] or 0)
    delivered = int(r['delivered']) if r.get('delivered') not in (None, '') else done
    user_s = (c1[0] - c0[0]) / CLK_TCK
    sys_s = (c1[1] - c0[1]) / CLK_TCK
    cpu_s = user_s + sys_s
    per = 1000.0 * cpu_s / delivered if delivered > 0 else ''
    ok = r['rc'] == '0' and done == m and delivered >= m and counted == m \
        and left in (None, 0)
    row = dict(server=t['label'], path=t['path'], size=size, sessions=sess, msgs=m,
               rc=r['rc'], data_done=done, delivered=delivered,
               accept_rate=r['accept_rate'], e2e_rate=r['e2e_rate'],
               server_cpu_s=f'{cpu_s:.2f}', server_user_s=f'{user_s:.2f}',
               server_sys_s=f'{sys_s:.2f}',
               cpu_ms_per_msg=f'{per:.3f}' if per != '' else '',
               server_cores=f'{cpu_s / wall:.2f}' if wall > 0 else '',
               rest_cores=f'{((b1 - b0) / CLK_TCK - cpu_s) / wall:.2f}' if wall > 0 else '',
               machine_cpu_busy_pct=r['cpu_busy_pct'], iowait_pct=r['iowait_pct'],
               client_cpu_s=r['client_cpu_s'], listen_overflows=r['listen_overflows'],
               procs_before=n0, procs_after=n1,
               counted=counted if counted is not None else '',
               queue_left=left if left is not None else '',
               peak_rss_mib=f'{rss / 1024:.1f}' if rss is not None else '',
               ok=int(ok), started=r['started'])
    print(f"    -> {t['label']}: server CPU {cpu_s:.2f} s = {row['cpu_ms_per_msg']} ms/msg, "
          f"counted {counted} of {m}, queue left {left}, peak RSS {row['peak_rss_mib']} MiB, "
          f"{'ok' if ok else 'NOT OK'}", flush=True)
    return row


def fmt(vals, digits=0):
    if not vals:
        return '-'
    return (f'{statistics.median(vals):.{digits}f} '
            f'({min(vals):.{digits}f}–{max(vals):.{digits}f})')


def summary(rows):
    groups = {}
    for r in rows:
        k = (r['server'], r['path'], int(r['size']), int(r['sessions']))
        groups.setdefault(k, []).append(r)
    order = sorted(groups, key=lambda k: (k[2], k[3], k[0], k[1]))
    out = ['| server | path | msg size | sessions | msgs/run | accepted msgs/s | '
           'end-to-end msgs/s | server CPU ms/msg | of which kernel % | server cores busy | '
           'rest of machine, cores | peak RSS MiB | count = sent | queue empty | runs ok |',
           '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    for k in order:
        g = groups[k]
        acc = [float(r['accept_rate']) for r in g if r['accept_rate']]
        e2e = [float(r['e2e_rate']) for r in g if r['e2e_rate']]
        cpu = [float(r['cpu_ms_per_msg']) for r in g if r['cpu_ms_per_msg']]
        cores = [float(r['server_cores']) for r in g if r['server_cores']]
        rest = [float(r['rest_cores']) for r in g if r.get('rest_cores')]
        kern = [100.0 * float(r['server_sys_s']) / float(r['server_cpu_s']) for r in g
                if r.get('server_sys_s') and float(r['server_cpu_s']) > 0]
        rss = [float(r['peak_rss_mib']) for r in g if r.get('peak_rss_mib')]
        cnt = [r for r in g if r.get('counted', '') != '']
        cnt_ok = sum(1 for r in cnt if int(r['counted']) == int(r['msgs']))
        q = [r for r in g if r.get('queue_left', '') != '']
        q_ok = sum(1 for r in q if int(r['queue_left']) == 0)
        ok = sum(int(r['ok']) for r in g)
        size = k[2]
        sz = f'{size // 1024} KiB' if size % 1024 == 0 else f'{size} B'
        out.append(f"| {k[0]} | {k[1]} | {sz} | {k[3]} | {g[0]['msgs']} | {fmt(acc)} | "
                   f"{fmt(e2e)} | {fmt(cpu, 2)} | {fmt(kern)} | {fmt(cores, 2)} | {fmt(rest, 2)} | {fmt(rss, 1)} | "
                   f"{f'{cnt_ok}/{len(cnt)}' if cnt else '-'} | {f'{q_ok}/{len(q)}' if q else '-'} | "
                   f"{ok}/{len(g)} |")
    return '\n'.join(out) + '\n'


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--targets', required=True)
    ap.add_argument('--load', required=True, help='path of smtp-load.py')
    ap.add_argument('--out-dir', required=True)
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--sizes', default='5120,102400')
    ap.add_argument('--sessions', default='1,10,50')
    ap.add_argument('--msgs-table', default='')
    ap.add_argument('--warmup', type=int, default=300)
    ap.add_argument('--from', dest='sender', default='a@example.test')
    ap.add_argument('--to', dest='rcpt', default='b@example.test')
    ap.add_argument('--run-timeout', type=float, default=120.0)
    ap.add_argument('--drain-timeout', type=float, default=60.0)
    ap.add_argument('--settle', type=float, default=1.0)
    ap.add_argument('--note', default='')
    ap.add_argument('--summary-only', action='store_true',
                    help='only rewrite summary.md from bench.csv')
    a = ap.parse_args()

    os.makedirs(a.out_dir, exist_ok=True)
    bench_csv = os.path.join(a.out_dir, 'bench.csv')
    load_csv = os.path.join(a.out_dir, 'load.csv')
    fields = ['server', 'path', 'size', 'sessions', 'msgs', 'rc', 'data_done', 'delivered',
              'accept_rate', 'e2e_rate', 'server_cpu_s', 'server_user_s', 'server_sys_s',
              'cpu_ms_per_msg', 'server_cores',
              'rest_cores',
              'machine_cpu_busy_pct', 'iowait_pct', 'client_cpu_s', 'listen_overflows',
              'procs_before', 'procs_after', 'counted', 'queue_left', 'peak_rss_mib',
              'ok', 'started']

    if not a.summary_only:
        with open(a.targets) as f:
            targets = json.load(f)
        if not os.access(SMTP_SOURCE, os.X_OK):
            sys.exit('smtp-source not found (apt-get install postfix)')
        smax = max(int(x) for x in a.sessions.split(','))
        for t in targets:
            sh(t.get('clean_cmd', ''))
            warmup(t, a.warmup, smax, a)
        new = not os.path.exists(bench_csv) or os.path.getsize(bench_csv) == 0
        with open(bench_csv, 'a', newline='') as outf:
            w = csv.DictWriter(outf, fieldnames=fields)
            if new:
                w.writeheader()
            for size in [int(x) for x in a.sizes.split(',')]:
                for sess in [int(x) for x in a.sessions.split(',')]:
                    m = msgs_for(a.msgs_table, size, sess)
                    for rep in range(1, a.reps + 1):
                        order = targets if rep % 2 else list(reversed(targets))
                        for t in order:
                            row = one_run(t, size, sess, m, a, load_csv)
                            if row is not None:
                                w.writerow(row)
                                outf.flush()
                            sh(t.get('clean_cmd', ''))
                            time.sleep(a.settle)

    rows = []
    if os.path.exists(bench_csv):
        with open(bench_csv, newline='') as f:
            rows = list(csv.DictReader(f))
    table = summary(rows)
    with open(os.path.join(a.out_dir, 'summary.md'), 'w') as f:
        f.write(table)
    print(table)


if __name__ == '__main__':
    main()
