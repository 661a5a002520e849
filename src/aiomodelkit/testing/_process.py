"""What the test-server helpers share: free ports, the start / health-poll / retry loop, stopping.

Every server helper is a :class:`BackgroundServer` (``start()`` / ``stop()``, or ``with``).
The ones that run a subprocess derive from :class:`SubprocessServer`, which owns the loop
they all need: pick a free loopback port, start the process with its output in a file, poll
a health check until it answers, and try again on a fresh port when another process took the
port between the probe and the server's bind. A subclass gives a name, the command for a
port (:meth:`SubprocessServer._launch`) and a health check
(:meth:`SubprocessServer._is_ready`); one that needs a scratch directory asks for
:meth:`SubprocessServer._temporary_dir`, which :meth:`SubprocessServer.stop` removes once the
process is gone. :func:`installed_command` and :func:`child_env` find a server's command and
build its environment; :func:`answers_ok`, :func:`answers` and :func:`create_with_put` are the
few requests the helpers send.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, ClassVar, Self

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import TracebackType

__all__ = [
    "HOST",
    "OPENER",
    "BackgroundServer",
    "Launch",
    "SubprocessServer",
    "answers",
    "answers_ok",
    "child_env",
    "create_with_put",
    "free_port",
    "installed_command",
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


def create_with_put(
    url: str, *, headers: Mapping[str, str] | None = None, exists: tuple[bytes, ...] = ()
) -> None:
    """Create a bucket or container with an empty ``PUT``; one that exists already is kept.

    Args:
        url: where to ``PUT`` (with its signature in the query, if it needs one).
        headers: request headers (a signature, if it needs one).
        exists: error codes that also mean "it exists already" when an error body holds
            one (a 409 always does).

    Raises:
        urllib.error.HTTPError: the server refused for another reason.
    """
    request = urllib.request.Request(url, method="PUT", data=b"", headers=dict(headers or {}))
    try:
        with OPENER.open(request, timeout=10) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        body = exc.read() if exists else b""
        exc.close()
        if exc.code != 409 and not any(code in body for code in exists):
            raise


def installed_command(name: str, *, pip: str) -> Path:
    """The command ``name`` a wheel installed beside the interpreter, else the first on ``PATH``.

    Args:
        name: the command (a wheel's script or bundled binary).
        pip: what to ``pip install`` to get it (named in the error).

    Raises:
        FileNotFoundError: the command is in neither place.
    """
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return beside
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"the {name!r} command is missing: pip install {pip}")
    return Path(found)


def child_env(**overrides: str) -> dict[str, str]:
    """Our environment with ``overrides`` on top, for a server that needs it.

    A Python child needs its locale, ``PATH``...; a server that needs nothing of ours gets a
    minimal environment of its own instead, so no variable of the developer's changes it.
    """
    return {**os.environ, **overrides}  # noqa: TID251 - a child's env, not a setting


def answers(url: str) -> bool:
    """Whether ``url`` gives any HTTP answer within 2 s (a 400 or 403 counts: it serves)."""
    try:
        with OPENER.open(url, timeout=2) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        exc.close()
    except (urllib.error.URLError, OSError):
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

    Subclasses set :attr:`name` and implement :meth:`_launch` and :meth:`_is_ready`. One
    that needs a working directory takes :meth:`_temporary_dir` (named after
    :attr:`_temporary_prefix`): made on first use, removed by :meth:`stop` after the process.

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
    #: The name prefix of the directory :meth:`_temporary_dir` makes.
    _temporary_prefix: ClassVar[str] = "server-"

    def __init__(self, *, startup_timeout: float = 30.0) -> None:
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[..., SubprocessServer] | None = None
        self._port: int | None = None
        self._temporary: tempfile.TemporaryDirectory[str] | None = None

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

    def _temporary_dir(self) -> Path:
        """The server's own temporary directory, made on first use; :meth:`stop` removes it.

        A failed attempt stops the server, so each attempt gets a fresh one.
        """
        if self._temporary is None:
            self._temporary = tempfile.TemporaryDirectory(prefix=self._temporary_prefix)
        return Path(self._temporary.name)

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
        """Stop the server (SIGTERM, then SIGKILL after a grace period); idempotent.

        Its temporary directory (:meth:`_temporary_dir`), if any, is removed after the process
        is gone.
        """
        try:
            if self._finalizer is not None:
                self._finalizer()
            self._process = self._finalizer = None
            self._port = None
        finally:
            # Only once the process is gone: it may write there until it exits.
            temporary, self._temporary = self._temporary, None
            if temporary is not None:
                temporary.cleanup()
