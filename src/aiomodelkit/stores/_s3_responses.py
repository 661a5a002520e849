"""What S3's answers say: object descriptions from GET, HEAD and list responses, and bodies.

Bodies are read in ``chunk_size`` pieces (aiobotocore iterates 1 KiB chunks), each under an
idle timeout; :meth:`S3Store.read <aiomodelkit.stores.S3Store.read>` always closes them, so
no pooled connection leaks.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from aiomodelkit._errors import InvalidStoreDataError, StoreUnavailableError

from ._base import ObjectInfo
from ._s3_errors import map_s3_errors

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence

__all__ = ["body_chunks", "md5_of", "no_chunks", "range_skip", "response_info", "strip_etag"]

_MD5 = re.compile(r"[0-9a-f]{32}")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def response_info(key: str, response: Mapping[str, Any]) -> ObjectInfo:
    """The whole object as a GET or HEAD response describes it."""
    size = response["ContentLength"]
    match = _CONTENT_RANGE.fullmatch(response.get("ContentRange") or "")
    if match is not None and match[3] != "*":
        size = int(match[3])
    etag = strip_etag(response.get("ETag"))
    # SSE-KMS and SSE-C objects have ETags that are not MD5s of the content.
    encrypted = response.get("ServerSideEncryption", "").startswith("aws:kms") or bool(
        response.get("SSECustomerAlgorithm")
    )
    return ObjectInfo(
        key=key,
        size=size,
        etag=etag,
        md5=None if encrypted else md5_of(etag),
        updated=response.get("LastModified"),
    )


def range_skip(key: str, offset: int, content_range: str | None, *, store_url: str) -> int:
    """Bytes to drop from the body so that it starts at ``offset``."""
    if not content_range:
        return offset  # the server ignored Range and sent the whole object (200)
    match = _CONTENT_RANGE.fullmatch(content_range)
    if match is None or int(match[1]) != offset:
        raise InvalidStoreDataError(
            f"the server answered range {content_range!r} for offset {offset}",
            key=key,
            store_url=store_url,
        )
    return 0


async def body_chunks(
    body: Any,
    key: str,
    skip: int,
    length: int | None,
    *,
    chunk_size: int,
    read_timeout: float,
    store_url: str,
    secrets: Sequence[str],
) -> AsyncIterator[bytes]:
    """``length`` bytes of ``body`` (all when None) after the first ``skip``, in chunks."""
    size = chunk_size
    remaining = length
    while remaining is None or remaining > 0:
        want = size if remaining is None else min(size, remaining)
        with map_s3_errors(key=key, store_url=store_url, secrets=secrets):
            try:
                # Both transports (aiohttp for direct GETs, aiobotocore's) enforce
                # read_timeout as an idle timeout per socket read: no timer of our own.
                chunk: bytes = await body.read(want if not skip else min(size, skip))
            except TimeoutError as exc:  # aiohttp's ServerTimeoutError
                raise StoreUnavailableError(
                    f"the body stalled for over {read_timeout} s",
                    key=key,
                    store_url=store_url,
                ) from exc
        if not chunk:
            return
        if skip:
            skip -= len(chunk)
            continue
        if remaining is not None:
            remaining -= len(chunk)
        yield chunk


async def no_chunks() -> AsyncIterator[bytes]:
    return
    yield  # pragma: no cover - makes this an (empty) async generator


def strip_etag(etag: str | None) -> str | None:
    """The ETag without its quotes."""
    return etag.strip('"') if etag else None


def md5_of(etag: str | None) -> str | None:
    """The ETag when it is a plain MD5 (single-part upload), else None (multipart ``md5-N``)."""
    return etag if etag is not None and _MD5.fullmatch(etag) else None
