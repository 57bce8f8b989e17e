"""
metricsfix.py - helpers for tests that read /metrics (a listener of role
metrics): the configuration sections, a scrape parsed by the real
Prometheus client parser (python3-prometheus-client), raw HTTP requests
for the bounded parser's refusals, and waiting for a sample to reach a
value (counters move after the event that shows them, on another thread).
"""

import socket
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port


def metrics_conf(port, allow=None, timeout=None, address="127.0.0.1"):
    """conf= sections for make_server: a metrics listener on port."""
    conf = {"listen.metrics": {"address": "%s:%d" % (address, port), "role": "metrics"}}
    m = {}
    if allow is not None:
        m["allow"] = allow
    if timeout is not None:
        m["timeout"] = timeout
    if m:
        conf["metrics"] = m
    return conf


class Scrape:
    """One parsed scrape: families by name, samples by (name, labels)."""

    def __init__(self, text, content_type):
        self.text = text
        self.content_type = content_type
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples = {}
        for f in self.families.values():
            for s in f.samples:
                self.samples[(s.name, tuple(sorted(s.labels.items())))] = s.value

    def get(self, name, **labels):
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def event(self, cond_id):
        return self.get("postern_events_total", id=cond_id)


def scrape(port, source=None, host="127.0.0.1"):
    """GET /metrics with urllib (source: bind that address first)."""
    if source is None:
        with urllib.request.urlopen("http://%s:%d/metrics" % (host, port), timeout=10) as r:
            assert r.status == 200, r.status
            return Scrape(r.read().decode("utf-8"), r.headers.get("Content-Type"))
    status, head, body = raw_request(port, b"GET /metrics HTTP/1.0\r\n\r\n", source=source)
    assert status == 200, (status, body[:200])
    return Scrape(body.decode("utf-8"), head.get("content-type"))


def wait_sample(port, name, at_least, timeout=10.0, **labels):
    """Scrapes until name{labels} >= at_least; returns that scrape."""
    deadline = time.monotonic() + timeout
    while True:
        s = scrape(port)
        if s.get(name, **labels) >= at_least:
            return s
        if time.monotonic() >= deadline:
            raise AssertionError("%s%r is %s, wanted >= %s within %.0fs"
                                 % (name, labels, s.get(name, **labels), at_least, timeout))
        time.sleep(0.05)


def raw_request(port, data, source=None, timeout=10.0, host="127.0.0.1"):
    """Sends data as is, reads until the server closes: (status, fields, body);
    status None when the server closed without a status line."""
    sock = socket.create_connection((host, port), timeout=timeout,
                                    source_address=(source, 0) if source else None)
    try:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            buf += chunk
    finally:
        sock.close()
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines or not lines[0].startswith("HTTP/1.1 "):
        return None, {}, buf
    fields = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        fields[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), fields, body


__all__ = ["metrics_conf", "Scrape", "scrape", "wait_sample", "raw_request", "free_port"]
