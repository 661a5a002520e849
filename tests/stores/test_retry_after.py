"""Every store keeps the server's ``Retry-After`` on its StoreUnavailableError (issue 18).

The parser is tested on its own; then a FaultProxy in front of moto, fake-gcs-server and
Azurite answers "slow down" (a ``Throttle``, with or without ``Retry-After``) or a plain
server error, to a stat and to a read of each store. On S3 the two take different paths: a
stat is botocore's ``HeadObject``, a read our direct GET (``_s3_direct``). Store calls do not
retry (the fetcher's loop does), so the first refused request raises.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import TYPE_CHECKING

import botocore.exceptions  # type: ignore[import-untyped]
import pytest

from aiomodelkit import StoreUnavailableError
from aiomodelkit.stores import AzureStore, GCSStore, Store
from aiomodelkit.stores._retry_after import MAX_RETRY_AFTER, parse_retry_after, retry_after_of
from aiomodelkit.testing import FaultProxy, ProxyRule, ServerError, Throttle

from ._helpers import _moto_store

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from aiomodelkit.testing import AzuriteServer, FakeGCSServer, MotoServer
    from aiomodelkit.testing._faults import ProxyFault

PREFIX = "modelkit-assets"
HOT = "hot/object.bin"
DATA = b"weights" * 100
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


# -- the parser -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("2", 2.0),
        ("0", 0.0),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0.25", 0.25),
        ("1.", 1.0),
        (".5", 0.5),
        ("300", MAX_RETRY_AFTER),
        ("301", MAX_RETRY_AFTER),
        ("86400", MAX_RETRY_AFTER),
        ("9" * 60, MAX_RETRY_AFTER),
    ],
)
def test_delay_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value) == seconds


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("Sun, 01 Mar 2026 12:00:30 GMT", 30.0),  # IMF-fixdate, the one RFC 9110 prefers
        ("Sunday, 01-Mar-26 12:00:02 GMT", 2.0),  # RFC 850, obsolete
        ("Sun Mar  1 12:01:00 2026", 60.0),  # asctime, obsolete, no zone: GMT
        ("Sun, 01 Mar 2026 13:00:45 +0100", 45.0),  # a zone other than GMT still counts
        ("Sun, 01 Mar 2026 12:00:00 GMT", 0.0),
        ("Sun, 01 Mar 2026 11:59:00 GMT", 0.0),  # in the past: no wait, never a negative one
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
        ("Mon, 02 Mar 2026 12:00:00 GMT", MAX_RETRY_AFTER),  # a day away: capped
        ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER),
    ],
)
def test_http_dates(value: str, seconds: float) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


def test_an_http_date_is_counted_from_the_clock() -> None:
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    wait = parse_retry_after(soon)
    assert wait is not None
    assert 50.0 <= wait <= 60.0


@pytest.mark.parametrize(
    "value",
    [
        None, "", "   ", "soon", "-1", "+5", "1e3", "0x10", "nan", "inf", "2s", "2, 3", "1 2",
        "١٢",  # Arabic-Indic digits: \d in str patterns would take them, float() too
        "Sun, 32 Mar 2026 12:00:00 GMT", "Sun, 01 Foo 2026 12:00:00 GMT", "Sunday",
        "9" * 65,  # longer than any header anyone meant to send
    ],
)  # fmt: skip
def test_garbage_is_ignored(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None


def test_headers_in_any_case() -> None:
    assert retry_after_of({"retry-after": "2"}) == 2.0  # botocore's lower-cased names
    assert retry_after_of({"Retry-After": "2"}) == 2.0
    assert retry_after_of({"Content-Type": "application/xml"}) is None
    assert retry_after_of(None) is None


# -- the stores, behind a fault proxy ----------------------------------------------------------


@dataclass
class Backend:
    """One server, and stores that reach it directly or through the proxy."""

    kind: str
    server_url: str
    proxy: FaultProxy
    make: Callable[[str], Store]  # endpoint URL → store

    def store(self, *, direct: bool = False) -> Store:
        return self.make(self.server_url if direct else self.proxy.endpoint_url)


def _s3(moto: MotoServer) -> Callable[[str], Store]:
    moto.reset()
    moto.create_bucket("bucket")

    def make(url: str) -> Store:
        return _moto_store(moto, prefix=PREFIX, endpoint_url=url)

    return make


def _gcs(server: FakeGCSServer) -> Callable[[str], Store]:
    server.reset()
    server.create_bucket("bucket")
    return lambda url: GCSStore("bucket", PREFIX, api_root=url)


def _azure(azurite: AzuriteServer) -> Callable[[str], Store]:
    container = f"t-{uuid.uuid4().hex[:20]}"  # Azurite has no reset: one container per test
    azurite.create_container(container)

    def make(url: str) -> Store:
        connection_string = azurite.connection_string.replace(azurite.endpoint_url, url)
        return AzureStore(container, PREFIX, connection_string=connection_string)

    return make


@pytest.fixture(params=["s3", "gcs", "azure"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    kind: str = request.param
    if kind == "s3":
        moto: MotoServer = request.getfixturevalue("moto_server")
        url, make = moto.endpoint_url, _s3(moto)
    elif kind == "gcs":
        gcs: FakeGCSServer = request.getfixturevalue("gcs_server")
        url, make = gcs.endpoint_url, _gcs(gcs)
    else:
        azurite: AzuriteServer = request.getfixturevalue("azurite_server")
        url, make = azurite.endpoint_url, _azure(azurite)
    with FaultProxy(url, api="azure" if kind == "azure" else None) as proxy:
        yield Backend(kind, url, proxy, make)
        assert proxy.errors == []


async def _stat(store: Store) -> None:
    await store.stat(HOT)


async def _read(store: Store) -> None:
    async with store.read(HOT) as stream:
        assert b"".join([chunk async for chunk in stream]) == DATA


OPERATIONS = {"stat": _stat, "read": _read}


async def _refused(backend: Backend, fault: ProxyFault, operation: str) -> StoreUnavailableError:
    """The error ``operation`` raises once a rule with ``fault`` refuses it.

    A ``Throttle(rate=0.01)`` admits the first request (a budget of one, refilled after
    100 s), so the same operation runs once before it is refused.
    """
    async with backend.store(direct=True) as store:
        await store.put(HOT, DATA)
    # Any method: a GCS stat is a metadata GET, which the proxy counts as a HEAD.
    rule = backend.proxy.add(ProxyRule(fault, method=None, key="/hot/"))
    call = OPERATIONS[operation]
    async with backend.store() as store:
        if isinstance(fault, Throttle):
            await call(store)
        with pytest.raises(StoreUnavailableError) as caught:
            await call(store)
    assert backend.proxy.fired(rule) == 1
    error = caught.value
    assert error.key == HOT
    assert "retry" not in str(error).lower()  # the wait is an attribute, not text
    return error


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize(
    ("fault", "retry_after"),
    [
        (Throttle(rate=0.01, retry_after=2), 2.0),
        (Throttle(rate=0.01), None),
        (ServerError(503), None),
    ],
    ids=["throttle-retry-after-2", "throttle-no-header", "server-error"],
)
async def test_the_error_carries_retry_after(
    backend: Backend, operation: str, fault: ProxyFault, retry_after: float | None
) -> None:
    error = await _refused(backend, fault, operation)
    assert error.retry_after == retry_after


@pytest.mark.parametrize(
    ("operation", "botocore_parsed"), [("stat", True), ("read", False)], ids=["head", "direct-get"]
)
async def test_s3_both_paths_keep_retry_after(
    moto_server: MotoServer, operation: str, botocore_parsed: bool
) -> None:
    make = _s3(moto_server)
    async with FaultProxy(moto_server.endpoint_url) as proxy:  # `with` would block the loop
        backend = Backend("s3", moto_server.endpoint_url, proxy, make)
        error = await _refused(backend, Throttle(rate=0.01, retry_after=0.25), operation)
        assert proxy.errors == []
    assert error.retry_after == 0.25  # a fraction, as sent
    cause = error.__cause__
    assert isinstance(cause, botocore.exceptions.ClientError)
    metadata = cause.response["ResponseMetadata"]
    assert metadata["HTTPHeaders"]["retry-after"] == "0.25"
    # botocore's parser counts its retries in every answer; _s3_direct builds its own.
    assert ("RetryAttempts" in metadata) is botocore_parsed
