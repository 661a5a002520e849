"""``cache.scan``: what a cache holds, whoever wrote it; last use stamped on every hit; in use."""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING

import anyio
import pytest

from aiomodelkit import AssetsManager, ConfigError, cache
from aiomodelkit._cache_os import owner

from ._helpers import SIZES, SPECS, Store, set_last_used

if TYPE_CHECKING:
    from pathlib import Path


def test_a_cache_written_by_aiomodelkit(ours: Path) -> None:
    listing = cache.scan(ours)
    assert [v.spec for v in listing.versions] == SPECS
    assert {v.spec: v.size for v in listing.versions} == SIZES
    assert [v.objects for v in listing.versions] == [1, 1, 1, 2]
    assert [v.is_directory for v in listing.versions] == [False, False, False, True]
    assert all(v.complete and v.written_by == "aiomodelkit" for v in listing.versions)
    assert not any(v.in_use for v in listing.versions)  # the manager that fetched is closed
    assert listing.versions[0].path == ours / "models" / "clf" / "1.0"
    assert (listing.total_size, listing.total_objects) == (730, 5)
    assert listing.leftovers == ()
    assert not listing.read_only


def test_a_cache_written_by_modelkit(theirs: Path) -> None:
    assert (theirs / ".cache").is_dir()  # modelkit's locks: never taken for an asset
    listing = cache.scan(theirs)
    assert [v.spec for v in listing.versions] == SPECS
    assert {v.spec: v.size for v in listing.versions} == SIZES
    assert all(v.complete and v.written_by == "modelkit" for v in listing.versions)
    # An interrupted modelkit download (it writes in place, the marker comes last).
    (theirs / "models" / "tok" / "0.0" / ".SUCCESS").unlink()
    (theirs / "models" / "clf" / ".0.1.SUCCESS").unlink()
    states = {v.spec: v.complete for v in cache.scan(theirs).versions}
    broken = {"models/tok:0.0": False, "models/clf:0.1": False}
    assert states == {**dict.fromkeys(SPECS, True), **broken}


def test_last_use_is_stamped_on_every_hit(store: Store, ours: Path) -> None:
    long_ago = time.time() - 86400
    for spec in SPECS:
        set_last_used(ours, spec, long_ago)

    async def hit() -> None:
        async with AssetsManager(settings=store.settings(ours)) as am:
            fetched = await am.fetch("models/clf:0.1")  # pinned and cached: no request at all
        assert fetched.from_cache

    anyio.run(hit)
    used = {v.spec: v.last_used.timestamp() for v in cache.scan(ours).versions}
    assert used.pop("models/clf:0.1") > time.time() - 60
    assert list(used.values()) == pytest.approx([long_ago] * 3)


async def test_in_use_while_a_manager_is_open(store: Store, ours: Path) -> None:
    async with AssetsManager(settings=store.settings(ours)) as am:
        await am.fetch("models/clf:0.0")
        await am.fetch("models/tok")  # resolved through the store's index, then a hit
        listing = await anyio.to_thread.run_sync(cache.scan, ours)
        assert {v.spec for v in listing.versions if v.in_use} == {
            "models/clf:0.0",
            "models/tok:0.0",
        }
        registrations = os.listdir(ours / ".locks" / ".in-use")
        assert len(registrations) == 1
        assert registrations[0].startswith(owner() + "-")
    listing = await anyio.to_thread.run_sync(cache.scan, ours)
    assert not any(v.in_use for v in listing.versions)
    assert os.listdir(ours / ".locks" / ".in-use") == []  # closed: its registration is gone


async def test_a_miss_writes_nothing(store: Store, tmp_path: Path) -> None:
    """Looking for a version that is not cached stamps and registers nothing."""
    empty = tmp_path / "empty"
    async with AssetsManager(settings=store.settings(empty, offline=True)) as am:
        with pytest.raises(FileNotFoundError):
            await am.fetch("models/clf:0.0")
    assert sorted(p.name for p in empty.rglob("*")) == []


def test_leftovers_are_listed_apart(ours: Path) -> None:
    folder = ours / "models" / "clf"
    host = owner().rpartition("-")[0]
    dead = folder / f"0.1.incomplete-{host}-999999999-deadbeef"  # no such pid
    dead.write_bytes(b"x" * 7)
    live = folder / f"1.1.incomplete-{host}-{os.getpid()}-cafef00d"
    live.mkdir()
    (live / "part").write_bytes(b"y" * 3)
    listing = cache.scan(ours)
    assert [v.spec for v in listing.versions] == SPECS
    assert [(left.path, left.version, left.size, left.stale) for left in listing.leftovers] == [
        (dead, "0.1", 7, True),
        (live, "1.1", 3, False),
    ]


def test_names_of_several_pieces_and_both_versioning_systems(tmp_path: Path) -> None:
    def version(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        (path.parent / f".{path.name}.SUCCESS").touch()

    version(tmp_path / "a" / "b" / "c" / "1.0", b"x")
    version(tmp_path / "a" / "b" / "c" / "10.0", b"xx")
    version(tmp_path / "a" / "b" / "c" / "9.3", b"xxx")
    version(tmp_path / "d" / "2024-05-02T10-11-12Z", b"y")
    version(tmp_path / "d" / "2025-01-01T00-00-00Z", b"y")
    (tmp_path / "stray.txt").write_text("not an asset")  # at the root: never a version
    (tmp_path / "e" / "0.1" / "half").mkdir(parents=True)  # an interrupted directory download
    listing = cache.scan(tmp_path)
    assert [(v.spec, v.complete) for v in listing.versions] == [
        ("a/b/c:10.0", True),
        ("a/b/c:9.3", True),
        ("a/b/c:1.0", True),
        ("d:2025-01-01T00-00-00Z", True),
        ("d:2024-05-02T10-11-12Z", True),
        ("e:0.1", False),
    ]


def test_a_missing_cache_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no assets cache at .* does not exist"):
        cache.scan(tmp_path / "nosuch")
    (tmp_path / "file").touch()
    with pytest.raises(ConfigError, match="is a file, not a directory"):
        cache.scan(tmp_path / "file")


@pytest.mark.skipif(sys.platform == "win32", reason="flock: nothing is registered on Windows")
def test_a_dead_process_registers_nothing(ours: Path) -> None:
    registrations = ours / ".locks" / ".in-use"  # the fetches made it
    (registrations / "host-1-deadbeef.use").write_text("models/clf\t0.0\n")  # nobody holds it
    assert not any(v.in_use for v in cache.scan(ours).versions)
