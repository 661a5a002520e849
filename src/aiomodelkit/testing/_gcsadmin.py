"""What the GCS emulators share: a base class with bucket creation and reset, sent synchronously.

fake-gcs-server and gcp-storage-emulator both speak the JSON API for buckets
(``POST /storage/v1/b``) and each has a request of its own that deletes everything. Only
the stdlib sends them, through the helpers' proxy-free opener, to loopback only.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import ClassVar

from ._process import OPENER, SubprocessServer

__all__ = ["GCSTestServer"]


class GCSTestServer(SubprocessServer):
    """A GCS emulator: :meth:`create_bucket` and :meth:`reset` over HTTP, no credentials.

    A subclass gives the command line (:meth:`_launch`), the health check
    (:meth:`_is_ready`) and the emulator's reset request (:attr:`_reset_route`).
    """

    #: The request that deletes every bucket and object: method and path.
    _reset_route: ClassVar[tuple[str, str]]

    def reset(self) -> None:
        """Delete every bucket and object."""
        method, path = self._reset_route
        self._request(method, path)

    def create_bucket(self, name: str) -> None:
        """Create a bucket; an existing one is kept."""
        try:
            self._request("POST", "/storage/v1/b?project=test", {"name": name})
        except urllib.error.HTTPError as exc:
            if exc.code != 409:
                raise

    def _request(self, method: str, path: str, payload: object = None) -> None:
        # A JSON body, or an empty one for a POST without payload; a GET carries none.
        if payload is not None:
            data: bytes | None = json.dumps(payload).encode()
        else:
            data = None if method == "GET" else b""
        request = urllib.request.Request(
            f"{self.endpoint_url}{path}",
            method=method,
            data=data,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        with OPENER.open(request, timeout=10) as response:
            response.read()
