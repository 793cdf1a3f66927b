"""The settings every ``phe-trace agent …`` command reads, and the options that give them.

Settings come from ``PHE_TRACE_AGENT_*`` variables and the ``--config`` env file, else
the person's own file, else the system service's (``device/README.md`` "Where the data
is"); the data directory from ``--data-dir``, else the settings, else the default one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from phe_trace.agent import AgentConfig, load_config
from phe_trace.agent.config import default_data_dir, user_config_file
from phe_trace.agent.errors import AgentConfigError, StoreMissingError
from phe_trace.agent.store import DB_NAME, KEY_NAME

__all__ = [
    "SYSTEM_CONFIG",
    "ConfigOption",
    "DataDirOption",
    "existing",
    "load_settings",
]

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="Env file with PHE_TRACE_AGENT_* settings.")
]
DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Where the encrypted store and its key live.")
]


#: Where the everyday commands look for settings when --config is not given: the
#: person's own file, then the system service's (device/README.md "Where the data is").
SYSTEM_CONFIG = Path("/etc/phe-trace/agent.env")


def _user_config() -> Path:
    return user_config_file()


def _config_file(config: Path | None) -> Path | None:
    """--config, else the first of ~/.config/phe-trace/agent.env and /etc/phe-trace/agent.env
    that exists: so that the service and the everyday commands read one configuration."""
    if config is not None:
        return config
    for candidate in (_user_config(), SYSTEM_CONFIG):
        if candidate.is_file():
            if not os.access(candidate, os.R_OK):
                raise AgentConfigError(
                    f"{candidate} is not readable by this user: run the command as the "
                    "service's user (sudo -u phe-trace phe-trace agent …) or pass --config"
                )
            return candidate
    return None


def load_settings(config: Path | None, data_dir: Path | None, **overrides: Any) -> AgentConfig:
    """The settings; the data directory is --data-dir, else PHE_TRACE_AGENT_DATA_DIR (in
    the environment or the config file), else systemd's $STATE_DIRECTORY, else
    ~/.local/share/phe-trace/agent."""
    settings = load_config(
        _config_file(config), **{k: v for k, v in overrides.items() if v is not None}
    )
    if data_dir is not None:
        return settings.model_copy(update={"data_dir": data_dir})
    if settings.data_dir is None:
        return settings.model_copy(update={"data_dir": default_data_dir()})
    return settings


def existing(settings: AgentConfig) -> AgentConfig:
    """The settings, if their data directory holds a store; reading commands never
    create one (a new store would hide where the real one is)."""
    assert settings.data_dir is not None
    if not any((settings.data_dir / name).exists() for name in (KEY_NAME, DB_NAME)):
        raise StoreMissingError(
            f"no agent store in {settings.data_dir}: the agent has not run with this data "
            "directory, or it was wiped (--data-dir or PHE_TRACE_AGENT_DATA_DIR names another)"
        )
    return settings
