"""What the latency proxy counts: HTTP/1.x requests by method, in the client's byte stream.

A measure of what a client sent, independent of its own bookkeeping: the bytes going
upstream are parsed just enough (request lines, ``Content-Length``, chunked bodies) to count
requests; a stream that stops looking like HTTP/1.x is counted as unparsed and forwarded all
the same.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["LatencyProxyStats", "RequestCounter"]


@dataclass
class LatencyProxyStats:
    """What a :class:`~aiomodelkit.testing.LatencyProxy` counted since start (or the last reset).

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
        """Requests of every method."""
        return sum(self.requests.values())

    def as_dict(self) -> dict[str, Any]:
        """The counters and ``total_requests``, as plain JSON-ready values."""
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
