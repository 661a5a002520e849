"""Fetching asset versions into the cache: resolve, lock, stream every object, verify, publish.

One :class:`Fetcher` serves a whole :class:`~aiomodelkit.AssetsManager`: every fetch shares
its connection limiter (:mod:`._transfer`), concurrent fetches of one resolved version
share one download (single-flight), and processes share the cache through a per-version
file lock that only saves duplicate work (correctness comes from the atomic publish).
"""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import filelock

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
from ._singleflight import Memo, SingleFlight
from ._spec import AssetSpec, validate_relative_path
from ._transfer import TransferConfig, download_object, with_retries
from .stores._base import Store, read_small_object

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    from ._cache import AssetCache
    from ._lockfile import LockFile
    from ._versioning import VersioningSystem

__all__ = ["FetchedAsset", "Fetcher", "IndexCache"]

logger = logging.getLogger("aiomodelkit")
#: How often a process waiting for another one's download says so.
LOCK_LOG_INTERVAL = 10.0

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
            # The warm-start path: one worker-thread call, no request, no client.
            assert spec.version is not None
            hit = await anyio.to_thread.run_sync(
                self._cache.lookup, spec.name, spec.version, spec.sub_part
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
        final = await anyio.to_thread.run_sync(self._cache.version_path, spec.name, version)
        path = final
        if spec.sub_part is not None:
            path = final.joinpath(*spec.sub_part.split("/"))
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
        if not force and await anyio.to_thread.run_sync(self._cache.is_complete, name, version):
            return await self._hit(name, version)
        if self._offline or self._store is None:
            raise AssetNotFoundError(
                f"version {version} is not in the cache and {self._why_offline()}", asset=name
            )
        async with self._process_lock(name, version):
            # Another process may have published while we waited for the lock.
            if not force and await anyio.to_thread.run_sync(self._cache.is_complete, name, version):
                return await self._hit(name, version)
            await anyio.to_thread.run_sync(self._cache.remove_stale, name, version)
            return await self._download(spec, version, force)

    async def _hit(self, name: str, version: str) -> _Outcome:
        final = await anyio.to_thread.run_sync(self._cache.version_path, name, version)
        self._transfer.emit(CacheHit(asset=name, version=version, path=final))
        hit = await anyio.to_thread.run_sync(self._cache.lookup, name, version, None)
        return _Outcome(0, 0, hit[1] if hit is not None else None)

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

    async def _download(self, spec: AssetSpec, version: str, force: bool) -> _Outcome:
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
                async with anyio.create_task_group() as tg:
                    for entry in files:
                        key = data_key(name, version, entry.path if meta.is_directory else None)
                        target = staging / entry.path if meta.is_directory else staging
                        tg.start_soon(self._object, key, target, entry, name)
            except* ModelkitError as group:
                first = first_error(group)
                raise first from first.__cause__
            publish = partial(self._cache.publish, replace=force)
            with _cache_errors(name):
                published = await anyio.to_thread.run_sync(
                    publish, name, version, staging, meta.is_directory
                )
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._cache.discard, staging)
            raise
        try:
            await anyio.to_thread.run_sync(self._cache.save_meta, name, version, raw)
        except OSError as exc:  # only feeds audit records: never fail a good download
            logger.warning("could not keep the meta of %s:%s: %s", name, version, exc)
        if published:
            final = staging.with_name(version)  # staging sits beside its final path
            self._transfer.emit(AssetPublished(asset=name, version=version, path=final, size=total))
        return _Outcome(total, len(files), tree_checksum(meta))

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

    @asynccontextmanager
    async def _process_lock(self, name: str, version: str) -> AsyncIterator[None]:
        """Hold the version's file lock; wait (politely, cancellably) while another has it."""
        if not self._cache_locking:
            yield
            return
        try:
            path = await anyio.to_thread.run_sync(self._cache.lock_path, name, version)
        except OSError as exc:
            # A read-only cache can still serve hits; a download will fail later, clearly.
            logger.debug("no lock for %s:%s (%s); continuing without", name, version, exc)
            yield
            return
        lock = filelock.FileLock(path, thread_local=False)
        waited_since = time.monotonic()
        next_log = waited_since + LOCK_LOG_INTERVAL
        delay = 0.01
        while not await anyio.to_thread.run_sync(_try_acquire, lock):
            if time.monotonic() >= next_log:
                logger.info(
                    "waiting %.0f s for another process downloading %s:%s",
                    time.monotonic() - waited_since,
                    name,
                    version,
                )
                next_log += LOCK_LOG_INTERVAL
            await anyio.sleep(delay)
            delay = min(delay * 2, 0.5)
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(lock.release)


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


def _try_acquire(lock: filelock.BaseFileLock) -> bool:
    try:
        lock.acquire(blocking=False)
    except filelock.Timeout:
        return False
    return True


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
