"""``phe-trace conformance`` — hold a GAEN-compatible key server to SPEC §11–§12.

Before a run, the operator of the server under test registers a health authority for
conformance testing whose certificates the checker mints (SPEC §16)::

    openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt > ha.pem
    openssl ec -in ha.pem -pubout > ha.pub.pem
    phe-trace server health-authority add --issuer conformance.example \\
        --audience keys.example --name "conformance test" \\
        --public-key ha.pub.pem --key-version c1
    phe-trace conformance --server https://keys.example --ha-key ha.pem \\
        --issuer conformance.example --audience keys.example --kid c1 \\
        --export-key export-signing.pub.pem

Exit status: 0 when every check passed or was skipped; non-zero (one line on stderr)
when a check failed, no check passed, or the battery could not run.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives.asymmetric import ec
from rich.console import Console
from rich.table import Table

from phe_trace.conformance import (
    FAIL,
    PASS,
    CheckResult,
    ConformanceConfig,
    ConformanceConfigError,
    ConformanceFailedError,
    load_private_key,
    run_conformance,
)
from phe_trace.protocol import export
from phe_trace.protocol.errors import ExportError

app = typer.Typer(help="Conformance battery for GAEN-compatible key servers.")

_STYLE = {"pass": "green", "fail": "bold red", "skip": "yellow"}


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConformanceConfigError(f"cannot read {what} {path}: {exc.strerror}") from None


def _export_keys(paths: list[Path]) -> tuple[ec.EllipticCurvePublicKey, ...]:
    keys = []
    for path in paths:
        try:
            keys.append(export.load_public_key_pem(_read(path, "--export-key")))
        except ExportError:
            raise ConformanceConfigError(f"--export-key {path} is not a P-256 public key") from None
    return tuple(keys)


def _expected(path: Path | None) -> tuple[str, ...]:
    if path is None:
        return ()
    try:
        values = json.loads(_read(path, "--expect-published"))["keys"]
        return tuple(str(v) for v in values)
    except (ValueError, KeyError, TypeError):
        raise ConformanceConfigError(
            f"{path} is not a file written by --record-published"
        ) from None


def render(results: list[CheckResult], console: Console) -> None:
    """The report as a rich table: requirement ids, check, result, detail."""
    table = Table(title="phe-trace conformance", show_lines=False)
    table.add_column("requirement")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for row in results:
        style = _STYLE[row.status]
        table.add_row(
            ", ".join(row.requirements),
            row.title,
            f"[{style}]{row.status.upper()}[/{style}]",
            row.detail,
        )
    console.print(table)
    counts = {s: sum(r.status == s for r in results) for s in ("pass", "fail", "skip")}
    console.print(f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped")


@app.command()
def conformance(
    server: Annotated[str, typer.Option(help="Base URL of the key server (publish API).")],
    ha_key: Annotated[
        Path, typer.Option(help="PEM P-256 private key of the conformance-test authority.")
    ],
    issuer: Annotated[str, typer.Option(help="iss of the minted certificates.")],
    audience: Annotated[str, typer.Option(help="aud the server expects.")],
    kid: Annotated[str, typer.Option(help="kid (key version) registered for --ha-key.")],
    health_authority_id: Annotated[
        str, typer.Option(help="healthAuthorityID (app id) sent with uploads.")
    ] = "",
    export_url: Annotated[
        str | None, typer.Option(help="Base URL of the export store (default SERVER/v1/exports/).")
    ] = None,
    region: Annotated[str, typer.Option(help="Export root (region) to check.")] = "ZZ",
    export_key: Annotated[
        list[Path] | None,
        typer.Option(help="PEM public key the exports must verify with (repeatable)."),
    ] = None,
    max_keys: Annotated[int, typer.Option(help="The server's keys-per-upload maximum.")] = 30,
    min_export_records: Annotated[
        int | None, typer.Option(help="The server's padding minimum per export batch.")
    ] = None,
    max_files: Annotated[int, typer.Option(help="Newest export files to check.")] = 20,
    only: Annotated[str, typer.Option(help="all | publish | exports")] = "all",
    record_published: Annotated[
        Path | None, typer.Option(help="Write the uploaded keys here (JSON).")
    ] = None,
    expect_published: Annotated[
        Path | None, typer.Option(help="Check that the keys of an earlier run were exported.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print rows as JSON lines.")] = False,
) -> None:
    """Run the documented battery against SERVER; exit non-zero if a check fails."""
    if only not in {"all", "publish", "exports"}:
        raise ConformanceConfigError("--only must be all, publish or exports")
    config = ConformanceConfig(
        server=server,
        ha_key=load_private_key(_read(ha_key, "--ha-key")),
        issuer=issuer,
        audience=audience,
        kid=kid,
        health_authority_id=health_authority_id,
        export_base_url=export_url,
        region=region,
        export_keys=_export_keys(export_key or []),
        max_keys=max_keys,
        min_export_records=min_export_records,
        max_files=max_files,
        expect_published=_expected(expect_published),
    )
    results, battery = run_conformance(
        config, time.time(), publish=only != "exports", exports=only != "publish"
    )
    if record_published is not None:
        keys = [base64.b64encode(k.key_data).decode("ascii") for k in battery.published]
        record_published.write_text(json.dumps({"keys": keys}), encoding="utf-8")
    if json_output:
        for row in results:
            typer.echo(
                json.dumps(
                    {
                        "requirements": list(row.requirements),
                        "check": row.title,
                        "status": row.status,
                        "detail": row.detail,
                    }
                )
            )
    else:
        render(results, Console(width=160))
    failed = sum(r.status == FAIL for r in results)
    if failed or not any(r.status == PASS for r in results):
        raise ConformanceFailedError(f"{failed} of {len(results)} checks failed")
