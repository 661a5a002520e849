"""Run s3rver, a fast S3 server from npm, on a free loopback port, for compatibility tests.

s3rver 3.7.1 is unmaintained (its successor fork needs Node.js 24) and has known gaps:
it ignores ``If-None-Match`` / ``If-Match`` on writes and accepts any secret; a suffix
range ``-n`` returns bytes ``0..n``; multipart objects get a plain MD5 ETag without ``-N``
and AbortMultipartUpload is refused; keys with ``//`` are refused; listings come in
directory-walk order, not byte order, so a listing of several pages loses and repeats keys;
and on Node.js >= 17 every truncated ListObjectsV2 page is a 500 (its continuation token
is DES-encrypted) unless Node.js runs with ``--openssl-legacy-provider``, which this helper
does. The package is installed from npm on first use (see ``_npm``); only the stdlib runs
the server, so the helper works without an event loop.
"""

from __future__ import annotations

import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from ._npm import node_tools, npm_install
from ._process import HOST, OPENER, Launch, SubprocessServer, answers_ok

__all__ = ["S3RVER_VERSION", "S3rverServer"]

#: The s3rver release the helper installs.
S3RVER_VERSION = "3.7.1"
#: The server's script inside the npm prefix.
_ENTRY = Path("node_modules", "s3rver", "bin", "s3rver.js")


class S3rverServer(SubprocessServer):
    """s3rver on ``127.0.0.1``, data in a temporary directory, started on entry, stopped on exit.

    s3rver knows one identity, ``S3RVER`` / ``S3RVER`` (:attr:`access_key`,
    :attr:`secret_key`). There is no reset: give each test a bucket or a prefix of its own.

    Args:
        cache_dir: where npm packages are installed (default: ``_npm.default_npm_cache()``).
        legacy_openssl: start Node.js with ``--openssl-legacy-provider``; turn it off only
            to show why it is needed (truncated listings then fail on Node.js >= 17).
        startup_timeout: seconds to wait for the server to answer, per start attempt (the
            first start also waits for ``npm install``, which has its own limit).

    Example:
        >>> from aiomodelkit.stores import S3Store
        >>> with S3rverServer() as s3rver:  # doctest: +SKIP
        ...     s3rver.create_bucket("models")
        ...     store = S3Store("models", endpoint_url=s3rver.endpoint_url,
        ...                     aws_access_key_id=s3rver.access_key,
        ...                     aws_secret_access_key=s3rver.secret_key,
        ...                     region_name="us-east-1")
    """

    name = "s3rver"
    _stop_grace = 5.0
    #: The only credentials s3rver accepts.
    access_key = "S3RVER"
    secret_key = "S3RVER"

    def __init__(
        self,
        *,
        cache_dir: Path | None = None,
        legacy_openssl: bool = True,
        startup_timeout: float = 30.0,
    ) -> None:
        super().__init__(startup_timeout=startup_timeout)
        self._cache_dir = cache_dir
        self._legacy_openssl = legacy_openssl
        self._entry: Path | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None

    def start(self) -> None:
        """Install s3rver if needed, then start it.

        Raises:
            NodeMissingError: ``node`` or ``npm`` is not on ``PATH``.
            RuntimeError: the install failed, or the server did not come up.
        """
        self._entry = npm_install("s3rver", S3RVER_VERSION, cache_dir=self._cache_dir) / _ENTRY
        super().start()

    def _launch(self, port: int) -> Launch:
        node, _ = node_tools()
        assert self._entry is not None, "start() installs s3rver first"
        if self._workdir is None:
            self._workdir = tempfile.TemporaryDirectory(prefix="s3rver-")
        workdir = Path(self._workdir.name)
        argv = [node, str(self._entry), "-d", str(workdir / "data"), "-a", HOST, "-p", str(port)]
        argv.append("-s")  # silent: no log line per request
        # The legacy provider brings back DES, which s3rver uses for continuation tokens:
        # without it every truncated ListObjectsV2 page is a 500 on Node.js >= 17.
        # A minimal environment otherwise: node needs nothing else.
        env = {"NODE_OPTIONS": "--openssl-legacy-provider"} if self._legacy_openssl else {}
        return Launch(argv, port, cwd=workdir, env=env)

    def _is_ready(self) -> bool:
        # ListBuckets: s3rver answers an unsigned one with 200.
        return answers_ok(f"{self.endpoint_url}/")

    def stop(self) -> None:
        """Stop the server and remove its data; idempotent."""
        try:
            super().stop()
        finally:
            workdir, self._workdir = self._workdir, None
            if workdir is not None:
                workdir.cleanup()

    def create_bucket(self, name: str) -> None:
        """Create a bucket (s3rver takes an unsigned ``PUT``); an existing bucket is kept."""
        request = urllib.request.Request(f"{self.endpoint_url}/{name}", method="PUT", data=b"")
        try:
            with OPENER.open(request, timeout=10) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code != 409:  # BucketAlreadyExists
                raise
