"""What a read asks of S3, and the conditions of a read checked again on the answer.

:meth:`S3Store.read <aiomodelkit.stores.S3Store.read>` sends ``If-Match`` and
``If-None-Match`` with its GET, and then checks the answer's ETag anyway: some
S3-compatible servers ignore one or the other and answer 200 with the body (the
compatibility matrix, ``tests/compat``, names them). The caller sees the same errors
either way; ignoring ``If-None-Match`` only costs the body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiomodelkit._errors import PreconditionFailedError, StoreError

from ._base import check_read_conditions, quote_etag, raise_if_unchanged
from ._s3_responses import strip_etag

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["check_conditions", "get_params"]


def get_params(
    bucket: str,
    full_key: str,
    key: str,
    *,
    offset: int,
    length: int | None,
    if_match: str | None,
    if_none_match: str | None,
    store_url: str,
) -> dict[str, Any]:
    """The ``GetObject`` parameters of a read (``Range`` only for a part of the object).

    Example:
        >>> get_params("b", "p/k", "k", offset=0, length=None, if_match=None,
        ...            if_none_match="abc", store_url="s3://b/p")
        {'Bucket': 'b', 'Key': 'p/k', 'IfNoneMatch': '"abc"'}

    Raises:
        StoreError: a negative offset or length.
        ValueError: ``if_none_match`` with ``if_match`` or a range.
    """
    if offset < 0 or (length is not None and length < 0):
        raise StoreError(
            f"invalid range: offset={offset}, length={length}", key=key, store_url=store_url
        )
    check_read_conditions(offset, length, if_match, if_none_match)
    params: dict[str, Any] = {"Bucket": bucket, "Key": full_key}
    if if_match is not None:
        params["IfMatch"] = if_match
    if if_none_match is not None:
        # Quoted, as S3 sends ETags: s3rver and rclone ignore a bare one (answer 200).
        params["IfNoneMatch"] = quote_etag(if_none_match)
    if offset or length is not None:
        end = "" if length is None else str(offset + length - 1)
        params["Range"] = f"bytes={offset}-{end}"
    return params


def check_conditions(
    key: str,
    response: Mapping[str, Any],
    *,
    if_match: str | None,
    if_none_match: str | None,
    store_url: str,
) -> None:
    """Apply, by the answer's ETag, the conditions a server ignored and answered 200 to.

    s3rver and rclone ignore ``If-Match`` on reads; pys3local ignores ``If-None-Match``.

    Raises:
        PreconditionFailedError: the object no longer has ETag ``if_match``.
        NotModifiedError: the object still has ETag ``if_none_match`` (the caller closes
            the body).
    """
    etag = strip_etag(response.get("ETag"))
    if if_match is not None and etag is not None and etag != strip_etag(if_match):
        raise PreconditionFailedError(
            f"object has ETag {etag}, not {strip_etag(if_match)}", key=key, store_url=store_url
        )
    raise_if_unchanged(etag, if_none_match, key, store_url=store_url)
