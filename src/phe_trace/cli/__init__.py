"""The ``phe-trace`` command line: one entry point, one sub-command group per role.

Each role's commands live in their own module of this package (``cli/server.py``,
``cli/agent.py``, ...) and are composed here. Errors from the phe-trace exception tree
become one line on stderr and a non-zero exit; no traceback reaches the user.
"""

from __future__ import annotations

import sys

import typer

from phe_trace import __version__
from phe_trace.errors import PheTraceError

app = typer.Typer(
    name="phe-trace",
    help="Privacy-preserving, decentralized exposure notification (GAEN-compatible).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Privacy-preserving, decentralized exposure notification (GAEN-compatible)."""


@app.command()
def version() -> None:
    """Print the phe-trace version."""
    typer.echo(__version__)


def _register_subcommands() -> None:
    """Attach each role's command group (imported here so ``version`` stays light)."""
    from .agent import app as agent_app
    from .aggregator import app as aggregator_app
    from .conformance import conformance as conformance_command
    from .demo import demo as demo_command
    from .server import app as server_app

    app.add_typer(server_app, name="server")
    app.add_typer(agent_app, name="agent")
    app.add_typer(aggregator_app, name="aggregator")
    app.command("demo")(demo_command)
    app.command("conformance")(conformance_command)


_register_subcommands()


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
    except KeyboardInterrupt:
        print("phe-trace: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
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
