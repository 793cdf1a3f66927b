"""The agent's settings: one object, every variable documented, read from ``PHE_TRACE_AGENT_*``.

``device/agent.env.example`` lists every setting with its default. The same names work
as environment variables and in an env file (``phe-trace agent --config FILE``), which
is what the systemd unit passes as ``EnvironmentFile``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import SettingsConfigDict, SettingsError

from phe_trace.settings import PheTraceSettings

from .errors import AgentConfigError

__all__ = ["ENV_PREFIX", "AgentConfig", "FollowedRegion", "load_config"]


#: Prefix of every environment variable of the agent.
ENV_PREFIX = "PHE_TRACE_AGENT_"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")


class FollowedRegion(BaseModel):
    """Another region whose exports the device matches (SPEC FED-16): a region the person
    visits, published by another health authority.

    ``export_url`` is that region's export store base URL; its index is
    ``{export_url}{region}/index.txt`` and the index's entries are relative to it (for a
    phe-trace key server: ``https://keys.example.org/v1/exports/``). Its files are
    verified only with ``public_keys`` (base64 SubjectPublicKeyInfo DER or PEM file
    paths); with ``key_id`` set, a file must also name that ``verification_key_id`` in
    one of its signature infos.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The device's name for it (1-32 of A-Z a-z 0-9 _ -); unique among the followed ones.
    name: str
    #: The region id of its exports (the index's directory), e.g. ``FR``.
    region: str
    export_url: str
    public_keys: tuple[str, ...] = Field(min_length=1)
    key_id: str | None = Field(default=None, min_length=1, max_length=64)

    @field_validator("name", "region")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError("must be 1-32 characters of A-Z a-z 0-9 _ -, not starting with _ -")
        return value

    @field_validator("export_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")) or len(value) > 512 or " " in value:
            raise ValueError("must be an http:// or https:// URL")
        return value if value.endswith("/") else value + "/"

    @property
    def index_url(self) -> str:
        """Where this region's ``index.txt`` is."""
        return f"{self.export_url}{self.region}/index.txt"


