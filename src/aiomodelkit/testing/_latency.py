"""A loopback TCP forwarder that adds round-trip time, a TCP-like window and a bandwidth cap.

``tc netem`` is absent on the benchmark machines, so network realism comes from this proxy
(design: ``shared/reference/object-stores.md`` §6.3). Every accepted connection gets its own
upstream connection and, per direction (:mod:`._shaping`):

* each chunk read is released ``rtt / 2`` after it arrived (one-way delay), in order; an EOF
  becomes a half-close after the same delay;
* on a new connection the client-to-server direction releases nothing before
  ``accept time + rtt`` (the TCP handshake), so the first response arrives after two round
  trips and later ones on the same connection after one;
* at most ``window`` bytes are in flight: reading stops until written bytes are
  acknowledged, ``rtt / 2`` after they were delivered, so one stream tops out near
  ``window / rtt``, as on a long-haul link;
* with ``rate_mbit``, one token bucket per direction shared by every connection pushes each
  chunk's release to when the link would be free (an aggregate cap, no burst).

Only loopback addresses are accepted, for listening and for the upstream. Client-to-server
bytes are parsed as HTTP/1.x just enough to count requests by method (:mod:`._httpcount`).

Use::

    async with LatencyProxy(("127.0.0.1", 9000), rtt=0.02) as proxy:
        ...  # point the client at proxy.url

    with ThreadedLatencyProxy(("127.0.0.1", 9000), rtt=0.02) as proxy:  # from sync code
        ...
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

from aiomodelkit._lifecycle import AsyncResource

from ._httpcount import LatencyProxyStats
from ._loopback import ensure_loopback
from ._loopthread import LoopThread
from ._process import BackgroundServer
from ._shaping import Connection, Link, Side

__all__ = ["BACKLOG", "DEFAULT_WINDOW", "LatencyProxy", "ThreadedLatencyProxy"]

#: Default in-flight bytes per direction per connection (a TCP window).
DEFAULT_WINDOW = 4 * 1024 * 1024
#: Listen backlog: clients open dozens of connections at once.
BACKLOG = 1024


class LatencyProxy(AsyncResource):
    """The proxy, on the running asyncio loop (``async with``, or ``start()`` / ``aclose()``).

    Entering a proxy that is already running raises :class:`RuntimeError`.

    Args:
        upstream: ``(host, port)`` of the server; must be loopback.
        rtt: round-trip time to add, in seconds.
        window: in-flight bytes per direction per connection.
        rate_mbit: optional bandwidth cap per direction, shared by all connections (Mbit/s).
        host: the loopback address to listen on.
        port: the port (0: a free one; see :attr:`port`).

    Attributes:
        stats: what it counted (requests by method, bytes, connections).

    Raises:
        ValueError: a non-loopback address, or a negative setting.
    """

    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        rtt: float = 0.02,
        window: int = DEFAULT_WINDOW,
        rate_mbit: float | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        ensure_loopback(upstream[0], role="upstream")
        ensure_loopback(host, role="listen address")
        if rtt < 0 or window < 1 or (rate_mbit is not None and rate_mbit <= 0):
            raise ValueError("rtt must be >= 0, window >= 1 and rate_mbit > 0")
        self.upstream = upstream
        self.rtt = rtt
        self.window = window
        self.rate_mbit = rate_mbit
        self._host = host
        self._port = port
        self.stats = LatencyProxyStats()
        self.connections: set[Connection] = set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.links: tuple[Link | None, Link | None] = (None, None)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop it runs on."""
        if self._loop is None:
            raise RuntimeError("the proxy is not running")
        return self._loop

    @property
    def port(self) -> int:
        """The port it listens on."""
        if self._server is None:
            raise RuntimeError("the proxy is not running")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: the endpoint to give clients."""
        return f"http://{self._host}:{self.port}"

    async def start(self) -> None:
        """Listen (returns once the socket is bound); the same as entering it."""
        await self.__aenter__()

    async def _aopen(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.rate_mbit is not None:
            rate = self.rate_mbit * 1e6 / 8
            self.links = (Link(self._loop, rate, self.rtt), Link(self._loop, rate, self.rtt))
        self._server = await self._loop.create_server(
            self._accept, self._host, self._port, backlog=BACKLOG, reuse_address=True
        )

    def _accept(self) -> Side:
        conn = Connection(self)
        self.connections.add(conn)
        self.stats.connections += 1
        # Protocol callbacks cannot await: the upstream opens in a task we track and
        # cancel in aclose() (no task outlives the proxy).
        task = self.loop.create_task(conn.open_upstream())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return conn.client

    def reset_stats(self) -> None:
        """Zero the counters (in place: live connections keep counting into them)."""
        stats = self.stats
        stats.connections = stats.bytes_up = stats.bytes_down = stats.unparsed = 0
        stats.requests.clear()

    async def _aclose(self) -> None:
        # Stop listening and drop every connection.
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.close()
        for link in self.links:
            if link is not None:
                link.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks))
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None


class ThreadedLatencyProxy(BackgroundServer):
    """A :class:`LatencyProxy` on its own event loop in a daemon thread, for sync code.

    Same arguments as :class:`LatencyProxy`; use as a context manager or ``start()`` /
    ``stop()``.

    Raises:
        ValueError: a non-loopback address, or a negative setting.
    """

    def __init__(self, upstream: tuple[str, int], **kwargs: Any) -> None:
        self._proxy = LatencyProxy(upstream, **kwargs)
        self._thread = LoopThread(self._proxy, name=f"LatencyProxy(-> {upstream[0]}:{upstream[1]})")

    @property
    def proxy(self) -> LatencyProxy:
        """The proxy (it runs on the thread's loop: read its counters with :meth:`stats`)."""
        return self._proxy

    @property
    def port(self) -> int:
        """The port it listens on."""
        return self._proxy.port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: the endpoint to give clients."""
        return self._proxy.url

    def start(self) -> None:
        """Start the proxy's thread; returns once it listens.

        Raises:
            RuntimeError: it is already running, or could not start.
        """
        self._thread.start(10)

    def stats(self) -> LatencyProxyStats:
        """A snapshot of the counters."""

        async def snapshot() -> LatencyProxyStats:
            return LatencyProxyStats(**asdict(self._proxy.stats))

        return self._thread.call(snapshot)

    def stop(self) -> None:
        """Stop the proxy and its thread; idempotent."""
        self._thread.stop()
