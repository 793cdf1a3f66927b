"""``phe-trace server admin``: set up the verification service (realms, users, API keys).

There is no default account and no default password: the first realm admin is created
with ``phe-trace server admin create``, which reads the password from a hidden prompt
(asked twice) or, with ``--password-stdin``, from the first line of standard input.
Settings come from the ``PHE_TRACE_VERIFICATION_*`` environment, as for ``server run``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from phe_trace.errors import PheTraceError

if TYPE_CHECKING:
    from phe_trace.verification import VerificationService, VerificationSettings
    from phe_trace.verification.models import Realm

app = typer.Typer(
    name="admin",
    help="Set up the verification service: realms, portal users, API keys, maintenance.",
    no_args_is_help=True,
    add_completion=False,
)
_state: dict[str, Path | None] = {"data_dir": None}

#: Where `server run` keeps its data when neither --data-dir nor PHE_TRACE_DATA_DIR says.
DEFAULT_DATA_DIR = Path("phe-trace-data")

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Data directory of the server (default: $PHE_TRACE_DATA_DIR, else "
        "./phe-trace-data), as for `server run`.",
    ),
]


class NoDataDirError(PheTraceError):
    """An admin command was given no data directory and the default one does not exist."""

    code = "no_data_dir"


@app.callback()
def _options(data_dir: DataDir = None) -> None:
    """Set up the verification service: realms, portal users, API keys, maintenance.

    --data-dir may come before the command or after it, as with every `server` command.
    """
    _state["data_dir"] = data_dir


_ACTOR = "cli"


def server_database_url() -> str | None:
    """``PHE_TRACE_DATABASE_URL`` as the key server reads it (one URL for every role)."""
    from phe_trace.settings import common_settings
    from phe_trace.storage import normalize_url

    value = common_settings().database_url or None
    return normalize_url(value) if value is not None else None


def verification_settings(data_dir: Path | None, *, create: bool = False) -> VerificationSettings:
    """The verification settings of the server whose data directory is ``data_dir``
    (else ``$PHE_TRACE_DATA_DIR``, else ``./phe-trace-data``, which must then exist unless
    ``create``: an admin command never starts a second, empty service by accident)."""
    from phe_trace.verification import VerificationSettings

    settings = VerificationSettings()
    chosen = data_dir or _state["data_dir"]
    if chosen is not None:
        return settings.model_copy(update={"data_dir": chosen}).with_default_data_dir(
            chosen, server_database_url()
        )
    from phe_trace.settings import common_settings

    chosen_env = common_settings().data_dir
    from_env = str(chosen_env) if chosen_env is not None else None
    if "data_dir" in settings.model_fields_set or from_env:
        return settings.with_default_data_dir(Path(from_env or "."), server_database_url())
    if not create and not DEFAULT_DATA_DIR.is_dir():
        raise NoDataDirError(
            f"no data directory given (--data-dir or PHE_TRACE_DATA_DIR) and "
            f"./{DEFAULT_DATA_DIR} does not exist: give the server's data directory, or "
            "set one up with `phe-trace server init`"
        )
    return settings.with_default_data_dir(DEFAULT_DATA_DIR, server_database_url())


@contextmanager
def _service(data_dir: Path | None) -> Iterator[VerificationService]:
    from phe_trace.verification import VerificationService

    service = VerificationService(verification_settings(data_dir))
    try:
        yield service
    finally:
        service.close()


def check_new_account(realm: str, username: str, password: str) -> None:
    """Refuse a bad realm name, username or password before anything is created."""
    from phe_trace.verification.accounts import InvalidInputError, check_name
    from phe_trace.verification.passwords import check_password_policy

    check_name("realm name", realm)
    check_name("username", username)
    problem = check_password_policy(password)
    if problem:
        raise InvalidInputError(problem)


def _realm(service: VerificationService, name: str, *, create: bool) -> Realm:
    from phe_trace.verification.errors import NotFoundError

    realm = service.accounts.realm_by_name(name)
    if realm is None:
        if not create:
            raise NotFoundError(f"realm {name!r} does not exist")
        realm = service.accounts.create_realm(name)
        service.accounts.audit(realm.id, _ACTOR, "realm.create", name)
        typer.echo(f"created realm {name} (daily quota {realm.daily_quota})")
    return realm


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


@app.command()
def create(
    username: Annotated[str, typer.Option(help="Sign-in name of the new account.")],
    realm: Annotated[str, typer.Option(help="Realm (created if absent).")] = "default",
    case_worker: Annotated[
        bool, typer.Option("--case-worker", help="Create a case worker, not a realm admin.")
    ] = False,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Create a portal account (a realm admin unless --case-worker).

    Realm names and usernames are 1–100 letters, digits or . _ - @ (no spaces); passwords
    at least 12 characters. Nothing is created when one of them is refused.
    """
    password = _read_password(password_stdin)
    check_new_account(realm, username, password)
    with _service(data_dir) as service:
        found = _realm(service, realm, create=True)
        user = service.accounts.create_user(
            found.id, username, password, is_admin=not case_worker, actor=_ACTOR
        )
    role = "realm admin" if user.is_admin else "case worker"
    typer.echo(f"created {role} {user.username} in realm {realm}")


