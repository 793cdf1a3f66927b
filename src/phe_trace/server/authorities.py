"""Health authorities: who may vouch for uploads, and the keys their certificates verify with.

``protocol_spec/SPEC.md`` §11 (PUB-5). A health authority is registered with an issuer
(``iss`` of its certificates), an audience (``aud`` this key server expects) and a name,
and with its certificate-signing public keys either as PEM with a key id (``kid``, the
"version") or as a JWKS URL that is fetched with httpx and cached. Both may be combined.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from sqlalchemy.engine import Engine

from .errors import (
    CertificateInvalidError,
    HealthAuthorityError,
    HealthAuthorityUnavailableError,
)
from .storage import authority_queries as queries

__all__ = [
    "HealthAuthority",
    "HealthAuthorityDirectory",
    "HealthAuthorityKey",
    "list_health_authorities",
    "register_health_authority",
]

#: How long the directory trusts its cached copy of the health-authority table.
TABLE_CACHE_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class HealthAuthorityKey:
    """One certificate-signing public key of a health authority, named by ``version`` (kid)."""

    version: str
    public_key_pem: str
    revoked_at: int | None = None


@dataclass(frozen=True, slots=True)
class HealthAuthority:
    """A registered health authority."""

    id: int
    issuer: str
    audience: str
    name: str
    jwks_uri: str | None
    keys: tuple[HealthAuthorityKey, ...] = field(default_factory=tuple)


def _load_public_key(pem: str) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode("ascii"))
    except (ValueError, TypeError, UnicodeEncodeError):
        raise HealthAuthorityError("public key is not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise HealthAuthorityError("public key must be an ECDSA P-256 key")
    return key


def register_health_authority(
    engine: Engine,
    *,
    issuer: str,
    audience: str,
    name: str,
    public_keys: Sequence[HealthAuthorityKey] | Mapping[str, str] = (),
    jwks_url: str | None = None,
    now: float | None = None,
) -> HealthAuthority:
    """Register (or update) the health authority ``issuer``; returns it as stored.

    ``public_keys`` maps key versions (kid) to PEM public keys; ``jwks_url`` names a JWKS
    document to fetch keys from. At least one of the two is needed. Re-registering an
    issuer updates its audience, name and JWKS URL and adds keys of new versions.
    """
    keys = (
        [HealthAuthorityKey(v, pem) for v, pem in public_keys.items()]
        if isinstance(public_keys, Mapping)
        else list(public_keys)
    )
    if not issuer or not audience or not name:
        raise HealthAuthorityError("issuer, audience and name must not be empty")
    if not keys and not jwks_url:
        raise HealthAuthorityError("give PEM public keys or a JWKS URL")
    if jwks_url and not jwks_url.startswith(("https://", "http://")):
        raise HealthAuthorityError("jwks_url must be an http(s) URL")
    for key in keys:
        _load_public_key(key.public_key_pem)
    stamp = int(time.time() if now is None else now)
    with engine.begin() as conn:
        ha_id = queries.authority_id(conn, issuer)
        values = {"audience": audience, "name": name, "jwks_uri": jwks_url}
        if ha_id is None:
            ha_id = queries.insert_authority(conn, issuer, stamp, **values)
        else:
            queries.update_authority(conn, ha_id, **values)
        known = queries.authority_key_versions(conn, ha_id)
        for key in keys:
            if key.version not in known:
                queries.insert_authority_key(
                    conn,
                    health_authority_id=ha_id,
                    version=key.version,
                    public_key_pem=key.public_key_pem,
                    created_at=stamp,
                    revoked_at=key.revoked_at,
                )
    found = [ha for ha in list_health_authorities(engine) if ha.issuer == issuer]
    return found[0]


def list_health_authorities(engine: Engine) -> list[HealthAuthority]:
    """Every registered health authority with its PEM keys, ordered by id."""
    with engine.connect() as conn:
        has = queries.all_authorities(conn)
        keys = queries.all_authority_keys(conn)
    by_ha: dict[int, list[HealthAuthorityKey]] = {}
    for k in keys:
        by_ha.setdefault(k.health_authority_id, []).append(
            HealthAuthorityKey(k.version, k.public_key_pem, k.revoked_at)
        )
    return [
        HealthAuthority(h.id, h.issuer, h.audience, h.name, h.jwks_uri, tuple(by_ha.get(h.id, [])))
        for h in has
    ]


def parse_jwks(document: Any) -> dict[str, list[ec.EllipticCurvePublicKey]]:
    """P-256 keys of a JWKS document by ``kid``; other keys are ignored."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise HealthAuthorityError("JWKS document has no keys list")
    found: dict[str, list[ec.EllipticCurvePublicKey]] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
            continue
        kid = jwk.get("kid")
        if not isinstance(kid, str):
            continue
        try:
            key = ECAlgorithm.from_jwk(json.dumps(jwk))
        except Exception:  # noqa: S112 - a malformed entry is skipped, others still count
            continue
        if isinstance(key, ec.EllipticCurvePublicKey):
            found.setdefault(kid, []).append(key)
    return found


