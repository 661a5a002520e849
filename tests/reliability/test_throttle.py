"""A hot prefix on the wire: FaultProxy's Throttle in front of moto, fake-gcs-server, Azurite.

Above its rate or its concurrency the proxy answers "slow down" itself, in each API's words
(S3 ``503 SlowDown``, GCS ``429 rateLimitExceeded``, Azure ``503 ServerBusy``); the rule's
``fired`` count is exactly the number of those answers the clients received, and our stores
map them to a ``StoreUnavailableError`` whose request outcome is ``throttled``. Timing-bound
assertions are bounds measured by the test itself (a slow machine widens them, never breaks
them); exact counts come from budgets that cannot refill during a test (``rate=0.01``).
"""

from __future__ import annotations

import json
import os
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

import aiohttp
import anyio
import pytest

from aiomodelkit import AssetsManager, Event, Settings, StoreUnavailableError
from aiomodelkit._events import Retrying
from aiomodelkit._outcomes import request_outcome
from aiomodelkit.stores import AzureStore, GCSStore, S3Store, Store
from aiomodelkit.testing import (
    AzuriteServer,
    DelayFirstByte,
    FakeGCSServer,
    FaultProxy,
    MotoServer,
    ProxyRule,
    Throttle,
    Truncate,
)
from aiomodelkit.testing._faults import describe_request
from aiomodelkit.testing._throttle import ThrottleState

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

PREFIX = "modelkit-assets"
HOT = "hot/object.bin"
KEY = f"{PREFIX}/{HOT}"  # as the proxy sees it: the key inside the bucket
DATA = b"weights" * 100
#: A budget of one request, refilled once a minute or more: later requests are throttled.
ONE_THEN_THROTTLED = Throttle(rate=0.01)


@dataclass
class Backend:
    """One server, and stores that reach it directly or through the proxy."""

    kind: str
    server_url: str
    proxy: FaultProxy

    def store(self, *, direct: bool = False) -> Store:
        url = self.server_url if direct else self.proxy.endpoint_url
        if self.kind == "s3":
            return S3Store(
                "bucket",
                PREFIX,
                endpoint_url=url,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
                region_name="us-east-1",
            )
        return GCSStore("bucket", PREFIX, api_root=url)

    def object_url(self) -> str:
        if self.kind == "s3":  # presigned: moto refuses an anonymous read
            return _presigned(f"{self.proxy.endpoint_url}/bucket/{KEY}")
        return f"{self.proxy.endpoint_url}/storage/v1/b/bucket/o/{quote(KEY, safe='')}?alt=media"

    async def put(self, key: str = HOT, data: bytes = DATA) -> None:
        async with self.store(direct=True) as store:
            await store.put(key, data)


def _presigned(url: str) -> str:
    from botocore.auth import S3SigV4QueryAuth  # type: ignore[import-untyped]
    from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
    from botocore.credentials import Credentials  # type: ignore[import-untyped]

    request = AWSRequest(method="GET", url=url)
    S3SigV4QueryAuth(Credentials("testing", "testing"), "s3", "us-east-1", 600).add_auth(request)
    signed: str = request.url
    return signed


def _backend(request: pytest.FixtureRequest, kind: str) -> Iterator[Backend]:
    server: MotoServer | FakeGCSServer = request.getfixturevalue(
        "moto_server" if kind == "s3" else "gcs_server"
    )
    server.reset()
    server.create_bucket("bucket")
    with FaultProxy(server.endpoint_url) as proxy:
        yield Backend(kind, server.endpoint_url, proxy)
        assert proxy.errors == []


@pytest.fixture
def s3(request: pytest.FixtureRequest) -> Iterator[Backend]:
    yield from _backend(request, "s3")


@pytest.fixture
def gcs(request: pytest.FixtureRequest) -> Iterator[Backend]:
    yield from _backend(request, "gcs")


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


