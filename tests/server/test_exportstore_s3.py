"""The S3 export store against a real S3-compatible server (moto) on a loopback port.

SPEC SCALE-1 … SCALE-5, PUB-31, PUB-33: conditional create, atomic index replacement,
cache headers on every object, path-style and virtual-host addressing, settings and the
standard AWS credential variables, and a whole export run served from the bucket.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from phe_trace.clock import SettableClock
from phe_trace.protocol import export
from phe_trace.server import ServerContext, create_app, register_health_authority
from phe_trace.server.context import open_export_store
from phe_trace.server.errors import ExportStoreError, ExportStoreUnavailableError
from phe_trace.server.exporter import run_export
from phe_trace.server.exportstore import DirectoryExportStore
from phe_trace.server.exportstore_s3 import S3ExportStore
from phe_trace.server.signing import load_signing_keys
from phe_trace.serving import LoopbackServer

from ..s3server import REGION, MotoServer, store_env
from .conftest import make_settings
from .helpers import NOW, Authority, day_keys, publish_body

ZIP_CC = "public, max-age=31536000, immutable"
INDEX_CC = "public, max-age=60"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def bucket(moto: MotoServer) -> str:
    return moto.bucket()


@pytest.fixture
def store(moto: MotoServer, bucket: str) -> S3ExportStore:
    return S3ExportStore(moto.client(), bucket, "v1/exports")


def test_create_never_overwrites(store: S3ExportStore, moto: MotoServer, bucket: str) -> None:
    """SCALE-1, PUB-33: a second create of a name is refused and leaves the first bytes."""
    assert store.create("ZZ/1-2-00001.zip", b"first") is True
    assert store.create("ZZ/1-2-00001.zip", b"second") is False
    assert store.read("ZZ/1-2-00001.zip") == b"first"
    raw = moto.client().get_object(Bucket=bucket, Key="v1/exports/ZZ/1-2-00001.zip")
    assert raw["Body"].read() == b"first"


def test_racing_creates_have_one_winner(store: S3ExportStore) -> None:
    """SCALE-1: of eight workers creating one name at once, exactly one succeeds."""
    results: dict[int, bool] = {}
    start = threading.Barrier(8)

    def worker(i: int) -> None:
        start.wait()
        results[i] = store.create("ZZ/5-6-00001.zip", f"worker {i}".encode())

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, ok in results.items() if ok]
    assert len(winners) == 1, results
    assert store.read("ZZ/5-6-00001.zip") == f"worker {winners[0]}".encode()


def test_objects_carry_cache_headers(store: S3ExportStore, moto: MotoServer, bucket: str) -> None:
    """SCALE-3, PUB-31: zips long and immutable, the index short, each with its type."""
    store.create("ZZ/1-2-00001.zip", b"zip")
    store.replace("ZZ/index.txt", b"ZZ/1-2-00001.zip\n")
    s3 = moto.client()
    zip_head = s3.head_object(Bucket=bucket, Key="v1/exports/ZZ/1-2-00001.zip")
    index_head = s3.head_object(Bucket=bucket, Key="v1/exports/ZZ/index.txt")
    assert (zip_head["CacheControl"], zip_head["ContentType"]) == (ZIP_CC, "application/zip")
    assert index_head["CacheControl"] == INDEX_CC
    assert index_head["ContentType"].startswith("text/plain")


def test_index_is_replaced(store: S3ExportStore) -> None:
    """SCALE-2: replace() overwrites the index; read gives the newest version."""
    store.replace("ZZ/index.txt", b"a\n")
    store.replace("ZZ/index.txt", b"a\nb\n")
    assert store.read("ZZ/index.txt") == b"a\nb\n"


def test_missing_objects(store: S3ExportStore) -> None:
    """SCALE-1: missing objects read as ExportStoreError, exist as False; delete is idempotent."""
    with pytest.raises(ExportStoreError):
        store.read("ZZ/9-9-00001.zip")
    assert store.exists("ZZ/9-9-00001.zip") is False
    store.create("ZZ/9-9-00001.zip", b"x")
    assert store.exists("ZZ/9-9-00001.zip") is True
    store.delete("ZZ/9-9-00001.zip")
    store.delete("ZZ/9-9-00001.zip")
    assert store.exists("ZZ/9-9-00001.zip") is False
    assert store.path_of("ZZ/9-9-00001.zip") is None


def test_names_lists_one_region(store: S3ExportStore) -> None:
    """SCALE-5: names(region) lists that region's objects without the key prefix."""
    store.create("ZZ/1-2-00001.zip", b"a")
    store.create("ZZ/3-4-00001.zip", b"b")
    store.create("ZZB/1-2-00001.zip", b"c")
    store.replace("ZZ/index.txt", b"")
    assert store.names("ZZ") == ["ZZ/1-2-00001.zip", "ZZ/3-4-00001.zip", "ZZ/index.txt"]
    assert store.names("QQ") == []


def test_bad_names_are_refused(store: S3ExportStore) -> None:
    """SCALE-4: object names outside region/file never reach the bucket."""
    for name in ("../x.zip", "ZZ/../../x", "ZZ", "/ZZ/a.zip"):
        with pytest.raises(ExportStoreError):
            store.create(name, b"x")


