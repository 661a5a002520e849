"""Moving one object from the store to a local file: streamed, or ranged when large; verified.

* Objects below ``range_threshold`` stream with one GET. A transient failure (5xx,
  throttling, reset, stall, truncated body) resumes with a ranged GET from the last byte
  written, pinned to the object's ETag/generation, so the hash state carries on.
* Larger objects are split into ``part_size`` ranges fetched concurrently, all pinned to
  the version token from one HEAD, each written at its offset and retried on its own.
  An object replaced mid-download fails with :class:`IntegrityError` instead of mixing.
* Both paths read bodies through one loop (:meth:`Transfer.receive`): every GET holds one
  token of the shared connection budget (:mod:`._adaptive`: fixed, or adapting to the
  store's throttling) for its whole life, so requests in flight are bounded across all
  objects and assets; memory is bounded by requests in flight times the write buffer.
  Metadata reads (index, meta, HEAD) have their own small budget when it adapts.
* Each request counts toward its asset's :attr:`Transfer.requests` (retries included): what
  a cold start cost the store, in the fetch result and the audit record.
* Sizes are always checked; so is one checksum, chosen by :mod:`._checksums`: the meta's
  XXH3-128 (SHA-256 under a lock file, or for older metas), else the store's MD5 when it is
  a content hash. :meth:`Transfer.download` says which one it verified.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, TypeVar

import anyio
import anyio.to_thread

from ._adaptive import ConnectionBudget
from ._checksums import SIZE, from_meta, from_store
from ._download_paths import Ranged, Streamed, check_size
from ._errors import (
    IntegrityError,
    ModelkitError,
    StoreUnavailableError,
)
from ._events import BytesReceived, ObjectDownloaded
from ._outcomes import congestion
from ._pacing import RequestPacer
from ._retry import retrying
from ._sink import FileSink, WriteBatcher

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path

    from ._events import Emitter
    from ._layout import FileEntry
    from ._values import RetryPolicy, TransferLimits
    from .stores._base import ObjectInfo, Store

__all__ = ["Transfer"]

T = TypeVar("T")


class Transfer:
    """Downloads objects of one store under one budget (connections, disk threads, pacing).

    One instance serves a whole :class:`~aiomodelkit.AssetsManager`, so its limits hold
    across every asset and object it fetches.
    """

    def __init__(
        self, store: Store, limits: TransferLimits, retry: RetryPolicy, emitter: Emitter
    ) -> None:
        self.store = store
        self.limits = limits
        self.retry = retry
        self.emitter = emitter
        # Metadata's own budget comes on top (the store's pool holds both: Settings sizes it),
        # so an index read never waits for a connection behind big GETs.
        self.budget = ConnectionBudget(limits.connections, adaptive=limits.adaptive)
        self.connections = self.budget.limiter
        self.metadata = (
            anyio.CapacityLimiter(limits.metadata_connections)
            if limits.adaptive and limits.metadata_connections
            else self.connections
        )
        self.disk = anyio.CapacityLimiter(limits.disk_threads)
        self.pacer = RequestPacer()
        self.batcher = WriteBatcher()
        #: Store requests sent for each asset name, retries included.
        self.requests: Counter[str] = Counter()
        self._jitter: anyio.Event | None = None

    async def request(self, call: Callable[[], Awaitable[T]], *, asset: str, key: str) -> T:
        """Run one small store request (HEAD, index, meta) under the budget and retries."""

        async def attempt() -> T:
            async with self._sending(self.metadata, asset):
                return await call()

        return await retrying(self.retry, attempt, emitter=self.emitter, asset=asset, key=key)

    @asynccontextmanager
    async def _sending(self, limiter: anyio.CapacityLimiter, asset: str) -> AsyncIterator[None]:
        """One request: the start jitter, a token of ``limiter``, pacing, counting; a
        congestion error shrinks the budget."""
        if self.limits.start_jitter and (self._jitter is None or not self._jitter.is_set()):
            await self._jittered_start()
        async with limiter:
            await self.budget.admit()
            await self.pacer.admit()
            self.requests[asset] += 1
            try:
                yield
            except StoreUnavailableError as exc:
                if congestion(exc):
                    self.budget.congested()
                raise

    async def _jittered_start(self) -> None:
        """The first request waits a random part of ``start_jitter``; the rest wait for it
        (a fleet that starts at once spreads its first requests)."""
        if self._jitter is not None:
            await self._jitter.wait()
            return
        self._jitter = anyio.Event()
        try:
            await anyio.sleep(random.uniform(0, self.limits.start_jitter))
        finally:
            self._jitter.set()

    async def download(
        self, key: str, target: Path, entry: FileEntry, *, asset: str, pinned: bool = False
    ) -> tuple[int, str]:
        """Download one object to ``target`` and verify it.

        Args:
            pinned: a lock file pins the object's SHA-256: verify that one.

        Returns:
            Its size, and the checksum verified (``xxh3_128``, ``sha256``, ``md5``, or
            ``size`` when there was none).

        Raises:
            IntegrityError: the size or a checksum does not match, or the object was
                replaced during the download.
            StoreUnavailableError: transient errors outlasted ``max_attempts``.
            AssetNotFoundError: the object is missing.
        """
        try:
            return await self._download(key, target, entry, asset, pinned)
        except ModelkitError as exc:
            exc.add_context(asset=asset, key=key)  # store errors know the key, not the asset
            raise

    async def _download(
        self, key: str, target: Path, entry: FileEntry, asset: str, pinned: bool
    ) -> tuple[int, str]:
        info: ObjectInfo | None = None
        if entry.size is None or entry.size >= self.limits.range_threshold:
            info = await self.request(partial(self.store.stat, key), asset=asset, key=key)
            check_size(info.size, entry, asset, key)
        expected = from_meta(entry, pinned=pinned)
        sink = FileSink(target)
        if expected is not None:
            sink.hash_with(expected.algorithm)
        try:
            if info is not None and info.size >= self.limits.range_threshold:
                if expected is None and (expected := from_store(info)) is not None:
                    sink.hash_with(expected.algorithm)
                await Ranged(self, key, sink, info, asset).run()
                size = info.size
            else:
                streamed = Streamed(self, key, sink, entry, info, asset, expected)
                size = await streamed.run()
                expected = streamed.expected
            digest = sink.hexdigest(expected.algorithm) if expected is not None else None
        finally:
            if sink.fd is not None:  # small objects were written and closed in one call
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(sink.close, limiter=self.disk)
        if expected is not None and digest != expected.hexdigest:
            raise IntegrityError(expected.mismatch(), asset=asset, key=key)
        self.emitter.emit(ObjectDownloaded(asset=asset, key=key, size=size))
        return size, expected.algorithm if expected is not None else SIZE

    async def receive(
        self,
        key: str,
        *,
        asset: str,
        offset: int,
        length: int | None,
        token: str | None,
        expected: int | None,
        flush_at: int,
        flush: Callable[[list[bytes]], Awaitable[None]],
        on_open: Callable[[ObjectInfo], int] | None = None,
    ) -> list[bytes]:
        """The one read loop: one GET, its body handed to ``flush`` every ``flush_at`` bytes.

        Holds a connection of the budget until the body is read; returns the bytes not yet
        flushed, for the caller to write once the connection is back in the pool.

        Args:
            expected: the most bytes this body may have (more is an IntegrityError); None
                lets ``on_open`` decide from the response.
            on_open: called with the response's object info before the first chunk;
                returns ``expected``.
        """
        emit = self.emitter.emit if self.emitter.active else None
        async with self._sending(self.connections, asset):
            started = time.monotonic()
            read = self.store.read(key, offset=offset, length=length, if_match=token)
            async with read as stream:
                if on_open is not None:
                    expected = on_open(stream.info)
                assert expected is not None
                buffer: list[bytes] = []
                buffered = received = 0
                async for chunk in stream:
                    buffer.append(chunk)
                    buffered += len(chunk)
                    received += len(chunk)
                    if received > expected:
                        raise IntegrityError(
                            f"body is longer than the {expected} bytes expected",
                            asset=asset,
                            key=key,
                        )
                    if emit is not None:
                        emit(BytesReceived(asset=asset, key=key, size=len(chunk)))
                    if buffered >= flush_at:
                        await flush(buffer)
                        buffer, buffered = [], 0
            self.budget.succeeded(received, time.monotonic() - started)
            return buffer
