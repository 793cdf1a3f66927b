"""``phe-trace server …`` — run the key server, export, manage health authorities and keys."""

from __future__ import annotations

import datetime as dt
import math
import socket
from pathlib import Path
from typing import Annotated, Any

import typer

from phe_trace.errors import PheTraceError

from .server_admin import app as admin_app
from .server_federation import app as federation_app

app = typer.Typer(help="The diagnosis-key server of a health authority.", no_args_is_help=True)
ha_app = typer.Typer(
    help="Health authorities whose certificates are accepted.", no_args_is_help=True
)
key_app = typer.Typer(help="Export signing keys.", no_args_is_help=True)
app.add_typer(ha_app, name="health-authority")
app.add_typer(key_app, name="signing-key")
app.add_typer(admin_app, name="admin")
app.add_typer(federation_app, name="federation")

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory (default: $PHE_TRACE_DATA_DIR)."),
]


class CliError(PheTraceError):
    """Raised for invalid command-line input."""

    code = "cli_error"


def _settings(data_dir: Path | None, **extra: Any) -> Any:
    from phe_trace.server.settings import load_settings

    overrides = dict(extra)
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    return load_settings(**overrides)


#: How far after the real clock `server export --now` may be (clock skew between hosts).
FUTURE_SLACK_S = 300.0


def _parse_now(value: str | None) -> float:
    if value is None:
        return dt.datetime.now(dt.UTC).timestamp()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds) or not 0 <= seconds < 2**32 * 600:
            raise CliError(f"--now {value!r} is not a time: give unix seconds from 0 or ISO 8601")
        return seconds
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"--now {value!r} is neither unix seconds nor ISO 8601") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


@app.command()
def run(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=0, max=65535)] = 8080,
    data_dir: DataDir = None,
    role: Annotated[str, typer.Option(help="all | keyserver | verification")] = "all",
    workers: Annotated[int, typer.Option(help="Worker processes (PostgreSQL: up to cores).")] = 1,
) -> None:
    """Serve the key server (and the verification service when installed)."""
    import os

    from phe_trace import serving
    from phe_trace.hosting import ROLE_ENV, ROLES, create_app

    if role not in ROLES:
        raise CliError(f"--role must be one of {', '.join(ROLES)}")
    if workers < 1:
        raise CliError("--workers must be at least 1")
    settings = _settings(data_dir)  # every configuration error reported here, once
    if workers > 1 and settings.effective_database_url.startswith("sqlite"):
        raise CliError(
            f"--workers {workers} needs PostgreSQL (PHE_TRACE_DATABASE_URL): "
            "SQLite serves one worker"
        )
    check_listen(host, port)
    # The start-up line follows the checks at open (a damaged signing key is one line alone).
    if workers == 1:
        application = create_app(settings, role=role, background_export=True)
        typer.echo(startup_line(settings, host, port, role), err=True)
        serving.run(application, host=host, port=port)  # no access log: SERVER_OPTIONS
        return
    from phe_trace.server import ServerContext

    ServerContext.open(settings).close()  # migrate and create keys once, before the workers
    typer.echo(startup_line(settings, host, port, role), err=True)
    if data_dir is not None:
        os.environ["PHE_TRACE_DATA_DIR"] = str(data_dir)
    os.environ[ROLE_ENV] = role
    serving.run(
        "phe_trace.hosting:create_app_from_environment", host=host, port=port, workers=workers
    )


