"""Faults and rules for :class:`~aiomodelkit.testing.FaultProxy`, how it reads a request and
how it answers an error in each API.

A :class:`ProxyRule` says *which* requests to disturb (method, bucket, key regex, Range
present or not) and *when* (every match, the first ``times``, the ``nth``, or with a seeded
``probability``); its fault says *how*. Faults are plain values:

=========================  ==========================================================
:class:`Truncate`          send ``after`` body bytes, then close the connection (FIN)
:class:`ResetConnection`   send ``after`` body bytes, then reset it (RST, SO_LINGER 0)
:class:`ServerError`       answer 500 / 503 without asking the server (S3 ``SlowDown``
                           XML, a GCS JSON error body, Azure ``ServerBusy`` XML)
:class:`Throttle`          answer "slow down" above a rate or a concurrency, as a hot
                           prefix does (``_throttle``)
:class:`DelayFirstByte`    wait before the response starts
:class:`Stall`             stop sending for ``seconds`` after ``after`` body bytes
:class:`CorruptBytes`      flip bytes of the body (same length, wrong checksum)
:class:`ReplaceObject`     once the response is sent, overwrite the object upstream;
                           requests matching the rule meanwhile wait for it
=========================  ==========================================================

A rule may carry several faults at once (``(Truncate(1000), ReplaceObject(b"v2"))``); what
the proxy does with them is in ``_faultplan``.

Methods are normalised across the APIs, for rules and for counting: ``GET`` reads an
object's bytes (S3 ``GetObject``; GCS ``?alt=media`` or ``/download/storage/v1/...``),
``HEAD`` reads its metadata (S3 ``HeadObject``; GCS ``GET .../o/<name>`` without
``alt=media``), ``PUT`` writes it (S3 ``PutObject``; GCS ``POST /upload/storage/v1/...``),
``LIST`` lists a bucket (the key is then the listing's prefix), ``DELETE`` deletes, and
``OTHER`` is anything about buckets or the service (creating a bucket, its metadata).
Azure (Azurite's path-style ``/<account>/<container>/<blob>``, with ``api="azure"``: its
paths look like S3's) keeps the HTTP method on a blob, ``LIST`` is ``?comp=list`` on a
container (the container is the bucket), and ``x-ms-range`` counts as a ``Range``.
"""

from __future__ import annotations

import json
import re
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qs, unquote
from xml.sax.saxutils import escape

from ._throttle import Throttle

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Collection, Mapping

__all__ = [
    "CorruptBytes",
    "DelayFirstByte",
    "ProxyFault",
    "ProxyRequest",
    "ProxyRule",
    "ReplaceObject",
    "ResetConnection",
    "ServerError",
    "Stall",
    "Truncate",
]

Api = Literal["s3", "gcs", "azure"]


@dataclass(frozen=True, slots=True)
class ProxyRequest:
    """One request as the proxy understood it.

    Attributes:
        method: the normalised method: ``GET``, ``HEAD``, ``PUT``, ``DELETE`` (or another
            HTTP method) on an object, ``LIST``, or ``OTHER`` (bucket or service calls).
        http_method: the HTTP method on the wire.
        api: ``"s3"``, ``"gcs"`` or ``"azure"``.
        bucket: the bucket, when the path names one.
        key: the object key inside the bucket (decoded), or a listing's prefix.
        range: the ``Range`` header, if any.
        path: the request target as sent (path and query string, still encoded).
        faults: the names of the faults applied to it (empty: passed through).
    """

    method: str
    http_method: str
    api: Api
    bucket: str | None
    key: str | None
    range: str | None = None
    path: str = ""
    faults: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Truncate:
    """Send ``after`` bytes of the body, then close the connection: the body is short.

    The headers still announce the full ``Content-Length``. A body of at most ``after``
    bytes is delivered whole.
    """

    after: int


@dataclass(frozen=True, slots=True)
class ResetConnection:
    """Send ``after`` bytes of the body, then reset the connection (RST, ``SO_LINGER`` 0).

    Bytes still in flight may be lost with the reset, as on a real network.
    """

    after: int = 0


@dataclass(frozen=True, slots=True)
class ServerError:
    """Answer ``status`` at once, with the error body the API would send.

    S3 gets ``SlowDown`` (503) or ``InternalError`` (other statuses) in XML; GCS gets its
    JSON error document; Azure ``ServerBusy`` (503) or ``InternalError`` in XML. The server
    never sees the request.
    """

    status: int = 503


