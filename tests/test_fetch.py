"""The download engine: resolution costs, ranges, retries, atomicity, single-flight, offline."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import pytest

from aiomodelkit import (
    AssetNotFoundError,
    AssetPublished,
    AssetsManager,
    AssetSpec,
    DownloadError,
    DownloadStarted,
    Event,
    IntegrityError,
    ObjectDownloaded,
    Settings,
    StoreUnavailableError,
)
from aiomodelkit._events import Retrying
from aiomodelkit._fetch import FetchBatch
from aiomodelkit.stores import LocalStore, MemoryStore, S3Store, Store
from aiomodelkit.stores._base import MiB
from aiomodelkit.testing import Fault, InstrumentedStore, transient

StoreFactory = Callable[..., Store]


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "assets_dir": tmp_path / "cache",
        "retry_backoff": 0.001,
        "retry_backoff_max": 0.01,
        # fake-gcs-server ignores ifGenerationMatch: publishing there takes the unsafe path
        "allow_unsafe_publish": True,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


def _staging_left(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*") if ".incomplete-" in p.name or ".replaced-" in p.name]


@pytest.fixture
def many_files(tmp_path: Path) -> Path:
    root = tmp_path / "many"
    for index in range(300):
        sub = root / f"d{index % 7}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{index:03d}.bin").write_bytes(os.urandom(100 + index))
    return root


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and p.name != ".SUCCESS"
    }


async def test_many_object_asset(
    store_factory: StoreFactory, tmp_path: Path, many_files: Path
) -> None:
    events: list[Event] = []
    store = store_factory()
    async with AssetsManager(
        storage=store, settings=_settings(tmp_path), on_event=events.append
    ) as am:
        await am.new(many_files, "models/many")
        fetched = await am.fetch("models/many")
    assert _tree(fetched.path) == _tree(many_files)
    assert fetched.objects == 300
    assert len([e for e in events if isinstance(e, ObjectDownloaded)]) == 300
    assert next(e for e in events if isinstance(e, AssetPublished)).path == fetched.path
    assert _staging_left(tmp_path / "cache") == []


async def test_large_object_by_ranges(store_factory: StoreFactory, tmp_path: Path) -> None:
    data = os.urandom(5 * MiB + 12345)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    inner = store_factory()
    store = InstrumentedStore(inner)
    settings = _settings(tmp_path, range_threshold=MiB, range_part_size=MiB)
    async with AssetsManager(storage=store, settings=settings) as am:
        await am.new(source, "models/big")
        reads_before = store.count("read", "models/big/0.0")
        stats_before = store.count("stat", "models/big/0.0")
        fetched = await am.fetch("models/big:0.0")
    assert hashlib.sha256(fetched.path.read_bytes()).digest() == hashlib.sha256(data).digest()
    # One HEAD (size and version token), then six pinned ranged GETs.
    assert store.count("stat", "models/big/0.0") - stats_before == 1
    assert store.count("read", "models/big/0.0") - reads_before == 6


class _PeakReads(InstrumentedStore):
    """Counts reads in flight (each held open a little, so that overlap shows)."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.in_flight = 0
        self.peak = 0

    def read(self, key: str, **kwargs: Any) -> Any:
        outer: Any = super().read(key, **kwargs)
        store = self

        class _Held:
            async def __aenter__(self) -> Any:
                store.in_flight += 1
                store.peak = max(store.peak, store.in_flight)
                await anyio.sleep(0.02)
                return await outer.__aenter__()

            async def __aexit__(self, *exc: object) -> Any:
                store.in_flight -= 1
                return await outer.__aexit__(*exc)

        return _Held()


