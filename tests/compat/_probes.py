"""One probe per gap of ``_backends.GAPS``: raw requests that show whether a server has it.

A probe makes a few requests under the backend's prefix (through ``_raw``: botocore for S3,
urllib for GCS, or bare sockets for connection limits) and returns True when the server
shows the gap. Probes are synchronous on purpose: they run no event loop, so nothing here
can block one, and they never go through aiomodelkit, whose behaviour they must not assume.
"""

from __future__ import annotations

import http.client
import socket
import subprocess
from contextlib import suppress
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import botocore.exceptions  # type: ignore[import-untyped]
import pytest

from aiomodelkit.testing._s3rver import S3rverServer

from ._backends import NPM_CACHE, Backend, Gap
from ._probes_reads import ignores_conditional_reads
from ._raw import (
    BODY,
    WRONG_ETAG,
    Ranged,
    fails,
    gcs_get,
    gcs_list,
    gcs_upload,
    put_many,
    s3_client,
    s3_get,
    s3_keys,
    s3_multipart,
    status_of,
)

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["PROBES", "Probe"]


# -- the probes ------------------------------------------------------------------------------


def _ignores_conditional_writes(backend: Backend) -> bool:
    key = f"{backend.prefix}/conditional"
    if backend.kind == "gcs":
        assert gcs_upload(backend, key) == 200
        return gcs_upload(backend, key, b"again", "&ifGenerationMatch=0") == 200
    s3 = s3_client(backend)
    s3.put_object(Bucket=backend.bucket, Key=key, Body=BODY)
    if not fails(lambda: s3.put_object(Bucket=backend.bucket, Key=key, Body=b"2", IfNoneMatch="*")):
        return True
    return not fails(
        lambda: s3.put_object(Bucket=backend.bucket, Key=key, Body=b"3", IfMatch=WRONG_ETAG)
    )


def _if_match_ignored_on_multipart_complete(backend: Backend) -> bool:
    s3, key = s3_client(backend), f"{backend.prefix}/complete"
    s3.put_object(Bucket=backend.bucket, Key=key, Body=BODY)
    if not fails(
        lambda: s3.put_object(Bucket=backend.bucket, Key=key, Body=b"2", IfMatch=WRONG_ETAG)
    ):
        return False  # every condition is ignored: that is IGNORES_CONDITIONAL_WRITES
    try:
        s3_multipart(s3, backend, key, IfMatch=WRONG_ETAG)
    except botocore.exceptions.ClientError:
        return False  # refused: enforced, or no multipart at all
    return True


def _if_match_on_missing_key_is_412(backend: Backend) -> bool:
    s3, key = s3_client(backend), f"{backend.prefix}/missing"
    try:
        s3.put_object(Bucket=backend.bucket, Key=key, Body=BODY, IfMatch=WRONG_ETAG)
    except botocore.exceptions.ClientError as exc:
        return status_of(exc) == 412
    return False


def _no_multipart(backend: Backend) -> bool:
    s3, key = s3_client(backend), f"{backend.prefix}/mp"
    try:
        upload = s3.create_multipart_upload(Bucket=backend.bucket, Key=key)
    except botocore.exceptions.ClientError:
        return True
    with suppress(botocore.exceptions.ClientError):  # NO_MULTIPART_ABORT
        s3.abort_multipart_upload(Bucket=backend.bucket, Key=key, UploadId=upload["UploadId"])
    return False


def _no_multipart_abort(backend: Backend) -> bool:
    s3, key = s3_client(backend), f"{backend.prefix}/abort"
    try:
        upload = s3.create_multipart_upload(Bucket=backend.bucket, Key=key)
    except botocore.exceptions.ClientError:
        return False  # no multipart at all: NO_MULTIPART
    return fails(
        lambda: s3.abort_multipart_upload(
            Bucket=backend.bucket, Key=key, UploadId=upload["UploadId"]
        )
    )


def _multipart_etags(backend: Backend) -> tuple[str, str] | None:
    try:
        return s3_multipart(s3_client(backend), backend, f"{backend.prefix}/etag")
    except botocore.exceptions.ClientError:
        return None


def _multipart_etag_without_part_count(backend: Backend) -> bool:
    etags = _multipart_etags(backend)
    return etags is not None and "-" not in etags[0]


