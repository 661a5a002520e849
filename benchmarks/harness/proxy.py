"""The latency proxy as its own process, so that its CPU is measured apart from the client's.

``python -m benchmarks.harness.proxy --upstream 127.0.0.1:9000 --rtt-ms 20 --rate-mbit 800``
runs :class:`aiomodelkit.testing.LatencyProxy` and prints ``LISTENING <port>``; with
``--control`` it reads ``stats`` / ``reset`` lines on stdin and answers one JSON line each
(the harness's :class:`~.services.ProxyProcess` drives it that way).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from aiomodelkit.testing import LatencyProxy
from aiomodelkit.testing._latency import DEFAULT_WINDOW

__all__ = ["main"]


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


async def _serve(proxy: LatencyProxy, *, control: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with proxy:
        print(f"LISTENING {proxy.port}", flush=True)
        if control:
            reader = asyncio.StreamReader()
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
            waiter = loop.create_task(stop.wait())
            while not stop.is_set():
                line_task = loop.create_task(reader.readline())
                done, _ = await asyncio.wait(
                    {line_task, waiter}, return_when=asyncio.FIRST_COMPLETED
                )
                if line_task not in done:
                    line_task.cancel()
                    break
                command = line_task.result().decode().strip()
                if not command:  # stdin closed: the harness is gone
                    break
                if command == "stats":
                    print(json.dumps(proxy.stats.as_dict()), flush=True)
                elif command == "reset":
                    proxy.reset_stats()
                    print("{}", flush=True)
                else:
                    print(json.dumps({"error": f"unknown command {command!r}"}), flush=True)
            waiter.cancel()
        else:
            await stop.wait()


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        description="Loopback TCP proxy adding RTT, a per-connection window and a bandwidth cap."
    )
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the server (loopback)")
    parser.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (default: free port)")
    parser.add_argument("--rtt-ms", type=float, default=20.0)
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW, help="bytes in flight")
    parser.add_argument("--rate-mbit", type=float, default=None, help="shared cap, Mbit/s")
    parser.add_argument(
        "--control", action="store_true", help="answer 'stats'/'reset' lines on stdin"
    )
    args = parser.parse_args(argv)
    listen = _host_port(args.listen)
    try:  # the constructor checks every address (loopback only) and does no I/O
        proxy = LatencyProxy(
            _host_port(args.upstream),
            rtt=args.rtt_ms / 1000,
            window=args.window,
            rate_mbit=args.rate_mbit,
            host=listen[0],
            port=listen[1],
        )
    except ValueError as exc:
        parser.error(str(exc))
    asyncio.run(_serve(proxy, control=args.control))


if __name__ == "__main__":
    main()
