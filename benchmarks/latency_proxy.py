"""A loopback TCP forwarder that adds round-trip time, a TCP-like window and a bandwidth cap.

``tc netem`` is absent on the benchmark machines, so network realism comes from this proxy
(design: ``shared/reference/object-stores.md`` §6.3). Every accepted connection gets its own
upstream connection and, per direction:

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
bytes are parsed as HTTP/1.x just enough to count requests by method (a measure of what a
client sent, independent of its own bookkeeping).

Library use::

    async with LatencyProxy(("127.0.0.1", 9000), rtt=0.02) as proxy:
        ...  # point the client at proxy.url

    with ThreadedLatencyProxy(("127.0.0.1", 9000), rtt=0.02) as proxy:  # from sync code
        ...

Command line (``--control`` reads ``stats`` / ``reset`` lines on stdin and answers JSON)::

    python -m benchmarks.latency_proxy --upstream 127.0.0.1:9000 --rtt-ms 20 --rate-mbit 800
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import ipaddress
import json
import signal
import socket
import sys
import threading
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Self

from aiomodelkit.testing._process import BackgroundServer

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "LatencyProxy",
    "ProxyStats",
    "RequestCounter",
    "ThreadedLatencyProxy",
    "ensure_loopback",
    "main",
]

#: Largest chunk the proxy stamps at once (a bigger read is split).
MAX_CHUNK = 64 * 1024
#: Largest read from a socket (asyncio's own limit), never more than the window's room.
MAX_READ = 256 * 1024
#: Default in-flight bytes per direction per connection (a TCP window).
DEFAULT_WINDOW = 4 * 1024 * 1024
#: Listen backlog: clients open dozens of connections at once.
BACKLOG = 1024
#: Stop delivering while the destination's buffer holds more than this (then wait for it).
_WRITE_HIGH_WATER = 256 * 1024

_EOF = b""  # the sentinel chunk: a half-close


def ensure_loopback(host: str) -> str:
    """Return ``host`` if every address it resolves to is a loopback address.

    Raises:
        ValueError: the host is not loopback (or does not resolve).
    """
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ValueError(f"cannot resolve {host!r}: {exc}") from None
    addresses = {info[4][0] for info in infos}
    if not addresses or not all(ipaddress.ip_address(a).is_loopback for a in addresses):
        raise ValueError(f"{host!r} is not a loopback address: the proxy only runs on loopback")
    return host


@dataclass
class ProxyStats:
    """Counters since start (or the last reset).

    Attributes:
        connections: client connections accepted.
        requests: HTTP requests seen from clients, by method.
        bytes_up: client-to-server bytes forwarded.
        bytes_down: server-to-client bytes forwarded.
        unparsed: connections whose client bytes stopped looking like HTTP/1.x.
    """

    connections: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    bytes_up: int = 0
    bytes_down: int = 0
    unparsed: int = 0

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["total_requests"] = self.total_requests
        return data


class RequestCounter:
    """Counts HTTP/1.x requests in a client's byte stream (headers, Content-Length, chunked).

    Example:
        >>> counts: dict[str, int] = {}
        >>> parser = RequestCounter(counts)
        >>> parser.feed(b"GET /a HTTP/1.1\\r\\nHost: x\\r\\n\\r\\nHEAD /b HTTP/1.1\\r\\n\\r\\n")
        >>> counts
        {'GET': 1, 'HEAD': 1}
    """

    _MAX_HEADERS = 256 * 1024

    def __init__(self, counts: dict[str, int]) -> None:
        self._counts = counts
        self._buffer = bytearray()
        self._body_left = 0  # bytes of a Content-Length body still to skip
        self._chunked = False  # inside a chunked body
        self.broken = False

    def feed(self, data: bytes) -> None:
        """Consume the next bytes the client sent."""
        if self.broken:
            return
        view = memoryview(data)
        while view:
            if self._body_left:
                step = min(self._body_left, len(view))
                self._body_left -= step
                view = view[step:]
                continue
            self._buffer += view
            view = memoryview(b"")
            self._drain_buffer()

    def _drain_buffer(self) -> None:
        while self._buffer and not self.broken:
            if self._chunked:
                if not self._chunk_step():
                    return
                continue
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > self._MAX_HEADERS:
                    self.broken = True
                return
            head = bytes(self._buffer[:end]).decode("latin-1")
            del self._buffer[: end + 4]
            self._start_request(head)
            if self._body_left and self._buffer:
                step = min(self._body_left, len(self._buffer))
                del self._buffer[:step]
                self._body_left -= step

    def _start_request(self, head: str) -> None:
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self.broken = True
            return
        self._counts[parts[0]] = self._counts.get(parts[0], 0) + 1
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                self._body_left = int(value.strip() or 0)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                self._chunked = True

    def _chunk_step(self) -> bool:
        """Skip one chunk of a chunked body; False when more bytes are needed."""
        end = self._buffer.find(b"\r\n")
        if end < 0:
            return False
        size_text = bytes(self._buffer[:end]).split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            self.broken = True
            return False
        if size == 0:
            # Last chunk, then optional trailers, then an empty line.
            trailer_end = self._buffer.find(b"\r\n\r\n", end)
            if trailer_end < 0:
                return False
            del self._buffer[: trailer_end + 4]
            self._chunked = False
            return True
        if len(self._buffer) < end + 2 + size + 2:
            return False
        del self._buffer[: end + 2 + size + 2]
        return True


class _Link:
    """One direction of the shared bandwidth, served round-robin across connections.

    Chunks wait here until the link is free; each takes ``size / rate`` to cross, then
    ``rtt / 2`` to arrive. Serving connections in turn (fair queuing, as ``fq`` qdiscs do)
    keeps a small request from waiting behind every window of every big download.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, rate_bytes: float, rtt: float) -> None:
        self.loop = loop
        self.rate = rate_bytes
        self.rtt = rtt
        self.free_at = 0.0
        self.active: collections.deque[_Pipe] = collections.deque()
        self.timer: asyncio.Handle | None = None

    def enqueue(self, pipe: _Pipe) -> None:
        if not pipe.in_link:
            pipe.in_link = True
            self.active.append(pipe)
        if self.timer is None:
            self.timer = self.loop.call_soon(self._run)

    def _run(self) -> None:
        self.timer = None
        now = self.loop.time()
        earliest = float("inf")
        idle_turns = 0
        # Transmit in virtual time while the link is free; a late timer catches up.
        while self.active and self.free_at <= now and idle_turns < len(self.active):
            pipe = self.active.popleft()
            if pipe.closed or not pipe.pending:
                pipe.in_link = False
                continue
            ready, piece = pipe.pending[0]
            if ready > now:  # held by the handshake
                earliest = min(earliest, ready)
                self.active.append(pipe)
                idle_turns += 1
                continue
            idle_turns = 0
            pipe.pending.popleft()
            self.free_at = max(self.free_at, ready) + len(piece) / self.rate
            pipe.release(self.free_at + self.rtt / 2, piece)
            if pipe.pending:
                self.active.append(pipe)
            else:
                pipe.in_link = False
        if self.active:
            wake = self.free_at if self.free_at > now else earliest
            self.timer = self.loop.call_at(max(wake, now), self._run)

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.active.clear()


