"""The one base of every role's settings (pydantic-settings), and how a bad value reads.

Each role's settings class extends :class:`PheTraceSettings` with its own ``env_prefix``
(``PHE_TRACE_`` for the key server, ``PHE_TRACE_VERIFICATION_``, ``PHE_TRACE_AGENT_``,
``PHE_TRACE_AGGREGATOR_``, ``PHE_TRACE_FEDERATION_``, ``PHE_TRACE_GATEWAY_``). The base
keeps a registry of those prefixes, so :func:`describe_settings_error` can name the
environment variable behind each refused value: ``PHE_TRACE_AGGREGATOR_EPSILON: Input
should be a valid number``. The command line prints that as its one line (SPEC CLI-1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as _SourceError

__all__ = [
    "PLACEHOLDER_SECRETS",
    "CommonSettings",
    "PheTraceSettings",
    "common_settings",
    "describe_settings_error",
    "is_placeholder",
    "is_settings_error",
]

#: Values obviously copied from an example: no role takes one as a secret (SPEC PUB-9,
#: VER-9, AGG-19). Compared trimmed and lower-cased.
PLACEHOLDER_SECRETS = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "changethis",
        "secret",
        "placeholder",
        "example",
        "xxx",
        "todo",
        "password",
        "default",
        "test",
    }
)


def is_placeholder(value: str) -> bool:
    """Whether ``value`` (trimmed, any case) is one of :data:`PLACEHOLDER_SECRETS`."""
    return value.strip().lower() in PLACEHOLDER_SECRETS


class PheTraceSettings(BaseSettings):
    """Base of the roles' settings: registers the class's environment prefix."""

    _prefixes: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        PheTraceSettings._prefixes[cls.__name__] = str(cls.model_config.get("env_prefix", ""))


def is_settings_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a refused setting value (validation or source parsing)."""
    if isinstance(exc, _SourceError):
        return True
    return isinstance(exc, ValidationError) and exc.title in PheTraceSettings._prefixes


def describe_settings_error(exc: BaseException) -> str:
    """One line naming each refused setting by its environment variable."""
    if isinstance(exc, ValidationError):
        prefix = PheTraceSettings._prefixes.get(exc.title, "")
        problems = []
        for err in exc.errors():
            where = "_".join(str(p) for p in err["loc"]).upper()
            problems.append(f"{prefix}{where}: {err['msg']}" if where else err["msg"])
        return "invalid settings: " + "; ".join(problems)
    text = str(exc)
    # 'error parsing value for field "x" from source "EnvSettingsSource"'
    if '"' in text:
        field = text.split('"')[1]
        return f"invalid settings: the value of {field!r} is not the JSON it needs ({text})"
    return f"invalid settings: {text}"


class CommonSettings(PheTraceSettings):
    """Settings every role of a process reads: where its data lives, which database."""

    model_config = SettingsConfigDict(env_prefix="PHE_TRACE_", extra="ignore")

    #: Data directory of the server (key server, verification service); default
    #: ``./phe-trace-data``. Every `server` command also takes ``--data-dir``.
    data_dir: Path | None = None
    #: One database URL for every role of the process (``sqlite:///…`` or
    #: ``postgresql://…``); a role's own URL setting overrides it.
    database_url: str | None = None
    #: Role of ``server run`` worker processes (``all``, ``keyserver`` or
    #: ``verification``); set by ``server run --role`` for its workers.
    role: str = "all"
    #: Turn off the libcrypto fast path of the identifier derivation (the pure-Python
    #: ``cryptography`` path is then used; for checking one against the other).
    no_libcrypto: bool = False


def common_settings() -> CommonSettings:
    """The process-wide settings, read from the environment now."""
    return CommonSettings()