def _multipart_etag_changes_after_complete(backend: Backend) -> bool:
    etags = _multipart_etags(backend)
    return etags is not None and etags[0] != etags[1]


def _copy_etag_unquoted(backend: Backend) -> bool:
    s3, key = s3_client(backend), f"{backend.prefix}/copy"
    s3.put_object(Bucket=backend.bucket, Key=key, Body=BODY)
    try:
        copied = s3.copy_object(
            Bucket=backend.bucket, Key=f"{key}-2", CopySource={"Bucket": backend.bucket, "Key": key}
        )
    except botocore.exceptions.ClientError:
        return False
    return not copied["CopyObjectResult"]["ETag"].startswith('"')


def _credentials_not_checked(backend: Backend) -> bool:
    s3 = s3_client(backend, secret="not-the-secret")
    return not fails(lambda: s3.list_objects_v2(Bucket=backend.bucket, MaxKeys=1))


def _ranged(backend: Backend, byte_range: str) -> Ranged | int:
    """A ranged GET of a 10-byte object (made on first use)."""
    key = f"{backend.prefix}/ranged"
    if backend.kind == "gcs":
        if gcs_get(backend, key).status == 404:
            assert gcs_upload(backend, key) == 200
        return gcs_get(backend, key, byte_range)
    s3 = s3_client(backend)
    s3.put_object(Bucket=backend.bucket, Key=key, Body=BODY)
    return s3_get(s3, backend, key, byte_range)


def _closed_range_works(backend: Backend) -> bool:
    got = _ranged(backend, "bytes=2-4")
    return isinstance(got, Ranged) and got.body == b"234"


def _ranged_get_returns_200(backend: Backend) -> bool:
    got = _ranged(backend, "bytes=2-4")
    assert isinstance(got, Ranged)
    return (got.status, got.content_range, got.body) == (200, "bytes 2-4/10", b"234")


def _ranges_ignored(backend: Backend) -> bool:
    got = _ranged(backend, "bytes=2-4")
    assert isinstance(got, Ranged)
    return (got.status, got.content_range, got.body) == (200, None, BODY)


def _whole_object_checksum_on_ranges(backend: Backend) -> bool:
    got = _ranged(backend, "bytes=2-4")
    assert isinstance(got, Ranged)
    prefix = "x-goog-hash" if backend.kind == "gcs" else "x-amz-checksum-"
    return any(name.lower().startswith(prefix) for name in got.headers)


def _suffix_range_wrong(backend: Backend) -> bool:
    got = _ranged(backend, "bytes=-3")
    return _closed_range_works(backend) and not (isinstance(got, Ranged) and got.body == b"789")


def _no_416_past_end(backend: Backend) -> bool:
    got = _ranged(backend, "bytes=20-")
    status = got.status if isinstance(got, Ranged) else got
    return _closed_range_works(backend) and status != 416


def _no_generation_header(backend: Backend) -> bool:
    key = f"{backend.prefix}/generation"
    assert gcs_upload(backend, key) == 200
    return "x-goog-generation" not in gcs_get(backend, key).headers


def _two_keys(backend: Backend, names: tuple[str, str]) -> str:
    """Put two objects under a fresh sub-prefix; return that prefix."""
    prefix = f"{backend.prefix}/two/"
    for name in names:
        if backend.kind == "gcs":
            assert gcs_upload(backend, prefix + name) == 200
        else:
            s3_client(backend).put_object(Bucket=backend.bucket, Key=prefix + name, Body=BODY)
    return prefix


def _v1_marker_listing(backend: Backend) -> bool:
    prefix = _two_keys(backend, ("a", "b"))
    page = s3_client(backend).list_objects_v2(Bucket=backend.bucket, Prefix=prefix, MaxKeys=1)
    return bool(page.get("IsTruncated")) and not page.get("NextContinuationToken")


def _unsorted_listing(backend: Backend) -> bool:
    # In byte order "a.b" < "a/c"; a directory walk lists a/c first.
    prefix = _two_keys(backend, ("a/c", "a.b"))
    listed = s3_keys(s3_client(backend), backend, prefix)
    return listed != sorted(listed)