class _Pipe:
    """One direction of one connection: delays, windows and delivers chunks, in order."""

    def __init__(
        self,
        conn: _Connection,
        link: _Link | None,
        not_before: float,
        *,
        upward: bool,
    ) -> None:
        self.conn = conn
        self.proxy = conn.proxy
        self.loop = conn.proxy.loop
        self.link = link
        self.not_before = not_before
        self.upward = upward
        self.source: asyncio.Transport | None = None
        self.dest: asyncio.Transport | None = None
        self.pending: collections.deque[tuple[float, bytes]] = collections.deque()  # link
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()  # delivery
        self.in_link = False
        self.inflight = 0
        self.reading_paused = False
        self.dest_paused = False
        self.timer: asyncio.TimerHandle | None = None
        self.eof_queued = False
        self.finished = False  # EOF delivered, or the destination is gone
        self.closed = False

    def push(self, data: bytes) -> None:
        """A chunk (or ``_EOF``) arrived from the source."""
        if self.eof_queued or self.closed:
            return
        if not data:
            self.eof_queued = True
        elif self.upward:
            self.conn.count_request_bytes(data)
        ready = max(self.loop.time(), self.not_before)
        for start in range(0, max(len(data), 1), MAX_CHUNK):
            piece = data[start : start + MAX_CHUNK]
            self.inflight += len(piece)
            if self.link is None:
                self.release(ready + self.proxy.rtt / 2, piece)
            else:
                self.pending.append((ready, piece))
        if self.link is not None:
            self.link.enqueue(self)
        if self.inflight >= self.proxy.window and self.source is not None:
            if not self.reading_paused:
                self.reading_paused = True
                self.source.pause_reading()

    def release(self, when: float, piece: bytes) -> None:
        """Deliver ``piece`` to the destination at ``when`` (after earlier pieces)."""
        self.queue.append((when, piece))
        self._schedule()

    def _schedule(self) -> None:
        if self.timer is not None or not self.queue or self.dest_paused or self.closed:
            return
        self.timer = self.loop.call_at(self.queue[0][0], self._deliver)

    def _deliver(self) -> None:
        self.timer = None
        dest = self.dest
        if dest is None:  # the upstream is still connecting: connection_made reschedules
            return
        now = self.loop.time()
        delivered = 0
        while self.queue and self.queue[0][0] <= now and not self.dest_paused:
            _, piece = self.queue.popleft()
            if not piece:
                if dest.can_write_eof() and not dest.is_closing():
                    dest.write_eof()
                self.finished = True
                self.conn.maybe_close()
                break
            if not dest.is_closing():
                dest.write(piece)
            delivered += len(piece)
            if dest.get_write_buffer_size() > _WRITE_HIGH_WATER:
                self.dest_paused = True
        if delivered:
            stats = self.proxy.stats
            if self.upward:
                stats.bytes_up += delivered
            else:
                stats.bytes_down += delivered
            # The acknowledgement takes another half round trip to come back.
            self.loop.call_at(now + self.proxy.rtt / 2, self._credit, delivered)
        self._schedule()

    def _credit(self, size: int) -> None:
        self.inflight -= size
        source = self.source
        if self.reading_paused and self.inflight < self.proxy.window and source is not None:
            self.reading_paused = False
            if not source.is_closing():
                source.resume_reading()

    def dest_writable(self) -> None:
        self.dest_paused = False
        self._schedule()

    def close(self) -> None:
        self.closed = True
        self.finished = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.queue.clear()
        self.pending.clear()


