"""How :class:`~aiomodelkit.stores.GCSStore` translates aiohttp and gcloud-aio errors.

=========================================================  ==================================
What the client raised                                     What we raise
=========================================================  ==================================
HTTP 404 for a missing bucket (``GCSStore`` asks which)    ``BucketNotFoundError``
HTTP 404                                                   ``AssetNotFoundError``
HTTP 401, 403                                              ``StorePermissionError``
HTTP 412                                                   ``PreconditionFailedError``
HTTP 304 (``ifGenerationNotMatch`` still matched)          ``NotModifiedError``
HTTP 408, 429, 5xx; refused or reset connections,          ``StoreUnavailableError``
timeouts, broken bodies
HTTP 416, a TLS failure, any other error                   ``StoreError``
=========================================================  ==================================

Messages carry the HTTP status and Google's error text, never a request URL. An answer's
``Retry-After`` becomes the ``retry_after`` of its ``StoreUnavailableError``.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from typing import TYPE_CHECKING

import aiohttp

from aiomodelkit._errors import (
    AssetNotFoundError,
    ModelkitError,
    NotModifiedError,
    PreconditionFailedError,
    StoreError,
    StorePermissionError,
    StoreUnavailableError,
)

from ._retry_after import retry_after_of

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["describe", "translate", "translated"]

_MAX_MESSAGE = 200


@contextmanager
def translated(key: str | None, store_url: str) -> Iterator[None]:
    """Raise what :func:`translate` makes of any client error raised inside."""
    try:
        yield
    except ModelkitError:
        raise
    except Exception as exc:
        raise translate(exc, key, store_url) from exc


def translate(exc: Exception, key: str | None, store_url: str) -> ModelkitError:
    """Ours for ``exc`` (returned as is when it is ours already), to raise ``from`` it."""
    where = {"key": key, "store_url": store_url}
    if isinstance(exc, ModelkitError):
        return exc
    if isinstance(exc, aiohttp.ClientResponseError):
        # Never str(exc): it holds the request URL (resumable sessions are capabilities).
        text = f"HTTP {exc.status}: {_google_message(exc.message)}"
        status = exc.status
        if status == 404:
            if key is None:
                return AssetNotFoundError(f"not found ({text})", **where)
            return AssetNotFoundError.no_object(key, store_url=store_url, detail=text)
        if status in (401, 403):
            return StorePermissionError(f"access denied ({text})", **where)
        if status == 412:
            return PreconditionFailedError(f"condition not met ({text})", **where)
        if status == 304:
            return NotModifiedError(f"not modified ({text})", **where)
        if status == 416:
            return StoreError(f"range starts beyond the end of the object ({text})", **where)
        if status in (408, 429) or status >= 500:
            return StoreUnavailableError(
                f"transient failure ({text})",
                key=key,
                store_url=store_url,
                retry_after=retry_after_of(exc.headers),  # gcloud-aio passes the headers on
            )
        return StoreError(text, **where)
    if isinstance(exc, aiohttp.ClientSSLError):
        return StoreError(f"TLS failure: {describe(exc)}", **where)
    if isinstance(exc, TimeoutError) and not isinstance(exc, aiohttp.ClientError):
        return StoreUnavailableError(
            "the store stopped answering (timeout)", key=key, store_url=store_url
        )
    if isinstance(
        exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError | TimeoutError | OSError
    ):
        return StoreUnavailableError(describe(exc), key=key, store_url=store_url)
    return StoreError(describe(exc), **where)


def _google_message(message: str) -> str:
    """The reason and Google's error text out of gcloud-aio's ``"Reason: <body>"``."""
    reason, _, body = message.partition(": ")
    try:
        detail = json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        detail = body.strip()
    text = f"{reason}: {detail}" if detail and detail != reason else reason
    return text[:_MAX_MESSAGE]


def describe(exc: BaseException) -> str:
    """The exception's type and message."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