class AgentConfig(PheTraceSettings):
    """Settings of one device agent (``protocol_spec/SPEC.md`` §14)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    #: Where the store and its key live; ``None`` keeps everything in memory (simulator).
    data_dir: Path | None = Field(default=None)
    #: Radio backend: ``bluez`` (a real adapter), ``bumble`` (virtual) or ``sim``.
    radio: Literal["bluez", "bumble", "sim"] = "bluez"
    #: BlueZ adapter name.
    adapter: str = "hci0"
    #: ``bumble`` only: the HCI transport of a virtual controller, e.g. a radio room's
    #: ``tcp-client:127.0.0.1:9100``; unset: a link of the agent's own (it hears nobody).
    hci: str | None = None
    #: Calibrated transmit power written into the metadata (AEM byte 1), dBm.
    tx_power_dbm: int = Field(default=-25, ge=-127, le=127)
    #: Correction added to every measured RSSI before attenuation is computed, dB.
    rssi_correction_db: int = Field(default=0, ge=-50, le=50)
    #: Identifier rotation period bounds, seconds (randomised uniformly in between).
    rotation_min_s: float = Field(default=600.0, gt=0)
    #: Longest identifier rotation period, seconds.
    rotation_max_s: float = Field(default=1200.0, gt=0)
    #: Time between scan windows, seconds, minus a random jitter in [0, scan_jitter_s).
    scan_period_s: float = Field(default=300.0, gt=0)
    #: Largest random jitter subtracted from the scan period, seconds.
    scan_jitter_s: float = Field(default=60.0, ge=0)
    #: Length of one scan window, seconds.
    scan_duration_s: float = Field(default=4.0, gt=0)
    #: Days of keys, sightings and results kept on the device.
    retention_days: int = Field(default=14, ge=1, le=14)
    #: A step this far behind the previous one is reported as the clock going backwards.
    clock_skew_tolerance_s: float = Field(default=120.0, ge=0)
    #: Key server base URL (exports and publish), e.g. ``https://keys.example.org``.
    key_server_url: str | None = None
    #: Region (export root) whose ``index.txt`` the agent follows.
    region: str = "ZZ"
    #: Export store base URL; the index is ``{base}{region}/index.txt`` and its entries are
    #: relative to it (default: ``{key_server_url}/v1/exports/``; a CDN in production).
    export_base_url: str | None = None
    #: The health authority's export-signing public keys: base64 SubjectPublicKeyInfo DER
    #: or PEM file paths, comma-separated. Exports signed by anything else are refused.
    export_public_keys: str = ""
    #: Other regions followed besides the home region (SPEC FED-16), as a JSON list of
    #: objects with ``name``, ``region``, ``export_url``, ``public_keys`` and optionally
    #: ``key_id`` (see :class:`FollowedRegion`). ``phe-trace agent region add`` keeps more
    #: of them in the encrypted store.
    regions: list[FollowedRegion] = Field(default_factory=list)
    #: Verification service base URL and its API key (``X-API-Key``).
    verification_url: str | None = None
    #: The verification service's API key for this app (``X-API-Key``).
    verification_api_key: str = ""
    #: Health authority id sent with a publish request.
    health_authority_id: str = ""
    #: Test types this device accepts when verifying a code.
    accept_test_types: str = "confirmed,likely,negative"
    #: Download retries per file and the first backoff delay, seconds.
    download_retries: int = Field(default=4, ge=0, le=10)
    #: First backoff delay between download retries, seconds (doubling).
    download_backoff_s: float = Field(default=0.5, ge=0)
    #: Deadline for one file's whole download, retries included, seconds (AGENT-13).
    download_deadline_s: float = Field(default=300.0, gt=0, le=86_400)
    #: Largest export file accepted, bytes (AGENT-13).
    download_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, le=1024**3)
    #: Processes the matcher may use (default 1: a background job on a small device;
    #: empty: one per available core).
    match_workers: int | None = Field(default=1, ge=1, le=64)
    #: HTTP timeout, seconds.
    http_timeout_s: float = Field(default=30.0, gt=0)
    #: The health authority's scoring configuration (TOML/JSON, ``phe_trace.exposure``
    #: format); unset: the Corona-Warn-App production parameters.
    exposure_config: Path | None = None
    #: Show a desktop notification with ``notify-send`` when it exists.
    desktop_notifications: bool = True

    @model_validator(mode="after")
    def _check_ranges(self) -> AgentConfig:
        if self.rotation_max_s < self.rotation_min_s:
            raise ValueError("rotation_max_s must be >= rotation_min_s")
        if self.scan_jitter_s >= self.scan_period_s:
            raise ValueError("scan_jitter_s must be < scan_period_s")
        names = [r.name for r in self.regions]
        if len(set(names)) != len(names) or self.region in names:
            raise ValueError("regions: every followed region needs a name of its own")
        return self

    def public_keys(self) -> list[str]:
        """The configured export-signing keys, one entry per key (base64 or a file path)."""
        return [k.strip() for k in self.export_public_keys.split(",") if k.strip()]

    def accepted_test_types(self) -> list[str]:
        """Test types to send as ``accept`` in the verify request."""
        return [t.strip() for t in self.accept_test_types.split(",") if t.strip()]


def load_config(env_file: Path | None = None, **overrides: Any) -> AgentConfig:
    """Build the settings from the environment, an optional env file and overrides.

    Every invalid setting is reported at once in one :class:`AgentConfigError`.
    """
    if env_file is not None and not env_file.is_file():
        raise AgentConfigError(f"config file {env_file} does not exist")
    if env_file is not None:
        try:
            env_file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise AgentConfigError(
                f"config file {env_file} is not text: it should hold NAME=value lines"
            ) from None
    _check_names(env_file)
    try:
        return AgentConfig(_env_file=env_file, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
            for err in exc.errors()
        )
        raise AgentConfigError(f"invalid agent settings: {problems}") from None
    except SettingsError as exc:  # a value that is not the JSON a list setting needs
        raise AgentConfigError(f"invalid agent settings: {exc}") from None


def _check_names(env_file: Path | None) -> None:
    """Refuse ``PHE_TRACE_AGENT_*`` names that are no setting (typos); ignore other names."""
    names = set(os.environ)
    if env_file is not None:
        names |= set(dotenv_values(env_file))
    known = {ENV_PREFIX + name.upper() for name in AgentConfig.model_fields}
    unknown = sorted(
        n for n in names if n.upper().startswith(ENV_PREFIX) and n.upper() not in known
    )
    if unknown:
        raise AgentConfigError(f"unknown agent settings: {', '.join(unknown)}")


def user_config_file() -> Path:
    """The person's own settings file: ``$XDG_CONFIG_HOME/phe-trace/agent.env`` (default
    ``~/.config``)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "phe-trace" / "agent.env"


def default_data_dir() -> Path:
    """The data directory when none is set: systemd's ``$STATE_DIRECTORY`` for the
    service, else ``~/.local/share/phe-trace/agent``."""
    state = os.environ.get("STATE_DIRECTORY")
    return Path(state) if state else Path.home() / ".local/share/phe-trace/agent"
