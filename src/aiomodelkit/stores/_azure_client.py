"""Opening :class:`~aiomodelkit.stores.AzureStore`'s clients: one aiohttp session, two users.

Everything here runs once per store, on entry; the constructor does no I/O. The SDK's
client and our own GETs (``_azure_reads``) share one aiohttp session, so one pool bounds the
store's connections (``max_connections``). Choices that differ from the SDK's defaults:

* **No SDK retries** (``retry_total=0``): the fetcher retries itself, with backoff, and
  resumes broken bodies; two retry layers would multiply attempts and delay failing fast.
* **Our timeouts**, not the SDK's 300 s: ``connect_timeout`` to connect, ``read_timeout`` as
  an idle limit on each read of a response.
* **Bytes as stored**: no automatic decompression of a blob with a ``Content-Encoding``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING
from urllib.parse import quote

import aiohttp
import anyio
import anyio.to_thread
from azure.core.pipeline.transport import AioHttpTransport
from azure.storage.blob.aio import BlobServiceClient, ContainerClient

from ._azure_reads import BlobReader, ReadAuth
from ._base import MiB

if TYPE_CHECKING:
    from ._azure_auth import AzureAccess
    from ._base import StoreOptions

__all__ = ["AzureClients", "open_clients"]

# aiohttp's StreamReader buffer: big enough that one await returns a good part of a chunk.
_MAX_READ_BUFSIZE = 4 * MiB


@dataclass(frozen=True, slots=True)
class AzureClients:
    """What an open store holds: the session, the SDK's clients and our reader."""

    session: aiohttp.ClientSession
    service: BlobServiceClient
    container: ContainerClient
    reader: BlobReader

    async def aclose(self) -> None:
        """Close the SDK's client, then the session (the SDK does not own it)."""
        try:
            await self.service.close()
        finally:
            await self.session.close()


async def open_clients(
    access: AzureAccess,
    container: str,
    *,
    options: StoreOptions,
    max_single_put_size: int,
    block_size: int,
    store_url: str,
) -> AzureClients:
    """Open the session and build the clients for ``container`` of ``access``'s account."""
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=options.max_connections,
            limit_per_host=options.max_connections,
            ttl_dns_cache=300,
        ),
        timeout=aiohttp.ClientTimeout(
            total=None, sock_connect=options.connect_timeout, sock_read=options.read_timeout
        ),
        auto_decompress=False,  # the blob's bytes, whatever its Content-Encoding
        cookie_jar=aiohttp.DummyCookieJar(),
        read_bufsize=max(64 * 1024, min(options.chunk_size, _MAX_READ_BUFSIZE)),
    )
    try:
        transport = AioHttpTransport(
            session=session,
            session_owner=False,
            connection_timeout=options.connect_timeout,
            read_timeout=options.read_timeout,
        )
        # Built in a worker thread: the SDK's User-Agent policy looks up platform facts.
        make = partial(
            BlobServiceClient,
            access.account_url,
            credential=access.sdk_credential(),
            transport=transport,
            retry_total=0,
            max_single_put_size=max_single_put_size,
            max_block_size=block_size,
        )
        service = await anyio.to_thread.run_sync(make)
        reader = BlobReader(
            session,
            f"{access.account_url}/{quote(container, safe='')}",
            ReadAuth(access, container),
            api_version=service.api_version,
            store_url=store_url,
        )
        return AzureClients(session, service, service.get_container_client(container), reader)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await session.close()
        raise
