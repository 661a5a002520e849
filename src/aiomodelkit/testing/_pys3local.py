"""Run pys3local, a small S3 server from PyPI, on a free loopback port, for compatibility tests.

``pys3local==0.2.1`` (FastAPI on uvicorn) serves a local directory. Known gaps: no
multipart upload (``CreateMultipartUpload`` is a bare 400), ``Range`` is ignored (200 and
the whole body, no ``Content-Range``), ``If-None-Match`` / ``If-Match`` on writes are
ignored, a truncated ListObjectsV2 page carries a v1 ``NextMarker`` instead of a
continuation token, and keys are files (``a`` and ``a/b`` cannot both exist). Signatures
are checked.

It keeps a metadata database in ``~/.config/pys3local``, whatever the data directory: the
helper runs it with ``HOME`` in a temporary directory of its own, so no two servers (and
no developer's own pys3local) share it. Only the stdlib runs the server (botocore signs
:meth:`PyS3LocalServer.create_bucket`).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from . import _s3admin
from ._process import HOST, Launch, SubprocessServer

__all__ = ["PyS3LocalServer", "pys3local_script"]


def pys3local_script() -> Path:
    """The ``pys3local`` command of the installed package (next to the interpreter).

    Raises:
        FileNotFoundError: pys3local is not installed.
    """
    beside = Path(sys.executable).parent / "pys3local"
    if beside.is_file():
        return beside
    found = shutil.which("pys3local")
    if found is None:
        raise FileNotFoundError("the 'pys3local' command is missing: pip install pys3local==0.2.1")
    return Path(found)


class PyS3LocalServer(SubprocessServer):
    """pys3local on ``127.0.0.1`` over a temporary directory, started on entry, stopped on exit.

    The one identity is ``test`` / ``test`` (:attr:`access_key`, :attr:`secret_key`). There
    is no reset: give each test a bucket or a prefix of its own.

    Args:
        startup_timeout: seconds to wait for the server to answer.

    Example:
        >>> from aiomodelkit.stores import S3Store
        >>> with PyS3LocalServer() as pys3:  # doctest: +SKIP
        ...     pys3.create_bucket("models")
        ...     store = S3Store("models", endpoint_url=pys3.endpoint_url,
        ...                     aws_access_key_id=pys3.access_key,
        ...                     aws_secret_access_key=pys3.secret_key,
        ...                     region_name="us-east-1")
    """

    name = "pys3local"
    _stop_grace = 5.0
    access_key = "test"
    secret_key = "test"

    def __init__(self, *, startup_timeout: float = 30.0) -> None:
        super().__init__(startup_timeout=startup_timeout)
        self._workdir: tempfile.TemporaryDirectory[str] | None = None

    def _launch(self, port: int) -> Launch:
        script = pys3local_script()
        if self._workdir is None:
            self._workdir = tempfile.TemporaryDirectory(prefix="pys3local-")
        workdir = Path(self._workdir.name)
        argv = [
            str(script), "serve",
            "--path", str(workdir / "data"),
            # Always an address: ":PORT" (its default form) binds 0.0.0.0.
            "--listen", f"{HOST}:{port}",
            "--access-key-id", self.access_key,
            "--secret-access-key", self.secret_key,
            # Without it only a bucket named "default" may exist.
            "--allow-bucket-creation",
        ]  # fmt: skip
        # Our environment (a Python child needs its locale, PATH...), with HOME in the
        # workdir: pys3local keeps its metadata database under ~/.config.
        env = {**os.environ, "HOME": str(workdir)}  # noqa: TID251 - a child's env, not a setting
        return Launch(argv, port, cwd=workdir, env=env)

    def _is_ready(self) -> bool:
        # Unsigned requests get 403: any answer means it serves.
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
        """Create a bucket (a signed ``PUT``); an existing one is kept.

        Needs botocore (the ``s3`` extra) for the signature.
        """
        _s3admin.create_bucket(
            self.endpoint_url, name, access_key=self.access_key, secret_key=self.secret_key
        )
