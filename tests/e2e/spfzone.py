"""
spfzone.py - a DNS server on loopback serving one scenario of the RFC 7208
SPF test suite (../shared/testdata/spf/rfc7208-tests.yml), for
test_spf_suite.py and test_spf.py.

    from spfzone import SpfZoneServer
    with SpfZoneServer(tmp_path, zonedata) as dns:   # a scenario's zonedata
        dns.servers                                  # "127.0.0.1:PORT"

zonedata maps a name to a list of entries as the suite writes them:
{"SPF": text}, {"TXT": text or [strings]} (one RR of several
character-strings), {"A": ip}, {"AAAA": ip}, {"MX": [pref, host]},
{"PTR": name}, {"CNAME": name}, "TIMEOUT", {"TXT": "NONE"}. It follows the
suite's reference driver (pyspf's testspf.py): SPF records are served as
TXT unless the name lists a TXT of its own ("TXT: NONE" counts and serves
nothing); TIMEOUT makes every query type not listed before it go
unanswered (the client times out); names absent are NXDOMAIN, names
present without the type NODATA; a CNAME is answered with its target's
records of the type asked. Names are matched as octets (latin-1, ASCII
case folded), so the suite's non-ASCII names work. UDP (truncated past 512
octets without EDNS) and TCP, on 127.0.0.1; a dnslib server run with
Debian's /usr/bin/python3, started and stopped by PID (dnszone._Child).
"""

import json
import os
import select
import signal
import socket
import struct
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dnszone import SYSTEM_PYTHON, _Child, _free_port  # noqa: E402


def _key(name):
    return name.rstrip(".").encode("latin-1", "replace").lower().decode("latin-1")


def _as_latin1(s):
    return s if isinstance(s, str) else str(s)


def compile_zone(zonedata):
    """The scenario's zonedata as the server's JSON: name -> {types}."""
    out = {}
    for name, entries in (zonedata or {}).items():
        z = {"A": [], "AAAA": [], "MX": [], "PTR": [], "TXT": [], "CNAME": None,
             "timeout": False, "before": []}
        spf, has_txt = [], False
        for ent in entries or []:
            if ent == "TIMEOUT":
                z["timeout"] = True
                z["before"] = sorted({t for t in ("A", "AAAA", "MX", "PTR", "CNAME")
                                      if z[t]} | ({"TXT"} if z["TXT"] or spf else set()))
                continue
            (typ, val), = ent.items()
            if typ == "SPF":
                spf.append(val)
            elif typ == "TXT":
                has_txt = True
                if val != "NONE":
                    z["TXT"].append(val if isinstance(val, list) else [val])
            elif typ == "MX":
                z["MX"].append([int(val[0]), _as_latin1(val[1])])
            elif typ == "CNAME":
                z["CNAME"] = _as_latin1(val)
            else:
                z[typ].append(_as_latin1(val))
        if not has_txt:
            z["TXT"] = [v if isinstance(v, list) else [v] for v in spf]
        if z["timeout"] and "TXT" in z["before"] and not z["TXT"]:
            z["before"].remove("TXT")
        out[_key(name)] = z
    return out


class SpfZoneServer(_Child):
    """A dnslib server of one SPF-suite scenario (see the docstring)."""

    def __init__(self, root, zonedata, port=None):
        super().__init__(root, "spfdns")
        self.port = port or _free_port()
        self.probe_name = "probe.invalid"
        spec = self.dir / "zone.json"
        spec.write_text(json.dumps(compile_zone(zonedata)))
        self._start([SYSTEM_PYTHON, os.path.abspath(__file__), "--serve", str(self.port),
                     str(spec)])


def _labels(name):
    b = name.rstrip(".").encode("latin-1", "replace")
    return [x for x in b.split(b".") if x] if b else []


def _answer(zone, data):
    from dnslib import (AAAA, CNAME, MX, PTR, QTYPE, RCODE, RR, TXT, A,  # noqa: F401
                        DNSLabel, DNSRecord)

    req = DNSRecord.parse(data)
    qname = b".".join(req.q.qname.label).decode("latin-1")
    qtype = QTYPE.get(req.q.qtype)
    reply = req.reply()
    z = zone.get(_key(qname))
    if z is None:
        reply.header.rcode = RCODE.NXDOMAIN
        return reply
    if z["timeout"] and qtype not in z["before"]:
        return None
    owner = req.q.qname
    if z["CNAME"] and qtype != "CNAME":
        target = DNSLabel(_labels(z["CNAME"]))
        reply.add_answer(RR(owner, QTYPE.CNAME, rdata=CNAME(target), ttl=0))
        owner = target
        z = zone.get(_key(z["CNAME"]))
        if z is None:
            return reply
        if z["timeout"] and qtype not in z["before"]:
            return None
    for v in z.get(qtype, []) if qtype in ("A", "AAAA", "MX", "PTR", "TXT") else []:
        if qtype == "A":
            rd = A(v)
        elif qtype == "AAAA":
            rd = AAAA(v)
        elif qtype == "MX":
            rd = MX(DNSLabel(_labels(v[1])), v[0])
        elif qtype == "PTR":
            rd = PTR(DNSLabel(_labels(v)))
        else:
            parts = []
            for s in v:
                b = s.encode("latin-1", "replace")
                parts += [b[i:i + 255] for i in range(0, len(b), 255)] or [b""]
            rd = TXT(parts or [b""])  # no strings: not encodable, served as one empty
        reply.add_answer(RR(owner, getattr(QTYPE, qtype), rdata=rd, ttl=0))
    return reply


def _serve(port, spec):
    zone = json.loads(Path(spec).read_text())
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", port))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", port))
    tcp.listen(16)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        r, _, _ = select.select([udp, tcp], [], [], 1.0)
        if udp in r:
            data, peer = udp.recvfrom(65535)
            try:
                reply = _answer(zone, data)
            except Exception:  # garbage: no answer
                reply = None
            if reply is not None:
                out = reply.pack()
                if len(out) > 512 and b"\x00\x00\x29" not in data[12 + len(data[12:]):]:
                    reply.rr = []
                    reply.header.tc = 1
                    out = reply.pack()
                udp.sendto(out, peer)
        if tcp in r:
            conn, _ = tcp.accept()
            conn.settimeout(2.0)
            try:
                n = struct.unpack(">H", conn.recv(2))[0]
                data = b""
                while len(data) < n:
                    chunk = conn.recv(n - len(data))
                    if not chunk:
                        break
                    data += chunk
                reply = _answer(zone, data)
                if reply is not None:
                    out = reply.pack()
                    conn.sendall(struct.pack(">H", len(out)) + out)
            except Exception:
                pass
            finally:
                conn.close()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        _serve(int(sys.argv[2]), sys.argv[3])
    else:
        sys.exit("usage: spfzone.py --serve PORT ZONE.json")
