"""Real object-store servers on loopback for your own tests.

Each helper is a synchronous context manager that starts a server as a subprocess on a free
``127.0.0.1`` port and stops it on exit (or at interpreter exit, whichever comes first):

* :class:`MotoServer`: moto's S3 server (any credentials, in memory, resettable),
* :class:`SeaweedFSServer`: SeaweedFS's S3 gateway (real credentials and conditional PUTs),
* :class:`FakeGCSServer`: fake-gcs-server for ``gs://`` stores,
* :class:`AzuriteServer`: Azurite, Microsoft's emulator, for ``az://`` stores (installed from
  npm on first use; needs Node.js).

:class:`InstrumentedStore` wraps any store to count requests ("a warm start makes none")
and to inject faults into reads (errors, truncated bodies, slow chunks).

:class:`FaultProxy` sits between a real client and one of those servers, on the wire: it
counts requests server side and, by :class:`ProxyRule`, truncates or resets bodies, answers
500/503, throttles like a hot prefix (503 ``SlowDown``, 429 ``rateLimitExceeded``, 503
``ServerBusy`` above a rate or a concurrency), delays or stalls responses, corrupts bytes,
or replaces an object between two ranged reads (:class:`Truncate`,
:class:`ResetConnection`, :class:`ServerError`, :class:`Throttle`, :class:`DelayFirstByte`,
:class:`Stall`, :class:`CorruptBytes`, :class:`ReplaceObject`).

:class:`LatencyProxy` (``async with``) and :class:`ThreadedLatencyProxy` (``with``) forward
TCP on loopback with a round-trip time, a window per connection and an optional bandwidth
cap, and count HTTP requests (:class:`LatencyProxyStats`): a wide-area link on one machine,
as the benchmarks use it. Both proxies refuse any address that is not loopback.

Example:
    >>> with MotoServer() as moto:
    ...     moto.create_bucket("models")
    ...     # point an S3Store (or AWS_ENDPOINT_URL) at moto.endpoint_url
"""

from ._azurite import AzuriteServer as AzuriteServer
from ._fakegcs import FakeGCSServer as FakeGCSServer
from ._faultproxy import FaultProxy as FaultProxy
from ._faults import CorruptBytes as CorruptBytes
from ._faults import DelayFirstByte as DelayFirstByte
from ._faults import ProxyFault as ProxyFault
from ._faults import ProxyRequest as ProxyRequest
from ._faults import ProxyRule as ProxyRule
from ._faults import ReplaceObject as ReplaceObject
from ._faults import ResetConnection as ResetConnection
from ._faults import ServerError as ServerError
from ._faults import Stall as Stall
from ._faults import Truncate as Truncate
from ._httpcount import LatencyProxyStats as LatencyProxyStats
from ._instrumented import Fault as Fault
from ._instrumented import InstrumentedStore as InstrumentedStore
from ._instrumented import transient as transient
from ._latency import LatencyProxy as LatencyProxy
from ._latency import ThreadedLatencyProxy as ThreadedLatencyProxy
from ._moto import MotoServer as MotoServer
from ._seaweedfs import SeaweedFSServer as SeaweedFSServer
from ._throttle import Throttle as Throttle

__all__ = [
    "AzuriteServer",
    "CorruptBytes",
    "DelayFirstByte",
    "FakeGCSServer",
    "Fault",
    "FaultProxy",
    "InstrumentedStore",
    "LatencyProxy",
    "LatencyProxyStats",
    "MotoServer",
    "ProxyFault",
    "ProxyRequest",
    "ProxyRule",
    "ReplaceObject",
    "ResetConnection",
    "SeaweedFSServer",
    "ServerError",
    "Stall",
    "ThreadedLatencyProxy",
    "Throttle",
    "Truncate",
    "transient",
]