async def _burst(url: str, count: int) -> tuple[list[Answer], float]:
    """``count`` GETs of ``url`` at once; their answers, and the seconds the burst took."""
    answers: list[Answer] = []

    async def get(http: aiohttp.ClientSession) -> None:
        async with http.get(url) as response:
            body = await response.read()
            answers.append(Answer(response.status, dict(response.headers), body))

    started = time.monotonic()
    async with aiohttp.ClientSession(trust_env=False) as http, anyio.create_task_group() as tg:
        for _ in range(count):
            tg.start_soon(get, http)
    return answers, time.monotonic() - started


async def _read_all(store: Store, count: int) -> list[bytes | StoreUnavailableError]:
    """``count`` reads of HOT through ``store`` at once: the data, or the error each raised."""
    results: list[bytes | StoreUnavailableError] = []

    async def read() -> None:
        try:
            async with store.read(HOT) as stream:
                results.append(b"".join([chunk async for chunk in stream]))
        except StoreUnavailableError as exc:
            results.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(count):
            tg.start_soon(read)
    return results


def _throttled(results: list[bytes | StoreUnavailableError]) -> list[StoreUnavailableError]:
    assert all(r == DATA for r in results if isinstance(r, bytes))
    return [r for r in results if isinstance(r, StoreUnavailableError)]


# -- the budget -------------------------------------------------------------------------------


def _take(state: ThrottleState) -> bool:
    """What the proxy does with one request: admit it unless it is above the budget."""
    if state.over():
        return False
    state.admit()
    return True


def test_the_token_bucket_admits_a_burst_then_the_rate() -> None:
    now = [0.0]
    state = ThrottleState(Throttle(rate=2), clock=lambda: now[0])
    assert [_take(state) for _ in range(5)] == [True, True, False, False, False]
    now[0] = 0.5  # one token back (2 per second); the throttled requests spent none
    assert [_take(state) for _ in range(2)] == [True, False]
    now[0] = 60.0  # a quiet minute refills one second's worth, not sixty
    assert [_take(state) for _ in range(3)] == [True, True, False]


def test_the_concurrency_counts_until_release() -> None:
    state = ThrottleState(Throttle(concurrency=2))
    first, _ = state.admit(), state.admit()
    assert state.over()
    first.release()
    assert not state.over()
    assert state.in_flight == 1


def test_throttles_are_checked_when_made() -> None:
    with pytest.raises(ValueError, match="rate=, concurrency="):
        Throttle()
    with pytest.raises(ValueError, match="rate"):
        Throttle(rate=0)
    with pytest.raises(ValueError, match="concurrency"):
        Throttle(concurrency=0)
    with pytest.raises(ValueError, match="retry_after"):
        Throttle(rate=1, retry_after=-1)
    with pytest.raises(ValueError, match="one Throttle"):
        ProxyRule((Throttle(rate=1), Throttle(concurrency=1)))


# -- S3: 503 SlowDown -------------------------------------------------------------------------


async def test_a_burst_above_the_rate_gets_slowdown(s3: Backend) -> None:
    rate, count = 2, 20
    await s3.put()
    rule = s3.proxy.add(ProxyRule(Throttle(rate=rate), key="^modelkit-assets/hot/"))
    answers, seconds = await _burst(s3.object_url(), count)
    statuses = Counter(a.status for a in answers)
    assert set(statuses) <= {200, 503}
    # The bucket starts with `rate` tokens and gains `rate` a second: bounds that hold
    # however long the burst took on this machine.
    assert rate <= statuses[200] <= rate + rate * seconds
    assert statuses[503] == s3.proxy.fired(rule) > 0
    for answer in answers:
        if answer.status == 503:
            assert answer.headers["Content-Type"] == "application/xml"
            assert ET.fromstring(answer.body).findtext("Code") == "SlowDown"
            assert "Retry-After" not in answer.headers
        else:
            assert answer.body == DATA
    # Every request was counted; the throttled ones never reached moto.
    assert s3.proxy.count("GET", KEY) == count
    faults = Counter(r.faults for r in s3.proxy.requests if r.key == KEY)
    assert faults == {("Throttle",): statuses[503], (): statuses[200]}


