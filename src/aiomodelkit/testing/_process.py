"""Subprocess plumbing shared by the test-server helpers: free ports, output, stopping."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
from typing import IO, TYPE_CHECKING, Self

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["BackgroundServer", "free_port", "port_is_free", "read_tail", "stop_process"]


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS considers free on ``host`` right now (it may be taken a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``host:port`` can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def read_tail(output: IO[bytes], limit: int = 8192) -> str:
    """The last ``limit`` bytes a server wrote to its output file, decoded for an error."""
    with contextlib.suppress(OSError, ValueError):
        output.flush()
        size = output.seek(0, 2)
        output.seek(max(0, size - limit))
        return output.read().decode(errors="replace")
    return ""


def stop_process(
    process: subprocess.Popen[bytes], output: IO[bytes] | None = None, *, grace: float = 10.0
) -> None:
    """Stop a server: SIGTERM, wait up to ``grace`` seconds, then SIGKILL; close its output."""
    try:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        if output is not None:
            output.close()


class BackgroundServer:
    """A server that runs in the background between ``start()`` and ``stop()``.

    Subclasses define both; ``with server:`` starts it and always stops it.
    """

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
