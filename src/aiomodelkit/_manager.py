"""``AssetsManager``: one store, one cache, publishing and fetching."""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from ._cache import AssetCache
from ._cache_prune import size_limit
from ._errors import CacheError, ConfigError, DownloadError
from ._events import Emitter
from ._fetch import FetchBatch, FetchedAsset, Fetcher
from ._lifecycle import AsyncResource
from ._lockfile import LockFile
from ._publish import Publisher, PublishResult
from ._resolve import IndexSnapshot, Resolver
from ._settings import Settings
from ._spec import AssetSpec, validate_asset_name
from ._transfer import Transfer
from ._versioning import VersioningSystem, get_versioning
from .stores._base import Store
from .stores._lazy import LazyStore
from .stores._registry import open_store

if TYPE_CHECKING:
    import os
    from collections.abc import AsyncIterator, Sequence

    from ._events import EventCallback
    from ._layout import AssetMeta

__all__ = ["AssetsManager"]


class AssetsManager(AsyncResource):
    """Publishes assets to a store and fetches them into a local cache.

    Args:
        assets_dir: the cache directory (default: ``settings.assets_dir``); created if needed.
        storage: a store URL, an unopened :class:`~aiomodelkit.stores.Store`, or None for
            cache-only use (default: ``settings.storage``).
        versioning: ``major_minor``, ``simple_date`` or a system instance (default:
            ``settings.versioning``).
        settings: settings to take defaults from; read from the environment if omitted.
        on_event: a callback receiving progress events.
        offline: never touch the network, serve only the cache (default:
            ``settings.offline``).
        lock_file: a lock file of resolved versions to honour (default:
            ``settings.lock_file``); write one with :meth:`lock`.

    Example:
        >>> async def main() -> None:
        ...     async with AssetsManager(assets_dir="cache", storage="file:///srv/store") as am:
        ...         await am.new("model.bin", "models/clf")
        ...         fetched = await am.fetch("models/clf:0.0")
        ...         print(fetched.path)
    """

    def __init__(
        self,
        assets_dir: str | os.PathLike[str] | None = None,
        storage: str | os.PathLike[str] | Store | None = None,
        *,
        versioning: str | VersioningSystem | None = None,
        settings: Settings | None = None,
        on_event: EventCallback | None = None,
        offline: bool | None = None,
        lock_file: str | os.PathLike[str] | None = None,
    ) -> None:
        # The entry point of the fetch layer: settings become values here, and nothing
        # below sees them. Explicit settings mean no environment is read.
        settings = settings if settings is not None else Settings.load()
        self._assets_dir = Path(assets_dir) if assets_dir is not None else settings.assets_dir
        if storage is None:
            storage = settings.storage
        self._store: Store | None
        if storage is None or isinstance(storage, Store):
            self._store = storage
        else:
            self._store = open_store(storage, options=settings.store_options())
        self._versioning = get_versioning(versioning or settings.versioning)
        self._emitter = Emitter(on_event, store=self._store.url if self._store else None)
        options = settings.fetch_options()
        self._options = options if offline is None else replace(options, offline=offline)
        self._limits = settings.transfer_limits()
        self._retry = settings.retry_policy()
        self._identity = settings.identity  # asked only when publishing
        self._allow_unsafe_publish = settings.allow_unsafe_publish
        self._cache_max_bytes = settings.cache_max_bytes
        lock_path = lock_file if lock_file is not None else settings.lock_file
        self._lock_path = Path(lock_path) if lock_path is not None else None
        self._fetcher_instance: Fetcher | None = None  # set while the manager is open
        self._lazy: LazyStore | None = None

    def __repr__(self) -> str:
        store = self._store.url if self._store is not None else None
        return f"AssetsManager(assets_dir={str(self._assets_dir)!r}, storage={store!r})"

    @property
    def store(self) -> Store | None:
        """The store (opened on first use while the manager is entered), or None."""
        return self._lazy if self._lazy is not None else self._store

    @property
    def assets_dir(self) -> Path:
        """The cache directory."""
        return self._assets_dir

    @property
    def versioning(self) -> VersioningSystem:
        """The versioning system of the store."""
        return self._versioning

    async def _aopen(self) -> None:
        try:
            await anyio.Path(self._assets_dir).mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise CacheError(
                f"the assets directory {str(self._assets_dir)!r} is a file, not a directory"
            ) from None
        except OSError as exc:
            raise CacheError(
                f"cannot create the assets directory {str(self._assets_dir)!r}: "
                f"{exc.strerror or type(exc).__name__}"
            ) from None
        lock = None
        if self._lock_path is not None:  # named, so it must exist (a typo must not unpin)
            lock = await anyio.to_thread.run_sync(LockFile.load, self._lock_path)
        # The client opens on the first request: a warm start of pinned, cached assets
        # never creates one (client creation can itself do network I/O).
        if self._store is not None:
            self._lazy = await LazyStore(self._store).__aenter__()
        # One budget for every fetch of this manager: bounds real I/O across assets.
        transfer = (
            Transfer(self._lazy, self._limits, self._retry, self._emitter)
            if self._lazy is not None
            else None
        )
        options = self._options
        cache = AssetCache(  # registers what it serves as in use until the manager closes
            self._assets_dir, track_use=True, after_publish=size_limit(self._cache_max_bytes, lock)
        )
        resolver = Resolver(
            cache,
            self._versioning,
            transfer=transfer,
            lock=lock,
            offline=options.offline,
            offline_fallback=options.offline_fallback,
            lock_name=str(self._lock_path) if self._lock_path is not None else None,
            allow_unlocked=options.allow_unlocked,
        )
        self._fetcher_instance = Fetcher(
            resolver, transfer, self._emitter, cache_locking=options.cache_locking
        )

    async def _aclose(self) -> None:
        fetcher, self._fetcher_instance = self._fetcher_instance, None
        if fetcher is not None:  # what it fetched is no longer in use by this manager
            await anyio.to_thread.run_sync(fetcher.resolver.cache.release_uses)
        lazy, self._lazy = self._lazy, None
        if lazy is not None:
            await lazy.aclose()  # closes the store if a request opened it

    def _parse(self, spec: str | AssetSpec) -> AssetSpec:
        """A spec whose version this store's versioning accepts (checked before any I/O).

        Raises:
            InvalidAssetSpecError: the text does not parse.
            InvalidVersionError: the version is not one of this versioning system.
        """
        if not isinstance(spec, AssetSpec):
            return AssetSpec.parse(spec, versioning=self._versioning)
        if spec.version is not None:
            self._versioning.validate(spec.version, spec=str(spec))
        return spec

    def _force(self, force: bool | None) -> bool:
        """Whether to download again (``force``, else the settings), checked against offline.

        Raises:
            ConfigError: forced downloads with offline mode on (they contradict each other).
        """
        force = self._options.force_download if force is None else force
        if force and self._options.offline:
            raise ConfigError(
                "force (--force, AIOMODELKIT_FORCE_DOWNLOAD) and offline mode (--offline, "
                "AIOMODELKIT_OFFLINE) contradict each other: force downloads again, offline "
                "never downloads"
            )
        return force

    def _require_store(self) -> Store:
        self._fetcher()  # raises unless open
        if self._lazy is None:
            raise ConfigError("this operation needs a store; set storage= or AIOMODELKIT_STORAGE")
        return self._lazy

    def _publisher(self) -> Publisher:
        return Publisher(
            self._require_store(),
            self._versioning,
            pushed_by=self._identity(),
            emitter=self._emitter,
            retry=self._retry,
            allow_unsafe_publish=self._allow_unsafe_publish,
        )

    def _fetcher(self) -> Fetcher:
        if self._fetcher_instance is None:
            raise RuntimeError("use the AssetsManager inside 'async with'")
        return self._fetcher_instance

    # -- publishing ---------------------------------------------------------------------

    async def new(
        self, local_path: str | os.PathLike[str], name: str, *, dry_run: bool = False
    ) -> PublishResult:
        """Publish a file or directory as the initial version of a new asset.

        Raises:
            AssetExistsError: the asset already exists.
            InvalidAssetSpecError: the name is not a valid asset name.
        """
        return await self._publisher().new(Path(local_path), name, dry_run=dry_run)

    async def update(
        self,
        local_path: str | os.PathLike[str],
        name: str,
        *,
        bump_major: bool = False,
        major: str | None = None,
        dry_run: bool = False,
    ) -> PublishResult:
        """Publish a file or directory as the next version of an existing asset.

        Args:
            local_path: the file or directory to publish.
            name: the asset name.
            bump_major: start a new major version (``1.3`` → ``2.0``).
            major: increment the newest version of this major (``major="1"``: ``1.3`` → ``1.4``).
            dry_run: compute and check everything, upload nothing.

        Raises:
            AssetNotFoundError: the asset, or the requested major, does not exist.
        """
        return await self._publisher().update(
            Path(local_path), name, bump_major=bump_major, major=major, dry_run=dry_run
        )

    async def versions(self, name: str) -> list[str]:
        """The versions of an asset in the store, newest first.

        Raises:
            AssetNotFoundError: the asset does not exist.
        """
        validate_asset_name(name)
        versions, _ = await self._publisher().read_index(name)
        return versions

    async def versions_since(self, name: str, token: str | None) -> IndexSnapshot | None:
        """The versions of ``name`` and the index's token, or None if the index still has
        ``token``: what a version watch reads each interval (one conditional request).

        Raises:
            AssetNotFoundError: the asset does not exist.
        """
        validate_asset_name(name)
        self._require_store()
        return await self._fetcher().resolver.index_since(name, token)

    def watches(self, spec: str | AssetSpec) -> bool:
        """Whether a newer version may replace ``spec``'s while serving: the spec is
        partial, no lock file covers it, and the manager reads a store (is not offline)."""
        return self._fetcher().resolver.watches(self._parse(spec))

    async def release(self, name: str, version: str) -> None:
        """Stop registering a version as in use by this manager (a library swapped it out),
        so that ``cache prune`` and ``cache_max_bytes`` may remove it again."""
        if self._fetcher_instance is not None:
            cache = self._fetcher_instance.resolver.cache
            await anyio.to_thread.run_sync(cache.release_use, name, version)

    async def meta(self, name: str, version: str) -> AssetMeta:
        """The parsed ``.meta`` of one version (push date, pusher, files).

        Raises:
            AssetNotFoundError: the asset or the version does not exist.
        """
        validate_asset_name(name)
        self._versioning.validate(version, asset=name)
        self._require_store()
        _, meta = await self._fetcher().resolver.meta(name, version)
        return meta

    async def list_assets(self) -> list[str]:
        """Every asset name in the store (one listing of the whole prefix)."""
        store = self._require_store()
        names = []
        async for info in store.list_objects():
            if info.key.endswith(".versions"):
                names.append(info.key.removesuffix(".versions"))
        return sorted(names)

    # -- fetching -----------------------------------------------------------------------

    @asynccontextmanager
    async def _deadline(self, what: str) -> AsyncIterator[None]:
        deadline = self._options.fetch_deadline
        if deadline is None:
            yield
            return
        try:
            with anyio.fail_after(deadline):
                yield
        except TimeoutError:
            raise DownloadError(f"fetch_deadline of {deadline} s exceeded", asset=what) from None

    async def fetch(self, spec: str | AssetSpec, *, force: bool | None = None) -> FetchedAsset:
        """Make an asset version available in the cache and return its local path.

        A pinned version already in the cache costs no request; a partial spec reads the
        store's index once (falling back to the cache if the store is unreachable and
        ``offline_fallback`` is on). Concurrent fetches of one version share a download.

        Args:
            spec: ``name[:version][[sub/part]]``.
            force: download again and atomically replace the cached copy (default:
                ``settings.force_download``).

        Raises:
            AssetNotFoundError: the asset, version or sub-part does not exist (offline: is
                not cached).
            IntegrityError: downloaded bytes did not match; nothing was published.
            DownloadError: ``fetch_deadline`` passed.
            StoreError: the store failed after retries (transient) or at once (permanent).
            ConfigError: ``force`` with offline mode on.
        """
        parsed = self._parse(spec)
        force = self._force(force)
        async with self._deadline(str(parsed)):
            return await self._fetcher().fetch(parsed, force=force)

    async def fetch_many(
        self, specs: Sequence[str | AssetSpec], *, force: bool | None = None
    ) -> list[FetchedAsset]:
        """Fetch several assets concurrently; results are in the order of ``specs``.

        Every spec is resolved at once, each ``.versions`` index is read once, and a
        version asked for twice (say ``name:1`` and ``name:1.3``) downloads once.

        Raises:
            ExceptionGroup: of the errors :meth:`fetch` documents, if any fetch failed
                (the others are cancelled); use ``except*``.
        """
        parsed = [self._parse(s) for s in specs]
        force = self._force(force)
        fetcher = self._fetcher()
        batch = FetchBatch()
        results: list[FetchedAsset | None] = [None] * len(parsed)

        async def one(position: int, spec: AssetSpec) -> None:
            results[position] = await fetcher.fetch(spec, force=force, batch=batch)

        async with self._deadline(", ".join(str(s) for s in parsed[:3])):
            async with anyio.create_task_group() as tg:
                for position, spec in enumerate(parsed):
                    tg.start_soon(one, position, spec)
        return [r for r in results if r is not None]

    async def lock(
        self, specs: Sequence[str | AssetSpec], path: str | os.PathLike[str]
    ) -> LockFile:
        """Resolve ``specs`` against the store and write a lock file of exact versions.

        Each entry records the version and the checksums of its meta, so that a later
        start (``lock_file=``) resolves exactly as now without asking the store.

        Raises:
            AssetNotFoundError: a spec matches no version.
        """
        self._require_store()
        parsed = [self._parse(s) for s in specs]
        lock = LockFile(await self._fetcher().resolver.lock_entries(parsed))
        await anyio.to_thread.run_sync(lock.save, Path(path))
        return lock
