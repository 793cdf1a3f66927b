"""The case-worker portal (``/portal``): server-rendered pages, no front-end build."""

from .web import create_portal

__all__ = ["create_portal"]
