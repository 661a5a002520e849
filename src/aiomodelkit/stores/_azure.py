"""Azure Blob Storage through ``azure-storage-blob``'s asyncio client, on an aiohttp session we own.

The layout is modelkit's: a container (modelkit's ``MODELKIT_STORAGE_BUCKET``) and a name
prefix (``modelkit-assets`` by default), so ``az://container/prefix`` reads and writes the
same blobs as modelkit 0.1.3's Azure driver. :class:`AzureStore` holds the operations; its
siblings hold the rest:

* ``_azure_client``: the aiohttp session, which the SDK's client and our GETs share.
* ``_azure_auth``: the credential forms (connection string, account URL with a key, a SAS
  token or Entra ID) and where they come from.
* ``_azure_reads``: GETs sent by aiohttp and streamed piece by piece, since the
  SDK's downloader buffers up to 32 MiB before returning anything.
* ``_azure_uploads``: one Put Blob, or staged blocks above the threshold, bounded memory.
* ``_azure_errors``: the SDK's and aiohttp's errors, translated into ours.

We take from the SDK what it does well: authentication, listings (XML, continuation
markers), conditional headers, error codes; its retries are off (see ``_azure_client``).
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from aiomodelkit._errors import (
    AssetNotFoundError,
    ModelkitError,
    StoreError,
)
from aiomodelkit._lifecycle import AsyncResource

from ._azure_auth import AzureAccess, access_from_arguments, resolve_access
from ._azure_client import AzureClients, open_clients
from ._azure_errors import describe, map_azure_errors
from ._azure_reads import check_offset, md5_hex, response_info
from ._azure_uploads import BLOCK_SIZE, BLOCK_THRESHOLD, put_blob
from ._base import (
    DEFAULT_PREFIX,
    ObjectInfo,
    ObjectStream,
    StoreOptions,
    check_read_conditions,
    join_key,
)
from ._http_body import body_chunks, no_chunks, range_start

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from contextlib import AbstractContextManager
    from pathlib import Path

    import aiohttp
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.storage.blob.aio import ContainerClient

    from ._azure_reads import BlobReader

__all__ = ["BLOCK_SIZE", "BLOCK_THRESHOLD", "AzureStore"]


class AzureStore(AsyncResource):
    """A store in an Azure Blob Storage container, under a name prefix.

    Credentials, the first form given wins (see ``_azure_auth``): ``connection_string``;
    ``account_url`` (or ``account_name``) with ``account_key``, ``sas_token`` or an async
    Entra ID ``credential``; ``account_url`` alone, for azure-identity's
    ``DefaultAzureCredential``. With no argument, the store reads the same forms from the
    environment when it opens: ``AZURE_STORAGE_CONNECTION_STRING`` (as modelkit does), else
    ``AZURE_STORAGE_ACCOUNT`` with ``AZURE_STORAGE_KEY`` or ``AZURE_STORAGE_SAS_TOKEN``, or
    alone for ``DefaultAzureCredential``.

    Args:
        container: the container (modelkit's bucket).
        prefix: the blob name prefix (modelkit's ``MODELKIT_STORAGE_PREFIX``).
        options: pool size, chunk size and timeouts.
        connection_string: an Azure Storage connection string.
        account_url: the blob endpoint (``https://acct.blob.core.windows.net``, or
            ``http://127.0.0.1:10000/devstoreaccount1`` for Azurite).
        account_name: the account, when the URL does not tell it.
        account_key: the account's shared key.
        sas_token: a SAS token granting access to the container.
        credential: an async token credential (``azure.identity.aio``), which the caller
            keeps and closes.
        block_threshold: uploads larger than this many bytes go in blocks.
        block_size: the size of each block.

    Example:
        >>> store = AzureStore("models", "team-a", connection_string="UseDevelopmentStorage=true")
        >>> store.url
        'az://models/team-a'
        >>> store
        AzureStore('models', 'team-a', account='devstoreaccount1')
    """

    def __init__(
        self,
        container: str,
        prefix: str = DEFAULT_PREFIX,
        *,
        options: StoreOptions | None = None,
        connection_string: str | None = None,
        account_url: str | None = None,
        account_name: str | None = None,
        account_key: str | None = None,
        sas_token: str | None = None,
        credential: AsyncTokenCredential | None = None,
        block_threshold: int = BLOCK_THRESHOLD,
        block_size: int = BLOCK_SIZE,
    ) -> None:
        if not container or "/" in container:
            raise ValueError("the container name must be one non-empty path segment")
        if block_size < 1 or block_threshold < 0:
            raise ValueError("block_size must be positive and block_threshold not negative")
        self._container = container
        self._prefix = prefix.strip("/")
        self._options = options or StoreOptions()
        # Checked now (a contradiction fails at once), used on entry; None: the environment.
        self._given = access_from_arguments(
            connection_string=connection_string,
            account_url=account_url,
            account_name=account_name,
            account_key=account_key,
            sas_token=sas_token,
            credential=credential,
        )
        self._block_threshold = block_threshold
        self._block_size = block_size
        self._access: AzureAccess | None = None
        self._clients: AzureClients | None = None
        self._secrets: tuple[str, ...] = self._given.secrets if self._given else ()

    def __repr__(self) -> str:
        access = self._access or self._given
        account = f", account={access.account_name!r}" if access and access.account_name else ""
        return f"AzureStore({self._container!r}, {self._prefix!r}{account})"

    @property
    def url(self) -> str:
        """``az://container/prefix``."""
        return f"az://{self._container}/{self._prefix}".rstrip("/")

    @property
    def endpoint(self) -> str | None:
        """The account's blob endpoint, once known (given, or resolved when opened)."""
        access = self._access or self._given
        return access.account_url if access is not None else None

    @property
    def supports_conditional_writes(self) -> bool:
        """True: Put Blob and Put Block List enforce ``If-None-Match: *`` and ``If-Match``
        (Azure and Azurite alike)."""
        return True

    # -- lifecycle ------------------------------------------------------------------------

    async def _aopen(self) -> None:
        try:
            access = await anyio.to_thread.run_sync(self._resolve_access)
            self._access = access
            self._secrets = access.secrets
            self._clients = await open_clients(
                access,
                self._container,
                options=self._options,
                max_single_put_size=max(self._block_threshold, 1),
                block_size=self._block_size,
                store_url=self.url,
            )
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self._aclose()
            if isinstance(exc, Exception) and not isinstance(exc, ModelkitError | ValueError):
                raise StoreError(
                    f"could not set up the Azure client: {describe(exc, self._secrets)}",
                    store_url=self.url,
                ) from exc
            raise

    def _resolve_access(self) -> AzureAccess:
        return resolve_access(self._given)

    async def _aclose(self) -> None:
        """Close the client, its connections and a credential the store created."""
        clients, self._clients = self._clients, None
        access = self._access
        try:
            if clients is not None:
                await clients.aclose()
        finally:
            if access is not None and access.owns_credential and access.token_credential:
                await access.token_credential.close()

    def _require(self) -> tuple[ContainerClient, BlobReader]:
        if self._clients is None:
            raise RuntimeError(f"{self!r} is not open; use 'async with store:'")
        return self._clients.container, self._clients.reader

    def _map_errors(self, key: str | None) -> AbstractContextManager[None]:
        """Translate SDK and aiohttp errors into ours, at the boundary (see _azure_errors)."""
        secrets = self._reader_secrets()
        return map_azure_errors(key=key, store_url=self.url, secrets=secrets)

    def _reader_secrets(self) -> tuple[str, ...]:
        if self._clients is not None:
            return (*self._secrets, *self._clients.reader.secrets)
        return self._secrets

    # -- reads ----------------------------------------------------------------------------

    async def stat(self, key: str) -> ObjectInfo:
        """Describe one blob from its properties.

        Raises:
            AssetNotFoundError: no such blob.
            BucketNotFoundError: no such container.
        """
        containers, _ = self._require()
        blob = containers.get_blob_client(self._name(key))
        with self._map_errors(key):
            props = await blob.get_blob_properties()
        etag = props.etag
        return ObjectInfo(
            key=key,
            size=int(props.size),
            etag=str(etag).strip('"') if etag else None,
            md5=md5_hex(props.content_settings.content_md5),
            updated=props.last_modified,
        )

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
        """Stream a blob, or ``length`` bytes from ``offset``, as the socket delivers it.

        ``if_match`` (an ETag) goes out as ``If-Match``: a blob replaced since answers 412.
        ``if_none_match`` goes out as ``If-None-Match``: an unchanged blob answers 304
        without a body (Azure and Azurite); the reader checks a 200 against it too.

        Raises:
            AssetNotFoundError: no such blob.
            BucketNotFoundError: no such container.
            NotModifiedError: the blob still has ETag ``if_none_match``.
            PreconditionFailedError: the blob no longer has ETag ``if_match``.
            StoreError: ``offset`` is beyond the end of the blob.
            StoreUnavailableError: the body stalled longer than the read timeout.
            ValueError: ``if_none_match`` with ``if_match`` or a range.
        """
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        check_read_conditions(offset, length, if_match, if_none_match)
        _, reader = self._require()
        name = self._name(key)
        byte_range = None
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            byte_range = f"bytes={offset}-{end}"
        response: aiohttp.ClientResponse | None = None
        opts = self._options
        # The yield stays outside _map_errors: the caller's own errors must pass untouched.
        with self._map_errors(key):
            if length != 0:
                with anyio.fail_after(opts.connect_timeout + opts.read_timeout):
                    response = await reader.get(
                        name,
                        key,
                        byte_range=byte_range,
                        if_match=if_match,
                        if_none_match=if_none_match,
                    )
            if response is None:
                # Nothing to read (length 0), or a range starting at or past the end (416),
                # where the other stores yield nothing at the very end: check key and offset.
                info = check_offset(await self.stat(key), offset, if_match, store_url=self.url)
        if response is None:
            yield ObjectStream(info, no_chunks())
            return
        try:
            start = range_start(response, key, store_url=self.url) if byte_range else 0
            if start > offset:
                raise StoreError(
                    f"asked for bytes from {offset}, got them from {start}",
                    key=key,
                    store_url=self.url,
                )
            chunks = body_chunks(
                response,
                skip=offset - start,
                limit=length,
                chunk_size=opts.chunk_size,
                read_timeout=opts.read_timeout,
                mapped=partial(self._map_errors, key),
            )
            yield ObjectStream(response_info(key, response, store_url=self.url), chunks)
        finally:
            # A drained body returns its connection to the pool; an undrained one is dropped
            # rather than handed to the next request half-read.
            response.release()

    async def list_objects(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every blob under the store prefix whose key starts with ``prefix``, page by page.

        Raises:
            BucketNotFoundError: no such container.
        """
        containers, _ = self._require()
        full_prefix = join_key(self._prefix, prefix)
        strip = len(join_key(self._prefix, ""))
        pages: Any = containers.list_blobs(
            name_starts_with=full_prefix or None,
            results_per_page=self._options.list_page_size,
        ).by_page()
        while True:
            with self._map_errors(None):
                try:
                    page = await anext(pages)
                except StopAsyncIteration:
                    return
                items = [item async for item in page]
            for item in items:
                key = item.name[strip:]
                if not key or key.endswith("/"):
                    continue  # "folder" markers made by tools are not objects
                yield ObjectInfo(
                    key=key,
                    size=int(item.size),
                    etag=str(item.etag).strip('"') if item.etag else None,
                    md5=md5_hex(item.content_settings.content_md5),
                    updated=item.last_modified,
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
        """Upload bytes or a file; above the block threshold, in staged blocks.

        Raises:
            PreconditionFailedError: ``if_absent`` and the blob exists, or ``if_match`` and
                the blob changed or is gone.
            BucketNotFoundError: no such container.
        """
        containers, _ = self._require()
        return await put_blob(
            containers.get_blob_client(self._name(key)),
            key=key,
            data=data,
            if_absent=if_absent,
            if_match=if_match,
            block_threshold=self._block_threshold,
            block_size=self._block_size,
            mapped=partial(self._map_errors, key),
            store_url=self.url,
        )

    async def delete(self, key: str) -> None:
        """Delete a blob (and its snapshots); a missing one is not an error.

        Raises:
            BucketNotFoundError: no such container.
        """
        containers, _ = self._require()
        blob = containers.get_blob_client(self._name(key))
        try:
            with self._map_errors(key):
                await blob.delete_blob(delete_snapshots="include")
        except AssetNotFoundError:
            pass

    def _name(self, key: str) -> str:
        if not key.strip("/"):
            raise ValueError("a store key must not be empty")
        return join_key(self._prefix, key)
