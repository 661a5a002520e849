"""The remote layout: key builders, and the ``.versions`` and ``.meta`` parsers.

Everything these parsers read comes from a store and is untrusted: whatever the bytes, they
return a checked value or raise :class:`InvalidStoreDataError` naming the key and asset.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiomodelkit import MAJOR_MINOR, SIMPLE_DATE, InvalidStoreDataError
from aiomodelkit import _layout as layout
from aiomodelkit._layout import (
    AssetMeta,
    FileEntry,
    data_key,
    dump_index,
    dump_meta,
    meta_key,
    parse_index,
    parse_meta,
    tree_checksum,
    versions_key,
)

if TYPE_CHECKING:
    from collections.abc import Callable

_T = TypeVar("_T")
NAME = "models/clf"
SHA_A = "a" * 64
SHA_B = hashlib.sha256(b"b").hexdigest()
XXH_A = "a" * 32


def _index_of(raw: bytes) -> list[str]:
    return parse_index(raw, name=NAME, versioning=MAJOR_MINOR)


def _meta_of(raw: bytes) -> AssetMeta:
    return parse_meta(raw, name=NAME, version="0.1")


def _index(data: object) -> list[str]:
    return _index_of(json.dumps(data).encode())


def _meta(data: object) -> AssetMeta:
    return _meta_of(json.dumps(data).encode())


def _directory(contents: object, **fields: Any) -> AssetMeta:
    return _meta({"is_directory": True, "contents": contents, **fields})


# -- keys -----------------------------------------------------------------------------------


def test_keys_follow_modelkits_layout() -> None:
    assert versions_key(NAME) == "models/clf.versions"
    assert meta_key(NAME, "0.1") == "models/clf/0.1.meta"
    assert data_key(NAME, "0.1") == "models/clf/0.1"
    assert data_key(NAME, "0.1", "sub/weights.bin") == "models/clf/0.1/sub/weights.bin"
    assert data_key(NAME, "0.1", "") == "models/clf/0.1/"  # only None means "the file asset"


# -- .versions ------------------------------------------------------------------------------


def test_index_is_sorted_newest_first_without_duplicates() -> None:
    assert _index({"versions": ["0.0", "1.10", "0.1", "1.9", "0.1"]}) == [
        "1.10",
        "1.9",
        "0.1",
        "0.0",
    ]
    assert _index({"versions": []}) == []
    assert _index({"versions": ["0.0"], "other": "kept quiet"}) == ["0.0"]


def test_index_uses_the_given_versioning_system() -> None:
    raw = dump_index(["2024-01-02T00-00-00Z", "2025-06-01T12-00-00Z"])
    assert parse_index(raw, name=NAME, versioning=SIMPLE_DATE) == [
        "2025-06-01T12-00-00Z",
        "2024-01-02T00-00-00Z",
    ]
    with pytest.raises(InvalidStoreDataError, match="lists an invalid version"):
        parse_index(dump_index(["1.0"]), name=NAME, versioning=SIMPLE_DATE)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b'{"versions": ["0.0"]', "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        (b'"0.0"', "must be a JSON object"),
        (b'["0.0"]', "must be a JSON object"),
        (b"null", "must be a JSON object"),
        (b"{}", "must hold"),
        (b'{"versions": null}', "must hold"),
        (b'{"versions": "0.0"}', "must hold"),
        (b'{"versions": {"0.0": 1}}', "must hold"),
        (b'{"versions": ["0.0", 1]}', "must hold"),
        (b'{"versions": [["0.0"]]}', "must hold"),
        (b'{"versions": ["0.0", null]}', "must hold"),
        (b'{"versions": [""]}', "lists an invalid version"),
        (b'{"versions": ["01.0"]}', "lists an invalid version"),
        (b'{"versions": ["1.x"]}', "lists an invalid version"),
        (b'{"versions": ["../0.0"]}', "lists an invalid version"),
        (b'{"versions": ["0.0/../../etc"]}', "lists an invalid version"),
        (b'{"versions": ["0.0\\u0000"]}', "lists an invalid version"),
        (b'{"versions": ["1.0.0"]}', "lists an invalid version"),
    ],
)
def test_malformed_indexes_are_refused(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidStoreDataError, match=message) as info:
        parse_index(raw, name=NAME, versioning=MAJOR_MINOR)
    assert (info.value.key, info.value.asset) == ("models/clf.versions", NAME)


def test_an_index_over_the_size_limit_is_refused_before_parsing() -> None:
    assert layout.MAX_METADATA_BYTES == 64 * 1024 * 1024
    raw = b" " * (layout.MAX_METADATA_BYTES + 1)  # would be invalid JSON: never parsed
    with pytest.raises(InvalidStoreDataError, match="larger than 67108864 bytes"):
        parse_index(raw, name=NAME, versioning=MAJOR_MINOR)


@given(st.lists(st.builds("{}.{}".format, st.integers(0, 30), st.integers(0, 30))))
def test_dump_index_then_parse_index(versions: list[str]) -> None:
    ordered = MAJOR_MINOR.sort(versions)
    assert parse_index(dump_index(ordered), name=NAME, versioning=MAJOR_MINOR) == ordered


# -- .meta: valid -------------------------------------------------------------------------


def test_a_file_asset_meta() -> None:
    meta = _meta({"is_directory": False, "size": 5, "sha256": SHA_A, "contents": ["ignored"]})
    assert meta.is_directory is False
    assert meta.files == (FileEntry("", 5, SHA_A),)
    assert meta.total_size == 5
    ours = _meta({"is_directory": False, "size": 5, "sha256": SHA_A, "xxh3_128": XXH_A})
    assert ours.files == (FileEntry("", 5, SHA_A, XXH_A),)
    # modelkit's own metas record neither size nor checksum.
    assert _meta({"is_directory": False}).files == (FileEntry(""),)
    assert _meta({"is_directory": False}).total_size is None


def test_a_directory_asset_meta() -> None:
    meta = _directory(
        ["b.bin", "sub/a b.txt", "ünï/çødé.txt"],
        files={
            "b.bin": {"size": 3, "sha256": SHA_B, "xxh3_128": XXH_A},
            "sub/a b.txt": {"size": 0},
            "gone": {},
        },
    )
    assert meta.files == (
        FileEntry("b.bin", 3, SHA_B, XXH_A),
        FileEntry("sub/a b.txt", 0, None),  # a space inside a file name is fine
        FileEntry("ünï/çødé.txt"),
    )
    assert meta.total_size is None  # one size is unknown
    assert _directory(["a", "b"], files={"a": {"size": 1}, "b": {"size": 2}}).total_size == 3


def test_a_directory_without_contents_is_empty() -> None:
    meta = _meta({"is_directory": True})
    assert meta.files == ()
    assert meta.total_size == 0
    assert _directory([]).files == ()


def test_older_modelkit_contents_with_a_leading_slash() -> None:
    assert [entry.path for entry in _directory(["/a.bin", "/sub/b.bin"]).files] == [
        "a.bin",
        "sub/b.bin",
    ]


def test_dates_authors_and_unknown_fields() -> None:
    meta = _meta(
        {
            "is_directory": False,
            "push_date": "2024-05-06T07:08:09.123456",  # modelkit writes naive UTC dates
            "pushed_by": "ci@example",
            "aiomodelkit_version": "0.3.0",
            "comment": "from a newer writer",
        }
    )
    assert meta.push_date == datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    assert (meta.pushed_by, meta.aiomodelkit_version) == ("ci@example", "0.3.0")
    assert meta.extra == {"comment": "from a newer writer"}
    offset = _meta({"is_directory": False, "push_date": "2024-05-06T07:08:09+02:00"})
    assert offset.push_date == datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2)))


def test_a_huge_size_is_only_a_number_here() -> None:
    # The parser checks types; the download compares the claimed size with the bytes.
    assert _meta({"is_directory": False, "size": 10**30}).files[0].size == 10**30


# -- .meta: refused -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "must be a JSON object"),
        ({}, "needs a boolean is_directory"),
        ({"is_directory": "true"}, "needs a boolean is_directory"),
        ({"is_directory": 1}, "needs a boolean is_directory"),
        ({"is_directory": None}, "needs a boolean is_directory"),
        ({"is_directory": False, "push_date": 1714979289}, "push_date must be a string"),
        ({"is_directory": False, "push_date": "yesterday"}, "is not ISO-8601"),
        ({"is_directory": False, "push_date": "2024-13-45T00:00:00"}, "is not ISO-8601"),
        ({"is_directory": False, "pushed_by": 7}, "must be strings"),
        ({"is_directory": False, "aiomodelkit_version": ["0.3"]}, "must be strings"),
        ({"is_directory": True, "contents": "a.bin"}, "contents must be a list"),
        ({"is_directory": True, "contents": {"a.bin": {}}}, "contents must be a list"),
        ({"is_directory": True, "contents": ["a", 1]}, "contents must be strings"),
        ({"is_directory": True, "contents": [None]}, "contents must be strings"),
        ({"is_directory": True, "contents": ["a"], "files": []}, "files must be an object"),
        ({"is_directory": True, "contents": ["a"], "files": {"a": 3}}, "must be an object"),
    ],
)
def test_malformed_metas_are_refused(data: object, message: str) -> None:
    with pytest.raises(InvalidStoreDataError, match=message) as info:
        _meta(data)
    assert (info.value.key, info.value.asset) == ("models/clf/0.1.meta", NAME)


@pytest.mark.parametrize("raw", [b"", b"{", b"\x80abc", b'{"is_directory": tru}', b"NaN"])
def test_a_meta_that_is_not_a_json_object_is_refused(raw: bytes) -> None:
    with pytest.raises(InvalidStoreDataError, match=r"not valid JSON|must be a JSON object"):
        parse_meta(raw, name=NAME, version="0.1")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("../escape", "'..' segment"),
        ("a/../../escape", "'..' segment"),
        ("a/./b", "'.' segment"),
        ("..", "'..' segment"),
        ("//etc/passwd", "must be relative"),  # one leading slash is tolerated, not two
        ("/", "is empty"),
        ("", "is empty"),
        ("a//b", "empty path segment"),
        ("a/", "empty path segment"),
        ("a\\..\\b", "backslash"),
        ("C:/Windows/evil.dll", "drive letter"),
        ("a/c:evil", "drive letter"),
        ("a\x00b", "NUL byte"),
        ("a\nb", "control character"),
        ("a\tb", "whitespace"),
        ("a\u200bb", "control character"),  # zero-width space: a format character
        ("x" * 256, "longer than 255 bytes"),
        ("é" * 128, "longer than 255 bytes"),  # 256 bytes in UTF-8
    ],
)
def test_unsafe_paths_in_contents_are_refused(path: str, message: str) -> None:
    with pytest.raises(InvalidStoreDataError, match=message) as info:
        _directory(["fine.bin", path])
    assert info.value.key == "models/clf/0.1.meta"


@pytest.mark.parametrize(
    ("contents", "message"),
    [
        (["a", "a"], "lists a file twice"),
        (["/a", "a"], "lists a file twice"),
        (["a", "a/b"], "'a' as a file and a directory"),
        (["x/y/z", "x/y"], "'x/y' as a file and a directory"),
    ],
)
def test_contents_that_cannot_be_laid_out_are_refused(contents: list[str], message: str) -> None:
    with pytest.raises(InvalidStoreDataError, match=message):
        _directory(contents)


def test_too_many_files_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    assert layout.MAX_FILES == 1_000_000
    monkeypatch.setattr(layout, "MAX_FILES", 3)
    assert len(_directory(["a", "b", "c"]).files) == 3
    with pytest.raises(InvalidStoreDataError, match="more than 3 files"):
        _directory(["a", "b", "c", "d"])


@pytest.mark.parametrize(
    "size", [-1, -(2**63), 1.0, 1.5, "5", True, False, [5], {"bytes": 5}, float("inf")]
)
@pytest.mark.parametrize("directory", [True, False], ids=["directory", "file"])
def test_a_size_must_be_a_byte_count(size: object, directory: bool) -> None:
    entry = {"size": size}
    data = (
        {"is_directory": True, "contents": ["a"], "files": {"a": entry}}
        if directory
        else {"is_directory": False, **entry}
    )
    with pytest.raises(InvalidStoreDataError, match="is not a byte count"):
        _meta(data)


@pytest.mark.parametrize(
    "sha256",
    [
        "A" * 64,  # the digest is lower-case hex, as hashlib writes it
        "a" * 63,
        "a" * 65,
        "g" * 64,
        "",
        f"sha256:{SHA_A}",
        f" {SHA_A}",
        int("1" * 64, 16),
        ["a" * 64],
    ],
)
@pytest.mark.parametrize("directory", [True, False], ids=["directory", "file"])
def test_a_sha256_must_be_a_hex_digest(sha256: object, directory: bool) -> None:
    entry = {"sha256": sha256}
    data = (
        {"is_directory": True, "contents": ["a"], "files": {"a": entry}}
        if directory
        else {"is_directory": False, **entry}
    )
    with pytest.raises(InvalidStoreDataError, match="is not a hex digest"):
        _meta(data)


@pytest.mark.parametrize(
    "xxh3", ["A" * 32, "a" * 31, "a" * 33, "a" * 64, "g" * 32, "", int("1" * 32, 16), [XXH_A]]
)
@pytest.mark.parametrize("directory", [True, False], ids=["directory", "file"])
def test_an_xxh3_128_must_be_a_hex_digest(xxh3: object, directory: bool) -> None:
    entry = {"xxh3_128": xxh3}
    data = (
        {"is_directory": True, "contents": ["a"], "files": {"a": entry}}
        if directory
        else {"is_directory": False, **entry}
    )
    with pytest.raises(InvalidStoreDataError, match=r"meta xxh3_128 for .* is not a hex digest"):
        _meta(data)


def test_a_meta_over_the_size_limit_is_refused_before_parsing() -> None:
    raw = b" " * (layout.MAX_METADATA_BYTES + 1)
    with pytest.raises(InvalidStoreDataError, match="larger than"):
        parse_meta(raw, name=NAME, version="0.1")


@pytest.mark.parametrize("parse", [_index_of, _meta_of], ids=["index", "meta"])
def test_deeply_nested_json_is_refused(parse: Callable[[bytes], object]) -> None:
    raw = b"[" * 100_000 + b"]" * 100_000  # 200 kB, far under the size limit
    with pytest.raises(InvalidStoreDataError):
        parse(raw)


# -- .meta: written and read back ---------------------------------------------------------

_segments = st.text(alphabet="abcxyz019_-. é", min_size=1, max_size=8).filter(
    lambda s: s not in (".", "..") and not s.startswith(" ")
)
# Every path has two segments: none can be both a file and the parent of another.
_paths = st.builds(lambda a, b: f"{a}/{b}", _segments, _segments)
_entries = st.builds(
    FileEntry,
    _paths,
    st.none() | st.integers(0, 2**53),
    st.none() | st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    st.none() | st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
)
_dates = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(9999, 1, 1), timezones=st.just(UTC)
)
_names = st.none() | st.text(max_size=20)


@given(
    st.lists(_entries, max_size=20, unique_by=lambda entry: entry.path),
    _dates,
    _names,
    _names,
)
def test_dump_meta_then_parse_meta_for_a_directory(
    files: list[FileEntry], pushed: datetime, by: str | None, writer: str | None
) -> None:
    meta = AssetMeta(True, tuple(files), pushed, by, writer)
    parsed = parse_meta(dump_meta(meta), name=NAME, version="0.1")
    assert parsed == AssetMeta(
        True, tuple(sorted(files, key=lambda entry: entry.path)), pushed, by, writer
    )


@given(_entries, _dates)
def test_dump_meta_then_parse_meta_for_a_file(entry: FileEntry, pushed: datetime) -> None:
    meta = AssetMeta(False, (FileEntry("", entry.size, entry.sha256, entry.xxh3_128),), pushed)
    assert parse_meta(dump_meta(meta), name=NAME, version="0.1") == meta


def test_dump_meta_writes_xxh3_128_beside_sha256_only_when_known() -> None:
    file_asset = json.loads(dump_meta(AssetMeta(False, (FileEntry("", 1, SHA_A, XXH_A),))))
    assert {k: file_asset[k] for k in ("size", "sha256", "xxh3_128")} == {
        "size": 1,
        "sha256": SHA_A,
        "xxh3_128": XXH_A,
    }
    assert "xxh3_128" not in json.loads(dump_meta(AssetMeta(False, (FileEntry("", 1, SHA_A),))))
    tree = AssetMeta(True, (FileEntry("a", 1, SHA_A, XXH_A), FileEntry("b", 2, SHA_B)))
    assert json.loads(dump_meta(tree))["files"] == {
        "a": {"size": 1, "sha256": SHA_A, "xxh3_128": XXH_A},
        "b": {"size": 2, "sha256": SHA_B},  # as older versions of ours wrote them
    }


def test_dump_meta_puts_modelkits_fields_first() -> None:
    written = json.loads(dump_meta(AssetMeta(True, (FileEntry("b"), FileEntry("a", 1, SHA_A)))))
    assert list(written)[:3] == ["push_date", "is_directory", "contents"]
    assert written["contents"] == ["a", "b"]
    assert written["files"] == {
        "a": {"size": 1, "sha256": SHA_A},
        "b": {"size": None, "sha256": None},
    }
    # A meta without a date gets the time of writing, in UTC.
    assert datetime.fromisoformat(written["push_date"]).tzinfo == UTC
    assert "pushed_by" not in written
    assert "aiomodelkit_version" not in written
    assert json.loads(dump_meta(AssetMeta(False)))["is_directory"] is False


# -- whatever the bytes -------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
_meta_like = st.fixed_dictionaries(
    {},
    optional={
        "is_directory": st.booleans() | _json,
        "contents": st.lists(st.text(max_size=12), max_size=5) | _json,
        "files": st.dictionaries(st.text(max_size=12), _json, max_size=3) | _json,
        "size": st.integers() | _json,
        "sha256": st.text(alphabet="0123456789abcdef", min_size=64, max_size=64) | _json,
        "xxh3_128": st.text(alphabet="0123456789abcdef", min_size=32, max_size=32) | _json,
        "push_date": st.datetimes().map(datetime.isoformat) | _json,
        "pushed_by": _json,
        "aiomodelkit_version": _json,
    },
)


def _outcome(parse: Callable[[bytes], _T], raw: bytes) -> _T | InvalidStoreDataError:
    try:
        return parse(raw)
    except InvalidStoreDataError as exc:
        return exc


def _assert_safe(meta: AssetMeta) -> None:
    for entry in meta.files:
        assert entry.path == "" or not entry.path.startswith("/")
        assert ".." not in entry.path.split("/")
        assert "\\" not in entry.path
        assert "\x00" not in entry.path
        assert entry.size is None or (type(entry.size) is int and entry.size >= 0)


@given(st.binary(max_size=200) | _json.map(lambda v: json.dumps(v).encode()))
def test_any_bytes_give_an_index_or_invalid_store_data(raw: bytes) -> None:
    versions = _outcome(_index_of, raw)
    if isinstance(versions, InvalidStoreDataError):
        assert versions.key == "models/clf.versions"
    else:
        assert versions == MAJOR_MINOR.sort(versions)


@given(st.binary(max_size=200) | (_meta_like | _json).map(lambda v: json.dumps(v).encode()))
def test_any_bytes_give_a_safe_meta_or_invalid_store_data(raw: bytes) -> None:
    meta = _outcome(_meta_of, raw)
    if isinstance(meta, InvalidStoreDataError):
        assert meta.key == "models/clf/0.1.meta"
    else:
        _assert_safe(meta)


# -- tree checksum --------------------------------------------------------------------------


def test_tree_checksum_names_the_exact_content() -> None:
    model = hashlib.sha256(b"model").hexdigest()
    single = AssetMeta(False, (FileEntry("", 5, model),))
    # The value the fetch audit record logs (see test_fetch.py::test_audit_record).
    assert tree_checksum(single) == "sha256:" + hashlib.sha256(f"\t{model}\n".encode()).hexdigest()
    tree = AssetMeta(True, (FileEntry("a", 1, SHA_A), FileEntry("b/c", 1, SHA_B)))
    lines = f"a\t{SHA_A}\nb/c\t{SHA_B}\n"
    assert tree_checksum(tree) == "sha256:" + hashlib.sha256(lines.encode()).hexdigest()
    # Same files, other names or other digests: another checksum.
    renamed = AssetMeta(True, (FileEntry("a", 1, SHA_A), FileEntry("b/d", 1, SHA_B)))
    swapped = AssetMeta(True, (FileEntry("a", 1, SHA_B), FileEntry("b/c", 1, SHA_A)))
    assert len({tree_checksum(tree), tree_checksum(renamed), tree_checksum(swapped)}) == 3
    # Sizes are not part of it (the digests cover the bytes).
    resized = AssetMeta(True, (FileEntry("a", None, SHA_A), FileEntry("b/c", 7, SHA_B)))
    assert tree_checksum(resized) == tree_checksum(tree)


def test_no_tree_checksum_without_every_digest() -> None:
    assert tree_checksum(AssetMeta(True)) is None
    assert tree_checksum(AssetMeta(False, (FileEntry(""),))) is None
    assert tree_checksum(AssetMeta(True, (FileEntry("a", 1, SHA_A), FileEntry("b")))) is None


def test_a_parsed_meta_checksums_like_the_written_one() -> None:
    meta = AssetMeta(True, (FileEntry("z", 1, SHA_A), FileEntry("a", 2, SHA_B)))
    parsed = parse_meta(dump_meta(meta), name=NAME, version="0.1")
    # Written sorted by path: the parsed meta lists (and checksums) files in that order.
    assert [entry.path for entry in parsed.files] == ["a", "z"]
    assert tree_checksum(parsed) == tree_checksum(AssetMeta(True, parsed.files))