async def test_the_s3_store_sees_a_throttled_store_unavailable_error(s3: Backend) -> None:
    await s3.put()
    rule = s3.proxy.add(ProxyRule(ONE_THEN_THROTTLED, key="/hot/"))
    async with s3.store() as store:
        results = await _read_all(store, 8)
    errors = _throttled(results)
    assert len(errors) == s3.proxy.fired(rule) == 7
    for error in errors:
        assert "SlowDown" in str(error)
        assert request_outcome(error) == "throttled"


@pytest.mark.parametrize(("retry_after", "header"), [(3, "3"), (0.25, "0.25")])
async def test_retry_after_is_sent_when_asked(s3: Backend, retry_after: float, header: str) -> None:
    await s3.put()
    s3.proxy.add(ProxyRule(Throttle(rate=0.01, retry_after=retry_after), key="/hot/"))
    answers, _ = await _burst(s3.object_url(), 3)
    assert sorted((a.status, a.headers.get("Retry-After")) for a in answers) == [
        (200, None),
        (503, header),
        (503, header),
    ]


# -- concurrency ------------------------------------------------------------------------------


async def test_at_most_concurrency_requests_reach_the_server(s3: Backend) -> None:
    """client → outer proxy (the throttle) → inner proxy (slow answers) → moto.

    The inner proxy holds every answer HOLD seconds and watches with a throttle of the same
    concurrency: had the outer one let one request too many through, it would have fired.
    """
    concurrency, count, hold = 2, 16, 0.8
    await s3.put()
    inner = s3.proxy
    watch = inner.add(ProxyRule(Throttle(concurrency=concurrency)))
    inner.add(ProxyRule(DelayFirstByte(hold)))
    async with FaultProxy(inner.endpoint_url) as outer:  # on this loop; the inner on its own
        rule = outer.add(ProxyRule(Throttle(concurrency=concurrency)))
        url = _presigned(f"{outer.endpoint_url}/bucket/{KEY}")
        answers, seconds = await _burst(url, count)
        assert outer.errors == []
    statuses = Counter(a.status for a in answers)
    assert set(statuses) <= {200, 503}
    assert statuses[503] == outer.fired(rule)
    assert inner.fired(watch) == 0, "more than `concurrency` requests were in flight upstream"
    assert inner.count("GET", KEY) == statuses[200]
    # Each admitted request holds a slot for `hold` seconds, within the burst's `seconds`.
    assert concurrency <= statuses[200] <= concurrency * seconds / hold
    assert statuses[503] > 0


async def test_a_cut_connection_gives_its_slot_back(s3: Backend) -> None:
    await s3.put(data=os.urandom(200_000))
    rule = s3.proxy.add(ProxyRule(Throttle(concurrency=1)))
    s3.proxy.add(ProxyRule(Truncate(1000), times=1))
    async with aiohttp.ClientSession(trust_env=False) as http:
        with pytest.raises(aiohttp.ClientPayloadError):
            async with http.get(s3.object_url()) as response:
                await response.read()
        async with http.get(s3.object_url()) as response:
            assert response.status == 200
            assert len(await response.read()) == 200_000
    assert s3.proxy.fired(rule) == 0


# -- GCS: 429 rateLimitExceeded ---------------------------------------------------------------


async def test_gcs_is_throttled_with_a_429_rate_limit_exceeded(gcs: Backend) -> None:
    await gcs.put()
    rule = gcs.proxy.add(ProxyRule(ONE_THEN_THROTTLED, key="/hot/"))
    answers, _ = await _burst(gcs.object_url(), 2)
    assert sorted(a.status for a in answers) == [200, 429]
    (throttled,) = [a for a in answers if a.status == 429]
    assert throttled.headers["Content-Type"].startswith("application/json")
    error = json.loads(throttled.body)["error"]
    assert error["code"] == 429
    assert [e["reason"] for e in error["errors"]] == ["rateLimitExceeded"]
    async with gcs.store() as store:
        errors = _throttled(await _read_all(store, 1))
    assert len(errors) == 1
    assert "429" in str(errors[0])
    assert request_outcome(errors[0]) == "throttled"
    assert gcs.proxy.fired(rule) == 2


