"""Faults and rules for :class:`~aiomodelkit.testing.FaultProxy`, and how it reads a request.

A :class:`ProxyRule` says *which* requests to disturb (method, bucket, key regex, Range
present or not) and *when* (every match, the first ``times``, the ``nth``, or with a seeded
``probability``); its fault says *how*. Faults are plain values:

=========================  ==========================================================
:class:`Truncate`          send ``after`` body bytes, then close the connection (FIN)
:class:`ResetConnection`   send ``after`` body bytes, then reset it (RST, SO_LINGER 0)
:class:`ServerError`       answer 500 / 503 without asking the server (S3 ``SlowDown``
                           XML or a GCS JSON error body)
:class:`DelayFirstByte`    wait before the response starts
:class:`Stall`             stop sending for ``seconds`` after ``after`` body bytes
:class:`CorruptBytes`      flip bytes of the body (same length, wrong checksum)
:class:`ReplaceObject`     once the response is sent, overwrite the object upstream;
                           requests matching the rule meanwhile wait for it
=========================  ==========================================================

A rule may carry several faults at once (``(Truncate(1000), ReplaceObject(b"v2"))``).

Methods are normalised across the two APIs, for rules and for counting: ``GET`` reads an
object's bytes (S3 ``GetObject``; GCS ``?alt=media`` or ``/download/storage/v1/...``),
``HEAD`` reads its metadata (S3 ``HeadObject``; GCS ``GET .../o/<name>`` without
``alt=media``), ``PUT`` writes it (S3 ``PutObject``; GCS ``POST /upload/storage/v1/...``),
``LIST`` lists a bucket (the key is then the listing's prefix), ``DELETE`` deletes, and
``OTHER`` is anything about buckets or the service (creating a bucket, its metadata).
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qs, unquote
from xml.sax.saxutils import escape

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

Api = Literal["s3", "gcs"]


@dataclass(frozen=True, slots=True)
class ProxyRequest:
    """One request as the proxy understood it.

    Attributes:
        method: the normalised method: ``GET``, ``HEAD``, ``PUT``, ``DELETE`` (or another
            HTTP method) on an object, ``LIST``, or ``OTHER`` (bucket or service calls).
        http_method: the HTTP method on the wire.
        api: ``"s3"`` or ``"gcs"``.
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
    JSON error document. The server never sees the request.
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
    Truncate | ResetConnection | ServerError | DelayFirstByte | Stall | CorruptBytes | ReplaceObject
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

    Without ``times``, ``nth`` or ``probability``, every matching request gets the fault.
    Rules are tried in the order they were added; the first that fires wins, and at most
    one rule applies to a request.
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


@dataclass
class RuleState:
    """What the proxy remembers about one rule (touched under the proxy's lock)."""

    rule: ProxyRule
    matched: int = 0
    fired: int = 0
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.rule.seed)

    def fires(self) -> bool:
        """Count one match and decide whether the rule fires on it."""
        rule = self.rule
        self.matched += 1
        fire = True
        if rule.nth is not None:
            wanted = {rule.nth} if isinstance(rule.nth, int) else set(rule.nth)
            fire = self.matched in wanted
        if rule.probability is not None:
            # Always draw, so that the sequence does not depend on the other conditions.
            fire = self.rng.random() < rule.probability and fire
        if rule.times is not None and self.fired >= rule.times:
            fire = False
        if fire:
            self.fired += 1
        return fire


@dataclass
class FaultPlan:
    """The faults of one request, flattened into what the proxy's relay loop needs."""

    delay: float = 0.0
    status: int | None = None
    cut_after: int | None = None
    reset: bool = False
    stall: Stall | None = None
    corruptions: tuple[CorruptBytes, ...] = ()
    replace: ReplaceObject | None = None

    @classmethod
    def of(cls, faults: tuple[ProxyFault, ...]) -> FaultPlan:
        plan = cls()
        for fault in faults:
            match fault:
                case DelayFirstByte(seconds=seconds):
                    plan.delay += seconds
                case ServerError(status=status):
                    plan.status = status
                case Truncate(after=after):
                    plan.cut_after, plan.reset = after, False
                case ResetConnection(after=after):
                    plan.cut_after, plan.reset = after, True
                case Stall():
                    plan.stall = fault
                case CorruptBytes():
                    plan.corruptions += (fault,)
                case ReplaceObject():
                    plan.replace = fault
        return plan

    def corrupt(self, sent: int, chunk: bytes) -> bytes:
        """``chunk`` (at body offset ``sent``) with the corrupted bytes flipped."""
        if not self.corruptions:
            return chunk
        data = bytearray(chunk)
        for corruption in self.corruptions:
            start = max(corruption.at, sent)
            end = min(corruption.at + corruption.count, sent + len(chunk))
            for position in range(start, end):
                data[position - sent] ^= 0xFF
        return bytes(data)


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
    ranged = headers.get("Range")
    method = http_method.upper()
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


def _bucket_config(params: Mapping[str, str]) -> bool:
    # GET /bucket?location, ?versioning, ?acl... are bucket settings, not listings.
    listing = {"list-type", "prefix", "delimiter", "marker", "max-keys", "continuation-token"}
    listing |= {"start-after", "encoding-type", "fetch-owner"}
    return any(name not in listing for name in params)


def error_body(request: ProxyRequest, status: int) -> tuple[bytes, str]:
    """The body and content type the API sends with ``status``."""
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
        return json.dumps(document).encode(), "application/json; charset=UTF-8"
    code, message = "InternalError", "We encountered an internal error. Please try again."
    if status == 503:
        code, message = "SlowDown", "Please reduce your request rate."
    resource = "/" + "/".join(p for p in (request.bucket, request.key) if p)
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<Resource>{escape(resource)}</Resource><RequestId>faultproxy</RequestId></Error>"
    )
    return xml.encode(), "application/xml"
