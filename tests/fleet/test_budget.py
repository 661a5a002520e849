"""ConnectionBudget's control law, on a clock the test moves (pure logic, no network)."""

from __future__ import annotations

import time

import pytest

from aiomodelkit._adaptive import (
    COLLAPSE,
    FLOOR,
    MAX_INTERVAL,
    MIN_INTERVAL,
    START,
    ConnectionBudget,
)
from aiomodelkit._retry import CONGESTED_BACKOFF, retry_delay
from aiomodelkit._values import RetryPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _round(budget: ConnectionBudget, clock: Clock, *, seconds: float, size: int = 1000) -> None:
    """One round: as many completions as the budget, ``size`` bytes each, in ``seconds``."""
    clock.now += seconds
    for _ in range(budget.limit):
        budget.succeeded(size, seconds)


def test_a_fixed_budget_never_moves() -> None:
    budget = ConnectionBudget(64, adaptive=False)
    budget.congested()
    for _ in range(100):
        budget.succeeded(1000, 0.01)
    assert budget.limit == 64


def test_slow_start_doubles_each_round_up_to_the_ceiling() -> None:
    clock = Clock()
    budget = ConnectionBudget(56, adaptive=True, clock=clock)
    seen = [budget.limit]
    for _ in range(4):
        _round(budget, clock, seconds=0.02)
        seen.append(budget.limit)
    assert seen == [START, 2 * START, 56, 56, 56]


def test_congestion_halves_once_per_round_never_below_the_floor() -> None:
    clock = Clock()
    budget = ConnectionBudget(64, adaptive=True, clock=clock)
    _round(budget, clock, seconds=0.02)  # 32
    for _ in range(20):  # one burst of refusals is one signal
        budget.congested()
    assert budget.limit == 16
    for _ in range(10):
        _round(budget, clock, seconds=0.02)  # a round ends (+1), so the next signal counts
        budget.congested()
    assert budget.limit == FLOOR


def test_after_congestion_the_budget_grows_by_one_while_throughput_grows() -> None:
    clock = Clock()
    budget = ConnectionBudget(64, adaptive=True, clock=clock)
    budget.congested()  # 8, slow start over
    limits = []
    for step in range(5):
        # Each round moves more bytes in the same time: growing throughput.
        _round(budget, clock, seconds=0.1, size=1000 * (step + 1))
        limits.append(budget.limit)
    assert limits == [9, 10, 11, 12, 13]


def test_the_budget_holds_when_throughput_is_flat_and_latency_grows() -> None:
    clock = Clock()
    budget = ConnectionBudget(64, adaptive=True, clock=clock)
    budget.congested()  # 8
    _round(budget, clock, seconds=0.1)  # the best round: 8 x 1000 B in 0.1 s -> 9
    assert budget.limit == 9
    # The link is full: 9 requests move 8 requests' bytes, each taking twice as long.
    clock.now += 0.1
    for _ in range(9):
        budget.succeeded(8000 // 9, 0.2)
    assert budget.limit == 9


def test_a_collapse_drops_back_to_the_last_good_level() -> None:
    clock = Clock()
    budget = ConnectionBudget(64, adaptive=True, clock=clock)
    budget.congested()  # 8
    for _ in range(4):  # growing: 9, 10, 11, 12 ...
        _round(budget, clock, seconds=0.1, size=10_000)
    best_level = budget.limit - 1  # the round that ended at 11 was the best (most bytes/s)
    # Throughput falls far below the best with more in flight: back to the best's level.
    _round(budget, clock, seconds=1.0, size=int(10_000 * COLLAPSE / 10))
    assert budget.limit == best_level


@pytest.mark.parametrize("ceiling", [1, 3])
def test_small_ceilings_are_respected(ceiling: int) -> None:
    clock = Clock()
    budget = ConnectionBudget(ceiling, adaptive=True, clock=clock)
    assert budget.limit == ceiling
    budget.congested()
    assert 1 <= budget.limit <= ceiling


def test_a_budget_needs_a_connection() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ConnectionBudget(0, adaptive=True)


def test_refusals_at_the_floor_space_the_starts_then_the_rate_recovers_first() -> None:
    clock = Clock()
    budget = ConnectionBudget(8, adaptive=True, clock=clock)
    budget.congested()  # 4
    _round(budget, clock, seconds=0.1)  # 5
    budget.congested()  # 2: the floor
    assert budget.interval == 0
    intervals = []
    for _ in range(4):  # refused still: each round with refusals doubles the interval
        budget.congested()
        _round(budget, clock, seconds=0.1)
        intervals.append(budget.interval)
    assert intervals == [MIN_INTERVAL, 2 * MIN_INTERVAL, 4 * MIN_INTERVAL, 8 * MIN_INTERVAL]
    assert budget.limit == FLOOR
    recovering = []
    for _ in range(5):  # good rounds: the interval halves to none before the budget grows
        _round(budget, clock, seconds=0.1)
        recovering.append((budget.interval, budget.limit))
    assert recovering == [
        (4 * MIN_INTERVAL, 2),
        (2 * MIN_INTERVAL, 2),
        (MIN_INTERVAL, 2),
        (0.0, 2),
        (0.0, 3),
    ]


def test_the_interval_is_capped() -> None:
    clock = Clock()
    budget = ConnectionBudget(2, adaptive=True, clock=clock)
    budget.congested()
    for _ in range(20):  # every round refused
        budget.congested()
        _round(budget, clock, seconds=0.01)
    assert budget.interval == MAX_INTERVAL


async def test_paced_starts_are_spaced_by_the_interval() -> None:
    budget = ConnectionBudget(2, adaptive=True)
    budget.interval = 0.05
    started = time.monotonic()
    for _ in range(5):
        await budget.admit()
    assert time.monotonic() - started >= 4 * 0.05


async def test_an_unpaced_budget_admits_at_once() -> None:
    budget = ConnectionBudget(2, adaptive=True)
    started = time.monotonic()
    for _ in range(100):
        await budget.admit()
    assert time.monotonic() - started < 0.05


def test_a_throttled_request_backs_off_from_a_longer_base() -> None:
    policy = RetryPolicy(backoff=0.1, backoff_max=10)
    plain = [retry_delay(policy, 1) for _ in range(400)]
    throttled = [retry_delay(policy, 1, congested=True) for _ in range(400)]
    assert max(plain) <= 0.1
    assert max(throttled) <= 0.1 * CONGESTED_BACKOFF
    assert max(throttled) > 0.1  # full jitter over the longer range: some go past 0.1
    capped = RetryPolicy(backoff=0.1, backoff_max=0.2)
    assert all(retry_delay(capped, 3, congested=True) <= 0.2 for _ in range(100))
