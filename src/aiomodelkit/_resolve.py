"""Specs to exact versions: from the lock file, the cache, or the store's ``.versions`` index.

In order of preference, for ``name[:version]``:

1. a spec the lock file covers resolves to its locked version, with no request;
2. a complete version (``name:1.2``) is taken as is: whether it is cached is decided when
   fetching, so a warm start costs no listing;
3. offline (or with no store), the newest matching version in the cache;
4. otherwise the store's index, read once per name per call of ``fetch_many``; if the store
   is unreachable and ``offline_fallback`` is on, the newest matching cached version.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import anyio
import anyio.to_thread

from ._errors import (
    AssetNotFoundError,
    ConfigError,
    ModelkitError,
    NotModifiedError,
    StoreUnavailableError,
)
from ._layout import AssetMeta, meta_key, parse_index, parse_meta, versions_key
from ._lockfile import LockedAsset, lock_key
from ._singleflight import Memo
from .stores._base import read_small_object, read_small_object_info

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._cache import AssetCache
    from ._lockfile import LockFile
    from ._spec import AssetSpec
    from ._transfer import Transfer
    from ._versioning import VersioningSystem

__all__ = ["IndexCache", "IndexSnapshot", "Resolution", "Resolver"]

logger = logging.getLogger("aiomodelkit")

IndexCache = Memo[str, list[str]]
"""The ``.versions`` indexes read during one call, by asset name."""

Resolution = Literal["store", "cache", "lock", "fallback"]
"""Where a version was decided: the store's index, the cache, the lock file, or the cache
because the store was unreachable."""


@dataclass(frozen=True, slots=True)
class IndexSnapshot:
    """An asset's ``.versions`` index as read once.

    Attributes:
        versions: the versions it lists, newest first.
        token: what pins this content (ETag or generation): pass it back to read the
            index again only if it changed. None if the store sent none.
    """

    versions: list[str]
    token: str | None


class Resolver:
    """Resolves specs against one store, one cache and an optional lock file.

    Args:
        cache: the local cache.
        versioning: the store's versioning system.
        transfer: reads the store under the manager's budget and retries; None offline.
        lock: a lock file to honour.
        offline: never read the store.
        offline_fallback: serve the newest matching cached version when the store is down.
        lock_name: where the lock file came from, for messages.
        allow_unlocked: resolve a spec the lock file does not cover (with a warning)
            instead of refusing it.
    """

    def __init__(
        self,
        cache: AssetCache,
        versioning: VersioningSystem,
        *,
        transfer: Transfer | None,
        lock: LockFile | None = None,
        offline: bool = False,
        offline_fallback: bool = True,
        lock_name: str | None = None,
        allow_unlocked: bool = False,
    ) -> None:
        self.cache = cache
        self.versioning = versioning
        self.transfer = transfer
        self.lock = lock
        self.offline = offline or transfer is None
        self._offline_fallback = offline_fallback
        self._no_store = transfer is None
        self._lock_name = lock_name or "the lock file"
        self._allow_unlocked = allow_unlocked

    def why_offline(self) -> str:
        """Why the store is not asked, for messages."""
        return "no store is configured" if self._no_store else "offline mode is on"

    def locked(self, spec: AssetSpec) -> LockedAsset | None:
        """The lock file's entry for ``spec``, if any."""
        return self.lock.get(spec) if self.lock is not None else None

    def is_pinned(self, spec: AssetSpec) -> bool:
        """Whether ``spec`` names a complete version that the lock file does not contradict:
        then a cached copy can be served without any request."""
        if spec.version is None or not self.versioning.is_complete(spec.version):
            return False
        locked = self.locked(spec)
        return locked is None or locked.version == spec.version

    async def read(self, name: str, key: str) -> bytes:
        """A small metadata object, under the same budget and retries as the data."""
        assert self.transfer is not None
        store = self.transfer.store
        try:
            return await self.transfer.request(
                lambda: read_small_object(store, key), asset=name, key=key
            )
        except ModelkitError as exc:
            exc.add_context(asset=name)
            raise

    async def index(self, name: str) -> list[str]:
        """The versions the store's index lists, newest first.

        Raises:
            AssetNotFoundError: the store has no asset ``name``.
        """
        key = versions_key(name)
        try:
            raw = await self.read(name, key)
        except AssetNotFoundError as exc:
            raise AssetNotFoundError.no_asset(name, store_url=exc.store_url, key=key) from None
        return parse_index(raw, name=name, versioning=self.versioning)

    async def index_since(self, name: str, token: str | None) -> IndexSnapshot | None:
        """The index, or None if it still has ``token``: one conditional request
        (``If-None-Match``), answered without a body where the store can.

        Raises:
            AssetNotFoundError: the store has no asset ``name``.
        """
        assert self.transfer is not None
        store, key = self.transfer.store, versions_key(name)
        try:
            raw, info = await self.transfer.request(
                lambda: read_small_object_info(store, key, if_none_match=token),
                asset=name,
                key=key,
            )
        except NotModifiedError:
            return None
        except AssetNotFoundError as exc:
            raise AssetNotFoundError.no_asset(name, store_url=exc.store_url, key=key) from None
        versions = parse_index(raw, name=name, versioning=self.versioning)
        return IndexSnapshot(versions, info.version_token)

    async def lock_entries(self, specs: Sequence[AssetSpec]) -> dict[str, LockedAsset]:
        """Each spec resolved afresh (any lock file ignored), with its meta's checksums, by
        lock key: the entries of a new lock file. Each index is read once."""
        index: IndexCache = Memo()
        entries: dict[str, LockedAsset] = {}

        async def one(spec: AssetSpec) -> None:
            version, _ = await self.resolve(spec, index, use_lock=False)
            _, meta = await self.meta(spec.name, version)
            entries[lock_key(spec)] = LockedAsset(spec.name, version, meta.files)

        async with anyio.create_task_group() as tg:
            for spec in specs:
                tg.start_soon(one, spec)
        return entries

    def watches(self, spec: AssetSpec) -> bool:
        """Whether a newer version may replace ``spec``'s while serving: it is partial,
        no lock file covers it, and the store is read."""
        complete = spec.version is not None and self.versioning.is_complete(spec.version)
        return not (self.offline or complete or self.locked(spec) is not None)

    async def meta(self, name: str, version: str) -> tuple[bytes, AssetMeta]:
        """The raw and parsed ``.meta`` of one version.

        Raises:
            AssetNotFoundError: the version (or the whole asset) does not exist; the error
                lists the versions that do.
        """
        try:
            raw = await self.read(name, meta_key(name, version))
        except AssetNotFoundError as exc:
            available = None
            try:
                available = await self.index(name)
            except AssetNotFoundError as missing:
                raise missing from None  # no such asset at all
            except ModelkitError:
                pass  # the index is only read to make the error helpful
            raise AssetNotFoundError.no_version(
                name, version, store_url=exc.store_url, available=available, key=exc.key
            ) from None
        return raw, parse_meta(raw, name=name, version=version)

    async def resolve(
        self,
        spec: AssetSpec,
        index: IndexCache | None = None,
        *,
        use_lock: bool = True,
        fallback: bool = True,
    ) -> tuple[str, Resolution]:
        """The exact version ``spec`` names, and where that answer came from.

        The spec's version is one ``versioning`` accepts: the manager parses every spec
        with it before any I/O. ``fallback=False`` turns off the offline fallback for this
        call (a forced download cannot be served from the cache anyway).

        Raises:
            AssetNotFoundError: no version matches (the error lists those available).
            ConfigError: a lock file is in force and does not cover a partial ``spec``.
        """
        name = spec.name
        locked = self.locked(spec) if use_lock else None
        if locked is not None:
            return locked.version, "lock"
        complete = spec.version is not None and self.versioning.is_complete(spec.version)
        if use_lock and self.lock is not None and not complete:
            # A spec the lock does not cover would be resolved afresh: the pinning the lock
            # file promises would silently stop (a complete version is exact by itself).
            if not self._allow_unlocked:
                raise ConfigError(
                    f"{spec} is not in the lock file {self._lock_name}: add it with "
                    "'aiomodelkit assets lock', or allow unlocked specs (allow_unlocked, "
                    "--allow-unlocked)",
                    asset=name,
                )
            logger.warning("%s is not in the lock file %s: resolved afresh", spec, self._lock_name)
        if complete and not self.offline:
            return spec.version, "store"  # type: ignore[return-value]
        local = await anyio.to_thread.run_sync(self.cache.local_versions, name, self.versioning)
        if self.offline:
            try:
                return self.versioning.resolve(local, spec.version, asset=name), "cache"
            except AssetNotFoundError as exc:
                raise AssetNotFoundError(
                    f"{spec} is not in the cache and {self.why_offline()}",
                    asset=name,
                    available_versions=exc.available_versions,
                ) from None
        try:
            remote = await (index or Memo()).get(name, lambda: self.index(name))
        except StoreUnavailableError:
            matching = [
                v for v in local if spec.version is None or self.versioning.matches(spec.version, v)
            ]
            if not (fallback and self._offline_fallback and matching):
                raise
            logger.warning("store unreachable: %s resolved to cached version %s", spec, matching[0])
            return matching[0], "fallback"
        try:
            return self.versioning.resolve(remote, spec.version, asset=name), "store"
        except AssetNotFoundError as exc:
            store_url = self.transfer.store.url if self.transfer is not None else None
            raise AssetNotFoundError.no_version(
                name,
                spec.version,
                store_url=store_url,
                partial=not (spec.version and self.versioning.is_complete(spec.version)),
                available=exc.available_versions,
            ) from None