class _Side(asyncio.BufferedProtocol):
    """The protocol of one socket (client or upstream): feeds one pipe, drains the other.

    A buffered protocol, so that no read takes more than the window has room for.
    """

    def __init__(self, conn: _Connection, outgoing: _Pipe, incoming: _Pipe) -> None:
        self.conn = conn
        self.outgoing = outgoing  # bytes read here leave through this pipe
        self.incoming = incoming  # this pipe writes into this socket
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray(MAX_READ)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        _nodelay(transport)
        self.outgoing.source = transport
        self.incoming.dest = transport
        self.incoming._schedule()

    def get_buffer(self, sizehint: int) -> memoryview:
        room = self.conn.proxy.window - self.outgoing.inflight
        return memoryview(self._buffer)[: max(1, min(MAX_READ, room))]

    def buffer_updated(self, nbytes: int) -> None:
        self.outgoing.push(bytes(self._buffer[:nbytes]))

    def eof_received(self) -> bool:
        self.outgoing.push(_EOF)
        return True  # keep the other half open until this EOF is delivered

    def pause_writing(self) -> None:
        self.incoming.dest_paused = True

    def resume_writing(self) -> None:
        self.incoming.dest_writable()

    def connection_lost(self, exc: Exception | None) -> None:
        # What this side sent is still delivered (then a half-close); nothing more can be
        # written into it.
        self.outgoing.source = None
        self.outgoing.push(_EOF)
        self.incoming.close()
        self.conn.maybe_close()


