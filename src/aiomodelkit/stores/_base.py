"""The one small async protocol every store implements, and what stores share.

Keys passed to a store are relative to its prefix (``models/clf/1.0``); the store joins them
with its bucket and prefix. Every store maps its client's errors, at the boundary, into the
tree of :mod:`aiomodelkit._errors`:

* missing object → :class:`~aiomodelkit.AssetNotFoundError` (``key`` set),
* missing bucket or root → :class:`~aiomodelkit.BucketNotFoundError`,
* 403 / access denied → :class:`~aiomodelkit.StorePermissionError`,
* 412 on a conditional write or read → :class:`~aiomodelkit.PreconditionFailedError`,
* 304 on a conditional read (``if_none_match``) → :class:`~aiomodelkit.NotModifiedError`,
* 5xx, throttling, resets, timeouts → :class:`~aiomodelkit.StoreUnavailableError`,
* anything else → :class:`~aiomodelkit.StoreError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, Self, runtime_checkable

from aiomodelkit._errors import (
    InvalidStoreDataError,
    NotModifiedError,
    StoreError,
    StoreUnavailableError,
)
from aiomodelkit._values import DEFAULT_PREFIX, MiB, StoreOptions

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from contextlib import AbstractAsyncContextManager
    from datetime import datetime
    from pathlib import Path
    from types import TracebackType

__all__ = [
    "DEFAULT_PREFIX",
    "MiB",
    "ObjectInfo",
    "ObjectStream",
    "Store",
    "StoreOptions",
    "check_read_conditions",
    "join_key",
    "quote_etag",
    "raise_if_unchanged",
    "read_small_object",
    "read_small_object_info",
    "same_token",
]


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What a store knows about one object.

    Attributes:
        key: the key, relative to the store's prefix.
        size: the size in bytes.
        etag: the entity tag, without quotes (S3: the MD5 for simple uploads, ``md5-N`` for
            multipart ones).
        md5: the hex MD5 of the whole content, when the store guarantees it is one.
        crc32c: the base64 big-endian CRC32C (GCS), when known.
        generation: the object generation (GCS), when known.
        updated: the last modification time, when known.
    """

    key: str
    size: int
    etag: str | None = None
    md5: str | None = None
    crc32c: str | None = None
    generation: str | None = None
    updated: datetime | None = None

    @property
    def version_token(self) -> str | None:
        """The token that pins this exact content, for ``if_match`` and ``if_none_match``
        (generation, else ETag)."""
        return self.generation or self.etag


@dataclass(frozen=True, slots=True)
class ObjectStream:
    """One response body as chunks, with what the response told about the whole object.

    Iterate it for the chunks. ``info`` describes the whole object even for a ranged read
    (its ``size`` is the object's, its ``version_token`` pins later ranged reads, its
    ``md5``/``crc32c`` are whole-object digests when the store sends them).
    """

    info: ObjectInfo
    chunks: AsyncIterator[bytes]

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.chunks


@runtime_checkable
class Store(Protocol):
    """An object store holding modelkit-layout assets.

    Stores are async context managers: the client opens on entry and closes on exit (or
    :meth:`aclose`); constructors do no I/O.
    """

    @property
    def url(self) -> str:
        """A URL naming the store, free of credentials (``s3://bucket/prefix``)."""
        ...

    @property
    def supports_conditional_writes(self) -> bool:
        """Whether :meth:`put` enforces ``if_absent`` / ``if_match`` atomically."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def aclose(self) -> None:
        """Close the client; idempotent."""
        ...

    async def stat(self, key: str) -> ObjectInfo:
        """Describe one object.

        Raises:
            AssetNotFoundError: no such object.
            BucketNotFoundError: no such bucket.
        """
        ...

    def read(
        self,
        key: str,
        *,
        offset: int = 0,
        length: int | None = None,
        if_match: str | None = None,
        if_none_match: str | None = None,
    ) -> AbstractAsyncContextManager[ObjectStream]:
        """Stream an object, or ``length`` bytes from ``offset``, as chunks.

        ``if_match`` pins the read to one :attr:`ObjectInfo.version_token`; a replaced
        object raises :class:`~aiomodelkit.PreconditionFailedError` instead of mixing
        contents. ``if_none_match`` reads the object only if its version token is no longer
        that one: entering the context raises :class:`~aiomodelkit.NotModifiedError` when
        it still is (a 304 without a body where the server honours the header; where it
        sends the body anyway, the store compares the tokens itself and closes it). Only
        whole-object reads take ``if_none_match``. Leaving the context closes the
        response, drained or not.

        Raises:
            AssetNotFoundError: no such object.
            NotModifiedError: the object still has version token ``if_none_match``.
            StoreUnavailableError: the body stalled longer than the read timeout.
            ValueError: ``if_none_match`` with ``if_match`` or a range.
        """
        ...

    def list_objects(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, following pagination."""
        ...

    async def put(
        self,
        key: str,
        data: bytes | Path,
        *,
        if_absent: bool = False,
        if_match: str | None = None,
    ) -> ObjectInfo:
        """Write an object from bytes or a local file.

        Args:
            key: the key, relative to the prefix.
            data: the content, or the path of a file to upload.
            if_absent: fail if the key exists (conditional create).
            if_match: fail unless the object still has this version token.

        Raises:
            PreconditionFailedError: a condition did not hold.
        """
        ...

    async def delete(self, key: str) -> None:
        """Delete an object; deleting a missing key is not an error."""
        ...


