"""Blob GETs sent by aiohttp, authorised here, and streamed in ``chunk_size`` pieces.

``azure-storage-blob``'s downloader is built to fill memory, not to stream: its first
request reads up to ``max_single_get_size`` (32 MiB) into one ``bytes`` before returning,
each later chunk is a separate ranged GET read whole, and it retries broken bodies itself
with ``asyncio.sleep(1)``. So reads skip it: one GET per read (one per range), its body read
as it arrives, each chunk under our idle timeout, on the aiohttp session the SDK also uses.

Authorising a GET needs no canonical-request signing of our own. With an account key we
sign, once an hour, a read-only SAS for the container (``generate_container_sas``, an HMAC
the SDK computes) and append it to every GET; a SAS token is appended as given; an Entra ID
credential gives a bearer token, cached until five minutes before it expires.

Measured on Azurite (2,000 reads of 16 KiB, 32 in flight, 2-core machine): 0.36 ms of client
CPU per :meth:`AzureStore.read <aiomodelkit.stores.AzureStore.read>`, request and body included.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote
from xml.etree import ElementTree

import anyio
import yarl

from aiomodelkit._errors import (
    InvalidStoreDataError,
    NotModifiedError,
    PreconditionFailedError,
    StoreError,
)

from ._azure_errors import status_error
from ._base import ObjectInfo, quote_etag, same_token

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import aiohttp
    from azure.core.credentials import AccessToken

    from ._azure_auth import AzureAccess

__all__ = [
    "BlobReader",
    "ReadAuth",
    "check_offset",
    "md5_hex",
    "parse_http_date",
    "quote_etag",
    "response_info",
]

#: The OAuth scope of Azure Storage.
STORAGE_SCOPE = "https://storage.azure.com/.default"
#: An error answer is a short XML document; read at most this much of it.
_MAX_ERROR_BODY = 64 * 1024
#: How long the container SAS we sign for reads lives, and when we sign the next one.
_SAS_LIFETIME = timedelta(hours=1)
_SAS_RENEW_BEFORE = timedelta(minutes=15)
#: Tokens are renewed this many seconds before they expire.
_TOKEN_MARGIN = 300


class ReadAuth:
    """What each GET carries to prove who sends it: a query string, headers, or both.

    Args:
        access: the account and its credential.
        container: the container the GETs read from.
    """

    def __init__(self, access: AzureAccess, container: str) -> None:
        self._access = access
        self._container = container
        self._query = access.sas_token or ""
        self._query_renew_at: datetime | None = None
        self._token: AccessToken | None = None
        self._lock = anyio.Lock()
        self._secrets: list[str] = list(access.secrets)

    @property
    def secrets(self) -> Sequence[str]:
        """Every secret handed out so far (signed SAS tokens included), for redaction."""
        return self._secrets

    async def query_and_headers(self) -> tuple[str, dict[str, str]]:
        """The query string (without ``?``, maybe empty) and headers of the next GET."""
        kind = self._access.kind
        if kind == "key":
            now = datetime.now(UTC)
            if self._query_renew_at is None or now >= self._query_renew_at:
                self._query = self._sign_container_sas(now)
                self._query_renew_at = now + _SAS_LIFETIME - _SAS_RENEW_BEFORE
            return self._query, {}
        if kind == "token":
            return "", {"Authorization": f"Bearer {await self._bearer()}"}
        return self._query, {}

    def _sign_container_sas(self, now: datetime) -> str:
        from azure.storage.blob import generate_container_sas

        assert self._access.account_name is not None
        assert self._access.account_key is not None
        sas = generate_container_sas(
            self._access.account_name,
            self._container,
            account_key=self._access.account_key,
            permission="r",
            start=now - timedelta(minutes=5),  # tolerate clock skew
            expiry=now + _SAS_LIFETIME,
        )
        self._secrets.extend(
            part.partition("=")[2] for part in sas.split("&") if part.startswith("sig=")
        )
        return sas

    async def _bearer(self) -> str:
        token = self._token
        if token is None or token.expires_on - _TOKEN_MARGIN <= time.time():
            async with self._lock:
                token = self._token
                if token is None or token.expires_on - _TOKEN_MARGIN <= time.time():
                    credential = self._access.token_credential
                    assert credential is not None
                    token = self._token = await credential.get_token(STORAGE_SCOPE)
        return token.token


class BlobReader:
    """Sends blob GETs for one container over an aiohttp session.

    Args:
        session: an aiohttp session with ``auto_decompress=False`` (the bytes are the
            blob's, whatever its ``Content-Encoding``).
        container_url: ``<account URL>/<container>``, without query.
        auth: what authorises each GET.
        api_version: the ``x-ms-version`` to send (the SDK's).
        store_url: the credential-free URL of the store, for errors.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        container_url: str,
        auth: ReadAuth,
        *,
        api_version: str,
        store_url: str,
    ) -> None:
        self._session = session
        self._base = container_url.rstrip("/") + "/"
        self._auth = auth
        self._api_version = api_version
        self._store_url = store_url

    @property
    def secrets(self) -> Sequence[str]:
        """What error messages must blank out (see :attr:`ReadAuth.secrets`)."""
        return self._auth.secrets

    async def get(
        self,
        name: str,
        key: str,
        *,
        byte_range: str | None,
        if_match: str | None,
        if_none_match: str | None = None,
    ) -> aiohttp.ClientResponse | None:
        """GET blob ``name`` (``key`` in messages); return the 200/206 response, unread, or
        None when the range starts at or past the end of the blob (416).

        Raises:
            NotModifiedError: the blob still has ETag ``if_none_match`` (304, no body).
            ModelkitError: the service answered an error (mapped by ``_azure_errors``);
                aiohttp's own errors pass through, for the caller's error mapping.
        """
        query, headers = await self._auth.query_and_headers()
        headers["x-ms-version"] = self._api_version
        headers["x-ms-date"] = email.utils.formatdate(usegmt=True)
        if byte_range is not None:
            headers["x-ms-range"] = byte_range
        if if_match is not None:
            headers["If-Match"] = quote_etag(if_match)
        if if_none_match is not None:
            headers["If-None-Match"] = quote_etag(if_none_match)
        url = self._base + quote(name, safe="/~") + (f"?{query}" if query else "")
        # encoded=True: yarl must send the SAS token exactly as it was signed.
        response = await self._session.get(
            yarl.URL(url, encoded=True), headers=headers, allow_redirects=False
        )
        if response.status in (200, 206):
            etag = response.headers.get("ETag")
            if if_none_match is not None and same_token(etag, if_none_match):
                # The server ignored If-None-Match and sent the body: the ETags still tell.
                response.close()
                raise NotModifiedError.since(
                    if_none_match.strip('"'), key=key, store_url=self._store_url
                )
            return response
        if response.status == 416 and byte_range is not None:
            response.close()
            return None
        if response.status == 304 and if_none_match is not None:
            response.release()  # no body: the connection goes back to the pool
            raise NotModifiedError.since(
                if_none_match.strip('"'), key=key, store_url=self._store_url
            )
        try:
            body = await response.content.read(_MAX_ERROR_BODY)
        finally:
            response.close()
        code, message = _error_fields(response.headers, body)
        raise status_error(
            response.status,
            code,
            message,
            key=key,
            store_url=self._store_url,
            secrets=self._auth.secrets,
            headers=response.headers,
        )


def check_offset(
    info: ObjectInfo, offset: int, if_match: str | None, *, store_url: str
) -> ObjectInfo:
    """``info`` (from a stat), if ``if_match`` and a read from ``offset`` agree with it.

    Raises:
        PreconditionFailedError: the blob no longer has ETag ``if_match``.
        StoreError: ``offset`` is beyond the end of the blob.
    """
    if if_match is not None and info.etag != if_match.strip('"'):
        raise PreconditionFailedError(
            f"object has ETag {info.etag}, not {if_match}", key=info.key, store_url=store_url
        )
    if offset > info.size:
        raise StoreError(
            f"range start {offset} is beyond the object's {info.size} bytes",
            key=info.key,
            store_url=store_url,
        )
    return info


def _error_fields(headers: Mapping[str, str], body: bytes) -> tuple[str, str]:
    code, message = headers.get("x-ms-error-code", ""), ""
    try:
        root = ElementTree.fromstring(body) if body else None
    except ElementTree.ParseError:
        root = None
    if root is not None:
        code = code or root.findtext("Code") or ""
        message = root.findtext("Message") or ""
    return code, message


def md5_hex(value: bytes | bytearray | str | None) -> str | None:
    """A Content-MD5 (raw bytes or base64) as hex; None when absent or unreadable.

    Example:
        >>> md5_hex("XrY7u+Ae7tCTyyK7j1rNww==")
        '5eb63bbbe01eeed093cb22bb8f5acdc3'
    """
    if not value:
        return None
    if isinstance(value, str):
        try:
            value = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
    return bytes(value).hex() if len(value) == 16 else None


def parse_http_date(value: str | None) -> datetime | None:
    """A ``Last-Modified`` header as an aware datetime; None when absent or unreadable."""
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


def response_info(key: str, response: aiohttp.ClientResponse, *, store_url: str) -> ObjectInfo:
    """The whole blob as a GET's headers describe it, for a ranged answer too.

    A whole GET carries the blob's stored MD5 as ``Content-MD5``, a ranged one as
    ``x-ms-blob-content-md5``.
    """
    headers = response.headers
    size_text = headers.get("Content-Range", "").rpartition("/")[2]
    if not size_text.isdigit():
        size_text = headers.get("Content-Length", "")
    if not size_text.isdigit():
        raise InvalidStoreDataError(
            "the response gives no object size", key=key, store_url=store_url
        )
    md5 = headers.get("x-ms-blob-content-md5")
    if md5 is None and "Content-Range" not in headers:
        md5 = headers.get("Content-MD5")
    etag = headers.get("ETag")
    return ObjectInfo(
        key=key,
        size=int(size_text),
        etag=etag.strip('"') if etag else None,
        md5=md5_hex(md5),
        updated=parse_http_date(headers.get("Last-Modified")),
    )
