"""Google Cloud Storage through gcloud-aio-storage, on an aiohttp session we own.

We take from gcloud-aio the JSON API calls and its credential handling, and keep control of
what it gets wrong for large assets: ``download()`` buffers whole objects and its ``timeout``
is a whole-transfer deadline, so reads go through ``download_stream`` with no total deadline
and our own per-chunk idle timeout. gcloud-aio adds auth headers into the dict it is given, so
every call gets a fresh one.

:class:`GCSStore` holds the operations; ``_gcs_responses`` reads what GCS answers (object
resources, download headers, bodies), ``_gcs_uploads`` sends uploads and ``_gcs_errors``
translates errors into ours; ``_gcs_auth`` refuses at once a client with no credentials.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import aiohttp
import anyio
from gcloud.aio.storage import Storage
from gcloud.aio.storage.storage import init_api_root

from aiomodelkit._errors import (
    AssetNotFoundError,
    BucketNotFoundError,
    InvalidStoreDataError,
    ModelkitError,
    NotModifiedError,
    StoreError,
    StorePermissionError,
)
from aiomodelkit._lifecycle import AsyncResource

from ._base import (
    DEFAULT_PREFIX,
    MiB,
    ObjectInfo,
    ObjectStream,
    StoreOptions,
    check_read_conditions,
    join_key,
)
from ._gcs_auth import check_credentials
from ._gcs_errors import describe, translate, translated
from ._gcs_responses import check_generation, object_info, response_info, unless_unchanged
from ._gcs_uploads import upload_object
from ._http_body import body_chunks, no_chunks, range_start

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

__all__ = ["GCSStore"]

# aiohttp's StreamReader buffer: big enough that one await returns a good part of a chunk.
_MAX_READ_BUFSIZE = 4 * MiB


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

    With no credentials anywhere (no file, no metadata server), its first operation raises
    :class:`~aiomodelkit.StorePermissionError` at once, saying how to provide them.
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
        self._url = f"gs://{bucket}/{self._prefix}".rstrip("/")
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
        return self._url

    @property
    def endpoint(self) -> str | None:
        """The API root when not Google's (an emulator), else None."""
        return self._api_root

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
            # An emulator (api_root, else STORAGE_EMULATOR_HOST) needs no credentials.
            is_emulator, api_root = init_api_root(self._api_root)
            # Storage() builds a Token, which reads credential files: keep that off the loop.
            make = partial(
                Storage,
                session=cast("Any", self._session),  # annotated as requests.Session
                api_root=api_root,
                api_is_dev=is_emulator,
                service_file=self._service_file,
            )
            self._storage = await anyio.to_thread.run_sync(make)
            if not is_emulator:
                await check_credentials(self._storage, store_url=self._url)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self._aclose()
            if isinstance(exc, ModelkitError):
                raise
            if isinstance(exc, FileNotFoundError) and exc.filename:
                raise StorePermissionError(
                    f"the Google credentials file {str(exc.filename)!r} does not exist "
                    "(GOOGLE_APPLICATION_CREDENTIALS or service_file)",
                    store_url=self._url,
                ) from exc
            if isinstance(exc, Exception):
                raise StoreError(
                    f"could not set up the GCS client: {describe(exc)}", store_url=self._url
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
        return object_info(resource, prefix=self._prefix, store_url=self._url)

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
        """Stream an object, or ``length`` bytes from ``offset``, as the socket delivers it.

        ``if_match`` is a generation. It is checked against the ``x-goog-generation`` of the
        response itself, which names the generation whose bytes that response carries, so
        the check is atomic without pinning ``?generation=`` (which gcloud-aio's
        ``download_stream`` cannot pass). ``if_none_match``, a generation too, goes out as
        ``ifGenerationNotMatch`` (GCS answers 304, no body) and is checked the same way
        against a 200 (the emulators ignore it).

        Raises:
            AssetNotFoundError: no such object.
            BucketNotFoundError: no such bucket.
            NotModifiedError: the object still has generation ``if_none_match``.
            PreconditionFailedError: the object no longer has generation ``if_match``.
            StoreError: the range starts beyond the end of the object (HTTP 416).
            StoreUnavailableError: the body stalled longer than the read timeout.
            ValueError: ``if_none_match`` with ``if_match`` or a range.
        """
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        check_read_conditions(offset, length, if_match, if_none_match)
        storage, name = self._client(), self._name(key)
        if length == 0:
            info = await self.stat(key)
            check_generation(info.generation, if_match, key, store_url=self._url)
            yield ObjectStream(info, no_chunks())
            return
        headers: dict[str, str] = {}  # fresh: gcloud-aio writes auth headers into it
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            headers["Range"] = f"bytes={offset}-{end}"
        download = storage.download_stream
        private = getattr(storage, "_download_stream", None)
        if if_none_match is not None and if_none_match.isdigit() and private is not None:
            # download_stream() passes no query parameters; its private twin does (gcloud-aio
            # 9.x), and only ifGenerationNotMatch spares the body. Without it, the check
            # of the answer below still holds: the body is then merely wasted.
            query = {"alt": "media", "ifGenerationNotMatch": if_none_match}
            download = partial(private, params=query)
        async with self._map_errors(key):
            with anyio.fail_after(self._options.connect_timeout + self._options.read_timeout):
                stream = await download(
                    self._bucket, name, headers=headers, timeout=self._stream_timeout
                )
        async with stream as entered:
            response: aiohttp.ClientResponse = entered
            try:
                if response.status == 304 and if_none_match is not None:
                    raise NotModifiedError.since(if_none_match, key=key, store_url=self._url)
                generation = response.headers.get("x-goog-generation")
                check_generation(generation, if_match, key, store_url=self._url)
                # Trust Content-Range over the status: a 200 without one is the whole object
                # (GCS ignores ranges on gzip-transcoded objects), so cut the range out here.
                start = range_start(response, key, store_url=self._url) if headers else 0
                if start > offset:
                    raise InvalidStoreDataError(
                        f"asked for bytes from {offset}, got them from {start}",
                        key=key,
                        store_url=self._url,
                    )
                info = response_info(key, response, store_url=self._url)
                if if_none_match is not None:
                    info = await unless_unchanged(info, if_none_match, self.stat, self._url)
                chunks = body_chunks(
                    response,
                    skip=offset - start,
                    limit=length,
                    chunk_size=self._options.chunk_size,
                    read_timeout=self._options.read_timeout,
                    mapped=partial(translated, key, self._url),
                )
                yield ObjectStream(info, chunks)
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
                yield object_info(resource, prefix=self._prefix, store_url=self._url)
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
        """Upload bytes or a local file in one request (see ``_gcs_uploads``).

        Raises:
            PreconditionFailedError: a condition did not hold (HTTP 412).
        """
        storage, name = self._client(), self._name(key)
        resource = await upload_object(
            storage,
            bucket=self._bucket,
            name=name,
            key=key,
            data=data,
            if_absent=if_absent,
            if_match=if_match,
            request_timeout=self._call_timeout,
            mapped=partial(self._map_errors, key),
            store_url=self._url,
        )
        return object_info(resource, prefix=self._prefix, store_url=self._url)

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
                    f"bucket {self._bucket!r} does not exist", key=key, store_url=self._url
                ) from exc
            raise translate(exc, key, self._url) from exc
        except Exception as exc:
            raise translate(exc, key, self._url) from exc

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
