"""What the federation gateway does (SPEC §17.2), independent of HTTP.

Upload stores a member's signed batch whole or not at all; a scheduled step gathers
whole upload batches into the day's download batches (``yyyyMMdd-N``, each linked to the
next); download serves one download batch without the requester's own keys; the audit
gives each upload batch's signature and certificates; callbacks tell subscribers about
new download batches; retention drops keys after ``retention_days``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from phe_trace.protocol.efgs import TRL_NOT_PROVIDED, BatchKey, batch_signing_bytes, payload_hash
from phe_trace.protocol.efgs_cms import (
    certificate_country,
    certificate_thumbprint,
    decode_signature_header,
    verify_batch,
)
from phe_trace.protocol.errors import BatchSignatureError

from . import queries
from .errors import (
    BatchRejectedError,
    BatchTagReusedError,
    BatchTooLargeError,
    GatewayNotFoundError,
    GoneError,
    NotAuthenticatedError,
)
from .settings import GatewaySettings
from .trust import CertificateType, Member, TrustAnchor, find_member

__all__ = ["DownloadPage", "Gateway", "UploadOutcome"]

_COUNTRY = re.compile(r"^[A-Z]{2}$")
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_DAY_SECONDS = 86_400
_MAX_AGE_DAYS = 15


@dataclass(frozen=True)
class UploadOutcome:
    """201 (stored) or 207 (nothing stored; key indexes by the status each would get)."""

    status: int
    by_status: dict[str, list[int]] = field(default_factory=dict)


@dataclass(frozen=True)
class DownloadPage:
    """One download batch as the requester sees it."""

    batch_tag: str
    next_batch_tag: str | None
    keys: list[BatchKey]


def day_of(now: float) -> str:
    """The UTC day of ``now`` as ``YYYY-MM-DD``."""
    return dt.datetime.fromtimestamp(now, dt.UTC).date().isoformat()


def _parse_day(day: str) -> dt.date:
    try:
        return dt.date.fromisoformat(day)
    except ValueError:
        raise BatchRejectedError("the date must be YYYY-MM-DD") from None


def _thumbprint(value: str) -> str:
    value = value.strip()
    if _HEX64.match(value):
        return value.lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise NotAuthenticatedError("the client certificate thumbprint is malformed")
    return raw.hex()


def dn_country(dn: str) -> str | None:
    """The ``C=`` value of a forwarded distinguished name (URL-encoding allowed)."""
    for part in re.split(r"[,/+]", urllib.parse.unquote(dn)):
        name, _, value = part.strip().partition("=")
        if name.strip().upper() == "C" and _COUNTRY.match(value.strip()):
            return value.strip()
    return None


def _key_row(key: BatchKey, batch_id: int, now: int) -> dict[str, Any]:
    return dict(
        payload_hash=payload_hash(key),
        upload_batch_id=batch_id,
        key_data=key.key_data,
        rolling_start_interval_number=key.rolling_start_interval_number,
        rolling_period=key.rolling_period,
        transmission_risk_level=key.transmission_risk_level,
        visited_countries=",".join(key.visited_countries),
        origin=key.origin,
        report_type=key.report_type,
        days_since_onset=key.days_since_onset_of_symptoms,
        created_at=now,
    )


def _batch_key(row: Any) -> BatchKey:
    visited = row.visited_countries
    return BatchKey(
        key_data=bytes(row.key_data),
        rolling_start_interval_number=row.rolling_start_interval_number,
        rolling_period=row.rolling_period,
        transmission_risk_level=row.transmission_risk_level,
        visited_countries=tuple(visited.split(",")) if visited else (),
        origin=row.origin,
        report_type=row.report_type,
        days_since_onset_of_symptoms=row.days_since_onset,
    )


def validate_keys(keys: Sequence[BatchKey], now: float) -> None:
    """SPEC FED-6: every key in range, or the whole batch is refused."""
    today_start = int(now) // _DAY_SECONDS * _DAY_SECONDS
    lowest = (today_start - _MAX_AGE_DAYS * _DAY_SECONDS) // 600
    highest = int(now) // 600 + 1
    for index, k in enumerate(keys):
        problem = None
        if len(k.key_data) != 16:
            problem = "keyData must be 16 bytes"
        elif not lowest <= k.rolling_start_interval_number <= highest:
            problem = "rollingStartIntervalNumber is outside the last 15 days"
        elif not 1 <= k.rolling_period <= 144:
            problem = "rollingPeriod must be 1..144"
        elif not (
            0 <= k.transmission_risk_level <= 8 or k.transmission_risk_level == TRL_NOT_PROVIDED
        ):
            problem = "transmissionRiskLevel must be 0..8 or 0x7FFFFFFF"
        elif not all(_COUNTRY.match(c) for c in (k.origin, *k.visited_countries)):
            problem = "origin and visitedCountries must be ISO 3166-1 alpha-2 codes"
        if problem is not None:
            raise BatchRejectedError(f"key {index}: {problem}")


class Gateway:
    """The gateway's operations on its database."""

    def __init__(
        self,
        settings: GatewaySettings,
        engine: Engine,
        anchor: TrustAnchor,
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.anchor = anchor
        self.now = clock

    # -- authentication (FED-5) -------------------------------------------------------
    def authenticate(self, thumbprint_header: str | None, dn_header: str | None) -> Member:
        """The member behind the forwarded client-certificate headers."""
        if not thumbprint_header or not dn_header:
            raise NotAuthenticatedError("no client certificate was forwarded")
        country = dn_country(dn_header)
        if country is None:
            raise NotAuthenticatedError("the client certificate's DN has no C=")
        with self.engine.connect() as conn:
            member = find_member(
                conn,
                self.anchor,
                _thumbprint(thumbprint_header),
                CertificateType.AUTHENTICATION,
                country,
            )
        if member is None:
            raise NotAuthenticatedError("the client certificate is not on the allow-list")
        return member

    # -- upload (FED-4, FED-6, FED-7) ---------------------------------------------------
    def _signer(self, keys: Sequence[BatchKey], signature: bytes, uploader: Member) -> Member:
        try:
            cert = verify_batch(batch_signing_bytes(keys), signature, self.now())
        except BatchSignatureError as exc:
            raise BatchRejectedError(str(exc)) from None
        with self.engine.connect() as conn:
            signer = find_member(
                conn,
                self.anchor,
                certificate_thumbprint(cert),
                CertificateType.SIGNING,
                certificate_country(cert),
            )
        if signer is None:
            raise BatchRejectedError("the signing certificate is not on the allow-list")
        if signer.country != uploader.country:
            raise BatchRejectedError("the signing certificate is not the uploader country's")
        if any(k.origin != signer.country for k in keys):
            raise BatchRejectedError("a key's origin is not the uploader's country")
        return signer

    def upload(
        self, uploader: Member, batch_tag: str | None, signature: str | None, batch: list[BatchKey]
    ) -> UploadOutcome:
        """Store a signed upload batch whole (201) or report its duplicates (207)."""
        if not batch_tag or not signature or len(batch_tag) > 100:
            raise BatchRejectedError("batchTag and batchSignature headers are required")
        if len(batch) > self.settings.max_upload_keys:
            raise BatchTooLargeError(
                f"{len(batch)} keys; at most {self.settings.max_upload_keys} per upload"
            )
        if not batch:
            raise BatchRejectedError("the batch holds no keys")
        now = self.now()
        validate_keys(batch, now)
        try:
            der = decode_signature_header(signature)
        except BatchSignatureError as exc:
            raise BatchRejectedError(str(exc)) from None
        signer = self._signer(batch, der, uploader)
        row = dict(
            batch_tag=batch_tag,
            country=uploader.country,
            uploader_thumbprint=uploader.thumbprint,
            signing_thumbprint=signer.thumbprint,
            batch_signature=signature.strip(),
            amount=len(batch),
            uploaded_at=int(now),
        )
        return self._store(row, batch, int(now))

    def _conflicts(self, conn: Connection, batch: Sequence[BatchKey]) -> UploadOutcome | None:
        hashes = [payload_hash(k) for k in batch]
        found = queries.known_payload_hashes(conn, hashes)
        seen: set[str] = set()
        taken = []
        for i, h in enumerate(hashes):
            if h in found or h in seen:
                taken.append(i)
            seen.add(h)
        if not taken:
            return None
        taken_set = set(taken)
        free = [i for i in range(len(batch)) if i not in taken_set]
        return UploadOutcome(207, {"201": free, "409": taken, "500": []})

    def _store(self, row: dict[str, Any], batch: Sequence[BatchKey], now: int) -> UploadOutcome:
        with self.engine.begin() as conn:
            if queries.upload_tag_used(conn, row["batch_tag"]):
                raise BatchTagReusedError("this batchTag was used before")
            conflict = self._conflicts(conn, batch)
            if conflict is not None:
                return conflict
            try:
                with conn.begin_nested():
                    queries.insert_upload(
                        conn, row, lambda batch_id: [_key_row(k, batch_id, now) for k in batch]
                    )
            except IntegrityError:
                # another upload took a tag or a key in between: answer as if it came first
                if queries.upload_tag_used(conn, row["batch_tag"]):
                    raise BatchTagReusedError("this batchTag was used before") from None
                return self._conflicts(conn, batch) or UploadOutcome(
                    207, {"500": list(range(len(batch)))}
                )
        return UploadOutcome(201)

    # -- batching and download (FED-8) --------------------------------------------------
    def form_batches(self) -> list[str]:
        """Gather pending upload batches, in arrival order and never split, into new
        download batches of at most ``download_batch_keys`` keys; returns the new tags."""
        now = self.now()
        day = day_of(now)
        created: list[str] = []
        with self.engine.begin() as conn:
            pending = queries.pending_uploads(conn)
            groups: list[list[int]] = []
            size = 0
            for batch_id, amount in pending:
                if not groups or size + amount > self.settings.download_batch_keys:
                    groups.append([])
                    size = 0
                groups[-1].append(batch_id)
                size += amount
            for group in groups:
                created.append(queries.add_download_batch(conn, day, group, int(now)))
        return created

    def _check_day(self, day: str) -> dt.date:
        wanted = _parse_day(day)
        today = dt.datetime.fromtimestamp(self.now(), dt.UTC).date()
        if wanted < today - dt.timedelta(days=self.settings.download_days):
            raise GoneError(f"{day} is older than the download window")
        return wanted

    def _download_batch(self, conn: Connection, day: str, tag: str | None) -> Any:
        wanted = self._check_day(day)
        if tag is None:
            row = queries.first_download_batch(conn, wanted.isoformat())
        else:
            row = queries.download_batch_by_tag(conn, tag)
            if row is not None and row.day < wanted.isoformat():
                raise BatchRejectedError("the batchTag belongs to an earlier day")
            if row is not None and row.day != wanted.isoformat():
                row = None
        if row is None:
            raise GatewayNotFoundError(f"no batch for {day}" + (f" with tag {tag}" if tag else ""))
        return row

    def download(self, requester: Member, day: str, tag: str | None) -> DownloadPage:
        """One download batch of ``day`` (the first, or ``tag``) without the requester's keys."""
        with self.engine.connect() as conn:
            batch = self._download_batch(conn, day, tag)
            rows = queries.download_keys(conn, batch.id, requester.country)
        return DownloadPage(batch.tag, batch.next_tag, [_batch_key(r) for r in rows])

    def audit(self, day: str, tag: str) -> list[dict[str, Any]]:
        """SPEC FED-9: one entry per upload batch in download batch ``tag``."""
        with self.engine.connect() as conn:
            batch = self._download_batch(conn, day, tag)
            rows = queries.uploads_of(conn, batch.id)
            return [self._audit_entry(conn, r) for r in rows]

    def _audit_entry(self, conn: Connection, row: Any) -> dict[str, Any]:
        def cert(thumbprint: str, kind: CertificateType) -> Member | None:
            return find_member(conn, self.anchor, thumbprint, kind)

        auth = cert(row.uploader_thumbprint, CertificateType.AUTHENTICATION)
        signing = cert(row.signing_thumbprint, CertificateType.SIGNING)
        uploaded = dt.datetime.fromtimestamp(row.uploaded_at, dt.UTC)
        return {
            "country": row.country,
            "uploadedTime": uploaded.isoformat().replace("+00:00", "Z"),
            "uploaderThumbprint": row.uploader_thumbprint,
            "uploaderCertificate": auth.pem if auth else None,
            "uploaderOperatorSignature": auth.operator_signature if auth else None,
            "uploaderSigningThumbprint": row.signing_thumbprint,
            "signingCertificate": signing.pem if signing else None,
            "signingCertificateOperatorSignature": signing.operator_signature if signing else None,
            "amount": row.amount,
            "batchSignature": row.batch_signature,
        }

    # -- retention (FED-10) -----------------------------------------------------------
    def apply_retention(self) -> int:
        """Delete keys stored more than ``retention_days`` ago; returns how many."""
        cutoff = int(self.now()) - self.settings.retention_days * _DAY_SECONDS
        with self.engine.begin() as conn:
            return queries.delete_keys_before(conn, cutoff)
