"""Multipart uploads for :class:`~aiomodelkit.stores.S3Store`: large files, bounded memory.

A few workers pull part numbers and each reads its own slice of the file in a worker thread,
so at most ``concurrency * part_size`` bytes are in memory, whatever the file size. The
conditions (``IfNoneMatch`` / ``IfMatch``) go on CompleteMultipartUpload: AWS and SeaweedFS
4.48 enforce both, moto 5.2.5 only ``IfNoneMatch`` (it completes despite a stale
``IfMatch``). A failed or cancelled upload is aborted, since S3 keeps (and bills) uploaded
parts until then.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import botocore.exceptions  # type: ignore[import-untyped]

from aiomodelkit._errors import StoreError
from aiomodelkit._groups import first_error

from ._base import MiB
from ._s3_errors import error_code, error_status

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager
    from pathlib import Path

    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

__all__ = ["MIN_PART_SIZE", "upload_in_parts"]

#: S3's smallest part, except for the last one.
MIN_PART_SIZE = 5 * MiB
_MAX_PARTS = 10_000
#: What servers without multipart uploads answer CreateMultipartUpload with (pys3local: a
#: bare 400; others: 501 NotImplemented or 405).
_UNSUPPORTED_STATUS = frozenset({400, 405, 501})
_UNSUPPORTED = frozenset({"NotImplemented", "MethodNotAllowed", "InvalidRequest"})


async def upload_in_parts(
    client: S3Client,
    *,
    bucket: str,
    key: str,
    data: bytes | Path,
    size: int,
    part_size: int,
    concurrency: int,
    conditions: dict[str, Any],
    mapped: Callable[[], AbstractContextManager[None]],
    abort_timeout: float,
) -> str:
    """Upload ``size`` bytes of ``data`` as one object; return its (quoted) ETag.

    Args:
        client: an open S3 client.
        bucket: the bucket.
        key: the full object key (prefix included).
        data: the content, or the path of the file holding it.
        size: the number of bytes to upload.
        part_size: the wanted part size; grown if 10,000 parts would not hold ``size``.
        concurrency: parts in flight at once.
        conditions: ``IfNoneMatch`` / ``IfMatch`` for the completion.
        mapped: a fresh error-mapping context for each client call.
        abort_timeout: seconds allowed for aborting a failed upload.
    """
    part_size = max(part_size, math.ceil(size / _MAX_PARTS))
    count = max(1, math.ceil(size / part_size))
    # Shielded: a cancellation that lands while the server creates the upload would leave
    # an upload nobody knows the id of, so nobody aborts (it then lingers in the bucket,
    # billed, until a lifecycle rule removes it). The cancellation is taken at the next
    # await instead, inside the try below, which aborts the upload.
    with anyio.CancelScope(shield=True), mapped():
        try:
            created = await client.create_multipart_upload(
                Bucket=bucket, Key=key, ChecksumAlgorithm="CRC32"
            )
        except botocore.exceptions.ClientError as exc:
            if error_status(exc) in _UNSUPPORTED_STATUS or error_code(exc) in _UNSUPPORTED:
                raise StoreError(
                    f"the server refused to start a multipart upload ({error_code(exc) or ''} "
                    f"HTTP {error_status(exc)}); it may not support them: raise "
                    "multipart_threshold (AIOMODELKIT_MULTIPART_THRESHOLD, "
                    "--multipart-threshold; up to 5 GiB) above the size of the largest file "
                    f"({size} bytes here) to upload each file in one request",
                    key=key,
                ) from exc
            raise
    upload_id = created["UploadId"]
    parts: list[CompletedPartTypeDef] = [{} for _ in range(count)]
    numbers = iter(range(1, count + 1))

    async def upload_parts() -> None:
        for number in numbers:  # shared: each worker takes the next part number
            start = (number - 1) * part_size
            chunk = await _read_part(data, start, min(part_size, size - start))
            with mapped():
                sent = await client.upload_part(
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=chunk,
                    ChecksumAlgorithm="CRC32",
                )
            part: CompletedPartTypeDef = {"PartNumber": number, "ETag": sent["ETag"]}
            if sent.get("ChecksumCRC32"):
                part["ChecksumCRC32"] = sent["ChecksumCRC32"]
            parts[number - 1] = part

    try:
        try:
            async with anyio.create_task_group() as group:
                for _ in range(min(concurrency, count)):
                    group.start_soon(upload_parts)
        except BaseExceptionGroup as errors:
            # The first failure cancels the other workers: raise it as the upload's own
            # error (one put, one exception), keeping its cause.
            first = first_error(errors)
            raise first from first.__cause__
        with mapped():
            done = await client.complete_multipart_upload(
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                **conditions,
            )
    except BaseException:
        with anyio.CancelScope(shield=True), anyio.move_on_after(abort_timeout):
            try:
                await client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            except Exception:  # the upload's own error is the one to report
                pass
        raise
    return done["ETag"]


async def _read_part(data: bytes | Path, start: int, length: int) -> bytes:
    if isinstance(data, bytes):
        return data[start : start + length]
    return await anyio.to_thread.run_sync(_pread_exact, data, start, length)


def _pread_exact(path: Path, start: int, length: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        chunk = os.pread(fd, length, start)
    finally:
        os.close(fd)
    if len(chunk) != length:
        raise StoreError(f"{path.name} shrank while it was being uploaded")
    return chunk
