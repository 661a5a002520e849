"""Reading an aiohttp response body the way every store wants it (GCS and Azure share it).

Full ``chunk_size`` chunks (one disk write each, whatever sizes the socket delivers), an
idle timeout per read rather than a deadline for the whole body, ``skip`` bytes dropped
first (a server that ignored a range start), at most ``limit`` bytes delivered, and the
client's errors mapped by the store's own context manager. Also the ``Content-Range``
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

__all__ = ["body_chunks", "no_chunks", "range_start"]


async def body_chunks(
    response: aiohttp.ClientResponse,
    *,
    skip: int,
    limit: int | None,
    chunk_size: int,
    read_timeout: float,
    mapped: Callable[[], AbstractContextManager[None]],
) -> AsyncIterator[bytes]:
    """Full ``chunk_size`` chunks of the body (the last may be short), each read under the
    idle timeout inside a fresh ``mapped()`` (the store's error mapping); ``skip`` bytes
    are dropped first and at most ``limit`` delivered."""
    remaining = limit  # bytes still to deliver, None for all
    parts: list[bytes] = []
    filled = 0
    while remaining is None or remaining > 0:
        if skip:
            want = min(skip, chunk_size)
        else:
            want = chunk_size - filled if remaining is None else min(chunk_size - filled, remaining)
        with mapped(), anyio.fail_after(read_timeout):
            data = await response.content.read(want)
        if not data:
            break
        if skip:
            skip -= len(data)  # read() never returns more than asked
            continue
        if remaining is not None:
            remaining -= len(data)
        parts.append(data)
        filled += len(data)
        if filled == chunk_size:
            yield parts[0] if len(parts) == 1 else b"".join(parts)
            parts, filled = [], 0
    if parts:
        yield b"".join(parts)


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
