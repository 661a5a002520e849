"""Throttling for :class:`~aiomodelkit.testing.FaultProxy`: a hot prefix on loopback.

Real stores shed load per key prefix rather than fail: S3 admits about 5,500 GETs per
second per prefix and answers ``503 SlowDown`` above that, GCS ``429 rateLimitExceeded``,
Azure ``503 ServerBusy``. A :class:`Throttle` in a :class:`~aiomodelkit.testing.ProxyRule`
plays that part: the requests the rule matches (method, key, bucket...) share one budget,
and those above it get the API's answer at once, without reaching the server. The rule
*fires* on a throttled request, so ``proxy.fired(rule)`` is the number of "slow down"
answers sent; ``times``, ``nth`` and ``probability`` narrow it as for any rule.

The budget has two parts, either or both:

* ``rate``: a token bucket over request starts. It holds ``max(1, rate)`` tokens (one
  second's worth) and starts full, so a burst of ``rate`` requests passes, then ``rate``
  per second; a throttled request spends no token, so a client that retries at once stays
  throttled only as long as it outruns the rate.
* ``concurrency``: admitted requests still in flight. A request counts from the moment it
  is admitted until its response has been sent to the end (or its connection dropped),
  slow answers (``DelayFirstByte``, ``Stall`` of a later rule) included.

A throttle sees the requests its rule is tried on: put its rule before the others (rules
are tried in order and the first that fires wins), and an admitted request goes on to the
later rules. ``Throttle`` may share a rule with ``DelayFirstByte`` (a late "slow down").
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["THROTTLE_STATUS", "Throttle", "ThrottleState"]

#: The status each API throttles with (the body names the code: see ``_faults.error_body``).
THROTTLE_STATUS: Final[Mapping[str, int]] = {"s3": 503, "gcs": 429, "azure": 503}


@dataclass(frozen=True, slots=True)
class Throttle:
    """Answer "slow down" at once to requests above ``rate`` per second or ``concurrency``.

    S3 gets ``503 SlowDown`` (XML), GCS ``429 rateLimitExceeded`` (JSON), Azure ``503
    ServerBusy`` (XML); the server never sees a throttled request.

    Args:
        rate: requests that may start per second (a token bucket of ``max(1, rate)``
            tokens, full at first); ``None``: no rate limit.
        concurrency: admitted requests that may be in flight at once; ``None``: no limit.
        retry_after: send a ``Retry-After`` header of that many seconds (RFC 9110 defines
            whole seconds; a fraction is sent as written, ``0.5``).
    """

    rate: float | None = None
    concurrency: int | None = None
    retry_after: float | None = None

    def __post_init__(self) -> None:
        if self.rate is None and self.concurrency is None:
            raise ValueError("Throttle needs rate=, concurrency= or both")
        if self.rate is not None and not self.rate > 0:
            raise ValueError("rate must be positive")
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.retry_after is not None and not self.retry_after >= 0:
            raise ValueError("retry_after must not be negative")


@dataclass
class ThrottleState:
    """How full one :class:`Throttle` is (touched under the proxy's lock, from any thread).

    Attributes:
        in_flight: admitted requests whose response has not ended yet.
    """

    throttle: Throttle
    clock: Callable[[], float] = time.monotonic
    in_flight: int = 0
    _tokens: float = field(init=False)
    _stamp: float = field(init=False)

    def __post_init__(self) -> None:
        self._tokens = self._capacity
        self._stamp = self.clock()

    @property
    def _capacity(self) -> float:
        return max(1.0, self.throttle.rate or 0.0)

    def over(self) -> bool:
        """Whether a request starting now is above the budget (the bucket refills first)."""
        rate, limit = self.throttle.rate, self.throttle.concurrency
        now = self.clock()
        if rate is not None:
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * rate)
        self._stamp = now
        return (rate is not None and self._tokens < 1.0) or (
            limit is not None and self.in_flight >= limit
        )

    def admit(self) -> ThrottleState:
        """Let one request through: it spends a token and holds a slot until :meth:`release`."""
        if self.throttle.rate is not None:
            self._tokens -= 1.0
        self.in_flight += 1
        return self

    def release(self) -> None:
        """The response of an admitted request has ended."""
        self.in_flight -= 1
