"""Pacing request starts, so that a burst of downloads never starves the event loop.

Starting a request costs CPU on the event loop (signing and sending an S3 GET: about
0.2 ms; a request through botocore's whole pipeline: about half a millisecond). When 64
downloads start at once, asyncio runs all 64 starts in one loop iteration, and every other
task of the application (a web server's requests, a health check) waits behind them: 30-60
ms of event-loop lag. Worse, the requests then travel in lockstep: their answers arrive
together, and the next 64 starts pile up again.

:class:`RequestPacer` admits at most ``per_tick`` request starts per loop iteration; the
others wait, first come first served, for the following iterations. It does not lower the
number of requests in flight (the connection limiter does that), only spreads their
starts, so a CPU-bound fetch keeps its throughput and the loop stays responsive.

:func:`work_through` paces the other kind of start: the tasks of a pool of workers.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, TypeVar

import anyio
import anyio.lowlevel

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

__all__ = ["RequestPacer", "work_through"]

T = TypeVar("T")

#: Request starts admitted per event-loop iteration (about 2 ms of loop time for S3 GETs).
DEFAULT_PER_TICK = 8
#: Workers started per event-loop iteration.
SPAWNS_PER_TICK = 8


async def work_through(
    items: Iterable[T], work: Callable[[T], Awaitable[None]], *, workers: int
) -> None:
    """Await ``work(item)`` for every item, on at most ``workers`` tasks of one task group.

    A pool of workers, not a task per item: spawning 2,000 tasks at once holds the event
    loop for tens of milliseconds. The workers start :data:`SPAWNS_PER_TICK` per loop
    iteration (~0.25 ms per spawn: 128 at once would hold the loop ~30 ms). Errors come as
    the task group's ``ExceptionGroup``.

    Example:
        >>> done = []
        >>> async def work(item: int) -> None:
        ...     done.append(item)
        >>> anyio.run(lambda: work_through(range(20), work, workers=3))
        >>> sorted(done) == list(range(20))
        True
    """
    queue = iter(items)

    async def worker() -> None:
        for item in queue:  # shared: each item is taken by one worker
            await work(item)

    async with anyio.create_task_group() as tg:
        for number in range(workers):
            tg.start_soon(worker)
            if number % SPAWNS_PER_TICK == SPAWNS_PER_TICK - 1:
                await anyio.lowlevel.checkpoint()


class RequestPacer:
    """Admits at most ``per_tick`` callers of :meth:`admit` per event-loop iteration.

    Outside an asyncio event loop (e.g. under trio) it admits everyone at once.

    Example:
        >>> import asyncio
        >>> async def main() -> int:
        ...     pacer = RequestPacer(per_tick=2)
        ...     await asyncio.gather(*(pacer.admit() for _ in range(5)))
        ...     return pacer.admitted
        >>> asyncio.run(main())
        5
    """

    def __init__(self, per_tick: int = DEFAULT_PER_TICK) -> None:
        if per_tick < 1:
            raise ValueError("per_tick must be at least 1")
        self._per_tick = per_tick
        self._used = 0  # admissions in the current iteration
        self._armed = False  # a reset is scheduled for the next iteration
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.admitted = 0

    async def admit(self) -> None:
        """Return at once if this iteration has room, else wait for an iteration that has."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - not asyncio (e.g. trio): no pacing
            self.admitted += 1
            return
        if self._used < self._per_tick and not self._waiters:
            self._used += 1
            self.admitted += 1
            self._arm(loop)
            return
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        self._arm(loop)
        try:
            await waiter
        except asyncio.CancelledError:
            if not waiter.done() or waiter.cancelled():
                self._discard(waiter)
            raise
        self.admitted += 1

    def _discard(self, waiter: asyncio.Future[None]) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._armed:
            self._armed = True
            loop.call_soon(self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        """A new iteration: a fresh budget, spent first on those waiting longest."""
        self._armed = False
        self._used = 0
        while self._waiters and self._used < self._per_tick:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._used += 1
        if self._waiters or self._used:
            self._arm(loop)
