"""Key servers of test cities that are members of a gateway (their own SQLite files)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from phe_trace.clock import SettableClock
from phe_trace.protocol import export
from phe_trace.server import ServerContext, run_export
from phe_trace.server.federation import (
    FederationSettings,
    download_keys,
    federation_client,
    upload_keys,
)
from phe_trace.server.storage import queries
from tests.gateway.support import NOW, Country, pem
from tests.server.conftest import make_settings

DAY = 86_400


class City:
    """A key server (its own database and exports) that is a member of the gateway."""

    def __init__(self, tmp: Path, country: Country, gateway_url: str, anchor: Path) -> None:
        self.country = country
        tmp.mkdir(exist_ok=True)
        db = f"sqlite:///{tmp / 'keyserver.sqlite3'}"
        self.clock = SettableClock(NOW)
        self.ctx = ServerContext.open(make_settings(tmp, db, region=country.code), clock=self.clock)
        (tmp / "signing.pem").write_text(pem(country.signing_cert))
        (tmp / "signing.key").write_bytes(
            country.signing_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        (tmp / "client.pem").write_text(pem(country.auth_cert))
        self.fed = FederationSettings(
            gateway_url=gateway_url,
            country=country.code,
            signing_certificate=tmp / "signing.pem",
            signing_key=tmp / "signing.key",
            trust_anchor=anchor,
            client_certificate=tmp / "client.pem",
            forward_headers=True,
            upload_batch_keys=30,
        )

    def publish(self, count: int, now: float) -> list[bytes]:
        """Store ``count`` local keys that expired a day before ``now``."""
        start = (int(now) - 2 * DAY) // DAY * 144
        rows = [
            {
                "key_data": secrets.token_bytes(16),
                "region": self.country.code,
                "traveler": False,
                "rolling_start_interval_number": start,
                "rolling_period": 144,
                "transmission_risk_level": 4,
                "report_type": 1,
                "days_since_onset_of_symptoms": None if i % 2 else 3,
                "created_at": (start + 144) * 600,
                "health_authority_id": None,
            }
            for i in range(count)
        ]
        with self.ctx.engine.begin() as conn:
            queries.insert_new_exposures(conn, rows)
        return [r["key_data"] for r in rows]

    def sync(self, now: float) -> tuple[Any, Any]:
        self.clock.t = now
        with federation_client(self.fed) as client:
            return upload_keys(self.ctx, self.fed, client, now), download_keys(
                self.ctx, self.fed, client, now
            )

    def exported_keys(self, now: float) -> list[bytes]:
        """Every key in this city's export files after an export run at ``now``."""
        self.clock.t = now
        run_export(self.ctx, now)
        found = []
        for name in self.ctx.store.names(self.country.code):
            if name.endswith(".zip"):
                archive = export.unpack_export_zip(self.ctx.store.read(name))
                found.extend(k.key_data for k in export.decode_export_bin(archive.export_bin).keys)
        return found
