"""Fetching one asset version into the cache: claim it, stage every object, verify, publish.

One :class:`Fetcher` serves a whole :class:`~aiomodelkit.AssetsManager`. A spec is first
resolved to a version (:mod:`._resolve`); then a version already complete in the cache is
served as is, and any other is claimed (a per-version file lock that only saves duplicate
work across processes), downloaded object by object into a staging directory by a pool of
workers (:mod:`._transfer`, sharing the manager's budget), and published with one atomic
rename (:mod:`._cache`). Concurrent fetches of one version share one download.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from ._audit import audit
from ._cache import VersionClaim
from ._checksums import summary
from ._disk_errors import cache_errors
from ._errors import AssetNotFoundError, InvalidStoreDataError, ModelkitError
from ._events import AssetPublished, AssetResolved, CacheHit, DownloadStarted
from ._groups import first_error
from ._layout import AssetMeta, FileEntry, data_key, tree_checksum
from ._pacing import work_through
from ._singleflight import Batcher, Memo, SingleFlight
from ._spec import AssetSpec, validate_relative_path
from ._trace import span

if TYPE_CHECKING:
    from pathlib import Path

    from ._cache import AssetCache, CachedCopy
    from ._events import Emitter
    from ._resolve import IndexCache, Resolver
    from ._transfer import Transfer

__all__ = ["FetchBatch", "FetchedAsset", "Fetcher"]

logger = logging.getLogger("aiomodelkit")
#: How often a process waiting for another one's download says so.
LOCK_LOG_INTERVAL = 10.0
#: The first and the longest pause (seconds) between two looks at a version another process
#: is downloading: its copy is picked up at most this long after it is published.
LOCK_POLL_MIN = 0.01
LOCK_POLL_MAX = 0.05


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
        verified_with: the checksum the downloaded objects were verified with:
            ``"xxh3_128"`` or ``"sha256"`` (the meta's), ``"md5"`` (the store's), ``"size"``
            (nothing else to check), several joined by ``+`` when objects differed (as
            ``"md5+size"``); None when nothing was downloaded.
        requests: the store requests sent for the asset while this fetch ran (index, meta,
            HEAD and every GET, retries included): what a cold start costs the store.
    """

    spec: AssetSpec
    version: str
    path: Path
    from_cache: bool
    size: int = 0
    objects: int = 0
    source: str = "store"
    verified_with: str | None = None
    requests: int = 0


@dataclass(frozen=True, slots=True)
class _Outcome:
    size: int
    objects: int
    checksum: str | None
    path: Path  # the version's final path
    verified_with: str | None = None


@dataclass(frozen=True, slots=True)
class FetchBatch:
    """What one ``fetch_many`` shares: each index, each version's outcome (one download)."""

    index: IndexCache = field(default_factory=Memo)
    outcomes: Memo[tuple[str, str, bool], _Outcome] = field(default_factory=Memo)


