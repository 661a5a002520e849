"""The parts of a fetch's cost per GiB, each timed alone.

Run: ``python -m benchmarks.cpu_per_byte --micro [--size-mib 1024]`` (needs xxhash,
google-crc32c and uvloop in the environment).

Every figure is CPU seconds per GiB on this machine, the median of 5 rounds in which the
variants alternate:

* checksums: ``hashlib.sha256`` / ``md5`` (OpenSSL), ``xxhash.xxh3_128``, ``google_crc32c``,
  over 1 MiB ``bytes`` blocks (64 MiB of random data, repeated) (this thread's CPU time);
* copies: ``b"".join`` of 64 KiB pieces into 1 MiB, and of 1 MiB chunks into 8 MiB;
  ``bytes(view)`` of 1 MiB (one plain memcpy);
* files: a fresh file (``ftruncate`` to its size first, as ``FileSink`` does) written with
  ``os.pwritev`` of one 1 MiB chunk or of 8 x 1 MiB per call, or joined and ``os.pwrite``;
  and read back with ``os.preadv`` into one reused 1 MiB buffer (what the ranged download's
  hasher does), all in the page cache;
* thread hops: ``anyio.to_thread.run_sync`` of a no-op (process CPU per hop, both threads);
* body reads: one HTTP GET of the whole size from a plain socket server in another process
  (``sendall``), read by aiohttp's ``content.read(n)`` at 64 KiB, 1 MiB and 4 MiB, with the
  session's ``read_bufsize`` at aiohttp's default (64 KiB) or raised, on asyncio and uvloop;
  and the asyncio floor: a ``Protocol`` that discards ``data_received`` (256 KiB ``recv``
  each), and a ``BufferedProtocol`` that ``recv_into`` one reused 1 MiB buffer.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
import anyio.to_thread

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["main"]

MiB = 1024 * 1024
GiB = 1024 * MiB
ROUNDS = 5
_SERVER = r"""
import socket, sys, threading
block = memoryview(bytes(range(256)) * (16 * 4096))
def serve(conn):
    with conn:
        while True:  # keep-alive: GET /<bytes>, answered with that many bytes
            request = b""
            while b"\r\n\r\n" not in request:
                data = conn.recv(65536)
                if not data:
                    return
                request += data
            left = int(request.split(b" ", 2)[1][1:])
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % left)
            while left:
                n = min(left, len(block))
                conn.sendall(block[:n])
                left -= n
srv = socket.create_server(("127.0.0.1", 0))
print(srv.getsockname()[1], flush=True)
while True:
    threading.Thread(target=serve, args=(srv.accept()[0],), daemon=True).start()
