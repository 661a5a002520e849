"""Downloading one object to a local file: streamed, ranged when large, retried, verified.

* Objects below ``range_threshold`` stream with one GET. A transient failure (5xx,
  throttling, reset, stall, truncated body) resumes with a ranged GET from the last byte
  written, pinned to the object's ETag/generation, so the hash state carries on.
* Larger objects are split into ``part_size`` ranges fetched concurrently, all pinned to
  the version token from one HEAD, each written at its offset and retried on its own.
  An object replaced mid-download fails with :class:`IntegrityError` instead of mixing.
* Every GET holds one token of the shared connection limiter for its whole life, so the
  total number of requests in flight is bounded across all objects and assets; memory is
  bounded by in-flight requests times ``WRITE_BUFFER``.
* Disk writes go to worker threads in ``WRITE_BUFFER`` batches (``os.writev``/``pwritev``),
  never one thread hop per network chunk, and never on the event loop.
* Sizes are always checked; SHA-256 from the meta when it has one, else the store's MD5
  when it is a content hash.
"""

from __future__ import annotations

import hashlib
import os
import random
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, TypeVar

import anyio
import anyio.to_thread

from ._errors import (
    IntegrityError,
    ModelkitError,
    PreconditionFailedError,
    StoreUnavailableError,
    first_error,
)
from ._events import BytesReceived, Event, EventCallback, ObjectDownloaded, Retrying
from ._pacing import RequestPacer
from .stores._base import MiB, ObjectInfo, Store

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator
    from pathlib import Path

    from ._layout import FileEntry

__all__ = ["TransferConfig", "download_object", "with_retries"]

T = TypeVar("T")

#: Bytes gathered from the network before one disk write (one worker-thread hop).
WRITE_BUFFER = 1 * MiB
#: The same for each range of a large object: 32 ranges in flight hold up to 32 of these
#: (plus what aiohttp buffers per connection), which bounds peak memory.
RANGE_WRITE_BUFFER = 512 * 1024
#: Ranges of one object in flight at once (each also takes a connection of the budget).
#: A cloud object store serves one connection at a fraction of a VM's link (S3: ~90 MB/s
#: per connection against 10-25 Gbit/s), so one big object needs many connections; 16
#: fill a 10 Gbit/s link. Each also costs memory (aiohttp buffers up to ~0.75 MiB per
#: connection, plus our write buffer): 16 keep a 1 GiB download under 150 MiB of peak RSS,
#: and the in-order hasher trails 16 x 8 MiB, ~0.1 s of hashing after the last byte.
RANGES_PER_OBJECT = 16
#: Bytes read back per call when hashing a ranged download (into one reused buffer).
_HASH_BLOCK = 1 * MiB


class TruncatedBodyError(StoreUnavailableError):
    """A response body ended before all its bytes arrived (transient: resumed)."""


@dataclass(frozen=True, slots=True)
class TransferConfig:
    """How objects are downloaded; one instance is shared by a whole manager.

    Attributes:
        connections: bounds GETs and HEADs in flight, across every asset and object.
        disk: bounds worker threads writing to disk.
        range_threshold: objects at least this big are fetched as concurrent ranges.
        part_size: the size of each range.
        ranges_per_object: ranges of one object in flight at once.
        max_attempts: tries per object (or per range) on transient errors.
        backoff: the first retry delay, doubled each time, with full jitter.
        backoff_max: the longest retry delay.
        pacer: spreads request starts over event-loop iterations.
        on_event: receives progress events.
    """

    connections: anyio.CapacityLimiter
    disk: anyio.CapacityLimiter
    batcher: WriteBatcher = field(default_factory=lambda: WriteBatcher())
    pacer: RequestPacer = field(default_factory=lambda: RequestPacer())
    range_threshold: int = 64 * MiB
    part_size: int = 8 * MiB
    ranges_per_object: int = RANGES_PER_OBJECT
    max_attempts: int = 5
    backoff: float = 0.25
    backoff_max: float = 10.0
    on_event: EventCallback | None = None

    def emit(self, event: Event) -> None:
        """Deliver a progress event, if anyone listens."""
        if self.on_event is not None:
            self.on_event(event)


class _Slot:
    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.error: BaseException | None = None