def test_unknown_bucket_is_unavailable_not_missing(moto: MotoServer) -> None:
    """SCALE-1: a store failure is not mistaken for a missing object or an existing one.

    (A HEAD answer has no body, so S3 cannot tell a missing bucket from a missing key there;
    create and read can.)
    """
    store = S3ExportStore(moto.client(), "no-such-bucket-here")
    with pytest.raises(ExportStoreUnavailableError):
        store.create("ZZ/1-2-00001.zip", b"x")
    with pytest.raises(ExportStoreUnavailableError):
        store.read("ZZ/1-2-00001.zip")


def test_virtual_host_addressing(moto: MotoServer, bucket: str) -> None:
    """SCALE-4: virtual-host style puts the bucket in the host name; the objects are the same.

    The endpoint's name does not resolve here, so requests go through the S3 server used
    as an HTTP proxy, which routes by the Host header as a virtual-host endpoint does.
    """
    seen: list[str] = []
    client: Any = boto3.session.Session().client(
        "s3",
        endpoint_url="http://s3.phe-trace.test",
        region_name=REGION,
        aws_access_key_id=moto.env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=moto.env["AWS_SECRET_ACCESS_KEY"],
        config=Config(s3={"addressing_style": "virtual"}, proxies={"http": moto.url}),
    )
    client.meta.events.register("before-send.s3", lambda request, **_: seen.append(request.url))
    virtual = S3ExportStore(client, bucket, "v1/exports")
    assert virtual.create("ZZ/1-2-00001.zip", b"vh") is True
    assert virtual.create("ZZ/1-2-00001.zip", b"again") is False
    assert seen[0] == f"http://{bucket}.s3.phe-trace.test/v1/exports/ZZ/1-2-00001.zip"
    path_style = S3ExportStore(moto.client(), bucket, "v1/exports")
    assert path_style.read("ZZ/1-2-00001.zip") == b"vh"


def test_settings_select_s3_with_standard_credentials(
    tmp_path: Path, moto: MotoServer, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SCALE-4: PHE_TRACE_EXPORT_S3_* choose the store; AWS_* variables give the credentials."""
    for name, value in store_env(moto, bucket).items():
        monkeypatch.setenv(name, value)
    settings = make_settings(tmp_path, None, export_s3_prefix="/cdn/v1/exports/")
    store = open_export_store(settings)
    assert isinstance(store, S3ExportStore)
    assert store.create("ZZ/1-2-00001.zip", b"x")
    assert moto.client().head_object(Bucket=bucket, Key="cdn/v1/exports/ZZ/1-2-00001.zip")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")  # moto checks nothing by default
    assert isinstance(open_export_store(make_settings(tmp_path, None)), S3ExportStore)
    monkeypatch.delenv("PHE_TRACE_EXPORT_S3_BUCKET")
    assert not isinstance(open_export_store(make_settings(tmp_path, None)), S3ExportStore)


def test_export_run_lands_in_the_bucket(
    tmp_path: Path,
    database_url: str,
    moto: MotoServer,
    bucket: str,
    authority: Authority,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SCALE-2, SCALE-4, PUB-31: a publish, an export run, then the index and zip in S3.

    The key server's own /v1/exports routes serve the same bytes from the bucket.
    """
    for name, value in store_env(moto, bucket).items():
        monkeypatch.setenv(name, value)
    clock = SettableClock(NOW)
    settings = make_settings(tmp_path, database_url, export_min_records=50)
    ctx = ServerContext.open(settings, clock=clock)
    try:
        register_health_authority(
            ctx.engine,
            issuer=authority.issuer,
            audience=authority.audience,
            name="Test HA",
            public_keys={authority.kid: authority.public_pem},
        )
        keys = day_keys(NOW, 5)
        with LoopbackServer(create_app(context=ctx)) as live:
            body = publish_body(authority, keys, NOW)
            answer = httpx.post(live.url + "/v1/publish", json=body, timeout=10)
            assert answer.status_code == 200, answer.text
            report = run_export(ctx, NOW + 4 * 86400)
            assert report.files_written
            s3 = moto.client()
            index = s3.get_object(Bucket=bucket, Key="v1/exports/ZZ/index.txt")["Body"].read()
            listed = export.parse_index(index)
            assert sorted(listed) == sorted(report.files_written)
            (signing,) = load_signing_keys(settings.signing_key_dir, settings.signing_key_id)
            published = set()
            for name in listed:
                data = s3.get_object(Bucket=bucket, Key=f"v1/exports/{name}")["Body"].read()
                export.verify_export_zip(data, signing.private_key.public_key())
                content = export.decode_export_bin(export.unpack_export_zip(data).export_bin)
                published |= {k.key_data for k in content.keys}
                served = httpx.get(f"{live.url}/v1/exports/{name}", timeout=10)
                assert served.content == data
            assert {base64.b64decode(k["key"]) for k in keys} <= published
            assert httpx.get(live.url + "/v1/exports/ZZ/index.txt", timeout=10).content == index
    finally:
        ctx.close()


def test_directory_store_names_match(tmp_path: Path) -> None:
    """SCALE-5: the directory store lists a region the same way (no temporary files)."""
    store = DirectoryExportStore(tmp_path / "exports")
    assert store.names("ZZ") == []
    store.create("ZZ/3-4-00001.zip", b"b")
    store.create("ZZ/1-2-00001.zip", b"a")
    store.replace("ZZ/index.txt", b"")
    (tmp_path / "exports" / "ZZ" / ".tmp-left").write_bytes(b"")
    assert store.names("ZZ") == ["ZZ/1-2-00001.zip", "ZZ/3-4-00001.zip", "ZZ/index.txt"]
