"""
dnszone.py - real DNS servers on loopback for the end-to-end tests.

Two servers, both started as child processes on a free port, waited for
until they answer (bounded: START_TIMEOUT), and stopped by PID:

* DnsServer: NSD (Debian's nsd) serving zone files the test gives, on
  127.0.0.1 (and ::1 with ipv6=True). Every zone gets a SOA (negative TTL
  = its `neg_ttl`, default 60) and an NS; a root zone is added so that
  names outside the test's zones answer NXDOMAIN, never REFUSED.

      from dnszone import DnsServer, mx, a, aaaa, txt, ptr
      with DnsServer(tmp_path, zones={
              "example.test": [mx("@", 10, "mx.example.test"),
                               a("mx", "127.0.0.1", ttl=300)],
              "127.in-addr.arpa": [ptr("127.0.0.1", "mx.example.test")],
      }) as dns:
          dns.port          # UDP and TCP, 127.0.0.1
          dns.servers       # "127.0.0.1:PORT", for dns.servers = ...
          dns.servers6      # "[::1]:PORT" (ipv6=True only)

  A zone's value is a list of record lines (or one string) in zone-file
  syntax, names relative to the zone ("@" is the zone itself) or
  absolute with a trailing dot. Helpers build the lines: mx(name, pref,
  host), a(name, ip), aaaa(name, ip), txt(name, *strings), ptr(ip, host),
  cname(name, target), each with ttl=None (the zone's $TTL, `ttl`,
  default 60). txt() splits strings longer than 255 bytes itself.

* FailingDnsServer: a small dnslib server (python3-dnslib, run with
  Debian's /usr/bin/python3) for failure modes, UDP on 127.0.0.1:

      with FailingDnsServer(tmp_path, rules={"drop.test": "drop",
                                             "refused.test": "refused",
                                             "servfail.test": "servfail"}) as bad:
          bad.servers

  A rule applies to a name and every name under it: "drop" never
  answers (the client times out), "refused" answers REFUSED, "servfail"
  SERVFAIL, "nxdomain" NXDOMAIN; a key "name:TYPE" (e.g.
  "mx.example.test:AAAA") applies to that type only. It can also serve
  records, for a test where some lookups work and others fail on the
  same server: records=[a("mx.example.test.", "127.0.0.1", ttl=60),
  mx("example.test.", 10, "mx.example.test")] (absolute names, with a
  ttl, else 0); a name with records but none of the type asked answers
  NOERROR without records (NODATA). A "name:TYPE" rule wins over
  records, records over other rules; anything else is NXDOMAIN. It counts the queries it saw: bad.queries() (from
  its log file).

Both raise RuntimeError (with the server's output) if it does not
answer within START_TIMEOUT.
"""

import ipaddress
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
SYSTEM_PYTHON = "/usr/bin/python3"


# ---------------------------------------------------------------- records

def _ttl(ttl):
    return "" if ttl is None else f"{int(ttl)} "


def _abs(host):
    return host if host.endswith(".") else host + "."


def mx(name, pref, host, ttl=None):
    """An MX line; host "." (or "") is a null MX (RFC 7505)."""
    target = "." if host in ("", ".") else _abs(host)
    return f"{name} {_ttl(ttl)}IN MX {int(pref)} {target}"


def a(name, ip, ttl=None):
    return f"{name} {_ttl(ttl)}IN A {ipaddress.IPv4Address(ip)}"


def aaaa(name, ip, ttl=None):
    return f"{name} {_ttl(ttl)}IN AAAA {ipaddress.IPv6Address(ip)}"


def cname(name, target, ttl=None):
    return f"{name} {_ttl(ttl)}IN CNAME {_abs(target)}"


def _quote(s):
    if isinstance(s, str):
        s = s.encode()
    out = []
    for b in s:
        if b in (0x22, 0x5C):
            out.append("\\" + chr(b))
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append("\\%03d" % b)
    return '"' + "".join(out) + '"'