class WriteBatcher:
    """Group commit for small files: whole-file writes share worker-thread hops.

    Thousands of small objects would otherwise cost a thread hop each (about 0.2 ms of
    CPU, more than writing 16 KiB). The first writer to arrive runs every queued write in
    one worker-thread call, then any that queued meanwhile; the others just wait.
    """

    MAX_BATCH = 64

    def __init__(self) -> None:
        self._queue: list[tuple[Callable[[], None], _Slot]] = []
        self._flushing = False

    async def run(self, job: Callable[[], None], limiter: anyio.CapacityLimiter) -> None:
        """Run ``job`` (blocking file work) in a worker thread, batched with others.

        A cancelled caller returns once its job can no longer touch the disk: a job still
        queued is dropped, a job in a worker thread is waited for. Its caller may then
        remove the job's files (a staging copy) without a write landing behind it.
        """
        slot = _Slot()
        entry = (job, slot)
        self._queue.append(entry)
        if not self._flushing:
            self._flushing = True
            try:
                # Shielded: the writes queued behind this task must finish even if its own
                # caller is cancelled, or their waiters would wait forever.
                with anyio.CancelScope(shield=True):
                    while self._queue:
                        batch = self._queue[: self.MAX_BATCH]
                        del self._queue[: self.MAX_BATCH]
                        errors = await anyio.to_thread.run_sync(_run_batch, batch, limiter=limiter)
                        for (_, waiting), error in zip(batch, errors, strict=True):
                            waiting.error = error
                            waiting.done.set()
            finally:
                self._flushing = False
        try:
            await slot.done.wait()
        except anyio.get_cancelled_exc_class():
            queued = next((i for i, item in enumerate(self._queue) if item is entry), None)
            if queued is not None:
                del self._queue[queued]
            else:  # in a batch now: wait for it, or a file could appear after cleanup
                with anyio.CancelScope(shield=True):
                    await slot.done.wait()
            raise
        if slot.error is not None:
            raise slot.error


def _run_batch(batch: list[tuple[Callable[[], None], _Slot]]) -> list[BaseException | None]:
    errors: list[BaseException | None] = []
    for job, _ in batch:
        try:
            job()
        except Exception as exc:  # delivered to the job's own awaiting task
            errors.append(exc)
        else:
            errors.append(None)
    return errors


class _Sink:
    """A file being written, with its running digests (touched only from worker threads)."""

    def __init__(self, path: Path, sha256: bool, md5: bool) -> None:
        self.path = path
        self.fd: int | None = None
        self.sha256 = hashlib.sha256() if sha256 else None
        self.md5 = hashlib.md5(usedforsecurity=False) if md5 else None
        self._hash_buffer: bytearray | None = None

    def open(self, size: int | None = None) -> None:
        if self.fd is None:
            # Read-write: ranged downloads read the written prefix back to hash it.
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            if size:
                os.ftruncate(self.fd, size)

    def append(self, chunks: list[bytes], close: bool) -> None:
        self.open()
        assert self.fd is not None
        for digest in (self.sha256, self.md5):
            if digest is not None:
                for chunk in chunks:
                    digest.update(chunk)
        _write_all(self.fd, chunks, None)
        if close:
            self.close()

    def write_at(self, chunks: list[bytes], position: int) -> None:
        assert self.fd is not None
        _write_all(self.fd, chunks, position)

    def close(self) -> None:
        self._hash_buffer = None
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)

    @property
    def hashing(self) -> bool:
        return self.sha256 is not None or self.md5 is not None

    def hash_range(self, start: int, end: int) -> None:
        """Feed bytes [start, end) of the file, already written, to the digests.

        Ranged downloads land out of order; this reads the contiguous prefix back (from the
        page cache) while later ranges are still arriving.
        """
        assert self.fd is not None
        # One buffer, reused: a fresh block per read would be allocated in this worker
        # thread's malloc arena, and glibc keeps such arenas' memory (peak RSS grew by
        # tens of MiB per hashing thread).
        if self._hash_buffer is None:
            self._hash_buffer = bytearray(_HASH_BLOCK)
        view = memoryview(self._hash_buffer)
        while start < end:
            count = os.preadv(self.fd, [view[: min(_HASH_BLOCK, end - start)]], start)
            if not count:
                raise OSError(f"{self.path} is shorter than the bytes written to it")
            for digest in (self.sha256, self.md5):
                if digest is not None:
                    digest.update(view[:count])
            start += count

    def hexdigests(self) -> tuple[str | None, str | None]:
        return (
            self.sha256.hexdigest() if self.sha256 else None,
            self.md5.hexdigest() if self.md5 else None,
        )


def _write_all(fd: int, chunks: list[bytes], position: int | None) -> None:
    views = [memoryview(c) for c in chunks if c]
    while views:
        if position is None:
            written = os.writev(fd, views)
        else:
            written = os.pwritev(fd, views, position)
            position += written
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views and written:
            views[0] = views[0][written:]


