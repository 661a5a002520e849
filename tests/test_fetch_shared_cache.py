"""The cache shared across processes and runs: a dead process's staging, a copy published
under another process's lock, lock files that pin versions, warm starts that open no store."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from typing import TYPE_CHECKING

import anyio
import anyio.from_thread
import filelock
import pytest

from aiomodelkit import AssetsManager, FetchedAsset, IntegrityError, Settings
from aiomodelkit._cache import AssetCache, CachedCopy, VersionClaim
from aiomodelkit.stores import MemoryStore, S3Store
from aiomodelkit.testing import InstrumentedStore

if TYPE_CHECKING:
    from pathlib import Path


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "assets_dir": tmp_path / "cache",
        "retry_backoff": 0.001,
        "retry_backoff_max": 0.01,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


async def test_stale_staging_of_dead_processes_is_removed(tmp_path: Path) -> None:
    source = tmp_path / "m.bin"
    source.write_bytes(b"model")
    done = await anyio.run_process([sys.executable, "-c", "import os; print(os.getpid())"])
    dead_pid = int(done.stdout)
    async with AssetsManager(storage=MemoryStore(), settings=_settings(tmp_path)) as am:
        await am.new(source, "models/clf")
        directory = tmp_path / "cache" / "models" / "clf"
        directory.mkdir(parents=True)
        from aiomodelkit._cache_os import owner as _owner

        host = _owner().rpartition("-")[0]
        stale = directory / f"0.0.incomplete-{host}-{dead_pid}-deadbeef"
        stale.mkdir()
        ours = directory / f"0.0.incomplete-{host}-{os.getpid()}-cafef00d"
        ours.write_bytes(b"in use by another task of this process")
        await am.fetch("models/clf:0.0")
    assert not stale.exists()
    assert ours.exists()


async def test_lock_file(tmp_path: Path) -> None:
    source = tmp_path / "m.bin"
    source.write_bytes(b"v0")
    lock_path = tmp_path / "assets.lock"
    store = InstrumentedStore(MemoryStore())
    async with AssetsManager(storage=store, settings=_settings(tmp_path)) as am:
        await am.new(source, "models/clf")
        await am.lock(["models/clf:0", "models/clf"], lock_path)
        source.write_bytes(b"v1")
        await am.update(source, "models/clf")
    locked = json.loads(lock_path.read_text())
    assert locked["assets"]["models/clf:0"]["version"] == "0.0"
    assert (
        locked["assets"]["models/clf"]["files"][""]["sha256"] == hashlib.sha256(b"v0").hexdigest()
    )
    index_reads = store.count("read", "models/clf.versions")
    async with AssetsManager(
        storage=store, settings=_settings(tmp_path, lock_file=lock_path)
    ) as am:
        fetched = await am.fetch("models/clf:0")
        unlocked = await am.fetch("models/clf:0.1")
    assert (fetched.version, fetched.source) == ("0.0", "lock")
    assert fetched.path.read_bytes() == b"v0"
    assert unlocked.version == "0.1"
    assert store.count("read", "models/clf.versions") == index_reads
    # A meta that changed under a locked version is refused.
    await store.put(
        "models/clf/0.0.meta", b'{"is_directory": false, "size": 2, "sha256": "' + b"0" * 64 + b'"}'
    )
    other = tmp_path / "other"
    async with AssetsManager(storage=store, settings=_settings(other, lock_file=lock_path)) as am:
        with pytest.raises(IntegrityError, match="differs from the lock file"):
            await am.fetch("models/clf")


async def test_a_waiter_takes_a_copy_published_under_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fetch waiting for another process's download looks for the published copy too:
    it returns it without waiting for the lock, which that process still holds here."""
    store = MemoryStore()
    source = tmp_path / "m.bin"
    source.write_bytes(b"model")
    async with AssetsManager(storage=store, settings=_settings(tmp_path / "publisher")) as am:
        await am.new(source, "models/clf")
    waiting = anyio.Event()
    attempt = VersionClaim.attempt

    def spy(claim: VersionClaim) -> CachedCopy | bool:
        found = attempt(claim)
        if found is False:
            anyio.from_thread.run_sync(waiting.set)
        return found

    monkeypatch.setattr(VersionClaim, "attempt", spy)
    cache = AssetCache(tmp_path / "cache")
    lock_path = await anyio.to_thread.run_sync(cache.lock_path, "models/clf", "0.0")
    other = filelock.FileLock(lock_path, thread_local=False)  # another process downloading
    await anyio.to_thread.run_sync(other.acquire)
    counted = InstrumentedStore(store)
    results: list[FetchedAsset] = []
    try:
        async with (
            AssetsManager(storage=counted, settings=_settings(tmp_path)) as waiter,
            AssetsManager(storage=store, settings=_settings(tmp_path, cache_locking=False)) as it,
        ):

            async def wait() -> None:
                results.append(await waiter.fetch("models/clf:0.0"))

            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(wait)
                    await waiting.wait()  # the waiter found the lock taken
                    await it.fetch("models/clf:0.0")  # publishes; "its" lock stays held
        assert other.is_locked
    finally:
        await anyio.to_thread.run_sync(other.release)
    (fetched,) = results
    assert fetched.from_cache
    assert fetched.objects == 0
    # One request: the meta, read before any lock is taken so that a version that does
    # not exist leaves no lock file behind; no data was downloaded twice.
    assert counted.requests == counted.count("read", ".meta") == 1
    assert fetched.path.read_bytes() == b"model"


async def test_warm_start_never_opens_the_store(tmp_path: Path, unreachable_s3: S3Store) -> None:
    """Pinned and cached: no request, and not even a client (whose creation may do I/O)."""
    source = tmp_path / "m.bin"
    source.write_bytes(b"model")
    root = tmp_path / "store"
    root.mkdir()
    async with AssetsManager(storage=root.as_uri(), settings=_settings(tmp_path)) as am:
        await am.new(source, "models/clf")
        await am.fetch("models/clf:0.0")
    async with AssetsManager(storage=unreachable_s3, settings=_settings(tmp_path)) as am:
        fetched = await am.fetch("models/clf:0.0")
        assert am.store is not None
        assert not am.store.opened  # type: ignore[attr-defined]
    assert fetched.from_cache
    assert fetched.source == "cache"
