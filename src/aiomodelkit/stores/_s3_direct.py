"""GETs routed by botocore, signed here and sent by aiohttp: a quarter of the CPU per GET.

botocore's request pipeline (about a dozen event hooks, endpoint-ruleset parameters, the
retry handler, response parsing into a dict) costs about 0.6 ms of CPU per ``GetObject``
even after :class:`~aiomodelkit.stores.S3Store`'s trimming, and thousands of small objects
are bound by that CPU, not by the network. Yet for one bucket the only part of it that
changes from one GET to the next is the key and the signature. So, once per bucket,
botocore presigns a probe URL, which tells where the bucket's objects live (its endpoint
rules: addressing style, region, FIPS, dual-stack, access points) and how requests there
are signed (the credential scope's region and service). Then each GET is that base URL plus
the key, quoted as botocore quotes it, signed (SigV4, see ``_sigv4``) with the client's
credentials (refreshed as botocore refreshes them), and sent over one aiohttp session.
Measured side by side on SeaweedFS (2,000 GETs of 16 KiB, 64 in flight, ``python -m
benchmarks.s3_get_cost``): 0.61 ms of client CPU per GET through ``get_object``, 0.17 ms
through ``S3Store.read``.

botocore keeps everything this does not handle, so that its behaviour applies unchanged:
buckets whose probe URL is not plain SigV4 (SigV4a, S3 Express sessions, anonymous
clients) use ``get_object``, and so do buckets that answer a redirect or a region error
(botocore's redirector finds their region, and keeps it for the client). Other error answers
are parsed here into the ``ClientError`` that botocore would raise, so they map to the same
errors of ours.
"""

from __future__ import annotations

import base64
import email.utils
import inspect
import ssl
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit
from urllib.request import getproxies, proxy_bypass
from xml.etree import ElementTree

import botocore.exceptions  # type: ignore[import-untyped]
import yarl
from botocore.parsers import DEFAULT_TIMESTAMP_PARSER  # type: ignore[import-untyped]
from botocore.utils import percent_encode  # type: ignore[import-untyped]

from ._http_body import next_piece
from ._s3_errors import error_code
from ._sigv4 import sign_get

if TYPE_CHECKING:
    from collections.abc import Mapping

    import aiohttp
    from types_aiobotocore_s3 import S3Client

__all__ = [
    "DirectGetter",
    "client_error",
    "env_proxy",
    "parse_route",
    "parse_timestamp",
    "ssl_context",
]

#: The key of the URL presigned once per bucket to learn its route (never requested).
_PROBE = "aiomodelkit-probe"
#: An error answer is a short XML document; read at most this much of it.
MAX_ERROR_BODY = 64 * 1024
#: Error codes that mean "wrong region or endpoint": botocore's redirector knows what to do.
_REDIRECT_CODES = frozenset(
    {"AuthorizationHeaderMalformed", "AuthorizationQueryParametersError", "PermanentRedirect",
     "TemporaryRedirect", "IllegalLocationConstraintException"}
)  # fmt: skip


def ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    """A verifying TLS context with botocore's CA bundle (``AWS_CA_BUNDLE`` / ``ca_bundle``
    when set, else certifi's), so both transports trust the same certificates.

    Blocking (reads the bundle): call it from a worker thread.
    """
    from botocore.httpsession import get_cert_path  # type: ignore[import-untyped]

    return ssl.create_default_context(cafile=get_cert_path(ca_bundle or True))


class DirectBody:
    """A GET's body, read with ``read(n)``; ``close`` keeps the connection when drained.

    Each read hands over one piece as aiohttp buffered it (one socket read's worth), never a
    join of several: ``StreamReader.read(n)`` copies every buffered piece into one new
    ``bytes`` (about 0.1 s of CPU per GiB on loopback), and the pieces go to ``os.pwritev``
    as they are anyway.
    """

    __slots__ = ("_response", "_rest")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self._rest = b""  # what a read shorter than the piece left over

    async def read(self, size: int) -> bytes:
        """Up to ``size`` bytes; ``b""`` at the end of the body."""
        piece, self._rest = self._rest, b""
        if not piece:
            piece = await next_piece(self._response.content)
        if len(piece) > size:
            piece, self._rest = piece[:size], piece[size:]
        return piece

    def close(self) -> None:
        """Return the connection to the pool if the body was read to its end, else drop it."""
        if self._response.content.is_eof():
            self._response.release()
        else:
            self._response.close()


