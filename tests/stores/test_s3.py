"""S3-specific behaviour of S3Store against moto (the shared contract is in test_contract.py).

SeaweedFS serves the tests that need real credential checks and enforced conditional
writes (test_s3_seaweedfs.py); a tiny in-test HTTP server injects what neither can
(test_s3_faults.py).
"""

from __future__ import annotations

import gzip
import hashlib
import os
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import pytest
from aiobotocore.session import AioSession  # type: ignore[import-untyped]

from aiomodelkit import (
    AssetNotFoundError,
    BucketNotFoundError,
    PreconditionFailedError,
    StoreError,
    StoreUnavailableError,
)
from aiomodelkit.stores import ObjectInfo, S3Store, StoreOptions
from aiomodelkit.stores._base import MiB
from aiomodelkit.stores._registry import open_store
from aiomodelkit.stores._s3_client import PlainJSONFileLoader, _needs_path_style
from aiomodelkit.testing._process import free_port

from ._helpers import SECRET, StoreFactory, _assert_no_secret, _collect, _moto_store, _read

if TYPE_CHECKING:
    from collections.abc import Awaitable
    from pathlib import Path

    from aiomodelkit.testing import MotoServer


# -- reads ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "length", "expected"),
    [
        (0, None, b"0123456789"),
        (0, 3, b"012"),
        (4, None, b"456789"),
        (4, 100, b"456789"),  # an end past EOF is clamped
        (9, 1, b"9"),
        (10, None, b""),  # exactly at the end: S3 answers 416, we yield nothing
        (10, 5, b""),
        (3, 0, b""),  # length 0: no GET at all
    ],
)
async def test_ranged_reads(
    s3_store_factory: StoreFactory, offset: int, length: int | None, expected: bytes
) -> None:
    async with s3_store_factory() as store:
        await store.put("r", b"0123456789")
        assert await _read(store, "r", offset=offset, length=length) == expected


@pytest.mark.parametrize(("offset", "length"), [(11, None), (50, 5), (11, 0), (-1, None)])
async def test_range_outside_the_object_is_a_store_error(
    s3_store_factory: StoreFactory, offset: int, length: int | None
) -> None:
    async with s3_store_factory() as store:
        await store.put("r", b"0123456789")
        with pytest.raises(StoreError, match=r"beyond|invalid range") as info:
            await _read(store, "r", offset=offset, length=length)
    assert type(info.value) is StoreError
    assert info.value.key == "r"


async def test_empty_range_still_checks_the_key_and_pin(s3_store_factory: StoreFactory) -> None:
    async with s3_store_factory() as store:
        with pytest.raises(AssetNotFoundError):
            await _read(store, "missing", length=0)
        await store.put("empty", b"")
        assert await _read(store, "empty", offset=0, length=4) == b""
        with pytest.raises(PreconditionFailedError):
            await _read(store, "empty", offset=0, length=4, if_match="0" * 32)


async def test_reads_use_large_chunks(s3_store_factory: StoreFactory) -> None:
    data = os.urandom(2 * MiB)
    async with s3_store_factory(StoreOptions(chunk_size=MiB)) as store:
        await store.put("big", data)
        async with store.read("big") as chunks:
            sizes = [len(chunk) async for chunk in chunks]
    assert sum(sizes) == len(data)
    assert max(sizes) <= MiB
    # aiobotocore's default iteration would give 2,048 chunks of 1 KiB.
    assert len(sizes) < 256


async def test_undrained_bodies_release_their_connections(moto_server: MotoServer) -> None:
    moto_server.reset()
    moto_server.create_bucket("bucket")
    store = _moto_store(moto_server, options=StoreOptions(max_connections=2, chunk_size=1024))
    async with store:
        await store.put("obj", os.urandom(256 * 1024))
        for _ in range(6):  # three times the pool: a leaked connection would block here
            with anyio.fail_after(10):
                async with store.read("obj") as chunks:
                    async for _chunk in chunks:
                        break
        with anyio.fail_after(10):
            assert (await store.stat("obj")).size == 256 * 1024


# -- metadata and listing -------------------------------------------------------------------


async def test_stat_describes_simple_uploads(s3_store_factory: StoreFactory) -> None:
    async with s3_store_factory() as store:
        written = await store.put("models/a/0.0", b"payload")
        info = await store.stat("models/a/0.0")
    digest = hashlib.md5(b"payload").hexdigest()
    assert written == ObjectInfo("models/a/0.0", 7, etag=digest, md5=digest)
    assert (info.key, info.size, info.etag, info.md5) == ("models/a/0.0", 7, digest, digest)
    assert info.updated is not None
    assert info.updated.tzinfo is not None