# -- Azure: 503 ServerBusy --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("http_method", "raw_path", "expected"),
    [
        ("GET", "/acct/ctr/p/k%201", ("GET", "ctr", "p/k 1")),
        ("HEAD", "/acct/ctr/p/k", ("HEAD", "ctr", "p/k")),
        ("PUT", "/acct/ctr/p/k?comp=block&blockid=AA", ("PUT", "ctr", "p/k")),
        ("GET", "/acct/ctr?restype=container&comp=list&prefix=p%2F", ("LIST", "ctr", "p/")),
        ("PUT", "/acct/ctr?restype=container", ("OTHER", "ctr", None)),
        ("GET", "/acct?comp=list", ("OTHER", None, None)),
    ],
)
def test_azure_requests_are_understood(
    http_method: str, raw_path: str, expected: tuple[str, str | None, str | None]
) -> None:
    seen = describe_request(http_method, raw_path, {"x-ms-range": "bytes=0-1"}, "azure")
    assert (seen.method, seen.bucket, seen.key, seen.api) == (*expected, "azure")
    assert seen.range == "bytes=0-1"


async def test_azure_is_throttled_with_server_busy(azurite_server: AzuriteServer) -> None:
    container = f"t-{os.urandom(8).hex()}"
    azurite_server.create_container(container)
    async with FaultProxy(azurite_server.endpoint_url, api="azure") as proxy:
        through_proxy = azurite_server.connection_string.replace(
            azurite_server.endpoint_url, proxy.endpoint_url
        )
        async with AzureStore(
            container, PREFIX, connection_string=azurite_server.connection_string
        ) as direct:
            await direct.put(HOT, DATA)
        rule = proxy.add(ProxyRule(ONE_THEN_THROTTLED, key="/hot/"))
        async with AzureStore(container, PREFIX, connection_string=through_proxy) as store:
            errors = _throttled(await _read_all(store, 2))
        assert len(errors) == proxy.fired(rule) == 1
        assert "ServerBusy" in str(errors[0])
        assert request_outcome(errors[0]) == "throttled"
        # Unsigned: a throttled request never reaches the server that would refuse it.
        url = f"{proxy.endpoint_url}/{azurite_server.account}/{container}/{KEY}"
        (answer,), _ = await _burst(url, 1)
        assert (answer.status, answer.headers["x-ms-error-code"]) == (503, "ServerBusy")
        assert ET.fromstring(answer.body).findtext("Code") == "ServerBusy"
        assert proxy.errors == []


# -- a whole fetch ----------------------------------------------------------------------------


async def test_a_fetch_through_a_mild_throttle_succeeds_by_retrying(
    s3: Backend, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    files = {f"part-{i}.bin": os.urandom(10_000 + i) for i in range(6)}
    for name, content in files.items():
        (source / name).write_bytes(content)
    publisher = Settings(assets_dir=tmp_path / "publisher", allow_unsafe_publish=True)
    async with AssetsManager(storage=s3.store(direct=True), settings=publisher) as am:
        await am.new(source, "models/hot")
    # A hot prefix that sheds three requests (any method) above a one-request budget: no
    # request can be refused more than three times, and the fetch tries each one four.
    rule = s3.proxy.add(ProxyRule(ONE_THEN_THROTTLED, method=None, key="/models/hot", times=3))
    events: list[Event] = []
    settings = Settings(
        assets_dir=tmp_path / "cache", max_attempts=4, retry_backoff=0.001, retry_backoff_max=0.01
    )
    async with AssetsManager(storage=s3.store(), settings=settings, on_event=events.append) as am:
        fetched = await am.fetch("models/hot:0.0")
    for name, content in files.items():
        assert (fetched.path / name).read_bytes() == content
    # The .meta comes first and is admitted; each refused object is retried, once.
    retries = [e for e in events if isinstance(e, Retrying)]
    assert len(retries) == s3.proxy.fired(rule) == 3
    assert all(r.reason == "throttled" and "SlowDown" in r.error for r in retries)
