"""Conditional reads (``if_none_match``) store by store: what goes on the wire, and what comes back.

The shared behaviour (unchanged → ``NotModifiedError``, changed → body and new token) is in
``test_contract.py``, and every server of the compatibility matrix is in
``tests/compat/test_conditional_reads.py``. Here: the S3 direct path sends
``If-None-Match`` and a 304 carries no body (moto, SeaweedFS), GCS sends
``ifGenerationNotMatch`` and maps a 304 (no emulator honours it, so a canned server on
loopback answers as GCS does), and the wrappers pass the condition on and count it.
"""

from __future__ import annotations

import inspect
import os
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import anyio
import botocore.exceptions  # type: ignore[import-untyped]
import pytest
from anyio.abc import SocketAttribute

from aiomodelkit import NotModifiedError
from aiomodelkit.stores import AzureStore, GCSStore, LocalStore, MemoryStore, S3Store, Store
from aiomodelkit.stores._base import read_small_object_info
from aiomodelkit.stores._lazy import LazyStore
from aiomodelkit.testing import InstrumentedStore, LatencyProxy

from ._helpers import _moto_store, _read

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from anyio.abc import SocketStream

    from aiomodelkit.testing import MotoServer

    from ._helpers import StoreFactory

KEY = "models/clf.versions"
#: A 304 is a status line and a few headers; a body of BIG bytes cannot hide in this.
NO_BODY = 4096
BIG = 1024 * 1024


