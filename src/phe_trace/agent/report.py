"""Report: verify a code, certify the TEK HMAC, publish the keys (AGENT-17 … AGENT-19).

The GAEN verification protocol (``protocol_spec/SPEC.md`` §7, §11, §13), from the device:

1. ``POST {verification_url}/api/verify`` ``{code, accept}`` → a token and the test type;
2. the device draws a random 32-byte HMAC key and computes the TEK HMAC of the keys it
   will publish (:func:`phe_trace.protocol.tekmac.tek_hmac`);
3. ``POST /api/certificate`` ``{token, ekeyhmac}`` → a signed certificate carrying only
   that HMAC — the verification service never sees the keys;
4. ``POST {key_server_url}/v1/publish`` with the keys of the last 14 days (today's key
   too: the key server embargoes it until it expires), the certificate and the HMAC key
   → a revision token, kept sealed so a later report (e.g. likely → confirmed) can
   revise the same keys.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any

import httpx

from phe_trace.crypto import TEK_ROLLING_PERIOD, en_interval_number
from phe_trace.protocol.tekmac import TekHmacKey, tek_hmac

from .config import AgentConfig
from .download import tls_problem
from .errors import ReportError
from .records import StoredKey
from .schedule import tek_day
from .state import ReportState
from .store import AgentStore

__all__ = [
    "PUBLISH_DAYS",
    "UPLOAD_SIZE_CLASS",
    "ReportResult",
    "keys_to_publish",
    "padded_upload",
    "run_report",
    "run_revise",
]

log = logging.getLogger("phe_trace.agent")

#: Days of keys a report publishes, today's included.
PUBLISH_DAYS = 14
_HMAC_KEY_LENGTH = 32
#: A publish body is padded to a whole multiple of this many bytes (AGENT-18): uploads of
#: 1 … 30 keys, first reports and revisions alike, are all exactly this size.
UPLOAD_SIZE_CLASS = 8192
#: Least padding of an upload (the GAEN client guidance asks for at least 1 KiB).
_MIN_UPLOAD_PADDING = 1024
_B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


@dataclass(slots=True)
class ReportResult:
    """What a report or revision published."""

    inserted: int
    revision_token: str
    test_type: str | None
    keys_sent: int
    warnings: list[str]


def keys_to_publish(store: AgentStore, now: float) -> list[StoredKey]:
    """The device's keys of the last 14 days, today's included, oldest first (AGENT-17)."""
    first = (tek_day(now) - PUBLISH_DAYS + 1) * TEK_ROLLING_PERIOD
    last = tek_day(now) * TEK_ROLLING_PERIOD
    return [k for k in store.teks() if first <= k.rolling_start_interval_number <= last]


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def padded_upload(body: dict[str, Any]) -> bytes:
    """The JSON bytes of a publish ``body`` with ``padding`` filling a whole size class.

    The padding is random base64 (whole groups of four) of at least 1 KiB; the body then
    is ``UPLOAD_SIZE_CLASS`` bytes (or a multiple, for an unusually large body), the last
    0–3 of them JSON whitespace, so its size does not reveal the number of keys.
    """
    bare = len(_encode({**body, "padding": ""}))
    classes = -(-(bare + _MIN_UPLOAD_PADDING) // UPLOAD_SIZE_CLASS)
    target = classes * UPLOAD_SIZE_CLASS
    room = target - bare
    padding = "".join(secrets.choice(_B64_ALPHABET) for _ in range(room - room % 4))
    data = _encode({**body, "padding": padding}) + b" " * (room % 4)
    assert len(data) == target
    return data


def _post(
    client: httpx.Client,
    url: str,
    body: dict[str, Any] | bytes,
    headers: dict[str, str],
    what: str,
) -> dict[str, Any]:
    try:
        if isinstance(body, bytes):
            response = client.post(
                url, content=body, headers={**headers, "Content-Type": "application/json"}
            )
        else:
            response = client.post(url, json=body, headers=headers)
    except httpx.TransportError as exc:
        why = tls_problem(exc) or type(exc).__name__
        raise ReportError(f"{what}: cannot reach {url.split('?')[0]} ({why})") from None
    try:
        data = response.json()
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    code = data.get("errorCode") or data.get("code") or None
    if response.status_code >= 400 or data.get("error"):
        message = data.get("error") or f"HTTP {response.status_code}"
        raise ReportError(
            f"{what} refused: {message} ({code or response.status_code})", server_code=code
        )
    return data


def _symptom_onset_interval(symptom_date: str | None) -> int | None:
    if not symptom_date:
        return None
    try:
        day = dt.date.fromisoformat(symptom_date)
    except ValueError:
        return None
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()
    return en_interval_number(midnight)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _publish(
    cfg: AgentConfig,
    store: AgentStore,
    code: str,
    now: float,
    client: httpx.Client,
    revision_token: str,
) -> ReportResult:
    if not cfg.verification_url or not cfg.key_server_url:
        raise ReportError(
            "reporting needs PHE_TRACE_AGENT_VERIFICATION_URL and PHE_TRACE_AGENT_KEY_SERVER_URL"
        )
    keys = keys_to_publish(store, now)
    if not keys:
        raise ReportError("there are no keys to publish")
    api = {"X-API-Key": cfg.verification_api_key} if cfg.verification_api_key else {}
    verification = cfg.verification_url.rstrip("/")
    verified = _post(
        client,
        f"{verification}/api/verify",
        {
            "code": code,
            "accept": cfg.accepted_test_types(),
            "padding": _b64(secrets.token_bytes(32)),
        },
        api,
        "verification of the code",
    )
    token = verified.get("token")
    if not isinstance(token, str) or not token:
        raise ReportError("the verification service answered without a token")
    hmac_key = secrets.token_bytes(_HMAC_KEY_LENGTH)
    mac = tek_hmac(
        hmac_key,
        [
            TekHmacKey(k.key_data, k.rolling_start_interval_number, k.rolling_period, 0)
            for k in keys
        ],
    )
    certified = _post(
        client,
        f"{verification}/api/certificate",
        {"token": token, "ekeyhmac": _b64(mac)},
        api,
        "certificate request",
    )
    certificate = certified.get("certificate")
    if not isinstance(certificate, str) or not certificate:
        raise ReportError("the verification service answered without a certificate")
    body: dict[str, Any] = {
        "temporaryExposureKeys": [
            {
                "key": _b64(k.key_data),
                "rollingStartNumber": k.rolling_start_interval_number,
                "rollingPeriod": k.rolling_period,
                "transmissionRisk": 0,
            }
            for k in keys
        ],
        "healthAuthorityID": cfg.health_authority_id,
        "verificationPayload": certificate,
        "hmacKey": _b64(hmac_key),
        "traveler": False,
        "revisionToken": revision_token,
    }
    onset = _symptom_onset_interval(verified.get("symptomDate"))
    if onset is not None:
        body["symptomOnsetInterval"] = onset
    published = _post(
        client,
        f"{cfg.key_server_url.rstrip('/')}/v1/publish",
        padded_upload(body),
        {},
        "publishing the keys",
    )
    new_token = str(published.get("revisionToken") or "")
    test_type = verified.get("testtype") if isinstance(verified.get("testtype"), str) else None
    store.save(
        ReportState(
            published_at=now, revision_token=new_token, test_type=test_type, keys_sent=len(keys)
        )
    )
    warnings = [str(w) for w in published.get("warnings") or []]
    log.info("published %d keys (%s)", len(keys), test_type or "unknown test type")
    return ReportResult(
        int(published.get("insertedExposures") or 0), new_token, test_type, len(keys), warnings
    )


def _with_client(cfg: AgentConfig, client: httpx.Client | None) -> tuple[httpx.Client, bool]:
    if client is not None:
        return client, False
    return httpx.Client(timeout=cfg.http_timeout_s, follow_redirects=True), True


def run_report(
    config: AgentConfig,
    store: AgentStore,
    code: str,
    now: float,
    client: httpx.Client | None = None,
) -> ReportResult:
    """Verify ``code`` and publish the last 14 days of keys (AGENT-17, AGENT-18) of the
    device whose settings are ``config`` and whose keys are in ``store``, at ``now``, over
    ``client`` (one of its own when None)."""
    if not code.strip():
        raise ReportError("a verification code is required")
    http, own = _with_client(config, client)
    try:
        return _publish(config, store, code.strip(), now, http, revision_token="")
    finally:
        if own:
            http.close()


def run_revise(
    config: AgentConfig,
    store: AgentStore,
    code: str,
    now: float,
    client: httpx.Client | None = None,
) -> ReportResult:
    """Publish again under a new code, with the kept revision token (AGENT-19)."""
    token = store.load(ReportState).revision_token
    if not token:
        raise ReportError("nothing to revise: no earlier report is stored on this device")
    http, own = _with_client(config, client)
    try:
        return _publish(config, store, code.strip(), now, http, revision_token=str(token))
    finally:
        if own:
            http.close()