def check_listen(host: str, port: int) -> None:
    """Refuse, on one line, an address this machine cannot listen on (before serving)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CliError(f"cannot listen on {host} port {port}: {reason}") from None


def startup_line(settings: Any, host: str, port: int, role: str) -> str:
    """What `server run` prints before it serves: where each part answers, and what to do
    when no realm exists yet (no portal account can sign in)."""
    from phe_trace.hosting import verification_available

    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{port}"
    parts = []
    if role in ("all", "keyserver"):
        parts.append(f"key server {base}/v1/publish, exports {base}/v1/exports/")
    verification = role in ("all", "verification") and verification_available()
    if verification:
        parts.append(
            f"portal {base}/portal/, device API {base}/api/verify and {base}/api/certificate, "
            f"JWKS {base}/.well-known/jwks.json"
        )
    line = f"phe-trace server: {role} on {base} (data {settings.data_dir}): " + "; ".join(parts)
    if verification and not _has_realm(settings):
        line += (
            f"\nno realm yet: run `phe-trace server init --data-dir {settings.data_dir}` "
            "(or `phe-trace server admin create`) to make the first portal account"
        )
    return line


def _has_realm(settings: Any) -> bool:
    from phe_trace.verification import VerificationService

    from .server_admin import verification_settings

    service = VerificationService(verification_settings(settings.data_dir, create=True))
    try:
        return bool(service.accounts.list_realms())
    finally:
        service.close()


@app.command()
def init(
    data_dir: DataDir = None,
    realm: Annotated[
        str, typer.Option(help="First realm: 1–100 letters, digits or . _ - @ (no spaces).")
    ] = "default",
    username: Annotated[str, typer.Option(help="Sign-in name of the first administrator.")] = (
        "admin"
    ),
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
) -> None:
    """Set up a health authority's server: data directory, keys, realm, first administrator.

    Prompts for the administrator's password (twice, hidden) unless --password-stdin.
    Nothing is created when the realm name, username or password is refused, or when the
    data directory already holds a realm.
    """
    from phe_trace.server import ServerContext
    from phe_trace.verification import VerificationService

    from .server_admin import _read_password, check_new_account, verification_settings

    settings = _settings(data_dir)
    vsettings = verification_settings(settings.data_dir, create=True)
    if _has_any_state(settings) and _has_realm(settings):
        raise CliError(
            f"{settings.data_dir} is already set up (it has a realm): use `phe-trace server "
            "admin` to add realms, accounts and API keys"
        )
    password = _read_password(password_stdin)
    check_new_account(realm, username, password)
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    ServerContext.open(settings).close()  # database, export signing and revision-token keys
    service = VerificationService(vsettings)
    try:
        found = service.accounts.create_realm(realm)
        service.accounts.audit(found.id, "cli", "realm.create", realm)
        service.accounts.create_user(found.id, username, password, is_admin=True, actor="cli")
    finally:
        service.close()
    where = settings.data_dir
    typer.echo(f"set up {where}: key server, verification service, realm {realm}, "
               f"administrator {username}")  # fmt: skip
    typer.echo("next:")
    typer.echo(f"  phe-trace server run --data-dir {where}      # then sign in at /portal/")
    typer.echo(
        f"  phe-trace server admin api-key --name my-app --realm {realm} --data-dir {where}"
        "   # the app's key for /api/verify"
    )
    typer.echo("  devices need the export signing public key: GET /v1/exports/signing-key.pem")
    typer.echo('  back up the data directory (server/README.md, "Backups")')


def _has_any_state(settings: Any) -> bool:
    return bool(settings.data_dir.is_dir() and any(settings.data_dir.iterdir()))


@app.command()
def export(
    data_dir: DataDir = None,
    now: Annotated[str | None, typer.Option(help="Export time: unix seconds or ISO 8601.")] = None,
    allow_future: Annotated[
        bool,
        typer.Option(
            "--allow-future",
            help="Accept a --now after the real clock. For drills on a scratch data directory "
            "only: retention then runs at that time and keys still current are exported and "
            "deleted.",
        ),
    ] = False,
) -> None:
    """Write and sign every due export batch now (or at an earlier --now), then apply
    retention at that time. A --now after the real clock is refused unless --allow-future
    is given: retention there would delete keys that are still within their 14 days, and
    keys still being broadcast would be published."""
    from phe_trace.server import ServerContext, run_export

    at = _parse_now(now)
    real = dt.datetime.now(dt.UTC).timestamp()
    if at > real + FUTURE_SLACK_S and not allow_future:
        raise CliError(
            f"--now {now} is {at - real:.0f} s after the current time: exporting there would "
            "also apply retention there and delete keys that are still current "
            "(--allow-future on a scratch data directory only)"
        )
    ctx = ServerContext.open(_settings(data_dir))
    try:
        report = run_export(ctx, at)
    finally:
        ctx.close()
    typer.echo(
        f"batches: {report.batches_written} written ({report.batches_planned} planned), "
        f"files: {len(report.files_written)}, keys: {report.keys_exported}, "
        f"padding: {report.padding_keys}, deleted files: {report.files_deleted}"
    )
    for name in report.files_written:
        typer.echo(name)


@ha_app.command("add")
def ha_add(
    issuer: Annotated[str, typer.Option(help="iss of the authority's certificates.")],
    audience: Annotated[str, typer.Option(help="aud the certificates must carry.")],
    name: Annotated[str, typer.Option(help="Human-readable name.")],
    public_key: Annotated[
        list[Path] | None, typer.Option("--public-key", help="PEM public key file (repeatable).")
    ] = None,
    key_version: Annotated[
        list[str] | None, typer.Option("--key-version", help="kid of each --public-key, in order.")
    ] = None,
    jwks_url: Annotated[str | None, typer.Option(help="JWKS URL to fetch keys from.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Register (or update) a health authority."""
    from phe_trace.server import ServerContext, register_health_authority

    files, versions = public_key or [], key_version or []
    if len(files) != len(versions):
        raise CliError("give one --key-version per --public-key")
    try:
        keys = {v: f.read_text("ascii") for v, f in zip(versions, files, strict=True)}
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read public key: {exc}") from None
    ctx = ServerContext.open(_settings(data_dir))
    try:
        ha = register_health_authority(
            ctx.engine,
            issuer=issuer,
            audience=audience,
            name=name,
            public_keys=keys,
            jwks_url=jwks_url,
        )
    finally:
        ctx.close()
    typer.echo(f"health authority {ha.id}: {ha.issuer} ({len(ha.keys)} PEM keys)")


@ha_app.command("list")
def ha_list(data_dir: DataDir = None) -> None:
    """List registered health authorities."""
    from phe_trace.server import ServerContext, list_health_authorities

    ctx = ServerContext.open(_settings(data_dir))
    try:
        for ha in list_health_authorities(ctx.engine):
            versions = ",".join(k.version for k in ha.keys) or "-"
            typer.echo(
                f"{ha.id}\t{ha.issuer}\taud={ha.audience}\tname={ha.name}\t"
                f"keys={versions}\tjwks={ha.jwks_uri or '-'}"
            )
    finally:
        ctx.close()


@key_app.command("rotate")
def key_rotate(
    data_dir: DataDir = None,
    retire_previous: Annotated[
        bool,
        typer.Option(help="Stop signing with older keys (only once devices know the new key)."),
    ] = False,
) -> None:
    """Add a new export signing key version; exports are signed by every active key."""
    from phe_trace.server.signing import load_signing_keys, rotate_signing_key

    settings = _settings(data_dir)
    version = rotate_signing_key(settings.signing_key_dir, retire_previous=retire_previous)
    active = [
        k.version for k in load_signing_keys(settings.signing_key_dir, settings.signing_key_id)
    ]
    typer.echo(f"new signing key {version}; active: {', '.join(active)}")
