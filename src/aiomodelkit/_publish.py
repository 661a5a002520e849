"""Publishing asset versions: data, then ``.meta``, then the ``.versions`` index.

Versions are immutable. A version counts as taken as soon as any of its objects exists
(its ``.meta``, its file, or any file under its directory), which also covers directory
assets that modelkit lets one publish twice. On stores with conditional writes every
object is created with ``if_absent`` and the index is rewritten with ``if_match``, so two
concurrent publishers never overwrite each other's data or lose a version from the index:
the loser of a race for a version number moves on to the next one (``update``) or fails
with :class:`AssetExistsError` (``new``).

Before its first publication to a store, a publisher checks that the store really enforces
those conditions (:mod:`._conditions`); on one that ignores them it refuses with
:class:`UnsafeStoreError`, or, with ``allow_unsafe_publish``, publishes under a best-effort
lease and reads the meta and index back to detect an overwrite.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, TypeVar

import anyio
import anyio.to_thread

from ._conditions import Lease, conditions_honoured, refuse_unsafe_store
from ._errors import (
    AssetExistsError,
    AssetNotFoundError,
    ConfigError,
    ModelkitError,
    PreconditionFailedError,
    PublishConflictError,
)
from ._events import Emitter, ObjectUploaded
from ._groups import first_error
from ._layout import (
    AssetMeta,
    FileEntry,
    data_key,
    dump_index,
    dump_meta,
    meta_key,
    parse_index,
    versions_key,
)
from ._retry import retrying
from ._sources import SourceFile, scan_source
from ._spec import AssetSpec, validate_asset_name
from ._values import RetryPolicy
from ._version import __version__
from .stores._base import Store, read_small_object

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from ._versioning import VersioningSystem
    from .stores._base import ObjectInfo

T = TypeVar("T")

__all__ = ["PublishResult", "Publisher"]

#: Concurrent uploads per publication.
UPLOAD_CONCURRENCY = 16
#: How many version numbers ``update`` tries when racing other publishers.
MAX_VERSION_ATTEMPTS = 8
#: How many times the index write is retried when another publisher changed it.
MAX_INDEX_ATTEMPTS = 50


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What a publication did (or, in a dry run, would do).

    Attributes:
        name: the asset name.
        version: the version published.
        is_directory: whether it is a directory asset.
        objects: the number of data objects.
        size: the total bytes of data.
        dry_run: True if nothing was written.
    """

    name: str
    version: str
    is_directory: bool
    objects: int
    size: int
    dry_run: bool

    @property
    def spec(self) -> AssetSpec:
        """The pinned spec of the published version."""
        return AssetSpec(self.name, self.version)


