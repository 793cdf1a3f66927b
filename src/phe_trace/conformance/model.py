"""The result rows of the battery and the state checks share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import httpx

from .client import KeyServerClient, TestKey
from .errors import CheckFailedError, CheckSkippedError

__all__ = [
    "FAIL",
    "PASS",
    "SKIP",
    "Battery",
    "Check",
    "CheckFailedError",
    "CheckResult",
    "CheckSkippedError",
]

Status = Literal["pass", "fail", "skip"]
PASS: Final = "pass"  # noqa: S105 - a status, not a password
FAIL: Final = "fail"
SKIP: Final = "skip"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One row of the report: the requirement ids, what was checked, and the outcome."""

    requirements: tuple[str, ...]
    title: str
    status: Status
    detail: str = ""


@dataclass
class Battery:
    """State shared by the checks of one run: the client, ``now``, what was published."""

    client: KeyServerClient
    now: float
    published: list[TestKey] = field(default_factory=list)
    exports: dict[str, bytes] = field(default_factory=dict)
    contents: dict[str, Any] = field(default_factory=dict)
    index: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Check:
    """A check of requirement ids; ``run`` returns a note or raises CheckFailedError or
    CheckSkippedError."""

    requirements: tuple[str, ...]
    title: str
    run: Callable[[Battery], str | None]


def expect(condition: bool, message: str) -> None:
    """Fail the current check with ``message`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailedError(message)


def json_of(response: httpx.Response) -> dict[str, Any]:
    """The JSON object of ``response``; fail the check if it is not one."""
    try:
        value = response.json()
    except ValueError:
        raise CheckFailedError(f"HTTP {response.status_code}: body is not JSON") from None
    if not isinstance(value, dict):
        raise CheckFailedError(f"HTTP {response.status_code}: body is not a JSON object")
    return value


def expect_refusal(response: httpx.Response, status: int, codes: set[str]) -> dict[str, Any]:
    """The response must be ``status`` with a ``code`` in ``codes``."""
    body = json_of(response)
    code = body.get("code")
    expect(
        response.status_code == status and code in codes,
        f"expected HTTP {status} {'/'.join(sorted(codes))}, got {response.status_code} {code!r}",
    )
    return body
