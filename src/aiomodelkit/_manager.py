"""``AssetsManager``: one store, one cache, publishing and fetching."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Self

import anyio

from ._cache import AssetCache
from ._errors import ConfigError
from ._fetch import FetchedAsset, Fetcher
from ._layout import AssetMeta, meta_key, parse_meta
from ._publish import Publisher, PublishResult
from ._settings import Settings
from ._spec import AssetSpec, validate_asset_name
from ._versioning import VersioningSystem, get_versioning
from .stores._base import Store, read_small_object
from .stores._registry import open_store

if TYPE_CHECKING:
    import os
    from collections.abc import Sequence
    from types import TracebackType

    from ._events import EventCallback

__all__ = ["AssetsManager"]


class AssetsManager:
    """Publishes assets to a store and fetches them into a local cache.

    Args:
        assets_dir: the cache directory (default: ``settings.assets_dir``); created if needed.
        storage: a store URL, an unopened :class:`~aiomodelkit.stores.Store`, or None for
            cache-only use (default: ``settings.storage``).
        versioning: ``major_minor``, ``simple_date`` or a system instance (default:
            ``settings.versioning``).
        settings: settings to take defaults from; read from the environment if omitted.
        on_event: a callback receiving progress events.

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
    ) -> None:
        self._settings = settings or Settings.load()
        self._assets_dir = Path(assets_dir) if assets_dir is not None else self._settings.assets_dir
        if storage is None:
            storage = self._settings.storage
        self._store: Store | None
        if storage is None or isinstance(storage, Store):
            self._store = storage
        else:
            self._store = open_store(storage, options=self._settings.store_options())
        self._versioning = get_versioning(versioning or self._settings.versioning)
        self._on_event = on_event
        self._entered = False

    def __repr__(self) -> str:
        store = self._store.url if self._store is not None else None
        return f"AssetsManager(assets_dir={str(self._assets_dir)!r}, storage={store!r})"

    @property
    def store(self) -> Store | None:
        """The store, or None in cache-only mode."""
        return self._store

    @property
    def assets_dir(self) -> Path:
        """The cache directory."""
        return self._assets_dir

    @property
    def versioning(self) -> VersioningSystem:
        """The versioning system of the store."""
        return self._versioning

    async def __aenter__(self) -> Self:
        if self._entered:
            raise RuntimeError("an AssetsManager can be entered only once at a time")
        await anyio.Path(self._assets_dir).mkdir(parents=True, exist_ok=True)
        if self._store is not None:
            await self._store.__aenter__()
        self._entered = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._entered = False
        if self._store is not None:
            with anyio.CancelScope(shield=True):
                await self._store.aclose()

    def _require_store(self) -> Store:
        if not self._entered:
            raise RuntimeError("use the AssetsManager inside 'async with'")
        if self._store is None:
            raise ConfigError("this operation needs a store; set storage= or AIOMODELKIT_STORAGE")
        return self._store

    def _publisher(self) -> Publisher:
        return Publisher(
            self._require_store(),
            self._versioning,
            pushed_by=self._settings.identity(),
            on_event=self._on_event,
        )

    def _fetcher(self) -> Fetcher:
        if not self._entered:
            raise RuntimeError("use the AssetsManager inside 'async with'")
        limiter = anyio.CapacityLimiter(self._settings.max_connections)
        return Fetcher(
            self._store,
            AssetCache(self._assets_dir),
            self._versioning,
            limiter=limiter,
            on_event=self._on_event,
        )

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

    async def meta(self, name: str, version: str) -> AssetMeta:
        """The parsed ``.meta`` of one version (push date, pusher, files).

        Raises:
            AssetNotFoundError: the version does not exist.
        """
        validate_asset_name(name)
        self._versioning.validate(version, asset=name)
        raw = await read_small_object(self._require_store(), meta_key(name, version))
        return parse_meta(raw, name=name, version=version)

    async def list_assets(self) -> list[str]:
        """Every asset name in the store (one listing of the whole prefix)."""
        store = self._require_store()
        names = []
        async for info in store.list_objects():
            if info.key.endswith(".versions"):
                names.append(info.key.removesuffix(".versions"))
        return sorted(names)

    # -- fetching -----------------------------------------------------------------------

    async def fetch(self, spec: str | AssetSpec, *, force: bool = False) -> FetchedAsset:
        """Make an asset version available in the cache and return its local path.

        Raises:
            AssetNotFoundError: the asset, version or sub-part does not exist.
            IntegrityError: downloaded bytes did not match the meta.
        """
        parsed = spec if isinstance(spec, AssetSpec) else AssetSpec.parse(spec)
        return await self._fetcher().fetch(parsed, force=force)

    async def fetch_many(self, specs: Sequence[str | AssetSpec]) -> list[FetchedAsset]:
        """Fetch several assets concurrently; results are in the order of ``specs``."""
        parsed = [s if isinstance(s, AssetSpec) else AssetSpec.parse(s) for s in specs]
        fetcher = self._fetcher()
        results: list[FetchedAsset | None] = [None] * len(parsed)

        async def one(index: int, spec: AssetSpec) -> None:
            results[index] = await fetcher.fetch(spec)

        async with anyio.create_task_group() as tg:
            for index, spec in enumerate(parsed):
                tg.start_soon(one, index, spec)
        return [r for r in results if r is not None]