async def _attempts(
    cfg: TransferConfig, asset: str, key: str, attempt: Callable[[], Awaitable[T]]
) -> T:
    """Run ``attempt`` until it succeeds, retrying transient errors with backoff.

    Exponential backoff with full jitter, at most ``max_attempts`` tries, each retry
    announced by a ``Retrying`` event. Written out rather than built with tenacity: its
    per-call machinery measured ~60 µs per object, a visible share of the CPU spent on
    thousands of small objects, and this loop is the whole policy.
    """
    number = 1
    while True:
        try:
            return await attempt()
        except StoreUnavailableError as exc:
            if number >= cfg.max_attempts:
                raise
            delay = random.uniform(0, min(cfg.backoff_max, cfg.backoff * 2 ** (number - 1)))
            cfg.emit(
                Retrying(
                    asset=asset,
                    key=key,
                    attempt=number,
                    delay=delay,
                    error=f"{type(exc).__name__}: {exc}",
                )
            )
            await anyio.sleep(delay)
            number += 1


async def download_object(
    store: Store, key: str, target: Path, entry: FileEntry, cfg: TransferConfig, *, asset: str
) -> int:
    """Download one object to ``target`` and verify it; returns its size.

    Raises:
        IntegrityError: the size or a checksum does not match, or the object was replaced
            during the download.
        StoreUnavailableError: transient errors outlasted ``max_attempts``.
        AssetNotFoundError: the object is missing.
    """
    try:
        return await _download_object(store, key, target, entry, cfg, asset)
    except ModelkitError as exc:
        exc.add_context(asset=asset, key=key)  # store errors know the key, not the asset
        raise


async def _download_object(
    store: Store, key: str, target: Path, entry: FileEntry, cfg: TransferConfig, asset: str
) -> int:
    info: ObjectInfo | None = None
    if entry.size is None or entry.size >= cfg.range_threshold:
        info = await with_retries(cfg, asset, key, lambda: store.stat(key))
        _check_size(info.size, entry, asset, key)
    size = info.size if info is not None else entry.size
    sink = _Sink(target, sha256=entry.sha256 is not None, md5=False)
    try:
        if size is not None and size >= cfg.range_threshold and info is not None:
            sink.md5 = hashlib.md5(usedforsecurity=False) if not entry.sha256 and info.md5 else None
            await _ranged(store, key, sink, info, cfg, asset)
            sha256, md5 = sink.hexdigests()
            expected_md5 = info.md5
        else:
            size, expected_md5 = await _streamed(store, key, sink, entry, info, cfg, asset)
            sha256, md5 = sink.hexdigests()
    finally:
        if sink.fd is not None:  # small objects were written and closed in one call
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(sink.close, limiter=cfg.disk)
    if entry.sha256 is not None and sha256 != entry.sha256:
        raise IntegrityError("SHA-256 does not match the meta", asset=asset, key=key)
    if entry.sha256 is None and expected_md5 is not None and md5 != expected_md5:
        raise IntegrityError("MD5 does not match the store's", asset=asset, key=key)
    cfg.emit(ObjectDownloaded(asset=asset, key=key, size=size))
    return size


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


async def with_retries(
    cfg: TransferConfig, asset: str, key: str, call: Callable[[], Awaitable[T]]
) -> T:
    """Run one store request under the retry policy (for metadata: HEAD, index, meta)."""

    async def attempt() -> T:
        async with cfg.connections:
            await cfg.pacer.admit()
            return await call()

    return await _attempts(cfg, asset, key, attempt)


def _check_size(actual: int, entry: FileEntry, asset: str, key: str) -> None:
    if entry.size is not None and actual != entry.size:
        raise IntegrityError(
            f"object has {actual} bytes, its meta records {entry.size}", asset=asset, key=key
        )


