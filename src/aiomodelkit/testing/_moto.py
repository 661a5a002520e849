"""Run moto's S3 server as a subprocess on a free loopback port, for your own tests.

moto runs in its own process rather than in a thread of the test process: it is GIL-bound
and a subprocess serves ~50 % more requests per second. Only the stdlib is used here, so the
helper works without an event loop.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

from ._process import HOST, OPENER, Launch, SubprocessServer, answers_ok, create_with_put

__all__ = ["MotoServer"]


class MotoServer(SubprocessServer):
    """A moto S3 server on ``127.0.0.1``, started on entry and stopped on exit.

    moto accepts any credentials and keeps everything in memory; :meth:`reset` empties it.
    :attr:`endpoint_url` (``http://127.0.0.1:PORT``) is for ``endpoint_url`` or
    ``AWS_ENDPOINT_URL``.

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

    name = "moto server"

    def _launch(self, port: int) -> Launch:
        return Launch([sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)], port)

    def _is_ready(self) -> bool:
        return answers_ok(f"{self.endpoint_url}/moto-api/")

    def reset(self) -> None:
        """Delete every bucket and object."""
        self._request("POST", "/moto-api/reset")

    def create_bucket(self, name: str) -> None:
        """Create a bucket (moto takes an unsigned path-style PUT); existing buckets are kept."""
        create_with_put(f"{self.endpoint_url}/{name}")  # 409: BucketAlreadyOwnedByYou

    def _request(self, method: str, path: str) -> None:
        request = urllib.request.Request(f"{self.endpoint_url}{path}", method=method, data=b"")
        with OPENER.open(request, timeout=10) as resp:
            resp.read()