def _upstream(endpoint_url: str) -> tuple[str, int]:
    parts = urlsplit(endpoint_url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


def _answered_304(error: NotModifiedError) -> bool:
    """Whether S3Store raised ``error`` for a 304 (botocore's ``ClientError``, which the
    direct path raises as botocore would), rather than for a 200 whose ETag matched."""
    cause = error.__cause__
    return (
        isinstance(cause, botocore.exceptions.ClientError)
        and cause.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    )


# -- S3: the direct path sends If-None-Match; the 304 has no body --------------------------


async def test_s3_direct_get_sends_if_none_match(moto_server: MotoServer) -> None:
    moto_server.reset()
    moto_server.create_bucket("bucket")
    async with LatencyProxy(_upstream(moto_server.endpoint_url), rtt=0) as proxy:
        store = _moto_store(moto_server, endpoint_url=proxy.url)
        async with store:
            await store.put(KEY, os.urandom(BIG))
            token = (await store.stat(KEY)).version_token
            assert token is not None
            proxy.reset_stats()
            with pytest.raises(NotModifiedError) as caught:
                await _read(store, KEY, if_none_match=token)
            stats = proxy.stats
            # The GET went out through aiohttp, signed by us: botocore routed the bucket.
            assert store._direct is not None
            assert store._direct._routes["bucket"] is not None
    assert stats.requests == {"GET": 1}
    assert stats.bytes_down < NO_BODY
    assert _answered_304(caught.value)
    assert caught.value.token == token


async def test_s3_quoted_and_bare_tokens_are_the_same(s3_store_factory: StoreFactory) -> None:
    async with s3_store_factory() as store:
        await store.put(KEY, b"{}")
        token = (await store.stat(KEY)).version_token
        for sent in (token, f'"{token}"'):
            with pytest.raises(NotModifiedError) as caught:
                await _read(store, KEY, if_none_match=sent)
            assert caught.value.token == token
            assert _answered_304(caught.value)


@pytest.mark.seaweedfs
async def test_seaweedfs_answers_304(seaweedfs_store_factory: StoreFactory) -> None:
    async with seaweedfs_store_factory() as store:
        await store.put(KEY, b'{"versions": ["0.0"]}')
        _, info = await read_small_object_info(store, KEY)
        with pytest.raises(NotModifiedError) as caught:
            await read_small_object_info(store, KEY, if_none_match=info.version_token)
        assert _answered_304(caught.value)
        await store.put(KEY, b'{"versions": ["0.1", "0.0"]}')
        data, new = await read_small_object_info(store, KEY, if_none_match=info.version_token)
    assert data == b'{"versions": ["0.1", "0.0"]}'
    assert new.version_token not in (None, info.version_token)


async def test_s3_botocore_path_maps_its_304_the_same_way(s3_store_factory: StoreFactory) -> None:
    """Buckets the direct path leaves to botocore (redirects, SigV4a, anonymous clients)."""
    store = s3_store_factory()
    assert isinstance(store, S3Store)
    async with store:
        await store.put(KEY, b"{}")
        token = (await store.stat(KEY)).version_token
        assert store._direct is not None
        store._direct._routes["bucket"] = None  # what a redirect leaves: botocore sends all
        with pytest.raises(NotModifiedError) as caught:
            await _read(store, KEY, if_none_match=token)
    assert _answered_304(caught.value)
    assert caught.value.token == token


# -- GCS: ifGenerationNotMatch, as GCS answers it --------------------------------------------


@asynccontextmanager
async def gcs_like(answer: bytes, seen: list[str]) -> AsyncIterator[str]:
    """An HTTP server on loopback that answers every request with ``answer`` and records
    each request line in ``seen``; yields its URL."""

    async def handle(client: SocketStream) -> None:
        async with client:
            received = b""
            while b"\r\n\r\n" not in received:
                received += await client.receive()
            seen.append(received.split(b"\r\n", 1)[0].decode())
            await client.send(answer)

    async with (
        await anyio.create_tcp_listener(local_host="127.0.0.1") as listener,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(listener.serve, handle)
        yield f"http://127.0.0.1:{listener.extra(SocketAttribute.local_port)}"
        tg.cancel_scope.cancel()


def _answer(status: str, body: bytes = b"", **headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return "\r\n".join([*lines, "", ""]).encode() + body


async def test_gcs_sends_if_generation_not_match_and_maps_the_304() -> None:
    seen: list[str] = []
    async with gcs_like(_answer("304 Not Modified"), seen) as api_root:
        async with GCSStore("b", "p", api_root=api_root) as store:
            with pytest.raises(NotModifiedError) as caught:
                await _read(store, "obj.versions", if_none_match="1700")
    assert caught.value.token == "1700"
    assert caught.value.key == "obj.versions"
    (request,) = seen
    assert request.startswith("GET /storage/v1/b/b/o/p%2Fobj.versions?")
    assert "alt=media" in request
    assert "ifGenerationNotMatch=1700" in request


@pytest.mark.parametrize(("generation", "unchanged"), [("1700", True), ("1701", False)])
async def test_gcs_checks_a_200_against_the_generation(generation: str, unchanged: bool) -> None:
    """fake-gcs-server and gcp-storage-emulator ignore ifGenerationNotMatch and answer 200."""
    seen: list[str] = []
    answer = _answer("200 OK", b"{}", x_goog_generation=generation)
    async with gcs_like(answer, seen) as api_root, GCSStore("b", api_root=api_root) as store:
        if unchanged:
            with pytest.raises(NotModifiedError):
                await read_small_object_info(store, "obj", if_none_match="1700")
        else:
            data, info = await read_small_object_info(store, "obj", if_none_match="1700")
            assert (data, info.version_token) == (b"{}", "1701")


async def test_gcs_sends_no_generation_condition_for_an_etag() -> None:
    """A token that is not a generation (an ETag, from a server that sends no generation)
    is only compared: ifGenerationNotMatch takes numbers."""
    seen: list[str] = []
    answer = _answer("200 OK", b"{}", etag='"abc"')
    async with gcs_like(answer, seen) as api_root, GCSStore("b", api_root=api_root) as store:
        with pytest.raises(NotModifiedError):
            await _read(store, "obj", if_none_match="abc")
    assert "ifGenerationNotMatch" not in seen[0]


async def test_fake_gcs_server_ignores_the_condition_and_the_store_does_not(
    gcs_store_factory: StoreFactory,
) -> None:
    async with gcs_store_factory() as store:
        assert isinstance(store, GCSStore)
        await store.put(KEY, b'{"versions": ["0.0"]}')
        _, info = await read_small_object_info(store, KEY)
        assert info.generation is not None
        with pytest.raises(NotModifiedError) as caught:
            await read_small_object_info(store, KEY, if_none_match=info.generation)
    assert caught.value.__cause__ is None  # no 304 from fake-gcs-server 1.54: compared here


# -- wrappers ---------------------------------------------------------------------------------


async def test_instrumented_store_counts_conditional_reads() -> None:
    store = InstrumentedStore(MemoryStore())
    async with store:
        await store.put(KEY, b"{}")
        await store.put("other.versions", b"{}")
        _, info = await read_small_object_info(store, KEY)
        for _ in range(3):
            with pytest.raises(NotModifiedError):
                await read_small_object_info(store, KEY, if_none_match=info.version_token)
        await store.put(KEY, b"{ }")
        await read_small_object_info(store, KEY, if_none_match=info.version_token)
        await read_small_object_info(store, "other.versions")
    assert store.count("read", KEY) == 5  # each conditional read is one request
    assert store.count("conditional_read", KEY) == store.conditional_reads == 4
    assert store.count("not_modified", KEY) == store.not_modified == 3
    assert store.count("not_modified", "other.versions") == 0
    assert store.requests == 3 + 6  # puts and reads: the outcomes are not requests


async def test_instrumented_store_does_not_count_the_callers_errors() -> None:
    store = InstrumentedStore(MemoryStore())
    async with store:
        await store.put(KEY, b"{}")
        with pytest.raises(NotModifiedError):
            async with store.read(KEY, if_none_match="stale"):  # another token: a body
                raise NotModifiedError.since("stale", key=KEY, store_url=store.url)
    assert (store.conditional_reads, store.not_modified) == (1, 0)


async def test_lazy_store_passes_the_condition_on(tmp_path: Path) -> None:
    async with LocalStore(tmp_path) as local:
        written = await local.put(KEY, b"{}")
    for opened_first in (False, True):
        lazy = LazyStore(LocalStore(tmp_path))
        async with lazy:
            if opened_first:
                await lazy.stat(KEY)
            assert lazy.opened is opened_first
            with pytest.raises(NotModifiedError):
                await _read(lazy, KEY, if_none_match=written.version_token)


def test_every_store_takes_the_keyword() -> None:
    """The protocol and every store agree on it (mypy checks the types)."""
    stores = (Store, S3Store, GCSStore, AzureStore, LocalStore, MemoryStore, LazyStore)
    for cls in (*stores, InstrumentedStore):
        parameter = inspect.signature(cls.read).parameters["if_none_match"]
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY
        assert parameter.default is None
