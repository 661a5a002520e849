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

from typing import TYPE_CHECKING

from ._process import HOST, Launch, child_env, installed_command
from ._s3admin import S3TestServer

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["PyS3LocalServer", "pys3local_script"]


def pys3local_script() -> Path:
    """The ``pys3local`` command of the installed package (next to the interpreter).

    Raises:
        FileNotFoundError: pys3local is not installed.
    """
    return installed_command("pys3local", pip="pys3local==0.2.1")


class PyS3LocalServer(S3TestServer):
    """pys3local on ``127.0.0.1`` over a temporary directory, started on entry, stopped on exit.

    The one identity is ``test`` / ``test`` (:attr:`access_key`, :attr:`secret_key`); use it
    as :class:`~aiomodelkit.testing._s3admin.S3TestServer` shows.

    Args:
        startup_timeout: seconds to wait for the server to answer.
    """

    name = "pys3local"
    _temporary_prefix = "pys3local-"
    access_key = "test"
    secret_key = "test"

    def _launch(self, port: int) -> Launch:
        script = pys3local_script()
        workdir = self._temporary_dir()
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
        # HOME in the workdir: pys3local keeps its metadata database under ~/.config.
        return Launch(argv, port, cwd=workdir, env=child_env(HOME=str(workdir)))
