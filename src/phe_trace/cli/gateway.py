"""``phe-trace gateway …`` — run a federation gateway and keep its allow-list (SPEC §17.2)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    help="Federation gateway: members upload signed key batches and download each other's.",
    no_args_is_help=True,
)
member_app = typer.Typer(help="The allow-list of member certificates.", no_args_is_help=True)
operator_app = typer.Typer(help="The operator's trust-anchor key.", no_args_is_help=True)
app.add_typer(member_app, name="member")
app.add_typer(operator_app, name="operator")

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        envvar="PHE_TRACE_GATEWAY_DATABASE_URL",
        help="SQLite or PostgreSQL URL (default: $PHE_TRACE_DATABASE_URL).",
    ),
]
TrustAnchor = Annotated[
    Path,
    typer.Option(envvar="PHE_TRACE_GATEWAY_TRUST_ANCHOR", help="The operator's PEM public key."),
]


def _settings(database_url: str | None, trust_anchor: Path, **extra: Any) -> Any:
    """The gateway's settings (``PHE_TRACE_GATEWAY_*``, ``extra`` over them); its database
    is ``--database-url``, else the process's ``PHE_TRACE_DATABASE_URL``."""
    from phe_trace.gateway import GatewaySettings
    from phe_trace.gateway.errors import GatewayConfigError
    from phe_trace.settings import common_settings

    url = database_url or common_settings().database_url
    if not url:
        raise GatewayConfigError(
            "no database: give --database-url (PHE_TRACE_GATEWAY_DATABASE_URL) or "
            "PHE_TRACE_DATABASE_URL"
        )
    return GatewaySettings(database_url=url, trust_anchor=trust_anchor, **extra)


def _read(path: Path, what: str) -> bytes:
    from phe_trace.gateway.errors import GatewayConfigError

    try:
        return path.read_bytes()
    except OSError as exc:
        raise GatewayConfigError(f"cannot read {what} {path}: {exc.strerror}") from None


@app.command()
def run(
    trust_anchor: TrustAnchor,
    database_url: DatabaseUrl = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=0, max=65535)] = 8090,
    batching_interval: Annotated[
        float | None,
        typer.Option(
            help="Seconds between batching / callback / retention runs (default: settings, 300)."
        ),
    ] = None,
    max_upload_keys: Annotated[
        int | None, typer.Option(help="Keys per upload at most (default: settings, 5000).")
    ] = None,
    callback_allow_private: Annotated[
        bool | None,
        typer.Option(
            help="Admit http:// and private-address callbacks (one private net; default: "
            "settings, off)."
        ),
    ] = None,
) -> None:
    """Serve the gateway behind a TLS proxy that forwards the client-certificate headers."""
    from phe_trace import serving
    from phe_trace.gateway import create_app

    given = {
        "batching_interval_seconds": batching_interval,
        "max_upload_keys": max_upload_keys,
        "callback_allow_private": callback_allow_private,
    }
    settings = _settings(
        database_url, trust_anchor, **{k: v for k, v in given.items() if v is not None}
    )
    serving.run(create_app(settings, scheduled=True), host=host, port=port)


@app.command("batch")
def batch_now(trust_anchor: TrustAnchor, database_url: DatabaseUrl = None) -> None:
    """Run the scheduled work once now: form download batches, call back, apply retention."""
    import httpx

    from phe_trace.gateway.app import open_gateway, run_scheduled

    gw = open_gateway(_settings(database_url, trust_anchor))
    try:
        with httpx.Client(timeout=gw.settings.callback_timeout_seconds) as client:
            tags = run_scheduled(gw, client)
    finally:
        gw.engine.dispose()
    typer.echo(f"new download batches: {', '.join(tags) or 'none'}")


@operator_app.command("sign")
def operator_sign(
    operator_key: Annotated[Path, typer.Option(help="The operator's PEM private key.")],
    certificate: Annotated[Path, typer.Option(help="A member certificate (PEM).")],
) -> None:
    """Print the operator's countersignature of a member certificate (done offline)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from phe_trace.gateway.errors import GatewayConfigError
    from phe_trace.gateway.trust import sign_pem

    try:
        key = serialization.load_pem_private_key(_read(operator_key, "operator key"), None)
    except (ValueError, TypeError):
        raise GatewayConfigError("the operator key is not an unencrypted PEM key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise GatewayConfigError("the operator key must be ECDSA or RSA")
    typer.echo(sign_pem(_read(certificate, "certificate").decode("ascii", "replace"), key))


@member_app.command("add")
def member_add(
    trust_anchor: TrustAnchor,
    certificate: Annotated[Path, typer.Option(help="The member's certificate (PEM).")],
    cert_type: Annotated[str, typer.Option("--type", help="authentication | signing | callback")],
    operator_signature: Annotated[
        str, typer.Option(help="The operator's countersignature (operator sign).")
    ],
    database_url: DatabaseUrl = None,
) -> None:
    """Put a countersigned member certificate on the allow-list (its country is its C=)."""
    import time

    from phe_trace.gateway.app import open_gateway
    from phe_trace.gateway.errors import GatewayConfigError
    from phe_trace.gateway.trust import CertificateType, add_member_certificate

    try:
        kind = CertificateType(cert_type.upper())
    except ValueError:
        raise GatewayConfigError("--type must be authentication, signing or callback") from None
    gw = open_gateway(_settings(database_url, trust_anchor))
    try:
        pem = _read(certificate, "certificate").decode("ascii", "replace")
        member = add_member_certificate(
            gw.engine, pem, kind, operator_signature, gw.anchor, time.time()
        )
    finally:
        gw.engine.dispose()
    typer.echo(f"{member.country} {member.type.value.lower()} {member.thumbprint}")