def txt(name, *strings, ttl=None):
    """A TXT line of the given character-strings; each longer than 255
    bytes is split into 255-byte strings (a resolver joins them)."""
    parts = []
    for s in strings:
        b = s.encode() if isinstance(s, str) else s
        parts += [b[i:i + 255] for i in range(0, len(b), 255)] or [b""]
    return f"{name} {_ttl(ttl)}IN TXT " + " ".join(_quote(p) for p in parts)


def reverse_name(ip):
    """The absolute reverse name of an address (with the trailing dot)."""
    return ipaddress.ip_address(ip).reverse_pointer + "."


def ptr(ip, host, ttl=None):
    """A PTR line for an address; goes in the zone that holds its
    reverse name (127.in-addr.arpa, 1.0.0...ip6.arpa)."""
    return f"{reverse_name(ip)} {_ttl(ttl)}IN PTR {_abs(host)}"


# ---------------------------------------------------------------- helpers

def _free_port(ipv6=False):
    """A port free for TCP and UDP on 127.0.0.1 (and ::1)."""
    for _ in range(50):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
        socks = [t]
        try:
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(u)
            u.bind(("127.0.0.1", port))
            if ipv6:
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    s6 = socket.socket(socket.AF_INET6, kind)
                    socks.append(s6)
                    s6.bind(("::1", port))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port for a DNS server")


def ipv6_loopback_available():
    """True if ::1 can be bound here."""
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        try:
            s.bind(("::1", 0))
        finally:
            s.close()
        return True
    except OSError:
        return False