@app.command("realm")
def realm_cmd(
    name: Annotated[
        str, typer.Argument(help="Realm name: 1–100 letters, digits or . _ - @ (no spaces).")
    ],
    quota: Annotated[int | None, typer.Option(help="Daily code quota (UTC day).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Create a realm, or change its daily quota of codes."""
    with _service(data_dir) as service:
        found = _realm(service, name, create=True)
        if quota is not None:
            service.accounts.set_daily_quota(found.id, quota, _ACTOR)
            typer.echo(f"realm {name}: daily quota {quota}")


@app.command("realms")
def realms_cmd(data_dir: DataDir = None) -> None:
    """List realms with their daily quota."""
    with _service(data_dir) as service:
        for r in service.accounts.list_realms():
            typer.echo(f"{r.name}\tdaily quota {r.daily_quota}")


@app.command("api-key")
def api_key(
    name: Annotated[str, typer.Option(help="Name of the app the key is for.")],
    realm: Annotated[str, typer.Option(help="Realm of the app.")] = "default",
    data_dir: DataDir = None,
) -> None:
    """Create an app's API key for the device API; it is printed once, stored hashed."""
    with _service(data_dir) as service:
        found = _realm(service, realm, create=False)
        _, clear = service.accounts.create_api_key(found.id, name, _ACTOR)
    typer.echo(clear)


@app.command()
def maintenance(
    state: Annotated[str, typer.Argument(help="on or off")],
    data_dir: DataDir = None,
) -> None:
    """Switch maintenance mode: the device API and code issuance answer maintenance_mode."""
    if state not in ("on", "off"):
        raise typer.BadParameter("state must be 'on' or 'off'")
    with _service(data_dir) as service:
        service.accounts.set_maintenance_mode(state == "on", _ACTOR)
    typer.echo(f"maintenance mode {state}")


@app.command("rotate-key")
def rotate_key(data_dir: DataDir = None) -> None:
    """Make a new certificate signing key; the old one stays in the JWKS until retired."""
    with _service(data_dir) as service:
        kid = service.signing.rotate(service.clock.now())
    typer.echo(f"new signing key {kid}")


@app.command("retire-keys")
def retire_keys(data_dir: DataDir = None) -> None:
    """Remove inactive signing keys from the JWKS (after their certificates expired)."""
    with _service(data_dir) as service:
        kids = service.signing.retire_inactive(service.clock.now())
    typer.echo("retired " + (", ".join(kids) if kids else "nothing"))


@app.command()
def purge(data_dir: DataDir = None) -> None:
    """Delete code status past retention and expired tokens."""
    with _service(data_dir) as service:
        n_codes, n_tokens = service.codes.purge(service.clock.now())
    typer.echo(f"deleted {n_codes} codes and {n_tokens} tokens")
