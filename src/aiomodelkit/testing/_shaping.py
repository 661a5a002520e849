"""The latency proxy's traffic shaping: one-way delay, a window per direction, a shared link.

Every accepted client connection is a :class:`Connection` with its own upstream connection;
each socket is a :class:`Side` (a buffered protocol); each direction is a :class:`Pipe` that
stamps chunks with their release time, bounds the bytes in flight (the window, credited back
``rtt / 2`` after delivery) and delivers in order; with a bandwidth cap, the pipes of one
direction share a :class:`Link`, served round-robin.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
from typing import TYPE_CHECKING, Protocol

from ._httpcount import RequestCounter

if TYPE_CHECKING:
    from ._httpcount import LatencyProxyStats

__all__ = ["MAX_CHUNK", "MAX_READ", "Connection", "Link", "Pipe", "ProxyState", "Side"]

#: Largest chunk the proxy stamps at once (a bigger read is split).
MAX_CHUNK = 64 * 1024
#: Largest read from a socket (asyncio's own limit), never more than the window's room.
MAX_READ = 256 * 1024
#: Stop delivering while the destination's buffer holds more than this (then wait for it).
_WRITE_HIGH_WATER = 256 * 1024

_EOF = b""  # the sentinel chunk: a half-close


class ProxyState(Protocol):
    """What the shaping reads from its proxy (:class:`~._latency.LatencyProxy` has it)."""

    upstream: tuple[str, int]
    rtt: float
    window: int
    stats: LatencyProxyStats
    connections: set[Connection]
    links: tuple[Link | None, Link | None]

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop the proxy runs on."""
        ...


class Link:
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
        self.active: collections.deque[Pipe] = collections.deque()
        self.timer: asyncio.Handle | None = None

    def enqueue(self, pipe: Pipe) -> None:
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


class Pipe:
    """One direction of one connection: delays, windows and delivers chunks, in order."""

    def __init__(
        self,
        conn: Connection,
        link: Link | None,
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


class Side(asyncio.BufferedProtocol):
    """The protocol of one socket (client or upstream): feeds one pipe, drains the other.

    A buffered protocol, so that no read takes more than the window has room for.
    """

    def __init__(self, conn: Connection, outgoing: Pipe, incoming: Pipe) -> None:
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


class Connection:
    """A client connection and its own upstream connection."""

    def __init__(self, proxy: ProxyState) -> None:
        self.proxy = proxy
        now = proxy.loop.time()
        self.counter = RequestCounter(proxy.stats.requests)
        up_link, down_link = proxy.links
        # The handshake: the client's first bytes leave no earlier than one RTT after accept.
        self.up = Pipe(self, up_link, now + proxy.rtt, upward=True)
        self.down = Pipe(self, down_link, now, upward=False)
        self.client = Side(self, self.up, self.down)
        self.upstream: Side | None = None
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

    def _make_upstream(self) -> Side:
        self.upstream = Side(self, self.down, self.up)
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


def _nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