@dataclass(frozen=True, slots=True)
class _Route:
    """Where a bucket's objects are and how requests to them are signed."""

    origin: str  # scheme://netloc
    host: str  # the Host header (the port only when it is not the scheme's default)
    path: str  # the path of the key "" (ends with "/<bucket>/" in path style, else "/")
    region: str
    service: str
    proxy: yarl.URL | None = None  # HTTP(S)_PROXY for this origin, unless NO_PROXY covers it
    proxy_headers: dict[str, str] | None = None  # Proxy-Authorization, from the proxy URL


class DirectGetter:
    """Sends ``GetObject`` requests signed for ``client``'s buckets over ``session``.

    Args:
        client: the aiobotocore S3 client (routes, and takes the requests this cannot).
        session: an aiohttp session with ``auto_decompress=False`` (the bytes are the
            object's, whatever its ``Content-Encoding``).
        credentials: the client's credentials (botocore ``Credentials`` or aiobotocore's
            refreshable ones), or None when it has none (then botocore does every GET).
    """

    def __init__(self, client: S3Client, session: aiohttp.ClientSession, credentials: Any) -> None:
        self._client = client
        self._session = session
        self._credentials = credentials
        self._routes: dict[str, _Route | None] = {}

    async def get_object(self, params: dict[str, Any]) -> dict[str, Any]:
        """``client.get_object(**params)``, answered with the keys S3Store reads.

        ``params`` holds ``Bucket`` and ``Key``, and optionally ``Range``, ``IfMatch`` and
        ``IfNoneMatch`` (as S3 wants them, ETags in quotes).

        Raises:
            botocore.exceptions.ClientError: the server answered an error, or 304 to
                ``IfNoneMatch`` (as botocore would raise them); aiohttp errors pass through
                (the caller maps both).
        """
        bucket = params["Bucket"]
        route = self._routes[bucket] if bucket in self._routes else await self._route(bucket)
        if route is None:
            return dict(await self._client.get_object(**params))
        path = route.path + percent_encode(params["Key"], "/~")
        headers = {}
        if "Range" in params:
            headers["Range"] = params["Range"]
        if "IfMatch" in params:
            headers["If-Match"] = params["IfMatch"]
        if "IfNoneMatch" in params:
            headers["If-None-Match"] = params["IfNoneMatch"]
        frozen = self._credentials.get_frozen_credentials()
        if inspect.isawaitable(frozen):  # aiobotocore's refreshable credentials
            frozen = await frozen
        signed = sign_get(
            host=route.host,
            path=path,
            headers=headers,
            access_key=frozen.access_key,
            secret_key=frozen.secret_key,
            token=frozen.token,
            region=route.region,
            service=route.service,
        )
        # encoded=True: the URL is sent as it was signed; yarl must not requote it.
        response = await self._session.get(
            yarl.URL(route.origin + path, encoded=True),
            headers=signed,
            allow_redirects=False,
            proxy=route.proxy,
            proxy_headers=route.proxy_headers,
        )
        if response.status in (200, 206):
            return _as_botocore(response)
        if response.status == 304:  # If-None-Match still matched: no body, keep the connection
            response.release()
            raise client_error(304, b"")
        try:
            body = await response.content.read(MAX_ERROR_BODY)
        finally:
            response.close()
        error = client_error(response.status, body, response.headers)
        if response.status in (301, 307) or error_code(error) in _REDIRECT_CODES:
            self._routes[bucket] = None  # from now on botocore, which follows it, does all
            return dict(await self._client.get_object(**params))
        raise error

    async def _route(self, bucket: str) -> _Route | None:
        route = None
        if self._credentials is not None:
            url = await self._client.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": _PROBE}, ExpiresIn=60
            )
            route = parse_route(url)
        self._routes[bucket] = route
        return route


def parse_route(url: str) -> _Route | None:
    """The route a presigned URL of the probe key shows, if it is plain SigV4.

    Example:
        >>> route = parse_route(
        ...     "http://127.0.0.1:8333/models/aiomodelkit-probe?X-Amz-Algorithm="
        ...     "AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20261125%2Feu-west-3%2Fs3%2Faws4_request"
        ... )
        >>> route.origin, route.host, route.path, route.region, route.service
        ('http://127.0.0.1:8333', '127.0.0.1:8333', '/models/', 'eu-west-3', 's3')
    """
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if query.get("X-Amz-Algorithm") != ["AWS4-HMAC-SHA256"] or not parts.path.endswith(_PROBE):
        return None
    if any(name.lower() == "x-amz-s3session-token" for name in query):
        return None  # S3 Express: its own session credentials
    scope = query.get("X-Amz-Credential", [""])[0].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        return None
    path = parts.path[: -len(_PROBE)]
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # IPv6
    if parts.port is not None and parts.port != {"http": 80, "https": 443}.get(parts.scheme):
        host += f":{parts.port}"
    proxy, proxy_headers = env_proxy(parts.scheme, parts.hostname or "")
    return _Route(
        origin=f"{parts.scheme}://{parts.netloc}",
        host=host,
        path=path,
        region=scope[2],
        service=scope[3],
        proxy=proxy,
        proxy_headers=proxy_headers,
    )


