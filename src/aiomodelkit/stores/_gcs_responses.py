"""What GCS's answers say: JSON API object resources, media download headers, and bodies.

An object is described two ways: by its JSON API resource (``stat``, listings, uploads),
and by the headers of a media download (``read``), so that a read needs no metadata call.
Bodies are read in full ``chunk_size`` chunks, each under an idle timeout.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import TYPE_CHECKING, Any

import anyio

from aiomodelkit._errors import InvalidStoreDataError, PreconditionFailedError

from ._base import ObjectInfo
from ._gcs_errors import translate

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

    import aiohttp

__all__ = [
    "body_chunks",
    "check_generation",
    "no_chunks",
    "object_info",
    "range_start",
    "response_info",
]


def object_info(resource: Mapping[str, Any], *, prefix: str, store_url: str) -> ObjectInfo:
    """The object a JSON API resource describes, keyed relative to ``prefix``."""
    name = resource.get("name")
    try:
        if not isinstance(name, str):
            raise TypeError("object resource without a name")
        key = name
        if prefix:
            head = prefix + "/"
            if not name.startswith(head):
                raise ValueError(f"object name outside the prefix {prefix!r}")
            key = name[len(head) :]
        md5_b64 = resource.get("md5Hash")
        updated = resource.get("updated")
        generation = resource.get("generation")
        etag = resource.get("etag")
        return ObjectInfo(
            key=key,
            size=int(resource["size"]),
            etag=str(etag).strip('"') if etag else None,
            md5=base64.b64decode(md5_b64, validate=True).hex() if md5_b64 else None,
            crc32c=str(resource["crc32c"]) if resource.get("crc32c") else None,
            generation=str(generation) if generation is not None else None,
            updated=datetime.fromisoformat(updated) if updated else None,
        )
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise InvalidStoreDataError(
            f"malformed object metadata: {exc}", key=str(name), store_url=store_url
        ) from exc


def response_info(key: str, response: aiohttp.ClientResponse, *, store_url: str) -> ObjectInfo:
    """The whole object as a media download's headers describe it.

    ``x-goog-hash`` covers the entire object even on a ranged (206) answer.
    """
    headers = response.headers
    size_text = headers.get("Content-Range", "").rpartition("/")[2]
    if not size_text.isdigit():
        size_text = headers.get("Content-Length", "0")
    hashes = dict(
        part.strip().partition("=")[::2]
        for part in headers.getall("x-goog-hash", [])
        for part in part.split(",")
    )
    try:
        md5 = base64.b64decode(hashes["md5"], validate=True).hex() if "md5" in hashes else None
        size = int(size_text)
    except (ValueError, binascii.Error) as exc:
        raise InvalidStoreDataError(
            f"malformed response headers: {exc}", key=key, store_url=store_url
        ) from exc
    etag = headers.get("etag")
    return ObjectInfo(
        key=key,
        size=size,
        etag=etag.strip('"') if etag else None,
        md5=md5,
        crc32c=hashes.get("crc32c"),
        generation=headers.get("x-goog-generation"),
    )


def range_start(response: aiohttp.ClientResponse, key: str, *, store_url: str) -> int:
    """Where the body starts in the object, from ``Content-Range: bytes a-b/n``."""
    value = response.headers.get("Content-Range")
    if value is None:
        return 0
    unit, _, rest = value.partition(" ")
    first = rest.partition("-")[0]
    if unit != "bytes" or not first.isdigit():
        raise InvalidStoreDataError(
            f"unreadable Content-Range {value[:64]!r}", key=key, store_url=store_url
        )
    return int(first)


def check_generation(
    generation: str | None, if_match: str | None, key: str, *, store_url: str
) -> None:
    """Raise :class:`PreconditionFailedError` if the response names another generation.

    A response without ``x-goog-generation`` (some emulators never send it) says nothing:
    its generation is unknown, not changed. The tokens are compared only when both are
    known; the end-to-end SHA-256 of the download remains the backstop.

    Example:
        >>> check_generation(None, "17", "k", store_url="gs://b")  # unknown: not a change
        >>> check_generation("17", "17", "k", store_url="gs://b")
    """
    if if_match is not None and generation is not None and generation != if_match:
        raise PreconditionFailedError(
            f"object is at generation {generation}, not {if_match}",
            key=key,
            store_url=store_url,
        )


async def body_chunks(
    response: aiohttp.ClientResponse,
    key: str,
    *,
    skip: int,
    limit: int | None,
    chunk_size: int,
    read_timeout: float,
    store_url: str,
) -> AsyncIterator[bytes]:
    """Full ``chunk_size`` chunks of the body, each read under the idle timeout."""
    size = chunk_size
    remaining = limit  # bytes still to deliver, None for all
    parts: list[bytes] = []
    filled = 0
    while remaining is None or remaining > 0:
        if skip:
            want = min(skip, size)
        else:
            want = size - filled if remaining is None else min(size - filled, remaining)
        try:
            with anyio.fail_after(read_timeout):
                data = await response.content.read(want)
        except Exception as exc:
            raise translate(exc, key, store_url) from exc
        if not data:
            break
        if skip:
            skip -= len(data)  # read() never returns more than asked
            continue
        if remaining is not None:
            remaining -= len(data)
        parts.append(data)
        filled += len(data)
        if filled == size:
            yield parts[0] if len(parts) == 1 else b"".join(parts)
            parts, filled = [], 0
    if parts:
        yield b"".join(parts)


async def no_chunks() -> AsyncIterator[bytes]:
    empty: tuple[bytes, ...] = ()
    for chunk in empty:
        yield chunk
