"""The latency proxy (``aiomodelkit.testing``, run by the benchmarks): loopback only, RTT,
window, bandwidth cap, fidelity, lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from typing import TYPE_CHECKING

import anyio
import pytest
from benchmarks.harness.proxy import main

from aiomodelkit.testing import LatencyProxy, ThreadedLatencyProxy
from aiomodelkit.testing._loopback import ensure_loopback

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

MiB = 1024 * 1024


async def _http_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A keep-alive HTTP/1.1 server: ``GET /N`` answers N bytes of zeros."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            size = int(head.split(b" ")[1].strip(b"/"))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
            writer.write(bytes(size))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _echo_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echoes every byte, then half-closes when the client does."""
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.write_eof()
    await writer.drain()
    writer.close()


@contextlib.asynccontextmanager
async def _server(handler: object) -> AsyncIterator[int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)  # type: ignore[arg-type]
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        await asyncio.sleep(0.02)  # let handlers see the proxy's closed connections
        server.close()
        await server.wait_closed()


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, size: int) -> float:
    start = time.perf_counter()
    writer.write(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % size)
    head = await reader.readuntil(b"\r\n\r\n")
    assert b"Content-Length: %d" % size in head
    await reader.readexactly(size)
    return time.perf_counter() - start


def test_refuses_non_loopback_addresses() -> None:
    for host in ("10.1.2.3", "0.0.0.0", "192.168.1.1", "8.8.8.8"):
        with pytest.raises(ValueError, match="loopback"):
            LatencyProxy((host, 80))
        with pytest.raises(ValueError, match="loopback"):
            LatencyProxy(("127.0.0.1", 80), host=host)
    assert ensure_loopback("127.0.0.1") == "127.0.0.1"
    assert ensure_loopback("::1") == "::1"
    with pytest.raises(SystemExit):
        main(["--upstream", "10.1.2.3:80"])
    with pytest.raises(SystemExit):
        main(["--upstream", "127.0.0.1:80", "--listen", "0.0.0.0:0"])


async def test_new_connection_pays_two_rtts_and_a_reused_one_pays_one() -> None:
    async with _server(_http_handler) as port, LatencyProxy(("127.0.0.1", port), rtt=0.05) as proxy:
        # From the connect: the handshake's round trip starts at the proxy's accept, so a
        # stall between the connect and the request must not shorten what is measured.
        start = time.perf_counter()
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        try:
            await _get(reader, writer, 100)
            first = time.perf_counter() - start
            second = await _get(reader, writer, 100)
        finally:
            writer.close()
            await writer.wait_closed()
        assert first >= 0.095  # handshake + request/response: two round trips
        assert 0.045 <= second < first  # one round trip on the reused connection
        assert proxy.stats.connections == 1
        assert proxy.stats.requests == {"GET": 2}


async def test_bandwidth_cap_is_respected() -> None:
    async with (
        _server(_http_handler) as port,
        LatencyProxy(("127.0.0.1", port), rtt=0.0, rate_mbit=40) as proxy,
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        try:
            elapsed = await _get(reader, writer, MiB)
        finally:
            writer.close()
            await writer.wait_closed()
    # 1 MiB at 40 Mbit/s (5 MB/s) takes 0.21 s.
    assert elapsed >= 0.18
    assert elapsed < 1.0


async def test_window_bounds_one_stream() -> None:
    async with (
        _server(_http_handler) as port,
        LatencyProxy(("127.0.0.1", port), rtt=0.02, window=64 * 1024) as proxy,
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        try:
            elapsed = await _get(reader, writer, MiB)
        finally:
            writer.close()
            await writer.wait_closed()
    # 64 KiB per 20 ms round trip: 1 MiB needs ~16 round trips (plus the handshake).
    assert elapsed >= 0.25


async def test_bytes_pass_unchanged_both_ways_with_half_close() -> None:
    payload = os.urandom(3 * MiB + 12345)
    async with (
        _server(_echo_handler) as port,
        LatencyProxy(("127.0.0.1", port), rtt=0.002, window=256 * 1024, rate_mbit=2000) as proxy,
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        received = bytearray()

        async def read_all() -> None:
            while data := await reader.read(65536):
                received.extend(data)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(read_all)
                for start in range(0, len(payload), 100_000):
                    writer.write(payload[start : start + 100_000])
                    await writer.drain()
                writer.write_eof()
        writer.close()
        await writer.wait_closed()
        assert bytes(received) == payload
        assert proxy.stats.bytes_up == len(payload)
        assert proxy.stats.bytes_down == len(payload)
        assert proxy.stats.unparsed == 1  # not HTTP: counted as such, forwarded all the same


def test_threaded_proxy_from_sync_code() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        with ThreadedLatencyProxy(("127.0.0.1", port), rtt=0.01) as proxy:
            start = time.perf_counter()
            with socket.create_connection(("127.0.0.1", proxy.port)) as client:
                conn, _ = listener.accept()
                with conn:
                    client.sendall(b"ping")
                    assert conn.recv(4) == b"ping"
                    conn.sendall(b"pong")
                    assert client.recv(4) == b"pong"
            assert time.perf_counter() - start >= 0.019
            assert proxy.stats().connections == 1


async def test_entering_a_running_proxy_raises_and_a_closed_one_reopens() -> None:
    async with _server(_http_handler) as port:
        proxy = LatencyProxy(("127.0.0.1", port), rtt=0.0)
        async with proxy:
            first = proxy.port
            with pytest.raises(RuntimeError, match="already open"):
                await proxy.__aenter__()
            with pytest.raises(RuntimeError, match="already open"):
                await proxy.start()
        await proxy.aclose()  # idempotent
        with pytest.raises(RuntimeError, match="not running"):
            _ = proxy.port
        async with proxy:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            try:
                await _get(reader, writer, 10)
            finally:
                writer.close()
                await writer.wait_closed()
        assert first > 0


def test_threaded_proxy_starts_once() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        proxy = ThreadedLatencyProxy(("127.0.0.1", port), rtt=0.0)
        with proxy:
            with pytest.raises(RuntimeError, match="already running"):
                proxy.start()
            assert proxy.stats().connections == 0
        proxy.stop()  # idempotent
        with pytest.raises(RuntimeError, match="not running"):
            proxy.stats()


def test_the_loopback_guard_resolves_names() -> None:
    assert ensure_loopback("localhost") == "localhost"