class _Connection:
    """A client connection and its own upstream connection."""

    def __init__(self, proxy: LatencyProxy) -> None:
        self.proxy = proxy
        now = proxy.loop.time()
        self.counter = RequestCounter(proxy.stats.requests)
        up_link, down_link = proxy.links
        # The handshake: the client's first bytes leave no earlier than one RTT after accept.
        self.up = _Pipe(self, up_link, now + proxy.rtt, upward=True)
        self.down = _Pipe(self, down_link, now, upward=False)
        self.client = _Side(self, self.up, self.down)
        self.upstream: _Side | None = None
        self.closed = False

    def count_request_bytes(self, data: bytes) -> None:
        was_broken = self.counter.broken
        self.counter.feed(data)
        if self.counter.broken and not was_broken:
            self.proxy.stats.unparsed += 1

    async def open_upstream(self) -> None:
        try:
            await self.proxy.loop.create_connection(
                self._make_upstream, self.proxy.upstream[0], self.proxy.upstream[1]
            )
        except OSError:
            self.close()

    def _make_upstream(self) -> _Side:
        self.upstream = _Side(self, self.down, self.up)
        return self.upstream

    def maybe_close(self) -> None:
        if self.up.finished and self.down.finished:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for pipe in (self.up, self.down):
            pipe.close()
        for side in (self.client, self.upstream):
            if side is not None and side.transport is not None:
                side.transport.close()
        self.proxy.connections.discard(self)


class LatencyProxy:
    """The proxy, on the running asyncio loop (``async with``, or ``start()`` / ``aclose()``).

    Args:
        upstream: ``(host, port)`` of the server; must be loopback.
        rtt: round-trip time to add, in seconds.
        window: in-flight bytes per direction per connection.
        rate_mbit: optional bandwidth cap per direction, shared by all connections (Mbit/s).
        host: the loopback address to listen on.
        port: the port (0: a free one; see :attr:`port`).

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
        ensure_loopback(upstream[0])
        ensure_loopback(host)
        if rtt < 0 or window < 1 or (rate_mbit is not None and rate_mbit <= 0):
            raise ValueError("rtt must be >= 0, window >= 1 and rate_mbit > 0")
        self.upstream = upstream
        self.rtt = rtt
        self.window = window
        self.rate_mbit = rate_mbit
        self._host = host
        self._port = port
        self.stats = ProxyStats()
        self.connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.links: tuple[_Link | None, _Link | None] = (None, None)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
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
        """Listen (returns once the socket is bound)."""
        self._loop = asyncio.get_running_loop()
        if self.rate_mbit is not None:
            rate = self.rate_mbit * 1e6 / 8
            self.links = (_Link(self._loop, rate, self.rtt), _Link(self._loop, rate, self.rtt))
        self._server = await self._loop.create_server(
            self._accept, self._host, self._port, backlog=BACKLOG, reuse_address=True
        )

    def _accept(self) -> _Side:
        conn = _Connection(self)
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

    async def aclose(self) -> None:
        """Stop listening and drop every connection."""
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

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class ThreadedLatencyProxy(BackgroundServer):
    """A :class:`LatencyProxy` on its own event loop in a daemon thread, for sync code.

    Same arguments as :class:`LatencyProxy`; use as a context manager or ``start()`` /
    ``stop()``.
    """

    def __init__(self, upstream: tuple[str, int], **kwargs: Any) -> None:
        self._proxy = LatencyProxy(upstream, **kwargs)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def proxy(self) -> LatencyProxy:
        return self._proxy

    @property
    def port(self) -> int:
        return self._proxy.port

    @property
    def url(self) -> str:
        return self._proxy.url

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._proxy.start(), self._loop).result(10)

    def stats(self) -> ProxyStats:
        """A snapshot of the counters."""

        async def snapshot() -> ProxyStats:
            return ProxyStats(**asdict(self._proxy.stats))

        return asyncio.run_coroutine_threadsafe(snapshot(), self._loop).result(10)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            asyncio.run_coroutine_threadsafe(self._proxy.aclose(), self._loop).result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()


def _nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


async def _serve(args: argparse.Namespace) -> None:
    listen = _host_port(args.listen)
    proxy = LatencyProxy(
        _host_port(args.upstream),
        rtt=args.rtt_ms / 1000,
        window=args.window,
        rate_mbit=args.rate_mbit,
        host=listen[0],
        port=listen[1],
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with proxy:
        print(f"LISTENING {proxy.port}", flush=True)
        if args.control:
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
    try:
        ensure_loopback(_host_port(args.upstream)[0])
        ensure_loopback(_host_port(args.listen)[0])
    except ValueError as exc:
        parser.error(str(exc))
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
