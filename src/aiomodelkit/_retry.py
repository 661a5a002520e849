"""The retry policy: transient store errors are tried again with backoff, nothing else is.

Exponential backoff with full jitter (or the store's ``Retry-After``, when longer), at most
``max_attempts`` tries, each retry announced by a :class:`~aiomodelkit.Retrying` event.
Only :class:`~aiomodelkit.StoreUnavailableError` (5xx, throttling, resets, stalls, truncated
bodies) is transient; everything else (missing objects, permissions, checksums) fails at
once.

Written out rather than built with tenacity: its per-call machinery measured ~60 µs per
object, a visible share of the CPU spent on thousands of small objects, and this loop is
the whole policy.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, TypeVar

import anyio

from ._errors import StoreUnavailableError
from ._events import Retrying
from ._outcomes import congestion, retry_reason

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._events import Emitter
    from ._values import RetryPolicy

__all__ = ["CONGESTED_BACKOFF", "TruncatedBodyError", "retry_delay", "retrying"]

T = TypeVar("T")


class TruncatedBodyError(StoreUnavailableError):
    """A response body ended before all its bytes arrived (transient: resumed)."""


#: A request the store refused for overload (:func:`~._outcomes.congestion`: throttled, any
#: 503, a timeout or a reset; the same signal that shrinks the connection budget) backs off
#: from this multiple of the backoff: a hot prefix refuses for seconds, and a fleet's
#: refusals retried within the usual backoff spend their attempts before it cools (16
#: processes on one throttled prefix: 1 failed start in 48 at 1x, in ``benchmarks/fleet``).
#: AWS's SDKs likewise start throttling backoffs 5x higher.
CONGESTED_BACKOFF = 4


def retry_delay(policy: RetryPolicy, failed_attempt: int, *, congested: bool = False) -> float:
    """The pause after attempt number ``failed_attempt`` (1 for the first): full jitter,
    from :data:`CONGESTED_BACKOFF` times the backoff when the store was overloaded.

    Example:
        >>> from aiomodelkit._values import RetryPolicy
        >>> 0 <= retry_delay(RetryPolicy(backoff=0.25, backoff_max=10), 3) <= 1.0
        True
    """
    base = policy.backoff * (CONGESTED_BACKOFF if congested else 1)
    ceiling = min(policy.backoff_max, base * 2 ** (failed_attempt - 1))
    return random.uniform(0, ceiling)


async def retrying(
    policy: RetryPolicy,
    attempt: Callable[[], Awaitable[T]],
    *,
    emitter: Emitter,
    asset: str,
    key: str,
) -> T:
    """Await ``attempt()`` until it succeeds, retrying transient errors under ``policy``.

    Raises:
        StoreUnavailableError: the last transient error, once ``max_attempts`` are spent.
    """
    number = 1
    while True:
        try:
            return await attempt()
        except StoreUnavailableError as exc:
            if number >= policy.max_attempts:
                raise
            delay = retry_delay(policy, number, congested=congestion(exc))
            # The store's Retry-After, when it asked for longer than the backoff.
            delay = max(delay, exc.retry_after or 0.0)
            emitter.emit(
                Retrying(
                    asset=asset,
                    key=key,
                    attempt=number,
                    delay=delay,
                    error=f"{type(exc).__name__}: {exc}",
                    reason=retry_reason(exc),
                )
            )
            await anyio.sleep(delay)
            number += 1
