"""S3-specific behaviour of S3Store (the shared contract is in test_contract.py).

moto serves most tests; SeaweedFS serves those that need real credentials checks and
enforced conditional writes. A tiny in-test HTTP server injects what neither can: 503s,
stalled bodies and ignored ranges.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import pytest
from aiobotocore.session import AioSession  # type: ignore[import-untyped]

from aiomodelkit import (
    AssetNotFoundError,
    BucketNotFoundError,
    ModelkitError,
    PreconditionFailedError,
    StoreError,
    StorePermissionError,
    StoreUnavailableError,
)
from aiomodelkit.stores import ObjectInfo, S3Store, Store, StoreOptions
from aiomodelkit.stores._base import MiB
from aiomodelkit.stores._registry import open_store
from aiomodelkit.stores._s3 import PlainJSONFileLoader, _needs_path_style
from aiomodelkit.testing._process import free_port

if TYPE_CHECKING:
    from pathlib import Path

    from aiomodelkit.testing import MotoServer, SeaweedFSServer

StoreFactory = Callable[..., Store]
SECRET = "sEcReT-d0-n0t-l3ak-7f3a9c"


def _moto_store(moto: MotoServer, bucket: str = "bucket", **kwargs: Any) -> S3Store:
    return S3Store(
        bucket,
        kwargs.pop("prefix", "modelkit-assets"),
        endpoint_url=kwargs.pop("endpoint_url", moto.endpoint_url),
        aws_access_key_id="testing",
        aws_secret_access_key=kwargs.pop("secret", "testing"),
        region_name="us-east-1",
        **kwargs,
    )


async def _read(store: Store, key: str, **kwargs: Any) -> bytes:
    async with store.read(key, **kwargs) as chunks:
        return b"".join([chunk async for chunk in chunks])


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


async def _collect(items: AsyncIterator[ObjectInfo]) -> list[ObjectInfo]:
    return [item async for item in items]


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


def _assert_no_secret(error: ModelkitError, store: S3Store) -> None:
    texts = [
        str(error),
        repr(error),
        repr(pickle.loads(pickle.dumps(error))),
        "".join(traceback.format_exception(error)),
        repr(store),
        store.url,
    ]
    for text in texts:
        assert SECRET not in text


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


# -- faults the servers cannot produce: a tiny HTTP server in the test --------------------

Responder = Callable[[anyio.abc.SocketStream, bytes], Awaitable[None]]


@asynccontextmanager
async def _fake_s3(respond: Responder) -> AsyncIterator[S3Store]:
    """An S3Store pointed at a one-trick HTTP server on loopback."""

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            request = b""
            while b"\r\n\r\n" not in request:
                request += await stream.receive()
            await respond(stream, request)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, handle)
        store = S3Store(
            "bucket",
            endpoint_url=f"http://127.0.0.1:{port}",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
            options=StoreOptions(read_timeout=0.3, connect_timeout=2),
        )
        async with store:
            yield store
        group.cancel_scope.cancel()


def _response(status: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def test_throttling_is_unavailable() -> None:
    body = (
        b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
    )

    async def slow_down(stream: anyio.abc.SocketStream, request: bytes) -> None:
        await stream.send(_response("503 Slow Down", body, {"Content-Type": "application/xml"}))

    async with _fake_s3(slow_down) as store:
        with pytest.raises(StoreUnavailableError, match="SlowDown"):
            await _read(store, "k")
        with pytest.raises(StoreUnavailableError):
            await store.stat("k")


async def test_stalled_body_times_out_as_unavailable() -> None:
    async def stall(stream: anyio.abc.SocketStream, request: bytes) -> None:
        head = _response("200 OK", b"", {"ETag": '"abc"'}).replace(
            b"Content-Length: 0", b"Content-Length: 1000"
        )
        await stream.send(head + b"x" * 10)
        await anyio.sleep_forever()

    async with _fake_s3(stall) as store:
        with anyio.fail_after(10), pytest.raises(StoreUnavailableError, match="stalled"):
            await _read(store, "k")


async def test_a_server_ignoring_range_still_gives_the_right_bytes() -> None:
    async def whole(stream: anyio.abc.SocketStream, request: bytes) -> None:
        assert b"range: bytes=3-5" in request.lower()
        await stream.send(_response("200 OK", b"0123456789", {"ETag": '"abc"'}))

    async with _fake_s3(whole) as store:
        assert await _read(store, "k", offset=3, length=3) == b"345"


async def test_redirects_fall_back_to_botocore() -> None:
    # The direct GET cannot follow a region redirect: botocore's own request (the one with
    # its invocation-id header) then takes over, and its redirector does the rest.
    seen: list[bytes] = []
    moved = b"<Error><Code>PermanentRedirect</Code><Message>use another endpoint</Message></Error>"

    async def redirect_once(stream: anyio.abc.SocketStream, request: bytes) -> None:
        seen.append(request)
        if len(seen) == 1:
            await stream.send(_response("301 Moved Permanently", moved))
        else:
            await stream.send(_response("200 OK", b"payload", {"ETag": '"abc"'}))

    async with _fake_s3(redirect_once) as store:
        assert await _read(store, "k") == b"payload"
        assert await _read(store, "k") == b"payload"  # the bucket now stays with botocore
    direct, *botocore = [request.lower() for request in seen]
    assert b"authorization: aws4-hmac-sha256" in direct
    assert b"amz-sdk-invocation-id" not in direct
    assert len(botocore) == 2
    assert all(b"amz-sdk-invocation-id" in request for request in botocore)


async def test_content_encoding_is_not_decoded() -> None:
    # An object uploaded with Content-Encoding: gzip is stored and fetched as those bytes.
    data = os.urandom(1000)

    async def gzip_labelled(stream: anyio.abc.SocketStream, request: bytes) -> None:
        assert b"accept-encoding" not in request.lower()
        await stream.send(_response("200 OK", data, {"Content-Encoding": "gzip", "ETag": '"e"'}))

    async with _fake_s3(gzip_labelled) as store:
        assert await _read(store, "k") == data


async def test_error_answers_keep_their_code_and_message() -> None:
    body = b"<Error><Code>NoSuchKey</Code><Message>The key is not there.</Message></Error>"

    async def missing(stream: anyio.abc.SocketStream, request: bytes) -> None:
        await stream.send(_response("404 Not Found", body, {"Content-Type": "application/xml"}))

    async with _fake_s3(missing) as store:
        with pytest.raises(AssetNotFoundError, match=r"NoSuchKey \(HTTP 404\): The key is not"):
            await _read(store, "k")


async def test_an_error_answer_that_is_not_xml_keeps_its_status() -> None:
    async def gateway(stream: anyio.abc.SocketStream, request: bytes) -> None:
        await stream.send(_response("502 Bad Gateway", b"<html>upstream down"))

    async with _fake_s3(gateway) as store:
        with pytest.raises(StoreUnavailableError, match="HTTP 502"):
            await _read(store, "k")


# -- SeaweedFS: real credentials and conditional writes --------------------------------------


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
