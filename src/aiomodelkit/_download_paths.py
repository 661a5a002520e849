"""The two ways one object comes down, under a :class:`~aiomodelkit._transfer.Transfer`.

* :class:`Streamed`: one GET, resumed from the last byte written after a transient error,
  pinned to the object's ETag/generation so the hash state carries on.
* :class:`Ranged`: concurrent ranged GETs pinned to one version of a large object, written
  at their offsets by one writer per file, the contiguous prefix hashed as it grows.

Both read bodies through :meth:`Transfer.receive <aiomodelkit._transfer.Transfer>` (one
loop, one connection token per GET) and leave the verdict to :meth:`Transfer.download`.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Protocol

import anyio
import anyio.to_thread

from ._checksums import from_store
from ._errors import IntegrityError, ModelkitError, PreconditionFailedError
from ._groups import first_error
from ._retry import TruncatedBodyError, retrying
from ._sink import WriteBatcher
from ._values import RANGE_WRITE_BUFFER, WRITE_BUFFER

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from ._checksums import Expected
    from ._events import Emitter
    from ._layout import FileEntry
    from ._sink import FileSink
    from ._values import RetryPolicy, TransferLimits
    from .stores._base import ObjectInfo

__all__ = ["Ranged", "Receiver", "Streamed", "check_size"]


class Receiver(Protocol):
    """What a download reads of :class:`aiomodelkit._transfer.Transfer` (which imports
    this module: a protocol, not an import, keeps the layers one way)."""

    limits: TransferLimits
    retry: RetryPolicy
    emitter: Emitter
    disk: anyio.CapacityLimiter
    batcher: WriteBatcher

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
    ) -> list[bytes]: ...


class _Download:
    """One object on its way into ``sink``."""

    def __init__(self, transfer: Receiver, key: str, sink: FileSink, asset: str) -> None:
        self.transfer = transfer
        self.key = key
        self.sink = sink
        self.asset = asset

    async def _retrying(self, attempt: Callable[[], Awaitable[None]]) -> None:
        retry, emitter = self.transfer.retry, self.transfer.emitter
        await retrying(retry, attempt, emitter=emitter, asset=self.asset, key=self.key)


class Streamed(_Download):
    """One GET, resumed from the last byte written on transient errors."""

    def __init__(
        self,
        transfer: Receiver,
        key: str,
        sink: FileSink,
        entry: FileEntry,
        info: ObjectInfo | None,
        asset: str,
        expected: Expected | None,
    ) -> None:
        super().__init__(transfer, key, sink, asset)
        self.entry = entry
        self.written = 0  # bytes on disk: a retry resumes here (buffered bytes are lost)
        self.token = info.version_token if info is not None else None
        self.total = info.size if info is not None else entry.size
        self.expected = expected  # the meta's checksum, else the store's (from the response)
        self.first = True

    async def run(self) -> int:
        await self._retrying(self._attempt)
        assert self.total is not None
        return self.total

    def _opened(self, info: ObjectInfo) -> int:
        """The first response: it names the size, version token and MD5 of the object."""
        self.first = False
        check_size(info.size, self.entry, self.asset, self.key)
        self.total, self.token = info.size, info.version_token
        if self.expected is None and (store := from_store(info)) is not None:
            self.expected = store  # before the first byte: the digest covers them all
            self.sink.hash_with(store.algorithm)
        return info.size

    async def _append(self, buffer: list[bytes]) -> None:
        await anyio.to_thread.run_sync(self.sink.append, buffer, False, limiter=self.transfer.disk)
        self.written += sum(map(len, buffer))

    async def _attempt(self) -> None:
        t = self.transfer
        with _replaced_is_integrity(self.asset, self.key):
            tail = await t.receive(
                self.key,
                asset=self.asset,
                offset=self.written,
                length=None,
                token=self.token,
                expected=None if self.first else (self.total or 0) - self.written,
                flush_at=WRITE_BUFFER,
                flush=self._append,
                on_open=self._opened if self.first else None,
            )
        assert self.total is not None
        size = sum(map(len, tail))
        last = self.written + size >= self.total
        # The body is read and the connection back in the pool: the last write must not hold
        # a connection (under GIL contention a worker-thread write can take milliseconds).
        if last and self.sink.fd is None:
            # The whole object is in memory: write it with others in one hop.
            await t.batcher.run(partial(self.sink.append, tail, True), t.disk)
        else:
            await anyio.to_thread.run_sync(self.sink.append, tail, last, limiter=t.disk)
        self.written += size
        if not last:
            raise TruncatedBodyError(
                f"body ended after {self.written} of {self.total} bytes",
                key=self.key,
                asset=self.asset,
            )


class Ranged(_Download):
    """Concurrent ranged GETs pinned to one version of the object, written at offsets.

    At most ``ranges_per_object`` ranges of one object are in flight, started in order, so
    the contiguous prefix of the file grows steadily and is hashed (in a worker thread)
    while the rest still downloads: verification costs a short tail, not a second pass.
    """

    def __init__(
        self, transfer: Receiver, key: str, sink: FileSink, info: ObjectInfo, asset: str
    ) -> None:
        super().__init__(transfer, key, sink, asset)
        self.info = info
        part = transfer.limits.part_for(info.size)
        self.starts = list(range(0, info.size, part))
        self.lengths = [min(part, info.size - start) for start in self.starts]
        self.progress = [0] * len(self.starts)  # bytes of each range on disk: retries resume
        self.landed = anyio.Event()  # set (and replaced) whenever a write lands
        # One writer per file: concurrent pwritev calls on one file spin on its inode lock
        # (ext4's i_rwsem: ~0.2 s of CPU per GiB at 4 threads), so the ranges' buffers are
        # group-committed, every buffer waiting meanwhile written in the next single hop.
        self.writes = WriteBatcher()

    async def run(self) -> None:
        t = self.transfer
        await anyio.to_thread.run_sync(self.sink.open, self.info.size, limiter=t.disk)
        # A pool of ``ranges_per_object`` workers taking the ranges in order, not a task per
        # range: a 1 GiB object has 128 ranges, and spawning 128 tasks at once held the
        # event loop for ~35 ms.
        indices = iter(range(len(self.starts)))

        async def worker() -> None:
            for index in indices:  # shared: each range is taken by one worker
                await self._retrying(partial(self._attempt, index))

        try:
            async with anyio.create_task_group() as tg:
                if self.sink.hashing:
                    tg.start_soon(self._hash)
                for _ in range(min(len(self.starts), t.limits.ranges_per_object)):
                    tg.start_soon(worker)
        except* ModelkitError as group:
            first = first_error(group)  # one object, one error: the first failed part
            raise first from first.__cause__
        except* OSError as group:
            # A local disk error (the caller maps it to CacheError): the first one, unwrapped.
            leaf: BaseException = group
            while isinstance(leaf, BaseExceptionGroup):
                leaf = leaf.exceptions[0]
            raise leaf from None

    def _frontier(self) -> int:
        """The end of the contiguous prefix on disk."""
        for index, done in enumerate(self.progress):
            if done < self.lengths[index]:
                return self.starts[index] + done
        return self.info.size

    async def _hash(self) -> None:
        hashed = 0
        while hashed < self.info.size:
            end = self._frontier()
            if end > hashed:
                await anyio.to_thread.run_sync(
                    self.sink.hash_range, hashed, end, limiter=self.transfer.disk
                )
                hashed = end
            else:
                await self.landed.wait()

    async def _write(self, index: int, buffer: list[bytes]) -> None:
        at = self.starts[index] + self.progress[index]
        await self.writes.run(partial(self.sink.write_at, buffer, at), self.transfer.disk)
        self.progress[index] += sum(map(len, buffer))
        self.landed.set()
        self.landed = anyio.Event()

    async def _attempt(self, index: int) -> None:
        done, length = self.progress[index], self.lengths[index]
        with _replaced_is_integrity(self.asset, self.key):
            tail = await self.transfer.receive(
                self.key,
                asset=self.asset,
                offset=self.starts[index] + done,
                length=length - done,
                token=self.info.version_token,
                expected=length - done,
                flush_at=RANGE_WRITE_BUFFER,
                flush=partial(self._write, index),
            )
        if tail:
            await self._write(index, tail)
        if self.progress[index] < length:
            raise TruncatedBodyError(
                f"range ended after {self.progress[index]} of {length} bytes",
                key=self.key,
                asset=self.asset,
            )


@contextmanager
def _replaced_is_integrity(asset: str, key: str) -> Iterator[None]:
    """A pinned read that finds another version of the object: refuse, never mix."""
    try:
        yield
    except PreconditionFailedError as exc:
        raise IntegrityError(
            "object was replaced during the download (its ETag/generation changed); "
            "nothing was mixed",
            asset=asset,
            key=key,
        ) from exc


def check_size(actual: int, entry: FileEntry, asset: str, key: str) -> None:
    if entry.size is not None and actual != entry.size:
        raise IntegrityError(
            f"object has {actual} bytes, its meta records {entry.size}", asset=asset, key=key
        )
