"""Amazon S3 and S3-compatible servers through aiobotocore.

The client opens on entry, once, on an :class:`~contextlib.AsyncExitStack`; the constructor
does no I/O. Choices that differ from aiobotocore's defaults, and why:

* **No botocore retries** (``total_max_attempts=1``; beware, botocore's ``max_attempts``
  counts retries, so ``max_attempts=1`` means two tries). Our fetcher retries itself,
  with backoff, and can also resume a broken body, which botocore cannot (its retries cover
  only the request). Two retry layers would multiply attempts and delay failing fast.
* **Response checksums only when required.** The default validation costs CPU on every
  full GET and fails on servers that send whole-object checksums on ranged replies; assets
  are verified against our own SHA-256 anyway. Uploads still send botocore's CRC32.
* **Less botocore work per request.** botocore spends about a sixth of its ~1 ms of CPU per
  GET on work an asset fetcher does not need: rebuilding the User-Agent header twice per
  request from a dozen components (we send a fixed ``aiomodelkit/... botocore/...`` string),
  parsing ``Last-Modified`` with dateutil's general parser (HTTP dates and ISO 8601 have
  fast exact parsers in the standard library) and validating parameters that this module
  builds itself. Thousands of small objects are bound by this CPU, not by the network.
* **Object GETs skip botocore's request pipeline** (see ``_s3_direct``): botocore routes
  them once per bucket, we sign them, aiohttp sends them: a quarter of the CPU per GET.
* **Path-style addressing** for IP and ``localhost`` endpoints, which have no DNS for
  ``<bucket>.<host>``.
* **Bodies are read in ``chunk_size`` pieces** (aiobotocore iterates 1 KiB chunks), each
  under an idle timeout, and always closed, so no pooled connection leaks.
"""

from __future__ import annotations

import functools
import gzip
import ipaddress
import json
import os
import platform
import re
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiobotocore  # type: ignore[import-untyped]
import aiohttp
import anyio
import anyio.to_thread
import botocore  # type: ignore[import-untyped]
import botocore.exceptions  # type: ignore[import-untyped]
from aiobotocore.config import AioConfig  # type: ignore[import-untyped]
from aiobotocore.session import AioSession  # type: ignore[import-untyped]
from botocore.configprovider import ConfiguredEndpointProvider  # type: ignore[import-untyped]
from botocore.credentials import Credentials  # type: ignore[import-untyped]
from botocore.loaders import JSONFileLoader  # type: ignore[import-untyped]

from aiomodelkit._errors import (
    BucketNotFoundError,
    InvalidStoreDataError,
    PreconditionFailedError,
    StoreError,
    StoreUnavailableError,
)
from aiomodelkit._lifecycle import AsyncResource
from aiomodelkit._version import __version__

from ._base import DEFAULT_PREFIX, MiB, ObjectInfo, ObjectStream, StoreOptions, join_key
from ._s3_direct import DirectGetter, parse_timestamp, ssl_context
from ._s3_errors import error_code, error_status, map_s3_errors
from ._s3_multipart import MIN_PART_SIZE, upload_in_parts

if TYPE_CHECKING:
    import ssl
    from collections.abc import AsyncIterator, Iterator, Mapping
    from contextlib import AbstractContextManager
    from pathlib import Path

    from types_aiobotocore_s3 import S3Client

__all__ = ["S3Store"]

#: Files and byte strings above this size are uploaded in parts.
MULTIPART_THRESHOLD = 64 * MiB
#: Size of each uploaded part (S3's minimum is 5 MiB, except for the last part).
MULTIPART_PART_SIZE = 16 * MiB
#: Parts uploaded at once; memory held is about this times the part size.
MULTIPART_CONCURRENCY = 4

#: Sent as the whole User-Agent header (botocore would rebuild its own twice per request).
USER_AGENT = (
    f"aiomodelkit/{__version__} aiobotocore/{aiobotocore.__version__} "
    f"botocore/{botocore.__version__} Python/{platform.python_version()}"
)

#: What botocore loads to create an S3 client (see ``S3Store.__aenter__``).
_BOTOCORE_DATA = ("_retry", "endpoints", "partitions", "sdk-default-configuration")
_BOTOCORE_S3_MODELS = ("service-2", "endpoint-rule-set-1")