def _paged_listing_loses_keys(backend: Backend) -> bool:
    prefix = _two_keys(backend, ("a/c", "a.b"))
    s3 = s3_client(backend)
    listed = s3_keys(s3, backend, prefix)
    paged: list[str] = []
    params: dict[str, Any] = {"Bucket": backend.bucket, "Prefix": prefix, "MaxKeys": 1}
    list_page = s3.list_objects_v2
    for _ in range(10):
        page = list_page(**params)
        paged += [item["Key"] for item in page.get("Contents", [])]
        if not page.get("IsTruncated"):
            break
        if token := page.get("NextContinuationToken"):
            params["ContinuationToken"] = token
        else:  # a v1 marker (V1_MARKER_LISTING): go on as a v1 listing
            list_page = s3.list_objects
            params.pop("ContinuationToken", None)
            params["Marker"] = page.get("NextMarker") or paged[-1]
    return paged != listed


def _max_keys_over_1000(backend: Backend) -> bool:
    s3, prefix = s3_client(backend), f"{backend.prefix}/many/"
    put_many(
        lambda key: s3.put_object(Bucket=backend.bucket, Key=key, Body=b""),
        [f"{prefix}{i:04d}" for i in range(1001)],
    )
    return len(s3_keys(s3, backend, prefix, MaxKeys=1001)) > 1000


def _put_double_slash(backend: Backend) -> list[str] | None:
    """The listing after putting ``a//b``, or None if the key was refused."""
    s3, prefix = s3_client(backend), f"{backend.prefix}/slash/"
    try:
        s3.put_object(Bucket=backend.bucket, Key=f"{prefix}a//b", Body=BODY)
    except botocore.exceptions.ClientError:
        return None
    return [key.removeprefix(prefix) for key in s3_keys(s3, backend, prefix)]


def _double_slash_collapsed(backend: Backend) -> bool:
    return _put_double_slash(backend) == ["a/b"]


def _double_slash_refused(backend: Backend) -> bool:
    return _put_double_slash(backend) is None


def _key_and_prefix_clash(backend: Backend) -> bool:
    s3, prefix = s3_client(backend), f"{backend.prefix}/clash/"
    s3.put_object(Bucket=backend.bucket, Key=f"{prefix}a/b", Body=BODY)
    return fails(lambda: s3.put_object(Bucket=backend.bucket, Key=f"{prefix}a", Body=BODY))


def _list_unpaged_by_default(backend: Backend) -> bool:
    prefix = f"{backend.prefix}/many/"
    put_many(lambda name: gcs_upload(backend, name, b""), [f"{prefix}{i:04d}" for i in range(1001)])
    listing = gcs_list(backend, prefix)
    return len(listing.get("items", ())) > 1000 and not listing.get("nextPageToken")


def _no_list_paging(backend: Backend) -> bool:
    prefix = _two_keys(backend, ("a", "b"))
    listing = gcs_list(backend, prefix, maxResults="1")
    return len(listing.get("items", ())) == 2 and not listing.get("nextPageToken")


def _match_glob_ignored(backend: Backend) -> bool:
    prefix = _two_keys(backend, ("a", "b"))
    return bool(gcs_list(backend, prefix, matchGlob="**/matches-nothing").get("items"))


def _list_continuation_needs_legacy_openssl(backend: Backend) -> bool:
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True)
    if int(node.stdout.strip().lstrip("v").split(".")[0]) < 17:
        pytest.skip("Node.js < 17 still has DES: the gap needs Node.js >= 17")
    with S3rverServer(cache_dir=NPM_CACHE, legacy_openssl=False) as plain:
        plain.create_bucket(backend.bucket)
        plain_backend = replace(backend, endpoint_url=plain.endpoint_url)
        prefix = _two_keys(plain_backend, ("a", "b"))
        s3 = s3_client(plain_backend)
        # A truncated page needs a (DES-encrypted) token: even the first page fails.
        return fails(lambda: s3_keys(s3, plain_backend, prefix, MaxKeys=1))


