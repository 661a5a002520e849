"""Real object-store servers on loopback for your own tests.

Each helper is a synchronous context manager that starts a server as a subprocess on a free
``127.0.0.1`` port and stops it on exit (or at interpreter exit, whichever comes first):

* :class:`MotoServer`: moto's S3 server (any credentials, in memory, resettable),
* :class:`SeaweedFSServer`: SeaweedFS's S3 gateway (real credentials and conditional PUTs),
* :class:`FakeGCSServer`: fake-gcs-server for ``gs://`` stores.

:class:`InstrumentedStore` wraps any store to count requests ("a warm start makes none")
and to inject faults into reads (errors, truncated bodies, slow chunks).

Example:
    >>> with MotoServer() as moto:
    ...     moto.create_bucket("models")
    ...     # point an S3Store (or AWS_ENDPOINT_URL) at moto.endpoint_url
"""

from ._fakegcs import FakeGCSServer as FakeGCSServer
from ._instrumented import Fault as Fault
from ._instrumented import InstrumentedStore as InstrumentedStore
from ._instrumented import transient as transient
from ._moto import MotoServer as MotoServer
from ._seaweedfs import SeaweedFSServer as SeaweedFSServer

__all__ = [
    "FakeGCSServer",
    "Fault",
    "InstrumentedStore",
    "MotoServer",
    "SeaweedFSServer",
    "transient",
]
