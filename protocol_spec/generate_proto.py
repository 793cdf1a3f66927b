"""Regenerate the protobuf modules of ``src/phe_trace/protocol/`` (``*_pb2.py``, ``*_pb2.pyi``).

Compiles ``protocol_spec/export.proto`` and ``protocol_spec/efgs.proto`` with the protoc
bundled in grpcio-tools and the mypy-protobuf plugin (both in the ``dev`` extra)::

    .venv/bin/python protocol_spec/generate_proto.py

The generated files are committed; run this only after changing a ``.proto`` and
commit the result together with it.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "protocol_spec"
OUT_DIR = ROOT / "src" / "phe_trace" / "protocol"
PROTOS = ("export.proto", "efgs.proto")


def main() -> int:
    """Compile the proto into a scratch directory, then move the two modules in place."""
    plugin = Path(sys.executable).parent / "protoc-gen-mypy"
    if not plugin.exists():
        found = shutil.which("protoc-gen-mypy")
        if found is None:
            print("protoc-gen-mypy not found (pip install mypy-protobuf)", file=sys.stderr)
            return 1
        plugin = Path(found)
    with tempfile.TemporaryDirectory() as scratch:
        status = protoc.main(
            [
                "grpc_tools.protoc",
                f"--proto_path={PROTO_DIR}",
                f"--plugin=protoc-gen-mypy={plugin}",
                f"--python_out={scratch}",
                f"--mypy_out={scratch}",
                *(str(PROTO_DIR / proto) for proto in PROTOS),
            ]
        )
        if status != 0:
            print(f"protoc failed with status {status}", file=sys.stderr)
            return status
        for name in (f"{p[:-6]}_pb2{ext}" for p in PROTOS for ext in (".py", ".pyi")):
            shutil.copyfile(Path(scratch) / name, OUT_DIR / name)
            print(f"wrote {(OUT_DIR / name).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
