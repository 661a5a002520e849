"""How :class:`~aiomodelkit.stores.AzureStore` translates Azure SDK and aiohttp errors, by meaning.

=============================================================  ============================
What the service answered or the client raised                 What we raise
=============================================================  ============================
``ContainerNotFound`` (404)                                    ``BucketNotFoundError``
``BlobNotFound``, any other 404                                ``AssetNotFoundError``
401, 403 (``AuthorizationFailure``, ``AuthenticationFailed``,  ``StorePermissionError``
``AuthorizationPermissionMismatch``...), no usable credential
412 ``ConditionNotMet``; 409 ``BlobAlreadyExists`` (the        ``PreconditionFailedError``
answer to ``If-None-Match: *``)
304 (a read's ``If-None-Match`` still matches)                 ``NotModifiedError``
408, 429, 5xx (``ServerBusy``, ``InternalError``,              ``StoreUnavailableError``
``OperationTimedOut``), refused or reset connections,
timeouts, truncated bodies
416 ``InvalidRange``, lease conflicts, a TLS failure,          ``StoreError``
anything else
=============================================================  ============================

The SDK's calls and our own GETs (``_azure_reads``) both go through :func:`status_error`,
so the same answer means the same error whichever path met it (a transient one with the
``retry_after`` its ``Retry-After`` asks for). Messages carry the error code, the status and
the first line of the service's message, never a URL (ours hold SAS tokens), and every known
secret is blanked out of them.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

import aiohttp
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    IncompleteReadError,
    ServiceRequestError,
    ServiceResponseError,
)

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
    from collections.abc import Iterator, Mapping, Sequence

__all__ = ["classify", "describe", "map_azure_errors", "status_error"]

_MAX_MESSAGE = 200
_TRANSIENT_CODES = frozenset({"ServerBusy", "InternalError", "OperationTimedOut"})


def classify(status: int, code: str) -> type[StoreError] | type[AssetNotFoundError]:
    """Our error class for an HTTP status and an Azure error code (``x-ms-error-code``).

    Example:
        >>> classify(404, "ContainerNotFound").__name__, classify(503, "ServerBusy").__name__
        ('BucketNotFoundError', 'StoreUnavailableError')
        >>> classify(409, "BlobAlreadyExists").__name__, classify(412, "LeaseIdMissing").__name__
        ('PreconditionFailedError', 'StoreError')
    """
    if code == "ContainerNotFound":
        return BucketNotFoundError
    if status == 404:
        return AssetNotFoundError
    if status in (401, 403):
        return StorePermissionError
    if code.startswith("Lease"):
        return StoreError  # a leased blob: waiting or retrying the write will not help
    if status == 412 or code in ("ConditionNotMet", "BlobAlreadyExists"):
        return PreconditionFailedError
    if status == 304:
        return NotModifiedError
    if status in (408, 429) or status >= 500 or code in _TRANSIENT_CODES:
        return StoreUnavailableError
    return StoreError


def status_error(
    status: int,
    code: str,
    message: str,
    *,
    key: str | None,
    store_url: str,
    secrets: Sequence[str] = (),
    headers: Mapping[str, str] | None = None,
) -> ModelkitError:
    """Ours for an error answer (status, ``x-ms-error-code``, the message of its body);
    a transient one keeps the ``Retry-After`` of its ``headers`` as ``retry_after``."""
    first_line = message.strip().splitlines()[0] if message.strip() else ""
    text = _redact(f"{code or 'HTTP error'} (HTTP {status}): {first_line}"[:_MAX_MESSAGE], secrets)
    kind = classify(status, code)
    if kind is AssetNotFoundError and key is not None:
        return AssetNotFoundError.no_object(key, store_url=store_url, detail=text)
    if kind is StoreError and status == 416:
        text = f"range starts beyond the end of the object ({text})"
    if kind is StoreUnavailableError:
        wait = retry_after_of(headers)
        return StoreUnavailableError(text, key=key, store_url=store_url, retry_after=wait)
    return kind(text, key=key, store_url=store_url)


@contextmanager
def map_azure_errors(
    *, key: str | None, store_url: str, secrets: Sequence[str] = ()
) -> Iterator[None]:
    """Raise ours, ``from`` the client's error, for anything the SDK or aiohttp raises inside.

    Args:
        key: the store key concerned, if any.
        store_url: the credential-free URL of the store.
        secrets: strings to blank out of every message (key, SAS token and signature).
    """
    try:
        yield
    except ModelkitError:
        raise  # ours already (AssetNotFoundError and StorePermissionError are OSErrors too)
    except HttpResponseError as exc:
        if exc.status_code is None:
            # No answer at all: a credential that could not get a token, most likely.
            kind: type[StoreError] = (
                StorePermissionError
                if isinstance(exc, ClientAuthenticationError)
                else StoreUnavailableError
            )
            raise kind(describe(exc, secrets), key=key, store_url=store_url) from exc
        code = getattr(exc, "error_code", None) or ""  # set by azure-storage-blob
        code = str(getattr(code, "value", code))  # a StorageErrorCode member, or a string
        raise status_error(
            exc.status_code,
            code,
            exc.message or exc.reason or "",
            key=key,
            store_url=store_url,
            secrets=secrets,
            # Every response type has headers; the SDK's Protocol for them does not say so.
            headers=getattr(exc.response, "headers", None),
        ) from exc
    except ClientAuthenticationError as exc:  # azure-identity found no usable credential
        raise StorePermissionError(
            f"no usable Azure credential: {describe(exc, secrets)}", key=key, store_url=store_url
        ) from exc
    except aiohttp.ClientSSLError as exc:
        # A certificate problem does not go away by retrying.
        raise StoreError(describe(exc, secrets), key=key, store_url=store_url) from exc
    except (
        ServiceRequestError,  # refused, DNS, connect timeouts
        ServiceResponseError,  # reset, read timeouts, broken bodies
        IncompleteReadError,
        aiohttp.ClientError,
        TimeoutError,
        OSError,
    ) as exc:
        raise StoreUnavailableError(describe(exc, secrets), key=key, store_url=store_url) from exc
    except AzureError as exc:
        raise StoreError(describe(exc, secrets), key=key, store_url=store_url) from exc


def describe(exc: BaseException, secrets: Sequence[str] = ()) -> str:
    """The exception's type and the first line of its message, with ``secrets`` blanked out.

    aiohttp's response errors are described by status alone: their text holds the URL.
    """
    if isinstance(exc, aiohttp.ClientResponseError):
        text = f"{type(exc).__name__}: HTTP {exc.status}"
    elif isinstance(exc, TimeoutError) and not str(exc):
        text = "the store stopped answering (timeout)"
    else:
        lines = str(exc).strip().splitlines()
        text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return _redact(text[:_MAX_MESSAGE], secrets)


def _redact(text: str, secrets: Sequence[str]) -> str:
    # Defence in depth: no server or library message may carry a secret out.
    for secret in secrets:
        text = text.replace(secret, "***")
    return text
