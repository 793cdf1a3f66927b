"""Operations: /healthz, /metrics in Prometheus format, JSON logs without key material."""

from __future__ import annotations

import base64
import json
import logging
import re

import httpx
import pytest

from phe_trace.logs import JsonFormatter
from phe_trace.server import ServerContext
from phe_trace.server.metrics import Counter, Histogram, Registry

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
