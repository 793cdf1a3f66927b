"""The key server as a member of a federation gateway (SPEC §17.3, FED-11..FED-14).

Upload sends this server's own published keys (never imported ones), once each, after
they expired ``upload_delay_seconds`` ago, in signed batches of at most
``upload_batch_keys``. Download follows each day's batches from the gateway, checks
every upload batch in them through the audit (operator countersignature of the signing
certificate, CMS over that batch's keys, origin = signer country) and stores the keys of
the batches that pass as non-local keys of this server's region, so its own exports
carry them. Keys keep their origin; duplicates and loops cannot arise: a key already
stored is skipped (the exposures' primary key), an imported key is never uploaded, and
each download batch is imported once.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict
from sqlalchemy.engine import Connection

from phe_trace.protocol import efgs, efgs_cms
from phe_trace.protocol.errors import BatchError
from phe_trace.settings import PheTraceSettings

from .context import ServerContext
from .errors import FederationError
from .storage import federation_queries, queries

__all__ = [
    "DownloadReport",
    "FederationError",
    "FederationSettings",
    "UploadReport",
    "download_keys",
    "dsos_from_federation",
    "dsos_to_federation",
    "federation_client",
    "upload_keys",
]

_DAY = 86_400
_GATEWAY = "gateway"


class FederationSettings(PheTraceSettings):
    """How this key server reaches its gateway (environment ``PHE_TRACE_FEDERATION_*``)."""

    model_config = SettingsConfigDict(env_prefix="PHE_TRACE_FEDERATION_", extra="forbid")

    gateway_url: str = Field(description="Base URL of the gateway (…/diagnosiskeys is added).")
    country: str = Field(description="This member's ISO 3166-1 alpha-2 country code.")
    signing_certificate: Path = Field(description="PEM certificate that signs batches.")
    signing_key: Path = Field(description="PEM private key of the signing certificate.")
    trust_anchor: Path = Field(description="The gateway operator's PEM public key.")
    client_certificate: Path | None = Field(None, description="PEM client (mTLS) certificate.")
    client_key: Path | None = Field(None, description="PEM key of the client certificate.")
    ca_file: Path | None = Field(None, description="CA bundle for the gateway's TLS.")
    forward_headers: bool = Field(
        False,
        description=(
            "Send the client-certificate headers a TLS proxy would forward (a gateway on a "
            "private network without a proxy)."
        ),
    )
    upload_delay_seconds: int = Field(7200, ge=0, description="Upload keys this long expired.")
    upload_batch_keys: int = Field(4000, ge=1, description="Keys per upload batch at most.")
    download_days: int = Field(2, ge=1, description="UTC days read back from today.")

    @field_validator("country")
    @classmethod
    def _check_country(cls, value: str) -> str:
        if len(value) != 2 or not value.isascii() or not value.isupper():
            raise ValueError("country must be two capital letters")
        return value


@dataclass
class UploadReport:
    """What one upload run sent."""

    batches: int = 0
    keys: int = 0
    already_known: int = 0


@dataclass
class DownloadReport:
    """What one download run (at ``now``) imported."""

    now: float = 0.0
    batches: int = 0
    keys_imported: int = 0
    keys_known: int = 0
    keys_dropped: int = 0
    batches_refused: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Identity:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    anchor: efgs_cms.OperatorKey


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise FederationError(f"cannot read the {what} {path}: {exc.strerror}") from None


def _identity(fed: FederationSettings) -> _Identity:
    try:
        cert = x509.load_pem_x509_certificate(_read(fed.signing_certificate, "certificate"))
        key = serialization.load_pem_private_key(_read(fed.signing_key, "signing key"), None)
        anchor = efgs_cms.OperatorKey(_read(fed.trust_anchor, "trust anchor"))
    except (ValueError, TypeError, BatchError) as exc:
        raise FederationError(f"federation credentials unusable: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise FederationError("the signing key must be ECDSA or RSA")
    return _Identity(cert, key, anchor)


def federation_client(fed: FederationSettings, timeout: float = 30.0) -> httpx.Client:
    """An HTTP client for the gateway: mTLS when a client certificate is configured, and
    the forwarded client-certificate headers when ``forward_headers`` is set."""
    headers: dict[str, str] = {}
    cert: tuple[str, str] | None = None
    if fed.client_certificate is not None:
        client_cert = x509.load_pem_x509_certificate(_read(fed.client_certificate, "certificate"))
        if fed.forward_headers:
            headers["X-SSL-Client-SHA256"] = efgs_cms.certificate_thumbprint(client_cert)
            headers["X-SSL-Client-DN"] = client_cert.subject.rfc4514_string()
        if fed.client_key is not None:
            cert = (str(fed.client_certificate), str(fed.client_key))
    verify: Any = str(fed.ca_file) if fed.ca_file is not None else True
    return httpx.Client(
        base_url=fed.gateway_url.rstrip("/") + "/diagnosiskeys",
        headers=headers,
        cert=cert,
        verify=verify,
        timeout=timeout,
    )


# -- days since onset (FED-14) -----------------------------------------------------------
def dsos_to_federation(dsos: int | None, rolling_start: int, created_at: int) -> int:
    """The federation encoding of a local key's days since onset: the value itself when
    known, else "no symptom information" as 4000 + the key's day relative to its
    submission day (−14..0)."""
    if dsos is not None:
        return dsos
    days = rolling_start // 144 - created_at // _DAY
    return 4000 + max(-14, min(0, days))


def dsos_from_federation(value: int) -> int | None:
    """The local days since onset of a federation value: −14..14 as they are; an onset
    range (22..1950, ``n·100 + days since the range's end``) as the days since its end when
    within ±14; every other code (unknown onset, asymptomatic, no information) as None."""
    if -14 <= value <= 14:
        return value
    if 22 <= value <= 1950:
        days = value - round(value / 100) * 100
        return days if -14 <= days <= 14 else None
    return None


# -- upload (FED-11) ------------------------------------------------------------------------
def _pending_local_keys(conn: Connection, region: str, before: int, limit: int) -> list[Any]:
    """Local keys of ``region`` that expired before ``before``, started within the last
    14 days (the gateway refuses older ones) and were never uploaded."""
    oldest = (before // _DAY - 14) * 144
    return federation_queries.pending_local_keys(conn, region, before, oldest, limit)


def _batch_key(row: Any, country: str) -> efgs.BatchKey:
    report_type = row.revised_report_type or row.report_type
    trl = row.revised_transmission_risk_level
    dsos = row.revised_days_since_onset_of_symptoms
    if dsos is None:
        dsos = row.days_since_onset_of_symptoms
    return efgs.BatchKey(
        key_data=bytes(row.key_data),
        rolling_start_interval_number=row.rolling_start_interval_number,
        rolling_period=row.rolling_period,
        transmission_risk_level=row.transmission_risk_level if trl is None else trl,
        visited_countries=(),
        origin=country,
        report_type=int(report_type),
        days_since_onset_of_symptoms=dsos_to_federation(
            dsos, row.rolling_start_interval_number, row.created_at
        ),
    )


def _post_batch(client: httpx.Client, ident: _Identity, keys: Sequence[efgs.BatchKey]) -> Any:
    der = efgs_cms.sign_batch(efgs.batch_signing_bytes(keys), ident.cert, ident.key)
    headers = {
        "Content-Type": efgs.CONTENT_TYPE_PROTOBUF,
        "batchTag": f"{secrets.token_hex(8)}",
        "batchSignature": base64.b64encode(der).decode("ascii"),
    }
    try:
        return client.post("/upload", content=efgs.encode_protobuf(keys), headers=headers)
    except httpx.HTTPError as exc:
        raise FederationError(f"gateway upload failed: {type(exc).__name__}") from None


def _send(client: httpx.Client, ident: _Identity, keys: list[efgs.BatchKey]) -> tuple[int, int]:
    """Send ``keys`` until the gateway holds all of them; (sent, already known)."""
    known = 0
    while keys:
        answer = _post_batch(client, ident, keys)
        if answer.status_code == 201:
            return len(keys), known
        if answer.status_code != 207:
            raise FederationError(
                f"gateway refused an upload: {answer.status_code} {answer.text[:200]}"
            )
        lists = answer.json()
        known += len(lists.get("409", []))
        keys = [keys[i] for i in [*lists.get("201", []), *lists.get("500", [])]]
    return 0, known


def upload_keys(
    ctx: ServerContext, fed: FederationSettings, client: httpx.Client, now: float
) -> UploadReport:
    """Upload every pending local key (FED-11); each batch is marked uploaded only after
    the gateway holds it, so a failure leaves it pending and a retry is harmless."""
    ident = _identity(fed)
    report = UploadReport()
    before = int(now) - fed.upload_delay_seconds
    while True:
        with ctx.engine.connect() as conn:
            rows = _pending_local_keys(conn, ctx.settings.region, before, fed.upload_batch_keys)
        if not rows:
            return report
        sent, known = _send(client, ident, [_batch_key(r, fed.country) for r in rows])
        with ctx.engine.begin() as conn:
            federation_queries.mark_uploaded(conn, [bytes(r.key_data) for r in rows], int(now))
        report.batches += 1
        report.keys += sent
        report.already_known += known


# -- download (FED-12, FED-13) --------------------------------------------------------------
def _get(client: httpx.Client, path: str, headers: dict[str, str]) -> httpx.Response | None:
    try:
        answer = client.get(path, headers=headers)
    except httpx.HTTPError as exc:
        raise FederationError(f"gateway download failed: {type(exc).__name__}") from None
    if answer.status_code in (404, 410):
        return None
    if answer.status_code != 200:
        raise FederationError(f"gateway download failed: {answer.status_code}")
    return answer


def _verified_parts(
    keys: list[efgs.BatchKey], audit: list[dict[str, Any]], ident: _Identity, own: str, now: float
) -> tuple[list[efgs.BatchKey], list[str]]:
    """The keys of the upload batches whose audit entry verifies (FED-12), and the
    countries of those that do not."""
    good: list[efgs.BatchKey] = []
    refused: list[str] = []
    position = 0
    for entry in audit:
        if entry.get("country") == own:
            continue  # our own uploads are not in our download
        amount = int(entry.get("amount", 0))
        part = keys[position : position + amount]
        position += amount
        if _entry_verifies(entry, part, ident, now):
            good.extend(part)
        else:
            refused.append(str(entry.get("country")))
    if position != len(keys):
        return [], [*refused, "audit does not cover the batch"]
    return good, refused


def _entry_verifies(
    entry: dict[str, Any], part: list[efgs.BatchKey], ident: _Identity, now: float
) -> bool:
    pem = entry.get("signingCertificate")
    countersignature = entry.get("signingCertificateOperatorSignature")
    signature = entry.get("batchSignature")
    if not (
        isinstance(pem, str) and isinstance(countersignature, str) and isinstance(signature, str)
    ):
        return False
    if not part or not ident.anchor.verifies(pem, countersignature):
        return False
    try:
        cert = efgs_cms.verify_batch(
            efgs.batch_signing_bytes(part), efgs_cms.decode_signature_header(signature), now
        )
    except BatchError:
        return False
    if x509.load_pem_x509_certificate(pem.encode("ascii")) != cert:
        return False
    country = efgs_cms.certificate_country(cert)
    return country == entry.get("country") and all(k.origin == country for k in part)


def _local_row(key: efgs.BatchKey, region: str, now: int, window: int) -> dict[str, Any] | None:
    """An exposures row for a verified federated key, or None when it cannot be used here."""
    report_type = 1 if key.report_type == 0 else key.report_type
    if report_type not in (1, 2) or len(key.key_data) != 16 or not 1 <= key.rolling_period <= 144:
        return None
    end = (key.rolling_start_interval_number + key.rolling_period) * 600
    if end < now - 14 * _DAY:
        return None
    trl = key.transmission_risk_level if 0 <= key.transmission_risk_level <= 8 else 1
    created = max(now // window * window, -(-end // window) * window)  # embargoed to expiry
    return {
        "key_data": key.key_data,
        "region": region,
        "traveler": False,
        "rolling_start_interval_number": key.rolling_start_interval_number,
        "rolling_period": key.rolling_period,
        "transmission_risk_level": trl,
        "report_type": report_type,
        "days_since_onset_of_symptoms": dsos_from_federation(key.days_since_onset_of_symptoms),
        "created_at": created,
        "health_authority_id": None,
    }


def store_federated(
    ctx: ServerContext, source: str, name: str, keys: Sequence[efgs.BatchKey], now: float
) -> tuple[int, int, int]:
    """Store verified keys of one batch or file as non-local keys, and mark it imported, in
    one transaction; (imported, already known, dropped). A name already imported is
    skipped whole."""
    stamp = int(now)
    window = ctx.settings.truncate_window_seconds
    with ctx.engine.begin() as conn:
        if federation_queries.is_imported(conn, source, name):
            return 0, 0, 0
        rows, origins = [], {}
        for key in keys:
            row = _local_row(key, ctx.settings.region, stamp, window)
            if row is not None and key.key_data not in origins:
                rows.append(row)
                origins[key.key_data] = key
        inserted = queries.insert_new_exposures(conn, rows)
        if inserted:
            federation_queries.insert_federated_keys(
                conn,
                [
                    {
                        "key_data": k,
                        "origin": origins[k].origin,
                        "visited_countries": ",".join(origins[k].visited_countries),
                        "source": source,
                        "imported_at": stamp,
                    }
                    for k in inserted
                ],
            )
        federation_queries.mark_imported(conn, source, name, stamp, len(inserted))
    return len(inserted), len(rows) - len(inserted), len(keys) - len(rows)


def _imported(conn: Connection, names: Sequence[str]) -> set[str]:
    return federation_queries.imported_names(conn, _GATEWAY, names)


def _download_day(
    ctx: ServerContext,
    fed: FederationSettings,
    client: httpx.Client,
    ident: _Identity,
    day: str,
    report: DownloadReport,
) -> None:
    tag: str | None = None
    accept = {"Accept": efgs.CONTENT_TYPE_PROTOBUF}
    while True:
        headers = {**accept, **({"batchTag": tag} if tag else {})}
        page = _get(client, f"/download/{day}", headers)
        if page is None:
            return
        tag = page.headers.get("batchTag", "")
        with ctx.engine.connect() as conn:
            done = bool(_imported(conn, [tag]))
        if not done:
            _import_batch(ctx, fed, client, ident, day, tag, page.content, report)
        following = page.headers.get("nextBatchTag", "null")
        if following in ("", "null"):
            return
        tag = following


def _import_batch(
    ctx: ServerContext,
    fed: FederationSettings,
    client: httpx.Client,
    ident: _Identity,
    day: str,
    tag: str,
    body: bytes,
    report: DownloadReport,
) -> None:
    try:
        keys = efgs.decode_protobuf(body)
    except BatchError:
        report.batches_refused.append(tag)
        return
    audit_page = _get(client, f"/audit/download/{day}/{tag}", {"Accept": "application/json"})
    audit = audit_page.json() if audit_page is not None else []
    good, refused = _verified_parts(keys, audit, ident, fed.country, report.now)
    report.batches_refused.extend(f"{tag}:{c}" for c in refused)
    imported, known, dropped = store_federated(ctx, _GATEWAY, tag, good, report.now)
    report.batches += 1
    report.keys_imported += imported
    report.keys_known += known
    report.keys_dropped += dropped + len(keys) - len(good)


def download_keys(
    ctx: ServerContext, fed: FederationSettings, client: httpx.Client, now: float
) -> DownloadReport:
    """Import every not yet imported download batch of the last ``download_days`` days."""
    ident = _identity(fed)
    report = DownloadReport(now=now)
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    for back in range(fed.download_days - 1, -1, -1):
        day = (today - dt.timedelta(days=back)).isoformat()
        _download_day(ctx, fed, client, ident, day, report)
    return report
