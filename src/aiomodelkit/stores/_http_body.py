"""Reading an aiohttp response body the way every store wants it (GCS and Azure share it).

The pieces as aiohttp buffered them (one socket read's worth each, :func:`next_piece`),
never joined: the transfer gathers pieces into write buffers and hands the list to
``os.pwritev``, so a join here would be one more copy of every byte (about 0.1 s of CPU per
GiB). An idle timeout per read rather than a deadline for the whole body, ``skip`` bytes
dropped first (a server that ignored a range start), at most ``limit`` bytes delivered, and
the client's errors mapped by the store's own context manager. Also the ``Content-Range``
parser and the empty body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from aiomodelkit._errors import InvalidStoreDataError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from contextlib import AbstractContextManager

    import aiohttp

__all__ = ["body_chunks", "next_piece", "no_chunks", "range_start"]


async def next_piece(content: aiohttp.StreamReader) -> bytes:
    """The next piece of the body as aiohttp buffered it, ``b""`` only at its end.

    ``StreamReader.read(n)`` would join every buffered piece into one new ``bytes``;
    ``readchunk`` hands over one. An HTTP chunk boundary (``b"", True``) is not the end.
    """
    while True:
        piece, end_of_http_chunk = await content.readchunk()
        if piece or not end_of_http_chunk:
            return piece


async def body_chunks(
    response: aiohttp.ClientResponse,
    *,
    skip: int,
    limit: int | None,
    chunk_size: int,
    read_timeout: float,
    mapped: Callable[[], AbstractContextManager[None]],
) -> AsyncIterator[bytes]:
    """The body's pieces (none longer than ``chunk_size``), each read under the idle timeout
    inside a fresh ``mapped()`` (the store's error mapping); ``skip`` bytes are dropped
    first and at most ``limit`` delivered."""
    remaining = limit  # bytes still to deliver, None for all
    while remaining is None or remaining > 0:
        with mapped(), anyio.fail_after(read_timeout):
            data = await next_piece(response.content)
        if not data:
            break
        if skip:
            if len(data) <= skip:
                skip -= len(data)
                continue
            data, skip = data[skip:], 0
        if remaining is not None:
            data = data[:remaining] if len(data) > remaining else data
            remaining -= len(data)
        if len(data) <= chunk_size:
            yield data
        else:  # a read buffer larger than chunk_size (rare: aiohttp's is at most that)
            for start in range(0, len(data), chunk_size):
                yield data[start : start + chunk_size]


async def no_chunks() -> AsyncIterator[bytes]:
    """An empty body."""
    empty: tuple[bytes, ...] = ()
    for chunk in empty:
        yield chunk


def range_start(response: aiohttp.ClientResponse, key: str, *, store_url: str) -> int:
    """Where the body starts in the object, from ``Content-Range: bytes a-b/n`` (0 without).

    Raises:
        InvalidStoreDataError: the header is there but unreadable.
    """
    value = response.headers.get("Content-Range")
    if value is None:
        return 0
    unit, _, rest = value.partition(" ")
    first = rest.partition("-")[0]
    if unit != "bytes" or not first.isdigit():
        raise InvalidStoreDataError(
            f"unreadable Content-Range {value[:64]!r}", key=key, store_url=store_url
        )
    return int(first)
