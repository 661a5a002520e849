"""The demo's stand-in for a remote store: any store, one round trip added to each request.

When moto's S3 server is not installed, the demo serves its assets from a local folder and
puts this shim in front of it, so that the number of requests, not the disk, sets the pace,
as it does against S3 or GCS. The model is deliberately simple and kind to one-by-one
fetching: each operation waits one ``rtt`` before it starts (a warm connection: no
handshake), a listing one more ``rtt`` per page of 1,000 keys, and bandwidth is the disk's.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from ._lifecycle import AsyncResource

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from .stores._base import ObjectInfo, ObjectStream, Store

__all__ = ["LatencyStore", "RequestCount"]

#: Keys per listing page, as S3 and GCS return them.
PAGE = 1000


@dataclass
class RequestCount:
    """Requests made through one or more :class:`LatencyStore` s (shared, mutable)."""

    requests: int = 0


class LatencyStore(AsyncResource):
    """Wraps a store: every request waits one round-trip time first, and is counted.

    Entering it enters the inner store; closing it closes the inner store.

    Args:
        inner: the store that answers (a local folder in the demo).
        rtt: the round-trip time, in seconds.
        count: where to count requests (pass one to several wrappers to add them up).

    Example:
        >>> from aiomodelkit.stores import MemoryStore
        >>> store = LatencyStore(MemoryStore(), rtt=0.02)
        >>> store.count.requests
        0
    """

    def __init__(self, inner: Store, *, rtt: float, count: RequestCount | None = None) -> None:
        if rtt < 0:
            raise ValueError("rtt must be >= 0")
        self.inner = inner
        self.rtt = rtt
        self.count = count if count is not None else RequestCount()

    def __repr__(self) -> str:
        return f"LatencyStore({self.inner!r}, rtt={self.rtt})"

    @property
    def url(self) -> str:
        """The inner store's URL."""
        return self.inner.url

    @property
    def supports_conditional_writes(self) -> bool:
        """Whether the inner store enforces conditional writes."""
        return self.inner.supports_conditional_writes

    async def _aopen(self) -> None:
        await self.inner.__aenter__()

    async def _aclose(self) -> None:
        await self.inner.aclose()

    async def _round_trip(self) -> None:
        self.count.requests += 1
        await anyio.sleep(self.rtt)

    async def stat(self, key: str) -> ObjectInfo:
        await self._round_trip()
        return await self.inner.stat(key)

    @asynccontextmanager
    async def read(
        self,
        key: str,
        *,
        offset: int = 0,
        length: int | None = None,
        if_match: str | None = None,
    ) -> AsyncIterator[ObjectStream]:
        await self._round_trip()  # the first byte arrives one round trip after the request
        async with self.inner.read(key, offset=offset, length=length, if_match=if_match) as stream:
            yield stream

    async def list_objects(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        await self._round_trip()
        listed = 0
        async for info in self.inner.list_objects(prefix):
            if listed and listed % PAGE == 0:
                await self._round_trip()  # the next page
            listed += 1
            yield info

    async def put(
        self,
        key: str,
        data: bytes | Path,
        *,
        if_absent: bool = False,
        if_match: str | None = None,
    ) -> ObjectInfo:
        await self._round_trip()
        return await self.inner.put(key, data, if_absent=if_absent, if_match=if_match)

    async def delete(self, key: str) -> None:
        await self._round_trip()
        await self.inner.delete(key)
