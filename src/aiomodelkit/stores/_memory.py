"""An in-memory store for tests of pure logic (resolution, publishing, the library graph).

It behaves like a strict object store: conditional writes are atomic, reads can be pinned
to a generation, listings are sorted. Never use it for I/O tests: those run on real servers.
"""

from __future__ import annotations

import hashlib
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import anyio

from aiomodelkit._errors import AssetNotFoundError, PreconditionFailedError, StoreError
from aiomodelkit._lifecycle import AsyncResource

from ._base import (
    ObjectInfo,
    ObjectStream,
    StoreOptions,
    check_read_conditions,
    raise_if_unchanged,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

__all__ = ["MemoryStore"]


@dataclass(frozen=True, slots=True)
class _Object:
    data: bytes
    info: ObjectInfo


class MemoryStore(AsyncResource):
    """A dict-backed store; one instance can be entered and closed many times.

    Attributes:
        requests: the number of operations served, to assert "no network" in tests.
    """

    _shareable = True  # Nothing to release.

    def __init__(self, *, options: StoreOptions | None = None, name: str = "memory") -> None:
        self._objects: dict[str, _Object] = {}
        self._options = options or StoreOptions()
        self._name = name
        self._generation = 0
        self.requests = 0

    def __repr__(self) -> str:
        return f"MemoryStore({self._name!r}, objects={len(self._objects)})"

    @property
    def url(self) -> str:
        return f"memory://{self._name}"

    @property
    def supports_conditional_writes(self) -> bool:
        return True

    def _get(self, key: str) -> _Object:
        self.requests += 1
        try:
            return self._objects[key]
        except KeyError:
            raise AssetNotFoundError.no_object(key, store_url=self.url) from None

    async def stat(self, key: str) -> ObjectInfo:
        await anyio.lowlevel.checkpoint()
        return self._get(key).info

    @asynccontextmanager
    async def read(
        self,
        key: str,
        *,
        offset: int = 0,
        length: int | None = None,
        if_match: str | None = None,
        if_none_match: str | None = None,
    ) -> AsyncIterator[ObjectStream]:
        check_read_conditions(offset, length, if_match, if_none_match)
        await anyio.lowlevel.checkpoint()
        obj = self._get(key)
        if if_match is not None and obj.info.version_token != if_match:
            raise PreconditionFailedError(
                "object changed since it was pinned", key=key, store_url=self.url
            )
        raise_if_unchanged(obj.info.version_token, if_none_match, key, store_url=self.url)
        if not 0 <= offset <= len(obj.data):
            raise StoreError(
                f"range start {offset} is beyond the object's {len(obj.data)} bytes",
                key=key,
                store_url=self.url,
            )
        end = len(obj.data) if length is None else min(len(obj.data), offset + length)
        yield ObjectStream(obj.info, self._chunks(obj.data[offset:end]))

    async def _chunks(self, data: bytes) -> AsyncIterator[bytes]:
        step = self._options.chunk_size
        for start in range(0, len(data), step):
            await anyio.lowlevel.checkpoint()
            yield data[start : start + step]

    async def list_objects(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        self.requests += 1
        for key in sorted(self._objects, key=str.encode):
            if key.startswith(prefix):
                await anyio.lowlevel.checkpoint()
                yield self._objects[key].info

    async def put(
        self,
        key: str,
        data: bytes | Path,
        *,
        if_absent: bool = False,
        if_match: str | None = None,
    ) -> ObjectInfo:
        content = data if isinstance(data, bytes) else await anyio.Path(data).read_bytes()
        # No await between the check and the write: atomic on one event loop.
        self.requests += 1
        current = self._objects.get(key)
        if if_absent and current is not None:
            raise PreconditionFailedError("object already exists", key=key, store_url=self.url)
        if if_match is not None and (current is None or current.info.version_token != if_match):
            raise PreconditionFailedError(
                "object changed since it was read", key=key, store_url=self.url
            )
        self._generation += 1
        md5 = hashlib.md5(content, usedforsecurity=False).hexdigest()
        info = ObjectInfo(
            key=key,
            size=len(content),
            etag=md5,
            md5=md5,
            generation=str(self._generation),
            updated=datetime.now(UTC),
        )
        self._objects[key] = _Object(content, info)
        return info

    async def delete(self, key: str) -> None:
        await anyio.lowlevel.checkpoint()
        self.requests += 1
        self._objects.pop(key, None)
