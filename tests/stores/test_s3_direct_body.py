"""DirectBody: one buffered piece per read, never a join, and the body's end is the only b""."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import aiohttp
import pytest
from aiohttp import web

from aiomodelkit.stores._s3_direct import DirectBody

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

PIECES = [b"a" * 1000, b"b" * 3000, b"c" * 10]


async def _chunked(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    for piece in PIECES:
        await response.write(piece)
        await asyncio.sleep(0.01)  # separate HTTP chunks, separate socket reads
    await response.write_eof()
    return response


async def _sized(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.content_length = sum(map(len, PIECES))
    await response.prepare(request)
    for piece in PIECES:
        await response.write(piece)
        await asyncio.sleep(0.01)  # separate socket reads on the client
    return response


@pytest.fixture
async def origin() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/chunked", _chunked)
    app.router.add_get("/sized", _sized)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def _read_all(body: DirectBody, size: int) -> list[bytes]:
    pieces = []
    while piece := await body.read(size):
        assert len(piece) <= size
        pieces.append(piece)
    return pieces


@pytest.mark.parametrize("path", ["/chunked", "/sized"])
async def test_reads_return_the_whole_body_in_pieces_no_longer_than_asked(
    origin: str, path: str
) -> None:
    async with aiohttp.ClientSession() as session, session.get(origin + path) as response:
        body = DirectBody(response)
        pieces = await _read_all(body, 512)
        assert b"".join(pieces) == b"".join(PIECES)
        assert response.content.is_eof()


async def test_pieces_buffered_meanwhile_are_handed_over_as_they_are_not_joined(
    origin: str,
) -> None:
    async with aiohttp.ClientSession() as session, session.get(origin + "/sized") as response:
        await asyncio.sleep(0.2)  # every piece is in aiohttp's buffer by now
        pieces = await _read_all(DirectBody(response), 1 << 20)
    assert pieces == PIECES
