"""RequestPacer: at most ``per_tick`` admissions per event-loop iteration, FIFO, cancellable."""

from __future__ import annotations

import asyncio

import pytest

from aiomodelkit._pacing import RequestPacer

# The pacer is defined in event-loop iterations: these tests drive raw asyncio tasks
# (gather, ensure_future, wait_for) so that the iterations they count are exactly the pacer's.


async def _admissions_per_iteration(pacer: RequestPacer, callers: int) -> list[int]:
    """Admit ``callers`` at once; count admissions between consecutive loop iterations."""
    counts: list[int] = []
    current = 0
    done = False
    loop = asyncio.get_running_loop()

    def iteration() -> None:  # runs once per loop iteration while the callers wait
        nonlocal current
        counts.append(current)
        current = 0
        if not done:
            loop.call_soon(iteration)

    async def caller() -> None:
        nonlocal current
        await pacer.admit()
        current += 1

    loop.call_soon(iteration)
    await asyncio.gather(*(caller() for _ in range(callers)))  # noqa: TID251
    done = True
    await asyncio.sleep(0)
    counts.append(current)
    return [c for c in counts if c]


async def test_admits_at_most_per_tick_per_iteration_and_everyone_eventually() -> None:
    pacer = RequestPacer(per_tick=3)
    counts = await _admissions_per_iteration(pacer, 20)
    assert sum(counts) == 20 == pacer.admitted
    assert max(counts) <= 3
    assert len(counts) >= 7  # 20 callers, 3 per iteration


async def test_a_single_caller_is_admitted_without_waiting() -> None:
    pacer = RequestPacer(per_tick=1)
    task = asyncio.ensure_future(pacer.admit())
    await asyncio.sleep(0)  # one step: the task ran and finished without a loop round trip
    assert task.done()


async def test_waiters_are_admitted_first_come_first_served() -> None:
    pacer = RequestPacer(per_tick=1)
    order: list[int] = []

    async def caller(number: int) -> None:
        await pacer.admit()
        order.append(number)

    await asyncio.gather(*(caller(n) for n in range(6)))  # noqa: TID251
    assert order == list(range(6))


async def test_a_cancelled_waiter_leaves_the_queue_and_does_not_block_others() -> None:
    pacer = RequestPacer(per_tick=1)
    callers = [asyncio.ensure_future(pacer.admit()) for _ in range(5)]
    await asyncio.sleep(0)  # the first is admitted; the other four wait in the queue
    assert [c.done() for c in callers] == [True, False, False, False, False]
    callers[2].cancel()
    results = await asyncio.wait_for(asyncio.gather(*callers, return_exceptions=True), timeout=5)  # noqa: TID251
    assert isinstance(results[2], asyncio.CancelledError)
    assert [r for i, r in enumerate(results) if i != 2] == [None] * 4
    assert pacer.admitted == 4


def test_per_tick_must_be_positive() -> None:
    with pytest.raises(ValueError, match="per_tick"):
        RequestPacer(per_tick=0)
