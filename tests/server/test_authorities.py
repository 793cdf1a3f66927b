"""Health-authority registration: PEM keys and a JWKS URL fetched over HTTP (SPEC PUB-8)."""

from __future__ import annotations

import json

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from jwt.algorithms import ECAlgorithm

from phe_trace.server import ServerContext, list_health_authorities, register_health_authority
from phe_trace.server.errors import CertificateInvalidError, HealthAuthorityError
from phe_trace.serving import LoopbackServer

from .helpers import NOW, Authority, day_keys, publish_body


def _jwks_app(keys: dict[str, ec.EllipticCurvePublicKey], hits: list[int]) -> FastAPI:
    app = FastAPI()

    @app.get("/.well-known/jwks.json")
    def jwks() -> JSONResponse:
        hits.append(1)
        entries = []
        for kid, key in keys.items():
            jwk = json.loads(ECAlgorithm.to_jwk(key))
            jwk.update(kid=kid, use="sig", alg="ES256")
            entries.append(jwk)
        return JSONResponse({"keys": entries})

    return app


def test_register_validates_input(ctx: ServerContext) -> None:
    with pytest.raises(HealthAuthorityError):
        register_health_authority(ctx.engine, issuer="x", audience="y", name="z")
    with pytest.raises(HealthAuthorityError, match="PEM"):
        register_health_authority(
            ctx.engine, issuer="x", audience="y", name="z", public_keys={"v1": "not a key"}
        )
    with pytest.raises(HealthAuthorityError):
        register_health_authority(
            ctx.engine, issuer="x", audience="y", name="z", jwks_url="file:///etc/passwd"
        )


def test_reregistration_adds_keys(ctx: ServerContext, authority: Authority) -> None:
    """Registering again updates the authority and adds new key versions."""
    second = Authority()
    register_health_authority(
        ctx.engine,
        issuer=authority.issuer,
        audience="new-aud",
        name="Renamed",
        public_keys={"v2": second.public_pem},
    )
    (ha,) = list_health_authorities(ctx.engine)
    assert ha.audience == "new-aud" and ha.name == "Renamed"
    assert [k.version for k in ha.keys] == ["v1", "v2"]


def test_jwks_authority_publishes(ctx: ServerContext) -> None:
    """Keys fetched from a JWKS URL verify certificates, and the JWKS is cached (PUB-8)."""
    jwks_authority = Authority(issuer="https://jwks-ha.example", kid="jwk-1")
    hits: list[int] = []
    app = _jwks_app({"jwk-1": jwks_authority.private_key.public_key()}, hits)
    with LoopbackServer(app) as jwks_server:
        register_health_authority(
            ctx.engine,
            issuer=jwks_authority.issuer,
            audience=jwks_authority.audience,
            name="JWKS HA",
            jwks_url=f"{jwks_server.url}/.well-known/jwks.json",
        )
        ctx.directory.invalidate()
        from phe_trace.server import create_app

        with LoopbackServer(create_app(context=ctx)) as live, httpx.Client(base_url=live.url) as c:
            for _ in range(2):
                body = publish_body(jwks_authority, day_keys(NOW, 2), NOW)
                response = c.post("/v1/publish", json=body)
                assert response.status_code == 200, response.text
    assert len(hits) == 1
    with pytest.raises(CertificateInvalidError):
        ctx.directory.lookup(jwks_authority.issuer, "unknown-kid", NOW)