def join_key(prefix: str, key: str) -> str:
    """Join a prefix and a relative key with exactly one ``/``."""
    prefix = prefix.strip("/")
    key = key.lstrip("/")
    return f"{prefix}/{key}" if prefix else key


async def read_small_object(store: Store, key: str, *, max_size: int = 16 * MiB) -> bytes:
    """Read a whole small object (an index or a ``.meta``), refusing anything larger.

    Raises:
        InvalidStoreDataError: the object is larger than ``max_size``.
        AssetNotFoundError: no such object.
        StoreUnavailableError: the body ended before the size the store announced (a
            dropped connection: transient, retried by the callers).
    """
    data, _ = await read_small_object_info(store, key, max_size=max_size)
    return data


async def read_small_object_info(
    store: Store, key: str, *, max_size: int = 16 * MiB, if_none_match: str | None = None
) -> tuple[bytes, ObjectInfo]:
    """Read a whole small object, and what its response said about it.

    The info's :attr:`~ObjectInfo.version_token` is the token to pass as ``if_none_match``
    next time, so that an unchanged object costs one request and no body.

    Args:
        store: the store to read from.
        key: the object's key.
        max_size: the largest object accepted, in bytes.
        if_none_match: read only if the object no longer has this version token.

    Raises:
        NotModifiedError: the object still has version token ``if_none_match``.
        InvalidStoreDataError: the object is larger than ``max_size``.
        AssetNotFoundError: no such object.
        StoreUnavailableError: the body ended before the size the store announced.
    """
    parts: list[bytes] = []
    total = 0
    # Passed only when set: a store written before conditional reads still reads plainly.
    reading = (
        store.read(key) if if_none_match is None else store.read(key, if_none_match=if_none_match)
    )
    async with reading as chunks:
        async for chunk in chunks:
            total += len(chunk)
            if total > max_size:
                raise InvalidStoreDataError(
                    f"object is larger than the {max_size} bytes allowed for metadata",
                    key=key,
                    store_url=store.url,
                )
            parts.append(chunk)
        info = chunks.info
    if total != info.size:
        raise StoreUnavailableError(
            f"the body ended after {total} of {info.size} bytes", key=key, store_url=store.url
        )
    return b"".join(parts), info


def check_read_conditions(
    offset: int, length: int | None, if_match: str | None, if_none_match: str | None
) -> None:
    """Refuse ``if_none_match`` on a range, with ``if_match``, or as ``*``.

    A version watch re-reads whole small objects; a conditional range would have to agree
    with every store on what "unchanged" means for part of an object.

    Raises:
        ValueError: ``if_none_match`` in one of those combinations.
    """
    if if_none_match is None:
        return
    if if_match is not None:
        raise ValueError("if_none_match and if_match cannot be combined")
    if offset or length is not None:
        raise ValueError("if_none_match applies to whole-object reads only")
    if not if_none_match.strip('"') or if_none_match == "*":
        raise ValueError("if_none_match must be a version token")


def quote_etag(etag: str) -> str:
    """An ETag as conditional headers want it: in double quotes (``*`` stays bare).

    Example:
        >>> quote_etag("abc"), quote_etag('"abc"'), quote_etag('W/"abc"'), quote_etag("*")
        ('"abc"', '"abc"', 'W/"abc"', '*')
    """
    return etag if etag == "*" or etag.startswith(('"', 'W/"')) else f'"{etag}"'


def same_token(token: str | None, wanted: str | None) -> bool:
    """Whether version token ``token`` is ``wanted`` (ETag quotes ignored; None is unknown).

    Example:
        >>> same_token("abc", '"abc"'), same_token(None, "abc"), same_token("abc", None)
        (True, False, False)
    """
    return token is not None and wanted is not None and token.strip('"') == wanted.strip('"')


def raise_if_unchanged(
    token: str | None, if_none_match: str | None, key: str, *, store_url: str
) -> None:
    """Raise :class:`NotModifiedError` if an object with ``token`` still has ``if_none_match``.

    The fallback for servers that ignore ``If-None-Match`` and send the body anyway: the
    caller closes that body unread.
    """
    if if_none_match is not None and same_token(token, if_none_match):
        raise NotModifiedError.since(if_none_match.strip('"'), key=key, store_url=store_url)


def ensure_store_error(exc: BaseException, *, key: str | None, store_url: str) -> StoreError:
    """A generic :class:`StoreError` for a client error no rule recognised."""
    return StoreError(f"{type(exc).__name__}: {exc}", key=key, store_url=store_url)
