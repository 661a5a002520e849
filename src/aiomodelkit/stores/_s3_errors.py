"""How :class:`~aiomodelkit.stores.S3Store` translates botocore and aiohttp errors, by meaning.

============================================================  ===============================
What the client raised                                        What we raise
============================================================  ===============================
``NoSuchBucket``                                              ``BucketNotFoundError``
``NoSuchKey``, a bare ``404`` (HEAD has no error body)        ``AssetNotFoundError``
``AccessDenied``, ``InvalidAccessKeyId``, ``SignatureDoes…``,  ``StorePermissionError``
401/403, no credentials found
``PreconditionFailed``, 412, ``ConditionalRequestConflict``   ``PreconditionFailedError``
``NotModified``, 304 (a GET's ``If-None-Match`` matched)      ``NotModifiedError``
5xx, 429, ``SlowDown``, throttling, ``RequestTimeout``,        ``StoreUnavailableError``
``BadDigest``, refused or reset connections, timeouts,
truncated or broken bodies (``aiohttp.ClientError``, …)
a TLS certificate problem, any other error                    ``StoreError``
============================================================  ===============================

Messages carry the error code, the HTTP status and the server's message, never credentials.
An answer's ``Retry-After`` becomes the ``retry_after`` of its ``StoreUnavailableError``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import aiohttp
import botocore.exceptions  # type: ignore[import-untyped]

from aiomodelkit._errors import (
    AssetNotFoundError,
    BucketNotFoundError,
    ModelkitError,
    NotModifiedError,
    PreconditionFailedError,
    StoreError,
    StorePermissionError,
    StoreUnavailableError,
)

from ._retry_after import retry_after_of

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

__all__ = ["describe", "error_code", "error_status", "map_s3_errors", "raise_if_not_modified"]

_PERMISSION_CODES = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
     "InvalidToken", "TokenRefreshRequired", "AllAccessDisabled", "AccountProblem"}
)  # fmt: skip
_CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
_TRANSIENT_CODES = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestLimitExceeded",
     "InternalError", "ServiceUnavailable", "OperationAborted", "TooManyRequests",
     # A body damaged in transit: sending it again may succeed.
     "BadDigest", "XAmzContentSHA256Mismatch", "IncompleteBody"}
)  # fmt: skip
_TRANSIENT_BOTOCORE = (
    botocore.exceptions.ConnectionError,  # refused, connect timeouts, proxy failures
    botocore.exceptions.HTTPClientError,  # read timeouts, closed connections, broken streams
    botocore.exceptions.IncompleteReadError,  # body shorter than Content-Length
    botocore.exceptions.FlexibleChecksumError,  # body damaged in transit
)


@contextmanager
def map_s3_errors(
    *, key: str | None, store_url: str, secrets: Sequence[str] = ()
) -> Iterator[None]:
    """Raise ours, ``from`` the client's error, for anything botocore or aiohttp raises inside.

    Args:
        key: the store key concerned, if any.
        store_url: the credential-free URL of the store.
        secrets: strings to blank out of every message (secret key, session token).
    """
    try:
        yield
    except ModelkitError:
        raise  # ours already (AssetNotFoundError and StorePermissionError are OSErrors too)
    except botocore.exceptions.ClientError as exc:
        kind = _classify(exc)
        if kind is AssetNotFoundError and key is not None:
            detail = describe(exc, secrets)
            raise AssetNotFoundError.no_object(key, store_url=store_url, detail=detail) from exc
        if kind is StoreUnavailableError:
            raise StoreUnavailableError(
                describe(exc, secrets), key=key, store_url=store_url, retry_after=_retry_after(exc)
            ) from exc
        raise kind(describe(exc, secrets), key=key, store_url=store_url) from exc
    except botocore.exceptions.SSLError as exc:
        # A certificate problem does not go away by retrying.
        raise StoreError(describe(exc, secrets), key=key, store_url=store_url) from exc
    except (*_TRANSIENT_BOTOCORE, aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise StoreUnavailableError(describe(exc, secrets), key=key, store_url=store_url) from exc
    except (
        botocore.exceptions.NoCredentialsError,
        botocore.exceptions.PartialCredentialsError,
    ) as exc:
        raise StorePermissionError(
            f"no usable AWS credentials: {describe(exc, secrets)}", key=key, store_url=store_url
        ) from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise StoreError(describe(exc, secrets), key=key, store_url=store_url) from exc


def _classify(exc: Any) -> type[StoreError] | type[AssetNotFoundError]:
    code, status = error_code(exc), error_status(exc) or 0
    if code == "NoSuchBucket":
        return BucketNotFoundError
    if code == "NoSuchKey" or (status == 404 and code in ("404", "NotFound")):
        return AssetNotFoundError
    if code in _PERMISSION_CODES or status in (401, 403):
        return StorePermissionError
    if code in _CONFLICT_CODES or status == 412:
        return PreconditionFailedError
    if _not_modified(exc):
        return NotModifiedError
    if code in _TRANSIENT_CODES or status == 429 or status >= 500:
        return StoreUnavailableError
    return StoreError


def raise_if_not_modified(exc: Any, if_none_match: str | None, key: str, *, store_url: str) -> None:
    """Raise :class:`NotModifiedError` ``from exc`` if ``exc`` is the 304 that answers a
    GET's ``If-None-Match`` (botocore raises it as a ``ClientError``, and so does
    ``_s3_direct``)."""
    if if_none_match is not None and _not_modified(exc):
        token = if_none_match.strip('"')
        raise NotModifiedError.since(token, key=key, store_url=store_url) from exc


def _not_modified(exc: Any) -> bool:
    return error_status(exc) == 304 or error_code(exc) in ("304", "NotModified")


def describe(exc: BaseException, secrets: Sequence[str] = ()) -> str:
    """A one-line description of a client error, with ``secrets`` blanked out."""
    if isinstance(exc, botocore.exceptions.ClientError):
        message = exc.response.get("Error", {}).get("Message", "")
        text = f"{error_code(exc)} (HTTP {error_status(exc)}): {message}"
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    # Defence in depth: no server or library message may carry a secret out.
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def error_code(exc: Any) -> str:
    """The S3 error code of a ``ClientError`` (HEAD gives only the status, e.g. ``'404'``)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def _retry_after(exc: Any) -> float | None:
    """The seconds a ``ClientError``'s ``Retry-After`` asks to wait, if it has one.

    botocore keeps the answer's headers, names lower-cased, in its ``ResponseMetadata``;
    ``_s3_direct`` puts them there too.
    """
    return retry_after_of(exc.response.get("ResponseMetadata", {}).get("HTTPHeaders"))


def error_status(exc: Any) -> int | None:
    """The HTTP status of a ``ClientError``."""
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None