@pytest.mark.parametrize("ranges", [1, 3])
async def test_range_concurrency_bounds_the_ranges_of_one_object(
    tmp_path: Path, ranges: int
) -> None:
    data = os.urandom(8 * MiB + 5)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    store = _PeakReads(MemoryStore())
    settings = _settings(
        tmp_path, range_threshold=MiB, range_part_size=MiB, range_concurrency=ranges
    )
    async with AssetsManager(storage=store, settings=settings) as am:
        await am.new(source, "models/big")
        fetched = await am.fetch("models/big:0.0")
    assert fetched.path.read_bytes() == data
    assert store.peak == ranges  # 9 ranges, at most (and at some point exactly) this many at once


@pytest.mark.seaweedfs
async def test_large_object_by_ranges_on_seaweedfs(
    seaweedfs_store_factory: StoreFactory, tmp_path: Path
) -> None:
    data = os.urandom(9 * MiB + 7)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    settings = _settings(tmp_path, range_threshold=2 * MiB, range_part_size=2 * MiB)
    async with AssetsManager(storage=seaweedfs_store_factory(), settings=settings) as am:
        await am.new(source, "models/big")
        fetched = await am.fetch("models/big")
    assert fetched.path.read_bytes() == data


async def test_request_counts(store_factory: StoreFactory, tmp_path: Path) -> None:
    source = tmp_path / "m.bin"
    source.write_bytes(b"model")
    store = InstrumentedStore(store_factory())
    async with AssetsManager(storage=store, settings=_settings(tmp_path)) as am:
        await am.new(source, "models/clf")
        await am.update(source, "models/clf")
        first = store.requests
        cold = await am.fetch("models/clf:0.1")
        cold_cost = store.requests - first
        before = store.requests
        warm = await am.fetch("models/clf:0.1")
        pinned_cost = store.requests - before
        before = store.requests
        partial = await am.fetch("models/clf:0")
        partial_cost = store.requests - before
    assert not cold.from_cache
    assert cold_cost == 2
    assert warm.from_cache
    assert pinned_cost == 0
    assert partial.from_cache
    assert partial.version == "0.1"
    assert partial_cost == 1


async def test_offline_mode(tmp_path: Path) -> None:
    store = InstrumentedStore(MemoryStore())
    source = tmp_path / "m.bin"
    source.write_bytes(b"model")
    async with AssetsManager(storage=store, settings=_settings(tmp_path)) as am:
        await am.new(source, "models/clf")
        await am.update(source, "models/clf", bump_major=True)
        await am.fetch("models/clf:0.0")
    before = store.requests
    async with AssetsManager(storage=store, settings=_settings(tmp_path, offline=True)) as am:
        newest_cached = await am.fetch("models/clf")
        pinned = await am.fetch("models/clf:0.0")
        with pytest.raises(AssetNotFoundError, match="offline mode") as missing:
            await am.fetch("models/clf:1.0")
        with pytest.raises(AssetNotFoundError, match="offline mode"):
            await am.fetch("models/other")
    assert store.requests == before
    assert newest_cached.version == "0.0"
    assert newest_cached.source == "cache"
    assert pinned.from_cache
    assert missing.value.asset == "models/clf"


async def test_store_unreachable_falls_back_to_cache(
    tmp_path: Path, unreachable_s3: S3Store
) -> None:
    source = tmp_path / "m.bin"
    source.write_bytes(b"model")
    root = tmp_path / "store"
    root.mkdir()
    async with AssetsManager(storage=root.as_uri(), settings=_settings(tmp_path)) as am:
        await am.new(source, "models/clf")
        await am.fetch("models/clf")
    down = unreachable_s3
    async with AssetsManager(storage=down, settings=_settings(tmp_path)) as am:
        fallback = await am.fetch("models/clf:0")
        with pytest.raises(StoreUnavailableError):
            await am.fetch("models/absent")
    async with AssetsManager(
        storage=down, settings=_settings(tmp_path, offline_fallback=False)
    ) as am:
        with pytest.raises(StoreUnavailableError):
            await am.fetch("models/clf:0")
    assert (fallback.version, fallback.source, fallback.from_cache) == ("0.0", "fallback", True)


