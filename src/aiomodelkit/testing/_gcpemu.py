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

from typing import TYPE_CHECKING

from ._gcsadmin import GCSTestServer
from ._process import HOST, Launch, answers_ok, child_env, installed_command

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["GcpStorageEmulator", "gcp_storage_emulator_script"]


def gcp_storage_emulator_script() -> Path:
    """The ``gcp-storage-emulator`` command of the installed package (beside the interpreter).

    Raises:
        FileNotFoundError: gcp-storage-emulator is not installed.
    """
    return installed_command("gcp-storage-emulator", pip="gcp-storage-emulator==2026.7.19")


class GcpStorageEmulator(GCSTestServer):
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
    # In memory, it writes nothing; run it where stray files would do no harm.
    _temporary_prefix = "gcp-storage-emulator-"
    _reset_route = ("GET", "/wipe")

    def _launch(self, port: int) -> Launch:
        script = gcp_storage_emulator_script()
        workdir = self._temporary_dir()
        argv = [
            str(script), "start", "--host", HOST, "--port", str(port), "--in-memory", "--quiet"
        ]  # fmt: skip
        return Launch(argv, port, cwd=workdir, env=child_env(HOME=str(workdir)))

    def _is_ready(self) -> bool:
        return answers_ok(f"{self.endpoint_url}/storage/v1/b")
