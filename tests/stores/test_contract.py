"""The store contract, run against every store: memory, local, S3 (moto), GCS (fake-gcs-server)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
import pytest

from aiomodelkit import (
    AssetNotFoundError,
    InvalidStoreDataError,
    NotModifiedError,
    PreconditionFailedError,
    StoreError,
    StoreUnavailableError,
)
from aiomodelkit.stores import GCSStore, ObjectInfo, Store, StoreOptions
from aiomodelkit.stores._base import MiB, read_small_object, read_small_object_info

if TYPE_CHECKING:
    from pathlib import Path

StoreFactory = Callable[..., Store]


async def _read(store: Store, key: str, **kwargs: int | str | None) -> bytes:
    async with store.read(key, **kwargs) as chunks:  # type: ignore[arg-type]
        return b"".join([chunk async for chunk in chunks])


def _enforces_conditions(store: Store) -> bool:
    # fake-gcs-server 1.54 ignores ifGenerationMatch (tests/stores/test_gcs.py shows it);
    # real GCS enforces it.
    return not isinstance(store, GCSStore)


async def test_put_stat_read_round_trip(store_factory: StoreFactory) -> None:
    data = os.urandom(10_000)
    async with store_factory() as store:
        written = await store.put("models/clf/1.0", data)
        info = await store.stat("models/clf/1.0")
        assert await _read(store, "models/clf/1.0") == data
    assert isinstance(info, ObjectInfo)
    assert info.key == "models/clf/1.0"
    assert info.size == written.size == len(data)
    assert info.version_token is not None
    if info.md5 is not None:
        assert info.md5 == hashlib.md5(data).hexdigest()


async def test_put_from_file(store_factory: StoreFactory, tmp_path: Path) -> None:
    source = tmp_path / "weights.bin"
    source.write_bytes(os.urandom(3 * MiB + 17))
    async with store_factory() as store:
        await store.put("models/big/0.0", source)
        assert await _read(store, "models/big/0.0") == source.read_bytes()


async def test_empty_object(store_factory: StoreFactory) -> None:
    async with store_factory() as store:
        await store.put("empty/0.0", b"")
        assert (await store.stat("empty/0.0")).size == 0
        assert await _read(store, "empty/0.0") == b""


async def test_reads_stream_in_configured_chunks(store_factory: StoreFactory) -> None:
    data = os.urandom(3 * 256 * 1024 + 5)
    async with store_factory(StoreOptions(chunk_size=256 * 1024)) as store:
        await store.put("chunks/0.0", data)
        async with store.read("chunks/0.0") as chunks:
            sizes = [len(chunk) async for chunk in chunks]
    assert sum(sizes) == len(data)
    assert max(sizes) <= 256 * 1024
    assert len(sizes) >= 4


@pytest.mark.parametrize(
    ("offset", "length", "expected"),
    [
        (0, 10, slice(0, 10)),
        (100, None, slice(100, None)),
        (990, 50, slice(990, 1000)),
        (1000, None, slice(0, 0)),
    ],
)
async def test_ranged_reads(
    store_factory: StoreFactory, offset: int, length: int | None, expected: slice
) -> None:
    data = os.urandom(1000)
    async with store_factory() as store:
        await store.put("ranges/0.0", data)
        if offset == len(data):
            # A range starting exactly at the end: either empty or refused, never garbage.
            try:
                got = await _read(store, "ranges/0.0", offset=offset, length=length)
            except StoreError:
                return
            assert got == b""
            return
        assert await _read(store, "ranges/0.0", offset=offset, length=length) == data[expected]


async def test_range_past_end_is_an_error(store_factory: StoreFactory) -> None:
    async with store_factory() as store:
        await store.put("ranges/0.0", b"0123456789")
        with pytest.raises(StoreError) as info:
            await _read(store, "ranges/0.0", offset=50, length=5)
    assert not isinstance(info.value, AssetNotFoundError)


async def test_missing_object(store_factory: StoreFactory) -> None:
    async with store_factory() as store:
        with pytest.raises(AssetNotFoundError) as stat_info:
            await store.stat("nope/0.0")
        with pytest.raises(AssetNotFoundError) as read_info:
            await _read(store, "nope/0.0")
    for error in (stat_info.value, read_info.value):
        assert error.key == "nope/0.0"
        assert error.store_url == store.url
        assert isinstance(error, FileNotFoundError)


async def test_unicode_and_deep_keys(store_factory: StoreFactory) -> None:
    keys = [
        "catégorie/modèle/0.0/données/é.txt",
        "a/b/c/d/e/f/g/h/i/j/0.0/ファイル 1+2#?.bin",
        "deep/" + "/".join(f"level{i}" for i in range(30)) + "/leaf.txt",
    ]
    async with store_factory() as store:
        for index, key in enumerate(keys):
            await store.put(key, f"payload {index}".encode())
        for index, key in enumerate(keys):
            assert await _read(store, key) == f"payload {index}".encode()
        listed = [info.key async for info in store.list_objects()]
    assert sorted(listed) == sorted(keys)


async def test_list_is_a_string_prefix(store_factory: StoreFactory) -> None:
    keys = [
        "models/clf.versions",
        "models/clf/0.0",
        "models/clf/0.0.meta",
        "models/clfx/0.0",
        "other/x",
    ]
    async with store_factory() as store:
        for key in keys:
            await store.put(key, b"x")
        assert [i.key async for i in store.list_objects("models/clf")] == [
            "models/clf.versions",
            "models/clf/0.0",
            "models/clf/0.0.meta",
            "models/clfx/0.0",
        ]
        assert [i.key async for i in store.list_objects("models/clf/")] == [
            "models/clf/0.0",
            "models/clf/0.0.meta",
        ]
        assert [i.key async for i in store.list_objects("absent/")] == []
        sizes = {i.key: i.size async for i in store.list_objects()}
    assert sizes == dict.fromkeys(keys, 1)


async def _put_many(store: Store, keys: list[str]) -> None:
    limiter = anyio.CapacityLimiter(32)

    async def put(key: str) -> None:
        async with limiter:
            await store.put(key, b"")

    async with anyio.create_task_group() as tg:
        for key in keys:
            tg.start_soon(put, key)


async def test_listing_follows_pagination(store_factory: StoreFactory) -> None:
    keys = [f"many/0.0/file-{i:02d}" for i in range(23)]
    async with store_factory(StoreOptions(list_page_size=5)) as store:
        await _put_many(store, keys)
        listed = [info.key async for info in store.list_objects("many/")]
    assert listed == keys


async def test_listing_more_than_1000_objects(store_factory: StoreFactory) -> None:
    keys = [f"big-dir/0.0/f{i:04d}" for i in range(1003)]
    async with store_factory() as store:
        await _put_many(store, keys)
        listed = [info.key async for info in store.list_objects("big-dir/")]
    assert listed == keys


async def test_overwrite_changes_version_token(store_factory: StoreFactory) -> None:
    async with store_factory() as store:
        first = await store.put("index.versions", b'{"versions": ["0.0"]}')
        second = await store.put("index.versions", b'{"versions": ["0.1", "0.0"]}')
        assert first.version_token != second.version_token
        assert (await store.stat("index.versions")).version_token == second.version_token


async def test_conditional_create(store_factory: StoreFactory) -> None:
    async with store_factory() as store:
        await store.put("c/0.0", b"first", if_absent=True)
        if not _enforces_conditions(store):
            pytest.skip("fake-gcs-server ignores ifGenerationMatch")
        with pytest.raises(PreconditionFailedError):
            await store.put("c/0.0", b"second", if_absent=True)
        assert await _read(store, "c/0.0") == b"first"


async def test_conditional_update(store_factory: StoreFactory) -> None:
    async with store_factory() as store:
        first = await store.put("c.versions", b"1")
        second = await store.put("c.versions", b"2", if_match=first.version_token)
        if not _enforces_conditions(store):
            pytest.skip("fake-gcs-server ignores ifGenerationMatch")
        with pytest.raises(PreconditionFailedError):
            await store.put("c.versions", b"3", if_match=first.version_token)
        assert await _read(store, "c.versions") == b"2"
        assert (await store.stat("c.versions")).version_token == second.version_token


async def test_pinned_read_detects_replacement(store_factory: StoreFactory) -> None:
    async with store_factory() as store:
        first = await store.put("p/0.0", b"old content")
        assert first.version_token is not None
        assert await _read(store, "p/0.0", if_match=first.version_token) == b"old content"
        await store.put("p/0.0", b"new content, another size")
        with pytest.raises(PreconditionFailedError):
            await _read(store, "p/0.0", if_match=first.version_token)


async def test_delete(store_factory: StoreFactory) -> None:
    async with store_factory() as store:
        await store.put("d/0.0", b"x")
        await store.delete("d/0.0")
        await store.delete("d/0.0")  # deleting a missing key is not an error
        with pytest.raises(AssetNotFoundError):
            await store.stat("d/0.0")


async def test_read_small_object_is_bounded(store_factory: StoreFactory) -> None:
    async with store_factory() as store:
        await store.put("huge.versions", b"x" * 5000)
        with pytest.raises(InvalidStoreDataError, match="larger than"):
            await read_small_object(store, "huge.versions", max_size=1000)
        assert await read_small_object(store, "huge.versions", max_size=5000) == b"x" * 5000


async def test_url_and_close(store_factory: StoreFactory) -> None:
    store = store_factory()
    assert "://" in store.url
    async with store:
        await store.put("x", b"1")
    await store.aclose()  # idempotent


async def test_read_reports_the_whole_object(store_factory: StoreFactory) -> None:
    data = os.urandom(5000)
    async with store_factory() as store:
        written = await store.put("info/0.0", data)
        async with store.read("info/0.0", offset=1000, length=10) as stream:
            body = b"".join([chunk async for chunk in stream])
            info = stream.info
        async with store.read("info/0.0") as whole:
            whole_info = whole.info  # leaving without reading the body must be fine
    assert body == data[1000:1010]
    assert info.size == whole_info.size == 5000
    assert info.version_token == whole_info.version_token == written.version_token
    for seen in (info, whole_info):
        if seen.md5 is not None:
            assert seen.md5 == hashlib.md5(data).hexdigest()


# -- conditional reads (if_none_match): what a version watch re-reads every interval ----------

INDEX = "models/clf.versions"


async def test_unchanged_object_is_not_modified(store_factory: StoreFactory) -> None:
    async with store_factory() as store:
        await store.put(INDEX, b'{"versions": ["0.0"]}')
        token = (await store.stat(INDEX)).version_token
        assert token is not None
        with pytest.raises(NotModifiedError) as caught:
            await _read(store, INDEX, if_none_match=token)
        assert await _read(store, INDEX) == b'{"versions": ["0.0"]}'  # nothing left half-read
    error = caught.value
    assert (error.token, error.key, error.store_url) == (token, INDEX, store.url)
    assert str(error).startswith(f"not modified since {token}")
    assert isinstance(error, StoreError)
    assert not isinstance(error, StoreUnavailableError)  # never retried


async def test_changed_object_is_read_with_its_new_token(store_factory: StoreFactory) -> None:
    async with store_factory() as store:
        await store.put(INDEX, b'{"versions": ["0.0"]}')
        old = (await store.stat(INDEX)).version_token
        await store.put(INDEX, b'{"versions": ["0.1", "0.0"]}')
        data, info = await read_small_object_info(store, INDEX, if_none_match=old)
        current = (await store.stat(INDEX)).version_token
    assert data == b'{"versions": ["0.1", "0.0"]}'
    assert info.key == INDEX
    assert info.size == len(data)
    assert info.version_token == current != old


async def test_conditional_read_of_a_missing_object(store_factory: StoreFactory) -> None:
    async with store_factory() as store:
        await store.put(INDEX, b"{}")
        token = (await store.stat(INDEX)).version_token
        assert token is not None
        await store.delete(INDEX)
        with pytest.raises(AssetNotFoundError) as caught:
            await read_small_object_info(store, INDEX, if_none_match=token)
    assert caught.value.key == INDEX


async def test_read_small_object_info_gives_the_next_token(store_factory: StoreFactory) -> None:
    async with store_factory() as store:
        await store.put(INDEX, b'{"versions": ["0.0"]}')
        data, info = await read_small_object_info(store, INDEX)
        assert data == b'{"versions": ["0.0"]}'
        assert info.version_token is not None
        for _ in range(2):  # and again: an unchanged object stays "not modified"
            with pytest.raises(NotModifiedError) as caught:
                await read_small_object_info(store, INDEX, if_none_match=info.version_token)
            assert caught.value.token == info.version_token
        # The plain read is the same one, minus the token.
        assert await read_small_object(store, INDEX) == data


@pytest.mark.parametrize(
    "extra",
    [{"if_match": "1"}, {"offset": 1}, {"length": 3}, {"offset": 0, "length": 3}],
    ids=["if_match", "offset", "length", "range"],
)
async def test_if_none_match_is_for_whole_object_reads(
    store_factory: StoreFactory, extra: dict[str, int | str]
) -> None:
    async with store_factory() as store:
        await store.put(INDEX, b"{}")
        token = (await store.stat(INDEX)).version_token
        with pytest.raises(ValueError, match="if_none_match"):
            await _read(store, INDEX, if_none_match=token, **extra)