async def test_listing_pages_and_stays_inside_the_prefix(moto_server: MotoServer) -> None:
    moto_server.reset()
    moto_server.create_bucket("bucket")
    keys = [f"many/f{i:04d}" for i in range(1001)]
    store = _moto_store(moto_server)
    root = _moto_store(moto_server, prefix="")
    limiter = anyio.CapacityLimiter(16)

    async def put(key: str) -> None:
        async with limiter:
            await store.put(key, b"")

    async with store, root:
        async with anyio.create_task_group() as group:
            for key in keys:
                group.start_soon(put, key)
        await root.put("modelkit-assets-other/many/outside", b"x")
        # A console-made "folder" marker is not an object.
        await root.put("modelkit-assets/many/folder/", b"")
        listed = [info async for info in store.list_objects("many/")]
    assert [info.key for info in listed] == keys
    assert all(info.md5 is None and info.etag for info in listed)


# -- writes ---------------------------------------------------------------------------------


async def test_moto_enforces_conditional_puts(s3_store_factory: StoreFactory) -> None:
    async with s3_store_factory() as store:
        first = await store.put("k", b"1", if_absent=True)
        with pytest.raises(PreconditionFailedError):
            await store.put("k", b"2", if_absent=True)
        second = await store.put("k", b"2", if_match=first.version_token)
        with pytest.raises(PreconditionFailedError):
            await store.put("k", b"3", if_match=first.version_token)
        # moto (like AWS) answers 404 NoSuchKey to IfMatch on a missing key.
        with pytest.raises(PreconditionFailedError):
            await store.put("gone", b"3", if_match=second.version_token)
        assert await _read(store, "k") == b"2"


async def test_multipart_upload_of_a_large_file(moto_server: MotoServer, tmp_path: Path) -> None:
    moto_server.reset()
    moto_server.create_bucket("bucket")
    source = tmp_path / "weights.bin"
    data = os.urandom(11 * MiB + 123)
    source.write_bytes(data)
    store = _moto_store(moto_server, multipart_threshold=5 * MiB, multipart_part_size=5 * MiB)
    async with store:
        written = await store.put("models/big/0.0", source, if_absent=True)
        info = await store.stat("models/big/0.0")
        assert await _read(store, "models/big/0.0") == data
        with pytest.raises(PreconditionFailedError):
            await store.put("models/big/0.0", data, if_absent=True)  # bytes take parts too
    assert written.size == info.size == len(data)
    assert written.etag == info.etag
    assert info.etag is not None
    assert info.etag.endswith("-3")
    assert info.md5 is None  # a multipart ETag is no MD5 of the content
    assert await _pending_uploads(moto_server.endpoint_url) == []  # the failed one was aborted


async def test_moto_ignores_if_match_on_multipart_completion(moto_server: MotoServer) -> None:
    # A canary for moto upgrades: AWS and SeaweedFS refuse this (see the SeaweedFS test).
    moto_server.reset()
    moto_server.create_bucket("bucket")
    store = _moto_store(moto_server, multipart_threshold=5 * MiB, multipart_part_size=5 * MiB)
    async with store:
        await store.put("k", b"small")
        await store.put("k", os.urandom(5 * MiB + 1), if_match="0" * 32)


async def test_cancelled_multipart_upload_is_aborted(moto_server: MotoServer) -> None:
    moto_server.reset()
    moto_server.create_bucket("bucket")
    data = os.urandom(16 * MiB)
    store = _moto_store(moto_server, multipart_threshold=5 * MiB, multipart_part_size=5 * MiB)
    async with store:
        with anyio.move_on_after(0.05) as scope:
            await store.put("big", data)
        if scope.cancelled_caught:
            with pytest.raises(AssetNotFoundError):
                await store.stat("big")
    assert await _pending_uploads(moto_server.endpoint_url) == []


async def _pending_uploads(endpoint_url: str) -> list[str]:
    session = AioSession()
    async with session.create_client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ) as client:
        uploads = await client.list_multipart_uploads(Bucket="bucket")
    return [upload["Key"] for upload in uploads.get("Uploads", [])]


def test_part_size_below_the_s3_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="5 MiB"):
        S3Store("bucket", multipart_part_size=MiB)


# -- errors ---------------------------------------------------------------------------------


async def test_missing_key(s3_store_factory: StoreFactory) -> None:
    async with s3_store_factory() as store:
        for operation in (store.stat("nope"), _read(store, "nope"), _read(store, "nope", offset=3)):
            with pytest.raises(AssetNotFoundError) as info:
                await operation
            assert info.value.key == "nope"
            assert info.value.store_url == "s3://bucket/modelkit-assets"
        await store.delete("nope")