class Publisher:
    """Publishes versions to one store under one versioning system."""

    def __init__(
        self,
        store: Store,
        versioning: VersioningSystem,
        *,
        pushed_by: str,
        emitter: Emitter | None = None,
        retry: RetryPolicy | None = None,
        allow_unsafe_publish: bool = False,
    ) -> None:
        self._store = store
        self._retry = retry or RetryPolicy()
        self._versioning = versioning
        self._pushed_by = pushed_by
        self._emitter = emitter or Emitter()
        self._allow_unsafe = allow_unsafe_publish

    async def read_index(self, name: str) -> tuple[list[str], str | None]:
        """The versions of ``name``, newest first, and the index's version token.

        Raises:
            AssetNotFoundError: the asset has no index.
        """
        key = versions_key(name)

        async def read() -> tuple[ObjectInfo, bytes]:
            return await self._store.stat(key), await read_small_object(self._store, key)

        try:
            # Retried like every read of the fetch path: one truncated body must not fail
            # a whole publication.
            info, raw = await self._retrying(read, name, key)
        except AssetNotFoundError:
            raise AssetNotFoundError.no_asset(name, store_url=self._store.url, key=key) from None
        # The token is read before the content: a change in between makes our later
        # conditional write fail and retry, never succeed on stale data.
        return parse_index(raw, name=name, versioning=self._versioning), info.version_token

    async def new(self, local_path: Path, name: str, *, dry_run: bool = False) -> PublishResult:
        """Publish ``local_path`` as the first version of a new asset.

        Raises:
            AssetExistsError: the asset already exists.
        """
        validate_asset_name(name)
        is_dir, files = await anyio.to_thread.run_sync(scan_source, local_path)
        try:
            versions, _ = await self.read_index(name)
        except AssetNotFoundError:
            pass
        else:
            raise AssetExistsError(
                f"asset already exists with versions {', '.join(versions) or 'none'}; "
                "use update to publish a new version",
                asset=name,
                store_url=self._store.url,
            )
        version = self._versioning.initial_version()
        if await self._version_taken(name, version):
            raise AssetExistsError(
                f"version {version} already exists", asset=name, store_url=self._store.url
            )
        return await self._publish(name, version, is_dir, files, dry_run=dry_run)

    async def update(
        self,
        local_path: Path,
        name: str,
        *,
        bump_major: bool = False,
        major: str | None = None,
        dry_run: bool = False,
    ) -> PublishResult:
        """Publish ``local_path`` as the next version of an existing asset.

        Raises:
            AssetNotFoundError: the asset does not exist, or ``major`` has no versions.
            AssetExistsError: other publishers kept taking the next version.
            ConfigError: both ``bump_major`` and ``major`` were given.
        """
        validate_asset_name(name)
        if bump_major and major is not None:
            # Versions cannot be unpublished: refuse before anything is read or written.
            raise ConfigError(
                f"bump_major and major={major!r} contradict each other: start a new major "
                "version, or increment the newest version of one major, not both",
                asset=name,
            )
        is_dir, files = await anyio.to_thread.run_sync(scan_source, local_path)
        versions, _ = await self.read_index(name)
        known = list(versions)
        for _attempt in range(MAX_VERSION_ATTEMPTS):
            version = self._next_version(name, known, bump_major=bump_major, major=major)
            if await self._version_taken(name, version):
                known.append(version)
                continue
            try:
                return await self._publish(name, version, is_dir, files, dry_run=dry_run)
            except AssetExistsError:
                known.append(version)  # lost a race for this number: take the next one
        raise AssetExistsError(
            f"gave up after {MAX_VERSION_ATTEMPTS} versions were taken by concurrent publishers",
            asset=name,
            store_url=self._store.url,
        )

    def _next_version(
        self, name: str, known: list[str], *, bump_major: bool, major: str | None
    ) -> str:
        try:
            return self._versioning.next_version(known, bump_major=bump_major, major=major)
        except AssetNotFoundError as exc:  # no version of that major
            raise AssetNotFoundError.no_version(
                name,
                major,
                store_url=self._store.url,
                partial=True,
                available=exc.available_versions,
            ) from None

    async def _version_taken(self, name: str, version: str) -> bool:
        for key in (meta_key(name, version), data_key(name, version)):
            try:
                await self._store.stat(key)
            except AssetNotFoundError:
                continue
            return True
        async for _ in self._store.list_objects(data_key(name, version) + "/"):
            return True
        return False

    async def _publish(
        self,
        name: str,
        version: str,
        is_dir: bool,
        files: list[SourceFile],
        *,
        dry_run: bool,
    ) -> PublishResult:
        result = PublishResult(
            name, version, is_dir, len(files), sum(f.size for f in files), dry_run
        )
        if dry_run:
            return result
        if await conditions_honoured(self._store):
            await self._write(name, version, is_dir, files, conditional=True)
            return result
        if not self._allow_unsafe:
            raise refuse_unsafe_store(self._store, name)
        lease = Lease(self._store, name, holder=self._pushed_by)
        await lease.acquire()
        try:
            # Under the lease: a version taken meanwhile is taken (update() goes on).
            if await self._version_taken(name, version):
                raise AssetExistsError(
                    f"version {version} was created concurrently",
                    asset=name,
                    store_url=self._store.url,
                )
            meta = await self._write(name, version, is_dir, files, conditional=False)
            await self._read_back(name, version, meta)
        finally:
            await lease.release()
        return result

    async def _write(
        self, name: str, version: str, is_dir: bool, files: list[SourceFile], *, conditional: bool
    ) -> bytes:
        """Data, then meta, then index; returns the meta written."""
        limiter = anyio.CapacityLimiter(UPLOAD_CONCURRENCY)

        created: list[str] = []

        async def upload(source: SourceFile) -> None:
            key = data_key(name, version, source.relpath if is_dir else None)
            async with limiter:
                await self._put_new(key, source.path, conditional, name, version)
            created.append(key)
            self._emitter.emit(ObjectUploaded(asset=name, key=key, size=source.size))

        try:
            async with anyio.create_task_group() as tg:
                for source in files:
                    tg.start_soon(upload, source)
        except* AssetExistsError as group:
            # Another publisher owns this version: remove what we created under it (only
            # keys our conditional writes created, so never theirs), then report one
            # condition; update() reacts by taking the next version number.
            with anyio.CancelScope(shield=True):
                for key in created:
                    await self._store.delete(key)
            raise group.exceptions[0] from None
        except* ModelkitError as group:
            # One publication, one error: the first upload failure, which cancelled the rest.
            first = first_error(group)
            raise first from first.__cause__
        meta = AssetMeta(
            is_directory=is_dir,
            files=tuple(FileEntry(f.relpath, f.size, f.sha256, f.xxh3_128) for f in files),
            push_date=datetime.now(UTC),
            pushed_by=self._pushed_by,
            aiomodelkit_version=__version__,
        )
        # The meta is the per-version commit point (modelkit's order: data, meta, index).
        raw = dump_meta(meta)
        await self._put_new(meta_key(name, version), raw, conditional, name, version)
        await self._add_to_index(name, version, conditional=conditional)
        return raw

    async def _read_back(self, name: str, version: str, meta: bytes) -> None:
        """After an unconditional publication: our meta and our version are still there.

        Raises:
            PublishConflictError: another publisher overwrote the version or the index.
        """
        key = meta_key(name, version)
        written = await self._retrying(lambda: read_small_object(self._store, key), name, key)
        if written != meta:
            raise PublishConflictError(
                f"version {version} was overwritten by another publisher while it was "
                f"published ({self._store.url} ignores conditional writes): check it with "
                f"'aiomodelkit assets versions {name}'",
                asset=name,
                key=key,
                store_url=self._store.url,
            )
        versions, _ = await self.read_index(name)
        if version not in versions:
            raise PublishConflictError(
                f"version {version} was published but another publisher rewrote the index "
                f"without it ({self._store.url} ignores conditional writes)",
                asset=name,
                key=versions_key(name),
                store_url=self._store.url,
            )

    async def _retrying(self, call: Callable[[], Awaitable[T]], name: str, key: str) -> T:
        """``call()``, with transient store errors retried under the publisher's policy."""
        return await retrying(self._retry, call, emitter=self._emitter, asset=name, key=key)

    async def _put_new(
        self, key: str, data: bytes | Path, conditional: bool, name: str, version: str
    ) -> None:
        # A transient failure (a 500, a reset) is retried. If the lost attempt had landed,
        # the retry's conditional create fails: reported as taken, never as written by us,
        # so an update moves on to the next version and nothing of another publisher's is
        # ever claimed as ours.
        try:
            await self._retrying(
                lambda: self._store.put(key, data, if_absent=conditional), name, key
            )
        except PreconditionFailedError:
            raise AssetExistsError(
                f"version {version} was created concurrently",
                asset=name,
                key=key,
                store_url=self._store.url,
            ) from None

    async def _add_to_index(self, name: str, version: str, *, conditional: bool) -> None:
        key = versions_key(name)
        for attempt in range(MAX_INDEX_ATTEMPTS):
            try:
                versions, token = await self.read_index(name)
            except AssetNotFoundError:
                versions, token = [], None
            merged = self._versioning.sort([*versions, version])
            put = partial(
                self._store.put,
                key,
                dump_index(merged),
                if_absent=token is None and conditional,
                if_match=token if conditional else None,
            )
            try:
                await self._retrying(put, name, key)
            except PreconditionFailedError:
                # Another publisher changed the index: re-read and merge again.
                await anyio.sleep(min(0.01 * 2**attempt, 0.5))
                continue
            return
        raise PreconditionFailedError(
            f"could not add version {version} to the index after {MAX_INDEX_ATTEMPTS} attempts",
            asset=name,
            key=key,
            store_url=self._store.url,
        )
