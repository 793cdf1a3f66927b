"""``phe-trace aggregator …`` — run a leader or helper of the aggregate statistics."""

from __future__ import annotations

import json
from typing import Annotated

import typer

app = typer.Typer(
    help="Prio3 aggregator (leader or helper) for aggregate statistics.", no_args_is_help=True
)


def _aggregator(role: str | None) -> object:
    from phe_trace.aggregator import Aggregator, AggregatorSettings

    settings = AggregatorSettings() if role is None else AggregatorSettings(role=role)  # type: ignore[arg-type]
    return Aggregator(settings)


@app.command()
def run(
    role: Annotated[str, typer.Option(help="leader or helper.")],
    host: Annotated[str | None, typer.Option(help="Address (default: settings).")] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (default: settings).", min=0, max=65535)
    ] = None,
) -> None:
    """Serve this aggregator (settings from PHE_TRACE_AGGREGATOR_* variables)."""
    from phe_trace import serving
    from phe_trace.aggregator import Aggregator, AggregatorConfigError, create_app

    if role not in ("leader", "helper"):
        raise AggregatorConfigError("--role must be leader or helper")
    agg = _aggregator(role)
    assert isinstance(agg, Aggregator)
    serving.run(create_app(agg), host=host or agg.settings.host, port=port or agg.settings.port)


@app.command()
def keygen() -> None:
    """Print a new X25519 key pair (private key for the settings, public key for devices)."""
    from nacl.public import PrivateKey

    key = PrivateKey.generate()
    typer.echo(
        json.dumps({"private_key": bytes(key).hex(), "public_key": bytes(key.public_key).hex()})
    )


@app.command()
def collect(
    day: Annotated[
        int,
        typer.Option(help="UTC day number (unix seconds // 86400).", min=0, max=2_932_896),
    ],
) -> None:
    """Leader: collect, prepare with the helper and release every metric of DAY."""
    from phe_trace.aggregator import Aggregator, BatchTooSmall
    from phe_trace.analytics.metrics import METRICS

    agg = _aggregator("leader")
    assert isinstance(agg, Aggregator)
    for metric in METRICS:
        try:
            typer.echo(json.dumps(agg.collect(day, metric).to_json()))
        except BatchTooSmall as exc:
            typer.echo(json.dumps({"day": day, "metric": metric, "not_released": str(exc)}))