async def test_transient_errors_are_retried(tmp_path: Path) -> None:
    data = os.urandom(3 * MiB + 5)
    source = tmp_path / "m.bin"
    source.write_bytes(data)
    store = InstrumentedStore(MemoryStore())
    events: list[Event] = []
    settings = _settings(tmp_path, chunk_size=256 * 1024)
    async with AssetsManager(storage=store, settings=settings, on_event=events.append) as am:
        await am.new(source, "models/clf")
        is_data = lambda key: key == "models/clf/0.0"  # noqa: E731
        store.inject(Fault(is_data, times=2, fail=transient()))
        store.inject(Fault(is_data, times=1, truncate_after=MiB + 3))
        fetched = await am.fetch("models/clf:0.0")
    retries = [e for e in events if isinstance(e, Retrying)]
    assert fetched.path.read_bytes() == data
    assert [r.attempt for r in retries] == [1, 2, 3]
    assert "truncated" in retries[2].error.lower() or "ended after" in retries[2].error
    assert all(0 <= r.delay <= 0.01 for r in retries)
    # The truncated attempt resumed from its last byte instead of starting over.
    assert store.count("read", "models/clf/0.0") == 4


async def test_retries_are_bounded_and_permanent_errors_fail_at_once(tmp_path: Path) -> None:
    source = tmp_path / "m.bin"
    source.write_bytes(b"model")
    store = InstrumentedStore(MemoryStore())
    events: list[Event] = []
    settings = _settings(tmp_path, max_attempts=3)
    async with AssetsManager(storage=store, settings=settings, on_event=events.append) as am:
        await am.new(source, "models/clf")
        await am.new(source, "models/gone")
        store.inject(Fault(lambda k: k == "models/clf/0.0", times=10, fail=transient()))
        with pytest.raises(StoreUnavailableError) as info:
            await am.fetch("models/clf:0.0")
        assert store.inner is not None
        await store.delete("models/gone/0.0")
        with pytest.raises(AssetNotFoundError) as gone:
            await am.fetch("models/gone:0.0")
    assert store.count("read", "models/clf/0.0") == 3
    assert len([e for e in events if isinstance(e, Retrying)]) == 2
    assert info.value.asset == "models/clf"
    assert store.count("read", "models/gone/0.0") == 1
    assert gone.value.asset == "models/gone"
    assert _staging_left(tmp_path / "cache") == []
    assert not (tmp_path / "cache" / "models" / "clf" / "0.0").exists()


@pytest.mark.parametrize("corruption", ["same size", "other size"])
async def test_corrupted_object_is_refused(
    store_factory: StoreFactory, tmp_path: Path, many_files: Path, corruption: str
) -> None:
    async with AssetsManager(storage=store_factory(), settings=_settings(tmp_path)) as am:
        store = am.store
        assert store is not None
        await am.new(many_files, "models/many")
        key = "models/many/0.0/d3/f010.bin"
        original = (many_files / "d3" / "f010.bin").read_bytes()
        bad = os.urandom(len(original)) if corruption == "same size" else original + b"x"
        await store.put(key, bad)
        with pytest.raises(IntegrityError) as info:
            await am.fetch("models/many:0.0")
    assert info.value.asset == "models/many"
    assert info.value.key == key
    assert not (tmp_path / "cache" / "models" / "many" / "0.0").exists()
    assert _staging_left(tmp_path / "cache") == []


async def test_single_flight_and_dedup_in_fetch_many(tmp_path: Path, many_files: Path) -> None:
    store = InstrumentedStore(MemoryStore())
    events: list[Event] = []
    async with AssetsManager(
        storage=store, settings=_settings(tmp_path), on_event=events.append
    ) as am:
        await am.new(many_files, "models/many")
        await am.update(many_files, "models/many")
        index_reads = store.count("read", "models/many.versions")
        results = await am.fetch_many(
            ["models/many:0", "models/many:0.1", "models/many", "models/many:0.1[d1]"]
        )
        more: list[object] = []
        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(lambda: _append(more, am.fetch("models/many:0.0")))
    assert {r.version for r in results} == {"0.1"}
    assert len([e for e in events if isinstance(e, DownloadStarted)]) == 2  # 0.1 once, 0.0 once
    # One index read for the whole fetch_many, none for the pinned fetches after it.
    assert store.count("read", "models/many.versions") - index_reads == 1
    assert len(more) == 50
    assert results[3].path.name == "d1"


