"""Fetches verify each object with the meta's XXH3-128, else SHA-256, else the store's MD5,
and say which one in the result, the audit record and the FetchFinished event (issue 17)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from aiomodelkit import AssetsManager, Event, FetchFinished, IntegrityError, Settings
from aiomodelkit.stores import MemoryStore, Store
from aiomodelkit.stores._base import MiB, read_small_object

if TYPE_CHECKING:
    from pathlib import Path

StoreFactory = Callable[..., Store]


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "assets_dir": tmp_path / "cache",
        "retry_backoff": 0.001,
        "retry_backoff_max": 0.01,
        # ranged GETs from 1 MiB on, so that both download paths are exercised
        "range_threshold": MiB,
        "range_part_size": MiB,
        # fake-gcs-server ignores ifGenerationMatch: publishing there takes the unsafe path
        "allow_unsafe_publish": True,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


def _nothing_left(cache: Path, name: str, version: str) -> bool:
    staging = [p for p in cache.rglob("*") if ".incomplete-" in p.name]
    return not (cache / name / version).exists() and not staging


async def _edit_meta(store: Store, key: str, edit: Callable[[dict[str, Any]], None]) -> None:
    meta = json.loads(await read_small_object(store, key))
    edit(meta)
    await store.put(key, json.dumps(meta).encode())


async def _flip_a_byte(store: Store, key: str, at: int) -> None:
    data = bytearray(await read_small_object(store, key))
    data[at] ^= 0x01
    await store.put(key, bytes(data))


@pytest.fixture
def sources(tmp_path: Path) -> tuple[Path, Path]:
    """A file asset above the range threshold, and a directory asset of small files."""
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * MiB + 5))
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.bin").write_bytes(os.urandom(1000))
    (tree / "sub" / "b.txt").write_text("b")
    return big, tree


async def test_every_object_is_verified_with_xxh3_128(
    store_factory: StoreFactory,
    tmp_path: Path,
    sources: tuple[Path, Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    big, tree = sources
    events: list[Event] = []
    async with AssetsManager(
        storage=store_factory(), settings=_settings(tmp_path), on_event=events.append
    ) as am:
        await am.new(big, "models/big")
        await am.new(tree, "models/tree")
        with caplog.at_level(logging.INFO, logger="aiomodelkit"):
            ranged = await am.fetch("models/big:0.0")
            streamed = await am.fetch("models/tree:0.0")
            hit = await am.fetch("models/tree:0.0")
    assert ranged.path.read_bytes() == big.read_bytes()
    assert (ranged.verified_with, streamed.verified_with) == ("xxh3_128", "xxh3_128")
    assert hit.from_cache
    assert hit.verified_with is None  # nothing downloaded by this call
    records = [r.aiomodelkit for r in caplog.records if hasattr(r, "aiomodelkit")]
    assert [r["verified_with"] for r in records] == ["xxh3_128", "xxh3_128", None]
    finished = [e for e in events if isinstance(e, FetchFinished)]
    assert [e.verified_with for e in finished] == ["xxh3_128", "xxh3_128", None]


@pytest.mark.parametrize("path", ["ranged", "streamed"])
async def test_a_corrupt_byte_fails_the_fast_checksum(
    store_factory: StoreFactory, tmp_path: Path, sources: tuple[Path, Path], path: str
) -> None:
    big, tree = sources
    async with AssetsManager(storage=store_factory(), settings=_settings(tmp_path)) as am:
        store = am.store
        assert store is not None
        if path == "ranged":
            name, key = "models/big", "models/big/0.0"
            await am.new(big, name)
            await _flip_a_byte(store, key, 2 * MiB + 3)  # same size, one bit off
        else:
            name, key = "models/tree", "models/tree/0.0/a.bin"
            await am.new(tree, name)
            await _flip_a_byte(store, key, 999)
        with pytest.raises(IntegrityError) as info:
            await am.fetch(f"{name}:0.0")
    assert "XXH3-128 does not match the meta" in str(info.value)
    assert (info.value.asset, info.value.key) == (name, key)
    assert _nothing_left(tmp_path / "cache", name, "0.0")


async def test_the_fast_checksum_is_the_one_verified(tmp_path: Path) -> None:
    source = tmp_path / "m.bin"
    source.write_bytes(b"model")
    async with AssetsManager(storage=MemoryStore(), settings=_settings(tmp_path)) as am:
        store = am.store
        assert store is not None
        await am.new(source, "models/a")
        await am.new(source, "models/b")
        # A wrong SHA-256 is not even computed; a wrong XXH3-128 is refused.
        await _edit_meta(store, "models/a/0.0.meta", lambda m: m.update(sha256="0" * 64))
        await _edit_meta(store, "models/b/0.0.meta", lambda m: m.update(xxh3_128="0" * 32))
        fetched = await am.fetch("models/a:0.0")
        with pytest.raises(IntegrityError, match="XXH3-128 does not match the meta") as info:
            await am.fetch("models/b:0.0")
    assert (fetched.path.read_bytes(), fetched.verified_with) == (b"model", "xxh3_128")
    assert info.value.key == "models/b/0.0"
    assert _nothing_left(tmp_path / "cache", "models/b", "0.0")


async def test_a_meta_without_xxh3_128_falls_back_to_sha256(
    tmp_path: Path, sources: tuple[Path, Path]
) -> None:
    big, tree = sources

    def older(meta: dict[str, Any]) -> None:  # as aiomodelkit wrote metas before issue 17
        meta.pop("xxh3_128", None)
        for entry in meta.get("files", {}).values():
            entry.pop("xxh3_128")

    async with AssetsManager(storage=MemoryStore(), settings=_settings(tmp_path)) as am:
        store = am.store
        assert store is not None
        for name, source in (("models/big", big), ("models/tree", tree), ("models/bad", big)):
            await am.new(source, name)
            await _edit_meta(store, f"{name}/0.0.meta", older)
        ranged = await am.fetch("models/big:0.0")
        streamed = await am.fetch("models/tree:0.0")
        await _flip_a_byte(store, "models/bad/0.0", 17)
        with pytest.raises(IntegrityError, match="SHA-256 does not match the meta"):
            await am.fetch("models/bad:0.0")
    assert (ranged.verified_with, streamed.verified_with) == ("sha256", "sha256")
    assert _nothing_left(tmp_path / "cache", "models/bad", "0.0")


async def test_a_modelkit_meta_is_verified_with_the_store_s_md5_else_by_size(
    tmp_path: Path,
) -> None:
    modelkit_meta = b'{"push_date": "2024-01-01T00:00:00.000000+00:00", "is_directory": false}'
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    for storage in (MemoryStore(), store_dir.as_uri()):  # the local store keeps no MD5
        async with AssetsManager(storage=storage, settings=_settings(tmp_path)) as am:
            store = am.store
            assert store is not None
            await store.put("models/mk.versions", b'{"versions": ["0.0"]}')
            await store.put("models/mk/0.0.meta", modelkit_meta)
            await store.put("models/mk/0.0", b"weights")
            fetched = await am.fetch("models/mk:0.0", force=True)
        assert fetched.path.read_bytes() == b"weights"
        assert fetched.verified_with == ("md5" if isinstance(storage, MemoryStore) else "size")


async def test_under_a_lock_file_sha256_is_verified(tmp_path: Path) -> None:
    source = tmp_path / "m.bin"
    source.write_bytes(b"model")
    lock_path = tmp_path / "aiomodelkit.lock"
    store = MemoryStore()
    async with AssetsManager(storage=store, settings=_settings(tmp_path)) as am:
        await am.new(source, "models/clf")
        await am.lock(["models/clf"], lock_path)
    settings = _settings(tmp_path, lock_file=lock_path, assets_dir=tmp_path / "other")
    async with AssetsManager(storage=store, settings=settings) as am:
        fetched = await am.fetch("models/clf")
    # The lock pins SHA-256 digests: XXH3-128, no cryptographic hash, cannot uphold them.
    assert (fetched.source, fetched.verified_with) == ("lock", "sha256")
