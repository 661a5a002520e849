"""Run moto's S3 server as a subprocess on a free loopback port, for your own tests.

moto runs in its own process rather than in a thread of the test process: it is GIL-bound
and a subprocess serves ~50 % more requests per second. Only the stdlib is used here, so the
helper works without an event loop.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from typing import IO

from ._process import BackgroundServer, free_port, read_tail, stop_process

__all__ = ["MotoServer"]

_HOST = "127.0.0.1"
# Loopback only: never send these requests through an http_proxy the developer has set.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class MotoServer(BackgroundServer):
    """A moto S3 server on ``127.0.0.1``, started on entry and stopped on exit.

    moto accepts any credentials and keeps everything in memory; :meth:`reset` empties it.

    Args:
        startup_timeout: seconds to wait for the server to answer.

    Example:
        >>> from aiomodelkit.stores import S3Store
        >>> with MotoServer() as moto:
        ...     moto.create_bucket("models")
        ...     store = S3Store("models", endpoint_url=moto.endpoint_url,
        ...                     aws_access_key_id="testing", aws_secret_access_key="testing",
        ...                     region_name="us-east-1")
    """

    def __init__(self, *, startup_timeout: float = 30.0) -> None:
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None
        self._finalizer: weakref.finalize[..., MotoServer] | None = None
        self._port: int | None = None

    def __repr__(self) -> str:
        state = self.endpoint_url if self._port is not None else "stopped"
        return f"MotoServer({state})"

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT``, for ``endpoint_url`` or ``AWS_ENDPOINT_URL``."""
        if self._port is None:
            raise RuntimeError("the moto server is not running; use it as a context manager")
        return f"http://{_HOST}:{self._port}"

    def start(self) -> None:
        """Start the server and wait until it answers.

        Raises:
            RuntimeError: the server did not come up (the message holds its output).
        """
        if self._process is not None:
            raise RuntimeError("the moto server is already running")
        # Another process may take the port between our probe and moto's bind: try again.
        for attempt in range(3):
            try:
                self._launch(free_port(_HOST))
                return
            except _PortTakenError:
                if attempt == 2:
                    raise RuntimeError("moto could not bind a free port after 3 tries") from None

    def _launch(self, port: int) -> None:
        # A file, not a pipe: nobody drains a pipe while tests run, and a full one blocks moto.
        output = tempfile.TemporaryFile()  # closed by stop_process()
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", _HOST, "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        self._process, self._output, self._port = process, output, port
        # Runs at interpreter exit too, so the server never outlives the test run.
        self._finalizer = weakref.finalize(self, stop_process, process, output)
        deadline = time.monotonic() + self._startup_timeout
        while True:
            if process.poll() is not None:
                tail = read_tail(output)
                self.stop()
                if "Address already in use" in tail:
                    raise _PortTakenError
                raise RuntimeError(f"moto server exited with {process.returncode}:\n{tail}")
            try:
                with _OPENER.open(f"{self.endpoint_url}/moto-api/", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                tail = read_tail(output)
                self.stop()
                raise RuntimeError(
                    f"moto server not ready after {self._startup_timeout} s:\n{tail}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (terminate, then kill); idempotent."""
        if self._finalizer is not None:
            self._finalizer()
        self._process = self._output = self._finalizer = None
        self._port = None

    def reset(self) -> None:
        """Delete every bucket and object."""
        self._request("POST", "/moto-api/reset")

    def create_bucket(self, name: str) -> None:
        """Create a bucket (moto takes an unsigned path-style PUT); existing buckets are kept."""
        try:
            self._request("PUT", f"/{name}")
        except urllib.error.HTTPError as exc:
            if exc.code != 409:  # BucketAlreadyOwnedByYou
                raise

    def _request(self, method: str, path: str) -> None:
        request = urllib.request.Request(f"{self.endpoint_url}{path}", method=method, data=b"")
        with _OPENER.open(request, timeout=10) as resp:
            resp.read()


class _PortTakenError(Exception):
    """The free port we picked was taken before the server bound it."""
