"""Uploads for :class:`~aiomodelkit.stores.S3Store`: one ``PutObject``, or parts when large.

Bytes and files up to the multipart threshold go in one request; larger ones go through
``_s3_multipart``, with bounded memory. Both carry the same conditions, ``IfNoneMatch="*"``
(create only) and ``IfMatch`` (replace only that version).
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import anyio
import botocore.exceptions  # type: ignore[import-untyped]

from aiomodelkit._errors import PreconditionFailedError

from ._base import ObjectInfo
from ._s3_errors import error_code, map_s3_errors
from ._s3_multipart import upload_in_parts
from ._s3_responses import md5_of, strip_etag

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

    from types_aiobotocore_s3 import S3Client

__all__ = ["MULTIPART_CONCURRENCY", "put_object"]

#: Parts uploaded at once; memory held is about this times the part size.
MULTIPART_CONCURRENCY = 4


async def put_object(
    client: S3Client,
    *,
    bucket: str,
    key: str,
    full_key: str,
    data: bytes | Path,
    if_absent: bool,
    if_match: str | None,
    multipart_threshold: int,
    part_size: int,
    abort_timeout: float,
    store_url: str,
    secrets: Sequence[str],
) -> ObjectInfo:
    """Upload bytes or a file as ``full_key``; describe it under the store key ``key``.

    Args:
        client: an open S3 client.
        bucket: the bucket.
        key: the store key (for the result and error messages).
        full_key: the object key (prefix included).
        data: the content, or the path of the file holding it.
        if_absent: upload only if no object has the key.
        if_match: upload only if the object's ETag is this one.
        multipart_threshold: uploads larger than this many bytes go in parts.
        part_size: the size of each part.
        abort_timeout: seconds allowed for aborting a failed multipart upload.
        store_url: the credential-free URL of the store, for error messages.
        secrets: strings to blank out of every message.
    """
    conditions: dict[str, Any] = {}
    if if_absent:
        conditions["IfNoneMatch"] = "*"
    if if_match is not None:
        conditions["IfMatch"] = if_match
    # Errors reading the caller's file are theirs, not the store's: leave them unmapped.
    size = len(data) if isinstance(data, bytes) else (await anyio.Path(data).stat()).st_size
    if size > multipart_threshold:
        etag = await upload_in_parts(
            client,
            bucket=bucket,
            key=full_key,
            data=data,
            size=size,
            part_size=part_size,
            concurrency=MULTIPART_CONCURRENCY,
            conditions=conditions,
            mapped=functools.partial(_map_write_errors, key, conditions, store_url, secrets),
            abort_timeout=abort_timeout,
        )
    else:
        body = data if isinstance(data, bytes) else await anyio.Path(data).read_bytes()
        size = len(body)
        with _map_write_errors(key, conditions, store_url, secrets):
            response = await client.put_object(Bucket=bucket, Key=full_key, Body=body, **conditions)
        etag = response["ETag"]
    stripped = strip_etag(etag)
    return ObjectInfo(key=key, size=size, etag=stripped, md5=md5_of(stripped))


@contextmanager
def _map_write_errors(
    key: str, conditions: dict[str, Any], store_url: str, secrets: Sequence[str]
) -> Iterator[None]:
    with map_s3_errors(key=key, store_url=store_url, secrets=secrets):
        try:
            yield
        except botocore.exceptions.ClientError as exc:
            # IfMatch on a missing key: 404 on AWS and moto, 412 on SeaweedFS.
            if "IfMatch" in conditions and error_code(exc) == "NoSuchKey":
                raise PreconditionFailedError(
                    "object is gone", key=key, store_url=store_url
                ) from exc
            raise
