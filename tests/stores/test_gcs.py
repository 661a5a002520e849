"""GCS-specific behaviour of GCSStore against fake-gcs-server (the shared contract is elsewhere).

fake-gcs-server 1.54 differs from GCS in ways these tests pin down on purpose: it ignores
``ifGenerationMatch`` and answers the same 404 for a missing bucket and a missing object.
"""

from __future__ import annotations

import base64
import hashlib
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING

import anyio
import pytest
from anyio.abc import SocketAttribute

from aiomodelkit import (
    AssetNotFoundError,
    BucketNotFoundError,
    PreconditionFailedError,
    StoreError,
    StorePermissionError,
    StoreUnavailableError,
)
from aiomodelkit.stores import GCSStore, StoreOptions, open_store
from aiomodelkit.testing._process import free_port

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from anyio.abc import SocketStream

    from aiomodelkit.stores import Store
    from aiomodelkit.testing import FakeGCSServer

    StoreFactory = Callable[[], Store]

DATA = bytes(range(256)) * 40  # 10,240 bytes, every offset distinguishable


async def read_all(
    store: Store,
    key: str,
    *,
    offset: int = 0,
    length: int | None = None,
    if_match: str | None = None,
) -> bytes:
    async with store.read(key, offset=offset, length=length, if_match=if_match) as chunks:
        return b"".join([chunk async for chunk in chunks])


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # reflected Castagnoli
        table.append(crc)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC32C (Castagnoli), as GCS computes it; google_crc32c is not a test dependency."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def gcs_crc32c(data: bytes) -> str:
    """The base64 big-endian form GCS reports."""
    return base64.b64encode(crc32c(data).to_bytes(4, "big")).decode()


def test_crc32c_helper_matches_the_standard_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283


@pytest.mark.parametrize(
    ("offset", "length", "expected"),
    [
        (0, None, DATA),
        (100, 50, DATA[100:150]),
        (100, None, DATA[100:]),  # open range: bytes=100-
        (10_000, 1_000, DATA[10_000:]),  # end past EOF is clamped
        (len(DATA) - 1, None, DATA[-1:]),
        (7, 0, b""),
    ],
)
async def test_ranged_reads(
    gcs_store_factory: StoreFactory, offset: int, length: int | None, expected: bytes
) -> None:
    async with gcs_store_factory() as store:
        await store.put("obj", DATA)
        assert await read_all(store, "obj", offset=offset, length=length) == expected


async def test_range_starting_past_the_end_is_a_clear_store_error(
    gcs_store_factory: StoreFactory,
) -> None:
    async with gcs_store_factory() as store:
        await store.put("obj", DATA)
        with pytest.raises(StoreError, match="beyond the end") as info:
            await read_all(store, "obj", offset=len(DATA))
    assert not isinstance(info.value, StoreUnavailableError | AssetNotFoundError)
    assert info.value.key == "obj"


async def test_reads_come_in_pieces_no_longer_than_chunk_size(
    gcs_server: FakeGCSServer, gcs_store_factory: StoreFactory
) -> None:
    options = StoreOptions(chunk_size=1000)
    async with GCSStore("bucket", options=options, api_root=gcs_server.endpoint_url) as store:
        await store.put("obj", DATA[:2500])
        async with store.read("obj") as chunks:
            pieces = [chunk async for chunk in chunks]
    assert max(map(len, pieces)) <= 1000
    assert b"".join(pieces) == DATA[:2500]


async def test_listing_follows_pages_past_1000_objects(gcs_store_factory: StoreFactory) -> None:
    count = 1050
    limiter = anyio.CapacityLimiter(32)

    async with gcs_store_factory() as store:

        async def upload(index: int) -> None:
            async with limiter:
                await store.put(f"many/{index:05d}", b"x")

        async with anyio.create_task_group() as tg:
            for index in range(count):
                tg.start_soon(upload, index)
        await store.put("other/alone", b"y")
        keys = [info.key async for info in store.list_objects("many/")]
    assert keys == [f"many/{index:05d}" for index in range(count)]


async def test_listing_small_pages_and_prefix(
    gcs_server: FakeGCSServer, gcs_store_factory: StoreFactory
) -> None:
    options = StoreOptions(list_page_size=4)
    async with GCSStore("bucket", options=options, api_root=gcs_server.endpoint_url) as store:
        for index in range(10):
            await store.put(f"a/{index}", b"1")
        await store.put("ab/x", b"1")
        await store.put("b/x", b"1")
        assert [info.key async for info in store.list_objects("a/")] == [
            f"a/{index}" for index in range(10)
        ]
        assert len([info async for info in store.list_objects()]) == 12


