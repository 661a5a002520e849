"""LocalStore specifics: the filesystem is a trust boundary too."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

import anyio
import anyio.from_thread
import anyio.to_thread
import pytest

from aiomodelkit import (
    AssetNotFoundError,
    BucketNotFoundError,
    InvalidStoreDataError,
    PreconditionFailedError,
    StoreError,
    StorePermissionError,
)
from aiomodelkit.stores import LocalStore

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(
    "key", ["../outside", "a/../../outside", "/etc/passwd", "a//b", "a\\b", "a/./b", "x\x00y", ""]
)
async def test_unsafe_keys_are_refused(tmp_path: Path, key: str) -> None:
    root = tmp_path / "store"
    root.mkdir()
    async with LocalStore(root) as store:
        with pytest.raises(InvalidStoreDataError) as info:
            await store.put(key, b"x")
        with pytest.raises(InvalidStoreDataError):
            await store.stat(key)
    assert info.value.key == key
    assert sorted([p.name async for p in anyio.Path(tmp_path).iterdir()]) == ["store"]


async def test_symlink_out_of_the_store_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "store"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret").write_text("secret")
    (root / "models").symlink_to(outside)
    async with LocalStore(root) as store:
        with pytest.raises(InvalidStoreDataError, match="symlink"):
            await store.stat("models/secret")
        with pytest.raises(InvalidStoreDataError, match="symlink"):
            await store.put("models/new", b"x")
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]


async def test_missing_root_is_a_missing_bucket(tmp_path: Path) -> None:
    async with LocalStore(tmp_path / "absent") as store:
        with pytest.raises(BucketNotFoundError):
            await store.stat("a")
        with pytest.raises(BucketNotFoundError):
            await store.put("a", b"x")
        with pytest.raises(BucketNotFoundError):
            _ = [info async for info in store.list_objects()]
    assert not (tmp_path / "absent").exists()


async def test_directory_key_is_not_an_object(tmp_path: Path) -> None:
    async with LocalStore(tmp_path) as store:
        await store.put("a/b", b"x")
        with pytest.raises(AssetNotFoundError):
            await store.stat("a")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
async def test_permission_denied(tmp_path: Path) -> None:
    async with LocalStore(tmp_path) as store:
        await store.put("locked/x", b"x")
        (tmp_path / "locked").chmod(0o000)
        try:
            with pytest.raises(StorePermissionError):
                await store.stat("locked/x")
        finally:
            (tmp_path / "locked").chmod(0o755)


async def test_write_errors_are_store_errors(tmp_path: Path) -> None:
    async with LocalStore(tmp_path) as store:
        await store.put("file", b"x")
        # "file" is a file, so "file/child" cannot be created: ENOTDIR, not a crash.
        with pytest.raises(StoreError):
            await store.put("file/child", b"y")


async def test_temporary_files_never_show(tmp_path: Path) -> None:
    async with LocalStore(tmp_path) as store:
        await store.put("a", b"x")
        (tmp_path / ".a.aiomodelkit-tmp-deadbeef").write_bytes(b"partial")
        assert [info.key async for info in store.list_objects()] == ["a"]


async def test_conditional_create_across_threads(tmp_path: Path) -> None:
    """Eight writers race to create one key: exactly one wins, from any thread or process."""
    store = LocalStore(tmp_path)
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def writer(index: int) -> None:
        barrier.wait()
        try:
            anyio.from_thread.run(lambda: store.put("race", f"{index}".encode(), if_absent=True))
        except PreconditionFailedError:
            outcomes.append("lost")
        else:
            outcomes.append("won")

    async with store, anyio.create_task_group() as tg:
        for index in range(8):
            tg.start_soon(anyio.to_thread.run_sync, writer, index)
    assert sorted(outcomes) == ["lost"] * 7 + ["won"]
    assert len([p async for p in anyio.Path(tmp_path).iterdir() if not p.name.startswith(".")]) == 1