class Fetcher:
    """Makes versions complete in one cache, from the store a :class:`Resolver` reads.

    Args:
        resolver: resolves specs (and reads metas) against the store and the cache.
        transfer: downloads objects under the manager's budget; None when offline.
        emitter: receives progress events.
        cache_locking: take the per-version file lock while downloading.
    """

    def __init__(
        self,
        resolver: Resolver,
        transfer: Transfer | None,
        emitter: Emitter,
        *,
        cache_locking: bool = True,
    ) -> None:
        self.resolver = resolver
        self._cache: AssetCache = resolver.cache
        self._transfer = transfer
        self._emitter = emitter
        self._emit = emitter.emit
        self._store_url = emitter.store
        self._cache_locking = cache_locking
        self._flights: SingleFlight[tuple[str, str, bool], _Outcome] = SingleFlight()
        # Small disk calls (cache lookups, lock attempts) of concurrent fetches share hops.
        self._hops = Batcher()

    # -- fetching -----------------------------------------------------------------------

    async def fetch(
        self, spec: AssetSpec, *, force: bool = False, batch: FetchBatch | None = None
    ) -> FetchedAsset:
        """Make ``spec``'s version complete in the cache and return where it is.

        Raises:
            AssetNotFoundError: the asset, version or sub-part does not exist.
            IntegrityError: a size or checksum did not match; nothing was published.
            InvalidStoreDataError: the meta is malformed or names unsafe paths.
        """
        with span("aiomodelkit.fetch", spec=spec, store=self._store_url) as traced:
            fetched = await self._fetch(spec, force, batch)
            traced.set(version=fetched.version, source=fetched.source, bytes=fetched.size)
            traced.set(objects=fetched.objects, cache_hit=fetched.from_cache)
            return fetched

    async def _fetch(self, spec: AssetSpec, force: bool, batch: FetchBatch | None) -> FetchedAsset:
        started = time.perf_counter()
        if not force and self.resolver.is_pinned(spec):
            # The warm-start path: no request, no client, and one worker-thread hop shared
            # by every fetch that starts in the same pass of the event loop.
            assert spec.version is not None
            hit = await self._hops.run(
                partial(self._cache.lookup, spec.name, spec.version, spec.sub_part)
            )
            if hit is not None:
                path, checksum = hit
                self._emit(AssetResolved(asset=spec.name, spec=str(spec), version=spec.version))
                self._emit(CacheHit(asset=spec.name, version=spec.version, path=path))
                fetched = FetchedAsset(spec, spec.version, path, True, 0, 0, "cache")
                await audit(fetched, checksum, time.perf_counter() - started, self._emitter)
                return fetched
        batch = batch if batch is not None else FetchBatch()
        sent = self._requests(spec.name)
        with span("aiomodelkit.fetch.resolve", spec=spec):
            version, source = await self.resolver.resolve(spec, batch.index, fallback=not force)
            self._emit(AssetResolved(asset=spec.name, spec=str(spec), version=version))
            # A file the version does not hold is refused before anything is downloaded.
            known = await self._check_sub_part(spec, version, force)
        key = (spec.name, version, force)
        download = partial(self._fetch_version, spec, version, force, known)
        outcome = await batch.outcomes.get(key, partial(self._flights.run, key, download))
        path = outcome.path
        if spec.sub_part is not None:
            path = path.joinpath(*spec.sub_part.split("/"))
            if not await anyio.Path(path).exists():
                raise self._no_file(spec, version)
        if outcome.objects == 0 and source == "store":
            source = "cache"
        fetched = FetchedAsset(
            spec,
            version,
            path,
            outcome.objects == 0,
            outcome.size,
            outcome.objects,
            source,
            outcome.verified_with,
            self._requests(spec.name) - sent,
        )
        await audit(fetched, outcome.checksum, time.perf_counter() - started, self._emitter)
        return fetched

    def _requests(self, name: str) -> int:
        return self._transfer.requests[name] if self._transfer is not None else 0

    def _online(self) -> bool:
        return not self.resolver.offline and self._transfer is not None

    async def _cached(self, name: str, version: str) -> CachedCopy | None:
        return await self._hops.run(partial(self._cache.lookup, name, version, None))

    async def _check_sub_part(
        self, spec: AssetSpec, version: str, force: bool
    ) -> tuple[bytes, AssetMeta] | None:
        """The version's meta, read to check the spec's sub-part, when it must be downloaded.

        Raises:
            AssetNotFoundError: the version, or the file the spec names, does not exist.
        """
        if spec.sub_part is None or not self._online():
            return None
        if not force and await self._cached(spec.name, version) is not None:
            return None  # checked on disk after the fetch, with no request
        raw, meta = await self.resolver.meta(spec.name, version)
        if meta.holds(spec.sub_part) is False:
            raise self._no_file(spec, version)
        return raw, meta

    def _no_file(self, spec: AssetSpec, version: str) -> AssetNotFoundError:
        assert spec.sub_part is not None
        store = self._transfer.store.url if self._transfer is not None else None
        return AssetNotFoundError.no_file(spec.name, version, spec.sub_part, store_url=store)

    async def _fetch_version(
        self, spec: AssetSpec, version: str, force: bool, known: tuple[bytes, AssetMeta] | None
    ) -> _Outcome:
        name = spec.name
        found = None if force else await self._cached(name, version)
        if found is not None:  # a hit takes no lock and writes nothing (read-only caches)
            return self._hit(name, version, found)
        if not self._online():
            raise AssetNotFoundError(
                f"version {version} is not in the cache and {self.resolver.why_offline()}",
                asset=name,
            )
        # The meta first: a version that does not exist fails before any lock file exists.
        raw, meta = known or await self.resolver.meta(name, version)
        claim = VersionClaim(self._cache, name, version, force=force, locking=self._cache_locking)
        try:
            # A read-only cache refuses the lock itself.
            with cache_errors(self._cache.root, name), span("aiomodelkit.fetch.lock"):
                found = await self._claim(claim)
            if found is not None:
                return self._hit(name, version, found)
            return await self._download(spec, version, force, claim, (raw, meta))
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
        self._emit(CacheHit(asset=name, version=version, path=path))
        return _Outcome(0, 0, checksum, path)

    async def _download(
        self,
        spec: AssetSpec,
        version: str,
        force: bool,
        claim: VersionClaim,
        read: tuple[bytes, AssetMeta],
    ) -> _Outcome:
        name = spec.name
        raw, meta = read
        locked = self.resolver.locked(spec)
        if locked is not None:
            locked.check(meta)
        pinned = locked is not None and bool(locked.files)  # SHA-256s pinned: verify those
        files = await self._files(name, version, meta)
        total = sum(entry.size or 0 for entry in files)
        self._emit(
            DownloadStarted(asset=name, version=version, objects=len(files), total_bytes=total)
        )
        with cache_errors(self._cache.root, name):
            staging = await anyio.to_thread.run_sync(
                self._cache.new_staging, name, version, meta.is_directory, [f.path for f in files]
            )
        try:
            with span("aiomodelkit.fetch.download", objects=len(files), bytes=total) as traced:
                received: list[int] = []  # the sizes downloaded: metas by modelkit have none
                verified: set[str] = set()

                async def one(entry: FileEntry) -> None:
                    key = data_key(name, version, entry.path if meta.is_directory else None)
                    target = staging / entry.path if meta.is_directory else staging
                    size, algorithm = await self._object(key, target, entry, name, pinned)
                    received.append(size)
                    verified.add(algorithm)

                assert self._transfer is not None
                # Twice the connection budget: workers waiting for their disk write leave
                # the budget busy.
                workers = min(len(files), 2 * self._transfer.limits.connections)
                try:
                    await work_through(files, one, workers=workers)
                except* ModelkitError as group:
                    first = first_error(group)
                    raise first from first.__cause__
                traced.set(bytes=sum(received))
            publish = partial(self._publish, name, version, staging, meta.is_directory, raw)
            with cache_errors(self._cache.root, name), span("aiomodelkit.fetch.publish"):
                published = await anyio.to_thread.run_sync(publish, force, claim)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._cache.discard, staging)
            raise
        final = staging.with_name(version)  # staging sits beside its final path
        size = sum(received)
        if published:
            self._emit(AssetPublished(asset=name, version=version, path=final, size=size))
        return _Outcome(size, len(files), tree_checksum(meta), final, summary(verified))

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

    async def _object(
        self, key: str, target: Path, entry: FileEntry, name: str, pinned: bool
    ) -> tuple[int, str]:
        assert self._transfer is not None
        try:
            with cache_errors(self._cache.root, name):
                return await self._transfer.download(key, target, entry, asset=name, pinned=pinned)
        except ModelkitError as exc:
            exc.add_context(asset=name)  # store errors know the key, not the asset
            raise

    async def _files(self, name: str, version: str, meta: AssetMeta) -> tuple[FileEntry, ...]:
        if not meta.is_directory or meta.files:
            return meta.files
        # An old meta without "contents": one listing gives every key and size.
        assert self._transfer is not None
        prefix = data_key(name, version) + "/"
        entries = []
        async for info in self._transfer.store.list_objects(prefix):
            relpath = info.key[len(prefix) :]
            try:
                validate_relative_path(relpath, what="object key", allow_space=True)
            except ModelkitError as exc:
                raise InvalidStoreDataError(exc.message, asset=name, key=info.key) from None
            entries.append(FileEntry(relpath, info.size))
        return tuple(entries)
