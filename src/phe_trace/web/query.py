"""Query parameters as the services' schemas document them.

Two rules the web framework does not enforce by itself (SPEC PUB-2, AGG-35):

- a query parameter appears at most once: FastAPI would silently take the last of
  ``?day=1&day=2``, so :class:`SingleQueryValues` refuses a repeated name with 400 before
  the app runs;
- an integer parameter is written in decimal digits only: pydantic's lax mode would also
  take ``0.0``, `` 5`` or ``+5``; :data:`DIGITS` (a ``BeforeValidator``) refuses them.

The same holds in JSON bodies: a day number is a JSON integer, never ``true`` or ``"5"``
(:data:`DAY_NUMBER`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from pydantic import BeforeValidator
from starlette.types import ASGIApp, Receive, Scope, Send

from phe_trace.web.bodylimit import send_json

__all__ = ["DAY_NUMBER", "DIGITS", "SingleQueryValues"]

_DIGITS = re.compile(r"[0-9]{1,20}")


def _decimal_digits(value: Any) -> Any:
    if isinstance(value, str) and not _DIGITS.fullmatch(value):
        raise ValueError("must be a whole number in decimal digits")
    return value


#: Put in ``Annotated[int, Query(...), DIGITS]`` to accept ``12`` and refuse ``12.0``.
DIGITS = BeforeValidator(_decimal_digits)


def _no_bool(value: object) -> object:
    """``true`` or ``"5"`` is not a day number (JSON Schema admits ``0.0``, not those)."""
    if isinstance(value, bool | str):
        raise ValueError("a day number must be an integer")
    return value


#: Put in ``Annotated[int, Field(...), DAY_NUMBER]`` of a JSON body: refuses ``true`` and
#: ``"5"``, which pydantic's lax mode would take as 1 and 5.
DAY_NUMBER = BeforeValidator(_no_bool)


class SingleQueryValues:
    """Answers 400 with ``refusal(name)`` when a query parameter name is repeated."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        refusal: Callable[[str], Mapping[str, Any]],
        exempt: Callable[[str], bool] = lambda path: False,
    ) -> None:
        self.app = app
        self.refusal = refusal
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("query_string") and not self.exempt(scope["path"]):
            seen: set[str] = set()
            query = scope["query_string"].decode("latin-1")
            for name, _ in parse_qsl(query, keep_blank_values=True):
                if name in seen:
                    await send_json(send, 400, self.refusal(name))
                    return
                seen.add(name)
        await self.app(scope, receive, send)
