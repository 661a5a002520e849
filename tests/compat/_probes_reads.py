"""The probe of conditional reads (kept beside ``_probes``, which holds the rest, for size).

Raw requests, as every probe makes them: botocore for S3, urllib for GCS.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from urllib.parse import quote

from ._raw import BODY, fails, gcs_request, gcs_upload, s3_client

if TYPE_CHECKING:
    from ._backends import Backend

__all__ = ["ignores_conditional_reads"]


def ignores_conditional_reads(backend: Backend) -> bool:
    """Whether a GET conditioned on the object's own token answers 200 (not 304)."""
    key = f"{backend.prefix}/conditional-read"
    if backend.kind == "gcs":
        assert gcs_upload(backend, key) == 200
        path = f"/storage/v1/b/{backend.bucket}/o/{quote(key, safe='')}"
        status, _, body = gcs_request(backend, "GET", path)
        assert status == 200, body
        generation = json.loads(body)["generation"]
        status, _, _ = gcs_request(
            backend, "GET", f"{path}?alt=media&ifGenerationNotMatch={generation}"
        )
        assert status in (200, 304), status
        return status == 200
    s3 = s3_client(backend)
    etag = s3.put_object(Bucket=backend.bucket, Key=key, Body=BODY)["ETag"]  # quoted
    # botocore raises a 304 as a ClientError; a 200 is read (and its body dropped).
    return not fails(
        lambda: s3.get_object(Bucket=backend.bucket, Key=key, IfNoneMatch=etag)["Body"].read()
    )
