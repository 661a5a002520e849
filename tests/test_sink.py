"""WriteBatcher: group commit of small file writes, and what a cancelled writer leaves."""

from __future__ import annotations

import threading

import anyio
import anyio.to_thread
import pytest

from aiomodelkit._sink import WriteBatcher


async def test_every_write_runs_and_errors_reach_their_own_writer() -> None:
    batcher, limiter = WriteBatcher(), anyio.CapacityLimiter(1)
    threads: list[int] = []

    def job() -> None:
        threads.append(threading.get_ident())

    def failing() -> None:
        raise OSError("disk full")

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(batcher.run, job, limiter)
    assert len(threads) == 10
    with pytest.raises(OSError, match="disk full"):
        await batcher.run(failing, limiter)
    await batcher.run(job, limiter)  # the batcher goes on after a failed job
    assert len(threads) == 11


async def test_a_cancelled_writer_returns_only_once_its_job_cannot_write() -> None:
    batcher, limiter = WriteBatcher(), anyio.CapacityLimiter(1)
    first_running, release_first = threading.Event(), threading.Event()
    second_running, release_second = threading.Event(), threading.Event()
    done: list[str] = []

    def first() -> None:
        first_running.set()
        release_first.wait(5)
        done.append("first")

    def second() -> None:
        second_running.set()
        release_second.wait(5)
        done.append("second")

    def third() -> None:
        done.append("third")

    async def cancelled_writer(job: object, scope_box: list[anyio.CancelScope]) -> None:
        with anyio.CancelScope() as scope:
            scope_box.append(scope)
            await batcher.run(job, limiter)  # type: ignore[arg-type]

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(batcher.run, first, limiter)  # this task flushes every batch
            await anyio.to_thread.run_sync(first_running.wait)
            second_scope: list[anyio.CancelScope] = []
            third_scope: list[anyio.CancelScope] = []
            tg.start_soon(cancelled_writer, second, second_scope)
            tg.start_soon(cancelled_writer, third, third_scope)
            await anyio.wait_all_tasks_blocked()
            # Still queued: "third" is dropped, and its writer returns at once.
            third_scope[0].cancel()
            await anyio.wait_all_tasks_blocked()
            release_first.set()
            await anyio.to_thread.run_sync(second_running.wait)
            # In a worker thread: "second"'s writer waits for it, cancelled or not.
            second_scope[0].cancel()
            await anyio.sleep(0.05)
            assert done == ["first"]
            assert not second_scope[0].cancelled_caught
            release_second.set()
    assert second_scope[0].cancelled_caught
    assert third_scope[0].cancelled_caught
    assert done == ["first", "second"]  # "third" never ran
