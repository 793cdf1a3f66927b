"""Checks of the export store (SPEC §11 PUB-25 … PUB-33, §12 EXP): index, files, signatures.

Read-only: the checker downloads ``index.txt`` and the newest files it lists (whole split
batches, at most ``max_files`` files plus the siblings of a batch) and holds them against
the export format. Checks that need an option the operator did not give (the export
verification key, the padding minimum, keys published by an earlier run) are skipped,
and say which option would enable them.
"""

from __future__ import annotations

import base64
import io
import re
import zipfile

from phe_trace.crypto import INTERVAL_SECONDS
from phe_trace.protocol import export
from phe_trace.protocol.errors import ExportError

from .model import Battery, Check, CheckFailedError, CheckSkippedError, expect

__all__ = ["EXPORT_CHECKS"]

_MAX_AGE = re.compile(r"max-age=(\d+)")


def _max_age(header: str) -> int | None:
    found = _MAX_AGE.search(header)
    return int(found.group(1)) if found else None


def _index(b: Battery) -> tuple[str, ...]:
    if b.index is None:
        response = b.client.get_export(export.index_file_name(b.client.config.region))
        b.contents["index_response"] = response
        if response.status_code != 200:
            b.contents["index_error"] = f"index.txt: HTTP {response.status_code}"
            b.index = ()
            return b.index
        try:
            b.index = export.parse_index(response.content)
        except ExportError as exc:
            raise CheckFailedError(f"index.txt refused: {exc.code}: {exc}") from None
    return b.index


def _selected(b: Battery) -> list[str]:
    """The newest ``max_files`` entries, widened to whole batches (same start)."""
    paths = list(_index(b))
    if "index_error" in b.contents:
        raise CheckSkippedError(b.contents["index_error"] + " (see the index row)")
    newest = paths[-b.client.config.max_files :]
    starts = {export.parse_export_file_name(p).start_timestamp for p in newest}
    return [p for p in paths if export.parse_export_file_name(p).start_timestamp in starts]


def _files(b: Battery) -> dict[str, bytes]:
    if not b.exports:
        for path in _selected(b):
            response = b.client.get_export(path)
            expect(response.status_code == 200, f"{path}: HTTP {response.status_code}")
            b.exports[path] = response.content
            b.contents.setdefault("zip_headers", {})[path] = response.headers
    if not b.exports:
        raise CheckSkippedError("index.txt lists no export file yet")
    return b.exports


def _decoded(b: Battery) -> dict[str, export.TemporaryExposureKeyExport]:
    decoded: dict[str, export.TemporaryExposureKeyExport] = {}
    for path, data in _files(b).items():
        try:
            decoded[path] = export.decode_export_bin(export.unpack_export_zip(data).export_bin)
        except ExportError as exc:
            raise CheckFailedError(f"{path}: {exc.code}: {exc}") from None
    return decoded


def index_format(b: Battery) -> str:
    paths = _index(b)
    expect(
        "index_error" not in b.contents,
        f"{b.contents.get('index_error')}: EXP-14 wants an (empty) index even before any file",
    )
    response = b.contents["index_response"]
    kind = response.headers.get("content-type", "")
    expect(kind.startswith("text/plain"), f"index.txt content-type {kind!r}")
    for path in paths:
        try:
            name = export.parse_export_file_name(path)
        except ExportError:
            raise CheckFailedError(
                f"index entry {path!r} is not ROOT/START-END-NNNNN.zip"
            ) from None
        expect(name.start_timestamp <= name.end_timestamp, f"{path}: start after end")
    expect(list(paths) == sorted(paths, key=_order), "index.txt is not oldest to newest")
    return f"{len(paths)} files listed"


def _order(path: str) -> tuple[int, int, int]:
    name = export.parse_export_file_name(path)
    return name.start_timestamp, name.end_timestamp, name.batch_num


def cache_headers(b: Battery) -> str:
    _selected(b)
    index_cc = b.contents["index_response"].headers.get("cache-control", "")
    age = _max_age(index_cc)
    expect("immutable" not in index_cc, "index.txt is marked immutable")
    expect(
        "no-cache" in index_cc or "no-store" in index_cc or (age is not None and age <= 3600),
        f"index.txt Cache-Control {index_cc!r} lets caches keep it over an hour",
    )
    try:
        _files(b)
    except CheckSkippedError:  # an empty index: its headers and the unknown-file 404 still count
        zips = "no zip listed yet"
    else:
        zips = "zips cacheable"
    for path, headers in b.contents.get("zip_headers", {}).items():
        zip_cc = headers.get("cache-control", "")
        zip_age = _max_age(zip_cc)
        expect(zip_age is not None and zip_age >= 3600, f"{path}: Cache-Control {zip_cc!r}")
    missing = b.client.get_export(f"{b.client.config.region}/1-2-00001.zip")
    expect(missing.status_code == 404, f"an unknown export file got HTTP {missing.status_code}")
    return f"index {index_cc!r}; {zips}; unknown file 404"


