"""Fetching asset versions from a store into the cache: resolve, stream, verify, publish.

Every object of a version streams concurrently (bounded by one shared limiter) into a
staging copy; sizes and SHA-256 digests are checked against the ``.meta`` when it records
them; the whole version then appears at its final path with one rename.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

import anyio
import anyio.to_thread

from ._errors import (
    AssetNotFoundError,
    ConfigError,
    IntegrityError,
    InvalidStoreDataError,
    ModelkitError,
)
from ._events import (
    AssetPublished,
    AssetResolved,
    BytesReceived,
    CacheHit,
    DownloadStarted,
    EventCallback,
    ObjectDownloaded,
)
from ._layout import AssetMeta, FileEntry, data_key, meta_key, parse_index, parse_meta, versions_key
from ._spec import AssetSpec, validate_relative_path
from .stores._base import MiB, Store, read_small_object

if TYPE_CHECKING:
    from pathlib import Path

    from ._cache import AssetCache
    from ._versioning import VersioningSystem

__all__ = ["FetchedAsset", "Fetcher"]

#: Bytes gathered from the network before one write to disk (one thread hop per write).
WRITE_BUFFER = 4 * MiB


@dataclass(frozen=True, slots=True)
class FetchedAsset:
    """An asset version available in the cache.

    Attributes:
        spec: the spec that was asked for.
        version: the exact version it resolved to.
        path: the local path, including the spec's sub-part.
        from_cache: True if nothing was downloaded.
        size: the bytes downloaded (0 on a cache hit).
        objects: the objects downloaded (0 on a cache hit).
    """

    spec: AssetSpec
    version: str
    path: Path
    from_cache: bool
    size: int = 0
    objects: int = 0


class Fetcher:
    """Resolves specs and downloads versions from one store into one cache."""

    def __init__(
        self,
        store: Store | None,
        cache: AssetCache,
        versioning: VersioningSystem,
        *,
        limiter: anyio.CapacityLimiter,
        on_event: EventCallback | None = None,
    ) -> None:
        self._store = store
        self._cache = cache
        self._versioning = versioning
        self._limiter = limiter
        self._on_event = on_event or (lambda event: None)

    async def resolve(self, spec: AssetSpec) -> str:
        """The exact version ``spec`` names; a pinned, cached version costs no request.

        Raises:
            AssetNotFoundError: no version matches (the error lists those available).
        """
        if spec.version is not None:
            self._versioning.validate(spec.version, spec=str(spec))
        local = await anyio.to_thread.run_sync(
            self._cache.local_versions, spec.name, self._versioning
        )
        if spec.version is not None and self._versioning.is_complete(spec.version):
            if spec.version in local or self._store is None:
                return self._versioning.resolve(local, spec.version, asset=spec.name)
        if self._store is None:
            return self._versioning.resolve(local, spec.version, asset=spec.name)
        raw = await read_small_object(self._store, versions_key(spec.name))
        remote = parse_index(raw, name=spec.name, versioning=self._versioning)
        return self._versioning.resolve(remote, spec.version, asset=spec.name)

    async def fetch(self, spec: AssetSpec, *, force: bool = False) -> FetchedAsset:
        """Make ``spec``'s version complete in the cache and return where it is.

        Raises:
            AssetNotFoundError: the asset, version or sub-part does not exist.
            IntegrityError: a size or checksum did not match.
            InvalidStoreDataError: the meta is malformed or names unsafe paths.
        """
        version = await self.resolve(spec)
        self._on_event(AssetResolved(asset=spec.name, spec=str(spec), version=version))
        final = await anyio.to_thread.run_sync(self._cache.version_path, spec.name, version)
        complete = await anyio.to_thread.run_sync(self._cache.is_complete, spec.name, version)
        size = objects = 0
        if complete and not force:
            self._on_event(CacheHit(asset=spec.name, version=version, path=final))
        else:
            if self._store is None:
                raise ConfigError("cannot download without a store", asset=str(spec))
            size, objects = await self._download(spec.name, version)
        path = final
        if spec.sub_part is not None:
            path = final.joinpath(*spec.sub_part.split("/"))
            if not await anyio.Path(path).exists():
                raise AssetNotFoundError(
                    f"sub-part {spec.sub_part!r} is not in version {version}", asset=str(spec)
                )
        return FetchedAsset(
            spec, version, path, from_cache=objects == 0, size=size, objects=objects
        )

    async def _files(self, name: str, version: str, meta: AssetMeta) -> tuple[FileEntry, ...]:
        assert self._store is not None
        if not meta.is_directory or meta.files:
            return meta.files
        # An old meta without "contents": list the version's directory instead.
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

    async def _download(self, name: str, version: str) -> tuple[int, int]:
        assert self._store is not None
        raw = await read_small_object(self._store, meta_key(name, version))
        meta = parse_meta(raw, name=name, version=version)
        files = await self._files(name, version, meta)
        self._on_event(
            DownloadStarted(
                asset=name, version=version, objects=len(files), total_bytes=meta.total_size
            )
        )
        staging = await anyio.to_thread.run_sync(
            self._cache.new_staging, name, version, meta.is_directory
        )
        try:
            total = 0
            async with anyio.create_task_group() as tg:
                for entry in files:
                    target = (
                        staging.joinpath(*entry.path.split("/")) if meta.is_directory else staging
                    )
                    tg.start_soon(
                        self._download_object, name, version, meta.is_directory, entry, target
                    )
                    total += entry.size or 0
            published = await anyio.to_thread.run_sync(
                self._cache.publish, name, version, staging, meta.is_directory
            )
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._cache.discard, staging)
            raise
        if published:
            final = staging.with_name(version)  # staging sits beside its final path
            self._on_event(AssetPublished(asset=name, version=version, path=final, size=total))
        return total, len(files)

    async def _download_object(
        self, name: str, version: str, is_directory: bool, entry: FileEntry, target: Path
    ) -> None:
        assert self._store is not None
        key = data_key(name, version, entry.path if is_directory else None)
        digest = hashlib.sha256()
        received = 0
        async with self._limiter:
            await anyio.to_thread.run_sync(lambda: target.parent.mkdir(parents=True, exist_ok=True))
            handle = await anyio.to_thread.run_sync(open, target, "wb")
            try:
                buffer: list[bytes] = []
                buffered = 0
                async with self._store.read(key) as chunks:
                    async for chunk in chunks:
                        received += len(chunk)
                        if entry.size is not None and received > entry.size:
                            raise IntegrityError(
                                f"object is larger than the {entry.size} bytes its meta records",
                                asset=name,
                                key=key,
                            )
                        buffer.append(chunk)
                        buffered += len(chunk)
                        self._on_event(BytesReceived(asset=name, key=key, size=len(chunk)))
                        if buffered >= WRITE_BUFFER:
                            await anyio.to_thread.run_sync(_write, handle, digest, buffer)
                            buffer, buffered = [], 0
                if buffer:
                    await anyio.to_thread.run_sync(_write, handle, digest, buffer)
            finally:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(handle.close)
        if entry.size is not None and received != entry.size:
            raise IntegrityError(
                f"object has {received} bytes, its meta records {entry.size}", asset=name, key=key
            )
        if entry.sha256 is not None and digest.hexdigest() != entry.sha256:
            raise IntegrityError("object's SHA-256 does not match its meta", asset=name, key=key)
        self._on_event(ObjectDownloaded(asset=name, key=key, size=received))


def _write(handle: BinaryIO, digest: hashlib._Hash, chunks: list[bytes]) -> None:
    for chunk in chunks:
        digest.update(chunk)
        handle.write(chunk)
