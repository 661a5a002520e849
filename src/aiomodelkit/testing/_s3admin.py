"""Synchronous admin requests the S3 test servers share: "does it answer?" and "make a bucket".

Servers that check signatures (``rclone serve s3``, pys3local) refuse an unsigned
``CreateBucket``, and ``rclone serve s3`` does not see a bucket folder made behind its back
until its directory cache expires (5 minutes), so buckets are made with a SigV4-signed
``PUT /<bucket>``. botocore signs it (no client is built: that would load ~3 MB of JSON
models); urllib sends it through the helpers' proxy-free opener, to loopback only.
"""

from __future__ import annotations

import urllib.error
import urllib.request

from ._process import OPENER

__all__ = ["answers", "create_bucket"]

#: S3 error codes that mean "the bucket is already there".
_EXISTS = (b"BucketAlreadyOwnedByYou", b"BucketAlreadyExists")


def answers(url: str) -> bool:
    """Whether ``url`` gives any HTTP answer within 2 s (a 400 or 403 counts: it serves)."""
    try:
        with OPENER.open(url, timeout=2) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        exc.close()
    except (urllib.error.URLError, OSError):
        return False
    return True


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
    request = urllib.request.Request(url, method="PUT", data=b"", headers=dict(signed.headers))
    try:
        with OPENER.open(request, timeout=10) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
        exc.close()
        if exc.code != 409 and not any(code in body for code in _EXISTS):
            raise
