"""Part 2, swap: versions published while a library serves, timed until they answer."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from aiomodelkit import AssetsManager, Model, ModelLibrary, Settings

from .common import LABEL, SWAP_ASSET, SWAP_KEY, MiB, write_asset

if TYPE_CHECKING:
    import argparse
    from pathlib import Path

    from .common import Servers


class Versioned(Model[int, str]):
    """Predicts the version label written at the head of its asset."""

    def _load(self) -> None:
        assert self.asset_path is not None
        self.version = self.asset_path.read_bytes()[:LABEL].decode().strip()
        time.sleep(float(self.model_settings["load_seconds"]))

    def _predict(self, item: int) -> str:
        return self.version


@dataclass(frozen=True)
class SwapRun:
    """One published version, from ``update`` returning to its first answer (seconds)."""

    version: str
    publish_s: float
    publish_to_serve_s: float | None  # None: not served within the timeout
    fetch_s: float
    target_s: float
    swap_event_s: float | None  # the engine's own ModelSwapped.seconds (fetch start to swap)
    status_version: str | None  # lib.status()[key].asset_version once served


async def swap(servers: Servers, work: Path, args: argparse.Namespace) -> dict[str, Any] | None:
    """Publish 1.0, serve it, then publish 1.1, 1.2... and time each swap."""
    if "watch_interval" not in Settings.model_fields:
        print("part 2 (swap): not available yet: Settings has no watch_interval", flush=True)
        return None
    size, load, interval = args.swap_mib * MiB, args.load_seconds, args.watch_interval
    publisher = AssetsManager(
        storage=servers.store(direct=True), settings=Settings(assets_dir=work / "swap-publish")
    )
    fetcher = AssetsManager(storage=servers.store(), settings=Settings(assets_dir=work / "fetch"))
    # From a dict: this module still imports and type-checks on an engine without the field.
    watching: dict[str, Any] = {"watch_interval": interval}
    settings = Settings(assets_dir=work / "swap-cache", **watching)
    manager = AssetsManager(storage=servers.store(), settings=settings)
    swapped: list[tuple[float, Any]] = []  # (perf_counter, event) of every ModelSwapped
    served: dict[str, int] = {}
    failures: list[str] = []
    results: list[SwapRun] = []

    def on_event(event: Any) -> None:
        if type(event).__name__ == "ModelSwapped":
            swapped.append((time.perf_counter(), event))

    def source(version: str) -> Path:
        return write_asset(work / "swap-src" / version, size, version, label=version)

    configuration = {
        SWAP_KEY: {
            "model_type": Versioned,
            "asset": f"{SWAP_ASSET}:1",
            "model_settings": {"load_seconds": load},
        }
    }
    async with publisher, fetcher, manager:
        await publisher.new(await anyio.to_thread.run_sync(source, "0.0"), SWAP_ASSET)
        first = await publisher.update(
            await anyio.to_thread.run_sync(source, "1.0"), SWAP_ASSET, bump_major=True
        )
        assert first.version == "1.0", first.version
        await fetcher.versions(SWAP_ASSET)  # opens the fetcher's connection
        library = ModelLibrary(
            [Versioned],
            configuration=configuration,
            settings=settings,
            assets_manager=manager,
            lazy_loading=False,
            on_event=on_event,
        )
        async with library as lib, anyio.create_task_group() as tg:

            async def predict() -> str | None:
                try:
                    version = await lib.get(SWAP_KEY, Versioned).predict(0)
                except Exception as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
                    return None
                served[version] = served.get(version, 0) + 1
                return version

            async def steady() -> None:
                while True:
                    await predict()
                    await anyio.sleep(args.predict_every)

            tg.start_soon(steady)
            for run in range(args.runs):
                version = f"1.{run + 1}"
                path = await anyio.to_thread.run_sync(source, version)
                began = time.perf_counter()
                result = await publisher.update(path, SWAP_ASSET, major="1")
                published = time.perf_counter()
                assert result.version == version, (result.version, version)
                deadline, done = published + 3 * interval + 60, False
                while not done and time.perf_counter() < deadline:
                    done = await predict() == version  # polled: the answer is what is timed
                    if not done:
                        await anyio.sleep(0.001)
                answered = time.perf_counter()
                status = lib.status()[SWAP_KEY].asset_version if done else None
                start = time.perf_counter()
                fetched = await fetcher.fetch(f"{SWAP_ASSET}:1")
                fetch_s = time.perf_counter() - start
                assert fetched.version == version, fetched.version
                events = [e for t, e in swapped if t >= published]
                seconds = getattr(events[0], "seconds", None) if events else None
                results.append(
                    SwapRun(
                        version=version,
                        publish_s=published - began,
                        publish_to_serve_s=answered - published if done else None,
                        fetch_s=fetch_s,
                        target_s=interval + fetch_s + load + 0.1,
                        swap_event_s=seconds,
                        status_version=status,
                    )
                )
                print(f"swap {run + 1}: {_swap_line(asdict(results[-1]))}", flush=True)
                await anyio.sleep(0.5)  # the old instance closes; the next run starts clean
            tg.cancel_scope.cancel()
    for failure in failures[:5]:
        print(f"  FAILED {failure}", flush=True)
    times = [r.publish_to_serve_s for r in results if r.publish_to_serve_s is not None]
    complete = len(times) == len(results)
    return {
        "runs": [asdict(r) for r in results],
        "median_publish_to_serve_s": statistics.median(times) if complete else None,
        "median_target_s": statistics.median(r.target_s for r in results),
        "all_met": complete and all(served_in_time(asdict(r)) for r in results),
        "predictions": sum(served.values()),
        "served_by_version": served,
        "failed_predictions": len(failures),
        "failures": failures[:20],
    }


def served_in_time(r: dict[str, Any]) -> bool:
    """Whether a run (a :class:`SwapRun` as a dict) answered from its version by its target."""
    serve = r["publish_to_serve_s"]
    return serve is not None and bool(serve <= r["target_s"])


def _swap_line(r: dict[str, Any]) -> str:
    serve = r["publish_to_serve_s"]
    shown = "not served" if serve is None else f"{serve:.3f} s"
    return (
        f"{r['version']}: publish {r['publish_s']:.3f} s, publish -> serve {shown} (target "
        f"{r['target_s']:.3f} s: {'met' if served_in_time(r) else 'MISSED'}), "
        f"fetch {r['fetch_s']:.3f} s, "
        f"status {r['status_version']}"
    )
