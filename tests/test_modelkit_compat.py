"""Migration: stores and caches written by modelkit 0.1.3 work here, and the other way round.

Two kinds of proof: a store laid out by hand exactly as modelkit writes it (from its
documented layout), read through every store; and modelkit 0.1.3 itself, run in a
subprocess against a local store and against an Azurite container (its Azure driver:
``MODELKIT_STORAGE_PROVIDER=az``, ``AZURE_STORAGE_CONNECTION_STRING``), reading what we
publish and publishing what we read, with the very same object names either way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import anyio
import pytest
from azure.storage.blob.aio import ContainerClient

from aiomodelkit import AssetNotFoundError, AssetsManager, InvalidStoreDataError, Settings
from aiomodelkit.stores import AzureStore, LocalStore, Store

if TYPE_CHECKING:
    from pathlib import Path

    from aiomodelkit.testing import AzuriteServer

StoreFactory = Callable[..., Store]

_MODELKIT = textwrap.dedent(
    """
    import json, sys
    from modelkit.assets.manager import AssetsManager
    from modelkit.assets.remote import StorageProvider

    command, *args = sys.argv[1:]
    if command == "fetch":
        info = AssetsManager().fetch_asset(args[0], return_info=True)
        print(json.dumps({"path": info["path"], "version": info["version"]}))
    elif command == "versions":
        print(json.dumps(StorageProvider().get_versions_info(args[0])))
    elif command in ("new", "update"):
        path, name, version = args
        getattr(StorageProvider(), command)(path, name, version)
    """
)


def _run_modelkit(store: Mapping[str, str], cache: Path, *args: str) -> str:
    """Run modelkit 0.1.3 on the store its ``MODELKIT_STORAGE_*`` variables in ``store`` name."""
    env = {
        # modelkit's process needs a PATH and a HOME; nothing else of this environment.
        "PATH": os.environ["PATH"],  # noqa: TID251
        "HOME": os.environ["HOME"],  # noqa: TID251
        "MODELKIT_ASSETS_DIR": str(cache),
        **store,
    }
    done = subprocess.run(
        [sys.executable, "-c", _MODELKIT, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def _modelkit(store_root: Path, cache: Path, *args: str) -> str:
    """modelkit with its local driver on ``store_root`` (bucket + default prefix)."""
    local = {"MODELKIT_STORAGE_PROVIDER": "local", "MODELKIT_STORAGE_BUCKET": str(store_root)}
    return _run_modelkit(local, cache, *args)


def _modelkit_az(azurite: AzuriteServer, container: str, cache: Path, *args: str) -> str:
    """modelkit with its Azure driver on ``container`` (default prefix) of ``azurite``."""
    azure = {
        "MODELKIT_STORAGE_PROVIDER": "az",
        "MODELKIT_STORAGE_BUCKET": container,
        "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string,
    }
    return _run_modelkit(azure, cache, *args)


def _settings(tmp_path: Path, cache: str = "cache") -> Settings:
    return Settings(assets_dir=tmp_path / cache, pushed_by="tester")


async def _write_modelkit_store(store: Store) -> None:
    """The objects modelkit 0.1.3 writes, byte for byte in shape (reference §3)."""
    date = "2024-05-02T10:11:12.123456+00:00"
    objects = {
        "models/clf.versions": {"versions": ["10.0", "1.10", "1.2", "0.0"]},
        "models/clf/0.0.meta": {"push_date": date, "is_directory": False},
        "models/clf/1.2.meta": {"push_date": date, "is_directory": False},
        "models/clf/1.10.meta": {"push_date": date, "is_directory": False},
        "models/clf/10.0.meta": {"push_date": date, "is_directory": False},
        "models/tok.versions": {"versions": ["0.1", "0.0"]},
        # Current modelkit writes contents without a leading slash...
        "models/tok/0.1.meta": {
            "push_date": date,
            "is_directory": True,
            "contents": ["sub/merges.txt", "vocab.txt"],
        },
        # ...older stores wrote it with one.
        "models/tok/0.0.meta": {
            "push_date": date,
            "is_directory": True,
            "contents": ["/sub/merges.txt", "/vocab.txt"],
        },
    }
    for key, value in objects.items():
        await store.put(key, json.dumps(value).encode())
    for version in ("0.0", "1.2", "1.10", "10.0"):
        await store.put(f"models/clf/{version}", f"clf {version}".encode())
    for version in ("0.0", "0.1"):
        await store.put(f"models/tok/{version}/vocab.txt", f"vocab {version}".encode())
        await store.put(f"models/tok/{version}/sub/merges.txt", f"merges {version}".encode())


async def test_reads_a_store_laid_out_by_modelkit(
    store_factory: StoreFactory, tmp_path: Path
) -> None:
    store = store_factory()
    async with store:
        await _write_modelkit_store(store)
    async with AssetsManager(storage=store, settings=_settings(tmp_path)) as am:
        assert await am.list_assets() == ["models/clf", "models/tok"]
        assert await am.versions("models/clf") == ["10.0", "1.10", "1.2", "0.0"]
        one = await am.fetch("models/clf:1")
        ten = await am.fetch("models/clf:10")
        newest = await am.fetch("models/clf")
        old_tok = await am.fetch("models/tok:0.0[sub/merges.txt]")
        new_tok = await am.fetch("models/tok:0")
        meta = await am.meta("models/tok", "0.0")
    # name:1 is the newest 1.x, compared numerically, and never 10.x (modelkit's bug).
    assert (one.version, one.path.read_text()) == ("1.10", "clf 1.10")
    # modelkit's metas record no sizes: the bytes reported are the bytes received.
    assert (one.size, one.objects) == (len("clf 1.10"), 1)
    assert (new_tok.size, new_tok.objects) == (len("vocab 0.1") + len("merges 0.1"), 2)
    # No checksum in modelkit's metas: the store's MD5 is checked, where it keeps one.
    checked = "size" if isinstance(store, LocalStore) else "md5"
    assert one.verified_with == new_tok.verified_with == checked
    assert ten.version == newest.version == "10.0"
    assert old_tok.path.read_text() == "merges 0.0"
    assert (new_tok.path / "vocab.txt").read_text() == "vocab 0.1"
    assert meta.pushed_by is None
    assert meta.push_date is not None
    assert [f.path for f in meta.files] == ["sub/merges.txt", "vocab.txt"]


@pytest.mark.parametrize(
    ("meta", "match"),
    [
        (b"not json", "not valid JSON"),
        (b"[]", "JSON object"),
        (b'{"push_date": "x", "is_directory": true, "contents": []}', "ISO-8601"),
        (b'{"is_directory": "yes"}', "boolean is_directory"),
        (b'{"is_directory": true, "contents": ["../../etc/passwd"]}', r"'\.\.' segment"),
        (b'{"is_directory": true, "contents": ["a\\\\b"]}', "backslash"),
        (b'{"is_directory": true, "contents": ["a//b"]}', "empty path segment"),
        (b'{"is_directory": true, "contents": ["a", "a/b"]}', "a file and a directory"),
        (b'{"is_directory": true, "contents": ["x\\u0000y"]}', "NUL"),
        (b'{"is_directory": false, "size": -1}', "byte count"),
        (b'{"is_directory": false, "sha256": "abc"}', "hex digest"),
    ],
)
async def test_hostile_or_broken_meta_is_refused(tmp_path: Path, meta: bytes, match: str) -> None:
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    async with AssetsManager(storage=store_dir.as_uri(), settings=_settings(tmp_path)) as am:
        assert am.store is not None
        await am.store.put("evil.versions", b'{"versions": ["0.0"]}')
        await am.store.put("evil/0.0.meta", meta)
        await am.store.put("evil/0.0", b"data")
        with pytest.raises(InvalidStoreDataError, match=match) as info:
            await am.fetch("evil:0.0")
    assert info.value.asset == "evil"
    assert not (tmp_path / "cache" / "evil" / "0.0").exists()
    assert not (tmp_path / "etc").exists()


@pytest.mark.parametrize(
    "index",
    [b'{"versions": "0.0"}', b'{"versions": ["0.0", "../x"]}', b'{"versions": [1]}', b"{}"],
)
async def test_broken_index_is_refused(tmp_path: Path, index: bytes) -> None:
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    async with AssetsManager(storage=store_dir.as_uri(), settings=_settings(tmp_path)) as am:
        assert am.store is not None
        await am.store.put("bad.versions", index)
        with pytest.raises(InvalidStoreDataError) as info:
            await am.fetch("bad")
    assert info.value.key == "bad.versions"


async def test_modelkit_reads_what_we_publish(tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    store_root = bucket / "modelkit-assets"
    store_root.mkdir(parents=True)
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "weights.bin").write_bytes(b"w" * 1000)
    (model / "sub" / "vocab.txt").write_text("vocab")
    single = tmp_path / "single.bin"
    single.write_bytes(b"single")
    async with AssetsManager(storage=store_root.as_uri(), settings=_settings(tmp_path)) as am:
        await am.new(model, "models/tok")
        await am.update(model, "models/tok")
        await am.new(single, "models/one")
    # Our metas carry fields modelkit never wrote (sizes, SHA-256 and XXH3-128): it reads them.
    dir_meta = json.loads((store_root / "models" / "tok" / "0.1.meta").read_bytes())
    file_meta = json.loads((store_root / "models" / "one" / "0.0.meta").read_bytes())
    assert set(dir_meta["files"]["weights.bin"]) == {"size", "sha256", "xxh3_128"}
    assert {"size", "sha256", "xxh3_128"} <= set(file_meta)
    modelkit_cache = tmp_path / "modelkit-cache"
    modelkit_cache.mkdir()
    versions = json.loads(_modelkit(bucket, modelkit_cache, "versions", "models/tok"))
    tok = json.loads(_modelkit(bucket, modelkit_cache, "fetch", "models/tok:0[sub/vocab.txt]"))
    one = json.loads(_modelkit(bucket, modelkit_cache, "fetch", "models/one"))
    assert versions == ["0.1", "0.0"]
    assert tok["version"] == "0.1"
    assert await anyio.Path(tok["path"]).read_text() == "vocab"
    assert one["version"] == "0.0"
    assert await anyio.Path(one["path"]).read_bytes() == b"single"

    # And a cache populated by modelkit (with its .SUCCESS markers) is a valid cache here.
    async with AssetsManager(storage=None, settings=Settings(assets_dir=modelkit_cache)) as offline:
        cached = await offline.fetch("models/tok:0.1[sub/vocab.txt]")
        with pytest.raises(AssetNotFoundError):
            await offline.fetch("models/tok:0.0")
    assert cached.from_cache
    assert cached.path.read_text() == "vocab"


async def test_we_read_what_modelkit_publishes(tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    store_root = bucket / "modelkit-assets"
    store_root.mkdir(parents=True)
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "sub" / "vocab.txt").write_text("vocab")
    (model / "weights.bin").write_bytes(b"w" * 100)
    single = tmp_path / "single.bin"
    single.write_bytes(b"one")
    cache = tmp_path / "modelkit-cache"
    cache.mkdir()
    _modelkit(bucket, cache, "new", str(model), "models/tok", "0.0")
    _modelkit(bucket, cache, "update", str(single), "models/tok", "1.0")
    async with AssetsManager(storage=store_root.as_uri(), settings=_settings(tmp_path)) as am:
        versions = await am.versions("models/tok")
        meta = await am.meta("models/tok", "0.0")
        directory = await am.fetch("models/tok:0[sub/vocab.txt]")
        file_asset = await am.fetch("models/tok")
        update = await am.update(single, "models/tok", bump_major=True)
    assert versions == ["1.0", "0.0"]
    assert meta.is_directory
    assert {f.path for f in meta.files} == {"sub/vocab.txt", "weights.bin"}
    assert all(f.sha256 is None for f in meta.files)  # modelkit records no checksums
    assert all(f.xxh3_128 is None for f in meta.files)
    # Nothing to check but sizes: the local store keeps no MD5 either.
    assert directory.verified_with == file_asset.verified_with == "size"
    assert directory.path.read_text() == "vocab"
    assert file_asset.version == "1.0"
    assert file_asset.path.read_bytes() == b"one"
    assert update.version == "2.0"
    assert json.loads(_modelkit(bucket, cache, "versions", "models/tok")) == ["2.0", "1.0", "0.0"]


# -- Azure ------------------------------------------------------------------------------


def _store(azurite: AzuriteServer, container: str) -> AzureStore:
    return AzureStore(container, connection_string=azurite.connection_string)


async def _blob_names(azurite: AzuriteServer, container: str) -> list[str]:
    async with ContainerClient.from_connection_string(
        azurite.connection_string, container
    ) as client:
        return [name async for name in client.list_blob_names()]


def _model(tmp_path: Path) -> tuple[Path, Path]:
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "weights.bin").write_bytes(b"w" * 1000)
    (model / "sub" / "vocab.txt").write_text("vocab")
    single = tmp_path / "single.bin"
    single.write_bytes(b"single")
    return model, single


_LAYOUT = [
    "modelkit-assets/models/one.versions",
    "modelkit-assets/models/one/0.0",
    "modelkit-assets/models/one/0.0.meta",
    "modelkit-assets/models/tok.versions",
    "modelkit-assets/models/tok/0.0.meta",
    "modelkit-assets/models/tok/0.0/sub/vocab.txt",
    "modelkit-assets/models/tok/0.0/weights.bin",
    "modelkit-assets/models/tok/0.1.meta",
    "modelkit-assets/models/tok/0.1/sub/vocab.txt",
    "modelkit-assets/models/tok/0.1/weights.bin",
]


async def test_modelkit_reads_what_we_publish_on_azure(
    azurite_server: AzuriteServer, tmp_path: Path
) -> None:
    container = f"mk-{uuid.uuid4().hex[:16]}"
    azurite_server.create_container(container)
    model, single = _model(tmp_path)
    settings = Settings(assets_dir=tmp_path / "cache", pushed_by="tester")
    async with AssetsManager(storage=_store(azurite_server, container), settings=settings) as am:
        await am.new(model, "models/tok")
        await am.update(model, "models/tok")
        await am.new(single, "models/one")
    assert sorted(await _blob_names(azurite_server, container)) == _LAYOUT
    cache = tmp_path / "modelkit-cache"
    cache.mkdir()
    run = (azurite_server, container, cache)
    versions = json.loads(
        await anyio.to_thread.run_sync(_modelkit_az, *run, "versions", "models/tok")
    )
    tok = json.loads(
        await anyio.to_thread.run_sync(_modelkit_az, *run, "fetch", "models/tok:0[sub/vocab.txt]")
    )
    one = json.loads(await anyio.to_thread.run_sync(_modelkit_az, *run, "fetch", "models/one"))
    assert versions == ["0.1", "0.0"]
    assert tok["version"] == "0.1"
    assert await anyio.Path(tok["path"]).read_text() == "vocab"
    assert one["version"] == "0.0"
    assert await anyio.Path(one["path"]).read_bytes() == b"single"


async def test_we_read_what_modelkit_publishes_on_azure(
    azurite_server: AzuriteServer, tmp_path: Path
) -> None:
    container = f"mk-{uuid.uuid4().hex[:16]}"
    azurite_server.create_container(container)
    model, single = _model(tmp_path)
    cache = tmp_path / "modelkit-cache"
    cache.mkdir()
    run = (azurite_server, container, cache)
    await anyio.to_thread.run_sync(_modelkit_az, *run, "new", str(model), "models/tok", "0.0")
    await anyio.to_thread.run_sync(_modelkit_az, *run, "update", str(model), "models/tok", "0.1")
    await anyio.to_thread.run_sync(_modelkit_az, *run, "new", str(single), "models/one", "0.0")
    # The very names we would have written.
    assert sorted(await _blob_names(azurite_server, container)) == _LAYOUT
    settings = Settings(assets_dir=tmp_path / "cache", pushed_by="tester")
    async with AssetsManager(storage=_store(azurite_server, container), settings=settings) as am:
        versions = await am.versions("models/tok")
        meta = await am.meta("models/tok", "0.0")
        directory = await am.fetch("models/tok:0[sub/vocab.txt]")
        file_asset = await am.fetch("models/one")
        update = await am.update(single, "models/one", bump_major=True)
    assert versions == ["0.1", "0.0"]
    assert meta.is_directory
    assert {f.path for f in meta.files} == {"sub/vocab.txt", "weights.bin"}
    assert directory.version == "0.1"
    assert directory.path.read_text() == "vocab"
    assert file_asset.path.read_bytes() == b"single"
    assert update.version == "1.0"
    versions_after = await anyio.to_thread.run_sync(_modelkit_az, *run, "versions", "models/one")
    assert json.loads(versions_after) == ["1.0", "0.0"]
