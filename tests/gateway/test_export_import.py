"""Importing another phe-trace key server's published exports over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from phe_trace.protocol import export
from phe_trace.server import ServerContext, create_app, run_export
from phe_trace.server.export_import import ExportSource, import_exports
from phe_trace.server.signing import load_signing_keys
from phe_trace.server.storage.federation_tables import federated_keys
from phe_trace.serving import LoopbackServer
from tests.gateway.cities import City
from tests.gateway.support import NOW, Country


def _export_key(ctx: ServerContext) -> Any:
    keys = load_signing_keys(ctx.settings.signing_key_dir, ctx.settings.signing_key_id)
    return export.load_public_key_pem(keys[-1].public_key_pem)


def _source(city: City, url: str, public_key: Any) -> ExportSource:
    return ExportSource(
        name="fr-city",
        index_url=f"{url}/v1/exports/FR/index.txt",
        export_root=f"{url}/v1/exports",
        public_key=public_key,
        origin="FR",
    )


def _file_holding(city: City, names: list[str], key: bytes) -> str:
    for name in names:
        archive = export.unpack_export_zip(city.ctx.store.read(name))
        if key in {k.key_data for k in export.decode_export_bin(archive.export_bin).keys}:
            return name
    raise AssertionError("key not exported")


def _imported(city: City) -> dict[bytes, str]:
    with city.ctx.engine.connect() as conn:
        query = sa.select(federated_keys.c.key_data, federated_keys.c.origin)
        return {bytes(k): o for k, o in conn.execute(query).all()}


def test_exports_of_another_server_are_imported_once_and_tampered_files_refused(
    tmp_path: Path,
) -> None:
    """FED-15: A follows B's index.txt over HTTP and verifies each file with B's export
    key; a file altered after signing is refused and nothing of it stored, and once it is
    whole again the next run imports it: B's keys become non-local keys of A with B's
    origin, in A's exports; a run after that imports nothing; with a wrong key every file
    is refused."""
    a = City(tmp_path / "a", Country.create("DE"), "http://unused", tmp_path / "x")
    b = City(tmp_path / "b", Country.create("FR"), "http://unused", tmp_path / "x")
    published = b.publish(6, NOW)
    b.clock.t = NOW + 3 * 3600
    names = run_export(b.ctx, b.clock.t).files_written
    holding = _file_holding(b, names, published[0])
    path = b.ctx.store.path_of(holding)
    assert path is not None
    original = path.read_bytes()
    archive = export.unpack_export_zip(original)
    body = bytearray(archive.export_bin)
    body[archive.export_bin.index(published[0])] ^= 0x01  # one key changed, same signature
    assert archive.export_sig is not None
    tampered = export.pack_export_zip(bytes(body), archive.export_sig)
    path.chmod(0o644)
    path.write_bytes(bytes(tampered))
    now = b.clock.t
    with LoopbackServer(create_app(context=b.ctx)) as server, httpx.Client(timeout=10) as client:
        wrong = import_exports(a.ctx, _source(b, server.url, _export_key(a.ctx)), client, now)
        assert wrong.files == 0 and len(wrong.refused) == len(names)
        source = _source(b, server.url, _export_key(b.ctx))
        first = import_exports(a.ctx, source, client, now)
        assert [r.split(":")[0] for r in first.refused] == [holding]
        assert first.files == len(names) - 1
        assert not set(published) & set(_imported(a))
        path.write_bytes(original)
        repaired = import_exports(a.ctx, source, client, now)
        again = import_exports(a.ctx, source, client, now)
    assert repaired.files == 1 and not repaired.refused
    assert again.files == 0 and again.keys_imported == 0 and not again.refused
    imported = _imported(a)
    assert {k: imported.get(k) for k in published} == {k: "FR" for k in published}
    assert set(published) <= set(a.exported_keys(now + 3 * 3600))
    a.ctx.close()
    b.ctx.close()