_MD5 = re.compile(r"[0-9a-f]{32}")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


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
        multipart_threshold: uploads larger than this many bytes go in parts.
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
        multipart_threshold: int = MULTIPART_THRESHOLD,
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
        self._multipart_threshold = multipart_threshold
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
    def supports_conditional_writes(self) -> bool:
        # PutObject and CompleteMultipartUpload take IfNoneMatch="*" and IfMatch (AWS, Aug and
        # Nov 2024). SeaweedFS 4.48 enforces all four; moto 5.2.5 all but IfMatch on
        # CompleteMultipartUpload (uploads above the multipart threshold). IfMatch on a
        # missing key gives 404 on AWS and moto, 412 on SeaweedFS: both become
        # PreconditionFailedError.
        return True

    # -- lifecycle ------------------------------------------------------------------------

    async def _aopen(self) -> None:
        stack = AsyncExitStack()
        try:
            session, config, tls = await anyio.to_thread.run_sync(self._prepare)
            # botocore parses its JSON models with the GIL held (~40 ms for S3 in all with
            # PlainJSONFileLoader), which stalls the event loop even from a worker thread: one
            # file per hop, so that the loop runs between them (the longest parse, of
            # endpoints.json, is then ~17 ms).
            loader = session.get_component("data_loader")
            for name in _BOTOCORE_DATA:
                await anyio.to_thread.run_sync(loader.load_data_with_path, name)
            for name in _BOTOCORE_S3_MODELS:
                await anyio.to_thread.run_sync(loader.load_service_model, "s3", name)
            with self._map_errors(None):
                self._client = client = await stack.enter_async_context(
                    session.create_client(
                        "s3",
                        endpoint_url=self._endpoint_url,
                        region_name=self._region_name,
                        config=config,
                        **{k: v for k, v in self._credentials.items() if v is not None},
                    )
                )
            http = await stack.enter_async_context(
                aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(
                        limit=self._options.max_connections, ssl=tls if tls is not None else True
                    ),
                    timeout=aiohttp.ClientTimeout(
                        sock_connect=self._options.connect_timeout,
                        sock_read=self._options.read_timeout,
                    ),
                    headers={"User-Agent": USER_AGENT},
                    skip_auto_headers=("Accept-Encoding",),
                    auto_decompress=False,  # the object's bytes, whatever its Content-Encoding
                )
            )
            credentials: Any = None
            if self._credentials["aws_access_key_id"] is not None:
                credentials = Credentials(
                    self._credentials["aws_access_key_id"],
                    self._credentials["aws_secret_access_key"],
                    self._credentials["aws_session_token"],
                )
            else:  # the chain create_client used (the session caches what it found)
                with self._map_errors(None):
                    credentials = await session.get_credentials()
            self._direct = DirectGetter(client, http, credentials)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await stack.aclose()
            raise
        self._stack = stack

    def _prepare(self) -> tuple[Any, Any, ssl.SSLContext | None]:
        # Runs in a worker thread: botocore reads its config files and JSON models
        # synchronously, and the event loop must not wait on disk.
        session = AioSession()
        session.get_component("data_loader").file_loader = PlainJSONFileLoader()
        endpoint = (
            self._endpoint_url
            or ConfiguredEndpointProvider(
                full_config=session.full_config,
                scoped_config=session.get_scoped_config(),
                client_name="s3",
            ).provide()
        )
        session.get_component("response_parser_factory").set_parser_defaults(
            timestamp_parser=parse_timestamp
        )
        extra: dict[str, Any] = {}
        if endpoint and _needs_path_style(endpoint):
            extra["s3"] = {"addressing_style": "path"}
        config = AioConfig(
            max_pool_connections=self._options.max_connections,
            connect_timeout=self._options.connect_timeout,
            read_timeout=self._options.read_timeout,
            retries={"total_max_attempts": 1, "mode": "standard"},
            response_checksum_validation="when_required",
            parameter_validation=False,  # every request is built here, typed
            # botocore presigns S3 URLs with SigV2 unless told otherwise; AWS refuses SigV2
            # in every region opened since 2014 and for every bucket made since mid-2020.
            signature_version="s3v4",
            user_agent=USER_AGENT,
            **extra,
        )
        tls = None
        if not endpoint or endpoint.startswith("https:"):
            tls = ssl_context(session.get_config_variable("ca_bundle"))
        return session, config, tls

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

    @contextmanager
    def _map_write_errors(self, key: str, conditions: dict[str, Any]) -> Iterator[None]:
        with self._map_errors(key):
            try:
                yield
            except botocore.exceptions.ClientError as exc:
                # IfMatch on a missing key: 404 on AWS and moto, 412 on SeaweedFS.
                if "IfMatch" in conditions and error_code(exc) == "NoSuchKey":
                    raise PreconditionFailedError(
                        "object is gone", key=key, store_url=self.url
                    ) from exc
                raise

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
        return self._response_info(key, head)

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
    ) -> AsyncIterator[ObjectStream]:
        """Stream an object, or ``length`` bytes from ``offset``, in ``chunk_size`` pieces.

        Raises:
            AssetNotFoundError: no such object.
            PreconditionFailedError: the object no longer matches ``if_match``.
            StoreError: ``offset`` is beyond the end of the object.
            StoreUnavailableError: the body stalled longer than the read timeout.
        """
        if offset < 0 or (length is not None and length < 0):
            raise StoreError(
                f"invalid range: offset={offset}, length={length}", key=key, store_url=self.url
            )
        self._require_client()
        assert self._direct is not None
        params: dict[str, Any] = {"Bucket": self._bucket, "Key": self._full(key)}
        if if_match is not None:
            params["IfMatch"] = if_match
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            params["Range"] = f"bytes={offset}-{end}"
        response: Any = None
        # The yield stays outside _map_errors: the caller's own errors must pass untouched.
        with self._map_errors(key):
            if length != 0:
                try:
                    response = await self._direct.get_object(params)
                except botocore.exceptions.ClientError as exc:
                    if error_status(exc) != 416:
                        raise
            if response is None:
                # Nothing to read (length 0), or S3 refused a range starting at the very end
                # (416), where the other stores yield nothing: check the key and the offset.
                head_info = await self._check_offset(key, offset, if_match)
        if response is None:
            yield ObjectStream(head_info, _no_chunks())
            return
        body = response["Body"]
        try:
            skip = 0
            if "Range" in params:
                skip = self._range_skip(key, offset, response.get("ContentRange"))
            elif length is None:
                # Stop after the announced bytes instead of one more read for EOF: a small
                # object then costs one body read (a short body still ends the loop early).
                length = response.get("ContentLength")
            yield ObjectStream(
                self._response_info(key, response), self._chunks(body, key, skip, length)
            )
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
        return self._response_info(key, head)

    def _response_info(self, key: str, response: Mapping[str, Any]) -> ObjectInfo:
        """The whole object as a GET or HEAD response describes it."""
        size = response["ContentLength"]
        match = _CONTENT_RANGE.fullmatch(response.get("ContentRange") or "")
        if match is not None and match[3] != "*":
            size = int(match[3])
        etag = _strip_etag(response.get("ETag"))
        # SSE-KMS and SSE-C objects have ETags that are not MD5s of the content.
        encrypted = response.get("ServerSideEncryption", "").startswith("aws:kms") or bool(
            response.get("SSECustomerAlgorithm")
        )
        return ObjectInfo(
            key=key,
            size=size,
            etag=etag,
            md5=None if encrypted else _md5_of(etag),
            updated=response.get("LastModified"),
        )

    def _range_skip(self, key: str, offset: int, content_range: str | None) -> int:
        """Bytes to drop from the body so that it starts at ``offset``."""
        if not content_range:
            return offset  # the server ignored Range and sent the whole object (200)
        match = _CONTENT_RANGE.fullmatch(content_range)
        if match is None or int(match[1]) != offset:
            raise InvalidStoreDataError(
                f"the server answered range {content_range!r} for offset {offset}",
                key=key,
                store_url=self.url,
            )
        return 0

    async def _chunks(
        self, body: Any, key: str, skip: int, length: int | None
    ) -> AsyncIterator[bytes]:
        size = self._options.chunk_size
        remaining = length
        while remaining is None or remaining > 0:
            want = size if remaining is None else min(size, remaining)
            with self._map_errors(key):
                try:
                    # Both transports (aiohttp for direct GETs, aiobotocore's) enforce
                    # read_timeout as an idle timeout per socket read: no timer of our own.
                    chunk: bytes = await body.read(want if not skip else min(size, skip))
                except TimeoutError as exc:  # aiohttp's ServerTimeoutError
                    raise StoreUnavailableError(
                        f"the body stalled for over {self._options.read_timeout} s",
                        key=key,
                        store_url=self.url,
                    ) from exc
            if not chunk:
                return
            if skip:
                skip -= len(chunk)
                continue
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk

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
        while True:
            with self._map_errors(None):
                page = await client.list_objects_v2(**params)
            self._bucket_seen = True
            for item in page.get("Contents", []):
                key = item["Key"][strip:]
                if not key or key.endswith("/"):
                    continue  # "folder" markers made by consoles are not objects
                yield ObjectInfo(
                    key=key,
                    size=item["Size"],
                    etag=_strip_etag(item.get("ETag")),
                    updated=item.get("LastModified"),
                )
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            params["ContinuationToken"] = token

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
        client = self._require_client()
        conditions: dict[str, Any] = {}
        if if_absent:
            conditions["IfNoneMatch"] = "*"
        if if_match is not None:
            conditions["IfMatch"] = if_match
        # Errors reading the caller's file are theirs, not the store's: leave them unmapped.
        size = len(data) if isinstance(data, bytes) else (await anyio.Path(data).stat()).st_size
        if size > self._multipart_threshold:
            etag = await upload_in_parts(
                client,
                bucket=self._bucket,
                key=self._full(key),
                data=data,
                size=size,
                part_size=self._part_size,
                concurrency=MULTIPART_CONCURRENCY,
                conditions=conditions,
                mapped=functools.partial(self._map_write_errors, key, conditions),
                abort_timeout=self._options.read_timeout,
            )
        else:
            body = data if isinstance(data, bytes) else await anyio.Path(data).read_bytes()
            size = len(body)
            with self._map_write_errors(key, conditions):
                response = await client.put_object(
                    Bucket=self._bucket, Key=self._full(key), Body=body, **conditions
                )
            etag = response["ETag"]
        stripped = _strip_etag(etag)
        return ObjectInfo(key=key, size=size, etag=stripped, md5=_md5_of(stripped))

    async def delete(self, key: str) -> None:
        client = self._require_client()
        with self._map_errors(key):
            await client.delete_object(Bucket=self._bucket, Key=self._full(key))

    def _full(self, key: str) -> str:
        return join_key(self._prefix, key)