Fetcher = Callable[[str], Any]


def _httpx_fetch(url: str) -> Any:
    response = httpx.get(url, timeout=5.0, follow_redirects=False)
    response.raise_for_status()
    return response.json()


class HealthAuthorityDirectory:
    """Looks up the authority and verification keys for a certificate's ``iss`` and ``kid``.

    Caches the table for :data:`TABLE_CACHE_SECONDS` and each JWKS for ``jwks_cache_seconds``;
    an unknown ``kid`` refreshes a JWKS at most every few seconds; a failed fetch falls
    back to the last good copy.
    """

    def __init__(
        self, engine: Engine, *, jwks_cache_seconds: float = 300.0, fetch: Fetcher = _httpx_fetch
    ) -> None:
        self._engine = engine
        self._jwks_ttl = jwks_cache_seconds
        self._fetch = fetch
        self._lock = threading.Lock()
        self._table: tuple[float, dict[str, HealthAuthority]] | None = None
        self._pem_cache: dict[str, ec.EllipticCurvePublicKey] = {}
        self._jwks: dict[str, tuple[float, dict[str, list[ec.EllipticCurvePublicKey]]]] = {}

    def invalidate(self) -> None:
        """Forget cached table contents (after a registration in this process)."""
        with self._lock:
            self._table = None

    def _authorities(self, max_age: float = TABLE_CACHE_SECONDS) -> dict[str, HealthAuthority]:
        now = time.monotonic()
        with self._lock:
            if self._table and now - self._table[0] < max_age:
                return self._table[1]
        table = {ha.issuer: ha for ha in list_health_authorities(self._engine)}
        with self._lock:
            self._table = (now, table)
        return table

    def lookup(
        self, issuer: str, kid: str, now: float
    ) -> tuple[HealthAuthority, list[ec.EllipticCurvePublicKey]]:
        """The authority ``issuer`` and its keys named ``kid`` valid at ``now``."""
        authority = self._authorities().get(issuer)
        if authority is None:  # registered a moment ago, maybe by another process
            authority = self._authorities(max_age=1.0).get(issuer)
        if authority is None:
            raise CertificateInvalidError("certificate issuer is not a registered health authority")
        keys = [
            self._pem(k.public_key_pem)
            for k in authority.keys
            if k.version == kid and (k.revoked_at is None or k.revoked_at > now)
        ]
        if not keys and authority.jwks_uri:
            keys = self._jwks_keys(authority.jwks_uri, kid)
        if not keys:
            raise CertificateInvalidError("certificate kid is not a key of the health authority")
        return authority, keys

    def _pem(self, pem: str) -> ec.EllipticCurvePublicKey:
        key = self._pem_cache.get(pem)
        if key is None:
            key = self._pem_cache[pem] = _load_public_key(pem)
        return key

    def _jwks_keys(self, url: str, kid: str) -> list[ec.EllipticCurvePublicKey]:
        now = time.monotonic()
        cached = self._jwks.get(url)
        fresh = cached is not None and now - cached[0] < self._jwks_ttl
        if cached and (fresh or now - cached[0] < 5.0) and kid in cached[1]:
            return cached[1][kid]
        if cached and now - cached[0] < 5.0:
            return []
        try:
            keys = parse_jwks(self._fetch(url))
        except (httpx.HTTPError, ValueError, HealthAuthorityError):
            if cached is None:
                raise HealthAuthorityUnavailableError(
                    "the health authority's keys cannot be loaded"
                ) from None
            return cached[1].get(kid, [])
        self._jwks[url] = (now, keys)
        return keys.get(kid, [])
