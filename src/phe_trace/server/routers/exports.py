"""``GET /v1/exports/…`` — export files, index and signing public keys (SPEC §11, §12).

``index.txt`` may change, so it is cacheable only briefly; zip files never change once
written, so they are marked immutable for a year.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import FileResponse, JSONResponse, Response

from phe_trace.protocol import export
from phe_trace.web.errors import ERROR_SCHEMA

from ..deps import ContextDep
from ..errors import ExportStoreError
from ..exportstore import INDEX_CACHE_CONTROL, ZIP_CACHE_CONTROL
from ..signing import load_signing_keys

__all__ = ["INDEX_CACHE_CONTROL", "ZIP_CACHE_CONTROL", "router"]


router = APIRouter(tags=["exports"])
_NOT_FOUND: dict[int | str, dict[str, object]] = {
    400: {
        "description": "Malformed region or file name.",
        "content": {"application/json": {"schema": ERROR_SCHEMA}},
    },
    404: {
        "description": "No such export object.",
        "content": {"application/json": {"schema": ERROR_SCHEMA}},
    },
}
Region = Annotated[str, Path(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,31}$")]
ZipName = Annotated[str, Path(pattern=r"^[0-9]{1,20}-[0-9]{1,20}-[0-9]{5}\.zip$")]


@router.get("/v1/exports/signing-keys", summary="Export signing public keys")
def signing_keys(ctx: ContextDep) -> JSONResponse:
    """Every active export signing key with its SignatureInfo fields and SPKI (base64, PEM)."""
    keys = load_signing_keys(ctx.settings.signing_key_dir, ctx.settings.signing_key_id)
    return JSONResponse({"keys": [k.describe() for k in keys]})


@router.get(
    "/v1/exports/signing-key.pem",
    summary="Newest export signing public key (PEM)",
    response_class=Response,
    responses={200: {"content": {"application/x-pem-file": {"schema": {"type": "string"}}}}},
)
def signing_key_pem(ctx: ContextDep) -> Response:
    """The newest active export signing public key as PEM."""
    keys = load_signing_keys(ctx.settings.signing_key_dir, ctx.settings.signing_key_id)
    return Response(keys[-1].public_key_pem, media_type="application/x-pem-file")


@router.get(
    "/v1/exports/{region}/index.txt",
    summary="Index of export files, oldest first",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, **_NOT_FOUND},
)
def index(region: Region, ctx: ContextDep) -> Response:
    """``index.txt`` of ``region``: one relative path per line, oldest to newest.

    The configured region always has an index: before the first batch is written it is
    empty (SPEC EXP-14). Any other region is not found.
    """
    try:
        name = export.index_file_name(region)
    except export.ExportError:
        raise ExportStoreError("no such export region") from None
    try:
        data = ctx.store.read(name)
    except ExportStoreError:
        if region != ctx.settings.region:
            raise
        data = b""
    return Response(
        data,
        media_type="text/plain; charset=us-ascii",
        headers={"Cache-Control": INDEX_CACHE_CONTROL},
    )


@router.get(
    "/v1/exports/{region}/{name}",
    summary="One signed export file",
    response_class=Response,
    responses={
        200: {"content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}},
        **_NOT_FOUND,
    },
)
def export_zip(region: Region, name: ZipName, ctx: ContextDep) -> Response:
    """A signed export zip (export.bin + export.sig), immutable."""
    object_name = f"{region}/{name}"
    headers = {"Cache-Control": ZIP_CACHE_CONTROL}
    path = ctx.store.path_of(object_name)
    if path is not None:
        return FileResponse(path, media_type="application/zip", headers=headers)
    if not ctx.store.exists(object_name):
        raise ExportStoreError("export object does not exist")
    return Response(ctx.store.read(object_name), media_type="application/zip", headers=headers)