async def _no_chunks() -> AsyncIterator[bytes]:
    return
    yield  # pragma: no cover - makes this an (empty) async generator


def _strip_etag(etag: str | None) -> str | None:
    return etag.strip('"') if etag else None


def _md5_of(etag: str | None) -> str | None:
    """The ETag when it is a plain MD5 (single-part upload), else None (multipart ``md5-N``)."""
    return etag if etag is not None and _MD5.fullmatch(etag) else None


class PlainJSONFileLoader(JSONFileLoader):  # type: ignore[misc]  # botocore is untyped
    """botocore's model file loader, parsing into plain dicts: twice as fast.

    botocore parses every model with ``object_pairs_hook=OrderedDict``, which doubles the
    parse time of the ~3 MB of JSON an S3 client needs (~75 ms of CPU with the GIL held,
    ~40 ms without the hook). Plain dicts keep insertion order too, and botocore reads
    models only as mappings. Same files, same order of preference (``.json``, then
    ``.json.gz``), same result otherwise.
    """

    def load_file(self, file_path: str) -> Any:
        for extension, opener in ((".json", open), (".json.gz", gzip.open)):
            path = file_path + extension
            if os.path.isfile(path):
                with opener(path, "rb") as handle:
                    return json.loads(handle.read())  # UTF-8, as botocore reads it
        return None


def _needs_path_style(endpoint: str) -> bool:
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
