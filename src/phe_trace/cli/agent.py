"""``phe-trace agent …``: run the device agent and exercise the person's rights.

Commands: ``run`` (the daemon), ``status``, ``sync`` (check for exposures now),
``report --code CODE [--revise]``, ``export-data``, ``wipe``, ``check-radio``, ``room``
(a virtual radio room for agents on one machine), ``region add|remove|list`` (regions
followed besides home). Settings
come from ``PHE_TRACE_AGENT_*`` variables and the ``--config`` env file
(``device/agent.env.example``); the data directory defaults to systemd's
``$STATE_DIRECTORY`` or ``~/.local/share/phe-trace/agent``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from phe_trace.agent import Agent, AgentConfig, AgentStore, load_config
from phe_trace.agent.errors import AgentConfigError, ExportRejectedError

from .agent_analytics import analytics as analytics_command
from .agent_analytics import echo_status as echo_analytics_status
from .agent_settings import ConfigOption, DataDirOption, existing, load_settings

app = typer.Typer(
    name="agent",
    help="The device agent: broadcast, listen, keep 14 days encrypted, check, report.",
    no_args_is_help=True,
)
app.command("analytics")(analytics_command)
region_app = typer.Typer(
    help="Regions followed besides home (places you visit), each with its own key.",
    no_args_is_help=True,
)
app.add_typer(region_app, name="region")


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True))


@app.command()
def status(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Risk level, most recent exposure day, when the last check ran, what is stored."""
    agent = Agent.open(existing(load_settings(config, data_dir)), now=time.time())
    try:
        summary = agent.status(time.time())
    finally:
        agent.close()
    if as_json:
        _echo_json(summary)
        return
    checked = summary["last_check"] is not None
    typer.echo(f"risk level:          {summary['risk_level'] if checked else 'never checked'}")
    typer.echo(f"last exposure day:   {summary['last_exposure_day'] or '-'}")
    typer.echo(f"last check:          {summary['last_check'] or 'never'}")
    if summary["last_check_error"]:
        typer.echo(f"last check error:    {summary['last_check_error']}")
    for path, code in sorted(summary["last_check_rejected_files"].items()):
        typer.echo(f"refused export:      {path} ({code})")
    typer.echo(f"keys stored:         {summary['stored_keys']}")
    typer.echo(f"sighting windows:    {summary['stored_sighting_windows']}")
    typer.echo(f"reported positive:   {summary['reported'] or 'no'}")
    for region in summary["regions"]:
        typer.echo(f"region:              {_region_line(region)}")
    echo_analytics_status(summary)
    for warning in summary["warnings"]:
        typer.echo(f"warning:             {warning}")


def _region_line(region: dict[str, Any]) -> str:
    line = f"{region['name']}{' (home)' if region['home'] else ''} {region['index_url']}"
    line += f", {region['files_processed']} file(s) processed"
    if region["key_id"]:
        line += f", key id {region['key_id']}"
    if region["last_error"]:
        line += f", last check failed: {region['last_error']}"
    return line


