"""A store wrapper that counts requests, adds a round trip to each and injects faults.

For tests of startup paths, and for the demo without moto: a local folder behind a simulated
round-trip time, where the number of requests, not the disk, sets the pace.
"""

from __future__ import annotations

from collections import Counter
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

from aiomodelkit._errors import NotModifiedError, StoreUnavailableError
from aiomodelkit._lifecycle import AsyncResource
from aiomodelkit.stores._base import ObjectInfo, ObjectStream, Store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

__all__ = ["Fault", "InstrumentedStore"]


@dataclass
class Fault:
    """A fault applied to reads whose key matches.

    Attributes:
        match: a predicate on the key.
        times: how many reads it affects (then it is spent).
        fail: raise this before the response (a transient 503 by default).
        truncate_after: end the body after this many bytes (a dropped connection).
        chunk_delay: sleep this long before each chunk (a slow or stalled link).
    """

    match: Callable[[str], bool] = lambda key: True
    times: int = 1
    fail: Exception | None = None
    truncate_after: int | None = None
    chunk_delay: float = 0.0
    hits: int = field(default=0, init=False)


#: Keys per listing page, as S3 and GCS return them: each page is one request.
PAGE = 1000


class InstrumentedStore(AsyncResource):
    """Wraps a real store: counts every request per kind and key, and injects faults.

    Entering it enters the inner store; closing it closes the inner store. A listing counts
    one request per page of :data:`PAGE` keys, as S3 and GCS answer it. A conditional read
    (``if_none_match``) is one ``read`` request, counted again as a ``conditional_read``,
    and as ``not_modified`` when the store answered :class:`~aiomodelkit.NotModifiedError`
    (with no body, where the server honours the header): see :meth:`count`.

    Args:
        inner: the store that answers.
        rtt: seconds each request waits before it starts (a warm connection's round trip,
            no bandwidth limit): a local store then paces like a remote one.

    Example:
        >>> from aiomodelkit.stores import MemoryStore
        >>> store = InstrumentedStore(MemoryStore(), rtt=0.02)
        >>> store.requests
        0
    """

    def __init__(self, inner: Store, *, rtt: float = 0.0) -> None:
        if rtt < 0:
            raise ValueError("rtt must be >= 0")
        self.inner = inner
        self.rtt = rtt
        self.calls: Counter[tuple[str, str]] = Counter()
        # What conditional reads were and got, per (kind, key): not requests of their own.
        self.conditions: Counter[tuple[str, str]] = Counter()
        self.faults: list[Fault] = []

    async def _request(self, op: str, key: str) -> None:
        self.calls[op, key] += 1
        if self.rtt:
            await anyio.sleep(self.rtt)

    @property
    def requests(self) -> int:
        """Operations sent to the inner store so far."""
        return sum(self.calls.values())

    @property
    def conditional_reads(self) -> int:
        """Reads sent with ``if_none_match`` so far (each also counts as a ``read``)."""
        return self.count("conditional_read")

    @property
    def not_modified(self) -> int:
        """Conditional reads the inner store answered with ``NotModifiedError`` so far."""
        return self.count("not_modified")

    def count(self, op: str, key_suffix: str = "") -> int:
        """Operations of one kind (``stat``, ``read``, ``list``, ``put``, ``delete``), or
        reads of one outcome (``conditional_read``, ``not_modified``), on matching keys."""
        counts = self.conditions if op in ("conditional_read", "not_modified") else self.calls
        return sum(n for (o, k), n in counts.items() if o == op and k.endswith(key_suffix))

    def inject(self, fault: Fault) -> Fault:
        """Add a fault for later reads; returns it (its ``hits`` counts uses)."""
        self.faults.append(fault)
        return fault

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

    async def stat(self, key: str) -> ObjectInfo:
        await self._request("stat", key)
        return await self.inner.stat(key)

    def _fault(self, key: str) -> Fault | None:
        for fault in self.faults:
            if fault.hits < fault.times and fault.match(key):
                fault.hits += 1
                return fault
        return None

    @asynccontextmanager
    async def read(
        self,
        key: str,
        *,
        offset: int = 0,
        length: int | None = None,
        if_match: str | None = None,
        if_none_match: str | None = None,
    ) -> AsyncIterator[ObjectStream]:
        await self._request("read", key)  # the first byte arrives one round trip later
        if if_none_match is not None:
            self.conditions["conditional_read", key] += 1
        fault = self._fault(key)
        if fault is not None and fault.fail is not None:
            raise fault.fail
        reading = self.inner.read(
            key, offset=offset, length=length, if_match=if_match, if_none_match=if_none_match
        )
        async with AsyncExitStack() as stack:
            try:
                stream = await stack.enter_async_context(reading)
            except NotModifiedError:
                self.conditions["not_modified", key] += 1  # what entering raised, only
                raise
            if fault is None:
                yield stream
            else:
                yield ObjectStream(stream.info, _faulty(stream, fault, key))

    async def list_objects(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        await self._request("list", prefix)
        listed = 0
        async for info in self.inner.list_objects(prefix):
            if listed and listed % PAGE == 0:
                await self._request("list", prefix)  # the next page
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
        await self._request("put", key)
        return await self.inner.put(key, data, if_absent=if_absent, if_match=if_match)

    async def delete(self, key: str) -> None:
        await self._request("delete", key)
        await self.inner.delete(key)


async def _faulty(stream: ObjectStream, fault: Fault, key: str) -> AsyncIterator[bytes]:
    sent = 0
    async for chunk in stream:
        if fault.chunk_delay:
            await anyio.sleep(fault.chunk_delay)
        if fault.truncate_after is not None and sent + len(chunk) > fault.truncate_after:
            yield chunk[: fault.truncate_after - sent]
            return  # the body just ends, as when a connection drops
        sent += len(chunk)
        yield chunk


def transient(message: str = "503 SlowDown (injected)") -> StoreUnavailableError:
    """A transient store error, as a fault's ``fail``."""
    return StoreUnavailableError(message)
