"""What the test-server helpers share: free ports, the start / health-poll / retry loop, stopping.

Every server helper is a :class:`BackgroundServer` (``start()`` / ``stop()``, or ``with``).
The ones that run a subprocess derive from :class:`SubprocessServer`, which owns the loop
they all need: pick a free loopback port, start the process with its output in a file, poll
a health check until it answers, and try again on a fresh port when another process took the
port between the probe and the server's bind. A subclass gives a name, the command for a
port (:meth:`SubprocessServer._launch`) and a health check
(:meth:`SubprocessServer._is_ready`).
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, ClassVar, Self

if TYPE_CHECKING:
    from pathlib import Path
    from types import TracebackType

__all__ = [
    "HOST",
    "OPENER",
    "BackgroundServer",
    "Launch",
    "SubprocessServer",
    "answers_ok",
    "free_port",
    "port_is_free",
    "read_tail",
    "stop_process",
]

#: Every helper listens on this address only.
HOST = "127.0.0.1"
#: Loopback only: never send the helpers' own requests through an ``http_proxy`` the
#: developer has set.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port(host: str = HOST) -> int:
    """A port the OS considers free on ``host`` right now (it may be taken a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int, host: str = HOST) -> bool:
    """Whether ``host:port`` can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def answers_ok(url: str) -> bool:
    """Whether a GET of ``url`` answers 200 within 2 s (a health check)."""
    try:
        with OPENER.open(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


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
        """Start the server; returns once it serves."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the server; idempotent."""
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


@dataclass(frozen=True, slots=True)
class Launch:
    """How to start one attempt of a subprocess server.

    Attributes:
        argv: the command.
        port: the port clients reach (:attr:`SubprocessServer.endpoint_url`).
        cwd: the working directory (default: ours).
        env: the environment (default: ours).
        output: the file for its stdout and stderr (default: an anonymous temporary file;
            a file, not a pipe: nobody drains a pipe while tests run, and a full one blocks
            the server).
    """

    argv: list[str]
    port: int
    cwd: Path | None = None
    env: dict[str, str] | None = None
    output: IO[bytes] | None = field(default=None, repr=False)


class _AttemptError(Exception):
    """One start attempt failed; ``retry``: worth another attempt on a fresh port."""

    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


class SubprocessServer(BackgroundServer):
    """A server run as a subprocess on ``127.0.0.1``, stopped on :meth:`stop` or at exit.

    Subclasses set :attr:`name` and implement :meth:`_launch` and :meth:`_is_ready`.

    Args:
        startup_timeout: seconds to wait, per attempt, for the health check to pass.
    """

    #: The server's name in messages.
    name: ClassVar[str] = "server"
    #: Seconds between two health checks.
    _poll_interval: ClassVar[float] = 0.05
    #: Seconds between SIGTERM and SIGKILL on stop.
    _stop_grace: ClassVar[float] = 10.0
    #: Start attempts, each on a fresh port.
    _attempts: ClassVar[int] = 3

    def __init__(self, *, startup_timeout: float = 30.0) -> None:
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[..., SubprocessServer] | None = None
        self._port: int | None = None

    def __repr__(self) -> str:
        state = self.endpoint_url if self._port is not None else "stopped"
        return f"{type(self).__name__}({state})"

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the running server."""
        if self._port is None:
            raise RuntimeError(f"{self.name} is not running; use it as a context manager")
        return f"http://{HOST}:{self._port}"

    # -- what a subclass gives ----------------------------------------------------------------

    def _pick_port(self) -> int:
        """A port to try (or, for servers with several listeners, the base of a block)."""
        return free_port(HOST)

    def _launch(self, port: int) -> Launch:
        """The command (and its surroundings) for one attempt on ``port``."""
        raise NotImplementedError

    def _is_ready(self) -> bool:
        """The health check: True once the server answers as it should."""
        raise NotImplementedError

    def _worth_retrying(self, output_tail: str, *, exited: bool) -> bool:
        """Whether a failed attempt may succeed on another port: by default, a clash."""
        return exited and "address already in use" in output_tail.lower()

    # -- the loop, written once -----------------------------------------------------------------

    def start(self) -> None:
        """Start the server and wait until its health check passes.

        Raises:
            RuntimeError: it is already running, or did not come up (the message holds the
                end of its output).
        """
        if self._process is not None:
            raise RuntimeError(f"{self.name} is already running")
        failures: list[str] = []
        for _ in range(self._attempts):
            try:
                self._attempt(self._pick_port())
                return
            except _AttemptError as exc:
                if not exc.retry:
                    raise RuntimeError(str(exc)) from None
                failures.append(str(exc))
        raise RuntimeError(
            f"{self.name} did not start in {self._attempts} attempts:\n" + "\n---\n".join(failures)
        )

    def _attempt(self, port: int) -> None:
        launch = self._launch(port)
        output = launch.output if launch.output is not None else tempfile.TemporaryFile()
        process = subprocess.Popen(
            launch.argv,
            cwd=launch.cwd,
            env=launch.env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        self._process, self._port = process, launch.port
        # Runs at interpreter exit too, so the server never outlives the test run.
        self._finalizer = weakref.finalize(
            self, stop_process, process, output, grace=self._stop_grace
        )
        try:
            self._wait_ready(process, output)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, process: subprocess.Popen[bytes], output: IO[bytes]) -> None:
        deadline = time.monotonic() + self._startup_timeout
        while True:
            if process.poll() is not None:
                tail = read_tail(output)
                raise _AttemptError(
                    f"{self.name} exited with {process.returncode}:\n{tail}",
                    retry=self._worth_retrying(tail, exited=True),
                )
            if self._is_ready():
                return
            if time.monotonic() > deadline:
                tail = read_tail(output)
                raise _AttemptError(
                    f"{self.name} not ready after {self._startup_timeout} s:\n{tail}",
                    retry=self._worth_retrying(tail, exited=False),
                )
            time.sleep(self._poll_interval)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after a grace period); idempotent."""
        if self._finalizer is not None:
            self._finalizer()
        self._process = self._finalizer = None
        self._port = None
