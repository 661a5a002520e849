"""S3Store against a one-trick HTTP server on loopback: the faults moto and SeaweedFS
cannot produce (503s, stalled bodies, ignored ranges, redirects, odd error answers)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import pytest

from aiomodelkit import AssetNotFoundError, StoreUnavailableError
from aiomodelkit.stores import S3Store, StoreOptions

from ._helpers import _read

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