def _probe(host, port, name="."):
    """Sends one SOA query over UDP; True if anything answered (within 0.3 s)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    q = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
    for label in [x for x in name.split(".") if x]:
        q += bytes([len(label)]) + label.encode()
    q += b"\x00" + struct.pack(">HH", 6, 1)
    s = socket.socket(fam, socket.SOCK_DGRAM)
    try:
        s.settimeout(0.3)
        s.sendto(q, (host, port))
        data, _ = s.recvfrom(4096)
        return len(data) >= 12 and data[:2] == b"\x42\x42"
    except OSError:
        return False
    finally:
        s.close()


class _Child:
    """A server process: started, waited for, stopped by PID."""

    def __init__(self, root, name):
        self.dir = Path(root) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = None
        self.port = None
        self.probe_name = "."

    @property
    def servers(self):
        """The dns.servers value for this server (IPv4)."""
        return f"127.0.0.1:{self.port}"

    def _start(self, argv):
        self._out = open(self.dir / "server.out", "wb")
        self.proc = subprocess.Popen(argv, stdout=self._out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if _probe("127.0.0.1", self.port, self.probe_name):
                return self
            time.sleep(0.05)
        out = self.output()
        self.stop()
        raise RuntimeError(f"{argv[0]} did not answer on port {self.port}: {out}")

    def output(self):
        try:
            return (self.dir / "server.out").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=STOP_TIMEOUT)
        self.proc = None
        self._out.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# ---------------------------------------------------------------- NSD

class DnsServer(_Child):
    """NSD serving zones (see the module's docstring)."""

    def __init__(self, root, zones, ttl=60, neg_ttl=60, ipv6=False, port=None):
        super().__init__(root, "nsd")
        self.ipv6 = ipv6
        self.port = port or _free_port(ipv6)
        zones = dict(zones)
        zones.setdefault(".", [])
        conf = [
            "server:",
            f"    ip-address: 127.0.0.1@{self.port}",
        ]
        if ipv6:
            conf.append(f"    ip-address: ::1@{self.port}")
        conf += [
            f"    do-ip6: {'yes' if ipv6 else 'no'}",
            '    username: ""',
            '    chroot: ""',
            f'    zonesdir: "{self.dir}"',
            '    database: ""',
            f'    zonelistfile: "{self.dir}/zone.list"',
            f'    xfrdfile: "{self.dir}/xfrd.state"',
            f'    xfrdir: "{self.dir}"',
            f'    pidfile: "{self.dir}/nsd.pid"',
            f'    logfile: "{self.dir}/nsd.log"',
            "    server-count: 1",
            "    verbosity: 1",
            "remote-control:",
            "    control-enable: no",
        ]
        for i, (zone, records) in enumerate(zones.items()):
            origin = "." if zone in (".", "") else _abs(zone)
            if isinstance(records, str):
                records = [records]
            text = [
                f"$ORIGIN {origin}",
                f"$TTL {int(ttl)}",
                f"@ IN SOA ns.test. hostmaster.test. ( 1 3600 600 86400 {int(neg_ttl)} )",
                "@ IN NS ns.test.",
                *records,
                "",
            ]
            fname = f"zone{i}.zone"
            (self.dir / fname).write_text("\n".join(text))
            conf += ["zone:", f'    name: "{origin}"', f'    zonefile: "{fname}"']
        (self.dir / "nsd.conf").write_text("\n".join(conf) + "\n")
        self._start(["nsd", "-d", "-c", str(self.dir / "nsd.conf")])

    @property
    def servers6(self):
        """The dns.servers value for this server on ::1 (ipv6=True)."""
        return f"[::1]:{self.port}"


# ---------------------------------------------------------------- dnslib

class FailingDnsServer(_Child):
    """A dnslib server that drops, refuses or fails (see the docstring)."""

    def __init__(self, root, rules, records=(), port=None):
        super().__init__(root, "faildns")
        self.port = port or _free_port()
        self.probe_name = "probe.invalid"
        spec = self.dir / "rules.json"
        spec.write_text(json.dumps({
            "rules": {k.rstrip(".").lower() if ":" not in k else
                      k.split(":")[0].rstrip(".").lower() + ":" + k.split(":")[1].upper(): v
                      for k, v in rules.items()},
            "records": "\n".join(records),
        }))
        self._start([SYSTEM_PYTHON, os.path.abspath(__file__), "--serve-failing",
                     str(self.port), str(spec), str(self.dir / "queries.log")])

    def queries(self, name=None):
        """Names queried so far (in order), or how often name was."""
        try:
            seen = (self.dir / "queries.log").read_text().split()
        except OSError:
            seen = []
        seen = [q for q in seen if q != "probe.invalid"]
        return seen if name is None else seen.count(name.rstrip(".").lower())


def _serve_failing(port, spec, log):
    from dnslib import DNSRecord, QTYPE, RCODE, RR  # Debian's python3-dnslib

    conf = json.loads(Path(spec).read_text())
    rules = conf["rules"]
    records = RR.fromZone(conf["records"]) if conf["records"].strip() else []
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    logf = open(log, "a", buffering=1)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        r, _, _ = select.select([sock], [], [], 1.0)
        if not r:
            continue
        data, peer = sock.recvfrom(65535)
        try:
            req = DNSRecord.parse(data)
        except Exception:  # garbage: no answer
            continue
        qname = str(req.q.qname).rstrip(".").lower()
        qtype = QTYPE.get(req.q.qtype)
        logf.write(qname + "\n")
        reply = req.reply()
        labels = qname.split(".")
        suffixes = [".".join(labels[i:]) for i in range(len(labels))]
        action = next((rules[f"{x}:{qtype}"] for x in suffixes if f"{x}:{qtype}" in rules),
                      None)
        owned = [rr for rr in records if str(rr.rname).rstrip(".").lower() == qname]
        if action is None and owned:
            for rr in owned:
                if rr.rtype == req.q.qtype:
                    reply.add_answer(rr)
            sock.sendto(reply.pack(), peer)
            continue
        if action is None:
            action = next((rules[x] for x in suffixes if x in rules), "nxdomain")
        if action == "drop":
            continue
        reply.header.rcode = {"refused": RCODE.REFUSED, "servfail": RCODE.SERVFAIL,
                              "nxdomain": RCODE.NXDOMAIN}.get(action, RCODE.NXDOMAIN)
        sock.sendto(reply.pack(), peer)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--serve-failing":
        _serve_failing(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        sys.exit("usage: dnszone.py --serve-failing PORT RULES.json LOG")