def env_proxy(scheme: str, host: str) -> tuple[yarl.URL | None, dict[str, str] | None]:
    """The proxy that ``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``NO_PROXY`` give ``host``, as
    botocore reads them, and the ``Proxy-Authorization`` header its URL's credentials make.

    Looked up once per bucket: aiohttp's ``trust_env`` would read the environment and
    ``~/.netrc`` (in a worker thread) on every request.

    Example:
        >>> import os
        >>> os.environ["HTTPS_PROXY"] = "http://me:pw@proxy.internal:3128"
        >>> os.environ["NO_PROXY"] = "localhost,127.0.0.1"
        >>> env_proxy("https", "s3.amazonaws.com")
        (URL('http://proxy.internal:3128'), {'Proxy-Authorization': 'Basic bWU6cHc='})
        >>> env_proxy("https", "127.0.0.1")
        (None, None)
        >>> del os.environ["HTTPS_PROXY"], os.environ["NO_PROXY"]
    """
    if proxy_bypass(host):
        return None, None
    found = getproxies().get(scheme)
    if not found:
        return None, None
    proxy = yarl.URL(found)
    if proxy.user is None:
        return proxy, None
    secret = f"{proxy.user}:{proxy.password or ''}".encode()
    header = {"Proxy-Authorization": "Basic " + base64.b64encode(secret).decode()}
    return proxy.with_user(None), header


def _as_botocore(response: aiohttp.ClientResponse) -> dict[str, Any]:
    headers = response.headers
    answer: dict[str, Any] = {
        "Body": DirectBody(response),
        "ContentLength": int(headers.get("Content-Length", "0")),
    }
    for name, header in (
        ("ContentRange", "Content-Range"),
        ("ETag", "ETag"),
        ("ServerSideEncryption", "x-amz-server-side-encryption"),
        ("SSECustomerAlgorithm", "x-amz-server-side-encryption-customer-algorithm"),
    ):
        if header in headers:
            answer[name] = headers[header]
    if "Last-Modified" in headers:
        answer["LastModified"] = parse_timestamp(headers["Last-Modified"])
    return answer


def client_error(
    status: int, body: bytes, headers: Mapping[str, str] | None = None
) -> botocore.exceptions.ClientError:
    """The ``ClientError`` botocore raises for an S3 error answer (``Code`` and ``Message``
    from its XML body; the status alone when the body is not one), with the answer's
    ``headers`` in its ``ResponseMetadata``, names lower-cased as botocore keeps them (a
    ``503 SlowDown``'s ``Retry-After`` is read from there).

    Example:
        >>> xml = b"<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>"
        >>> error = client_error(404, xml)
        >>> error.response["Error"], error.response["ResponseMetadata"]["HTTPStatusCode"]
        ({'Code': 'NoSuchKey', 'Message': 'gone'}, 404)
        >>> slow = b"<Error><Code>SlowDown</Code></Error>"
        >>> client_error(503, slow, {"Retry-After": "2"}).response["ResponseMetadata"]
        {'HTTPStatusCode': 503, 'HTTPHeaders': {'retry-after': '2'}}
    """
    code, message = str(status), ""
    try:
        root = ElementTree.fromstring(body) if body else None
    except ElementTree.ParseError:
        root = None
    if root is not None:
        code = root.findtext("Code") or code
        message = root.findtext("Message") or ""
    return botocore.exceptions.ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {
                "HTTPStatusCode": status,
                "HTTPHeaders": {name.lower(): value for name, value in (headers or {}).items()},
            },
        },
        "GetObject",
    )


def parse_timestamp(value: str) -> datetime:
    """Parse a timestamp from an S3 response: an HTTP date (headers) or ISO 8601 (XML).

    The standard library's exact parsers take microseconds where botocore's default
    (dateutil's general parser) takes ~70 µs; anything else still goes to botocore's.

    Example:
        >>> parse_timestamp("Wed, 25 Nov 2026 02:46:18 GMT").isoformat()
        '2026-11-25T02:46:18+00:00'
        >>> parse_timestamp("2026-11-25T02:46:18.000Z").isoformat()
        '2026-11-25T02:46:18+00:00'
    """
    try:
        if value[:1].isdigit():
            parsed = datetime.fromisoformat(value)
        else:
            parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        result: datetime = DEFAULT_TIMESTAMP_PARSER(value)
        return result
    return parsed
