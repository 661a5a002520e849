"""How a store request ended, and why a retry happened, as a few fixed words.

Metrics label requests and retries with these words, so each label has a handful of values
whatever the stores answer: never a message, a key or a version. A store request ends as:

=======================  ==================================================================
``ok``                   the store answered, and the body (if any) was read to the end
``not_found``            no such object or bucket (``AssetNotFoundError``,
                         ``BucketNotFoundError``)
``not_modified``         a conditional read found the object unchanged (``NotModifiedError``)
``precondition_failed``  a conditional write lost (``PreconditionFailedError``)
``throttled``            the store asked to slow down: HTTP 429, S3 ``SlowDown`` /
                         ``Throttling``, Azure ``ServerBusy``, GCS ``rateLimitExceeded``
``unavailable``          any other transient failure: 5xx, timeouts, resets, short bodies
``error``                anything else: permissions, bad data, a failure while the caller
                         read the body
``cancelled``            the caller cancelled the request (a sibling failed, a deadline)
=======================  ==================================================================

A retry's reason is one of ``throttled``, ``server_error`` (5xx), ``timeout``, ``truncated``
(the body ended early) or ``connection`` (refused, reset, anything else transient).

The stores map their SDKs' errors to ours at their boundary (``stores/_*_errors.py``) and
keep the code and status in the message; throttling is told apart from other transient
failures by those words, the only place it survives.
"""

from __future__ import annotations

import asyncio
import re

from ._errors import (
    AssetNotFoundError,
    BucketNotFoundError,
    NotModifiedError,
    PreconditionFailedError,
    StoreUnavailableError,
)

__all__ = ["OUTCOMES", "RETRY_REASONS", "congestion", "request_outcome", "retry_reason"]

OUTCOMES = (
    "ok",
    "not_found",
    "not_modified",
    "precondition_failed",
    "throttled",
    "unavailable",
    "error",
    "cancelled",
)
RETRY_REASONS = ("throttled", "server_error", "timeout", "truncated", "connection")

_THROTTLED = re.compile(
    r"\b(?:429|SlowDown|Throttl\w*|TooManyRequests|RequestLimitExceeded|ServerBusy|"
    r"rateLimitExceeded)\b"
)
_SERVER_ERROR = re.compile(r"\bHTTP 5\d\d\b|\b(?:InternalError|ServiceUnavailable)\b")
_UNAVAILABLE = re.compile(r"\bHTTP 503\b|\bServiceUnavailable\b")
_TIMEOUT = re.compile(r"time(?:d)?[ -]?out", re.IGNORECASE)
_TRUNCATED = re.compile(
    r"IncompleteRead|IncompleteBody|ended (?:before|after)|truncated", re.IGNORECASE
)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes (a store error is raised ``from`` the SDK's)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 8:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def throttled(exc: BaseException) -> bool:
    """Whether a transient error is the store asking to slow down."""
    return _THROTTLED.search(str(exc)) is not None


def request_outcome(exc: BaseException | None) -> str:
    """The outcome of a store request that raised ``exc`` (None: it succeeded).

    Example:
        >>> from aiomodelkit import StoreUnavailableError
        >>> request_outcome(None), request_outcome(StoreUnavailableError("SlowDown (HTTP 503)"))
        ('ok', 'throttled')
    """
    if exc is None:
        return "ok"
    if isinstance(exc, AssetNotFoundError | BucketNotFoundError):
        return "not_found"
    if isinstance(exc, NotModifiedError):
        return "not_modified"
    if isinstance(exc, PreconditionFailedError):
        return "precondition_failed"
    if isinstance(exc, StoreUnavailableError):
        return "throttled" if throttled(exc) else "unavailable"
    if isinstance(exc, asyncio.CancelledError):  # anyio's on asyncio, the only loop we run on
        return "cancelled"
    return "error"


def congestion(exc: BaseException) -> bool:
    """Whether a transient error says the store is overloaded: throttled, timed out, reset,
    or any 503 (a throttled HEAD has no body to say ``SlowDown`` in).

    Example:
        >>> from aiomodelkit import StoreUnavailableError
        >>> congestion(StoreUnavailableError("503 (HTTP 503)")), congestion(
        ...     StoreUnavailableError("InternalError (HTTP 500): oops"))
        (True, False)
    """
    reason = retry_reason(exc)
    if reason in ("throttled", "timeout", "connection"):
        return True
    return reason == "server_error" and any(_UNAVAILABLE.search(str(e)) for e in _chain(exc))


def retry_reason(exc: BaseException) -> str:
    """Why a transient error is retried: one of :data:`RETRY_REASONS`.

    Example:
        >>> from aiomodelkit import StoreUnavailableError
        >>> retry_reason(StoreUnavailableError("InternalError (HTTP 500): oops"))
        'server_error'
    """
    if throttled(exc):
        return "throttled"
    chain = _chain(exc)
    text = " ".join(str(e) or type(e).__name__ for e in chain)
    if _TRUNCATED.search(text):
        return "truncated"
    if any(isinstance(e, TimeoutError) for e in chain) or _TIMEOUT.search(text):
        return "timeout"
    if _SERVER_ERROR.search(text):
        return "server_error"
    return "connection"
