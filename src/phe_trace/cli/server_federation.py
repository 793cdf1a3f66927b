"""``phe-trace server federation …`` — exchange keys with a federation gateway (SPEC §17.3).

The gateway and this member's credentials come from ``PHE_TRACE_FEDERATION_*``
variables (see ``server/README.md``); the key server's own settings as for every
``phe-trace server`` command.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    help="Exchange keys with a federation gateway (PHE_TRACE_FEDERATION_* settings).",
    no_args_is_help=True,
)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory (default: $PHE_TRACE_DATA_DIR)."),
]


def _open(data_dir: Path | None) -> tuple[Any, Any]:
    from pydantic import ValidationError

    from phe_trace.server import ServerContext
    from phe_trace.server.federation import FederationError, FederationSettings
    from phe_trace.server.settings import load_settings

    try:
        fed = FederationSettings()  # type: ignore[call-arg]
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
        raise FederationError(
            "federation settings invalid or missing: " + ", ".join(fields)
        ) from None
    overrides = {} if data_dir is None else {"data_dir": data_dir}
    return ServerContext.open(load_settings(**overrides)), fed


def _run(data_dir: Path | None, upload: bool, download: bool) -> None:
    from phe_trace.server.federation import download_keys, federation_client, upload_keys

    ctx, fed = _open(data_dir)
    now = time.time()
    try:
        with federation_client(fed) as client:
            if upload:
                up = upload_keys(ctx, fed, client, now)
                typer.echo(
                    f"uploaded: {up.keys} keys in {up.batches} batches "
                    f"({up.already_known} already at the gateway)"
                )
            if download:
                down = download_keys(ctx, fed, client, now)
                typer.echo(
                    f"downloaded: {down.batches} batches, {down.keys_imported} keys imported, "
                    f"{down.keys_known} already known, {down.keys_dropped} dropped, "
                    f"refused: {', '.join(down.batches_refused) or 'none'}"
                )
    finally:
        ctx.close()


@app.command()
def upload(data_dir: DataDir = None) -> None:
    """Upload this server's own expired keys that the gateway does not have yet."""
    _run(data_dir, upload=True, download=False)


@app.command()
def download(data_dir: DataDir = None) -> None:
    """Import the other members' keys of the last days, verified batch by batch."""
    _run(data_dir, upload=False, download=True)


@app.command()
def sync(data_dir: DataDir = None) -> None:
    """Upload, then download (what a cron job or the gateway's callback triggers)."""
    _run(data_dir, upload=True, download=True)


@app.command("import-exports")
def import_exports_command(
    name: Annotated[str, typer.Option(help="A label for the other authority.")],
    index_url: Annotated[str, typer.Option(help="URL of its index.txt.")],
    export_root: Annotated[str, typer.Option(help="URL its index's relative paths hang off.")],
    public_key: Annotated[Path, typer.Option(help="Its export signing public key (PEM).")],
    origin: Annotated[str, typer.Option(help="Origin (country or region) of its keys.")],
    data_dir: DataDir = None,
) -> None:
    """Import another key server's verified export files as non-local keys."""
    import httpx

    from phe_trace.protocol import export
    from phe_trace.server import ServerContext
    from phe_trace.server.export_import import ExportSource, import_exports
    from phe_trace.server.federation import FederationError
    from phe_trace.server.settings import load_settings

    try:
        key = export.load_public_key_pem(public_key.read_bytes())
    except OSError as exc:
        raise FederationError(f"cannot read {public_key}: {exc.strerror}") from None
    source = ExportSource(name, index_url, export_root, key, origin)
    overrides = {} if data_dir is None else {"data_dir": data_dir}
    ctx = ServerContext.open(load_settings(**overrides))
    try:
        with httpx.Client(timeout=120) as client:
            report = import_exports(ctx, source, client, time.time())
    finally:
        ctx.close()
    typer.echo(
        f"files: {report.files} imported, keys: {report.keys_imported} imported, "
        f"{report.keys_known} already known, {report.keys_dropped} dropped"
    )
    for line in report.refused:
        typer.echo(f"refused {line}")
