"""AssetsManager as a facade: its lifecycle, what it does without a store, how settings become
values. (Fetching itself is covered in test_fetch.py, publishing in test_publish.py.)"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio.to_thread
import pytest

from aiomodelkit import AssetsManager, ConfigError, Settings
from aiomodelkit._lifecycle import AsyncResource, ResourceState
from aiomodelkit._lockfile import LockFile
from aiomodelkit.stores import MemoryStore
from aiomodelkit.testing import InstrumentedStore

if TYPE_CHECKING:
    from pathlib import Path


def _state(resource: AsyncResource) -> ResourceState:
    """Read afresh each time (mypy would narrow a property across awaits)."""
    return resource.resource_state


def _settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(assets_dir=tmp_path / "cache", pushed_by="tester", **values)


async def _published(tmp_path: Path, store: MemoryStore | InstrumentedStore) -> None:
    source = tmp_path / "weights.bin"
    source.write_bytes(b"weights")
    async with AssetsManager(storage=store, settings=_settings(tmp_path)) as am:
        await am.new(source, "models/clf")


async def test_lifecycle_guard_and_reentry(tmp_path: Path) -> None:
    am = AssetsManager(storage=MemoryStore(), settings=_settings(tmp_path))
    assert _state(am) is ResourceState.UNOPENED
    with pytest.raises(RuntimeError, match="inside 'async with'"):
        await am.fetch("models/clf:0.0")
    async with am:
        assert _state(am) is ResourceState.OPEN
        with pytest.raises(RuntimeError, match="already open"):
            await am.__aenter__()
    assert _state(am) is ResourceState.CLOSED
    with pytest.raises(RuntimeError, match="inside 'async with'"):
        await am.versions("models/clf")
    async with am:  # a closed manager may be entered again
        assert await am.list_assets() == []
    await am.aclose()  # idempotent


async def test_the_store_opens_on_first_use_and_closes_with_the_manager(tmp_path: Path) -> None:
    store = InstrumentedStore(MemoryStore())
    await _published(tmp_path, store)
    async with AssetsManager(storage=store, settings=_settings(tmp_path)) as am:
        assert not (await am.fetch("models/clf:0.0")).from_cache
    async with AssetsManager(storage=store, settings=_settings(tmp_path)) as am:
        assert _state(store) is ResourceState.CLOSED  # closed by the last manager
        assert (await am.fetch("models/clf:0.0")).from_cache  # pinned and cached: no client
        assert _state(store) is ResourceState.CLOSED
        await am.versions("models/clf")
        assert _state(store) is ResourceState.OPEN
    assert _state(store) is ResourceState.CLOSED


async def test_without_a_store_only_the_cache_serves(tmp_path: Path) -> None:
    await _published(tmp_path, MemoryStore())
    async with AssetsManager(storage=MemoryStore(), settings=_settings(tmp_path)) as am:
        pass  # nothing to fetch: the cache already holds 0.0 from the publisher
    async with AssetsManager(storage=None, settings=_settings(tmp_path)) as am:
        assert am.store is None
        with pytest.raises(ConfigError, match="needs a store"):
            await am.versions("models/clf")
        with pytest.raises(ConfigError, match="needs a store"):
            await am.new(tmp_path, "models/other")


async def test_explicit_arguments_beat_settings(tmp_path: Path) -> None:
    store = InstrumentedStore(MemoryStore())
    await _published(tmp_path, store)
    async with AssetsManager(storage=store, settings=_settings(tmp_path)) as am:
        await am.fetch("models/clf:0.0")
    before = store.requests
    other_cache = tmp_path / "elsewhere"
    settings = _settings(tmp_path, offline=False, versioning="major_minor")
    async with AssetsManager(
        other_cache, storage=store, settings=settings, offline=True, versioning="major_minor"
    ) as am:
        assert am.assets_dir == other_cache
        with pytest.raises(Exception, match="offline mode"):
            await am.fetch("models/clf")  # the other cache is empty, and no request is made
    assert store.requests == before
    assert repr(am) == f"AssetsManager(assets_dir={str(other_cache)!r}, storage='memory://memory')"


async def test_a_lock_file_named_in_settings_is_honoured(tmp_path: Path) -> None:
    store = InstrumentedStore(MemoryStore())
    await _published(tmp_path, store)
    lock_path = tmp_path / "aiomodelkit.lock"
    async with AssetsManager(storage=store, settings=_settings(tmp_path)) as am:
        lock = await am.lock(["models/clf"], lock_path)
        await am.fetch("models/clf:0.0")
    assert await anyio.to_thread.run_sync(LockFile.load, lock_path) == lock
    before = store.requests
    settings = _settings(tmp_path, lock_file=lock_path)
    async with AssetsManager(storage=store, settings=settings) as am:
        fetched = await am.fetch("models/clf")
    assert (fetched.version, fetched.source) == ("0.0", "lock")
    assert store.requests == before  # the lock resolved it, the cache served it


@pytest.mark.parametrize("by", ["argument", "settings"])
async def test_forced_downloads_and_offline_mode_contradict(tmp_path: Path, by: str) -> None:
    store = InstrumentedStore(MemoryStore())
    await _published(tmp_path, store)
    forced = by == "settings"
    settings = _settings(tmp_path, force_download=forced, offline=True)
    before = store.requests
    async with AssetsManager(storage=store, settings=settings) as am:
        with pytest.raises(ConfigError, match="contradict each other"):
            await am.fetch("models/clf:0.0", force=None if forced else True)
        with pytest.raises(ConfigError, match="contradict each other"):
            await am.fetch_many(["models/clf:0.0"], force=None if forced else True)
        # Asked not to force, offline mode serves the cache (here: nothing cached).
        assert not (await am.fetch_many([], force=False))
    assert store.requests == before
