"""Fetching asset versions into the cache: resolve, lock, stream every object, verify, publish.

One :class:`Fetcher` serves a whole :class:`~aiomodelkit.AssetsManager`: every fetch shares
its connection limiter (:mod:`._transfer`), concurrent fetches of one resolved version
share one download (single-flight), and processes share the cache through a per-version
file lock that only saves duplicate work (correctness comes from the atomic publish).
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
import anyio.to_thread

from ._cache import VersionClaim
from ._errors import (
    AssetNotFoundError,
    CacheError,
    InvalidStoreDataError,
    ModelkitError,
    StoreUnavailableError,
    first_error,
)
from ._events import AssetPublished, AssetResolved, CacheHit, DownloadStarted
from ._layout import (
    AssetMeta,
    FileEntry,
    data_key,
    meta_key,
    parse_index,
    parse_meta,
    tree_checksum,
    versions_key,
)
from ._singleflight import Batcher, Memo, SingleFlight
from ._spec import AssetSpec, validate_relative_path
from ._transfer import TransferConfig, download_object, with_retries
from .stores._base import Store, read_small_object

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from ._cache import AssetCache, CachedCopy
    from ._lockfile import LockFile
    from ._versioning import VersioningSystem

__all__ = ["FetchedAsset", "Fetcher", "IndexCache"]

logger = logging.getLogger("aiomodelkit")
#: Download workers started per event-loop iteration.
_SPAWNS_PER_TICK = 8
#: How often a process waiting for another one's download says so.
LOCK_LOG_INTERVAL = 10.0
#: The first and the longest pause (seconds) between two looks at a version another process
#: is downloading: its copy is picked up at most this long after it is published.
LOCK_POLL_MIN = 0.01
LOCK_POLL_MAX = 0.05

IndexCache = Memo[str, list[str]]


@dataclass(frozen=True, slots=True)
class FetchedAsset:
    """An asset version available in the cache.

    Attributes:
        spec: the spec that was asked for.
        version: the exact version it resolved to.
        path: the local path, including the spec's sub-part.
        from_cache: True if nothing was downloaded for this call.
        size: the bytes downloaded (0 on a cache hit).
        objects: the objects downloaded (0 on a cache hit).
        source: where the version came from: ``"store"``, ``"cache"``, ``"lock"`` (resolved
            by the lock file) or ``"fallback"`` (store unreachable, newest cached match).
    """

    spec: AssetSpec
    version: str
    path: Path
    from_cache: bool
    size: int = 0
    objects: int = 0
    source: str = "store"


@dataclass(frozen=True, slots=True)
class _Outcome:
    size: int
    objects: int
    checksum: str | None
    path: Path  # the version's final path


class Fetcher:
    """Resolves specs and downloads versions from one store into one cache."""

    def __init__(
        self,
        store: Store | None,
        cache: AssetCache,
        versioning: VersioningSystem,
        transfer: TransferConfig,
        *,
        offline: bool = False,
        offline_fallback: bool = True,
        lock: LockFile | None = None,
        cache_locking: bool = True,
    ) -> None:
        self._store = store
        self._cache = cache
        self._versioning = versioning
        self._transfer = transfer
        self._offline = offline or store is None
        self._offline_fallback = offline_fallback
        self._lock = lock
        self._cache_locking = cache_locking
        self._flights: SingleFlight[tuple[str, str, bool], _Outcome] = SingleFlight()
        # Small disk calls (cache lookups, lock attempts) of concurrent fetches share hops.
        self._hops = Batcher()

    # -- resolution ---------------------------------------------------------------------

    async def _read(self, name: str, key: str) -> bytes:
        """A small metadata object, under the same retry policy as the data."""
        store = self._store
        assert store is not None
        try:
            return await with_retries(
                self._transfer, name, key, lambda: read_small_object(store, key)
            )
        except ModelkitError as exc:
            exc.add_context(asset=name)
            raise

    async def _index(self, name: str) -> list[str]:
        raw = await self._read(name, versions_key(name))
        return parse_index(raw, name=name, versioning=self._versioning)

    async def resolve(
        self, spec: AssetSpec, index: IndexCache | None = None, *, use_lock: bool = True
    ) -> tuple[str, str]:
        """The exact version ``spec`` names, and where that answer came from.

        A complete version already in the cache, or a spec in the lock file, costs no
        request; offline, only the cache is consulted.

        Raises:
            AssetNotFoundError: no version matches (the error lists those available).
        """
        name = spec.name
        if spec.version is not None:
            self._versioning.validate(spec.version, spec=str(spec))
        locked = self._lock.get(spec) if self._lock is not None and use_lock else None
        if locked is not None:
            return locked.version, "lock"
        pinned = spec.version is not None and self._versioning.is_complete(spec.version)
        if pinned and not self._offline:
            # Whether it is cached is decided when fetching: no listing of the cache here.
            return spec.version, "store"  # type: ignore[return-value]
        local = await anyio.to_thread.run_sync(self._cache.local_versions, name, self._versioning)
        if self._offline:
            try:
                return self._versioning.resolve(local, spec.version, asset=name), "cache"
            except AssetNotFoundError as exc:
                raise AssetNotFoundError(
                    f"{spec} is not in the cache and {self._why_offline()}",
                    asset=name,
                    available_versions=exc.available_versions,
                ) from None
        try:
            remote = await (index or Memo()).get(name, lambda: self._index(name))
        except StoreUnavailableError:
            matching = [
                v
                for v in local
                if spec.version is None or self._versioning.matches(spec.version, v)
            ]
            if not (self._offline_fallback and matching):
                raise
            logger.warning("store unreachable: %s resolved to cached version %s", spec, matching[0])
            return matching[0], "fallback"
        return self._versioning.resolve(remote, spec.version, asset=name), "store"

    def _why_offline(self) -> str:
        return "no store is configured" if self._store is None else "offline mode is on"

    # -- fetching -----------------------------------------------------------------------

    async def fetch(
        self, spec: AssetSpec, *, force: bool = False, index: IndexCache | None = None
    ) -> FetchedAsset:
        """Make ``spec``'s version complete in the cache and return where it is.

        Raises:
            AssetNotFoundError: the asset, version or sub-part does not exist.
            IntegrityError: a size or checksum did not match; nothing was published.
            InvalidStoreDataError: the meta is malformed or names unsafe paths.
        """
        started = time.perf_counter()
        if not force and self._is_pinned(spec):
            # The warm-start path: no request, no client, and one worker-thread hop shared
            # by every fetch that starts in the same pass of the event loop.
            assert spec.version is not None
            hit = await self._hops.run(
                partial(self._cache.lookup, spec.name, spec.version, spec.sub_part)
            )
            if hit is not None:
                path, checksum = hit
                self._transfer.emit(
                    AssetResolved(asset=spec.name, spec=str(spec), version=spec.version)
                )
                self._transfer.emit(CacheHit(asset=spec.name, version=spec.version, path=path))
                fetched = FetchedAsset(spec, spec.version, path, True, 0, 0, "cache")
                _audit(fetched, checksum, time.perf_counter() - started)
                return fetched
        version, source = await self.resolve(spec, index)
        self._transfer.emit(AssetResolved(asset=spec.name, spec=str(spec), version=version))
        outcome = await self._flights.run(
            (spec.name, version, force), lambda: self._fetch_version(spec, version, force)
        )
        path = outcome.path
        if spec.sub_part is not None:
            path = path.joinpath(*spec.sub_part.split("/"))
            if not await anyio.Path(path).exists():
                raise AssetNotFoundError(
                    f"sub-part {spec.sub_part!r} is not in version {version}", asset=str(spec)
                )
        if outcome.objects == 0 and source == "store":
            source = "cache"
        fetched = FetchedAsset(
            spec, version, path, outcome.objects == 0, outcome.size, outcome.objects, source
        )
        _audit(fetched, outcome.checksum, time.perf_counter() - started)
        return fetched

    def _is_pinned(self, spec: AssetSpec) -> bool:
        if spec.version is None or not self._versioning.is_complete(spec.version):
            return False
        locked = self._lock.get(spec) if self._lock is not None else None
        return locked is None or locked.version == spec.version

    async def _fetch_version(self, spec: AssetSpec, version: str, force: bool) -> _Outcome:
        name = spec.name
        if self._offline or self._store is None:
            lookup = partial(self._cache.lookup, name, version, None)
            found = None if force else await self._hops.run(lookup)
            if found is None:
                raise AssetNotFoundError(
                    f"version {version} is not in the cache and {self._why_offline()}", asset=name
                )
            return self._hit(name, version, found)
        claim = VersionClaim(self._cache, name, version, force=force, locking=self._cache_locking)
        try:
            found = await self._claim(claim)
            if found is not None:
                return self._hit(name, version, found)
            return await self._download(spec, version, force, claim)
        finally:
            if claim.held:
                with anyio.CancelScope(shield=True):
                    await self._hops.run(claim.release)

    async def _claim(self, claim: VersionClaim) -> CachedCopy | None:
        """Wait (politely, cancellably) until the version is complete or ours to download.

        Polls, because file locks have no async wait; the interval stays short so that a
        waiter picks up another process's copy soon after it is published.
        """
        waited_since = time.monotonic()
        next_log = waited_since + LOCK_LOG_INTERVAL
        delay = LOCK_POLL_MIN
        while (state := await self._hops.run(claim.attempt)) is False:
            if time.monotonic() >= next_log:
                logger.info(
                    "waiting %.0f s for another process downloading %s",
                    time.monotonic() - waited_since,
                    claim.what,
                )
                next_log += LOCK_LOG_INTERVAL
            await anyio.sleep(delay)
            delay = min(delay * 2, LOCK_POLL_MAX)
        return None if state is True else state

    def _hit(self, name: str, version: str, found: CachedCopy) -> _Outcome:
        path, checksum = found
        self._transfer.emit(CacheHit(asset=name, version=version, path=path))
        return _Outcome(0, 0, checksum, path)

    async def _read_meta(self, name: str, version: str) -> tuple[bytes, AssetMeta]:
        assert self._store is not None
        try:
            raw = await self._read(name, meta_key(name, version))
        except AssetNotFoundError as exc:
            available = None
            message = f"version {version} does not exist"
            try:
                available = await self._index(name)
            except AssetNotFoundError:
                message = "asset does not exist (it has no .versions index)"
            except ModelkitError:
                pass  # the index is only read to make the error helpful
            raise AssetNotFoundError(
                message,
                asset=name,
                key=exc.key,
                store_url=exc.store_url,
                available_versions=available,
            ) from None
        return raw, parse_meta(raw, name=name, version=version)

    async def _download(
        self, spec: AssetSpec, version: str, force: bool, claim: VersionClaim
    ) -> _Outcome:
        assert self._store is not None
        name = spec.name
        raw, meta = await self._read_meta(name, version)
        locked = self._lock.get(spec) if self._lock is not None else None
        if locked is not None:
            locked.check(meta)
        files = await self._files(name, version, meta)
        total = sum(entry.size or 0 for entry in files)
        self._transfer.emit(
            DownloadStarted(asset=name, version=version, objects=len(files), total_bytes=total)
        )
        with _cache_errors(name):
            staging = await anyio.to_thread.run_sync(
                self._cache.new_staging, name, version, meta.is_directory, [f.path for f in files]
            )
        try:
            try:
                # A pool of workers, not a task per object: spawning 2,000 tasks at once
                # holds the event loop for tens of milliseconds. Twice the connection
                # budget, so that workers waiting for their disk write leave the budget busy.
                queue = iter(files)

                async def worker() -> None:
                    for entry in queue:  # shared: each entry is taken by one worker
                        key = data_key(name, version, entry.path if meta.is_directory else None)
                        target = staging / entry.path if meta.is_directory else staging
                        await self._object(key, target, entry, name)

                workers = min(len(files), 2 * int(self._transfer.connections.total_tokens))
                async with anyio.create_task_group() as tg:
                    for number in range(workers):
                        tg.start_soon(worker)
                        if number % _SPAWNS_PER_TICK == _SPAWNS_PER_TICK - 1:
                            # ~0.25 ms per spawn: 128 at once would hold the loop ~30 ms.
                            await anyio.lowlevel.checkpoint()
            except* ModelkitError as group:
                first = first_error(group)
                raise first from first.__cause__
            publish = partial(self._publish, name, version, staging, meta.is_directory, raw)
            with _cache_errors(name):
                published = await anyio.to_thread.run_sync(publish, force, claim)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._cache.discard, staging)
            raise
        final = staging.with_name(version)  # staging sits beside its final path
        if published:
            self._transfer.emit(AssetPublished(asset=name, version=version, path=final, size=total))
        return _Outcome(total, len(files), tree_checksum(meta), final)

    def _publish(
        self,
        name: str,
        version: str,
        staging: Path,
        is_directory: bool,
        raw: bytes,
        force: bool,
        claim: VersionClaim,
    ) -> bool:
        # One worker-thread hop: keep the meta (first, so that whoever sees the version
        # complete also finds its checksums), publish, and let go of the lock.
        try:
            self._cache.save_meta(name, version, raw)
        except OSError as exc:  # only feeds audit records: never fail a good download
            logger.warning("could not keep the meta of %s:%s: %s", name, version, exc)
        published = self._cache.publish(name, version, staging, is_directory, replace=force)
        claim.release()
        return published

    async def _object(self, key: str, target: Path, entry: FileEntry, name: str) -> None:
        assert self._store is not None
        try:
            with _cache_errors(name):
                await download_object(self._store, key, target, entry, self._transfer, asset=name)
        except ModelkitError as exc:
            exc.add_context(asset=name)  # store errors know the key, not the asset
            raise

    async def _files(self, name: str, version: str, meta: AssetMeta) -> tuple[FileEntry, ...]:
        assert self._store is not None
        if not meta.is_directory or meta.files:
            return meta.files
        # An old meta without "contents": one listing gives every key and size.
        prefix = data_key(name, version) + "/"
        entries = []
        async for info in self._store.list_objects(prefix):
            relpath = info.key[len(prefix) :]
            try:
                validate_relative_path(relpath, what="object key", allow_space=True)
            except ModelkitError as exc:
                raise InvalidStoreDataError(exc.message, asset=name, key=info.key) from None
            entries.append(FileEntry(relpath, info.size))
        return tuple(entries)


@contextmanager
def _cache_errors(asset: str) -> Iterator[None]:
    """Local disk failures (store errors are mapped already) become CacheError."""
    try:
        yield
    except OSError as exc:
        if isinstance(exc, ModelkitError):
            raise  # AssetNotFoundError and StorePermissionError are OSErrors too
        where = exc.filename if isinstance(exc.filename, str) else None
        reason = exc.strerror or type(exc).__name__
        raise CacheError(
            f"cannot write the assets cache: {reason}", asset=asset, key=where
        ) from exc


def _audit(fetched: FetchedAsset, checksum: str | None, duration: float) -> None:
    """One structured record per fetch: which version a service used, from where, verified how."""
    record = {
        "spec": str(fetched.spec),
        "version": fetched.version,
        "source": "cache" if fetched.from_cache else "store",
        "resolved_by": fetched.source,
        "bytes": fetched.size,
        "objects": fetched.objects,
        "checksum": checksum,
        "duration_s": round(duration, 6),
        "path": str(fetched.path),
    }
    logger.info(
        "fetched %s as version %s from %s (%d bytes, %.3f s)",
        record["spec"],
        record["version"],
        record["source"],
        record["bytes"],
        duration,
        extra={"aiomodelkit": record},
    )