async def _append(target: list[object], awaitable: object) -> None:
    target.append(await awaitable)  # type: ignore[misc]


async def test_cancellation_leaves_nothing_partial(tmp_path: Path, many_files: Path) -> None:
    store = InstrumentedStore(MemoryStore())
    async with AssetsManager(storage=store, settings=_settings(tmp_path)) as am:
        await am.new(many_files, "models/many")
        store.inject(Fault(lambda k: k.endswith(".bin"), times=10_000, chunk_delay=0.01))
        tasks_before = len(asyncio.all_tasks())
        with anyio.move_on_after(0.05) as scope:
            await am.fetch("models/many")
        assert scope.cancelled_caught
        assert len(asyncio.all_tasks()) == tasks_before
        assert not (tmp_path / "cache" / "models" / "many" / "0.0").exists()
        assert _staging_left(tmp_path / "cache") == []
        store.faults.clear()
        fetched = await am.fetch("models/many")
    assert _tree(fetched.path) == _tree(many_files)


async def test_force_replaces_atomically(tmp_path: Path, many_files: Path) -> None:
    single = tmp_path / "one.bin"
    single.write_bytes(b"original")
    async with AssetsManager(storage=MemoryStore(), settings=_settings(tmp_path)) as am:
        await am.new(many_files, "models/dir")
        await am.new(single, "models/file")
        directory = await am.fetch("models/dir:0.0")
        file_asset = await am.fetch("models/file:0.0")
        (directory.path / "d1" / "f001.bin").write_bytes(b"tampered locally")
        file_asset.path.write_bytes(b"tampered locally")
        again = await am.fetch("models/dir:0.0")
        assert again.from_cache  # without force, the cache is trusted
        forced_dir = await am.fetch("models/dir:0.0", force=True)
        forced_file = await am.fetch("models/file:0.0", force=True)
    assert not forced_dir.from_cache
    assert _tree(forced_dir.path) == _tree(many_files)
    assert forced_file.path.read_bytes() == b"original"
    assert _staging_left(tmp_path / "cache") == []


async def test_partial_modelkit_download_is_not_a_cache_hit(
    tmp_path: Path, many_files: Path
) -> None:
    async with AssetsManager(storage=MemoryStore(), settings=_settings(tmp_path)) as am:
        await am.new(many_files, "models/many")
        # modelkit downloads in place and marks completion with .SUCCESS: none here.
        partial = tmp_path / "cache" / "models" / "many" / "0.0"
        partial.mkdir(parents=True)
        (partial / "half-written.bin").write_bytes(b"x")
        fetched = await am.fetch("models/many:0.0")
    assert not fetched.from_cache
    assert _tree(fetched.path) == _tree(many_files)


async def test_deadline(tmp_path: Path) -> None:
    source = tmp_path / "m.bin"
    source.write_bytes(os.urandom(MiB))
    store = InstrumentedStore(MemoryStore())
    async with AssetsManager(storage=store, settings=_settings(tmp_path)) as am:
        await am.new(source, "models/slow")
    store.inject(Fault(lambda k: k == "models/slow/0.0", chunk_delay=1.0))
    async with AssetsManager(storage=store, settings=_settings(tmp_path, fetch_deadline=0.1)) as am:
        with pytest.raises(DownloadError, match="fetch_deadline"):
            await am.fetch("models/slow")
    assert _staging_left(tmp_path / "cache") == []


