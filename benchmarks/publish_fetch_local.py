"""Publish and cold-fetch on the local store: a first, server-free measurement.

Run: ``python benchmarks/publish_fetch_local.py [--runs 5]``. Prints the median of each
phase over several runs, each with a fresh cache (the page cache is warm: the store was
just written). The full cold-start suite against S3/GCS servers with latency is issue #6.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import anyio

from aiomodelkit import AssetsManager, Settings

MiB = 1024 * 1024


def make_workloads(root: Path) -> dict[str, Path]:
    small = root / "w3-small-files"
    small.mkdir(parents=True)
    for index in range(2000):
        (small / f"f{index:04d}.bin").write_bytes(os.urandom(16 * 1024))
    big = root / "w1-one-object.bin"
    big.write_bytes(os.urandom(256 * MiB))
    return {"2000 x 16 KiB": small, "1 x 256 MiB": big}


async def run(runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="aiomodelkit-bench-") as tmp:
        root = Path(tmp)
        workloads = await anyio.to_thread.run_sync(make_workloads, root / "src")
        store = root / "store"
        store.mkdir()
        for label, path in workloads.items():
            name = "bench/" + label.replace(" ", "").replace("x", "-x-")
            publish_s: list[float] = []
            fetch_s: list[float] = []
            for run_index in range(runs):
                settings = Settings(assets_dir=root / f"cache-{label}-{run_index}")
                async with AssetsManager(storage=store.as_uri(), settings=settings) as am:
                    start = time.perf_counter()
                    if run_index == 0:
                        result = await am.new(path, name)
                    else:
                        result = await am.update(path, name)
                    publish_s.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    fetched = await am.fetch(result.spec)
                    fetch_s.append(time.perf_counter() - start)
                    assert not fetched.from_cache
            size = result.size / MiB
            print(
                f"{label:>14}: publish median {statistics.median(publish_s) * 1000:7.0f} ms, "
                f"cold fetch median {statistics.median(fetch_s) * 1000:7.0f} ms "
                f"({size / statistics.median(fetch_s):.0f} MiB/s), runs={runs}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    anyio.run(run, args.runs)


if __name__ == "__main__":
    main()
