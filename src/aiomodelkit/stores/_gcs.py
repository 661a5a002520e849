"""Google Cloud Storage through gcloud-aio-storage, on an aiohttp session we own.

We take from gcloud-aio the JSON API calls and its credential handling, and keep control of
what it gets wrong for large assets: ``download()`` buffers whole objects and its ``timeout``
is a whole-transfer deadline, so reads go through ``download_stream`` with no total deadline
and our own per-chunk idle timeout. gcloud-aio adds auth headers into the dict it is given, so
every call gets a fresh one.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from contextlib import asynccontextmanager
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import aiohttp
import anyio
from gcloud.aio.storage import Storage

from aiomodelkit._errors import (
    AssetNotFoundError,
    BucketNotFoundError,
    InvalidStoreDataError,
    ModelkitError,
    PreconditionFailedError,
    StoreError,
    StorePermissionError,
    StoreUnavailableError,
)
from aiomodelkit._lifecycle import AsyncResource

from ._base import DEFAULT_PREFIX, MiB, ObjectInfo, ObjectStream, StoreOptions, join_key

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

__all__ = ["GCSStore"]

# aiohttp's StreamReader buffer: big enough that one await returns a good part of a chunk.
_MAX_READ_BUFSIZE = 4 * MiB
_MAX_MESSAGE = 200


class GCSStore(AsyncResource):
    """A store in a Google Cloud Storage bucket.

    Args:
        bucket: the bucket name.
        prefix: the key prefix inside the bucket.
        options: client tuning.
        api_root: the endpoint of an emulator (``http://127.0.0.1:4443``); requests to it carry
            no credentials. When ``None``, gcloud-aio uses ``STORAGE_EMULATOR_HOST`` if set,
            else Google's API with application default credentials.
        service_file: a service-account or ADC JSON file, instead of the default lookup.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = DEFAULT_PREFIX,
        *,
        options: StoreOptions | None = None,
        api_root: str | None = None,
        service_file: str | None = None,
    ) -> None:
        self._bucket = bucket
        self._prefix = prefix.strip("/")
        self._options = options or StoreOptions()
        self._api_root = api_root.rstrip("/") if api_root else None
        self._service_file = service_file
        self._session: aiohttp.ClientSession | None = None
        self._storage: Storage | None = None
        self._bucket_exists = False
        # gcloud-aio annotates timeouts as int (its requests twin) but forwards an
        # aiohttp.ClientTimeout unchanged. None totals: transfers may be long; idleness is
        # what we bound (sock_read for small calls, fail_after per chunk for streams).
        opts = self._options
        self._call_timeout: Any = aiohttp.ClientTimeout(
            total=None, sock_connect=opts.connect_timeout, sock_read=opts.read_timeout
        )
        self._stream_timeout: Any = aiohttp.ClientTimeout(
            total=None, sock_connect=opts.connect_timeout
        )

    @property
    def url(self) -> str:
        """``gs://bucket/prefix``."""
        return f"gs://{self._bucket}/{self._prefix}".rstrip("/")

    @property
    def supports_conditional_writes(self) -> bool:
        """True: GCS enforces ``ifGenerationMatch`` (fake-gcs-server 1.54 ignores it)."""
        return True

    async def _aopen(self) -> None:
        opts = self._options
        connector = aiohttp.TCPConnector(
            limit=opts.max_connections,
            limit_per_host=opts.max_connections,
            ttl_dns_cache=300,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._call_timeout,
            read_bufsize=max(64 * 1024, min(opts.chunk_size, _MAX_READ_BUFSIZE)),
        )
        try:
            # Storage() builds a Token, which reads credential files: keep that off the loop.
            make = partial(
                Storage,
                session=cast("Any", self._session),  # annotated as requests.Session
                api_root=self._api_root,
                service_file=self._service_file,
            )
            self._storage = await anyio.to_thread.run_sync(make)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self._aclose()
            if isinstance(exc, Exception):
                raise StoreError(
                    f"could not set up the GCS client: {_describe(exc)}", store_url=self.url
                ) from exc
            raise

    async def _aclose(self) -> None:
        """Close the client and its connections."""
        session, self._session, self._storage = self._session, None, None
        if session is not None:
            # Storage.close() would not close a session it was given, so we close ours.
            await session.close()

    async def stat(self, key: str) -> ObjectInfo:
        """Describe one object from its JSON API metadata.

        Raises:
            AssetNotFoundError: no such object.
            BucketNotFoundError: no such bucket.
        """
        storage, name = self._client(), self._name(key)
        async with self._map_errors(key):
            resource = await storage.download_metadata(
                self._bucket, name, headers={}, timeout=self._call_timeout
            )
        return self._info(resource)

    @asynccontextmanager
    async def read(
        self,
        key: str,
        *,
        offset: int = 0,
        length: int | None = None,
        if_match: str | None = None,
    ) -> AsyncIterator[ObjectStream]:
        """Stream an object, or ``length`` bytes from ``offset``, in ``chunk_size`` chunks.

        ``if_match`` is a generation. It is checked against the ``x-goog-generation`` of the
        response itself, which names the generation whose bytes that response carries, so
        the check is atomic without pinning ``?generation=`` (which gcloud-aio's
        ``download_stream`` cannot pass).

        Raises:
            AssetNotFoundError: no such object.
            BucketNotFoundError: no such bucket.
            PreconditionFailedError: the object no longer has generation ``if_match``.
            StoreError: the range starts beyond the end of the object (HTTP 416).
            StoreUnavailableError: the body stalled longer than the read timeout.
        """
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        storage, name = self._client(), self._name(key)
        if length == 0:
            info = await self.stat(key)
            self._check_generation(info.generation, if_match, key)
            yield ObjectStream(info, _no_chunks())
            return
        headers: dict[str, str] = {}  # fresh: gcloud-aio writes auth headers into it
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            headers["Range"] = f"bytes={offset}-{end}"
        async with self._map_errors(key):
            with anyio.fail_after(self._options.connect_timeout + self._options.read_timeout):
                stream = await storage.download_stream(
                    self._bucket, name, headers=headers, timeout=self._stream_timeout
                )
        async with stream as entered:
            response: aiohttp.ClientResponse = entered
            try:
                self._check_generation(response.headers.get("x-goog-generation"), if_match, key)
                # Trust Content-Range over the status: a 200 without one is the whole object
                # (GCS ignores ranges on gzip-transcoded objects), so cut the range out here.
                start = self._range_start(response, key) if headers else 0
                if start > offset:
                    raise InvalidStoreDataError(
                        f"asked for bytes from {offset}, got them from {start}",
                        key=key,
                        store_url=self.url,
                    )
                info = self._response_info(key, response)
                yield ObjectStream(
                    info, self._chunks(response, key, skip=offset - start, limit=length)
                )
            finally:
                response.release()  # closes the connection unless the body was drained

    async def list_objects(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, one JSON API page at a time.

        Raises:
            BucketNotFoundError: no such bucket.
        """
        storage = self._client()
        params = {
            "prefix": join_key(self._prefix, prefix) if self._prefix else prefix,
            # fake-gcs-server pages only when asked; GCS pages at 1000 regardless.
            "maxResults": str(self._options.list_page_size),
        }
        while True:
            async with self._map_errors(prefix or None, bucket_level=True):
                page = await storage.list_objects(
                    self._bucket, params=dict(params), headers={}, timeout=self._call_timeout
                )
            for resource in page.get("items", ()):
                yield self._info(resource)
            token = page.get("nextPageToken")
            if not token:
                return
            params["pageToken"] = str(token)

    async def put(
        self,
        key: str,
        data: bytes | Path,
        *,
        if_absent: bool = False,
        if_match: str | None = None,
    ) -> ObjectInfo:
        """Upload bytes or a local file in one request, streaming files from a worker thread.

        Raises:
            PreconditionFailedError: a condition did not hold (HTTP 412).
        """
        storage, name = self._client(), self._name(key)
        if if_absent and if_match is not None:
            raise ValueError("pass if_absent or if_match, not both")
        # GCS checks ifGenerationMatch atomically (412); fake-gcs-server 1.54 ignores it, so
        # tests cannot prove these conditions (tests/stores/test_gcs.py pins that gap).
        parameters: dict[str, str] = {}
        if if_absent:
            parameters["ifGenerationMatch"] = "0"
        elif if_match is not None:
            if not if_match.isdigit():
                raise PreconditionFailedError(
                    f"{if_match!r} is not a GCS generation", key=key, store_url=self.url
                )
            parameters["ifGenerationMatch"] = if_match
        body: bytes | IO[bytes]
        if isinstance(data, Path):
            body = await anyio.to_thread.run_sync(_open_nameless, data)
        else:
            body = data
        try:
            async with self._map_errors(key):
                # One simple upload streams any size: aiohttp reads file bodies in 64 KiB
                # blocks in its executor. gcloud-aio's resumable path would only resend the
                # whole file in one PUT, retrying even a 412 four times with sleeps.
                resource = await storage.upload(
                    self._bucket,
                    name,
                    body,
                    content_type="application/octet-stream",
                    parameters=parameters,
                    headers={},
                    force_resumable_upload=False,
                    timeout=self._call_timeout,
                )
        finally:
            if not isinstance(body, bytes):
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(body.close)
        return self._info(resource)

    async def delete(self, key: str) -> None:
        """Delete an object; a missing one is not an error.

        Raises:
            BucketNotFoundError: no such bucket.
        """
        storage, name = self._client(), self._name(key)
        try:
            async with self._map_errors(key):
                await storage.delete(self._bucket, name, headers={}, timeout=self._call_timeout)
        except AssetNotFoundError:
            pass

    # -- helpers -------------------------------------------------------------------------------

    def _client(self) -> Storage:
        if self._storage is None:
            raise RuntimeError("GCSStore is not open: use `async with store:`")
        return self._storage

    def _name(self, key: str) -> str:
        if not key.strip("/"):
            raise ValueError("a store key must not be empty")
        return join_key(self._prefix, key)

    def _info(self, resource: Mapping[str, Any]) -> ObjectInfo:
        name = resource.get("name")
        try:
            if not isinstance(name, str):
                raise TypeError("object resource without a name")
            key = name
            if self._prefix:
                head = self._prefix + "/"
                if not name.startswith(head):
                    raise ValueError(f"object name outside the prefix {self._prefix!r}")
                key = name[len(head) :]
            md5_b64 = resource.get("md5Hash")
            updated = resource.get("updated")
            generation = resource.get("generation")
            etag = resource.get("etag")
            return ObjectInfo(
                key=key,
                size=int(resource["size"]),
                etag=str(etag).strip('"') if etag else None,
                md5=base64.b64decode(md5_b64, validate=True).hex() if md5_b64 else None,
                crc32c=str(resource["crc32c"]) if resource.get("crc32c") else None,
                generation=str(generation) if generation is not None else None,
                updated=datetime.fromisoformat(updated) if updated else None,
            )
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise InvalidStoreDataError(
                f"malformed object metadata: {exc}", key=str(name), store_url=self.url
            ) from exc

    def _response_info(self, key: str, response: aiohttp.ClientResponse) -> ObjectInfo:
        """The whole object as a media download's headers describe it.

        ``x-goog-hash`` covers the entire object even on a ranged (206) answer.
        """
        headers = response.headers
        size_text = headers.get("Content-Range", "").rpartition("/")[2]
        if not size_text.isdigit():
            size_text = headers.get("Content-Length", "0")
        hashes = dict(
            part.strip().partition("=")[::2]
            for part in headers.getall("x-goog-hash", [])
            for part in part.split(",")
        )
        try:
            md5 = base64.b64decode(hashes["md5"], validate=True).hex() if "md5" in hashes else None
            size = int(size_text)
        except (ValueError, binascii.Error) as exc:
            raise InvalidStoreDataError(
                f"malformed response headers: {exc}", key=key, store_url=self.url
            ) from exc
        etag = headers.get("etag")
        return ObjectInfo(
            key=key,
            size=size,
            etag=etag.strip('"') if etag else None,
            md5=md5,
            crc32c=hashes.get("crc32c"),
            generation=headers.get("x-goog-generation"),
        )

    def _range_start(self, response: aiohttp.ClientResponse, key: str) -> int:
        """Where the body starts in the object, from ``Content-Range: bytes a-b/n``."""
        value = response.headers.get("Content-Range")
        if value is None:
            return 0
        unit, _, rest = value.partition(" ")
        first = rest.partition("-")[0]
        if unit != "bytes" or not first.isdigit():
            raise InvalidStoreDataError(
                f"unreadable Content-Range {value[:64]!r}", key=key, store_url=self.url
            )
        return int(first)

    def _check_generation(self, generation: str | None, if_match: str | None, key: str) -> None:
        if if_match is not None and generation != if_match:
            raise PreconditionFailedError(
                f"object is at generation {generation}, not {if_match}",
                key=key,
                store_url=self.url,
            )

    async def _chunks(
        self, response: aiohttp.ClientResponse, key: str, *, skip: int, limit: int | None
    ) -> AsyncIterator[bytes]:
        """Full ``chunk_size`` chunks of the body, each read under the idle timeout."""
        size = self._options.chunk_size
        remaining = limit  # bytes still to deliver, None for all
        parts: list[bytes] = []
        filled = 0
        while remaining is None or remaining > 0:
            if skip:
                want = min(skip, size)
            else:
                want = size - filled if remaining is None else min(size - filled, remaining)
            try:
                with anyio.fail_after(self._options.read_timeout):
                    data = await response.content.read(want)
            except Exception as exc:
                raise self._translate(exc, key) from exc
            if not data:
                break
            if skip:
                skip -= len(data)  # read() never returns more than asked
                continue
            if remaining is not None:
                remaining -= len(data)
            parts.append(data)
            filled += len(data)
            if filled == size:
                yield parts[0] if len(parts) == 1 else b"".join(parts)
                parts, filled = [], 0
        if parts:
            yield b"".join(parts)

    @asynccontextmanager
    async def _map_errors(
        self, key: str | None, *, bucket_level: bool = False
    ) -> AsyncIterator[None]:
        """Translate client errors into ours; a 404 is told apart as bucket or object."""
        try:
            yield
        except ModelkitError:
            raise
        except aiohttp.ClientResponseError as exc:
            if exc.status == 404 and (bucket_level or not await self._bucket_found()):
                raise BucketNotFoundError(
                    f"bucket {self._bucket!r} does not exist", key=key, store_url=self.url
                ) from exc
            raise self._translate(exc, key) from exc
        except Exception as exc:
            raise self._translate(exc, key) from exc

    async def _bucket_found(self) -> bool:
        """Whether the bucket exists; asked only after a 404, and True when unsure."""
        if self._bucket_exists or self._storage is None:
            return True
        try:
            with anyio.fail_after(self._options.connect_timeout + self._options.read_timeout):
                await self._storage.get_bucket_metadata(
                    self._bucket, headers={}, timeout=self._call_timeout
                )
        except aiohttp.ClientResponseError as exc:
            return exc.status != 404  # 403: objects readable, bucket metadata not: unsure
        except Exception:
            return True
        self._bucket_exists = True
        return True

    def _translate(self, exc: Exception, key: str | None) -> ModelkitError:
        where = {"key": key, "store_url": self.url}
        if isinstance(exc, ModelkitError):
            return exc
        if isinstance(exc, aiohttp.ClientResponseError):
            # Never str(exc): it holds the request URL (resumable sessions are capabilities).
            text = f"HTTP {exc.status}: {_google_message(exc.message)}"
            status = exc.status
            if status == 404:
                return AssetNotFoundError(f"no such object ({text})", **where)
            if status in (401, 403):
                return StorePermissionError(f"access denied ({text})", **where)
            if status == 412:
                return PreconditionFailedError(f"condition not met ({text})", **where)
            if status == 416:
                return StoreError(f"range starts beyond the end of the object ({text})", **where)
            if status in (408, 429) or status >= 500:
                return StoreUnavailableError(f"transient failure ({text})", **where)
            return StoreError(text, **where)
        if isinstance(exc, aiohttp.ClientSSLError):
            return StoreError(f"TLS failure: {_describe(exc)}", **where)
        if isinstance(exc, TimeoutError) and not isinstance(exc, aiohttp.ClientError):
            return StoreUnavailableError("the store stopped answering (timeout)", **where)
        if isinstance(
            exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError | TimeoutError | OSError
        ):
            return StoreUnavailableError(_describe(exc), **where)
        return StoreError(_describe(exc), **where)


def _google_message(message: str) -> str:
    """The reason and Google's error text out of gcloud-aio's ``"Reason: <body>"``."""
    reason, _, body = message.partition(": ")
    try:
        detail = json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        detail = body.strip()
    text = f"{reason}: {detail}" if detail and detail != reason else reason
    return text[:_MAX_MESSAGE]


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _open_nameless(path: Path) -> IO[bytes]:
    # Opened by descriptor so the file object has no name: aiohttp would otherwise send
    # the local file name in a Content-Disposition header.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    return open(fd, "rb")


async def _no_chunks() -> AsyncIterator[bytes]:
    empty: tuple[bytes, ...] = ()
    for chunk in empty:
        yield chunk
