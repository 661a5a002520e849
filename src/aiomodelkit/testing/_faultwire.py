""":class:`~aiomodelkit.testing.FaultProxy` on the wire: the upstream client, relaying a body
under a :class:`~._faultplan.FaultPlan`, ending a connection early, overwriting an object upstream.

The proxy decides *which* fault a request gets; this module applies it to bytes and sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import struct
from typing import TYPE_CHECKING
from urllib.parse import quote

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._faultplan import FaultPlan
    from ._faults import ProxyRequest, ReplaceObject

__all__ = ["forwarded_headers", "open_upstream_session", "overwrite_upstream", "relay"]

# Per-hop headers are the proxy's own business (RFC 9110 §7.6.1); Expect is answered by
# our server, so the upstream must not wait for a body it already has.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
     "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "expect"}
)  # fmt: skip
# The upstream client must add nothing of its own: the client's headers pass unchanged.
_NO_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")


def open_upstream_session() -> aiohttp.ClientSession:
    """The proxy's client to the upstream server: unlimited, transparent, never proxied."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        auto_decompress=False,  # bytes pass unchanged, Content-Encoding too
        trust_env=False,  # never through the developer's http_proxy
        skip_auto_headers=_NO_AUTO_HEADERS,
    )


def forwarded_headers(headers: Mapping[str, str]) -> CIMultiDict[str]:
    """The end-to-end headers of a message (Host passes: S3 signatures cover it)."""
    return CIMultiDict(
        (name, value) for name, value in headers.items() if name.lower() not in _HOP_BY_HOP
    )


async def relay(
    request: web.BaseRequest,
    upstream: aiohttp.ClientResponse,
    plan: FaultPlan,
    chunk_size: int,
) -> web.StreamResponse:
    """Stream the upstream's answer to the client, corrupted, stalled or cut as planned."""
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
    for name, value in upstream.headers.items():
        if name.lower() not in _HOP_BY_HOP:
            response.headers.add(name, value)
    sent = 0
    stalled = plan.stall is None
    try:
        await response.prepare(request)
        async for data in upstream.content.iter_chunked(chunk_size):
            chunk = plan.corrupt(sent, data)
            if plan.stall is not None and not stalled and sent + len(chunk) > plan.stall.after:
                head = plan.stall.after - sent
                await _write(response, chunk[:head])
                sent, chunk = sent + head, chunk[head:]
                await asyncio.sleep(plan.stall.seconds)
                stalled = True
            if plan.cut_after is not None and sent + len(chunk) > plan.cut_after:
                await _write(response, chunk[: plan.cut_after - sent])
                await _cut(request, reset=plan.reset)
                return response
            await _write(response, chunk)
            sent += len(chunk)
        await response.write_eof()
    except (ConnectionError, aiohttp.ClientError):
        # The client went away (it timed out during a stall, say), or the upstream
        # broke: either way this answer cannot be completed, so end the connection.
        await _cut(request, reset=False)
    return response


async def overwrite_upstream(
    session: aiohttp.ClientSession, origin: str, info: ProxyRequest, fault: ReplaceObject
) -> None:
    """Overwrite the object through the upstream's own API (see :class:`ReplaceObject`).

    Raises:
        ValueError: the request named no object, or an Azure blob (give a callback).
        RuntimeError: the upstream refused the write.
    """
    assert fault.data is not None
    data = fault.data
    if info.bucket is None or info.key is None:
        raise ValueError(f"ReplaceObject fired on a request without an object: {info}")
    if info.api == "azure":
        raise ValueError("ReplaceObject(data=) overwrites S3 and GCS objects; use callback=")
    bucket = quote(info.bucket, safe="")
    if info.api == "s3":
        method = "PUT"
        url = URL(f"{origin}/{bucket}/{quote(info.key, safe='/')}", encoded=True)
        headers = _sigv4_headers(fault, method, str(url), data)
    else:
        method = "POST"
        url = URL(f"{origin}/upload/storage/v1/b/{bucket}/o", encoded=True)
        url = url.with_query(uploadType="media", name=info.key)
        headers = {"Content-Type": "application/octet-stream"}
    # A file-like body: aiohttp warns that large raw bytes might block its loop.
    body = io.BytesIO(data)
    async with session.request(method, url, data=body, headers=headers) as answer:
        await answer.read()
        if answer.status >= 300:
            raise RuntimeError(f"overwriting {info.key!r} upstream failed: HTTP {answer.status}")


async def _write(response: web.StreamResponse, data: bytes) -> None:
    if data:
        await response.write(data)


async def _cut(request: web.BaseRequest, *, reset: bool) -> None:
    """End the client's connection now: a FIN after what was written, or an RST."""
    transport = request.transport
    if transport is None:
        return
    if not reset:
        transport.close()  # sends what is buffered, then FIN
        return
    # Let what was written leave first, so the client sees "some bytes, then a reset".
    for _ in range(100):
        if not transport.get_write_buffer_size():
            break
        await asyncio.sleep(0.001)
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _sigv4_headers(fault: ReplaceObject, method: str, url: str, data: bytes) -> dict[str, str]:
    # Imported here: aiomodelkit.testing must import without the s3 extra.
    from botocore.auth import S3SigV4Auth  # type: ignore[import-untyped]
    from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
    from botocore.credentials import Credentials  # type: ignore[import-untyped]

    request = AWSRequest(method=method, url=url, data=data)
    credentials = Credentials(fault.aws_access_key_id, fault.aws_secret_access_key)
    S3SigV4Auth(credentials, "s3", fault.region_name).add_auth(request)
    return {str(name): str(value) for name, value in request.headers.items()}
