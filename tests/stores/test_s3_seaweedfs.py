"""S3Store against SeaweedFS: real credential checks and enforced conditional writes."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import pytest

from aiomodelkit import AssetNotFoundError, PreconditionFailedError, StorePermissionError
from aiomodelkit.stores import S3Store, Store
from aiomodelkit.stores._base import MiB

from ._helpers import SECRET, StoreFactory, _assert_no_secret, _collect, _read

if TYPE_CHECKING:
    from collections.abc import Awaitable
    from pathlib import Path

    from aiomodelkit.testing import SeaweedFSServer


def _seaweed_store(server: SeaweedFSServer, *, access_key: str, secret: str) -> S3Store:
    return S3Store(
        "tests",
        "auth",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
    )


@pytest.mark.seaweedfs
@pytest.mark.parametrize("wrong", ["secret", "access_key"])
async def test_bad_credentials_are_permission_errors(
    seaweedfs_server: SeaweedFSServer, wrong: str
) -> None:
    access_key, secret = seaweedfs_server.access_key, seaweedfs_server.secret_key
    if wrong == "secret":
        secret = SECRET
    else:
        access_key = "AKUNKNOWN0000000"
    async with _seaweed_store(seaweedfs_server, access_key=access_key, secret=secret) as store:
        operations: list[Awaitable[object]] = [
            store.stat("missing"),  # must not look like "not found"
            _read(store, "missing"),
            store.put("k", b"x"),
            _collect(store.list_objects()),
        ]
        for operation in operations:
            with pytest.raises(StorePermissionError) as info:
                await operation
            assert not isinstance(info.value, AssetNotFoundError)
            _assert_no_secret(info.value, store)


@pytest.mark.seaweedfs
async def test_seaweedfs_enforces_conditional_puts(seaweedfs_store_factory: StoreFactory) -> None:
    async with seaweedfs_store_factory() as store:
        first = await store.put("index.versions", b"[1]", if_absent=True)
        with pytest.raises(PreconditionFailedError):
            await store.put("index.versions", b"[2]", if_absent=True)
        second = await store.put("index.versions", b"[1, 2]", if_match=first.version_token)
        with pytest.raises(PreconditionFailedError):
            await store.put("index.versions", b"[1, 3]", if_match=first.version_token)
        # SeaweedFS answers 412 to IfMatch on a missing key (AWS and moto: 404).
        with pytest.raises(PreconditionFailedError):
            await store.put("gone", b"x", if_match=second.version_token)
        assert await _read(store, "index.versions") == b"[1, 2]"


@pytest.mark.seaweedfs
async def test_seaweedfs_enforces_conditions_on_multipart_uploads(
    seaweedfs_server: SeaweedFSServer, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(5 * MiB + 1))
    store = S3Store(
        "tests",
        "multipart",
        endpoint_url=seaweedfs_server.endpoint_url,
        aws_access_key_id=seaweedfs_server.access_key,
        aws_secret_access_key=seaweedfs_server.secret_key,
        region_name="us-east-1",
        multipart_threshold=5 * MiB,
        multipart_part_size=5 * MiB,
    )
    async with store:
        await store.delete("big")
        first = await store.put("big", source, if_absent=True)
        assert first.etag is not None
        assert first.etag.endswith("-2")
        with pytest.raises(PreconditionFailedError):
            await store.put("big", source, if_absent=True)
        with pytest.raises(PreconditionFailedError):
            await store.put("big", source, if_match="0" * 32)
        second = await store.put("big", source, if_match=first.version_token)
        assert (await store.stat("big")).etag == second.etag


@pytest.mark.seaweedfs
async def test_concurrent_read_modify_write_loses_no_update(
    seaweedfs_store_factory: StoreFactory,
) -> None:
    writers, items = 3, 5
    conflicts = 0

    async def append(store: Store, writer: int) -> None:
        nonlocal conflicts
        for item in range(items):
            while True:
                try:
                    info = await store.stat("log.json")
                    token = info.version_token
                    content = json.loads(await _read(store, "log.json", if_match=token))
                    content.append(f"{writer}-{item}")
                    await store.put("log.json", json.dumps(content).encode(), if_match=token)
                    break
                except PreconditionFailedError:
                    conflicts += 1  # someone else wrote in between: read again
                    await anyio.sleep(0.001 * writer)

    async with seaweedfs_store_factory() as store:
        await store.put("log.json", b"[]", if_absent=True)
        async with anyio.create_task_group() as group:
            for writer in range(writers):
                group.start_soon(append, store, writer)
        final = json.loads(await _read(store, "log.json"))
    assert sorted(final) == sorted(f"{w}-{i}" for w in range(writers) for i in range(items))
    assert conflicts > 0  # the writers really raced


@pytest.mark.seaweedfs
@pytest.mark.parametrize(
    "key", ["sp ace/x+y=z&q?.bin", "ünï/çødé ☃.txt", "a//b/%2F~!*'().txt", "dir/.meta"]
)
async def test_signed_reads_of_awkward_keys(
    seaweedfs_store_factory: StoreFactory, key: str
) -> None:
    # SeaweedFS checks signatures: the presigned URL must be sent exactly as it was signed.
    data = key.encode() * 3
    async with seaweedfs_store_factory() as store:
        await store.put(key, data)
        assert await _read(store, key) == data
        assert await _read(store, key, offset=2, length=5) == data[2:7]
