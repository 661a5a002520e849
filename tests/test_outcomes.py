"""Store request outcomes and retry reasons: a few fixed words, whatever the stores say."""

from __future__ import annotations

import anyio
import pytest

from aiomodelkit import (
    AssetNotFoundError,
    BucketNotFoundError,
    IntegrityError,
    NotModifiedError,
    PreconditionFailedError,
    StoreError,
    StorePermissionError,
    StoreUnavailableError,
)
from aiomodelkit._outcomes import OUTCOMES, RETRY_REASONS, request_outcome, retry_reason
from aiomodelkit._retry import TruncatedBodyError


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (None, "ok"),
        (AssetNotFoundError("no such key"), "not_found"),
        (BucketNotFoundError("no bucket"), "not_found"),
        (NotModifiedError("not modified since x"), "not_modified"),
        (PreconditionFailedError("PreconditionFailed (HTTP 412)"), "precondition_failed"),
        (
            StoreUnavailableError("SlowDown (HTTP 503): Please reduce your request rate"),
            "throttled",
        ),
        (StoreUnavailableError("transient failure (HTTP 429: rateLimitExceeded)"), "throttled"),
        (StoreUnavailableError("ServerBusy (HTTP 503): busy"), "throttled"),
        (StoreUnavailableError("InternalError (HTTP 500): oops"), "unavailable"),
        (StoreUnavailableError("ClientOSError: connection reset by peer"), "unavailable"),
        (StorePermissionError("AccessDenied (HTTP 403)"), "error"),
        (StoreError("odd"), "error"),
        (IntegrityError("SHA-256 does not match"), "error"),
        (ValueError("a caller's own failure"), "error"),
    ],
)
def test_request_outcomes(error: BaseException | None, outcome: str) -> None:
    assert request_outcome(error) == outcome
    assert outcome in OUTCOMES


async def test_a_cancelled_request() -> None:
    caught: list[BaseException] = []
    with anyio.CancelScope() as scope:
        scope.cancel()
        try:
            await anyio.sleep(1)
        except anyio.get_cancelled_exc_class() as exc:
            caught.append(exc)
            raise
    assert [request_outcome(exc) for exc in caught] == ["cancelled"]


def _from(message: str, cause: BaseException) -> StoreUnavailableError:
    try:
        raise StoreUnavailableError(message) from cause
    except StoreUnavailableError as exc:
        return exc


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (StoreUnavailableError("503 SlowDown (injected)"), "throttled"),
        (StoreUnavailableError("Throttling (HTTP 400): Rate exceeded"), "throttled"),
        (StoreUnavailableError("InternalError (HTTP 500): oops"), "server_error"),
        (StoreUnavailableError("transient failure (HTTP 502: Bad Gateway)"), "server_error"),
        (StoreUnavailableError("the store stopped answering (timeout)"), "timeout"),
        (_from("ReadTimeoutError", TimeoutError()), "timeout"),
        (TruncatedBodyError("body ended after 10 of 20 bytes"), "truncated"),
        (StoreUnavailableError("IncompleteReadError: 10 read, 10 more expected"), "truncated"),
        (StoreUnavailableError("ClientOSError: connection reset by peer"), "connection"),
        (_from("ClientConnectorError", ConnectionRefusedError()), "connection"),
    ],
)
def test_retry_reasons(error: StoreUnavailableError, reason: str) -> None:
    assert retry_reason(error) == reason
    assert reason in RETRY_REASONS