async def test_missing_bucket(moto_server: MotoServer) -> None:
    moto_server.reset()
    async with _moto_store(moto_server, bucket="no-such-bucket") as store:
        operations: list[Awaitable[object]] = [
            store.stat("k"),  # HEAD gives a bare 404: the store asks about the bucket
            _read(store, "k"),
            store.put("k", b"x"),
            _collect(store.list_objects()),
            store.delete("k"),
        ]
        for operation in operations:
            with pytest.raises(BucketNotFoundError):
                await operation


async def test_unreachable_endpoint_is_unavailable() -> None:
    # A port that was just free: nothing listens there, connections are refused.
    store = S3Store(
        "bucket",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        aws_access_key_id="testing",
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
    )
    async with store:
        with pytest.raises(StoreUnavailableError) as info:
            await store.stat("k")
        with pytest.raises(StoreUnavailableError):
            await _read(store, "k")
        with pytest.raises(StoreUnavailableError):
            await store.put("k", b"x")
        with pytest.raises(StoreUnavailableError):
            await _collect(store.list_objects())
    _assert_no_secret(info.value, store)


async def test_secrets_stay_out_of_repr_url_and_errors(moto_server: MotoServer) -> None:
    moto_server.reset()
    store = _moto_store(moto_server, bucket="no-such-bucket", secret=SECRET)
    assert repr(store) == (
        f"S3Store('no-such-bucket', 'modelkit-assets', endpoint_url='{moto_server.endpoint_url}')"
    )
    assert store.url == "s3://no-such-bucket/modelkit-assets"
    async with store:
        with pytest.raises(BucketNotFoundError) as info:
            await store.put("k", b"x")
    _assert_no_secret(info.value, store)


def test_credentials_in_the_endpoint_are_refused() -> None:
    with pytest.raises(ValueError, match="must not embed credentials") as info:
        S3Store("bucket", endpoint_url=f"http://user:{SECRET}@127.0.0.1:9000")
    assert SECRET not in str(info.value)


async def test_aws_endpoint_url_is_honoured(
    moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    moto_server.reset()
    moto_server.create_bucket("bucket")
    # localhost, not 127.0.0.1: the store must switch to path-style addressing by itself.
    monkeypatch.setenv(
        "AWS_ENDPOINT_URL", moto_server.endpoint_url.replace("127.0.0.1", "localhost")
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    store = open_store("s3://bucket")
    assert store.url == "s3://bucket/modelkit-assets"
    async with store:
        await store.put("via-env", b"hello")
        assert await _read(store, "via-env") == b"hello"
    async with _moto_store(moto_server) as direct:
        assert (await direct.stat("via-env")).size == 5


def test_path_style_is_chosen_for_local_endpoints() -> None:
    assert _needs_path_style("http://127.0.0.1:9000")
    assert _needs_path_style("http://[::1]:9000")
    assert _needs_path_style("http://localhost:9000")
    assert not _needs_path_style("https://s3.eu-west-1.amazonaws.com")
    assert not _needs_path_style("https://minio.example.com")


def test_botocore_models_load_unchanged_as_plain_dicts(tmp_path: Path) -> None:
    import botocore.loaders  # type: ignore[import-untyped]

    reference = botocore.loaders.create_loader()
    fast = botocore.loaders.create_loader()
    fast.file_loader = PlainJSONFileLoader()
    # .json (endpoints), .json.gz (S3's models) and a service model with its extras merged
    assert fast.load_data("endpoints") == reference.load_data("endpoints")
    for name in ("service-2", "endpoint-rule-set-1"):
        assert fast.load_service_model("s3", name) == reference.load_service_model("s3", name)
    assert type(fast.load_data("endpoints")) is dict
    # .json wins over .json.gz, and a missing file is None (the loader then looks elsewhere)
    (tmp_path / "model.json").write_text('{"from": "json"}')
    with gzip.open(tmp_path / "model.json.gz", "wt") as handle:
        handle.write('{"from": "gz"}')
    assert PlainJSONFileLoader().load_file(str(tmp_path / "model")) == {"from": "json"}
    (tmp_path / "model.json").unlink()
    assert PlainJSONFileLoader().load_file(str(tmp_path / "model")) == {"from": "gz"}
    assert PlainJSONFileLoader().load_file(str(tmp_path / "absent")) is None


async def test_lifecycle(s3_store_factory: StoreFactory) -> None:
    store = s3_store_factory()
    with pytest.raises(RuntimeError, match="not open"):
        await store.stat("k")
    async with store:
        with pytest.raises(RuntimeError, match="already open"):
            await store.__aenter__()
        await store.put("k", b"1")
    await store.aclose()
    async with store:  # a closed store can be opened again
        assert (await store.stat("k")).size == 1