async def test_missing_object(gcs_store_factory: StoreFactory) -> None:
    async with gcs_store_factory() as store:
        with pytest.raises(AssetNotFoundError) as info:
            await store.stat("absent")
        assert info.value.key == "absent"
        assert info.value.store_url == "gs://bucket/modelkit-assets"
        assert isinstance(info.value, FileNotFoundError)
        # Messages never carry request URLs (signed or resumable URLs are credentials).
        assert "http" not in str(info.value)
        with pytest.raises(AssetNotFoundError):
            await read_all(store, "absent")
        await store.delete("absent")  # not an error


async def test_missing_bucket(gcs_server: FakeGCSServer, gcs_store_factory: StoreFactory) -> None:
    async with GCSStore("no-such-bucket", api_root=gcs_server.endpoint_url) as store:
        with pytest.raises(BucketNotFoundError):
            await store.stat("obj")
        with pytest.raises(BucketNotFoundError):
            await read_all(store, "obj")
        with pytest.raises(BucketNotFoundError):
            [info async for info in store.list_objects()]
        with pytest.raises(BucketNotFoundError):
            await store.put("obj", b"data")


async def test_server_down_is_unavailable() -> None:
    api_root = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    async with GCSStore("bucket", api_root=api_root) as store:
        with pytest.raises(StoreUnavailableError):
            await store.stat("obj")
        with pytest.raises(StoreUnavailableError):
            await read_all(store, "obj")


async def test_stat_reports_md5_and_crc32c(gcs_store_factory: StoreFactory) -> None:
    async with gcs_store_factory() as store:
        written = await store.put("dir/obj", DATA)
        info = await store.stat("dir/obj")
        [listed] = [entry async for entry in store.list_objects("dir/")]
    assert info.key == "dir/obj"
    assert info.size == len(DATA)
    assert info.md5 == hashlib.md5(DATA).hexdigest()
    assert info.crc32c == gcs_crc32c(DATA)
    assert info.generation is not None
    assert info.generation.isdigit()
    assert info.version_token == info.generation
    assert isinstance(info.updated, datetime)
    assert info.updated.tzinfo is not None
    assert written == info == listed


async def test_read_pinned_to_a_replaced_generation_fails(gcs_store_factory: StoreFactory) -> None:
    async with gcs_store_factory() as store:
        old = await store.put("obj", b"first")
        new = await store.put("obj", b"second")
        assert old.generation != new.generation
        with pytest.raises(PreconditionFailedError):
            await read_all(store, "obj", if_match=old.generation)
        with pytest.raises(PreconditionFailedError):
            await read_all(store, "obj", offset=1, length=2, if_match=old.generation)
        assert await read_all(store, "obj", if_match=new.generation) == b"second"


async def test_storage_emulator_host_is_honoured(
    gcs_server: FakeGCSServer, gcs_store_factory: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with gcs_store_factory() as store:
        await store.put("models/a", b"payload")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.endpoint_url)
    async with open_store("gs://bucket") as store:
        assert store.url == "gs://bucket/modelkit-assets"
        assert await read_all(store, "models/a") == b"payload"


async def test_fake_gcs_server_ignores_conditional_writes(gcs_store_factory: StoreFactory) -> None:
    """fake-gcs-server 1.54 ignores ``ifGenerationMatch``: conditional puts always succeed.

    Real GCS answers 412 (mapped to PreconditionFailedError), so GCSStore claims conditional
    writes, but this emulator cannot prove them. If this test starts failing, the emulator
    has learnt preconditions: turn it into a test that they raise.
    """
    async with gcs_store_factory() as store:
        assert store.supports_conditional_writes
        first = await store.put("obj", b"first")
        second = await store.put("obj", b"second", if_absent=True)
        third = await store.put("obj", b"third", if_match=first.generation)
        assert len({first.generation, second.generation, third.generation}) == 3
        assert await read_all(store, "obj") == b"third"


