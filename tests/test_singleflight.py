"""Batcher: small blocking calls made in one pass of the event loop share one thread hop."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import pytest

from aiomodelkit import _singleflight
from aiomodelkit._singleflight import Batcher

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


@pytest.fixture
def rounds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of calls in each worker-thread hop the batchers make."""
    sizes: list[int] = []
    run_all = _singleflight._run_all

    def spy(calls: Sequence[Callable[[], Any]]) -> list[tuple[bool, Any]]:
        sizes.append(len(calls))
        return run_all(calls)

    monkeypatch.setattr(_singleflight, "_run_all", spy)
    return sizes


async def test_calls_made_together_share_one_hop(rounds: list[int]) -> None:
    batcher = Batcher()
    results: dict[int, tuple[int, int]] = {}

    async def call(index: int) -> None:
        results[index] = await batcher.run(lambda: (index * 2, threading.get_ident()))

    async with anyio.create_task_group() as tg:
        for index in range(10):
            tg.start_soon(call, index)
    assert rounds == [10]
    assert {index: value for index, (value, _) in results.items()} == {i: i * 2 for i in range(10)}
    assert len({thread for _, thread in results.values()}) == 1
    assert threading.get_ident() not in {thread for _, thread in results.values()}
    # A later call starts a round of its own.
    assert await batcher.run(lambda: "later") == "later"
    assert rounds == [10, 1]


async def test_each_caller_gets_its_own_error(rounds: list[int]) -> None:
    batcher = Batcher()
    outcomes: dict[str, object] = {}

    def fail() -> str:
        raise FileNotFoundError("gone")

    async def call(name: str, fn: Callable[[], str]) -> None:
        try:
            outcomes[name] = await batcher.run(fn)
        except OSError as exc:
            outcomes[name] = exc

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, "ok-first", lambda: "a")
        tg.start_soon(call, "failing", fail)
        tg.start_soon(call, "ok-last", lambda: "b")
    assert rounds == [3]
    assert outcomes["ok-first"] == "a"
    assert outcomes["ok-last"] == "b"
    assert isinstance(outcomes["failing"], FileNotFoundError)


async def test_rounds_are_bounded(rounds: list[int]) -> None:
    batcher = Batcher()
    count = Batcher.MAX_CALLS * 2 + 3
    async with anyio.create_task_group() as tg:
        for index in range(count):
            tg.start_soon(batcher.run, lambda index=index: index)
    assert sorted(rounds) == [3, Batcher.MAX_CALLS, Batcher.MAX_CALLS]


async def test_a_cancelled_leader_hands_over(rounds: list[int]) -> None:
    batcher = Batcher()
    results: list[str] = []
    leader_scope = anyio.CancelScope()

    async def leader() -> None:
        with leader_scope:
            await batcher.run(lambda: "leader")

    async def follower(value: str) -> None:
        results.append(await batcher.run(lambda: value))

    async def cancel_leader() -> None:
        leader_scope.cancel()  # before the leader's round ran: its followers had joined it

    async with anyio.create_task_group() as tg:
        tg.start_soon(leader)
        tg.start_soon(follower, "x")
        tg.start_soon(follower, "y")
        tg.start_soon(cancel_leader)
    assert leader_scope.cancelled_caught
    assert sorted(results) == ["x", "y"]
    assert rounds == [2]  # the followers tried again, in a round of their own


async def test_a_call_that_ran_returns_to_its_cancelled_caller(rounds: list[int]) -> None:
    """Like ``anyio.to_thread.run_sync``: the caller learns what its call did (say, that it
    took a lock) before it sees its cancellation."""
    batcher = Batcher()
    seen: list[str] = []
    follower_scope = anyio.CancelScope()

    async def leader() -> None:
        await batcher.run(lambda: "leader")

    async def follower() -> None:
        with follower_scope:
            seen.append(await batcher.run(lambda: "took the lock"))
            await anyio.lowlevel.checkpoint()
            seen.append("not reached")

    async def cancel_follower() -> None:
        follower_scope.cancel()  # while its call waits in the leader's round

    async with anyio.create_task_group() as tg:
        tg.start_soon(leader)
        tg.start_soon(follower)
        tg.start_soon(cancel_follower)
    assert follower_scope.cancelled_caught
    assert seen == ["took the lock"]
    assert rounds == [2]
