"""Federation throughput: keys per second from city A's store to city B's export files.

Workload: N local keys in city A's key server (SQLite); A uploads them to a gateway
(SQLite, uvicorn on loopback) in signed batches of 4,000; the gateway forms download
batches; B downloads them, verifies each upload batch through the audit, stores them and
writes its signed export files. Baseline, same run: the same number of keys stored
in a third key server beforehand and exported (the last step a city's own keys take), so the
ratio is what federation costs on top of exporting.

Usage: ``python benchmarks/federation.py [--n N] [--quick]``.
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import emit
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from phe_trace.gateway import GatewaySettings, create_app
from phe_trace.gateway.app import open_gateway
from phe_trace.gateway.trust import CertificateType, add_member_certificate, sign_pem
from phe_trace.server import ServerContext, run_export
from phe_trace.server.federation import (
    FederationSettings,
    download_keys,
    federation_client,
    upload_keys,
)
from phe_trace.server.settings import load_settings
from phe_trace.server.storage import queries
from phe_trace.serving import LoopbackServer
from phe_trace.sim.federated import member_certificate, pem_private

DAY = 86_400


def _keyserver(root: Path, region: str, now: float) -> ServerContext:
    settings = load_settings(
        data_dir=root / region,
        database_url=f"sqlite:///{root / region}.sqlite3",
        region=region,
        export_min_records=0,
    )
    return ServerContext.open(settings, clock=lambda: now)


def _publish(ctx: ServerContext, n: int, now: float) -> None:
    start = (int(now) - 2 * DAY) // DAY * 144
    rows = [
        {
            "key_data": secrets.token_bytes(16),
            "region": ctx.settings.region,
            "traveler": False,
            "rolling_start_interval_number": start,
            "rolling_period": 144,
            "transmission_risk_level": 4,
            "report_type": 1,
            "days_since_onset_of_symptoms": 3,
            "created_at": (start + 144) * 600,
            "health_authority_id": None,
        }
        for _ in range(n)
    ]
    with ctx.engine.begin() as conn:
        for i in range(0, n, 5000):
            queries.insert_new_exposures(conn, rows[i : i + 5000])


def _member(root: Path, country: str, url: str, anchor: Path, gw: Any, op: Any, now: float):  # type: ignore[no-untyped-def]
    auth, _ = member_certificate(country, "authentication", int(now))
    signing, key = member_certificate(country, "signing", int(now))
    for cert, kind in ((auth, CertificateType.AUTHENTICATION), (signing, CertificateType.SIGNING)):
        text = cert.public_bytes(serialization.Encoding.PEM).decode()
        add_member_certificate(gw.engine, text, kind, sign_pem(text, op), gw.anchor, now)
    for name, data in (
        ("signing.pem", signing.public_bytes(serialization.Encoding.PEM)),
        ("signing.key", pem_private(key)),
        ("client.pem", auth.public_bytes(serialization.Encoding.PEM)),
    ):
        (root / f"{country}-{name}").write_bytes(data)
    return FederationSettings(
        gateway_url=url,
        country=country,
        signing_certificate=root / f"{country}-signing.pem",
        signing_key=root / f"{country}-signing.key",
        trust_anchor=anchor,
        client_certificate=root / f"{country}-client.pem",
        forward_headers=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=50_000, help="keys federated")
    parser.add_argument("--quick", action="store_true", help="small run (CI)")
    args = parser.parse_args()
    n = 4_000 if args.quick else args.n
    now = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        op = ec.generate_private_key(ec.SECP256R1())
        anchor = root / "anchor.pem"
        anchor.write_bytes(
            op.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        gw = open_gateway(
            GatewaySettings(
                database_url=f"sqlite:///{root / 'gw.sqlite3'}",
                trust_anchor=anchor,
                download_batch_keys=20_000,
            )
        )
        a, b, c = (_keyserver(root, r, now) for r in ("DE", "FR", "NL"))
        _publish(a, n, now)
        _publish(c, n, now)
        with LoopbackServer(create_app(gateway=gw)) as server:
            fed_a = _member(root, "DE", server.url, anchor, gw, op, now)
            fed_b = _member(root, "FR", server.url, anchor, gw, op, now)
            stages: dict[str, float] = {}
            begin = time.perf_counter()
            with federation_client(fed_a, timeout=300) as client:
                upload_keys(a, fed_a, client, now)
            stages["upload"] = time.perf_counter() - begin
            t = time.perf_counter()
            gw.form_batches()
            stages["batching"] = time.perf_counter() - t
            t = time.perf_counter()
            with federation_client(fed_b, timeout=300) as client:
                down = download_keys(b, fed_b, client, now)
            stages["download_verify_store"] = time.perf_counter() - t
            t = time.perf_counter()
            exported = run_export(b, now + 3 * 3600).keys_exported
            stages["export"] = time.perf_counter() - t
            total = time.perf_counter() - begin
        t = time.perf_counter()
        baseline_exported = run_export(c, now + 3 * 3600).keys_exported
        baseline = time.perf_counter() - t
        for ctx in (a, b, c):
            ctx.close()
        gw.engine.dispose()
    assert down.keys_imported == n and exported >= n and baseline_exported >= n
    emit(
        bench="federation",
        case="upload_gateway_download_export",
        n=n,
        seconds=round(total, 3),
        rate=round(n / total, 1),
        unit="keys/s",
        baseline="the same number of keys exported by a key server that already holds them",
        baseline_rate=round(n / baseline, 1),
        ratio=round((n / total) / (n / baseline), 3),
        stages={k: round(v, 3) for k, v in stages.items()},
    )


if __name__ == "__main__":
    main()
