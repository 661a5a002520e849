"""What the S3 test servers share: a base class, and two admin requests sent synchronously.

:class:`S3TestServer` is the base of the launchers with one fixed identity (s3rver,
``rclone serve s3``, pys3local). The requests are "does it answer?" (:func:`answers`, from
``_process``) and "make a bucket" (:func:`create_bucket`). Servers that check signatures
(``rclone serve s3``, pys3local) refuse an unsigned ``CreateBucket``, and ``rclone serve s3``
does not see a bucket folder made behind its back until its directory cache expires (5
minutes), so buckets are made with a SigV4-signed ``PUT /<bucket>``. botocore signs it (no
client is built: that would load ~3 MB of JSON models); urllib sends it through the
helpers' proxy-free opener, to loopback only.
"""

from __future__ import annotations

from typing import ClassVar

from ._process import SubprocessServer, answers, create_with_put

__all__ = ["S3TestServer", "answers", "create_bucket"]

#: S3 error codes that mean "the bucket is already there".
_EXISTS = (b"BucketAlreadyOwnedByYou", b"BucketAlreadyExists")


def create_bucket(
    endpoint_url: str,
    name: str,
    *,
    access_key: str,
    secret_key: str,
    region: str = "us-east-1",
) -> None:
    """Create a bucket with a signed path-style ``PUT``; an existing bucket is kept.

    Needs botocore (the ``s3`` extra) for the signature.

    Raises:
        urllib.error.HTTPError: the server refused for another reason than "exists".
    """
    from botocore.auth import S3SigV4Auth  # type: ignore[import-untyped]
    from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
    from botocore.credentials import Credentials  # type: ignore[import-untyped]

    url = f"{endpoint_url}/{name}"
    signed = AWSRequest(method="PUT", url=url, data=b"")
    S3SigV4Auth(Credentials(access_key, secret_key), "s3", region).add_auth(signed)
    create_with_put(url, headers=dict(signed.headers), exists=_EXISTS)


class S3TestServer(SubprocessServer):
    """An S3 server with one fixed identity (:attr:`access_key`, :attr:`secret_key`).

    A subclass sets the identity and gives the command line (:meth:`_launch`). By default
    any HTTP answer means the server serves, and :meth:`create_bucket` sends a signed
    ``PUT``. There is no reset: give each test a bucket or a prefix of its own.

    Example:
        >>> from aiomodelkit.stores import S3Store
        >>> from aiomodelkit.testing._rclone import RcloneS3Server
        >>> with RcloneS3Server() as server:  # doctest: +SKIP
        ...     server.create_bucket("models")
        ...     store = S3Store("models", endpoint_url=server.endpoint_url,
        ...                     aws_access_key_id=server.access_key,
        ...                     aws_secret_access_key=server.secret_key,
        ...                     region_name="us-east-1")
    """

    _stop_grace = 5.0
    #: The identity's access key.
    access_key: ClassVar[str]
    #: Its secret.
    secret_key: ClassVar[str]

    def _is_ready(self) -> bool:
        # An unsigned request gets 400 or 403 from a server that checks signatures.
        return answers(f"{self.endpoint_url}/")

    def create_bucket(self, name: str) -> None:
        """Create a bucket (a signed ``PUT``); an existing one is kept.

        Needs botocore (the ``s3`` extra) for the signature.
        """
        create_bucket(
            self.endpoint_url, name, access_key=self.access_key, secret_key=self.secret_key
        )
