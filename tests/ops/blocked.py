"""Run ``phe-trace`` in a child process in which some packages cannot be imported.

Stands for an installation with only some extras: ``python blocked.py jwt,fastapi -- agent
status`` behaves as ``phe-trace agent status`` where PyJWT and FastAPI are not installed.
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Sequence
from typing import Any


class _Blocker(importlib.abc.MetaPathFinder):
    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: Any = None) -> None:
        if fullname.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


if __name__ == "__main__":
    blocked, args = sys.argv[1], sys.argv[3:]
    sys.meta_path.insert(0, _Blocker(set(blocked.split(","))))
    from phe_trace.cli import main

    sys.exit(main(args))