async def test_audit_record(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = tmp_path / "m.bin"
    source.write_bytes(b"model")
    async with AssetsManager(storage=MemoryStore(), settings=_settings(tmp_path)) as am:
        await am.new(source, "models/clf")
        with caplog.at_level(logging.INFO, logger="aiomodelkit"):
            await am.fetch("models/clf:0")
            await am.fetch("models/clf:0.0")
    records = [r.aiomodelkit for r in caplog.records if hasattr(r, "aiomodelkit")]
    assert [r["source"] for r in records] == ["store", "cache"]
    assert records[0]["spec"] == "models/clf:0"
    assert records[0]["version"] == "0.0"
    assert records[0]["bytes"] == 5
    assert records[1]["bytes"] == 0
    expected = (
        "sha256:"
        + hashlib.sha256(f"\t{hashlib.sha256(b'model').hexdigest()}\n".encode()).hexdigest()
    )
    assert records[0]["checksum"] == records[1]["checksum"] == expected


_RACER = textwrap.dedent(
    """
    import sys, anyio
    from aiomodelkit import AssetsManager, Settings, ObjectDownloaded
    store, cache, go = sys.argv[1:]
    downloads = []
    def on_event(event):
        if isinstance(event, ObjectDownloaded):
            downloads.append(event.key)
    async def main():
        import os, time
        while not os.path.exists(go):
            time.sleep(0.001)
        settings = Settings(assets_dir=cache)
        async with AssetsManager(storage=store, settings=settings, on_event=on_event) as am:
            fetched = await am.fetch("models/many:0.0")
        print(len(downloads), fetched.path)
    anyio.run(main)
    """
)


async def test_processes_racing_download_once(tmp_path: Path, many_files: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    async with AssetsManager(storage=LocalStore(root), settings=_settings(tmp_path)) as am:
        await am.new(many_files, "models/many")
    go = tmp_path / "go"
    # Racing processes: the test only waits for them, nothing else runs on this loop.
    racers = [
        subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, "-c", _RACER, root.as_uri(), str(tmp_path / "shared-cache"), str(go)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    await anyio.sleep(0.5)
    go.touch()
    outputs = [racer.communicate(timeout=60)[0].split() for racer in racers]
    assert all(racer.returncode == 0 for racer in racers)
    assert sorted(int(count) for count, _ in outputs) == [0, 0, 0, 300]
    assert len({path for _, path in outputs}) == 1
    assert _tree(Path(outputs[0][1])) == _tree(many_files)
    assert _staging_left(tmp_path / "shared-cache") == []


async def test_fetch_many_reports_one_shared_download_however_late_a_spec_resolves(
    tmp_path: Path,
) -> None:
    # In fetch_many, models/d:0[w.bin] reads the meta to check its file before it joins the
    # download of models/d:0: if that read is slow, the download may be over before it joins.
    # It must still be reported as that download (same bytes), not as a cache hit: the
    # fetches of one batch share each version's outcome, in whatever order they run.
    store = InstrumentedStore(MemoryStore())
    source = tmp_path / "d"
    source.mkdir()
    (source / "w.bin").write_bytes(b"weights")
    async with AssetsManager(storage=store, settings=_settings(tmp_path / "pub")) as am:
        await am.new(source, "models/d")
    async with AssetsManager(storage=store, settings=_settings(tmp_path)) as am:
        fetcher, batch = am._fetcher(), FetchBatch()
        whole = await fetcher.fetch(AssetSpec.parse("models/d:0"), batch=batch)
        sub = await fetcher.fetch(AssetSpec.parse("models/d:0[w.bin]"), batch=batch)
        again = await fetcher.fetch(AssetSpec.parse("models/d:0[w.bin]"))  # another call
    assert (sub.from_cache, sub.size) == (whole.from_cache, whole.size) == (False, 7)
    assert (again.from_cache, again.size) == (True, 0)
    assert store.count("read", "models/d/0.0/w.bin") == 1  # one download
