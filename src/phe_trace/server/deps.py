"""FastAPI dependency aliases of the key server."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from .context import ServerContext

__all__ = ["ContextDep", "get_context"]


async def get_context(request: Request) -> ServerContext:
    """The :class:`ServerContext` of the app serving ``request``.

    ``async`` although it does not wait: FastAPI would otherwise run it in a worker thread.
    """
    ctx: ServerContext = request.app.state.keyserver
    return ctx


ContextDep = Annotated[ServerContext, Depends(get_context)]
