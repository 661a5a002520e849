"""A hostile or broken store never writes outside the cache, and secrets never leak."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

import pytest

from aiomodelkit import (
    AssetNotFoundError,
    AssetsManager,
    Event,
    InvalidAssetSpecError,
    InvalidStoreDataError,
    ModelkitError,
    Settings,
    StoreError,
)
from aiomodelkit.stores import S3Store

if TYPE_CHECKING:
    from pathlib import Path

    from aiomodelkit.testing import MotoServer


def _outside_tree(tmp_path: Path) -> set[str]:
    return {
        p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if "cache" not in p.parts
    }


@pytest.fixture
def store_root(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    root.mkdir()
    return root


async def _fetch(store_root: Path, tmp_path: Path, spec: str) -> object:
    settings = Settings(assets_dir=tmp_path / "cache")
    async with AssetsManager(storage=store_root.as_uri(), settings=settings) as am:
        return await am.fetch(spec)


def _write(root: Path, key: str, data: bytes | str) -> None:
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())


@pytest.mark.parametrize(
    "contents",
    [
        ["../../escaped.txt"],
        # (a single leading "/" is how older modelkit stores wrote relative paths: it is
        # read as relative, so "/etc/x" lands inside the asset, never in /etc)
        ["a\\..\\..\\escaped.txt"],
        ["a//b.txt"],
        ["x\u0000y"],
        ["deep/" + "x" * 300 + ".txt"],
        ["C:/escaped.txt"],
    ],
)
async def test_hostile_meta_contents_are_refused(
    store_root: Path, tmp_path: Path, contents: list[str]
) -> None:
    _write(store_root, "evil.versions", json.dumps({"versions": ["0.0"]}))
    _write(store_root, "evil/0.0.meta", json.dumps({"is_directory": True, "contents": contents}))
    before = _outside_tree(tmp_path)
    with pytest.raises(InvalidStoreDataError) as info:
        await _fetch(store_root, tmp_path, "evil:0.0")
    assert info.value.asset == "evil"
    assert _outside_tree(tmp_path) == before
    assert not (tmp_path / "cache" / "evil" / "0.0").exists()


@pytest.mark.parametrize(
    "spec",
    [
        "../evil",
        "/abs/evil",
        "a\\b",
        "a//b",
        "a/./b",
        "evil:../0.0",
        "evil:0.0[../../x]",
        "e\u0000",
    ],
)
async def test_hostile_specs_are_refused_before_any_io(
    store_root: Path, tmp_path: Path, spec: str
) -> None:
    with pytest.raises(InvalidAssetSpecError):
        await _fetch(store_root, tmp_path, spec)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*evil*"))


async def test_symlinked_object_in_a_local_store_is_refused(
    store_root: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not copy me")
    _write(store_root, "evil.versions", json.dumps({"versions": ["0.0"]}))
    _write(store_root, "evil/0.0.meta", json.dumps({"is_directory": False}))
    (store_root / "evil" / "0.0").symlink_to(secret)
    with pytest.raises(InvalidStoreDataError, match="symlink"):
        await _fetch(store_root, tmp_path, "evil:0.0")
    assert not (tmp_path / "cache" / "evil" / "0.0").exists()


async def test_meta_listing_missing_objects(store_root: Path, tmp_path: Path) -> None:
    _write(store_root, "gaps.versions", json.dumps({"versions": ["0.0"]}))
    _write(store_root, "gaps/0.0.meta", json.dumps({"is_directory": True, "contents": ["a", "b"]}))
    _write(store_root, "gaps/0.0/a", b"present")
    with pytest.raises(AssetNotFoundError) as info:
        await _fetch(store_root, tmp_path, "gaps:0.0")
    assert info.value.key == "gaps/0.0/b"
    assert info.value.asset == "gaps"
    assert not (tmp_path / "cache" / "gaps" / "0.0").exists()
    assert not [p for p in (tmp_path / "cache").rglob("*") if ".incomplete-" in p.name]


async def test_huge_metadata_is_refused_with_bounded_memory(
    store_root: Path, tmp_path: Path
) -> None:
    # 20 MiB of JSON in an index: refused after reading at most the 16 MiB allowed.
    _write(store_root, "huge.versions", b'{"versions": ["' + b"1" * (20 * 1024 * 1024) + b'"]}')
    with pytest.raises(InvalidStoreDataError, match="larger than"):
        await _fetch(store_root, tmp_path, "huge")


SECRET = "sEcReT-key-9f8e7d6c5b4a"


async def test_credentials_never_leak(
    moto_server: MotoServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Not in logs (at DEBUG, botocore's included), errors, reprs or progress events."""
    moto_server.reset()
    moto_server.create_bucket("bucket")
    events: list[Event] = []
    texts: list[str] = []
    store = S3Store(
        "bucket",
        endpoint_url=moto_server.endpoint_url,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
    )
    down = S3Store(
        "bucket",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
    )
    source = tmp_path / "m.bin"
    source.write_bytes(b"model")
    settings = Settings(assets_dir=tmp_path / "cache", retry_backoff=0.001, max_attempts=2)
    with caplog.at_level(logging.DEBUG):
        async with AssetsManager(storage=store, settings=settings, on_event=events.append) as am:
            texts.append(repr(am))
            await am.new(source, "models/clf")
            await am.fetch("models/clf")
            for spec in ("models/absent", "models/clf:9.9"):
                with pytest.raises(ModelkitError) as info:
                    await am.fetch(spec)
                texts += [str(info.value), repr(info.value)]
        async with AssetsManager(storage=down, settings=settings, on_event=events.append) as am:
            with pytest.raises(StoreError) as info:
                await am.fetch("models/other")
            texts += [str(info.value), repr(info.value), repr(am), repr(down)]
    texts += [record.getMessage() for record in caplog.records]
    texts += [repr(record.__dict__) for record in caplog.records]
    texts += [repr(event) for event in events]
    assert len(caplog.records) > 10  # botocore did log at DEBUG
    assert not [text for text in texts if SECRET in text]
