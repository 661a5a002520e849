"""Raw, synchronous access to the servers for the probes: botocore for S3, urllib for GCS.

Nothing here goes through aiomodelkit: the probes must see what a server does, not what the
library makes of it. Everything talks to loopback only (no proxy from the environment).
"""

from __future__ import annotations

import functools
import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import botocore.config  # type: ignore[import-untyped]
import botocore.exceptions  # type: ignore[import-untyped]
import botocore.session  # type: ignore[import-untyped]

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._backends import Backend

__all__ = [
    "BODY",
    "WRONG_ETAG",
    "Ranged",
    "close_clients",
    "fails",
    "gcs_get",
    "gcs_list",
    "gcs_request",
    "gcs_upload",
    "put_many",
    "s3_client",
    "s3_get",
    "s3_keys",
    "s3_multipart",
    "status_of",
]

#: urllib without any proxy the environment names: probes talk to loopback only.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
#: The content of the probes' small objects.
BODY = b"0123456789"
#: An ETag no object has.
WRONG_ETAG = '"' + "0" * 32 + '"'
#: The clients of s3_client, by endpoint, access key and secret.
_CLIENTS: dict[tuple[str, str, str], Any] = {}


# -- S3 helpers ------------------------------------------------------------------------------


def s3_client(backend: Backend, *, secret: str | None = None) -> Any:
    """A synchronous botocore S3 client for the backend (``secret`` overrides its own).

    Clients are kept for the run (:func:`close_clients` closes them): building one costs
    more than most probes.
    """
    access_key, secret_key = backend.credentials
    identity = (backend.endpoint_url, access_key, secret if secret is not None else secret_key)
    client = _CLIENTS.get(identity)
    if client is None:
        client = _CLIENTS[identity] = _session().create_client(
            "s3",
            endpoint_url=identity[0],
            region_name="us-east-1",
            aws_access_key_id=identity[1],
            aws_secret_access_key=identity[2],
            config=botocore.config.Config(
                retries={"total_max_attempts": 1, "mode": "standard"},
                s3={"addressing_style": "path"},
                proxies={},
                # Read ranged answers as sent: rclone's whole-object checksums fail them.
                response_checksum_validation="when_required",
                connect_timeout=5,
                read_timeout=10,
            ),
        )
    return client


@functools.cache
def _session() -> Any:
    """One botocore session: it loads the S3 model once for every client."""
    return botocore.session.get_session()


def close_clients() -> None:
    """Close every client :func:`s3_client` made."""
    clients = list(_CLIENTS.values())
    _CLIENTS.clear()
    for client in clients:
        client.close()


def fails(call: Callable[[], object]) -> bool:
    """Whether an S3 call raises a client error (refused), rather than succeeding."""
    try:
        call()
    except botocore.exceptions.ClientError:
        return True
    return False


def status_of(exc: botocore.exceptions.ClientError) -> int:
    """The HTTP status of a refused S3 call."""
    status: int = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return status


@dataclass(frozen=True)
class Ranged:
    """What a ranged GET answered."""

    status: int
    content_range: str | None
    headers: dict[str, str]
    body: bytes


def s3_get(s3: Any, backend: Backend, key: str, byte_range: str) -> Ranged | int:
    """A ranged GET: what it answered, or the status it was refused with."""
    try:
        response = s3.get_object(Bucket=backend.bucket, Key=key, Range=byte_range)
    except botocore.exceptions.ClientError as exc:
        return status_of(exc)
    meta = response["ResponseMetadata"]
    return Ranged(
        meta["HTTPStatusCode"], response.get("ContentRange"), meta["HTTPHeaders"],
        response["Body"].read(),
    )  # fmt: skip


def s3_multipart(s3: Any, backend: Backend, key: str, **conditions: str) -> tuple[str, str]:
    """A one-part multipart upload: the ETags CompleteMultipartUpload and then HEAD give."""
    upload = s3.create_multipart_upload(Bucket=backend.bucket, Key=key)["UploadId"]
    part = s3.upload_part(Bucket=backend.bucket, Key=key, UploadId=upload, PartNumber=1, Body=BODY)
    done = s3.complete_multipart_upload(
        Bucket=backend.bucket,
        Key=key,
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        **conditions,
    )
    head = s3.head_object(Bucket=backend.bucket, Key=key)
    return done["ETag"], head["ETag"]


def s3_keys(s3: Any, backend: Backend, prefix: str, **params: Any) -> list[str]:
    """The keys of one ListObjectsV2 page."""
    page = s3.list_objects_v2(Bucket=backend.bucket, Prefix=prefix, **params)
    return [item["Key"] for item in page.get("Contents", [])]


def put_many(put: Callable[[str], object], keys: list[str]) -> None:
    """``put`` every key, eight at a time."""
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, keys))


# -- GCS helpers -----------------------------------------------------------------------------


def gcs_request(
    backend: Backend,
    method: str,
    path: str,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One JSON or media API request: status, headers (lower-case names) and body."""
    request = urllib.request.Request(
        f"{backend.endpoint_url}{path}", method=method, data=data, headers=headers or {}
    )
    try:
        with _OPENER.open(request, timeout=10) as response:
            status, message, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            status, message, body = exc.code, exc.headers, exc.read()
    return status, {name.lower(): value for name, value in message.items()}, body


def gcs_upload(backend: Backend, name: str, data: bytes = BODY, query: str = "") -> int:
    """A simple media upload; returns the status."""
    path = f"/upload/storage/v1/b/{backend.bucket}/o?uploadType=media&name={quote(name)}{query}"
    status, _, _ = gcs_request(
        backend, "POST", path, data, {"Content-Type": "application/octet-stream"}
    )
    return status


def gcs_get(backend: Backend, name: str, byte_range: str | None = None) -> Ranged:
    """A media download, ranged if ``byte_range`` is given."""
    path = f"/storage/v1/b/{backend.bucket}/o/{quote(name, safe='')}?alt=media"
    headers = {"Range": byte_range} if byte_range else {}
    status, found, body = gcs_request(backend, "GET", path, headers=headers)
    return Ranged(status, found.get("content-range"), found, body)


def gcs_list(backend: Backend, prefix: str, **params: str) -> dict[str, Any]:
    """One JSON API listing page."""
    query = "&".join(f"{k}={quote(v)}" for k, v in {"prefix": prefix, **params}.items())
    status, _, body = gcs_request(backend, "GET", f"/storage/v1/b/{backend.bucket}/o?{query}")
    assert status == 200, body
    listing: dict[str, Any] = json.loads(body)
    return listing