"""


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _blocks(size: int) -> list[bytes]:
    """``size`` bytes as 1 MiB ``bytes`` blocks (64 distinct ones, repeated), as chunks are."""
    distinct = [os.urandom(MiB) for _ in range(64)]
    return [distinct[i % 64] for i in range(size // MiB)]


def _checksums(size: int) -> dict[str, Callable[[], None]]:
    blocks = _blocks(size)
    xxhash: Any = importlib.import_module("xxhash")
    crc32c: Any = importlib.import_module("google_crc32c")

    def run(make: Callable[[], Any]) -> Callable[[], None]:
        def go() -> None:
            digest = make()
            for block in blocks:
                digest.update(block)
            digest.digest()

        return go

    return {
        "hashlib.sha256": run(hashlib.sha256),
        "hashlib.md5": run(lambda: hashlib.md5(usedforsecurity=False)),
        "xxhash.xxh3_128": run(xxhash.xxh3_128),
        "google_crc32c": run(crc32c.Checksum),
    }


def _copies(size: int) -> dict[str, Callable[[], None]]:
    blocks = _blocks(64 * MiB)
    pieces = [blocks[0][i : i + 64 * 1024] for i in range(0, MiB, 64 * 1024)]
    rounds = size // MiB

    def join_small() -> None:
        for _ in range(rounds):
            b"".join(pieces)

    def join_big() -> None:
        for i in range(0, rounds, 8):
            b"".join(blocks[i % 64 : i % 64 + 8])

    def copy() -> None:
        view = memoryview(blocks[0])
        for _ in range(rounds):
            bytes(view)

    return {
        "join 16 x 64 KiB -> 1 MiB": join_small,
        "join 8 x 1 MiB -> 8 MiB": join_big,
        "bytes(view) of 1 MiB (memcpy)": copy,
    }


def _files(size: int, path: Path) -> dict[str, Callable[[], None]]:
    chunks = _blocks(64 * MiB)

    def fresh() -> int:  # the previous file is removed off the clock (see main)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.ftruncate(fd, size)
        return fd

    def write(per_call: int, join: bool) -> Callable[[], None]:
        def go() -> None:
            fd = fresh()
            for at in range(0, size, per_call * MiB):
                batch = [chunks[(at // MiB + i) % 64] for i in range(per_call)]
                if join:
                    os.pwrite(fd, b"".join(batch), at)
                else:
                    os.pwritev(fd, batch, at)
            os.close(fd)

        return go

    def read_back() -> None:
        buffer = bytearray(MiB)
        fd = os.open(path, os.O_RDONLY)
        for at in range(0, size, MiB):
            os.preadv(fd, [buffer], at)
        os.close(fd)

    return {
        "os.pwritev, 1 x 1 MiB per call (fresh file)": write(1, join=False),
        "os.pwritev, 8 x 1 MiB per call (fresh file)": write(8, join=False),
        "join 8 x 1 MiB + os.pwrite (fresh file)": write(8, join=True),
        "os.preadv back into a 1 MiB buffer": read_back,
    }


async def _hops(count: int) -> None:
    limiter = anyio.CapacityLimiter(4)
    for _ in range(count):
        await anyio.to_thread.run_sync(int, limiter=limiter)


class _Discard(asyncio.Protocol):
    """Counts what arrives (status line and headers included) until ``expected`` bytes."""

    def __init__(self, done: asyncio.Future[None], expected: int) -> None:
        self.done, self.left = done, expected

    def data_received(self, data: bytes) -> None:
        self.left -= len(data)
        if self.left <= 0 and not self.done.done():
            self.done.set_result(None)


class _Into(asyncio.BufferedProtocol):
    """The same, received into one reused buffer (``recv_into``)."""

    def __init__(self, done: asyncio.Future[None], expected: int) -> None:
        self.done, self.left, self.buffer = done, expected, bytearray(MiB)

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.left -= nbytes
        if self.left <= 0 and not self.done.done():
            self.done.set_result(None)


async def _raw(port: int, size: int, buffered: bool) -> int:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    expected = size + len(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
    protocol = (_Into if buffered else _Discard)(done, expected)
    transport, _ = await loop.create_connection(lambda: protocol, "127.0.0.1", port)
    transport.write(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % size)
    await done
    transport.close()
    return size


async def _aiohttp(port: int, size: int, read: int, bufsize: int, streams: int = 1) -> int:
    """``size`` bytes in ``streams`` concurrent GETs (one connection each)."""
    received = 0

    async def get(session: aiohttp.ClientSession) -> None:
        nonlocal received
        async with session.get(f"http://127.0.0.1:{port}/{size // streams}") as response:
            while chunk := await response.content.read(read):
                received += len(chunk)

    async with aiohttp.ClientSession(read_bufsize=bufsize, auto_decompress=False) as session:
        async with anyio.create_task_group() as tg:
            for _ in range(streams):
                tg.start_soon(get, session)
    return received


def _reads(port: int, size: int) -> dict[str, Callable[[], None]]:
    uvloop: Any = importlib.import_module("uvloop")

    def run(make: Callable[[], Awaitable[int]], uv: bool = False) -> Callable[[], None]:
        def go() -> None:
            factory = uvloop.new_event_loop if uv else None
            with asyncio.Runner(loop_factory=factory) as runner:
                assert runner.run(make()) == size  # type: ignore[arg-type]

        return go

    def http(read: int, bufsize: int, streams: int, uv: bool = False) -> Callable[[], None]:
        return run(lambda: _aiohttp(port, size, read, bufsize, streams), uv)

    k64, m4 = 64 * 1024, 4 * MiB
    return {
        "asyncio Protocol, data discarded (floor), 1 conn": run(lambda: _raw(port, size, False)),
        "asyncio BufferedProtocol, recv_into 1 MiB, 1 conn": run(lambda: _raw(port, size, True)),
        "aiohttp read(64 KiB), read_bufsize 64 KiB, 1 conn": http(k64, k64, 1),
        "aiohttp read(1 MiB), read_bufsize 64 KiB, 1 conn": http(MiB, k64, 1),
        "aiohttp read(1 MiB), read_bufsize 1 MiB, 1 conn": http(MiB, MiB, 1),
        "aiohttp read(4 MiB), read_bufsize 4 MiB, 1 conn": http(m4, m4, 1),
        "aiohttp read(1 MiB), read_bufsize 64 KiB, 16 conns (ours)": http(MiB, k64, 16),
        "aiohttp read(1 MiB), read_bufsize 1 MiB, 16 conns": http(MiB, MiB, 16),
        "aiohttp read(4 MiB), read_bufsize 4 MiB, 16 conns": http(m4, m4, 16),
        "uvloop: aiohttp read(1 MiB), read_bufsize 64 KiB, 16 conns": http(MiB, k64, 16, True),
        "uvloop: aiohttp read(1 MiB), read_bufsize 1 MiB, 16 conns": http(MiB, MiB, 16, True),
    }


def _measure(
    group: dict[str, Callable[[], None]],
    size: int,
    clock: Callable[[], float],
    setup: Callable[[str], None] | None = None,
) -> dict[str, float]:
    """Median CPU seconds per GiB of each variant, over rounds that alternate them
    (``setup(name)`` runs before each, off the clock)."""
    samples: dict[str, list[float]] = {name: [] for name in group}
    for _ in range(ROUNDS):
        for name, func in group.items():
            if setup is not None:
                setup(name)
            start = clock()
            func()
            samples[name].append((clock() - start) * GiB / size)
    return {name: statistics.median(values) for name, values in samples.items()}


def main(size_mib: int) -> None:
    """Print every micro-benchmark's median CPU seconds per GiB (and MB/s of one core)."""
    size = size_mib * MiB
    names = ("xxhash", "google-crc32c", "aiohttp", "uvloop", "anyio")
    print("versions: " + ", ".join(f"{n} {version(n)}" for n in names), flush=True)
    print(f"OpenSSL: {__import__('ssl').OPENSSL_VERSION}; {size_mib} MiB per variant", flush=True)
    results: dict[str, float] = {}
    results |= _measure(_checksums(size), size, time.thread_time)
    results |= _measure(_copies(size), size, time.thread_time)
    with tempfile.TemporaryDirectory(prefix="cpu-micro-") as directory:
        path = Path(directory) / "micro.bin"

        def remove(name: str) -> None:  # freeing the last file's pages is not a write's cost
            if "write" in name:
                path.unlink(missing_ok=True)

        results |= _measure(_files(size, path), size, time.thread_time, remove)
    hops = 2000
    start = _process_cpu()
    anyio.run(_hops, hops)
    per_hop = (_process_cpu() - start) / hops
    server = subprocess.Popen([sys.executable, "-c", _SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        results |= _measure(_reads(port, size), size, _process_cpu)
    finally:
        server.kill()
        server.wait()
    for name, seconds in results.items():
        print(f"{name:58} {seconds:6.3f} s/GiB  ({GiB / seconds / 1e6:8,.0f} MB/s)")
    print(
        f"{'anyio.to_thread.run_sync hop (no-op)':58} {per_hop * 1e6:6.1f} us/hop "
        f"({per_hop * GiB / (512 * 1024):.3f} s/GiB at one hop per 512 KiB)",
        flush=True,
    )
