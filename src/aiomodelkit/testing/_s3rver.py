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

from pathlib import Path

from ._npm import node_tools, npm_install
from ._process import HOST, Launch, answers_ok, create_with_put
from ._s3admin import S3TestServer

__all__ = ["S3RVER_VERSION", "S3rverServer"]

#: The s3rver release the helper installs.
S3RVER_VERSION = "3.7.1"
#: The server's script inside the npm prefix.
_ENTRY = Path("node_modules", "s3rver", "bin", "s3rver.js")


class S3rverServer(S3TestServer):
    """s3rver on ``127.0.0.1``, data in a temporary directory, started on entry, stopped on exit.

    s3rver knows one identity, ``S3RVER`` / ``S3RVER`` (:attr:`access_key`,
    :attr:`secret_key`); use it as :class:`~aiomodelkit.testing._s3admin.S3TestServer` shows.

    Args:
        cache_dir: where npm packages are installed (default: ``_npm.default_npm_cache()``).
        legacy_openssl: start Node.js with ``--openssl-legacy-provider``; turn it off only
            to show why it is needed (truncated listings then fail on Node.js >= 17).
        startup_timeout: seconds to wait for the server to answer, per start attempt (the
            first start also waits for ``npm install``, which has its own limit).
    """

    name = "s3rver"
    _temporary_prefix = "s3rver-"
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
        workdir = self._temporary_dir()
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

    def create_bucket(self, name: str) -> None:
        """Create a bucket (s3rver takes an unsigned ``PUT``); an existing bucket is kept."""
        create_with_put(f"{self.endpoint_url}/{name}")  # 409: BucketAlreadyExists