@dataclass(frozen=True, slots=True)
class DelayFirstByte:
    """Wait ``seconds`` before the response starts (the server answered; we hold it)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Stall:
    """Stop sending for ``seconds`` after ``after`` body bytes, then carry on."""

    after: int
    seconds: float


@dataclass(frozen=True, slots=True)
class CorruptBytes:
    """Flip every bit of ``count`` body bytes from offset ``at`` (of this response's body).

    The length is unchanged, so only a checksum can tell.
    """

    at: int = 0
    count: int = 1


@dataclass(frozen=True, slots=True)
class ReplaceObject:
    """Once the matching response is sent, overwrite the object upstream.

    Give ``data`` and the proxy overwrites the object itself through the server's API: an
    S3 ``PutObject`` signed (SigV4, needs botocore) with the given credentials, which moto
    accepts whatever they are (it refuses an anonymous overwrite of an existing key), or
    an unauthenticated GCS media upload (fake-gcs-server checks no token). Or give
    ``callback``, called with the :class:`ProxyRequest`: a coroutine function is awaited
    on the proxy's loop, a plain function runs in a worker thread.

    Until the replacement is done, other requests matching the same rule wait, so "read
    part 1, replace, read part 2" happens in that order whatever the client's concurrency.
    """

    data: bytes | None = None
    callback: Callable[[ProxyRequest], Awaitable[None] | None] | None = None
    aws_access_key_id: str = "testing"
    aws_secret_access_key: str = field(default="testing", repr=False)
    region_name: str = "us-east-1"

    def __post_init__(self) -> None:
        if (self.data is None) == (self.callback is None):
            raise ValueError("ReplaceObject needs exactly one of data= or callback=")


ProxyFault = (
    Truncate
    | ResetConnection
    | ServerError
    | Throttle
    | DelayFirstByte
    | Stall
    | CorruptBytes
    | ReplaceObject
)
"""Any one fault a :class:`ProxyRule` can apply."""


@dataclass(frozen=True, eq=False)
class ProxyRule:
    """Which requests get a fault, and how often.

    Args:
        fault: one fault, or a tuple of faults applied together.
        method: the normalised method to match (``None``: any); ``GET`` by default, so a
            rule disturbs object downloads and not metadata.
        key: a regular expression searched in the object key (``None``: any key).
        path: a regular expression searched in the raw request target, path and query
            string as sent (``alt=media``, ``partNumber=``...).
        bucket: the bucket to match exactly (``None``: any).
        ranged: ``True`` only requests with a ``Range`` header, ``False`` only without.
        times: fire at most this many times (``None``: no limit).
        nth: fire only on these matches (1 is the first matching request).
        probability: fire on each match with this probability, drawn from a
            ``random.Random(seed)`` of the rule's own: the same requests in the same order
            get the same faults.
        seed: the seed for ``probability``.

    Without ``times``, ``nth`` or ``probability``, every matching request gets the fault; a
    rule with a :class:`Throttle` fires only on requests above its budget. Rules are tried
    in the order they were added; the first that fires wins, and at most one rule applies
    to a request.
    """

    fault: ProxyFault | tuple[ProxyFault, ...]
    _: KW_ONLY
    method: str | None = "GET"
    key: str | None = None
    path: str | None = None
    bucket: str | None = None
    ranged: bool | None = None
    times: int | None = None
    nth: int | Collection[int] | None = None
    probability: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for pattern in (self.key, self.path):
            if pattern is not None:
                re.compile(pattern)  # fail here, not on the proxy's thread
        if self.probability is not None and not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        if self.times is not None and self.times < 0:
            raise ValueError("times must not be negative")
        if not self.faults:
            raise ValueError("a rule needs at least one fault")
        if sum(isinstance(fault, Throttle) for fault in self.faults) > 1:
            raise ValueError("a rule takes at most one Throttle (add a rule per budget)")

    @property
    def faults(self) -> tuple[ProxyFault, ...]:
        """The faults, as a tuple."""
        return self.fault if isinstance(self.fault, tuple) else (self.fault,)

    def matches(self, request: ProxyRequest) -> bool:
        """Whether ``request`` is one this rule is about (before ``times`` and friends)."""
        if self.method is not None and request.method != self.method.upper():
            return False
        if self.bucket is not None and request.bucket != self.bucket:
            return False
        if self.key is not None and (request.key is None or not re.search(self.key, request.key)):
            return False
        if self.path is not None and not re.search(self.path, request.path):
            return False
        return self.ranged is None or self.ranged == (request.range is not None)


# -- reading requests -----------------------------------------------------------------------

_GCS_PATH = re.compile(
    r"/(?:(?P<kind>download|upload)/)?storage/v1/b(?:/(?P<bucket>[^/]+)(?P<objects>/o)?"
    r"(?:/(?P<name>.+))?)?/?"
)


def describe_request(
    http_method: str, raw_path: str, headers: Mapping[str, str], api: Api | None
) -> ProxyRequest:
    """Parse a request line into a :class:`ProxyRequest` (``api=None`` guesses from the path)."""
    path, _, query = raw_path.partition("?")
    params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    ranged = headers.get("Range") or headers.get("x-ms-range")
    method = http_method.upper()
    if api == "azure":
        return _describe_azure(method, raw_path, path, params, ranged)
    gcs = _GCS_PATH.fullmatch(path)
    if api == "gcs" or (api is None and gcs is not None):
        if gcs is None:
            return ProxyRequest(method, method, "gcs", None, None, ranged, raw_path)
        bucket = unquote(gcs["bucket"]) if gcs["bucket"] else None
        name = unquote(gcs["name"]) if gcs["name"] else None
        kind = gcs["kind"]
        normal = method
        if kind == "upload" and method in ("POST", "PUT"):
            normal, name = "PUT", params.get("name", name)
        elif name is not None and method == "GET":
            normal = "GET" if kind == "download" or params.get("alt") == "media" else "HEAD"
        elif name is None and gcs["objects"] and method == "GET":
            normal, name = "LIST", params.get("prefix", "")
        elif name is None:
            normal = "OTHER"
        return ProxyRequest(normal, method, "gcs", bucket, name, ranged, raw_path)
    # S3, path-style: /bucket/key (an IP or localhost endpoint always gets path-style).
    segments = path.lstrip("/").split("/", 1)
    bucket = unquote(segments[0]) if segments[0] else None
    key = unquote(segments[1]) if len(segments) > 1 and segments[1] else None
    normal = method
    if key is None and bucket is not None and method == "GET" and not _bucket_config(params):
        normal, key = "LIST", params.get("prefix", "")
    elif key is None:
        normal = "OTHER"
    return ProxyRequest(normal, method, "s3", bucket, key, ranged, raw_path)


def _describe_azure(
    method: str, raw_path: str, path: str, params: Mapping[str, str], ranged: str | None
) -> ProxyRequest:
    # Path-style, as Azurite serves it: /account/container/blob (the blob may hold "/").
    segments = path.lstrip("/").split("/", 2)
    container = unquote(segments[1]) if len(segments) > 1 and segments[1] else None
    blob = unquote(segments[2]) if len(segments) > 2 and segments[2] else None
    normal = method
    if blob is None and container is not None and method == "GET" and params.get("comp") == "list":
        normal, blob = "LIST", params.get("prefix", "")
    elif blob is None:
        normal = "OTHER"
    return ProxyRequest(normal, method, "azure", container, blob, ranged, raw_path)


def _bucket_config(params: Mapping[str, str]) -> bool:
    # GET /bucket?location, ?versioning, ?acl... are bucket settings, not listings.
    listing = {"list-type", "prefix", "delimiter", "marker", "max-keys", "continuation-token"}
    listing |= {"start-after", "encoding-type", "fetch-owner"}
    return any(name not in listing for name in params)


def error_body(request: ProxyRequest, status: int) -> tuple[bytes, dict[str, str]]:
    """The body and headers the API sends with ``status`` ("slow down" is 429 on GCS, else 503)."""
    if request.api == "gcs":
        reason = {429: "rateLimitExceeded", 503: "backendError"}.get(status, "internalError")
        message = {
            429: "The rate of change requests to the object is too high.",
            503: "We encountered an internal error. Please try again.",
        }.get(status, "Internal Error")
        document = {
            "error": {
                "code": status,
                "message": message,
                "errors": [{"message": message, "domain": "global", "reason": reason}],
            }
        }
        return json.dumps(document).encode(), {"Content-Type": "application/json; charset=UTF-8"}
    if request.api == "azure":
        code, message = "InternalError", "The server encountered an internal error."
        if status == 503:
            code, message = "ServerBusy", "Operations per second is over the account limit."
        xml = (
            '<?xml version="1.0" encoding="utf-8"?>'
            f"<Error><Code>{code}</Code><Message>{message}\nRequestId:faultproxy</Message></Error>"
        )
        # The SDK reads the code from this header first.
        return xml.encode(), {"Content-Type": "application/xml", "x-ms-error-code": code}
    code, message = "InternalError", "We encountered an internal error. Please try again."
    if status == 503:
        code, message = "SlowDown", "Please reduce your request rate."
    resource = "/" + "/".join(p for p in (request.bucket, request.key) if p)
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<Resource>{escape(resource)}</Resource><RequestId>faultproxy</RequestId></Error>"
    )
    return xml.encode(), {"Content-Type": "application/xml"}
