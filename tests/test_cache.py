"""AssetCache: atomic swaps, staging ownership, modelkit markers."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from aiomodelkit._cache import AssetCache, VersionClaim
from aiomodelkit._cache_os import exchange as _exchange
from aiomodelkit._cache_os import is_stale as _is_stale
from aiomodelkit._cache_os import owner as _owner

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def test_exchange_swaps_directories_atomically(tmp_path: Path) -> None:
    new, old = tmp_path / "new", tmp_path / "old"
    new.mkdir()
    old.mkdir()
    (new / "v").write_text("new")
    (old / "v").write_text("old")
    assert _exchange(new, old)  # Linux: renameat2 is available here
    assert (old / "v").read_text() == "new"
    assert (new / "v").read_text() == "old"


def test_force_publish_replaces_a_directory(tmp_path: Path) -> None:
    cache = AssetCache(tmp_path)
    first = cache.new_staging("m", "1.0", True, ["a/b.txt"])
    (first / "a" / "b.txt").write_text("one")
    assert cache.publish("m", "1.0", first, True)
    second = cache.new_staging("m", "1.0", True, ["a/b.txt"])
    (second / "a" / "b.txt").write_text("two")
    assert not cache.publish("m", "1.0", second, True)  # a complete copy wins without force
    third = cache.new_staging("m", "1.0", True, ["a/b.txt"])
    (third / "a" / "b.txt").write_text("three")
    assert cache.publish("m", "1.0", third, True, replace=True)
    assert (tmp_path / "m" / "1.0" / "a" / "b.txt").read_text() == "three"
    assert cache.is_complete("m", "1.0")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1.0"]


def test_staging_ownership(tmp_path: Path) -> None:
    mine = tmp_path / "x"
    mine.mkdir()
    host = _owner().rpartition("-")[0]
    assert not _is_stale(f"{host}-{os.getpid()}-abcdef12", mine)  # this process: in use
    assert _is_stale(f"{host}-999999999-abcdef12", mine)  # no such pid
    assert not _is_stale("otherhost-1-abcdef12", mine)  # another host, recent: unknown, kept
    old = tmp_path / "old"
    old.mkdir()
    os.utime(old, (0, 0))
    assert _is_stale("otherhost-1-abcdef12", old)  # another host, a day old: removed


def test_file_marker_without_file_is_incomplete(tmp_path: Path) -> None:
    cache = AssetCache(tmp_path)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / ".1.0.SUCCESS").touch()  # a crash between marker and rename
    assert not cache.is_complete("m", "1.0")
    (tmp_path / "m" / "1.0").write_text("data")
    assert cache.is_complete("m", "1.0")


def test_a_claim_finds_the_copy_takes_the_lock_or_waits(tmp_path: Path) -> None:
    cache = AssetCache(tmp_path)
    mine = VersionClaim(cache, "m", "1.0", force=False, locking=True)
    other = VersionClaim(cache, "m", "1.0", force=False, locking=True)
    assert mine.attempt() is True  # nothing cached: ours to download
    assert other.attempt() is False  # another process is downloading it
    staging = cache.new_staging("m", "1.0", False)
    staging.write_text("weights")
    cache.publish("m", "1.0", staging, False)
    # Published, the lock still held: the waiter takes the copy without the lock.
    found = other.attempt()
    assert found == (tmp_path / "m" / "1.0", None)
    assert (mine.held, other.held) == (True, False)
    mine.release()
    assert not mine.held
    forced = VersionClaim(cache, "m", "1.0", force=True, locking=True)
    assert forced.attempt() is True  # force downloads again, under the lock
    forced.release()


def test_a_claim_without_locking_never_waits(tmp_path: Path) -> None:
    cache = AssetCache(tmp_path)
    first = VersionClaim(cache, "m", "1.0", force=False, locking=False)
    second = VersionClaim(cache, "m", "1.0", force=False, locking=False)
    assert first.attempt() is True
    assert second.attempt() is True
    assert not first.held
    assert not second.held
    assert not (tmp_path / ".locks").exists()


def test_a_copy_another_process_published_meanwhile_is_never_moved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the lock (cache_locking off): B looked, found nothing, then A published. B's
    publish must keep A's copy (its readers may be reading it) and discard its own."""
    cache = AssetCache(tmp_path / "cache")
    first = cache.new_staging("models/x", "1.0", True, ["w.bin"])
    (first / "w.bin").write_text("A")
    assert cache.publish("models/x", "1.0", first, True)
    final = cache.version_path("models/x", "1.0")
    inode = final.stat().st_ino
    late = cache.new_staging("models/x", "1.0", True, ["w.bin"])
    (late / "w.bin").write_text("B")
    looks = [False]  # B's first look happened before A's rename
    complete = cache.is_complete
    monkeypatch.setattr(cache, "is_complete", lambda n, v: looks.pop() if looks else complete(n, v))
    assert not cache.publish("models/x", "1.0", late, True)
    assert (final / "w.bin").read_text() == "A"
    assert final.stat().st_ino == inode  # the very same directory, never moved
    assert not late.exists()
