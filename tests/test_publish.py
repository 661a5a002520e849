"""Publishing and fetching through AssetsManager, against every store."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
import pytest
import xxhash

from aiomodelkit import (
    AssetExistsError,
    AssetNotFoundError,
    AssetsManager,
    ConfigError,
    Event,
    InvalidAssetSpecError,
    ObjectUploaded,
    Settings,
    __version__,
)
from aiomodelkit.stores import MemoryStore, Store
from aiomodelkit.stores._base import read_small_object
from aiomodelkit.testing import InstrumentedStore
from aiomodelkit.testing._instrumented import Fault, transient

if TYPE_CHECKING:
    from pathlib import Path

StoreFactory = Callable[..., Store]


def _store_of(am: AssetsManager) -> Store:
    """The manager's store, opened on first use (direct access for the test's own setup)."""
    assert am.store is not None
    return am.store


def _settings(tmp_path: Path) -> Settings:
    # fake-gcs-server ignores ifGenerationMatch: publishing there is the unsafe path (a
    # lease and a read-back); the other stores enforce conditions and ignore the setting.
    return Settings(
        assets_dir=tmp_path / "cache", pushed_by="alice@example", allow_unsafe_publish=True
    )


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".SUCCESS"
    }


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "weights.bin").write_bytes(os.urandom(200_000))
    (root / "config.json").write_text('{"layers": 3}')
    (root / "sub" / "vocab é.txt").write_text("a b c")
    (root / "sub" / "deeper" / "ファイル.txt").write_text("deep")
    return root


async def test_file_asset_round_trip(store_factory: StoreFactory, tmp_path: Path) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(os.urandom(123_456))
    async with AssetsManager(storage=store_factory(), settings=_settings(tmp_path)) as am:
        result = await am.new(source, "models/clf")
        fetched = await am.fetch("models/clf")
        again = await am.fetch("models/clf:0.0")
    assert (result.version, result.objects, result.size, result.is_directory) == (
        "0.0",
        1,
        123_456,
        False,
    )
    assert fetched.version == "0.0"
    assert fetched.path == tmp_path / "cache" / "models" / "clf" / "0.0"
    assert fetched.path.read_bytes() == source.read_bytes()
    assert (fetched.from_cache, fetched.size, fetched.objects) == (False, 123_456, 1)
    assert again.from_cache
    assert again.path == fetched.path


async def test_directory_asset_round_trip(
    store_factory: StoreFactory, tmp_path: Path, model_dir: Path
) -> None:
    async with AssetsManager(storage=store_factory(), settings=_settings(tmp_path)) as am:
        result = await am.new(model_dir, "category/deep/name/tok")
        fetched = await am.fetch("category/deep/name/tok:0.0")
        sub = await am.fetch("category/deep/name/tok:0[sub/deeper/ファイル.txt]")
        with pytest.raises(AssetNotFoundError, match=r"no file .sub/missing\.txt. in version 0\.0"):
            await am.fetch("category/deep/name/tok[sub/missing.txt]")
    assert result.is_directory
    assert result.objects == 4
    assert _tree(fetched.path) == _tree(model_dir)
    assert sub.path.read_text() == "deep"
    assert sub.from_cache


async def test_remote_layout_and_meta(
    store_factory: StoreFactory, tmp_path: Path, model_dir: Path
) -> None:
    async with AssetsManager(storage=store_factory(), settings=_settings(tmp_path)) as am:
        store = _store_of(am)
        await am.new(model_dir, "models/tok")
        await am.update(model_dir / "weights.bin", "models/tok")
        keys = sorted([info.key async for info in store.list_objects("models/")])
        index = json.loads(await read_small_object(store, "models/tok.versions"))
        dir_meta = json.loads(await read_small_object(store, "models/tok/0.0.meta"))
        file_meta = json.loads(await read_small_object(store, "models/tok/0.1.meta"))
        parsed = await am.meta("models/tok", "0.0")
    assert keys == sorted(
        [
            "models/tok.versions",
            "models/tok/0.0.meta",
            "models/tok/0.0/config.json",
            "models/tok/0.0/sub/deeper/ファイル.txt",
            "models/tok/0.0/sub/vocab é.txt",
            "models/tok/0.0/weights.bin",
            "models/tok/0.1",
            "models/tok/0.1.meta",
        ]
    )
    assert index == {"versions": ["0.1", "0.0"]}
    # modelkit's three fields, exactly as it writes them...
    assert list(dir_meta)[:3] == ["push_date", "is_directory", "contents"]
    assert dir_meta["is_directory"] is True
    assert dir_meta["contents"] == [
        "config.json",
        "sub/deeper/ファイル.txt",
        "sub/vocab é.txt",
        "weights.bin",
    ]
    assert dir_meta["push_date"].endswith("+00:00")
    assert "." in dir_meta["push_date"]
    # ...plus ours: who, which aiomodelkit, and a size, SHA-256 and XXH3-128 per object.
    assert dir_meta["pushed_by"] == "alice@example"
    assert dir_meta["aiomodelkit_version"] == __version__
    weights = (model_dir / "weights.bin").read_bytes()
    digests = {
        "size": 200_000,
        "sha256": hashlib.sha256(weights).hexdigest(),
        "xxh3_128": xxhash.xxh3_128(weights).hexdigest(),
    }
    assert dir_meta["files"]["weights.bin"] == digests
    vocab = (model_dir / "sub" / "vocab é.txt").read_bytes()
    assert dir_meta["files"]["sub/vocab é.txt"]["xxh3_128"] == xxhash.xxh3_128(vocab).hexdigest()
    assert file_meta["is_directory"] is False
    assert {k: file_meta[k] for k in digests} == digests
    assert parsed.pushed_by == "alice@example"
    assert parsed.total_size == 200_000 + 13 + 5 + 4


async def test_update_versions_and_resolution(store_factory: StoreFactory, tmp_path: Path) -> None:
    source = tmp_path / "v.txt"
    async with AssetsManager(storage=store_factory(), settings=_settings(tmp_path)) as am:
        published = []
        for step in range(12):
            source.write_text(f"v{step}")
            if step == 0:
                published.append((await am.new(source, "m")).version)
            elif step == 10:
                published.append((await am.update(source, "m", bump_major=True)).version)
            else:
                published.append((await am.update(source, "m")).version)
        source.write_text("back to major 0")
        published.append((await am.update(source, "m", major="0")).version)
        versions = await am.versions("m")
        latest_zero = await am.fetch("m:0")
        latest_one = await am.fetch("m:1")
        newest = await am.fetch("m")
        with pytest.raises(AssetNotFoundError) as missing:
            await am.fetch("m:7")
    assert published == [f"0.{i}" for i in range(10)] + ["1.0", "1.1", "0.10"]
    assert versions == ["1.1", "1.0", "0.10", *[f"0.{i}" for i in range(9, -1, -1)]]
    assert latest_zero.version == "0.10"
    assert latest_zero.path.read_text() == "back to major 0"
    assert latest_one.version == "1.1"
    assert newest.version == "1.1"
    assert missing.value.available_versions == tuple(versions)


async def test_new_refuses_existing_asset(store_factory: StoreFactory, tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_text("a")
    async with AssetsManager(storage=store_factory(), settings=_settings(tmp_path)) as am:
        await am.new(source, "models/a")
        with pytest.raises(AssetExistsError) as info:
            await am.new(source, "models/a")
    assert info.value.asset == "models/a"


async def test_update_needs_existing_asset(store_factory: StoreFactory, tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_text("a")
    async with AssetsManager(storage=store_factory(), settings=_settings(tmp_path)) as am:
        with pytest.raises(AssetNotFoundError) as info:
            await am.update(source, "models/absent")
        with pytest.raises(AssetNotFoundError):
            await am.versions("models/absent")
    assert info.value.key == "models/absent.versions"


async def test_directory_versions_are_immutable(
    store_factory: StoreFactory, tmp_path: Path, model_dir: Path
) -> None:
    """modelkit lets a directory version be published twice; a leftover object blocks it here."""
    async with AssetsManager(storage=store_factory(), settings=_settings(tmp_path)) as am:
        store = _store_of(am)
        # A directory version 0.1 half-written by a crashed publisher: data, no meta, no index.
        await store.put("models/dir/0.0.meta", b'{"is_directory": true, "contents": []}')
        with pytest.raises(AssetExistsError, match=r"0\.0"):
            await am.new(model_dir, "models/dir")
        await store.put("models/dir.versions", b'{"versions": ["0.0"]}')
        await store.put("models/dir/0.1/config.json", b"{}")
        result = await am.update(model_dir, "models/dir")
        versions = await am.versions("models/dir")
    assert result.version == "0.2"
    assert versions == ["0.2", "0.0"]


async def test_dry_run_writes_nothing(
    store_factory: StoreFactory, tmp_path: Path, model_dir: Path
) -> None:
    async with AssetsManager(storage=store_factory(), settings=_settings(tmp_path)) as am:
        store = _store_of(am)
        result = await am.new(model_dir, "models/dry", dry_run=True)
        assert [info.key async for info in store.list_objects()] == []
        await am.new(model_dir, "models/dry")
        planned = await am.update(model_dir, "models/dry", bump_major=True, dry_run=True)
        versions = await am.versions("models/dry")
    assert (result.version, result.dry_run, result.objects) == ("0.0", True, 4)
    assert planned.version == "1.0"
    assert versions == ["0.0"]


async def test_concurrent_updates_lose_no_version(
    store_factory: StoreFactory, tmp_path: Path
) -> None:
    # On fake-gcs-server (conditions ignored) the racers take turns under the lease.
    store = store_factory()
    sources = []
    for index in range(4):
        source = tmp_path / f"src-{index}.txt"
        source.write_text(f"content {index}")
        sources.append(source)
    async with AssetsManager(storage=store, settings=_settings(tmp_path)) as am:
        await am.new(sources[0], "models/race")
        results = []

        async def publish(source: Path) -> None:
            results.append(await am.update(source, "models/race"))

        async with anyio.create_task_group() as tg:
            for source in sources[1:]:
                tg.start_soon(publish, source)
        versions = await am.versions("models/race")
        contents = {(await am.fetch(f"models/race:{r.version}")).path.read_text() for r in results}
    assert sorted(r.version for r in results) == ["0.1", "0.2", "0.3"]
    assert versions == ["0.3", "0.2", "0.1", "0.0"]
    assert contents == {"content 1", "content 2", "content 3"}


async def test_list_assets(store_factory: StoreFactory, tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_text("a")
    async with AssetsManager(storage=store_factory(), settings=_settings(tmp_path)) as am:
        for name in ["b/two", "a/one", "c"]:
            await am.new(source, name)
        assert await am.list_assets() == ["a/one", "b/two", "c"]


async def test_upload_progress_events(
    store_factory: StoreFactory, tmp_path: Path, model_dir: Path
) -> None:
    events: list[Event] = []
    async with AssetsManager(
        storage=store_factory(), settings=_settings(tmp_path), on_event=events.append
    ) as am:
        await am.new(model_dir, "models/progress")
    uploaded = [e for e in events if isinstance(e, ObjectUploaded)]
    assert sorted(e.key for e in uploaded) == sorted(
        f"models/progress/0.0/{p}" for p in _tree(model_dir)
    )
    assert sum(e.size for e in uploaded) == sum(len(b) for b in _tree(model_dir).values())


async def test_bad_inputs(tmp_path: Path) -> None:
    async with AssetsManager(storage=None, settings=_settings(tmp_path)) as am:
        with pytest.raises(ConfigError, match="needs a store"):
            await am.versions("models/a")
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    async with AssetsManager(storage=store_dir.as_uri(), settings=_settings(tmp_path)) as am:
        with pytest.raises(InvalidAssetSpecError):
            await am.new(tmp_path, "models/../escape")
        with pytest.raises(ConfigError, match="nothing to publish"):
            await am.new(tmp_path / "missing", "models/a")
        (tmp_path / "empty").mkdir()
        with pytest.raises(ConfigError, match="holds no file"):
            await am.new(tmp_path / "empty", "models/a")
    assert [p.name for p in store_dir.iterdir()] == []


@pytest.mark.seaweedfs
async def test_concurrent_updates_on_seaweedfs(
    seaweedfs_store_factory: StoreFactory, tmp_path: Path, model_dir: Path
) -> None:
    """A real S3 gateway enforcing If-None-Match / If-Match: six racing updates, no version lost."""
    store = seaweedfs_store_factory()
    async with AssetsManager(storage=store, settings=_settings(tmp_path)) as am:
        await am.new(model_dir, "models/race")
        results = []

        async def publish(index: int) -> None:
            source = tmp_path / f"src-{index}.txt"
            await anyio.Path(source).write_text(f"content {index}")
            results.append(await am.update(source, "models/race"))

        async with anyio.create_task_group() as tg:
            for index in range(6):
                tg.start_soon(publish, index)
        versions = await am.versions("models/race")
        fetched = {r.version: await am.fetch(f"models/race:{r.version}") for r in results}
    assert sorted(r.version for r in results) == [f"0.{i}" for i in range(1, 7)]
    assert versions == [f"0.{i}" for i in range(6, -1, -1)]
    contents = sorted(f.path.read_text() for f in fetched.values())
    assert contents == [f"content {i}" for i in range(6)]


@pytest.mark.parametrize(
    "fault",
    [{"truncate_after": 3}, {"fail": transient()}],
    ids=["truncated body", "503"],
)
async def test_the_index_read_of_a_publish_is_retried(
    tmp_path: Path, fault: dict[str, object]
) -> None:
    """Issue 14, item 5: one truncated response to the .versions read failed a whole publish."""
    store = InstrumentedStore(MemoryStore())
    source = tmp_path / "w.bin"
    source.write_bytes(b"weights")
    settings = Settings(assets_dir=tmp_path / "cache", pushed_by="t", retry_backoff=0.001)
    async with AssetsManager(storage=store, settings=settings) as am:
        await am.new(source, "models/clf")
        store.inject(Fault(lambda key: key.endswith(".versions"), times=1, **fault))  # type: ignore[arg-type]
        before = store.count("read", ".versions")
        assert (await am.update(source, "models/clf")).version == "0.1"
        assert await am.versions("models/clf") == ["0.1", "0.0"]
    assert store.count("read", ".versions") - before >= 3  # the retry, then the index rewrite
