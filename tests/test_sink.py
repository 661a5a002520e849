"""WriteBatcher: group commit of small file writes, and what a cancelled writer leaves;
FileSink: every byte written is hashed, however it arrives."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiomodelkit._checksums import MD5, SHA256, XXH3_128, new_hasher
from aiomodelkit._sink import FileSink, WriteBatcher

if TYPE_CHECKING:
    import random


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


@settings(deadline=None, max_examples=50)
@given(
    st.binary(max_size=5000),
    st.lists(st.integers(1, 700), min_size=1, max_size=20),
    st.sampled_from([XXH3_128, SHA256, MD5]),
    st.randoms(use_true_random=False),
)
def test_every_byte_written_is_hashed_streamed_or_ranged(
    data: bytes, cuts: list[int], algorithm: str, rng: random.Random
) -> None:
    """Whatever the chunking or the order ranges land in, the digest covers the whole file."""
    expected = new_hasher(algorithm)
    expected.update(data)
    chunks, start = [], 0
    for cut in cuts * (len(data) // sum(cuts) + 1):
        if start >= len(data):
            break
        chunks.append(data[start : start + cut])
        start += cut
    with tempfile.TemporaryDirectory() as tmp:
        streamed = FileSink(Path(tmp, "streamed"))
        streamed.hash_with(algorithm)
        for index in range(0, len(chunks), 3):
            streamed.append(chunks[index : index + 3], close=False)
        streamed.append([], close=True)
        assert streamed.hexdigest(algorithm) == expected.hexdigest()

        ranged = FileSink(Path(tmp, "ranged"))
        ranged.hash_with(algorithm)
        ranged.open(len(data))
        offsets = [sum(map(len, chunks[:i])) for i in range(len(chunks))]
        order = list(range(len(chunks)))
        rng.shuffle(order)
        landed, hashed = set(), 0
        for index in order:  # out of order; the contiguous prefix is hashed as it grows
            ranged.write_at([chunks[index]], offsets[index])
            landed.add(index)
            frontier = next((offsets[i] for i in range(len(chunks)) if i not in landed), len(data))
            if frontier > hashed:
                ranged.hash_range(hashed, frontier)
                hashed = frontier
        ranged.close()
        assert hashed == len(data)
        assert ranged.hexdigest(algorithm) == expected.hexdigest()
        assert Path(tmp, "ranged").read_bytes() == Path(tmp, "streamed").read_bytes() == data