def zip_layout(b: Battery) -> str:
    for path, data in _files(b).items():
        try:
            members = zipfile.ZipFile(io.BytesIO(data)).infolist()
        except zipfile.BadZipFile:
            raise CheckFailedError(f"{path} is not a zip") from None
        names = [m.filename for m in members]
        expect(names == ["export.bin", "export.sig"], f"{path}: members {names}")
        expect(all(m.date_time[:3] == (1980, 0, 0) for m in members), f"{path}: dated members")
    return f"{len(b.exports)} files: export.bin then export.sig, undated"


def signatures(b: Battery) -> str:
    keys = b.client.config.export_keys
    if not keys:
        raise CheckSkippedError("give --export-key (the server's export verification key, PEM)")
    for path, data in _files(b).items():
        errors = []
        for key in keys:
            try:
                export.verify_export_zip(data, key)
                break
            except ExportError as exc:
                errors.append(exc.code)
        else:
            raise CheckFailedError(f"{path}: {', '.join(errors)}")
    return f"{len(b.exports)} files verify"


def content_format(b: Battery) -> str:
    region = b.client.config.region
    count = 0
    for path, content in _decoded(b).items():
        name = export.parse_export_file_name(path)
        expect(content.region == region, f"{path}: region {content.region!r}")
        expect(
            (content.start_timestamp, content.end_timestamp, content.batch_num)
            == (name.start_timestamp, name.end_timestamp, name.batch_num),
            f"{path}: name and content disagree",
        )
        expect(1 <= content.batch_num <= content.batch_size, f"{path}: batch numbers")
        for group in (content.keys, content.revised_keys):
            data = [k.key_data for k in group]
            expect(data == sorted(data), f"{path}: keys not sorted by key_data")
            for key in group:
                problem = key.check()
                expect(problem is None, f"{path}: invalid key: {problem}")
        count += len(content.keys) + len(content.revised_keys)
    return f"{count} keys, sorted and well-formed"


def batches_complete(b: Battery) -> None:
    try:
        export.check_batches_complete(_decoded(b).values())
    except ExportError as exc:
        raise CheckFailedError(str(exc)) from None


def embargo(b: Battery) -> str:
    for path, content in _decoded(b).items():
        for key in content.keys:
            end = (key.rolling_start_interval_number + key.rolling_period) * INTERVAL_SECONDS
            expect(end <= content.end_timestamp, f"{path}: a key still valid at the window end")
    return "no exported key was still valid when its window closed"


def padding(b: Battery) -> str:
    minimum = b.client.config.min_export_records
    if minimum is None:
        raise CheckSkippedError("give --min-export-records (the server's padding minimum)")
    per_batch: dict[int, int] = {}
    for content in _decoded(b).values():
        per_batch[content.start_timestamp] = per_batch.get(content.start_timestamp, 0) + len(
            content.keys
        )
    small = {start: n for start, n in per_batch.items() if n < minimum}
    expect(not small, f"batches below {minimum} keys: {small}")
    return f"{len(per_batch)} batches hold ≥ {minimum} keys"


def immutable(b: Battery) -> str:
    path, data = next(reversed(_files(b).items()))
    again = b.client.get_export(path)
    expect(again.status_code == 200 and again.content == data, f"{path} changed between reads")
    return f"{path} read twice, same bytes"


def published_exported(b: Battery) -> str:
    wanted = b.client.config.expect_published
    if not wanted:
        raise CheckSkippedError("give --expect-published (keys recorded by an earlier run)")
    seen: set[str] = set()
    for path in _index(b):  # published keys may sit in any file, not only the newest
        if path not in b.exports:
            response = b.client.get_export(path)
            expect(response.status_code == 200, f"{path}: HTTP {response.status_code}")
            b.exports[path] = response.content
    for content in (_decoded(b) if b.exports else {}).values():  # none: every key missing
        for key in (*content.keys, *content.revised_keys):
            seen.add(base64.b64encode(key.key_data).decode("ascii"))
    missing = [k for k in wanted if k not in seen]
    expect(not missing, f"{len(missing)} of {len(wanted)} published keys are in no export")
    return f"all {len(wanted)} published keys exported"


EXPORT_CHECKS: tuple[Check, ...] = (
    Check(("EXP-14", "PUB-31"), "index.txt: text/plain, oldest first, valid names", index_format),
    Check(("PUB-31",), "cache headers: index short-lived, zips long-lived; 404", cache_headers),
    Check(("EXP-1", "EXP-8"), "zip members export.bin, export.sig; no dates", zip_layout),
    Check(("EXP-6", "EXP-11"), "every file verifies with the export key", signatures),
    Check(
        ("EXP-2", "EXP-3", "EXP-13"), "header, region, batch, key order and ranges", content_format
    ),
    Check(("EXP-11", "PUB-28"), "split batches are complete", batches_complete),
    Check(("PUB-16",), "embargo: no key exported before it expired", embargo),
    Check(("PUB-27",), "small batches padded to the minimum", padding),
    Check(("PUB-33",), "an export file never changes", immutable),
    Check(("PUB-25",), "keys published earlier appear in the exports", published_exported),
)
