"""Run gcp-storage-emulator (a GCS emulator from PyPI) on a free loopback port, for
compatibility tests only.

Use :class:`~aiomodelkit.testing.FakeGCSServer` for anything else: this one is a
single-threaded ``http.server`` speaking HTTP/1.0 with a listen backlog of 5, so more than
~4 concurrent connections stall for 1-7 s on SYN retransmits. Known gaps besides:
``ifGenerationMatch`` is ignored (conditional writes always succeed), media downloads carry
no ``x-goog-generation`` (nor ``etag``, nor ``x-goog-hash`` on ranges), ``maxResults`` is
ignored (one unpaged listing), a suffix range ``-n`` answers 200 with the whole body, and a
range starting past the end answers an empty 206 instead of 416. Only the stdlib is used,
so the helper works without an event loop.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from ._process import HOST, OPENER, Launch, SubprocessServer, answers_ok

__all__ = ["GcpStorageEmulator", "gcp_storage_emulator_script"]


def gcp_storage_emulator_script() -> Path:
    """The ``gcp-storage-emulator`` command of the installed package (beside the interpreter).

    Raises:
        FileNotFoundError: gcp-storage-emulator is not installed.
    """
    beside = Path(sys.executable).parent / "gcp-storage-emulator"
    if beside.is_file():
        return beside
    found = shutil.which("gcp-storage-emulator")
    if found is None:
        raise FileNotFoundError(
            "the 'gcp-storage-emulator' command is missing: "
            "pip install gcp-storage-emulator==2026.7.19"
        )
    return Path(found)


class GcpStorageEmulator(SubprocessServer):
    """gcp-storage-emulator on ``127.0.0.1``, in memory, started on entry, stopped on exit.

    Point a store at it with ``GCSStore(bucket, api_root=server.endpoint_url)``, and keep
    its connections at 4 or fewer (``StoreOptions(max_connections=4)`` and the same for
    downloads): the server accepts one connection at a time with a backlog of 5.

    Args:
        startup_timeout: seconds to wait for the server to answer.

    Example:
        >>> from aiomodelkit.stores import GCSStore, StoreOptions
        >>> with GcpStorageEmulator() as gcs:  # doctest: +SKIP
        ...     gcs.create_bucket("models")
        ...     store = GCSStore("models", api_root=gcs.endpoint_url,
        ...                      options=StoreOptions(max_connections=4))
    """

    name = "gcp-storage-emulator"
    _stop_grace = 5.0

    def __init__(self, *, startup_timeout: float = 30.0) -> None:
        super().__init__(startup_timeout=startup_timeout)
        self._workdir: tempfile.TemporaryDirectory[str] | None = None

    def _launch(self, port: int) -> Launch:
        script = gcp_storage_emulator_script()
        if self._workdir is None:
            # In memory, it writes nothing; run it where stray files would do no harm.
            self._workdir = tempfile.TemporaryDirectory(prefix="gcp-storage-emulator-")
        workdir = Path(self._workdir.name)
        argv = [
            str(script), "start", "--host", HOST, "--port", str(port), "--in-memory", "--quiet"
        ]  # fmt: skip
        env = {**os.environ, "HOME": str(workdir)}  # noqa: TID251 - a child's env, not a setting
        return Launch(argv, port, cwd=workdir, env=env)

    def _is_ready(self) -> bool:
        return answers_ok(f"{self.endpoint_url}/storage/v1/b")

    def stop(self) -> None:
        """Stop the server and remove its working directory; idempotent."""
        try:
            super().stop()
        finally:
            workdir, self._workdir = self._workdir, None
            if workdir is not None:
                workdir.cleanup()

    def reset(self) -> None:
        """Delete every bucket and object."""
        self._request("GET", "/wipe")

    def create_bucket(self, name: str) -> None:
        """Create a bucket; an existing one is kept."""
        try:
            self._request("POST", "/storage/v1/b?project=test", {"name": name})
        except urllib.error.HTTPError as exc:
            if exc.code != 409:
                raise

    def _request(self, method: str, path: str, payload: object = None) -> None:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(
            f"{self.endpoint_url}{path}",
            method=method,
            data=data,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        with OPENER.open(request, timeout=10) as response:
            response.read()