def _no_keep_alive(backend: Backend) -> bool:
    parts = urlsplit(backend.endpoint_url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
    try:
        connection.request("GET", "/storage/v1/b" if backend.kind == "gcs" else "/")
        response = connection.getresponse()
        response.read()
        return response.version == 10 or response.getheader("Connection", "").lower() == "close"
    finally:
        connection.close()


def _few_connections(backend: Backend) -> bool:
    """Whether 10 idle connections opened at once leave some unaccepted for 0.5 s."""
    parts = urlsplit(backend.endpoint_url)
    sockets: list[socket.socket] = []
    stalled = 0
    try:
        for _ in range(10):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.settimeout(0.5)
            try:
                sock.connect((parts.hostname or "", parts.port or 80))
            except TimeoutError:
                stalled += 1
    finally:
        for sock in sockets:
            with suppress(OSError):
                sock.close()
    return stalled > 0


@dataclass(frozen=True)
class Probe:
    """How to show one gap.

    Attributes:
        run: True when the backend's server shows the gap.
        kinds: the kinds of backends it applies to.
        cheap: part of the sweep for undeclared gaps (a second or less per server).
    """

    run: Callable[[Backend], bool]
    kinds: frozenset[str]
    cheap: bool = True


_S3, _GCS, _BOTH = frozenset({"s3"}), frozenset({"gcs"}), frozenset({"s3", "gcs"})

#: How to show each gap.
PROBES: dict[Gap, Probe] = {
    Gap.IGNORES_CONDITIONAL_WRITES: Probe(_ignores_conditional_writes, _BOTH),
    Gap.IF_MATCH_IGNORED_ON_MULTIPART_COMPLETE: Probe(_if_match_ignored_on_multipart_complete, _S3),
    Gap.IF_MATCH_ON_MISSING_KEY_IS_412: Probe(_if_match_on_missing_key_is_412, _S3),
    Gap.NO_MULTIPART: Probe(_no_multipart, _S3),
    Gap.NO_MULTIPART_ABORT: Probe(_no_multipart_abort, _S3),
    Gap.MULTIPART_ETAG_WITHOUT_PART_COUNT: Probe(_multipart_etag_without_part_count, _S3),
    Gap.MULTIPART_ETAG_CHANGES_AFTER_COMPLETE: Probe(_multipart_etag_changes_after_complete, _S3),
    Gap.COPY_ETAG_UNQUOTED: Probe(_copy_etag_unquoted, _S3),
    Gap.CREDENTIALS_NOT_CHECKED: Probe(_credentials_not_checked, _S3),
    Gap.RANGED_GET_RETURNS_200: Probe(_ranged_get_returns_200, _BOTH),
    Gap.RANGES_IGNORED: Probe(_ranges_ignored, _BOTH),
    Gap.WHOLE_OBJECT_CHECKSUM_ON_RANGES: Probe(_whole_object_checksum_on_ranges, _BOTH),
    Gap.SUFFIX_RANGE_WRONG: Probe(_suffix_range_wrong, _BOTH),
    Gap.NO_416_PAST_END: Probe(_no_416_past_end, _BOTH),
    Gap.NO_GENERATION_HEADER: Probe(_no_generation_header, _GCS),
    Gap.IGNORES_CONDITIONAL_READS: Probe(ignores_conditional_reads, _BOTH),
    Gap.V1_MARKER_LISTING: Probe(_v1_marker_listing, _S3),
    Gap.UNSORTED_LISTING: Probe(_unsorted_listing, _S3),
    Gap.PAGED_LISTING_LOSES_KEYS: Probe(_paged_listing_loses_keys, _S3),
    Gap.MAX_KEYS_OVER_1000: Probe(_max_keys_over_1000, _S3, cheap=False),
    Gap.DOUBLE_SLASH_COLLAPSED: Probe(_double_slash_collapsed, _S3),
    Gap.DOUBLE_SLASH_REFUSED: Probe(_double_slash_refused, _S3),
    Gap.KEY_AND_PREFIX_CLASH: Probe(_key_and_prefix_clash, _S3),
    Gap.LIST_UNPAGED_BY_DEFAULT: Probe(_list_unpaged_by_default, _GCS, cheap=False),
    Gap.NO_LIST_PAGING: Probe(_no_list_paging, _GCS),
    Gap.MATCH_GLOB_IGNORED: Probe(_match_glob_ignored, _GCS),
    # Starts another s3rver: only where the table declares it.
    Gap.LIST_CONTINUATION_NEEDS_LEGACY_OPENSSL: Probe(
        _list_continuation_needs_legacy_openssl, frozenset({"s3"}), cheap=False
    ),
    Gap.NO_KEEP_ALIVE: Probe(_no_keep_alive, _BOTH),
    Gap.FEW_CONNECTIONS: Probe(_few_connections, _BOTH),
}
