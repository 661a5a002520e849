"""Uploads for :class:`~aiomodelkit.stores.AzureStore`: one Put Blob, or staged blocks when large.

Up to the block threshold (1 MiB by default, ``BLOCK_THRESHOLD`` says why), one Put
Blob carries the whole content, and the service records its MD5. Above it, a few workers each
read their own block of the file in a worker thread and stage it (Put Block, its body sent as
a stream), so at most ``concurrency * block_size`` bytes are in memory whatever the file
size; one Put Block List then commits them. The SDK's own ``upload_blob`` would read the file
on the event loop (a blocking ``read()`` per block), so we drive the blocks ourselves.

The conditions go on the request that makes the blob appear: ``If-None-Match: *`` (create
only; the service answers 409 ``BlobAlreadyExists``) and ``If-Match`` (replace only that
version; 412 ``ConditionNotMet``). A failed upload needs no clean-up: the service discards
uncommitted blocks after a week, and they never show in listings or reads.
"""

from __future__ import annotations

import io
import math
import os
import uuid
from base64 import b64encode
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from azure.core import MatchConditions
from azure.storage.blob import BlobBlock, ContentSettings

from aiomodelkit._errors import AssetNotFoundError, PreconditionFailedError, StoreError
from aiomodelkit._groups import first_error

from ._azure_reads import md5_hex, quote_etag
from ._base import MiB, ObjectInfo

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from contextlib import AbstractContextManager
    from pathlib import Path

    from azure.storage.blob.aio import BlobClient

__all__ = ["BLOCK_CONCURRENCY", "BLOCK_SIZE", "BLOCK_THRESHOLD", "MAX_BLOCKS", "put_blob"]

#: Files and byte strings above this size are uploaded in blocks. The SDK's single Put Blob
#: sends its body as one ``bytes``, which aiohttp writes at once above 1 MiB (and warns
#: that it may hold the event loop); blocks go out as streams.
BLOCK_THRESHOLD = 1 * MiB
#: Size of each staged block (Azure allows up to 4000 MiB, and 50,000 blocks).
BLOCK_SIZE = 8 * MiB

#: Blocks staged at once; memory held is about this times the block size.
BLOCK_CONCURRENCY = 4
#: Azure's limit of committed blocks per blob.
MAX_BLOCKS = 50_000
_CONTENT = ContentSettings(content_type="application/octet-stream")


async def put_blob(
    blob: BlobClient,
    *,
    key: str,
    data: bytes | Path,
    if_absent: bool,
    if_match: str | None,
    block_threshold: int,
    block_size: int,
    mapped: Callable[[], AbstractContextManager[None]],
    store_url: str,
) -> ObjectInfo:
    """Upload bytes or a file to ``blob``; describe it under the store key ``key``.

    Args:
        blob: the SDK client of the blob.
        key: the store key (for the result and error messages).
        data: the content, or the path of the file holding it.
        if_absent: upload only if no blob has the name.
        if_match: upload only if the blob's ETag is this one.
        block_threshold: uploads larger than this many bytes go in blocks.
        block_size: the size of each block.
        mapped: the store's error mapping for ``key``.
        store_url: the credential-free URL of the store, for error messages.

    Raises:
        PreconditionFailedError: a condition did not hold (the blob exists, changed or is
            gone).
    """
    if if_absent and if_match is not None:
        raise ValueError("pass if_absent or if_match, not both")
    conditions: dict[str, Any] = {}
    if if_absent:
        conditions["match_condition"] = MatchConditions.IfMissing
    elif if_match is not None:
        conditions["etag"] = quote_etag(if_match)
        conditions["match_condition"] = MatchConditions.IfNotModified
    # Errors reading the caller's file are theirs, not the store's: leave them unmapped.
    size = len(data) if isinstance(data, bytes) else (await anyio.Path(data).stat()).st_size
    with _gone_means_changed(key, if_match, store_url):
        if size > block_threshold:
            answer = await _upload_blocks(blob, data, size, block_size, conditions, mapped)
            # Put Block List's Content-MD5 is the digest of the block list it sent, not of the
            # blob, and the service records no MD5 for the blob.
            answer.pop("content_md5", None)
        else:
            body = data if isinstance(data, bytes) else await anyio.Path(data).read_bytes()
            size = len(body)
            with mapped():
                answer = await blob.upload_blob(
                    body,
                    blob_type="BlockBlob",
                    length=size,
                    overwrite=True,  # the conditions, if any, are explicit
                    content_settings=_CONTENT,
                    max_concurrency=1,
                    **conditions,
                )
    etag = answer.get("etag")
    return ObjectInfo(
        key=key,
        size=size,
        etag=str(etag).strip('"') if etag else None,
        md5=md5_hex(answer.get("content_md5")),
        updated=answer.get("last_modified"),
    )


async def _upload_blocks(
    blob: BlobClient,
    data: bytes | Path,
    size: int,
    block_size: int,
    conditions: dict[str, Any],
    mapped: Callable[[], AbstractContextManager[None]],
) -> dict[str, Any]:
    block_size = max(block_size, math.ceil(size / MAX_BLOCKS))
    count = max(1, math.ceil(size / block_size))
    # All block IDs of a blob must have one length; 36 characters, like the SDK's (a uuid4),
    # so that an upload of ours and one of the SDK's racing on one name do not clash. The
    # random part keeps two racing uploads of ours from staging over each other's blocks.
    run = uuid.uuid4().hex[:26]
    ids = [b64encode(f"{run}{index:010d}".encode()).decode() for index in range(count)]
    numbers = iter(range(count))

    async def stage_blocks() -> None:
        for index in numbers:  # shared: each worker takes the next block
            start = index * block_size
            chunk = await _read_block(data, start, min(block_size, size - start))
            with mapped():
                # A stream, not bytes: aiohttp sends a bytes body above 1 MiB in one write
                # (and warns that it may hold the loop); a stream goes out in pieces.
                await blob.stage_block(ids[index], io.BytesIO(chunk), length=len(chunk))

    try:
        async with anyio.create_task_group() as group:
            for _ in range(min(BLOCK_CONCURRENCY, count)):
                group.start_soon(stage_blocks)
    except BaseExceptionGroup as errors:
        # The first failure cancels the other workers: raise it as the upload's own error
        # (one put, one exception), keeping its cause.
        first = first_error(errors)
        raise first from first.__cause__
    with mapped():
        answer: dict[str, Any] = await blob.commit_block_list(
            [BlobBlock(block_id) for block_id in ids], content_settings=_CONTENT, **conditions
        )
    return answer


async def _read_block(data: bytes | Path, start: int, length: int) -> bytes:
    if isinstance(data, bytes):
        return data[start : start + length]
    return await anyio.to_thread.run_sync(_pread_exact, data, start, length)


def _pread_exact(path: Path, start: int, length: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        chunk = os.pread(fd, length, start)
    finally:
        os.close(fd)
    if len(chunk) != length:
        raise StoreError(f"{path.name} shrank while it was being uploaded")
    return chunk


@contextmanager
def _gone_means_changed(key: str, if_match: str | None, store_url: str) -> Iterator[None]:
    """Report ``If-Match`` on a blob that is gone as the condition failing, not as a miss."""
    try:
        yield
    except AssetNotFoundError as exc:
        if if_match is None:
            raise
        raise PreconditionFailedError("object is gone", key=key, store_url=store_url) from exc
