"""The connection budget of one store endpoint: fixed, or adapting to what the store serves.

A fleet that cold-starts at once (a deploy, an autoscale burst) meets a store that answers
``503 SlowDown`` / ``429`` when a prefix is hot. A fixed 64 connections per process makes it
worse: every refusal is retried into the same hot prefix. :class:`ConnectionBudget` keeps
the number of requests in flight where the store keeps up, the way TCP finds a link's rate:

* **slow start**: from :data:`START` requests in flight the budget doubles after each
  round (as many completions as the budget) until the first sign of congestion;
* **additive increase**: then one more per round while the round's throughput grows or
  its latency holds (a round slower per request and no faster overall is the link, full);
* **multiplicative decrease**: a throttling answer (HTTP 429, S3 ``SlowDown``, Azure
  ``ServerBusy``), a timeout or a reset halves the budget, at most once per round: one hot
  second's burst of refusals is one signal, not fifty;
* **collapse detection**: a round far below the best one seen (under :data:`COLLAPSE` of
  its throughput) with more in flight than then drops the budget to that best level;
* always between :data:`FLOOR` and the ceiling (``max_connections``);
* **pacing below the floor**: a store still refusing at :data:`FLOOR` in flight (a fleet
  of processes on one hot prefix: 16 processes at 2 each are 32 in flight) spaces this
  process's request starts, the interval doubling from :data:`MIN_INTERVAL` on each further
  signal (to :data:`MAX_INTERVAL`) and halving after each good round, down to none, before
  the budget grows again. Refusals then stay rare instead of spending every request's
  attempts.

The budget is an :class:`anyio.CapacityLimiter` whose ``total_tokens`` moves: lowering it
takes effect as requests finish, never by cancelling one. Metadata reads (index, meta,
HEAD) do not go through it (see :class:`~aiomodelkit._transfer.Transfer`): they never queue
behind big transfers. ``adaptive_concurrency=False`` keeps the fixed budget.

Everything here is pure logic over an injectable clock (tested without a network).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["COLLAPSE", "FLOOR", "MAX_INTERVAL", "MIN_INTERVAL", "START", "ConnectionBudget"]

#: Requests in flight an adaptive budget starts from (then doubles each round).
START = 16
#: The fewest requests in flight an adaptive budget goes down to.
FLOOR = 2
#: A round under this share of the best round's throughput, with more in flight, is a
#: collapse (huggingface's adaptive client, without it, settled at 0.1-1 MB/s).
COLLAPSE = 0.5
#: A round's latency "holds" while it stays under this multiple of the best round's.
LATENCY_HOLDS = 1.25
#: The first interval between request starts when the floor is not enough (seconds).
MIN_INTERVAL = 0.01
#: The longest interval between request starts (seconds).
MAX_INTERVAL = 1.0


class ConnectionBudget:
    """How many requests to one store endpoint may be in flight at once.

    Args:
        ceiling: the most, ever (``max_connections``).
        adaptive: adapt between :data:`FLOOR` and ``ceiling``; False keeps ``ceiling``.
        start: where an adaptive budget starts (at most ``ceiling``).
        clock: seconds, monotonic (tests pass their own).

    Example:
        >>> budget = ConnectionBudget(64, adaptive=True, clock=lambda: 0.0)
        >>> budget.limit
        16
        >>> budget.congested()
        >>> budget.limit
        8
    """

    def __init__(
        self,
        ceiling: int,
        *,
        adaptive: bool,
        start: int = START,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ceiling < 1:
            raise ValueError("a connection budget needs at least 1 connection")
        self.ceiling = ceiling
        self.adaptive = adaptive
        self.floor = min(FLOOR, ceiling)
        self._clock = clock
        self.limiter = anyio.CapacityLimiter(min(start, ceiling) if adaptive else ceiling)
        self._slow_start = True
        self.interval = 0.0  # seconds between request starts (0: no pacing)
        self._next_start = 0.0
        self._best: tuple[float, int, float] | None = None  # throughput, limit, latency
        self._previous = 0.0  # the last round's throughput
        self._new_round()

    @property
    def limit(self) -> int:
        """Requests allowed in flight now."""
        return int(self.limiter.total_tokens)

    async def admit(self) -> None:
        """Wait for this request's start time, when the budget paces starts."""
        if not self.interval:
            return
        now = self._clock()
        start = max(now, self._next_start)
        self._next_start = start + self.interval
        if start > now:
            await anyio.sleep(start - now)

    def _set(self, limit: int) -> None:
        self.limiter.total_tokens = max(self.floor, min(self.ceiling, limit))

    def _new_round(self) -> None:
        self._started = self._clock()
        self._done = 0
        self._bytes = 0
        self._seconds = 0.0
        self._decreased = False  # at most one decrease per round
        self._refusals = 0  # signals the round saw after its decrease

    def succeeded(self, size: int, seconds: float) -> None:
        """A request ended well: ``size`` bytes in ``seconds`` (from its start)."""
        if not self.adaptive:
            return
        self._done += 1
        self._bytes += size
        self._seconds += seconds
        if self._done >= self.limit:
            self._end_round()

    def congested(self) -> None:
        """The store refused or dropped a request: throttled, timed out or reset."""
        if not self.adaptive:
            return
        if self._decreased:
            self._refusals += 1  # the round ends as a congested one
            return
        self._decrease()

    def _decrease(self) -> None:
        self._slow_start = False
        if self.limit // 2 < self.floor:  # already at the floor: space the starts out
            self.interval = min(MAX_INTERVAL, max(MIN_INTERVAL, self.interval * 2))
        self._set(self.limit // 2)
        self._new_round()
        self._decreased = True

    def _end_round(self) -> None:
        if self._refusals:  # refused again after this round's decrease: once more
            self._decrease()
            return
        elapsed = max(self._clock() - self._started, 1e-6)
        throughput = self._bytes / elapsed
        latency = self._seconds / self._done
        limit = self.limit
        best = self._best
        if best is None or throughput > best[0]:
            self._best = best = (throughput, limit, latency)
        if self.interval:  # recovering from pacing: the rate first, then the budget
            self.interval = self.interval / 2 if self.interval / 2 >= MIN_INTERVAL else 0.0
        elif limit > best[1] and throughput < COLLAPSE * best[0]:
            self._slow_start = False
            self._set(best[1])  # collapsed: back to the last good level
        elif self._slow_start:
            self._set(limit * 2)
        elif throughput > self._previous or latency <= LATENCY_HOLDS * best[2]:
            self._set(limit + 1)
        self._previous = throughput
        self._new_round()