async def _streamed(
    store: Store,
    key: str,
    sink: _Sink,
    entry: FileEntry,
    info: ObjectInfo | None,
    cfg: TransferConfig,
    asset: str,
) -> tuple[int, str | None]:
    """One GET, resumed from the last byte written on transient errors."""
    written = 0  # bytes on disk: a retry resumes here (bytes still in a buffer are lost)
    token = info.version_token if info is not None else None
    total = info.size if info is not None else entry.size
    expected_md5 = info.md5 if info is not None else None
    first = True

    async def attempt() -> None:
        nonlocal written, token, total, expected_md5, first
        with _replaced_is_integrity(asset, key):
            async with cfg.connections:
                await cfg.pacer.admit()
                async with store.read(key, offset=written, if_match=token) as stream:
                    if first:
                        first = False
                        _check_size(stream.info.size, entry, asset, key)
                        total = stream.info.size
                        token = stream.info.version_token
                        expected_md5 = stream.info.md5
                        if entry.sha256 is None and expected_md5 is not None:
                            sink.md5 = hashlib.md5(usedforsecurity=False)
                    assert total is not None
                    buffer: list[bytes] = []
                    buffered = 0
                    async for chunk in stream:
                        buffer.append(chunk)
                        buffered += len(chunk)
                        if written + buffered > total:
                            raise IntegrityError(
                                f"body is longer than the object's {total} bytes",
                                asset=asset,
                                key=key,
                            )
                        cfg.emit(BytesReceived(asset=asset, key=key, size=len(chunk)))
                        if buffered >= WRITE_BUFFER:
                            await anyio.to_thread.run_sync(
                                sink.append, buffer, False, limiter=cfg.disk
                            )
                            written += buffered
                            buffer, buffered = [], 0
                    last = written + buffered >= total
            # The body is read and the connection back in the pool: the last write must not
            # hold a connection (under GIL contention a worker-thread write can take ms).
            if last and sink.fd is None:
                # The whole object is in memory: write it with others in one hop.
                await cfg.batcher.run(partial(sink.append, buffer, True), cfg.disk)
            else:
                await anyio.to_thread.run_sync(sink.append, buffer, last, limiter=cfg.disk)
            written += buffered
            if not last:
                raise TruncatedBodyError(
                    f"body ended after {written} of {total} bytes", key=key, asset=asset
                )

    await _attempts(cfg, asset, key, attempt)
    assert total is not None
    return total, expected_md5


async def _ranged(
    store: Store, key: str, sink: _Sink, info: ObjectInfo, cfg: TransferConfig, asset: str
) -> None:
    """Concurrent ranged GETs pinned to one version of the object, written at offsets.

    At most ``ranges_per_object`` ranges of one object are in flight, started in order, so
    the contiguous prefix of the file grows steadily and is hashed (in a worker thread)
    while the rest still downloads: verification costs a short tail, not a second pass.
    """
    token = info.version_token
    await anyio.to_thread.run_sync(sink.open, info.size, limiter=cfg.disk)
    starts = list(range(0, info.size, cfg.part_size))
    lengths = [min(cfg.part_size, info.size - start) for start in starts]
    progress = [0] * len(starts)  # bytes of each range on disk: a retry resumes there
    landed = anyio.Event()

    def frontier() -> int:
        for index, done in enumerate(progress):
            if done < lengths[index]:
                return starts[index] + done
        return info.size

    async def part(index: int) -> None:
        nonlocal landed
        offset, length = starts[index], lengths[index]

        async def write(buffer: list[bytes]) -> None:
            nonlocal landed
            at = offset + progress[index]
            await anyio.to_thread.run_sync(sink.write_at, buffer, at, limiter=cfg.disk)
            progress[index] += sum(len(chunk) for chunk in buffer)
            landed.set()
            landed = anyio.Event()

        async def attempt() -> None:
            with _replaced_is_integrity(asset, key):
                done = progress[index]
                async with cfg.connections:
                    await cfg.pacer.admit()
                    async with store.read(
                        key, offset=offset + done, length=length - done, if_match=token
                    ) as stream:
                        buffer: list[bytes] = []
                        buffered = 0
                        async for chunk in stream:
                            buffer.append(chunk)
                            buffered += len(chunk)
                            cfg.emit(BytesReceived(asset=asset, key=key, size=len(chunk)))
                            if progress[index] + buffered > length:
                                raise IntegrityError(
                                    "range answer is too long", asset=asset, key=key
                                )
                            if buffered >= RANGE_WRITE_BUFFER:
                                await write(buffer)
                                buffer, buffered = [], 0
                        if buffer:
                            await write(buffer)
                if progress[index] < length:
                    raise TruncatedBodyError(
                        f"range ended after {progress[index]} of {length} bytes",
                        key=key,
                        asset=asset,
                    )

        await _attempts(cfg, asset, key, attempt)

    # A pool of ``ranges_per_object`` workers taking the ranges in order, not a task per
    # range: a 1 GiB object has 128 ranges, and spawning 128 tasks at once held the event
    # loop for ~35 ms.
    indices = iter(range(len(starts)))

    async def worker() -> None:
        for index in indices:  # shared: each range is taken by one worker
            await part(index)

    async def hasher() -> None:
        hashed = 0
        while hashed < info.size:
            end = frontier()
            if end > hashed:
                await anyio.to_thread.run_sync(sink.hash_range, hashed, end, limiter=cfg.disk)
                hashed = end
            else:
                await landed.wait()

    try:
        async with anyio.create_task_group() as tg:
            if sink.hashing:
                tg.start_soon(hasher)
            for _ in range(min(len(starts), cfg.ranges_per_object)):
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
