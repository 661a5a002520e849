"""What a fetch leaves behind: one audit log record, and a :class:`FetchFinished` event.

The record answers "which version did this service use, from where, verified how" in the
logs (``checksum`` names the version's content, ``verified_with`` the checksum each object
downloaded was checked against, see :mod:`._checksums`); the event carries the same facts
to whoever listens (metrics, a progress callback).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Protocol

import anyio.to_thread

from ._events import FetchFinished

if TYPE_CHECKING:
    from pathlib import Path

    from ._events import Emitter
    from ._spec import AssetSpec

__all__ = ["audit", "count_objects"]

logger = logging.getLogger("aiomodelkit")

#: The completion marker a cached directory version holds (modelkit's; see :mod:`._cache`).
_MARKER = ".SUCCESS"


class _Fetched(Protocol):
    """The fields of a :class:`~aiomodelkit.FetchedAsset` read here."""

    @property
    def spec(self) -> AssetSpec: ...
    @property
    def version(self) -> str: ...
    @property
    def path(self) -> Path: ...
    @property
    def from_cache(self) -> bool: ...
    @property
    def size(self) -> int: ...
    @property
    def objects(self) -> int: ...
    @property
    def source(self) -> str: ...
    @property
    def verified_with(self) -> str | None: ...
    @property
    def requests(self) -> int: ...


def count_objects(path: Path, *, version_root: bool) -> int:
    """The files of a cached asset at ``path`` (blocking: run it in a worker thread).

    A file is one object; a directory counts its files, but not the completion marker at a
    version's root.
    """
    if not path.is_dir():
        return 1 if path.exists() else 0
    count = 0
    for parent, _, files in os.walk(path):
        count += len(files)
        if version_root and parent == str(path) and _MARKER in files:
            count -= 1
    return count


async def audit(fetched: _Fetched, checksum: str | None, duration: float, emitter: Emitter) -> None:
    """Log the audit record of one fetch and, if anyone listens, emit its FetchFinished."""
    source = "cache" if fetched.from_cache else "store"
    record = {
        "spec": str(fetched.spec),
        "version": fetched.version,
        "source": source,
        "resolved_by": fetched.source,
        "bytes": fetched.size,
        "objects": fetched.objects,
        "checksum": checksum,
        "verified_with": fetched.verified_with,
        "requests": fetched.requests,
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
    if not emitter.active:
        return
    objects = fetched.objects
    if fetched.from_cache:  # nothing was downloaded: count what the cache holds, off the loop
        root = fetched.spec.sub_part is None
        objects = await anyio.to_thread.run_sync(
            lambda: count_objects(fetched.path, version_root=root)
        )
    emitter.emit(
        FetchFinished(
            asset=fetched.spec.name,
            spec=str(fetched.spec),
            version=fetched.version,
            source="fallback" if fetched.source == "fallback" else source,
            size=fetched.size,
            objects=objects,
            seconds=duration,
            path=fetched.path,
            verified_with=fetched.verified_with,
            requests=fetched.requests,
        )
    )