@region_app.command("add")
def region_add(
    name: Annotated[str, typer.Argument(help="A name for the region on this device.")],
    url: Annotated[
        str, typer.Option("--url", help="Its export base URL (…/v1/exports/ of its key server).")
    ],
    key: Annotated[
        Path, typer.Option("--key", help="Its health authority's export-signing key (PEM).")
    ],
    region: Annotated[
        str | None, typer.Option("--region", help="Its exports' region id (default: NAME).")
    ] = None,
    key_id: Annotated[
        str | None,
        typer.Option("--key-id", help="The verification key id its files must name."),
    ] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Follow another region: its exports are checked too, verified with its key only."""
    from phe_trace.agent.regions import add_region, region_from_options

    followed = region_from_options(name, url, key, region, key_id)
    agent = Agent.open(load_settings(config, data_dir), now=time.time())
    try:
        add_region(agent.config, agent.store, followed)
    finally:
        agent.close()
    typer.echo(f"following {followed.name}: {followed.index_url}")


@region_app.command("remove")
def region_remove(
    name: Annotated[str, typer.Argument(help="The region's name on this device.")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Stop following a region added with `region add` (what it matched is kept)."""
    from phe_trace.agent.regions import remove_region

    agent = Agent.open(existing(load_settings(config, data_dir)), now=time.time())
    try:
        removed = remove_region(agent.config, agent.store, name)
    finally:
        agent.close()
    typer.echo(f"no longer following {removed.name}")


@region_app.command("list")
def region_list(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The regions this device follows, home first."""
    agent = Agent.open(existing(load_settings(config, data_dir)), now=time.time())
    try:
        regions = agent.status(time.time())["regions"]
    finally:
        agent.close()
    if as_json:
        _echo_json(regions)
        return
    for region in regions:
        typer.echo(_region_line(region))


@app.command()
def sync(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """Check for exposures now: download new exports, verify, match, score."""
    agent = Agent.open(load_settings(config, data_dir), now=time.time())
    try:
        result = agent.sync(time.time())
    finally:
        agent.close()
    if result.nothing_published:
        typer.echo("nothing published yet: the key server lists no export file")
    typer.echo(
        f"checked {result.files_checked} file(s), {result.keys_checked} key(s): "
        f"risk {result.risk_level}"
        + (f", most recent exposure {result.last_exposure_day}" if result.last_exposure_day else "")
    )
    if result.interrupted:
        typer.echo(f"download interrupted, resumes next time: {result.interrupted}", err=True)
    for name, region in sorted(result.regions.items()):
        if region["error"]:
            typer.echo(f"region {name} not checked: {region['error']}", err=True)
    if result.rejected_files:
        names = ", ".join(f"{p} ({c})" for p, c in sorted(result.rejected_files.items()))
        raise ExportRejectedError(f"refused export file(s), not matched: {names}")


@app.command()
def report(
    code: Annotated[
        str, typer.Option("--code", help="The verification code from the health authority.")
    ],
    revise: Annotated[bool, typer.Option("--revise", help="Revise an earlier report.")] = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Report a positive test: verify the code and publish the last 14 days of keys."""
    now = time.time()
    agent = Agent.open(load_settings(config, data_dir), now=now)
    try:
        result = agent.revise(code, now) if revise else agent.report(code, now)
    finally:
        agent.close()
    typer.echo(
        f"published {result.keys_sent} key(s), {result.inserted} accepted"
        + (f" ({result.test_type})" if result.test_type else "")
    )
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)


@app.command("export-data")
def export_data(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to a file.")] = None,
) -> None:
    """Everything stored on this device, decrypted, as JSON (times in ISO 8601, UTC)."""
    agent = Agent.open(existing(load_settings(config, data_dir)), now=time.time())
    try:
        data = agent.store.export_data()
    finally:
        agent.close()
    text = json.dumps(data, indent=2, sort_keys=True)
    if output is None:
        typer.echo(text)
    else:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")


@app.command()
def wipe(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase everything: keys, sightings, results and the store's key."""
    settings = load_settings(config, data_dir)
    assert settings.data_dir is not None
    if settings.data_dir.exists() and not settings.data_dir.is_dir():
        raise AgentConfigError(
            f"{settings.data_dir} is not a directory: nothing of an agent to erase"
        )
    if not yes:
        typer.confirm(f"Erase everything in {settings.data_dir}?", abort=True)
    removed = AgentStore.wipe(settings.data_dir)
    typer.echo(f"erased {len(removed)} file(s) in {settings.data_dir}")


@app.command("check-radio")
def check_radio(
    config: ConfigOption = None,
    adapter: Annotated[str | None, typer.Option(help="BlueZ adapter, e.g. hci0.")] = None,
) -> None:
    """Check that BlueZ is reachable and can advertise (registers and removes a test advert)."""
    from phe_trace.agent.radio.bluez import BluezRadio

    settings = load_config(config)
    radio = BluezRadio(adapter or settings.adapter)

    async def probe() -> None:
        try:
            await radio.start_advertising(bytes(20))
        finally:
            await radio.close()

    asyncio.run(probe())
    typer.echo(f"BlueZ on {radio.adapter}: advertising works")


async def _make_radio(settings: AgentConfig) -> Any:
    """The configured radio, built inside the running event loop (bumble needs one)."""
    if settings.radio == "bluez":
        from phe_trace.agent.radio.bluez import BluezRadio

        return BluezRadio(settings.adapter)
    if settings.radio == "bumble":
        from phe_trace.agent.radio.bumble import BumbleLink, open_hci_radio

        if settings.hci:
            return await open_hci_radio(settings.hci)
        return BumbleLink().radio("agent")  # a link of its own: hears nobody
    raise AgentConfigError("radio 'sim' is driven by the simulator, not by `agent run`")


@app.command()
def run(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    radio: Annotated[
        str | None, typer.Option(help="bluez, or bumble (virtual: see `agent room`).")
    ] = None,
    hci: Annotated[
        str | None,
        typer.Option(help="bumble HCI transport, e.g. tcp-client:127.0.0.1:9100 (a room)."),
    ] = None,
    sync_every_hours: Annotated[float, typer.Option(help="Hours between checks.")] = 6.0,
) -> None:
    """Run the agent: advertise, scan, keep records, check for exposures periodically."""
    settings = load_settings(config, data_dir, radio=radio, hci=hci)
    if settings.hci and settings.radio != "bumble":
        raise AgentConfigError("--hci is a bumble transport: use it with --radio bumble")
    from phe_trace.logs import configure_logging

    configure_logging("phe_trace.agent")  # JSON lines on stderr, as every role writes

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        agent_radio = await _make_radio(settings)
        agent = Agent.open(settings, now=time.time(), radio=agent_radio, recover_corrupt=True)
        try:
            await agent.run(stop=stop, sync_every_s=sync_every_hours * 3600, isolate_sync=True)
        finally:
            agent.close()

    asyncio.run(main())


@app.command()
def room(
    agents: Annotated[int, typer.Option(help="How many agents may join (one port each).")] = 2,
    host: Annotated[str, typer.Option(help="Address the controllers listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the first controller.")] = 9100,
) -> None:
    """A virtual radio room: bumble controllers on one link, for agents on this machine.

    Each agent joins with `phe-trace agent run --radio bumble --hci tcp-client:HOST:PORT`
    (one port per agent); every agent in the room hears every other one. Stop with Ctrl-C.
    """
    from phe_trace.agent.radio.bumble import room_transports, serve_room

    if not 1 <= agents <= 64:
        raise AgentConfigError("--agents must be between 1 and 64")
    if not 1 <= port <= 65535 - agents:
        raise AgentConfigError("--port must leave room for one port per agent below 65536")
    transports = room_transports(host, port, agents)

    def ready() -> None:
        typer.echo(f"radio room open: {agents} controller(s) on one link; join with")
        for name in transports:
            client = name.replace("tcp-server:", "tcp-client:", 1)
            typer.echo(f"  phe-trace agent run --radio bumble --hci {client}")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve_room(transports, ready=ready, stop=stop)

    asyncio.run(main())
