"""One benchmark run of one Python peer, in a fresh process.

``python -m benchmarks.harness.runner JOB.json``: the harness passes the path of a
:class:`~.records.Job`; the last stdout line is the :class:`~.records.RunResult`. The clock
starts after imports and stops when every file is at its final path (aiomodelkit also
verified them by then; the harness checks every peer's files afterwards, off the clock).

Measured here: wall time, CPU seconds of this process (all threads, ``getrusage``), peak
RSS (``VmHWM``, imports included) and RSS when the clock started, and for asyncio peers
the event-loop lag seen by a 10 ms ticker task. What each peer does is in :mod:`.clients`.

``python -m benchmarks.harness.runner --bystander`` is the idle ticker the harness starts
beside every run (see :func:`_bystander`).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from .clients import ASYNC_CLIENTS, SYNC_CLIENTS, ours_library
from .measure import cpu_s, peak_rss_mib, rss_mib
from .records import ClientReport, Job, LagSummary, RunResult

__all__ = ["LagMonitor", "main", "run"]

_TICK = 0.010


class LagMonitor:
    """Samples how late a 10 ms ticker wakes up: the event loop's responsiveness."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    async def run(self) -> None:
        """Tick until cancelled."""
        while True:
            start = time.perf_counter()
            await anyio.sleep(_TICK)
            self.samples.append(max(0.0, time.perf_counter() - start - _TICK))

    def summary(self) -> LagSummary | None:
        """p50, p99 and max of the samples so far."""
        return LagSummary.of(self.samples)


async def _bystander() -> None:
    """An idle process's 10 ms ticker, until stdin closes; prints ``[[epoch, lag_s], ...]``.

    The harness runs one beside every run: its lag is what the machine's scheduling alone
    does to an event loop that has nothing else to do (two cores shared by the client, the
    server and the proxy), the baseline for every client's own loop lag.
    """
    samples: list[tuple[float, float]] = []

    async def tick() -> None:
        while True:
            start = time.perf_counter()
            await anyio.sleep(_TICK)
            samples.append((time.time(), max(0.0, time.perf_counter() - start - _TICK)))

    async with anyio.create_task_group() as tg:
        tg.start_soon(tick)
        print("READY", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.read)
        tg.cancel_scope.cancel()
    print(json.dumps(samples), flush=True)


@dataclass
class _Clock:
    """What the timed region measured (filled in as it goes: a failure keeps what it has)."""

    started: float | None = None
    ended: float | None = None
    wall_s: float | None = None
    lag: LagSummary | None = None
    client: ClientReport = field(default_factory=ClientReport)


async def _timed_async(job: Job, clock: _Clock) -> None:
    monitor = LagMonitor()
    work = ASYNC_CLIENTS[job.peer]
    if job.peer == "ours" and job.kind in ("warm", "graph"):
        work = ours_library
    profiler: Any = None
    if job.profile:
        # A bench-only dependency, absent from the typecheck environment: typed Any.
        profiler = importlib.import_module("pyinstrument").Profiler(async_mode="disabled")
    async with anyio.create_task_group() as tg:
        tg.start_soon(monitor.run)
        if profiler is not None:
            profiler.start()
        start = time.perf_counter()
        clock.started = time.time()
        clock.client = await work(job)
        clock.wall_s = time.perf_counter() - start
        clock.ended = time.time()
        if profiler is not None:
            profiler.stop()
        tg.cancel_scope.cancel()
    clock.lag = monitor.summary()
    if profiler is not None and job.profile:
        tree = profiler.output_text(unicode=False, color=False, show_all=False)
        flat = profiler.output_text(unicode=False, color=False, flat=True)
        flat = "\n".join(flat.splitlines()[:60])  # the top functions by self time
        await anyio.Path(job.profile).write_text(f"{tree}\n\nBy self time:\n{flat}\n")


def _timed_sync(job: Job, clock: _Clock) -> None:
    start = time.perf_counter()
    clock.started = time.time()
    clock.client = SYNC_CLIENTS[job.peer](job)
    clock.wall_s = time.perf_counter() - start
    clock.ended = time.time()


def _describe(exc: BaseException) -> str:
    """The error, with the leaves of an exception group (its own message says nothing)."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(leaf) for leaf in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


def run(job: Job) -> RunResult:
    """Run one job; returns the result (``ok`` False with ``error`` on failure)."""
    if job.start_at is not None:
        time.sleep(max(0.0, job.start_at - time.time()))
    base_rss = rss_mib()
    cpu = cpu_s()
    clock = _Clock()
    error = None
    try:
        if job.peer in SYNC_CLIENTS:
            _timed_sync(job, clock)
        else:
            anyio.run(_timed_async, job, clock)
    except BaseException as exc:  # reported to the harness, which records the failure
        error = _describe(exc)
        traceback.print_exc(file=sys.stderr)
    return RunResult(
        ok=error is None,
        peer=job.peer,
        error=error,
        started=clock.started,
        ended=clock.ended,
        wall_s=clock.wall_s,
        cpu_s=cpu_s() - cpu,
        peak_rss_mib=peak_rss_mib(),
        base_rss_mib=base_rss,
        lag=clock.lag,
        client=clock.client,
    )


def _preload(peer: str) -> None:
    """Import what the peer needs before the clock starts (imports are not measured)."""
    if peer == "ours":
        import aiomodelkit.stores
        import aiomodelkit.testing

        _ = (aiomodelkit.stores.S3Store, aiomodelkit.stores.GCSStore, aiomodelkit.testing)
        # clients._our_store imports AzureStore too: the Azure SDK must not load on the
        # clock (0.10-0.15 s of every run of ours, benchmarks/cpu_per_byte.py found)
        with contextlib.suppress(ImportError):
            _ = aiomodelkit.stores.AzureStore
    elif peer in ("boto3", "boto3-tm"):
        import boto3.s3.transfer  # type: ignore[import-untyped]  # noqa: F401
    elif peer == "obstore":
        importlib.import_module("obstore.store")
    else:
        import aiobotocore.session  # type: ignore[import-untyped]  # noqa: F401
        import aiohttp  # noqa: F401


def main() -> None:
    """Entry point: run the job file given as the argument, or ``--bystander``."""
    if sys.argv[1] == "--bystander":
        anyio.run(_bystander)
        return
    job = Job.from_json(Path(sys.argv[1]).read_text())
    _preload(job.peer)
    print(run(job).to_json(), flush=True)


if __name__ == "__main__":
    main()
