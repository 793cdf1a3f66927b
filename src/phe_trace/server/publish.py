"""The publish service: certificate, HMAC, rules, revisions, storage (PUB-1 … PUB-24).

The handler in ``routers/publish.py`` only parses and answers; this module decides.
Order of checks: health-authority id, base64, key count, certificate (signature, claims
at ``now``), TEK HMAC over the keys as sent, the per-key rules, then — in one
transaction — single use of the certificate, revisions and inserts. Any refusal raises
a :class:`~phe_trace.server.errors.PublishError` before anything is committed.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from phe_trace.protocol import certificate as cert
from phe_trace.protocol.diagnosis_key import ReportType
from phe_trace.protocol.errors import TekHmacError
from phe_trace.protocol.publish import PublishRequest, PublishResponse
from phe_trace.protocol.tekmac import TekHmacKey, decode_base64
from phe_trace.storage import UNAVAILABLE, retry_once

from .context import ServerContext
from .errors import (
    BadRequestError,
    CertificateInvalidError,
    DatabaseUnavailableError,
    InvalidRevisionTokenError,
    InvalidTransitionError,
    KeyAlreadyRevisedError,
    MissingRevisionTokenError,
    UnknownHealthAuthorityError,
)
from .revision import RevisableKey
from .storage import queries
from .validation import AcceptedKey, UploadedKey, validate_keys

__all__ = ["ALLOWED_TRANSITIONS", "PublishOutcome", "handle_publish", "padding_for"]

#: Report-type revisions GAEN allows: likely → confirmed/negative; self-report → any other.
ALLOWED_TRANSITIONS: dict[ReportType, frozenset[ReportType]] = {
    ReportType.CONFIRMED_CLINICAL_DIAGNOSIS: frozenset(
        {ReportType.CONFIRMED_TEST, ReportType.REVOKED}
    ),
    ReportType.SELF_REPORT: frozenset(
        {ReportType.CONFIRMED_TEST, ReportType.CONFIRMED_CLINICAL_DIAGNOSIS, ReportType.REVOKED}
    ),
}


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    """What a successful publish did."""

    inserted: int
    revised: int
    warnings: tuple[str, ...]
    revision_token: str


def padding_for(ctx: ServerContext) -> str:
    """Random base64 padding of the configured length range (PUB-22)."""
    s = ctx.settings
    size = s.response_padding_min_bytes + secrets.randbelow(s.response_padding_range_bytes + 1)
    return secrets.token_urlsafe(size)[:size]


def _decode_keys(request: PublishRequest) -> list[UploadedKey]:
    keys = []
    for index, k in enumerate(request.temporary_exposure_keys):
        try:
            data = decode_base64(k.key, name=f"key {index}")
        except TekHmacError as exc:
            raise BadRequestError(str(exc)) from None
        keys.append(
            UploadedKey(data, k.rolling_start_number, k.rolling_period, k.transmission_risk)
        )
    return keys


def _verify_certificate(
    ctx: ServerContext, request: PublishRequest, keys: Sequence[UploadedKey], now: float
) -> tuple[cert.VerificationClaims, int]:
    try:
        hmac_key = decode_base64(request.hmac_key, name="hmacKey")
        issuer, kid = cert.peek_certificate(request.verification_payload)
    except TekHmacError as exc:
        raise BadRequestError(str(exc)) from None
    except cert.CertificateError as exc:
        raise CertificateInvalidError(str(exc)) from None
    authority, public_keys = ctx.directory.lookup(issuer, kid, now)
    try:
        claims = cert.verify_certificate(
            request.verification_payload,
            public_keys=public_keys,
            issuer=authority.issuer,
            audience=authority.audience,
            now=now,
            clock_skew_seconds=ctx.settings.certificate_clock_skew_seconds,
        )
        hmac_keys = [
            TekHmacKey(
                k.key_data, k.rolling_start_interval_number, k.rolling_period, k.transmission_risk
            )
            for k in keys
        ]
        cert.verify_tekmac(claims, hmac_key, hmac_keys)
    except cert.CertificateError as exc:
        raise CertificateInvalidError(str(exc)) from None
    return claims, authority.id


def handle_publish(ctx: ServerContext, request: PublishRequest, now: float) -> PublishOutcome:
    """Check and store one publish request at unix time ``now``."""
    allowed = ctx.settings.allowed_health_authority_ids
    if allowed and request.health_authority_id not in allowed:
        raise UnknownHealthAuthorityError("healthAuthorityID is not accepted by this server")
    keys = _decode_keys(request)
    if not 1 <= len(keys) <= ctx.rules.max_keys:
        raise BadRequestError(f"{len(keys)} keys uploaded; 1..{ctx.rules.max_keys} are allowed")
    claims, authority_id = _verify_certificate(ctx, request, keys, now)
    result = validate_keys(
        keys,
        report_type=claims.export_report_type,
        request_onset=request.symptom_onset_interval,
        certificate_onset=claims.symptom_onset_interval,
        now=int(now),
        rules=ctx.rules,
    )
    previous = ctx.revision.decrypt(request.revision_token) if request.revision_token else []
    inserted, revised = _store(ctx, request, claims, authority_id, result.accepted, previous)
    token_keys = {k.key.key_data: k for k in result.accepted}
    covered = [
        RevisableKey(k.key.key_data, k.key.rolling_start_interval_number, k.key.rolling_period)
        for k in token_keys.values()
    ] + [p for p in previous if p.key_data not in token_keys]
    return PublishOutcome(inserted, revised, result.warnings, ctx.revision.encrypt(covered))


def _store(
    ctx: ServerContext,
    request: PublishRequest,
    claims: cert.VerificationClaims,
    authority_id: int,
    accepted: Sequence[AcceptedKey],
    previous: Sequence[RevisableKey],
) -> tuple[int, int]:
    """One transaction: certificate marker, new keys, revisions of stored keys (PUB-7).

    A transient database failure (a dropped connection) is retried once; the transaction
    is all-or-nothing, so the retry cannot store anything twice. When the failure hit the
    commit itself the first attempt may have been stored: the retry then finds its own
    certificate marker, and answers success if every key of this upload is stored.
    Otherwise :class:`DatabaseUnavailableError` (503).
    """
    digest = cert.certificate_digest(request.verification_payload)
    fresh = [
        _new_row(ctx, request, item, authority_id)
        for item in accepted
        if item.key.report_type != ReportType.REVOKED  # a first "negative" is not kept
    ]
    return retry_once(
        lambda retry: _store_once(ctx, request, claims, accepted, previous, digest, fresh, retry),
        lambda _failure: DatabaseUnavailableError(UNAVAILABLE),
    )


def _store_once(
    ctx: ServerContext,
    request: PublishRequest,
    claims: cert.VerificationClaims,
    accepted: Sequence[AcceptedKey],
    previous: Sequence[RevisableKey],
    digest: bytes,
    fresh: list[dict[str, Any]],
    retry: bool,
) -> tuple[int, int]:
    try:
        with ctx.write_lock, ctx.engine.begin() as conn:
            # kept while the certificate could still verify: until exp + clock skew
            keep_until = claims.expires_at + ctx.settings.certificate_clock_skew_seconds
            inserted = queries.mark_certificate_and_insert(conn, digest, keep_until, fresh)
            others = [a for a in accepted if a.key.key_data not in inserted]
            existing = queries.existing_exposures(conn, [a.key.key_data for a in others])
            revisions = _plan_revisions(request, others, existing, previous)
            for key_data, values in revisions:
                if not queries.revise_exposure(conn, key_data, values):
                    raise KeyAlreadyRevisedError("a key was revised concurrently")
    except IntegrityError:
        with ctx.engine.connect() as conn:
            if queries.certificate_used(conn, digest):
                if retry and _all_stored(conn, fresh):
                    return len(fresh), 0  # the failed attempt's commit did go through
                raise CertificateInvalidError("certificate was already used") from None
        raise BadRequestError("keys were published concurrently; retry") from None
    return len(inserted), len(revisions)


def _all_stored(conn: Any, fresh: Sequence[dict[str, Any]]) -> bool:
    """Whether every new row of this upload is stored as this upload would store it."""
    stored = queries.existing_exposures(conn, [row["key_data"] for row in fresh])
    return all(
        (found := stored.get(row["key_data"])) is not None
        and found.rolling_start_interval_number == row["rolling_start_interval_number"]
        and found.report_type == row["report_type"]
        for row in fresh
    )


def _plan_revisions(
    request: PublishRequest,
    candidates: Sequence[AcceptedKey],
    existing: dict[bytes, Any],
    previous: Sequence[RevisableKey],
) -> list[tuple[bytes, dict[str, Any]]]:
    """Revisions of stored keys; refuses illegal ones (PUB-19 … PUB-21)."""
    revisable = {p.key_data: p for p in previous}
    revisions: list[tuple[bytes, dict[str, Any]]] = []
    for item in candidates:
        key = item.key
        row = existing.get(key.key_data)
        if row is None:
            continue  # a first "negative" upload: nothing to revise, nothing kept
        current = row.revised_report_type if row.revised_at is not None else row.report_type
        if current == key.report_type:
            continue  # the same key uploaded again: nothing changes
        if row.revised_at is not None:
            raise KeyAlreadyRevisedError("a key was already revised once")
        if not request.revision_token:
            raise MissingRevisionTokenError("revising a stored key needs the revision token")
        grant = revisable.get(key.key_data)
        if grant is None or (grant.interval_number, grant.interval_count) != (
            row.rolling_start_interval_number,
            row.rolling_period,
        ):
            raise InvalidRevisionTokenError("revision token does not cover the key")
        if key.report_type not in ALLOWED_TRANSITIONS.get(ReportType(row.report_type), ()):
            raise InvalidTransitionError(
                f"report type {ReportType(row.report_type).name} cannot become "
                f"{key.report_type.name}"
            )
        revisions.append(
            (
                key.key_data,
                {
                    "revised_report_type": int(key.report_type),
                    "revised_transmission_risk_level": key.transmission_risk_level,
                    "revised_days_since_onset_of_symptoms": key.days_since_onset_of_symptoms,
                    "revised_at": item.created_at,
                },
            )
        )
    return revisions


def _new_row(
    ctx: ServerContext, request: PublishRequest, item: AcceptedKey, authority_id: int
) -> dict[str, Any]:
    key = item.key
    return {
        "key_data": key.key_data,
        "region": ctx.settings.region,
        "traveler": bool(request.traveler),
        "rolling_start_interval_number": key.rolling_start_interval_number,
        "rolling_period": key.rolling_period,
        "transmission_risk_level": key.transmission_risk_level,
        "report_type": int(key.report_type),
        "days_since_onset_of_symptoms": key.days_since_onset_of_symptoms,
        "created_at": item.created_at,
        "health_authority_id": authority_id,
    }


def success_response(ctx: ServerContext, outcome: PublishOutcome) -> PublishResponse:
    """The GAEN response of a successful (or partially successful) publish."""
    response = PublishResponse(
        revisionToken=outcome.revision_token,
        insertedExposures=outcome.inserted,
        padding=padding_for(ctx),
        warnings=list(outcome.warnings),
    )
    if any(w.endswith("key dropped") for w in outcome.warnings):
        response.code = "partial_failure"
        response.error = "some keys were dropped; see warnings"
    return response
