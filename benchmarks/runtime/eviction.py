"""Part 1, eviction: one Zipf stream played on bounded, unbounded and eager libraries."""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from aiomodelkit import AssetsManager, Model, ModelLibrary, Settings

from .common import MiB, percentile_ms, rmtree, show_ms, write_asset

if TYPE_CHECKING:
    import argparse
    from pathlib import Path

    from .common import Servers


class _Tracker:
    """Model instances open now (``_load`` begun, ``close()`` not finished), the most at once.
    ``_load`` runs in worker threads, hence the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.open = self.most = 0

    def opened(self) -> None:
        with self._lock:
            self.open += 1
            self.most = max(self.most, self.open)

    def closed(self) -> None:
        with self._lock:
            self.open -= 1


TRACKER = _Tracker()


class Weights(Model[int, int]):
    """Configured once per key (``configuration=``); reads its asset, then sleeps."""

    def _load(self) -> None:
        TRACKER.opened()
        assert self.asset_path is not None
        self.size = len(self.asset_path.read_bytes())
        time.sleep(float(self.model_settings["load_seconds"]))

    def memory_bytes(self) -> int:
        return self.size

    async def _predict(self, item: int) -> int:
        if seconds := float(self.model_settings["predict_seconds"]):
            await anyio.sleep(seconds)
        return item

    async def close(self) -> None:
        TRACKER.closed()


@dataclass(frozen=True)
class Scenario:
    name: str
    budget: int | None  # max_loaded_models
    lazy: bool
    warm: bool  # on the cache the cold pass of the same kind filled


@dataclass(frozen=True)
class StreamResult:
    """One scenario's run (times in seconds, latencies in ms)."""

    open_s: float
    wall_s: float
    hit_rate: float
    hit_p50: float | None
    hit_p99: float | None
    hit_max: float | None
    miss_p50: float | None
    miss_p99: float | None
    miss_max: float | None
    first_loads: int
    first_p50: float | None
    first_p99: float | None
    reloads: int
    reload_p50: float | None
    reload_p99: float | None
    loads: int
    stream_loads: int  # during the stream: each started by one miss
    joined: int  # misses that waited for a load another request started
    evictions: int
    max_loaded: int
    max_open: int
    store_requests: int
    failed: int
    anomalies: int


async def play(
    servers: Servers, scenario: Scenario, cache: Path, stream: list[str], args: argparse.Namespace
) -> StreamResult:
    """One library over ``stream``; the proxy's counters cover exactly this scenario."""
    load, predict = args.load_seconds, args.predict_ms / 1000
    configuration = {
        key: {
            "model_type": Weights,
            "asset": f"bench/{key}:0.0",
            "model_settings": {"load_seconds": load, "predict_seconds": predict},
        }
        for key in (f"m{i:02d}" for i in range(args.models))
    }
    settings = Settings(assets_dir=cache, max_loaded_models=scenario.budget)
    latencies: dict[str, list[float]] = {"hit": [], "first": [], "reload": []}
    failures: list[str] = []
    anomalies = max_loaded = 0
    TRACKER.open = TRACKER.most = 0
    servers.proxy.reset()
    start = time.perf_counter()
    async with (
        AssetsManager(storage=servers.store(), settings=settings) as am,
        ModelLibrary(
            [Weights],
            configuration=configuration,
            settings=settings,
            assets_manager=am,
            lazy_loading=scenario.lazy,
        ) as lib,
    ):
        opened = time.perf_counter()
        at_open = sum(s.load_count for s in lib.status().values())
        requests = iter(enumerate(stream))

        async def client() -> None:
            nonlocal anomalies
            for index, key in requests:  # one shared iterator: requests in stream order
                before = lib.status()[key]
                began = time.perf_counter()
                try:
                    await (await lib.aget(key)).predict(index)
                except Exception as exc:
                    failures.append(f"{key}: {type(exc).__name__}: {exc}")
                    continue
                elapsed = time.perf_counter() - began
                if before.loaded:
                    latencies["hit"].append(elapsed)
                    anomalies += lib.status()[key].load_count != before.load_count
                else:
                    latencies["first" if before.load_count == 0 else "reload"].append(elapsed)

        async def sample() -> None:
            nonlocal max_loaded
            while True:
                max_loaded = max(max_loaded, sum(s.loaded for s in lib.status().values()))
                await anyio.sleep(0.002)

        async with anyio.create_task_group() as tg:
            tg.start_soon(sample)
            async with anyio.create_task_group() as clients:
                for _ in range(args.concurrency):
                    clients.start_soon(client)
            tg.cancel_scope.cancel()
        ended = time.perf_counter()
        statuses = lib.status().values()
    for failure in failures[:5]:
        print(f"  FAILED {failure}", flush=True)
    misses = latencies["first"] + latencies["reload"]
    loads = sum(s.load_count for s in statuses)
    return StreamResult(
        open_s=opened - start,
        wall_s=ended - opened,
        hit_rate=len(latencies["hit"]) / len(stream),
        hit_p50=percentile_ms(latencies["hit"], 0.5),
        hit_p99=percentile_ms(latencies["hit"], 0.99),
        hit_max=percentile_ms(latencies["hit"], 1.0),
        miss_p50=percentile_ms(misses, 0.5),
        miss_p99=percentile_ms(misses, 0.99),
        miss_max=percentile_ms(misses, 1.0),
        first_loads=len(latencies["first"]),
        first_p50=percentile_ms(latencies["first"], 0.5),
        first_p99=percentile_ms(latencies["first"], 0.99),
        reloads=len(latencies["reload"]),
        reload_p50=percentile_ms(latencies["reload"], 0.5),
        reload_p99=percentile_ms(latencies["reload"], 0.99),
        loads=loads,
        stream_loads=loads - at_open,
        joined=len(misses) - (loads - at_open),
        evictions=sum(s.eviction_count for s in statuses),
        max_loaded=max_loaded,
        max_open=TRACKER.most,
        store_requests=servers.proxy.counts().requests,
        failed=len(failures),
        anomalies=anomalies,
    )


