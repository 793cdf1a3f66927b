"""Operations: /healthz, /metrics in Prometheus format, JSON logs without key material."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from phe_trace.logs import JsonFormatter
from phe_trace.server import ServerContext
from phe_trace.server.metrics import Counter, Histogram, Registry
from phe_trace.serving import free_port

from .helpers import NOW, Authority, day_keys, publish_body

_SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"]*",?)*\})? \S+$')


def test_healthz(client: httpx.Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_metrics_after_publishes(client: httpx.Client, authority: Authority) -> None:
    """Counters for publishes, rejects by code and keys stored appear (SPEC PUB-34)."""
    client.post("/v1/publish", json=publish_body(authority, day_keys(NOW, 4), NOW))
    client.post("/v1/publish", content=b"{", headers={"content-type": "application/json"})
    text = client.get("/metrics").text
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert all(_SAMPLE.match(ln) for ln in lines), lines
    values = {ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1]) for ln in lines}
    assert values["phe_trace_publish_total"] == 1
    assert values["phe_trace_keys_inserted_total"] == 4
    assert values['phe_trace_publish_rejected_total{code="bad_request"}'] == 1
    assert values["phe_trace_keys_stored"] == 4
    assert "# TYPE phe_trace_export_batch_seconds histogram" in text


def test_histogram_and_counter_format() -> None:
    """Cumulative buckets, +Inf, _sum and _count as the text format requires."""
    registry = Registry()
    hist = Histogram("h", "help", (1, 2))
    counter = Counter("c", "help")
    registry.add(hist)
    registry.add(counter)
    for v in (0.5, 1.5, 5):
        hist.observe(v)
    counter.inc(code='a"b')
    text = registry.render()
    assert 'h_bucket{le="1"} 1' in text and 'h_bucket{le="2"} 2' in text
    assert 'h_bucket{le="+Inf"} 3' in text and "h_count 3" in text and "h_sum 7" in text
    assert 'c{code="a\\"b"} 1' in text
    with pytest.raises(ValueError):
        registry.add(Counter("c", "again"))


def test_logs_are_json_without_key_material(
    client: httpx.Client, authority: Authority, capfd: pytest.CaptureFixture[str]
) -> None:
    """Log lines are JSON objects carrying no key, token or address (SPEC PUB-35)."""
    keys = day_keys(NOW, 3)
    body = publish_body(authority, keys, NOW)
    client.post("/v1/publish", json=body)
    client.post("/v1/publish", json=body)  # a rejected replay is logged too
    err = capfd.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("{")]
    assert any(json.loads(ln)["event"] == "publish" for ln in lines)
    secrets_ = [k["key"] for k in keys] + [
        body["hmacKey"],
        body["verificationPayload"][:40],
        "127.0.0.1",
    ]
    secrets_ += [base64.b16encode(base64.b64decode(k["key"])).decode().lower() for k in keys]
    for ln in lines:
        assert not any(s in ln for s in secrets_)
    record = logging.LogRecord("x", logging.INFO, "f", 1, "event", None, None)
    assert json.loads(JsonFormatter().format(record))["event"] == "event"


def test_server_run_writes_json_lines_and_no_client_address(tmp_path: Path) -> None:
    """A real ``server run`` process: after its start-up line, every line on stderr is a
    JSON object, uvicorn's own records among them (a request that is not HTTP), and none
    holds the client's address (SPEC OPS-10, PUB-35). The server listens on 127.0.0.2,
    the client connects from 127.0.0.1."""
    host, client_host = "127.0.0.2", "127.0.0.1"
    port = free_port(host)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHE_TRACE_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "phe_trace.cli", "server", "run", "--role", "keyserver",
         "--host", host, "--port", str(port), "--data-dir", str(tmp_path / "d")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    transport = httpx.HTTPTransport(local_address=client_host)
    try:
        with httpx.Client(base_url=f"http://{host}:{port}", transport=transport) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    assert client.get("/healthz", timeout=5).status_code == 200
                    break
                except httpx.TransportError:
                    assert proc.poll() is None and time.monotonic() < deadline
                    time.sleep(0.2)
            refused = client.post("/v1/publish", json={"temporaryExposureKeys": []})
            assert refused.status_code == 400
        with socket.create_connection((host, port), 5, (client_host, 0)) as raw:
            raw.sendall(b"NOT HTTP \x01\x02\r\n\r\n")
            assert raw.recv(1024).startswith(b"HTTP/1.1 400 ")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    startup, *lines = err.splitlines()
    assert startup.startswith(f"phe-trace server: keyserver on http://{host}:{port} ")
    entries = [json.loads(line) for line in lines]
    assert all(isinstance(e, dict) for e in entries), lines
    assert "phe_trace.server" in {e["logger"] for e in entries}, lines  # the role's own
    events = {(e["level"], e["logger"], e["event"]) for e in entries}
    assert ("WARNING", "uvicorn.error", "Invalid HTTP request received.") in events, lines
    assert client_host not in err


def test_no_client_address_reaches_storage(
    client: httpx.Client, ctx: ServerContext, authority: Authority
) -> None:
    """Nothing derived from the connection is stored: the tables have no such column (PUB-10)."""
    client.post(
        "/v1/publish",
        json=publish_body(authority, day_keys(NOW, 2), NOW),
        headers={"User-Agent": "agent-marker-123", "X-Forwarded-For": "203.0.113.9"},
    )
    import sqlalchemy as sa

    with ctx.engine.connect() as conn:
        for table in ("ks_exposures", "ks_used_certificates"):
            for row in conn.execute(sa.text(f"SELECT * FROM {table}")):
                flat = " ".join(str(v) for v in row)
                assert "agent-marker-123" not in flat and "203.0.113.9" not in flat
