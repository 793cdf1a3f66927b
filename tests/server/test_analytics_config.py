"""``GET /v1/analytics/config``: the signed configuration (SPEC AGG-25)."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from phe_trace.analytics.config import CONFIG_FORMAT, verify_signed_config
from phe_trace.analytics.errors import EncodingError
from phe_trace.server import ServerContext
from phe_trace.server.routers.analytics_config import CONFIG_FILE
from phe_trace.server.signing import load_signing_keys, rotate_signing_key

_DOC = {
    "format": CONFIG_FORMAT,
    "leader": {"url": "https://leader.example", "public_key": base64.b64encode(b"L" * 32).decode()},
    "helper": {"url": "https://helper.example", "public_key": base64.b64encode(b"H" * 32).decode()},
    "min_batch_size": 100,
    "budget_period_days": 14,
    "metrics": {"notified": {"epsilon_per_day": 1.0, "budget": 14.0}},
}


def _trusted(ctx: ServerContext) -> list[ec.EllipticCurvePublicKey]:
    keys = load_signing_keys(ctx.settings.signing_key_dir, ctx.settings.signing_key_id)
    return [k.private_key.public_key() for k in keys]


def test_absent_malformed_and_signed(ctx: ServerContext, client: httpx.Client) -> None:
    """AGG-25: 404 without a document, 503 for a malformed one, else signed exact bytes."""
    missing = client.get("/v1/analytics/config")
    assert missing.status_code == 404 and missing.json()["code"] == "analytics_not_configured"
    path = ctx.settings.data_dir / CONFIG_FILE
    path.write_text(json.dumps({**_DOC, "min_batch_size": 0}))
    bad = client.get("/v1/analytics/config")
    assert bad.status_code == 503 and bad.json()["code"] == "analytics_config_invalid"
    raw = json.dumps(_DOC).encode()
    path.write_bytes(raw)
    rotate_signing_key(ctx.settings.signing_key_dir)  # two active keys: two signatures
    body = client.get("/v1/analytics/config").json()
    assert base64.b64decode(body["config"]) == raw and len(body["signatures"]) == 2
    config = verify_signed_config(body, _trusted(ctx)[1:])  # the new key alone verifies
    assert config.leader.public_key == b"L" * 32 and config.metrics["notified"].budget == 14.0
    tampered = {**body, "config": base64.b64encode(raw.replace(b"100", b"101")).decode()}
    with pytest.raises(EncodingError, match="signature"):
        verify_signed_config(tampered, _trusted(ctx))
