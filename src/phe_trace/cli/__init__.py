"""The ``phe-trace`` command line: one entry point, one sub-command group per role.

Each role's commands live in their own module of this package (``cli/server.py``,
``cli/agent.py``, ...) and are composed here. Errors from the phe-trace exception tree
become one line on stderr and a non-zero exit; no traceback reaches the user.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

from phe_trace import __version__
from phe_trace.errors import PheTraceError

if TYPE_CHECKING:  # the click that typer carries (its types in the group's signatures)
    from typer._click import Command, Context

#: Each role's commands: name -> (module, attribute, one-line help). A role's module is
#: imported only when its command runs, so a device with only the ``device`` extra never
#: imports the server's dependencies, and ``phe-trace --help`` imports none of them.
_ROLES: dict[str, tuple[str, str, str]] = {
    "server": ("phe_trace.cli.server", "app", "The diagnosis-key server of a health authority."),
    "agent": (
        "phe_trace.cli.agent",
        "app",
        "The device agent: broadcast, listen, keep 14 days encrypted, check, report.",
    ),
    "aggregator": (
        "phe_trace.cli.aggregator",
        "app",
        "Prio3 aggregator (leader or helper) for aggregate statistics.",
    ),
    "gateway": (
        "phe_trace.cli.gateway",
        "app",
        "Federation gateway: members upload signed key batches and download each other's.",
    ),
    "demo": ("phe_trace.cli.demo", "demo", "The simulated city, end to end."),
    "conformance": (
        "phe_trace.cli.conformance",
        "conformance",
        "Hold a GAEN-compatible key server to the export and publish specification.",
    ),
}


#: Top-level import name -> the extra that installs it (for a one-line hint).
_EXTRA_OF = {
    "jwt": "server",
    "fastapi": "server",
    "uvicorn": "server",
    "sqlalchemy": "server",
    "alembic": "server",
    "jinja2": "server",
    "multipart": "server",
    "opendp": "server",
    "matplotlib": "server",
    "bumble": "device",
    "bleak": "device",
    "dbus_fast": "device",
    "psycopg": "postgres",
}


class MissingExtraError(PheTraceError):
    """A command needs a package of an extra that is not installed."""

    code = "missing_extra"


def missing_extra(exc: ModuleNotFoundError) -> MissingExtraError:
    """The one-line error for a command whose extra is not installed."""
    top = (exc.name or "").split(".")[0]
    extra = _EXTRA_OF.get(top)
    hint = f": install phe-trace[{extra}]" if extra else ""
    return MissingExtraError(f"this command needs the Python package {top!r}{hint}")


def _single(name: str, function: Callable[..., None], **settings: Any) -> Command:
    single = typer.Typer(add_completion=False)
    single.command(name, **settings)(function)
    return typer.main.get_command(single)


def _unavailable(name: str, exc: ModuleNotFoundError) -> Command:
    error = missing_extra(exc)

    def fail() -> None:
        raise error

    # No --help of its own: `COMMAND --help` says what is missing, too.
    return _single(
        name,
        fail,
        help=f"(not available: {error})",
        context_settings={
            "help_option_names": [],
            "ignore_unknown_options": True,
            "allow_extra_args": True,
        },
    )


def _load_role(name: str) -> Command:
    module_name, attribute, _ = _ROLES[name]
    try:
        target = getattr(importlib.import_module(module_name), attribute)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] == "phe_trace":
            raise
        return _unavailable(name, exc)
    if isinstance(target, typer.Typer):
        target._add_completion = False
        command = typer.main.get_command(target)
    else:  # a single command function
        command = _single(name, target)
    command.name = name
    return command


class _LazyRoles(TyperGroup):
    """The root group: role commands are listed from :data:`_ROLES`, imported on use."""

    def list_commands(self, ctx: Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_ROLES})

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name in _ROLES:
            return _load_role(cmd_name)
        return super().get_command(ctx, cmd_name)


app = typer.Typer(
    name="phe-trace",
    help="Privacy-preserving, decentralized exposure notification (GAEN-compatible).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_LazyRoles,
)


@app.callback()
def _root() -> None:
    """Privacy-preserving, decentralized exposure notification (GAEN-compatible)."""


@app.command()
def version() -> None:
    """Print the phe-trace version."""
    typer.echo(__version__)


def describe_environment_error(exc: BaseException) -> str | None:
    """One line for a failure of what the user pointed a command at, else ``None``.

    A setting that does not validate (named by its environment variable), a path that
    cannot be used as given (a file where a directory belongs, a name too long, no
    permission), a database URL that does not parse or a database that cannot be reached.
    These come from the user's input and environment, not from a fault of phe-trace, so
    they are reported as such wherever in a command they surface (SPEC CLI-1).
    """
    from phe_trace.settings import describe_settings_error, is_settings_error

    if is_settings_error(exc):
        return describe_settings_error(exc)
    if isinstance(exc, OSError) and exc.strerror:
        where = f" {exc.filename}" if exc.filename else ""
        if exc.filename2:
            where += f" -> {exc.filename2}"
        return f"cannot use{where}: {exc.strerror}"
    module = type(exc).__module__ or ""
    if module.startswith("sqlalchemy"):
        name = type(exc).__name__
        if name == "ArgumentError":
            return f"the database URL is not valid: {exc}"
        if name in ("OperationalError", "InterfaceError", "DatabaseError"):
            cause = getattr(exc, "orig", None) or exc
            first = str(cause).strip().splitlines()[0] if str(cause).strip() else name
            return f"the database cannot be used: {first}"
    if isinstance(exc, ModuleNotFoundError | ImportError) and "dialect" in str(exc):
        return f"the database URL names a driver that is not installed: {exc}"
    return None


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run the CLI, mapping phe-trace errors to one stderr line."""
    try:
        status = app(args=argv, standalone_mode=False)  # typer returns 130 on Ctrl-C
    except PheTraceError as exc:
        print(f"phe-trace: error: {exc}", file=sys.stderr)
        return 2
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        print("phe-trace: aborted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:  # a package of an extra imported by a command
        if exc.name is None or exc.name.split(".")[0] in ("phe_trace", ""):
            raise
        print(f"phe-trace: error: {missing_extra(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("phe-trace: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        environmental = describe_environment_error(exc)
        if environmental is not None:
            print(f"phe-trace: error: {environmental}", file=sys.stderr)
            return 2
        # Usage errors (unknown option, bad value) arrive here in non-standalone mode as
        # click exceptions; they carry a message and an exit code.
        format_message = getattr(exc, "format_message", None)
        if callable(format_message):
            print(f"phe-trace: error: {format_message()}", file=sys.stderr)
            return int(getattr(exc, "exit_code", 2))
        raise
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    sys.exit(main())
