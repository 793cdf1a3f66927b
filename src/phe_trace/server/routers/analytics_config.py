"""``GET /v1/analytics/config``: the health authority's signed analytics configuration.

SPEC AGG-25. The health authority writes the document (:mod:`phe_trace.analytics.config`)
to ``{data_dir}/analytics-config.json``; the key server checks it, signs its exact bytes
with every active export signing key and serves it with the signatures. It is read at
each request (a few hundred bytes), so a re-configuration needs no restart.
"""

from __future__ import annotations

import base64
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from phe_trace.analytics.config import parse_config, sign_config
from phe_trace.analytics.errors import EncodingError
from phe_trace.web.errors import ERROR_SCHEMA, error_response

from ..deps import ContextDep
from ..signing import load_signing_keys

__all__ = ["CONFIG_FILE", "router"]

#: File name of the document inside the key server's data directory.
CONFIG_FILE = "analytics-config.json"

router = APIRouter(tags=["aggregate statistics"])
_RESPONSES: dict[int | str, dict[str, object]] = {
    404: {
        "description": "No analytics configuration (analytics_not_configured).",
        "content": {"application/json": {"schema": ERROR_SCHEMA}},
    },
    503: {
        "description": "The configuration file is malformed (analytics_config_invalid).",
        "content": {"application/json": {"schema": ERROR_SCHEMA}},
    },
}


@router.get("/v1/analytics/config", summary="Signed analytics configuration", responses=_RESPONSES)
def analytics_config(ctx: ContextDep) -> JSONResponse:
    """The document (base64 of its exact bytes) and one signature per active export key."""
    path: Path = ctx.settings.data_dir / CONFIG_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return error_response(404, "analytics_not_configured", "this server publishes no analytics")
    try:
        parse_config(raw)
    except EncodingError as exc:  # never sign what a device would refuse anyway
        return error_response(503, "analytics_config_invalid", f"analytics configuration: {exc}")
    keys = load_signing_keys(ctx.settings.signing_key_dir, ctx.settings.signing_key_id)
    signatures = [
        {
            "verification_key_version": k.version,
            "signature": base64.b64encode(sign_config(raw, k.private_key)).decode(),
        }
        for k in keys
    ]
    return JSONResponse(
        {"config": base64.b64encode(raw).decode(), "signatures": signatures},
        headers={"Cache-Control": "public, max-age=300"},
    )
