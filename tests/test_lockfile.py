"""Lock files: the format, the round trip, malformed files, and the check against a meta."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiomodelkit import (
    AssetMeta,
    AssetSpec,
    ConfigError,
    FileEntry,
    IntegrityError,
    LockedAsset,
    LockFile,
)
from aiomodelkit._lockfile import lock_key

if TYPE_CHECKING:
    from pathlib import Path

SHA_A, SHA_B = "a" * 64, "b" * 64
XXH = "c" * 32
CLF = LockedAsset("models/clf", "1.3", (FileEntry("", 4, SHA_A),))
TREE = LockedAsset(
    "models/tree", "0.0", (FileEntry("a.bin", 1, SHA_A), FileEntry("sub/b.bin", 2, SHA_B))
)


def _spec(text: str) -> AssetSpec:
    return AssetSpec.parse(text)


def test_lock_key_drops_only_the_sub_part() -> None:
    assert lock_key(_spec("models/clf:1[sub/weights.bin]")) == "models/clf:1"
    assert lock_key(_spec("models/clf:1")) == "models/clf:1"
    assert lock_key(_spec("models/clf:1.3")) == "models/clf:1.3"
    assert lock_key(_spec("models/clf[weights.bin]")) == "models/clf"
    assert lock_key(_spec("models/clf")) == "models/clf"


def test_get_finds_a_spec_by_its_lock_key() -> None:
    lock = LockFile({"models/clf:1": CLF, "models/tree": TREE})
    assert lock.get(_spec("models/clf:1")) is CLF
    assert lock.get(_spec("models/clf:1[weights.bin]")) is CLF  # the sub-part does not count
    assert lock.get(_spec("models/tree")) is TREE
    assert lock.get(_spec("models/tree[sub]")) is TREE
    # Another requested version is another spec: not locked.
    assert lock.get(_spec("models/clf")) is None
    assert lock.get(_spec("models/clf:1.3")) is None
    assert lock.get(_spec("models/tree:0")) is None
    assert lock.get(_spec("models/other:1")) is None
    assert LockFile().get(_spec("models/clf:1")) is None


def test_get_ignores_an_entry_for_another_name() -> None:
    # Only a hand-built lock can hold one (load refuses it): never returned for the spec.
    assert (
        LockFile({"models/clf:1": LockedAsset("models/other", "1.0")}).get(_spec("models/clf:1"))
        is None
    )


def test_save_then_load(tmp_path: Path) -> None:
    lock = LockFile({"models/tree": TREE, "models/clf:1": CLF, "models/bare": _bare()})
    path = tmp_path / "assets.lock"
    lock.save(path)
    loaded = LockFile.load(path)
    assert loaded == lock
    assert dict(loaded.assets) == dict(lock.assets)
    assert [p.name for p in tmp_path.iterdir()] == ["assets.lock"]  # no temporary file left


def _bare() -> LockedAsset:
    return LockedAsset("models/bare", "2.0")


def test_the_file_format(tmp_path: Path) -> None:
    path = tmp_path / "assets.lock"
    LockFile({"models/tree": TREE, "models/clf:1": CLF}).save(path)
    raw = path.read_bytes()
    assert raw.endswith(b"}\n")
    assert raw.startswith(b'{\n  "aiomodelkit_lock": 1,\n  "assets": {\n')
    data = json.loads(raw)
    assert data == {
        "aiomodelkit_lock": 1,
        "assets": {
            "models/clf:1": {
                "name": "models/clf",
                "version": "1.3",
                "files": {"": {"size": 4, "sha256": SHA_A}},
            },
            "models/tree": {
                "name": "models/tree",
                "version": "0.0",
                "files": {
                    "a.bin": {"size": 1, "sha256": SHA_A},
                    "sub/b.bin": {"size": 2, "sha256": SHA_B},
                },
            },
        },
    }
    assert list(data["assets"]) == ["models/clf:1", "models/tree"]  # sorted: diffs well
    assert LockFile().dump() == b'{\n  "aiomodelkit_lock": 1,\n  "assets": {}\n}'


def test_save_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "assets.lock"
    LockFile({"models/clf:1": CLF}).save(path)
    LockFile({"models/tree": TREE}).save(path)
    assert set(LockFile.load(path).assets) == {"models/tree"}


def test_an_entry_without_files_loads_empty(tmp_path: Path) -> None:
    path = tmp_path / "assets.lock"
    entry = {"name": "models/clf", "version": "1.3"}
    path.write_text(json.dumps({"aiomodelkit_lock": 1, "assets": {"models/clf:1": entry}}))
    assert LockFile.load(path).assets == {"models/clf:1": LockedAsset("models/clf", "1.3")}


def test_a_missing_lock_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"lock file '.*absent\.lock' does not exist"):
        LockFile.load(tmp_path / "absent.lock")


def test_an_unreadable_or_hostile_lock_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read: Is a directory"):
        LockFile.load(tmp_path)
    nested = tmp_path / "nested.lock"
    nested.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(ConfigError, match="is malformed: nested too deeply"):
        LockFile.load(nested)


_ENTRY = {"name": "models/clf", "version": "1.3", "files": {"": {"size": 4, "sha256": SHA_A}}}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "Expecting value"),
        (b"{", "Expecting property name"),
        (b"\xff\xfe\xfd", "malformed"),
        (b"[]", "has no attribute 'get'"),
        (b'"lock"', "has no attribute 'get'"),
        (b"{}", "unknown format None"),
        (b'{"aiomodelkit_lock": 2, "assets": {}}', "unknown format 2"),
        (b'{"aiomodelkit_lock": "1", "assets": {}}', "unknown format '1'"),
        (b'{"aiomodelkit_lock": 1}', "'assets'"),
        (b'{"aiomodelkit_lock": 1, "assets": []}', "has no attribute 'items'"),
        (b'{"aiomodelkit_lock": 1, "assets": {"models/clf:1": []}}', "list indices"),
        (b'{"aiomodelkit_lock": 1, "assets": {"models/clf:1": {"name": "models/clf"}}}', "version"),
        (
            b'{"aiomodelkit_lock": 1, "assets": {"models/clf:1": {"version": "1.3"}}}',
            "'name'",
        ),
    ],
)
def test_a_malformed_lock_file_is_a_config_error(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "assets.lock"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match="is malformed") as info:
        LockFile.load(path)
    assert message in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


@pytest.mark.parametrize(
    ("key", "entry", "message"),
    [
        ("models/clf:1", {**_ENTRY, "name": "models/other"}, "does not match its name"),
        ("models/clf:1", {**_ENTRY, "version": 1.3}, "does not match its name"),
        ("models/clf:1", {**_ENTRY, "version": None}, "does not match its name"),
        ("models/clf:1", {**_ENTRY, "version": "../1.3"}, "version"),
        ("models/clf:1", {**_ENTRY, "version": ""}, "version is empty"),
        ("models/clf:1", {**_ENTRY, "version": "1.3\x00"}, "version"),
        ("../clf:1", {**_ENTRY, "name": "../clf"}, "'..' segment"),
        ("models/clf:1:2", _ENTRY, "models/clf:1:2"),
        ("models/clf:1", {**_ENTRY, "files": []}, "has no attribute 'items'"),
        ("models/clf:1", {**_ENTRY, "files": {"": 4}}, "has no attribute 'get'"),
    ],
)
def test_a_lock_entry_that_does_not_check_out_is_a_config_error(
    tmp_path: Path, key: str, entry: object, message: str
) -> None:
    path = tmp_path / "assets.lock"
    path.write_text(json.dumps({"aiomodelkit_lock": 1, "assets": {key: entry}}))
    with pytest.raises(ConfigError, match="is malformed") as info:
        LockFile.load(path)
    assert message in str(info.value)


def test_check_accepts_the_locked_files_in_any_order() -> None:
    TREE.check(AssetMeta(True, (TREE.files[1], TREE.files[0])))
    CLF.check(AssetMeta(False, CLF.files, pushed_by="someone else"))
    # An entry without files (written from a meta without checksums) checks nothing.
    _bare().check(AssetMeta(True, (FileEntry("anything", 1, SHA_A),)))


def test_xxh3_128_is_kept_and_checked_only_when_the_lock_has_it(tmp_path: Path) -> None:
    fast = LockedAsset("models/clf", "1.3", (FileEntry("", 4, SHA_A, XXH),))
    path = tmp_path / "assets.lock"
    LockFile({"models/clf:1": fast}).save(path)
    assert json.loads(path.read_bytes())["assets"]["models/clf:1"]["files"] == {
        "": {"size": 4, "sha256": SHA_A, "xxh3_128": XXH}
    }
    assert LockFile.load(path).assets["models/clf:1"] == fast
    fast.check(AssetMeta(False, fast.files))
    with pytest.raises(IntegrityError, match="differs from the lock"):
        fast.check(AssetMeta(False, (FileEntry("", 4, SHA_A, "b" * 32),)))
    # A lock written before metas had XXH3-128 still matches a meta that has it.
    CLF.check(AssetMeta(False, (FileEntry("", 4, SHA_A, XXH),)))


@pytest.mark.parametrize(
    "files",
    [
        (FileEntry("a.bin", 1, SHA_A),),  # a file fewer
        (*TREE.files, FileEntry("extra", 1, SHA_A)),  # a file more
        (FileEntry("a.bin", 1, SHA_B), TREE.files[1]),  # another digest
        (FileEntry("a.bin", 9, SHA_A), TREE.files[1]),  # another size
        (FileEntry("a.bin", 1, None), TREE.files[1]),  # a digest gone
        (FileEntry("A.bin", 1, SHA_A), TREE.files[1]),  # another name
        (),
    ],
)
def test_check_refuses_a_meta_that_changed(files: tuple[FileEntry, ...]) -> None:
    with pytest.raises(IntegrityError, match=r"version 0\.0 differs from the lock") as info:
        TREE.check(AssetMeta(True, files))
    assert info.value.asset == "models/tree"


_segment = st.text(alphabet="abcxyz019_-", min_size=1, max_size=6).filter(
    lambda s: s[0].isalnum() and s[-1].isalnum()
)
_version = st.builds("{}.{}".format, st.integers(0, 20), st.integers(0, 20))
_files = st.lists(
    st.builds(
        FileEntry,
        st.text(alphabet="ab/é .", min_size=1, max_size=10),
        st.none() | st.integers(0, 2**40),
        st.none() | st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
        st.none() | st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
    ),
    max_size=4,
    unique_by=lambda entry: entry.path,
)


@st.composite
def _locks(draw: st.DrawFn) -> LockFile:
    assets: dict[str, LockedAsset] = {}
    for _ in range(draw(st.integers(0, 4))):
        name = "/".join(draw(st.lists(_segment, min_size=1, max_size=3)))
        requested = draw(st.none() | st.integers(0, 20).map(str) | _version)
        spec = AssetSpec(name, requested)
        assets[lock_key(spec)] = LockedAsset(name, draw(_version), tuple(draw(_files)))
    return LockFile(assets)


# Each example writes a file: no per-example deadline on a loaded machine.
@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_locks())
def test_any_lock_survives_save_and_load(tmp_path: Path, lock: LockFile) -> None:
    path = tmp_path / "assets.lock"
    lock.save(path)
    loaded = LockFile.load(path)
    assert dict(loaded.assets) == dict(lock.assets)
    for key, entry in lock.assets.items():
        assert loaded.get(AssetSpec.parse(key)) == entry


@pytest.mark.parametrize("where", ["a-directory", "in-a-missing-directory"])
def test_a_lock_file_that_cannot_be_written_is_one_config_error(tmp_path: Path, where: str) -> None:
    target = tmp_path / "taken" if where == "a-directory" else tmp_path / "nodir" / "x.lock"
    if where == "a-directory":
        target.mkdir()
    with pytest.raises(ConfigError, match=r"cannot write the lock file '.*': "):
        LockFile({"models/clf:1": CLF}).save(target)
    assert sorted(path.name for path in tmp_path.iterdir()) == (
        ["taken"] if where == "a-directory" else []
    )  # no temporary file left beside it