async def test_put_streams_a_file(tmp_path: Path, gcs_store_factory: StoreFactory) -> None:
    # Above gcloud-aio's 5 MB switch to its resumable path: we still send one simple upload.
    data = DATA * 620  # ~6.1 MiB
    path = tmp_path / "big.bin"
    await anyio.Path(path).write_bytes(data)
    async with gcs_store_factory() as store:
        info = await store.put("big", path)
        assert info.size == len(data)
        assert info.md5 == hashlib.md5(data).hexdigest()
        assert await read_all(store, "big") == data


# Failures fake-gcs-server cannot produce, from a canned HTTP server on loopback.


def _response(
    status: str, body: bytes = b"", *, length: int | None = None, **headers: str
) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body) if length is None else length}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return "\r\n".join([*lines, "", ""]).encode() + body


@asynccontextmanager
async def canned_server(answer: bytes, *, stall: bool = False) -> AsyncIterator[str]:
    """An HTTP server that answers every request with ``answer``; yields its URL."""

    async def handle(client: SocketStream) -> None:
        async with client:
            received = b""
            while b"\r\n\r\n" not in received:
                received += await client.receive()
            await client.send(answer)
            if stall:
                await anyio.sleep_forever()

    async with (
        await anyio.create_tcp_listener(local_host="127.0.0.1") as listener,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(listener.serve, handle)
        yield f"http://127.0.0.1:{listener.extra(SocketAttribute.local_port)}"
        tg.cancel_scope.cancel()


async def test_a_stalled_body_times_out_as_unavailable() -> None:
    answer = _response("200 OK", b"x" * 10, length=1000, x_goog_generation="1")
    options = StoreOptions(read_timeout=0.2)
    async with (
        canned_server(answer, stall=True) as api_root,
        GCSStore("b", options=options, api_root=api_root) as store,
    ):
        with pytest.raises(StoreUnavailableError, match="timeout"), anyio.fail_after(5):
            await read_all(store, "obj")


async def test_a_range_the_server_ignores_is_cut_locally() -> None:
    """GCS answers 200 with the whole body for gzip-transcoded objects, whatever the Range."""
    answer = _response("200 OK", DATA, Connection="close")
    async with canned_server(answer) as api_root, GCSStore("b", api_root=api_root) as store:
        assert await read_all(store, "obj", offset=300, length=20) == DATA[300:320]
        assert await read_all(store, "obj", offset=10_000) == DATA[10_000:]


@pytest.mark.parametrize(
    ("status", "error"),
    [
        ("400 Bad Request", StoreError),
        ("401 Unauthorized", StorePermissionError),
        ("403 Forbidden", StorePermissionError),
        ("412 Precondition Failed", PreconditionFailedError),
        ("429 Too Many Requests", StoreUnavailableError),
        ("503 Service Unavailable", StoreUnavailableError),
    ],
)
async def test_http_errors_are_mapped(status: str, error: type[StoreError]) -> None:
    body = b'{"error": {"code": 0, "message": "told by the server"}}'
    answer = _response(status, body, Content_Type="application/json", Connection="close")
    async with canned_server(answer) as api_root, GCSStore("b", api_root=api_root) as store:
        with pytest.raises(error) as info:
            await store.stat("obj")
    assert type(info.value) is error
    assert "told by the server" in str(info.value)
    assert "http" not in str(info.value)


async def test_lifecycle() -> None:
    store = GCSStore("bucket", "team/", api_root="http://127.0.0.1:9")
    assert store.url == "gs://bucket/team"
    with pytest.raises(RuntimeError, match="not open"):
        await store.stat("x")
    async with store:
        with pytest.raises(RuntimeError, match="already open"):
            await store.__aenter__()
    await store.aclose()  # idempotent
    assert GCSStore("bucket", "").url == "gs://bucket"


async def test_argument_checks(gcs_store_factory: StoreFactory) -> None:
    async with gcs_store_factory() as store:
        with pytest.raises(ValueError, match="not both"):
            await store.put("obj", b"x", if_absent=True, if_match="1")
        with pytest.raises(PreconditionFailedError, match="not a GCS generation"):
            await store.put("obj", b"x", if_match='"an-etag"')
        with pytest.raises(ValueError, match="empty"):
            await store.stat("/")
        with pytest.raises(ValueError, match="negative"):
            await read_all(store, "obj", offset=-1)


async def test_unreadable_credentials_fail_on_entry(tmp_path: Path) -> None:
    store = GCSStore("bucket", service_file=str(tmp_path / "missing.json"))
    with pytest.raises(StorePermissionError, match=r"credentials file '.*missing\.json' does not"):
        await store.__aenter__()
    await store.aclose()
