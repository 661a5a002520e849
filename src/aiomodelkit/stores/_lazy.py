"""A store that opens its client on first use, so a warm start never touches the network.

Creating an SDK client can itself do I/O (botocore may ask the instance metadata service
for credentials); a start whose assets are all pinned and cached needs no client at all.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio

from aiomodelkit._lifecycle import AsyncResource

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from contextlib import AbstractAsyncContextManager
    from pathlib import Path

    from ._base import ObjectInfo, ObjectStream, Store

__all__ = ["LazyStore"]


class LazyStore(AsyncResource):
    """Wraps an unopened store; enters it on the first operation, closes it on exit."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self._lock = anyio.Lock()
        self._opened = False

    def __repr__(self) -> str:
        return f"LazyStore({self.inner!r})"

    @property
    def opened(self) -> bool:
        """Whether the inner store has been opened."""
        return self._opened

    @property
    def url(self) -> str:
        return self.inner.url

    @property
    def supports_conditional_writes(self) -> bool:
        return self.inner.supports_conditional_writes

    async def _open(self) -> Store:
        if not self._opened:
            async with self._lock:
                if not self._opened:
                    await self.inner.__aenter__()
                    self._opened = True
        return self.inner

    async def _aclose(self) -> None:
        """Close the inner store if the first operation opened it."""
        if self._opened:
            self._opened = False
            await self.inner.aclose()

    async def stat(self, key: str) -> ObjectInfo:
        return await (await self._open()).stat(key)

    def read(
        self,
        key: str,
        *,
        offset: int = 0,
        length: int | None = None,
        if_match: str | None = None,
        if_none_match: str | None = None,
    ) -> AbstractAsyncContextManager[ObjectStream]:
        if self._opened:  # the common case: no extra context-manager layer per object
            return self.inner.read(
                key, offset=offset, length=length, if_match=if_match, if_none_match=if_none_match
            )
        return self._read_opening(key, offset, length, if_match, if_none_match)

    @asynccontextmanager
    async def _read_opening(
        self,
        key: str,
        offset: int,
        length: int | None,
        if_match: str | None,
        if_none_match: str | None,
    ) -> AsyncIterator[ObjectStream]:
        store = await self._open()
        async with store.read(
            key, offset=offset, length=length, if_match=if_match, if_none_match=if_none_match
        ) as stream:
            yield stream

    async def list_objects(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        async for info in (await self._open()).list_objects(prefix):
            yield info

    async def put(
        self,
        key: str,
        data: bytes | Path,
        *,
        if_absent: bool = False,
        if_match: str | None = None,
    ) -> ObjectInfo:
        return await (await self._open()).put(key, data, if_absent=if_absent, if_match=if_match)

    async def delete(self, key: str) -> None:
        await (await self._open()).delete(key)
