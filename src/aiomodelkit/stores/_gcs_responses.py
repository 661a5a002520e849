"""What GCS's answers say: JSON API object resources, media download headers, and bodies.

An object is described two ways: by its JSON API resource (``stat``, listings, uploads),
and by the headers of a media download (``read``), so that a read needs no metadata call.
Bodies are read in full ``chunk_size`` chunks, each under an idle timeout.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiomodelkit._errors import InvalidStoreDataError, PreconditionFailedError

from ._base import ObjectInfo, raise_if_unchanged

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    import aiohttp

__all__ = [
    "check_generation",
    "object_info",
    "response_info",
    "unless_unchanged",
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


async def unless_unchanged(
    info: ObjectInfo,
    if_none_match: str,
    stat: Callable[[str], Awaitable[ObjectInfo]],
    store_url: str,
) -> ObjectInfo:
    """``info``, of a 200 answer to a conditional read, unless it shows ``if_none_match``.

    Without ``x-goog-generation`` (gcp-storage-emulator), the object's metadata (``stat``)
    tells: asked after the answer, a generation still equal to ``if_none_match`` means the
    body is that generation's too, since generations only grow. Another generation names
    the body only if its MD5 is the body's; else the body's generation stays unknown.

    Raises:
        NotModifiedError: the object still has generation ``if_none_match``.
    """
    if info.version_token is not None:
        raise_if_unchanged(info.version_token, if_none_match, info.key, store_url=store_url)
        return info
    current = await stat(info.key)
    raise_if_unchanged(current.generation, if_none_match, info.key, store_url=store_url)
    if info.md5 is not None and info.md5 == current.md5:
        return dataclasses.replace(info, generation=current.generation)
    return info
