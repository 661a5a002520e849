"""Amazon S3 and S3-compatible servers through aiobotocore.

The client opens on entry, once, on an :class:`~contextlib.AsyncExitStack`; the constructor
does no I/O. :class:`S3Store` holds the operations; its siblings hold the rest:

* ``_s3_client``: opening the clients, and how they differ from aiobotocore's defaults (no
  botocore retries, checksums only when required, less botocore work per request,
  path-style addressing for IP and ``localhost`` endpoints).
* ``_s3_direct``: object GETs skip botocore's request pipeline: botocore routes them once per
  bucket, we sign them, aiohttp sends them: a quarter of the CPU per GET.
* ``_s3_responses``: what GET, HEAD and list answers say, and bodies read in ``chunk_size``
  pieces, each under an idle timeout (:meth:`S3Store.read` always closes them, so no pooled
  connection leaks).
* ``_s3_reads``: a GET's parameters, and its conditions checked again on a 200 answer.
* ``_s3_uploads``: one ``PutObject``, or parts (``_s3_multipart``) above the threshold.
* ``_s3_errors``: botocore's and aiohttp's errors, translated into ours.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import botocore.exceptions  # type: ignore[import-untyped]

from aiomodelkit._errors import BucketNotFoundError, StoreError
from aiomodelkit._lifecycle import AsyncResource

from ._base import DEFAULT_PREFIX, MiB, ObjectInfo, ObjectStream, StoreOptions, join_key
from ._s3_client import open_client
from ._s3_errors import error_status, map_s3_errors, raise_if_not_modified
from ._s3_multipart import MIN_PART_SIZE
from ._s3_reads import check_conditions, get_params
from ._s3_responses import body_chunks, no_chunks, range_skip, response_info, strip_etag
from ._s3_uploads import put_object

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from contextlib import AbstractContextManager, AsyncExitStack
    from pathlib import Path

    from types_aiobotocore_s3 import S3Client

    from ._s3_direct import DirectGetter

__all__ = ["S3Store"]

#: Files and byte strings above this size are uploaded in parts.
#: Size of each uploaded part (S3's minimum is 5 MiB, except for the last part).
MULTIPART_PART_SIZE = 16 * MiB


class S3Store(AsyncResource):
    """A store in an S3 bucket, under a key prefix.

    Args:
        bucket: the bucket name.
        prefix: the key prefix (modelkit's ``MODELKIT_STORAGE_PREFIX``).
        options: pool size, chunk size and timeouts.
        endpoint_url: an S3-compatible server; when absent, botocore's own resolution
            applies (``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_S3``, config files, AWS).
        region_name: the region; when absent, ``AWS_DEFAULT_REGION`` or the config files.
        aws_access_key_id: explicit credentials; when absent, the normal AWS chain is used.
        aws_secret_access_key: the secret for ``aws_access_key_id``.
        aws_session_token: a temporary session token.
        multipart_threshold: uploads larger than this many bytes go in parts (default:
            ``options.multipart_threshold``).
        multipart_part_size: the size of each part (at least 5 MiB).

    Example:
        >>> store = S3Store("my-bucket", "team-a")
        >>> store.url
        's3://my-bucket/team-a'
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = DEFAULT_PREFIX,
        *,
        options: StoreOptions | None = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        multipart_threshold: int | None = None,
        multipart_part_size: int = MULTIPART_PART_SIZE,
    ) -> None:
        if endpoint_url is not None and "@" in urlsplit(endpoint_url).netloc:
            # Never echo it: the URL holds a secret. S3 signs requests; userinfo has no use.
            raise ValueError("endpoint_url must not embed credentials (user:password@)")
        if multipart_part_size < MIN_PART_SIZE:
            raise ValueError("multipart_part_size must be at least 5 MiB (S3's minimum)")
        self._bucket = bucket
        self._prefix = prefix.strip("/")
        self._options = options or StoreOptions()
        self._endpoint_url = endpoint_url
        self._region_name = region_name
        self._credentials = {
            "aws_access_key_id": aws_access_key_id,
            "aws_secret_access_key": aws_secret_access_key,
            "aws_session_token": aws_session_token,
        }
        # Redacting a very short "secret" would mangle messages and protect nothing.
        self._secrets = tuple(
            s for s in (aws_secret_access_key, aws_session_token) if s and len(s) >= 8
        )
        self._multipart_threshold = (
            multipart_threshold
            if multipart_threshold is not None
            else self._options.multipart_threshold
        )
        self._part_size = multipart_part_size
        self._stack: AsyncExitStack | None = None
        self._client: S3Client | None = None
        self._direct: DirectGetter | None = None
        self._bucket_seen = False

    def __repr__(self) -> str:
        shown = f"{self._bucket!r}, {self._prefix!r}"
        if self._endpoint_url:
            shown += f", endpoint_url={self._endpoint_url!r}"
        return f"S3Store({shown})"

    @property
    def url(self) -> str:
        return f"s3://{self._bucket}/{self._prefix}".rstrip("/")

    @property
    def endpoint(self) -> str | None:
        """The endpoint URL when not AWS's default (an S3-compatible server), else None."""
        return self._endpoint_url

    @property
    def supports_conditional_writes(self) -> bool:
        # PutObject and CompleteMultipartUpload take IfNoneMatch="*" and IfMatch (AWS, Aug and
        # Nov 2024). SeaweedFS 4.48 enforces all four; moto 5.2.5 all but IfMatch on
        # CompleteMultipartUpload (uploads above the multipart threshold). IfMatch on a
        # missing key gives 404 on AWS and moto, 412 on SeaweedFS: both become
        # PreconditionFailedError.
        return True

    # -- lifecycle ------------------------------------------------------------------------

    async def _aopen(self) -> None:
        self._stack, self._client, self._direct = await open_client(
            endpoint_url=self._endpoint_url,
            region_name=self._region_name,
            credentials=self._credentials,
            options=self._options,
            store_url=self.url,
            secrets=self._secrets,
        )

    async def _aclose(self) -> None:
        """Close the client and its connection pool."""
        stack, self._stack, self._client, self._direct = self._stack, None, None, None
        if stack is not None:
            await stack.aclose()

    def _require_client(self) -> S3Client:
        if self._client is None:
            raise RuntimeError(f"{self!r} is not open; use 'async with store:'")
        return self._client

    # -- errors ---------------------------------------------------------------------------

    def _map_errors(self, key: str | None) -> AbstractContextManager[None]:
        """Translate botocore and aiohttp errors into ours, at the boundary (see _s3_errors)."""
        return map_s3_errors(key=key, store_url=self.url, secrets=self._secrets)

    # -- reads ----------------------------------------------------------------------------

    async def stat(self, key: str) -> ObjectInfo:
        client = self._require_client()
        with self._map_errors(key):
            try:
                head = await client.head_object(Bucket=self._bucket, Key=self._full(key))
            except botocore.exceptions.ClientError as exc:
                # HEAD answers a bare 404 for a missing bucket and a missing key alike.
                if error_status(exc) == 404 and not await self._bucket_exists():
                    raise BucketNotFoundError(
                        "the bucket does not exist", key=key, store_url=self.url
                    ) from exc
                raise
        self._bucket_seen = True
        return response_info(key, head)

    async def _bucket_exists(self) -> bool:
        if self._bucket_seen:
            return True
        try:
            await self._require_client().head_bucket(Bucket=self._bucket)
        except botocore.exceptions.ClientError as exc:
            if error_status(exc) == 404:
                return False
        except Exception:  # unknown: let the caller report the original 404
            return True
        self._bucket_seen = True
        return True

    @asynccontextmanager
    async def read(
        self,
        key: str,
        *,
        offset: int = 0,
        length: int | None = None,
        if_match: str | None = None,
        if_none_match: str | None = None,
    ) -> AsyncIterator[ObjectStream]:
        """Stream an object, or ``length`` bytes from ``offset``, in ``chunk_size`` pieces.

        Raises:
            AssetNotFoundError: no such object.
            NotModifiedError: the object still has ETag ``if_none_match`` (a 304, or a 200
                whose ETag shows it from a server that ignores ``If-None-Match``).
            PreconditionFailedError: the object no longer matches ``if_match``.
            StoreError: ``offset`` is beyond the end of the object.
            StoreUnavailableError: the body stalled longer than the read timeout.
            ValueError: ``if_none_match`` with ``if_match`` or a range.
        """
        params = get_params(
            self._bucket,
            self._full(key),
            key,
            offset=offset,
            length=length,
            if_match=if_match,
            if_none_match=if_none_match,
            store_url=self.url,
        )
        self._require_client()
        assert self._direct is not None
        response: Any = None
        # The yield stays outside _map_errors: the caller's own errors must pass untouched.
        with self._map_errors(key):
            if length != 0:
                try:
                    response = await self._direct.get_object(params)
                except botocore.exceptions.ClientError as exc:
                    raise_if_not_modified(exc, if_none_match, key, store_url=self.url)
                    if error_status(exc) != 416:
                        raise
            if response is None:
                # Nothing to read (length 0), or S3 refused a range starting at the very end
                # (416), where the other stores yield nothing: check the key and the offset.
                head_info = await self._check_offset(key, offset, if_match)
        if response is None:
            yield ObjectStream(head_info, no_chunks())
            return
        body = response["Body"]
        try:
            store_url, skip = self.url, 0
            # A server that ignored a condition answered 200: the ETag still tells.
            check_conditions(
                key, response, if_match=if_match, if_none_match=if_none_match, store_url=store_url
            )
            if "Range" in params:
                skip = range_skip(key, offset, response.get("ContentRange"), store_url=store_url)
            elif length is None:
                # Stop after the announced bytes instead of one more read for EOF: a small
                # object then costs one body read (a short body still ends the loop early).
                length = response.get("ContentLength")
            chunks = body_chunks(
                body,
                key,
                skip,
                length,
                chunk_size=self._options.chunk_size,
                read_timeout=self._options.read_timeout,
                store_url=store_url,
                secrets=self._secrets,
            )
            yield ObjectStream(response_info(key, response), chunks)
        finally:
            # Closing an undrained body drops its connection instead of returning it to
            # the pool half-read.
            body.close()

    async def _check_offset(self, key: str, offset: int, if_match: str | None) -> ObjectInfo:
        client = self._require_client()
        params: dict[str, Any] = {"Bucket": self._bucket, "Key": self._full(key)}
        if if_match is not None:
            params["IfMatch"] = if_match
        head = await client.head_object(**params)
        if offset > head["ContentLength"]:
            raise StoreError(
                f"range start {offset} is beyond the object's {head['ContentLength']} bytes",
                key=key,
                store_url=self.url,
            )
        return response_info(key, head)

    async def list_objects(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every object under the store prefix whose key starts with ``prefix``.

        ``md5`` is left unset: a listing does not tell whether an object is KMS-encrypted,
        whose ETag is not an MD5 (:meth:`stat` can tell).
        """
        client = self._require_client()
        full_prefix = join_key(self._prefix, prefix)
        strip = len(join_key(self._prefix, ""))
        params: dict[str, Any] = {
            "Bucket": self._bucket,
            "Prefix": full_prefix,
            "MaxKeys": self._options.list_page_size,
        }
        last: str | None = None  # the last key listed: where a v1 listing resumes
        seen: set[str] = set()  # a key listed twice: the server's pages cannot be trusted
        list_page: Callable[..., Awaitable[Any]] = client.list_objects_v2
        while True:
            with self._map_errors(None):
                page = await list_page(**params)
            self._bucket_seen = True
            previous = last
            for item in page.get("Contents", []):
                last = item["Key"]
                if last in seen:
                    # s3rver resumes "after the last key" over an unsorted walk: its pages
                    # repeat some keys and lose others. Never pass that off as complete.
                    raise StoreError(
                        f"the server listed {last!r} on two pages of one listing, so its "
                        "pages also miss keys: refusing to return a partial listing (list "
                        "with larger pages, or use a server whose listings page correctly)",
                        key=full_prefix,
                        store_url=self.url,
                    )
                seen.add(last)
                key = last[strip:]
                if not key or key.endswith("/"):
                    continue  # "folder" markers made by consoles are not objects
                yield ObjectInfo(
                    key=key,
                    size=item["Size"],
                    etag=strip_etag(item.get("ETag")),
                    updated=item.get("LastModified"),
                )
            if not page.get("IsTruncated"):
                return
            if token := page.get("NextContinuationToken"):
                params["ContinuationToken"] = token
            elif last is not None and last != previous:
                # "More results" without a v2 token (some servers flag them with a v1
                # marker): go on with a v1 listing after the last key, never stop short.
                list_page = client.list_objects
                params.pop("ContinuationToken", None)
                params["Marker"] = page.get("NextMarker") or last
            else:
                raise StoreError(
                    "the server says the listing goes on but gives no way to continue it; "
                    "refusing to return a partial listing",
                    key=full_prefix,
                    store_url=self.url,
                )

    # -- writes ---------------------------------------------------------------------------

    async def put(
        self,
        key: str,
        data: bytes | Path,
        *,
        if_absent: bool = False,
        if_match: str | None = None,
    ) -> ObjectInfo:
        """Upload bytes or a file; files above the multipart threshold go in parts.

        Raises:
            PreconditionFailedError: ``if_absent`` and the key exists, or ``if_match`` and
                the object changed or is gone.
            BucketNotFoundError: no such bucket.
        """
        return await put_object(
            self._require_client(),
            bucket=self._bucket,
            key=key,
            full_key=self._full(key),
            data=data,
            if_absent=if_absent,
            if_match=if_match,
            multipart_threshold=self._multipart_threshold,
            part_size=self._part_size,
            abort_timeout=self._options.read_timeout,
            store_url=self.url,
            secrets=self._secrets,
        )

    async def delete(self, key: str) -> None:
        client = self._require_client()
        with self._map_errors(key):
            await client.delete_object(Bucket=self._bucket, Key=self._full(key))

    def _full(self, key: str) -> str:
        return join_key(self._prefix, key)
