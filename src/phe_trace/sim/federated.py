"""Two cities' real servers federated through a real gateway (``demo --cities 2``).

:class:`FederatedBackend` runs, each on its own loopback port and SQLite files:

- per city, the :class:`~phe_trace.sim.live.LiveBackend` server side (key server with
  its verification service, region ``AA`` or ``BB``), whose devices follow only their
  own city's exports;
- a federation gateway (``phe_trace.gateway``) that both key servers are members of:
  each city has a batch-signing certificate and an authentication certificate (C= its
  region), both on the allow-list countersigned by the demo's gateway operator.

At :attr:`SimConfig.federation_hours` each key server runs the federation job as
``phe-trace server federation sync`` does (:mod:`phe_trace.server.federation`, over HTTP
to the gateway): first both upload their own expired keys, the gateway forms its
download batches (its scheduled job), then both download, verify every batch through the
audit and store the other city's keys as non-local keys, which their next export runs
carry to their devices. Everything runs on the simulated clock.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import sqlalchemy as sa

from phe_trace.serving import LoopbackServer

from .live import LiveBackend, serve_for_demo
from .standin import SyncOutcome

__all__ = ["CITY_REGIONS", "FederatedBackend", "member_certificate", "pem_private"]

#: Region (and federation country code) of each city.
CITY_REGIONS = ("AA", "BB")


def member_certificate(country: str, purpose: str, epoch: int) -> tuple[Any, Any]:
    """A self-signed P-256 certificate of a federation member (C=``country``) for
    ``purpose`` (authentication or signing), valid from 30 days before ``epoch`` for 400
    days, and its private key: what an operator countersigns onto the allow-list."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(x509.NameOID.COUNTRY_NAME, country),
            x509.NameAttribute(x509.NameOID.COMMON_NAME, f"demo city {country} {purpose}"),
        ]
    )
    start = dt.datetime.fromtimestamp(epoch, dt.UTC) - dt.timedelta(days=30)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=400))
        .sign(key, hashes.SHA256())
    )
    return cert, key


def pem_private(key: Any) -> bytes:
    """``key`` as unencrypted PKCS#8 PEM."""
    from cryptography.hazmat.primitives import serialization

    return bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


