"""
The official RFC 7208 test suite (../shared/testdata/spf/rfc7208-tests.yml,
16 scenarios, 203 tests) against `postern spf`, the SPF evaluator on the
daemon's resolver: each scenario's zone data is served by a DNS server of
our own on loopback (spfzone.py), started once per scenario, and each test
is one `postern spf --ip HOST --helo HELO --from MAILFROM`. Any result the
test lists is accepted; an explanation is compared for fail results
(DEFAULT: the record had no usable exp=, so none is printed).
"""

import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from conftest import run_cli
from spfzone import SpfZoneServer

SUITE = Path(os.environ.get("POSTERN_SPF_SUITE", Path(__file__).resolve().parents[3]
                            / "shared" / "testdata" / "spf" / "rfc7208-tests.yml"))
if not SUITE.exists():
    SUITE = Path("/work/shared/testdata/spf/rfc7208-tests.yml")


def _scenarios():
    if not SUITE.exists():
        return []
    with open(SUITE, encoding="latin-1") as f:
        return [d for d in yaml.safe_load_all(f) if d]


SCENARIOS = _scenarios()
RESULTS = {}


def _run(servers, t):
    host, helo = str(t["host"]), str(t.get("helo", ""))
    frm = t.get("mailfrom", "")
    frm = "" if frm is None else str(frm)
    r = run_cli("spf", "-o", f"dns.servers={servers}", "-o", "dns.timeout=1",
                "-o", "dns.attempts=1", "-o", "server.hostname=receiver.test",
                "--ip", host, "--helo", helo, "--from", frm, timeout=30)
    m = re.search(r"^result=(\w+)", r.stdout, re.M)
    e = re.search(r'^explanation="(.*)"$', r.stdout, re.M)
    return (m.group(1) if m and r.returncode == 0 else f"rc={r.returncode} {r.stderr.strip()}",
            e.group(1) if e else None, r.stdout)


@pytest.mark.skipif(not SCENARIOS, reason="the RFC 7208 suite is not on this machine")
@pytest.mark.parametrize("n", range(len(SCENARIOS)) if SCENARIOS else [0])
def test_rfc7208_scenario(n, tmp_path):
    sc = SCENARIOS[n]
    tests = sc["tests"]
    bad = []
    with SpfZoneServer(tmp_path, sc.get("zonedata")) as dns:
        with ThreadPoolExecutor(max_workers=4) as pool:
            runs = {name: pool.submit(_run, dns.servers, t) for name, t in tests.items()}
            for name, t in tests.items():
                got, expl, out = runs[name].result()
                want = t["result"] if isinstance(t["result"], list) else [t["result"]]
                ok = got in want
                if ok and got == "fail" and "explanation" in t:
                    want_e = t["explanation"]
                    ok = expl is None if want_e == "DEFAULT" else expl == want_e
                if not ok:
                    bad.append(f"{name}: want {want} {t.get('explanation', '')!r}, got {out!r}")
                RESULTS[name] = ok
    assert not bad, f"{sc['description']}: {len(bad)}/{len(tests)} failed:\n" + "\n".join(bad)


def test_rfc7208_suite_has_203_tests():
    if not SCENARIOS:
        pytest.skip("the RFC 7208 suite is not on this machine")
    assert len(SCENARIOS) == 16
    assert sum(len(s["tests"]) for s in SCENARIOS) == 203
