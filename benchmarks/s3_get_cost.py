"""Client CPU per small S3 GET: botocore's ``get_object`` against ``S3Store.read``.

``S3Store`` sends object GETs outside botocore's request pipeline (see
``aiomodelkit/stores/_s3_direct.py``). This measures what that saves, side by side in one
process, on a SeaweedFS server on 127.0.0.1 (no latency proxy: the point is CPU, not
waiting). Both sides use the same client configuration, 64 GETs in flight, 16 KiB objects.

Run: ``python -m benchmarks.s3_get_cost [--objects 2000] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from aiomodelkit.stores import S3Store
from aiomodelkit.testing import SeaweedFSServer

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

KiB = 1024


async def _measure(store: S3Store, objects: int, rounds: int) -> dict[str, list[float]]:
    client = store._client  # the very client S3Store uses: same configuration
    assert client is not None
    await client.create_bucket(Bucket="cost")
    data = os.urandom(16 * KiB)
    uploads = asyncio.Semaphore(32)

    async def put(i: int) -> None:
        async with uploads:
            await store.put(f"o/{i}", data)

    await asyncio.gather(*(put(i) for i in range(objects)))
    in_flight = asyncio.Semaphore(64)

    async def botocore_get(i: int) -> None:
        async with in_flight:
            response = await client.get_object(Bucket="cost", Key=f"p/o/{i}")
            await response["Body"].read()
            response["Body"].close()

    async def store_read(i: int) -> None:
        async with in_flight, store.read(f"o/{i}") as stream:
            async for _chunk in stream:
                pass

    sides: dict[str, Callable[[int], Awaitable[None]]] = {
        "botocore get_object": botocore_get,
        "S3Store.read": store_read,
    }
    cpu: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):  # alternating, so that drift hits both sides alike
        for name, get in sides.items():
            start = time.process_time()
            await asyncio.gather(*(get(i) for i in range(objects)))
            cpu[name].append((time.process_time() - start) / objects * 1000)
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work, SeaweedFSServer(Path(work)) as server:
        store = S3Store(
            "cost",
            "p",
            endpoint_url=server.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=server.access_key,
            aws_secret_access_key=server.secret_key,
        )

        async def run() -> dict[str, list[float]]:
            async with store:
                return await _measure(store, args.objects, args.rounds)

        cpu = asyncio.run(run())
    for name, values in cpu.items():
        print(
            f"{name:>20}: {statistics.median(values):.3f} ms of client CPU per GET "
            f"(median of {len(values)} rounds of {args.objects})"
        )
    ratio = statistics.median(cpu["botocore get_object"]) / statistics.median(cpu["S3Store.read"])
    print(f"{'ratio':>20}: {ratio:.1f}x less CPU per GET")


if __name__ == "__main__":
    main()
