"""Library startup: a small model graph started concurrently vs one model after another.

Run: ``python benchmarks/library_startup.py [--runs 5] [--load-seconds 0.2]`` (moto comes
with the test dependencies).

The graph has six models on three tiers (two levels of dependencies)::

    a (sync)   b (async)   c (sync)        each with a 4 MiB asset; b's is a directory
       \\       /    \\       /              of 200 files of 16 KiB instead
        d (async)     e (sync)             4 MiB assets
              \\       /
              f (sync)                     no asset

Every ``_load`` reads its asset and then takes ``--load-seconds`` (``time.sleep`` in a
worker thread for the sync ones, ``anyio.sleep`` for the async ones), standing in for
deserialising weights. Both sides start from an empty cache and open their own store
client each run:

* **concurrent**: ``async with ModelLibrary(...)``: every fetch starts at once, each model
  loads as soon as its asset and dependencies are ready;
* **sequential**: the same library in lazy mode, ``await lib.aget(key)`` for each key in
  dependency order: each model's fetch, then its load, then the next model (what modelkit's
  loader does).

Runs alternate A B A B after one warm-up of each, on a local store and on moto's S3 server;
prints medians, the ratio, and the bounds: the sum of the load times (the sequential floor,
fetches excluded) and the critical path (three tiers of loads: the concurrent floor).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import anyio
import anyio.to_thread

from aiomodelkit import AssetsManager, Model, ModelLibrary
from aiomodelkit.stores import LocalStore, S3Store, Store
from aiomodelkit.stores._base import MiB
from aiomodelkit.testing import MotoServer

if TYPE_CHECKING:
    from collections.abc import Callable

LOAD_SECONDS = 0.2  # replaced by --load-seconds (through model_settings)


def _read(path: Path) -> int:
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    return sum(len(file.read_bytes()) for file in files)


class SyncModel(Model[int, int]):
    """Reads its asset and sleeps in a worker thread."""

    CONFIGURATIONS: ClassVar = {
        "a": {"asset": "bench/a:0"},
        "c": {"asset": "bench/c:0"},
        "e": {"asset": "bench/e:0", "model_dependencies": ["b", "c"]},
        "f": {"model_dependencies": ["d", "e"]},
    }

    def _load(self) -> None:
        if self.asset_path is not None:
            _read(self.asset_path)
        time.sleep(self.model_settings["load_seconds"])

    def _predict(self, item: int) -> int:
        return item


class AsyncModel(Model[int, int]):
    """Reads its asset in a worker thread and sleeps on the event loop."""

    CONFIGURATIONS: ClassVar = {
        "b": {"asset": "bench/b:0"},
        "d": {"asset": "bench/d:0", "model_dependencies": ["a", "b"]},
    }

    async def _load(self) -> None:
        assert self.asset_path is not None
        await anyio.to_thread.run_sync(_read, self.asset_path)
        await anyio.sleep(self.model_settings["load_seconds"])

    def _predict(self, item: int) -> int:
        return item


MODELS = [SyncModel, AsyncModel]
KEYS = ("a", "b", "c", "d", "e", "f")


def make_sources(root: Path) -> dict[str, Path]:
    root.mkdir(parents=True)
    sources = {}
    for key in ("a", "c", "d", "e"):
        sources[f"bench/{key}"] = root / f"{key}.bin"
        sources[f"bench/{key}"].write_bytes(os.urandom(4 * MiB))
    (root / "b").mkdir()
    for index in range(200):
        (root / "b" / f"part-{index:03d}.bin").write_bytes(os.urandom(16 * 1024))
    sources["bench/b"] = root / "b"
    return sources


async def concurrent(library: ModelLibrary) -> None:
    async with library:
        pass


async def sequential(library: ModelLibrary) -> None:
    async with library:
        for key in library.graph.order:  # dependencies first: each aget loads one model
            await library.aget(key)


async def measure(
    label: str, make_store: Callable[[], Store], work: Path, runs: int, load_seconds: float
) -> tuple[float, float]:
    async with AssetsManager(storage=make_store(), assets_dir=work / "publisher-cache") as am:
        for name, source in (await anyio.to_thread.run_sync(make_sources, work / "src")).items():
            await am.new(source, name)
    settings = {key: {"load_seconds": load_seconds} for key in KEYS}
    times: dict[str, list[float]] = {"concurrent": [], "sequential": []}

    async def one(kind: str, run: int) -> float:
        cache = work / f"{kind}-{run}"
        start = time.perf_counter()
        async with AssetsManager(storage=make_store(), assets_dir=cache) as am:
            library = ModelLibrary(
                MODELS,
                required_models=settings,
                assets_manager=am,
                lazy_loading=kind == "sequential",
            )
            await (concurrent(library) if kind == "concurrent" else sequential(library))
            elapsed = time.perf_counter() - start
            assert all(s.asset_source in (None, "store") for s in library.status().values())
        await anyio.to_thread.run_sync(shutil.rmtree, cache)
        return elapsed

    await one("concurrent", -1)  # warm-up: imports, connections, page cache
    await one("sequential", -1)
    for run in range(runs):
        for kind in ("concurrent", "sequential"):
            times[kind].append(await one(kind, run))
    medians = statistics.median(times["concurrent"]), statistics.median(times["sequential"])
    print(
        f"{label:<7} {medians[0]:>8.3f} s {medians[1]:>10.3f} s {medians[1] / medians[0]:>6.2f}x"
        f"   runs: {' '.join(f'{t:.2f}' for t in times['concurrent'])} | "
        f"{' '.join(f'{t:.2f}' for t in times['sequential'])}",
        flush=True,
    )
    return medians


def run(label: str, make_store: Callable[[], Store], args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="aiomodelkit-bench-") as tmp:
        anyio.run(measure, label, make_store, Path(tmp), args.runs, args.load_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--load-seconds", type=float, default=LOAD_SECONDS)
    args = parser.parse_args()
    loads = args.load_seconds
    print(
        f"6 models, 3 tiers, each _load {loads:.2f} s: sequential floor {6 * loads:.2f} s of "
        f"loads alone, concurrent floor {3 * loads:.2f} s (critical path); medians of "
        f"{args.runs} alternating runs, empty cache each run\n"
        f"{'store':<7} {'concurrent':>10} {'sequential':>12} {'ratio':>7}"
    )
    with tempfile.TemporaryDirectory(prefix="aiomodelkit-bench-store-") as store_dir:
        run("local", lambda: LocalStore(Path(store_dir)), args)
    with MotoServer() as moto:
        moto.create_bucket("bench")
        run(
            "moto",
            lambda: S3Store(
                "bench",
                "startup",
                endpoint_url=moto.endpoint_url,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
                region_name="us-east-1",
            ),
            args,
        )


if __name__ == "__main__":
    main()