def _median(results: list[StreamResult]) -> dict[str, float | None]:
    medians: dict[str, float | None] = {}
    for f in fields(StreamResult):
        values = [getattr(r, f.name) for r in results]
        medians[f.name] = None if None in values else statistics.median(values)
    return medians


async def eviction(servers: Servers, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Publish the assets, play every scenario ``--runs`` times; the medians and every run."""
    keys = [f"m{i:02d}" for i in range(args.models)]
    weights = [1 / rank**args.zipf for rank in range(1, args.models + 1)]
    stream = random.Random(args.seed).choices(keys, weights=weights, k=args.requests)
    top = sum(weights[: args.max_loaded]) / sum(weights)
    lru = _lru_hit_rate(stream, args.max_loaded)
    source = work / "sources"
    async with AssetsManager(
        storage=servers.store(direct=True), settings=Settings(assets_dir=work / "publish")
    ) as am:
        async with anyio.create_task_group() as tg:
            for key in keys:
                path = await anyio.to_thread.run_sync(
                    write_asset, source / key, args.asset_mib * MiB, key
                )
                tg.start_soon(am.new, path, f"bench/{key}")
    # Warm-up, off the record: imports, botocore's models, the server's page cache.
    warm = Settings(assets_dir=work / "warm-up")
    async with AssetsManager(storage=servers.store(), settings=warm) as am:
        await am.fetch("bench/m00:0.0")
    budget = args.max_loaded
    scenarios = [
        Scenario(f"bounded ({budget}), cold cache", budget, True, False),
        Scenario(f"bounded ({budget}), warm cache", budget, True, True),
        Scenario("unbounded lazy, cold cache", None, True, False),
        Scenario("unbounded lazy, warm cache", None, True, True),
        Scenario("eager (cold start), cold cache", None, False, False),
        Scenario("eager (cold start), warm cache", None, False, True),
    ]
    runs: dict[str, list[StreamResult]] = {s.name: [] for s in scenarios}
    print(
        f"{args.models} models of {args.asset_mib} MiB, _load {args.load_seconds * 1000:.0f} ms, "
        f"{args.requests} requests (Zipf s={args.zipf}, seed {args.seed}; the {budget} most "
        f"popular take {top:.1%}; a sequential LRU of {budget} would hit {lru:.1%}), "
        f"{args.concurrency} clients, 20 ms RTT",
        flush=True,
    )
    for run in range(args.runs):
        cache = work / "cache"
        for scenario in scenarios:
            if not scenario.warm:
                await anyio.to_thread.run_sync(rmtree, cache)
            result = await play(servers, scenario, cache, stream, args)
            runs[scenario.name].append(result)
            print(f"run {run + 1} {scenario.name:<32} {_line(asdict(result))}", flush=True)
    await anyio.to_thread.run_sync(rmtree, work / "cache")
    return {
        "requests": args.requests,
        "top_share": top,
        "lru_hit_rate": lru,
        "medians": {name: _median(results) for name, results in runs.items()},
        "runs": {name: [asdict(r) for r in results] for name, results in runs.items()},
    }


def _lru_hit_rate(stream: list[str], size: int) -> float:
    """The hit rate of an ideal LRU cache of ``size`` over ``stream``, one request at a time:
    what the bounded library would reach with one client and instant loads."""
    cache: OrderedDict[str, None] = OrderedDict()
    hits = 0
    for key in stream:
        if key in cache:
            hits += 1
            cache.move_to_end(key)
        else:
            cache[key] = None
            if len(cache) > size:
                cache.popitem(last=False)
    return hits / len(stream)


def _line(m: dict[str, Any]) -> str:
    return (
        f"open {m['open_s']:.2f} s, wall {m['wall_s']:.2f} s, hits {m['hit_rate']:.1%} "
        f"({show_ms(m['hit_p50'])}/{show_ms(m['hit_p99'])} ms), misses {show_ms(m['miss_p50'])}/"
        f"{show_ms(m['miss_p99'])} ms, loads {m['loads']:.0f} (+{m['joined']:.0f} joined), "
        f"evictions {m['evictions']:.0f}, "
        f"max loaded {m['max_loaded']:.0f}/{m['max_open']:.0f}, requests "
        f"{m['store_requests']:.0f}, failed {m['failed']:.0f}, anomalies {m['anomalies']:.0f}"
    )
