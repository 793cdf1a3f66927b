"""A verification certificate publishes once — also when its bytes are re-encoded.

The key server remembers a used certificate by the SHA-256 of its text (PUB-7). ECDSA
signatures are malleable: ``(r, s)`` and ``(r, n − s)`` both verify, so anyone who saw a
certificate can write a second, different text that verifies with the same claims. The
single-use rule must hold for the certificate, not for one spelling of it. Likewise the
marker must outlive every moment at which the certificate still verifies (its ``exp``
plus the tolerated clock skew). (SPEC PUB-5, PUB-7, PUB-32)
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from phe_trace.clock import SettableClock
from phe_trace.server import ServerContext, create_app, register_health_authority, run_export
from phe_trace.serving import LoopbackServer
from tests.server.conftest import make_settings
from tests.server.helpers import NOW, Authority, day_keys, publish_body

#: Order of the P-256 group (SEC 2, §2.4.2).
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _other_spelling(token: str) -> str:
    """The same JWT with its ES256 signature (r, s) rewritten as (r, n − s)."""
    head, payload, signature = token.split(".")
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    r, s = raw[:32], int.from_bytes(raw[32:], "big")
    twin = r + (P256_N - s).to_bytes(32, "big")
    return f"{head}.{payload}.{base64.urlsafe_b64encode(twin).rstrip(b'=').decode()}"


@pytest.fixture
def keyserver(
    tmp_path: Path, sqlite_url: str
) -> Iterator[tuple[httpx.Client, ServerContext, SettableClock, Authority]]:
    clock, authority = SettableClock(NOW), Authority()
    ctx = ServerContext.open(make_settings(tmp_path, sqlite_url), clock=clock)
    register_health_authority(
        ctx.engine, issuer=authority.issuer, audience=authority.audience, name="HA",
        public_keys={authority.kid: authority.public_pem},
    )  # fmt: skip
    with LoopbackServer(create_app(context=ctx)) as live, httpx.Client(base_url=live.url) as client:
        yield client, ctx, clock, authority
    ctx.close()


def test_exact_replay_is_refused(
    keyserver: tuple[httpx.Client, ServerContext, SettableClock, Authority],
) -> None:
    """The same certificate text twice: the second is refused (SPEC PUB-7)."""
    client, _, _, authority = keyserver
    body = publish_body(authority, day_keys(NOW, 2), NOW)
    assert client.post("/v1/publish", json=body).status_code == 200
    assert client.post("/v1/publish", json=body).status_code == 401


def test_re_spelled_certificate_is_refused(
    keyserver: tuple[httpx.Client, ServerContext, SettableClock, Authority],
) -> None:
    """PUB-7: the same certificate with the twin ECDSA signature is still a used certificate."""
    client, _, _, authority = keyserver
    body = publish_body(authority, day_keys(NOW, 2), NOW)
    assert client.post("/v1/publish", json=body).status_code == 200
    twin = dict(body, verificationPayload=_other_spelling(body["verificationPayload"]))
    assert twin["verificationPayload"] != body["verificationPayload"]
    replay = client.post("/v1/publish", json=twin)
    assert replay.status_code == 401, replay.json()


def test_marker_outlives_the_clock_skew(
    keyserver: tuple[httpx.Client, ServerContext, SettableClock, Authority],
) -> None:
    """PUB-7, PUB-32: retention between exp and exp + skew keeps a used certificate used."""
    client, ctx, clock, authority = keyserver
    body = publish_body(authority, day_keys(NOW, 2), NOW)  # exp = NOW + 900, skew 60 s
    assert client.post("/v1/publish", json=body).status_code == 200
    clock.t = NOW + 900 + 10
    run_export(ctx, clock.t)  # retention runs with every export
    clock.t = NOW + 900 + 30  # inside the skew: the certificate still verifies
    replay = client.post("/v1/publish", json=body)
    assert replay.status_code == 401, replay.json()
