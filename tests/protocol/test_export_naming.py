"""Export file names and index.txt (SPEC EXP-13, EXP-14)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phe_trace.protocol import export


def test_file_name_matches_the_reference_layout() -> None:
    """EXP-13: ROOT/START-END-NNNNN.zip, as in the reference's 'testExport-2-records-1-of-1'."""
    assert export.export_file_name("US", 1590159600, 1590246000, 1) == (
        "US/1590159600-1590246000-00001.zip"
    )
    assert export.export_file_name("eu/DE", 0, 600, 12345) == "eu/DE/0-600-12345.zip"
    assert export.index_file_name("eu/DE") == "eu/DE/index.txt"


@pytest.mark.parametrize(
    ("root", "start", "end", "num"),
    [
        ("", 0, 1, 1),
        ("/US", 0, 1, 1),
        ("US/..", 0, 1, 1),
        ("U S", 0, 1, 1),
        ("US", 2, 1, 1),
        ("US", 0, 1, 0),
        ("US", 0, 1, 100_000),
        ("US", -1, 1, 1),
    ],
)
def test_bad_names_are_refused(root: str, start: int, end: int, num: int) -> None:
    """EXP-13: roots are relative '/'-separated segments; window and batch in range."""
    with pytest.raises(export.ExportFormatError):
        export.export_file_name(root, start, end, num)


@given(
    st.from_regex(r"[A-Za-z0-9_]{1,8}(/[A-Za-z0-9_][A-Za-z0-9_-]{0,7}){0,2}", fullmatch=True),
    st.integers(0, 2**40),
    st.integers(0, 2**40),
    st.integers(1, 99_999),
)
def test_name_round_trip_and_order(root: str, start: int, length: int, num: int) -> None:
    """EXP-13: parse inverts format; names order by window then batch."""
    path = export.export_file_name(root, start, start + length, num)
    parsed = export.parse_export_file_name(path)
    assert parsed == export.ExportFileName(start, start + length, num, root)
    assert parsed.path == path
    later = export.parse_export_file_name(
        export.export_file_name(root, start + 1, start + 1 + length, 1)
    )
    assert parsed < later


@pytest.mark.parametrize(
    "path",
    [
        "1-2-00001.zip",
        "US/1-2-1.zip",
        "US/1-2-00001.bin",
        "US/2-1-00001.zip",
        "US/1-2-00000.zip",
        "/1-2-00001.zip",
        "../1-2-00001.zip",
    ],
)
def test_parse_refuses_other_names(path: str) -> None:
    """EXP-13: anything that is not ROOT/START-END-NNNNN.zip is refused."""
    with pytest.raises(export.ExportFormatError):
        export.parse_export_file_name(path)


def test_index_format_and_parse() -> None:
    """EXP-14: one relative path per line, oldest first, no trailing newline."""
    paths = ["US/1-2-00001.zip", "US/2-3-00001.zip", "US/2-3-00002.zip"]
    data = export.format_index(paths)
    assert data == b"US/1-2-00001.zip\nUS/2-3-00001.zip\nUS/2-3-00002.zip"
    assert export.parse_index(data) == tuple(paths)
    assert export.parse_index(b"\r\n US/1-2-00001.zip \r\n\nUS/2-3-00001.zip\n") == tuple(paths[:2])
    assert export.format_index([]) == b""
    assert export.parse_index(b"") == ()


@pytest.mark.parametrize(
    "data", [b"/etc/passwd", b"US/../x.zip", b"https://evil/x.zip", b"US/\xff.zip", b"a b"]
)
def test_index_refuses_unsafe_entries(data: bytes) -> None:
    """EXP-14: absolute paths, '..', URLs and non-ASCII are refused by reader and writer."""
    with pytest.raises(export.ExportFormatError):
        export.parse_index(data)
    text = data.decode("latin-1")
    with pytest.raises((export.ExportFormatError, UnicodeEncodeError)):
        export.format_index([text])


def test_index_entry_limit() -> None:
    """EXP-14: a reader caps the number of entries."""
    with pytest.raises(export.ExportFormatError):
        export.parse_index(b"\n".join([b"US/a.zip"] * 11), max_entries=10)
    assert len(export.parse_index(b"\n".join([b"US/a.zip"] * 10), max_entries=10)) == 10


@given(st.binary(max_size=300))
def test_parse_index_only_raises_its_error(data: bytes) -> None:
    """EXP-14: arbitrary bytes give entries or ExportFormatError, nothing else."""
    try:
        entries = export.parse_index(data)
    except export.ExportFormatError:
        return
    assert all(e and not e.startswith("/") and ".." not in e.split("/") for e in entries)
