"""Why the cache writes through our own worker-thread batches and not aiofiles (issue 12).

Writes the same bytes three ways, in alternation, and prints the median wall and CPU time:

* ``aiofiles``: ``await f.write(chunk)`` per network chunk (one thread hop each);
* ``aiofiles-1MiB``: chunks joined into ~1 MiB, one ``await f.write`` per batch;
* ``ours``: :class:`aiomodelkit._sink.FileSink` batches of ~1 MiB through ``os.writev``
  in a worker thread (no join copy), as the download engine does;

and, for many small files, aiofiles' open/write/close per file against our
:class:`~aiomodelkit._sink.WriteBatcher` (group commit of whole-file writes).

Run: ``python -m benchmarks.disk_writes [--mib 256] [--files 2000] [--runs 5]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import aiofiles
import anyio
import anyio.to_thread

from aiomodelkit._sink import FileSink, WriteBatcher
from aiomodelkit._values import WRITE_BUFFER

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

CHUNK = 64 * 1024  # what a network read typically hands over


async def _aiofiles_per_chunk(path: Path, chunks: list[bytes]) -> None:
    async with aiofiles.open(path, "wb") as handle:
        for chunk in chunks:
            await handle.write(chunk)


async def _aiofiles_batched(path: Path, chunks: list[bytes]) -> None:
    async with aiofiles.open(path, "wb") as handle:
        for start in range(0, len(chunks), WRITE_BUFFER // CHUNK):
            await handle.write(b"".join(chunks[start : start + WRITE_BUFFER // CHUNK]))


async def _ours(path: Path, chunks: list[bytes]) -> None:
    sink = FileSink(path, sha256=False, md5=False)
    limiter = anyio.CapacityLimiter(4)
    step = WRITE_BUFFER // CHUNK
    for start in range(0, len(chunks), step):
        last = start + step >= len(chunks)
        batch = chunks[start : start + step]
        await anyio.to_thread.run_sync(sink.append, batch, last, limiter=limiter)


async def _small_aiofiles(root: Path, blobs: list[bytes]) -> None:
    async def one(index: int) -> None:
        async with aiofiles.open(root / f"f{index}", "wb") as handle:
            await handle.write(blobs[index])

    async with anyio.create_task_group() as tg:
        for index in range(len(blobs)):
            tg.start_soon(one, index)


async def _small_ours(root: Path, blobs: list[bytes]) -> None:
    batcher, limiter = WriteBatcher(), anyio.CapacityLimiter(4)

    async def one(index: int) -> None:
        sink = FileSink(root / f"f{index}", sha256=False, md5=False)
        await batcher.run(partial(sink.append, [blobs[index]], True), limiter)

    async with anyio.create_task_group() as tg:
        for index in range(len(blobs)):
            tg.start_soon(one, index)


async def _measure(job: Callable[[], Awaitable[None]]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    await job()
    return time.perf_counter() - wall, time.process_time() - cpu


async def main(mib: int, files: int, runs: int) -> None:
    chunks = [os.urandom(CHUNK) for _ in range(mib * 1024 * 1024 // CHUNK)]
    blobs = [os.urandom(16 * 1024) for _ in range(files)]
    big = {"aiofiles": _aiofiles_per_chunk, "aiofiles-1MiB": _aiofiles_batched, "ours": _ours}
    small = {"aiofiles": _small_aiofiles, "ours": _small_ours}
    results: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for run in range(runs):
            for name, write in big.items():
                target = root / f"{name}-{run}.bin"
                results.setdefault(f"{mib} MiB, {name}", []).append(
                    await _measure(partial(write, target, chunks))
                )
                target.unlink()
            for name, write_many in small.items():
                folder = root / f"{name}-{run}"
                folder.mkdir()
                results.setdefault(f"{files} x 16 KiB, {name}", []).append(
                    await _measure(partial(write_many, folder, blobs))
                )
    print(f"medians of {runs} alternating runs (wall s / client CPU s)")
    for label, samples in results.items():
        wall = statistics.median(s[0] for s in samples)
        cpu = statistics.median(s[1] for s in samples)
        print(f"  {label:<28} {wall:7.3f} s wall  {cpu:7.3f} s CPU")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    anyio.run(main, args.mib, args.files, args.runs)