class FederatedBackend:
    """Two cities' key servers and verification services, and their gateway."""

    real = True

    def __init__(
        self,
        epoch: int,
        export_period_s: int,
        padding_keys: int,
        home: np.ndarray,
        upload_delay_s: int = 7200,
    ) -> None:
        self.epoch = epoch
        self.home = home
        self.cities: list[LiveBackend] = []
        self._servers: list[LoopbackServer] = []
        self._clients: list[httpx.Client] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="phe-trace-federation-"))
        self.gateway: Any = None
        self.runs = 0
        self.uploaded = [0, 0]
        self.imported = [0, 0]
        self.refused: list[str] = []
        try:
            for region in CITY_REGIONS:
                self.cities.append(
                    LiveBackend(
                        epoch, export_period_s, padding_keys, region=region, analytics=False
                    )
                )
            self._start_gateway(upload_delay_s)
        except BaseException:
            self.close()
            raise

    def _start_gateway(self, upload_delay_s: int) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        from phe_trace.gateway import GatewaySettings, create_app
        from phe_trace.gateway.app import open_gateway
        from phe_trace.gateway.trust import CertificateType, add_member_certificate, sign_pem
        from phe_trace.server.federation import FederationSettings

        operator = ec.generate_private_key(ec.SECP256R1())
        anchor = self.tmp / "trust-anchor.pem"
        anchor.write_bytes(
            operator.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        clock = self.cities[0].clock
        settings = GatewaySettings(
            database_url=f"sqlite:///{self.tmp / 'gateway.sqlite3'}", trust_anchor=anchor
        )
        self.gateway = open_gateway(settings, clock)
        self.gateway_url = serve_for_demo(create_app(gateway=self.gateway), self._servers)
        self.federation: list[FederationSettings] = []
        for region in CITY_REGIONS:
            folder = self.tmp / region
            folder.mkdir()
            files = {}
            for purpose, kind in (
                ("signing", CertificateType.SIGNING),
                ("authentication", CertificateType.AUTHENTICATION),
            ):
                cert, key = member_certificate(region, purpose, self.epoch)
                pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
                (folder / f"{purpose}.pem").write_text(pem)
                (folder / f"{purpose}.key").write_bytes(pem_private(key))
                add_member_certificate(
                    self.gateway.engine, pem, kind, sign_pem(pem, operator), self.gateway.anchor,
                    float(self.epoch),
                )  # fmt: skip
                files[purpose] = folder / f"{purpose}.pem"
            fed = FederationSettings(  # type: ignore[call-arg]
                gateway_url=self.gateway_url,
                country=region,
                signing_certificate=files["signing"],
                signing_key=folder / "signing.key",
                trust_anchor=anchor,
                client_certificate=files["authentication"],
                forward_headers=True,
                upload_delay_seconds=upload_delay_s,
            )
            self.federation.append(fed)
        from phe_trace.server.federation import federation_client

        self._clients = [federation_client(fed, timeout=60) for fed in self.federation]
        self.description = (
            "two cities, each: "
            + self.cities[0].description
            + f"; federated through a phe_trace.gateway at {self.gateway_url} "
            "(both key servers members on an operator-countersigned allow-list, signed "
            "batches, audit re-verified on download)"
        )

    # -- the Backend protocol -------------------------------------------------------------
    @property
    def agent_settings(self) -> list[dict[str, object]]:
        """Each city's devices follow that city's servers only."""
        return [city.agent_settings for city in self.cities]

    def _city(self, person: int) -> LiveBackend:
        return self.cities[int(self.home[person])]

    def report(self, fleet: Any, report: Any, now: float) -> int:
        return self._city(report.person).report(fleet, report, now)

    def export(self, now: float) -> int:
        return sum(city.export(now) for city in self.cities)

    def sync(self, fleet: Any, person: int, now: float) -> SyncOutcome:
        return self._city(person).sync(fleet, person, now)

    def federate(self, now: float) -> None:
        """The federation job of both key servers at ``now`` (see the module docstring)."""
        from phe_trace.server.federation import download_keys, upload_keys

        for city in self.cities:
            city.clock.t = now
        for i, city in enumerate(self.cities):
            up = upload_keys(city.keyserver, self.federation[i], self._clients[i], now)
            self.uploaded[i] += up.keys
        self.gateway.form_batches()
        for i, city in enumerate(self.cities):
            down = download_keys(city.keyserver, self.federation[i], self._clients[i], now)
            self.imported[i] += down.keys_imported
            self.refused.extend(down.batches_refused)
        self.runs += 1

    def federation_summary(self, result: Any) -> dict[str, Any]:
        """What the federation did, and how long keys took from one city to the other:
        from the key's publication in its city (``created_at`` there) to its import by
        the other (``imported_at`` of the federated key), from the servers' own tables."""
        created: dict[bytes, int] = {}
        imported: dict[bytes, int] = {}
        for city in self.cities:
            with city.keyserver.engine.connect() as conn:
                created.update(
                    conn.execute(
                        sa.text(
                            "SELECT e.key_data, e.created_at FROM ks_exposures e "
                            "LEFT JOIN ks_federated_keys f ON f.key_data = e.key_data "
                            "WHERE f.key_data IS NULL"
                        )
                    ).all()
                )
                imported.update(
                    conn.execute(
                        sa.text("SELECT key_data, imported_at FROM ks_federated_keys")
                    ).all()
                )
        hours = sorted((imported[k] - created[k]) / 3600 for k in imported if k in created)
        return {
            "runs": self.runs,
            "hours": list(result.config.federation_hours),
            "keys_uploaded": dict(zip(CITY_REGIONS, self.uploaded, strict=True)),
            "keys_imported": dict(zip(CITY_REGIONS, self.imported, strict=True)),
            "batches_refused": self.refused[:20],
            "publication_to_import_hours_median": hours[len(hours) // 2] if hours else None,
            "publication_to_import_hours_max": hours[-1] if hours else None,
        }

    def storage(self) -> dict[str, Any]:
        """Both key servers' tables (names prefixed with the city's region)."""
        merged: dict[str, Any] = {
            "kind": "two key server databases (SQLite)",
            "tables": {},
            "identity_columns": [],
            "export_files": [],
        }
        for region, city in zip(CITY_REGIONS, self.cities, strict=True):
            part = city.storage()
            merged["tables"].update({f"{region}:{k}": v for k, v in part["tables"].items()})
            merged["identity_columns"] += [f"{region}:{c}" for c in part["identity_columns"]]
            merged["export_files"] += [f"{region}:{f}" for f in part["export_files"]]
        return merged

    def risk_rule(self) -> dict[str, Any]:
        return self.cities[0].risk_rule()

    def close(self) -> None:
        for client in self._clients:
            client.close()
        self._clients = []
        for server in reversed(self._servers):
            server.stop()
        self._servers.clear()
        if self.gateway is not None:
            self.gateway.engine.dispose()
            self.gateway = None
        for city in self.cities:
            city.close()
        self.cities.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)
