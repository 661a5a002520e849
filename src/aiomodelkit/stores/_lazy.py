"""A store that opens its client on first use, so a warm start never touches the network.

Creating an SDK client can itself do I/O (botocore may ask the instance metadata service
for credentials); a start whose assets are all pinned and cached needs no client at all.

It is also where every request of a manager passes, so it reports each one to the
process-wide listeners as a :class:`~aiomodelkit.StoreRequest` (method, outcome, seconds),
for metrics. With no listener subscribed, nothing is timed and reads are handed out as the
inner store returns them: one check of an empty tuple per request.
"""

from __future__ import annotations

import time
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, TypeVar

import anyio

from aiomodelkit._events import StoreRequest, observed, publish
from aiomodelkit._lifecycle import AsyncResource
from aiomodelkit._outcomes import request_outcome

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path
    from types import TracebackType

    from ._base import ObjectInfo, ObjectStream, Store

__all__ = ["LazyStore"]

T = TypeVar("T")


class LazyStore(AsyncResource):
    """Wraps an unopened store; enters it on the first operation, closes it on exit."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self._url = inner.url  # the label of its requests (a plain value: no I/O)
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

    def _report(self, method: str, key: str, started: float, exc: BaseException | None) -> None:
        seconds = time.perf_counter() - started
        event = StoreRequest(method=method, key=key, outcome=request_outcome(exc), seconds=seconds)
        publish(event, self._url)

    async def _call(self, method: str, key: str, call: Callable[[Store], Awaitable[T]]) -> T:
        if not observed():
            return await call(await self._open())
        started = time.perf_counter()
        try:
            result = await call(await self._open())
        except BaseException as exc:
            self._report(method, key, started, exc)
            raise
        self._report(method, key, started, None)
        return result

    async def stat(self, key: str) -> ObjectInfo:
        return await self._call("HEAD", key, lambda store: store.stat(key))

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
            read = self.inner.read(
                key, offset=offset, length=length, if_match=if_match, if_none_match=if_none_match
            )
        else:
            read = self._read_opening(key, offset, length, if_match, if_none_match)
        return _ObservedRead(self, key, read) if observed() else read

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
        if not observed():
            async for info in (await self._open()).list_objects(prefix):
                yield info
            return
        started = time.perf_counter()
        try:
            async for info in (await self._open()).list_objects(prefix):
                yield info
        except GeneratorExit:  # the caller stopped early: the listing itself went well
            self._report("LIST", prefix, started, None)
            raise
        except BaseException as exc:
            self._report("LIST", prefix, started, exc)
            raise
        self._report("LIST", prefix, started, None)

    async def put(
        self,
        key: str,
        data: bytes | Path,
        *,
        if_absent: bool = False,
        if_match: str | None = None,
    ) -> ObjectInfo:
        return await self._call(
            "PUT", key, lambda store: store.put(key, data, if_absent=if_absent, if_match=if_match)
        )

    async def delete(self, key: str) -> None:
        await self._call("DELETE", key, lambda store: store.delete(key))


class _ObservedRead(AbstractAsyncContextManager["ObjectStream"]):
    """A read, reported once its body is consumed, or it fails, or its caller does.

    A class rather than an ``asynccontextmanager``: no async generator per request (the
    generator machinery cost a few microseconds per object of W3).
    """

    __slots__ = ("_key", "_read", "_started", "_store")

    def __init__(
        self, store: LazyStore, key: str, read: AbstractAsyncContextManager[ObjectStream]
    ) -> None:
        self._store = store
        self._key = key
        self._read = read
        self._started = 0.0

    async def __aenter__(self) -> ObjectStream:
        self._started = time.perf_counter()
        try:
            return await self._read.__aenter__()
        except BaseException as exc:
            self._store._report("GET", self._key, self._started, exc)
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        try:
            suppressed = await self._read.__aexit__(exc_type, exc, tb)
        except BaseException as error:
            self._store._report("GET", self._key, self._started, error)
            raise
        self._store._report("GET", self._key, self._started, None if suppressed else exc)
        return suppressed
