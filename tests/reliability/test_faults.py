"""Faults on the wire: client → FaultProxy → moto (S3) or fake-gcs-server (GCS).

For each fault the fetch either retries within its bounds and then returns byte-exact data,
or fails with a typed error naming the asset; in both cases nothing partial is ever
published, staging is cleaned, no task is left behind, and every retry is a ``Retrying``
event with a bounded attempt number and delay. Requests are counted on the proxy, server
side. Objects are "streamed" (one GET, resumed) or "ranged" (1 MiB parts, pinned to one
ETag/generation).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import random
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
import pytest

from aiomodelkit import (
    AssetsManager,
    Event,
    FetchedAsset,
    IntegrityError,
    ModelkitError,
    Settings,
    StoreUnavailableError,
)
from aiomodelkit._events import Retrying
from aiomodelkit.stores import GCSStore, S3Store, Store, StoreOptions
from aiomodelkit.stores._base import MiB
from aiomodelkit.testing import (
    CorruptBytes,
    DelayFirstByte,
    FakeGCSServer,
    FaultProxy,
    MotoServer,
    ProxyRule,
    ReplaceObject,
    ResetConnection,
    ServerError,
    Stall,
    Truncate,
)
from aiomodelkit.testing._faults import describe_request

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

ASSET = "models/clf"
PREFIX = "modelkit-assets"
#: The data object of ASSET:0.0 as the proxy sees it (a key inside the bucket).
DATA_KEY = f"{PREFIX}/{ASSET}/0.0"
DATA = rf"/{ASSET}/0\.0$"  # the rule pattern for that object (not its .meta)
BACKOFF_MAX = 0.02
MAX_ATTEMPTS = 4


@dataclass
class Backend:
    """One server, and stores that reach it directly or through the proxy."""

    kind: str
    server_url: str
    proxy: FaultProxy

    def store(self, *, direct: bool = False, options: StoreOptions | None = None) -> Store:
        url = self.server_url if direct else self.proxy.endpoint_url
        if self.kind == "s3":
            return S3Store(
                "bucket",
                PREFIX,
                options=options,
                endpoint_url=url,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
                region_name="us-east-1",
            )
        return GCSStore("bucket", PREFIX, options=options, api_root=url)


@pytest.fixture(params=["s3", "gcs"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    server: MotoServer | FakeGCSServer
    if request.param == "s3":
        server = request.getfixturevalue("moto_server")
    else:
        server = request.getfixturevalue("gcs_server")
    server.reset()
    server.create_bucket("bucket")
    with FaultProxy(server.endpoint_url) as proxy:
        yield Backend(request.param, server.endpoint_url, proxy)
        assert proxy.errors == []


@dataclass
class Outcome:
    """What one fetch through the proxy did."""

    cache: Path
    fetched: FetchedAsset | None = None
    error: ModelkitError | None = None
    events: list[Event] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def retries(self) -> list[Retrying]:
        return [e for e in self.events if isinstance(e, Retrying)]

    def data(self) -> bytes:
        assert self.error is None, self.error
        assert self.fetched is not None
        return self.fetched.path.read_bytes()


def _settings(cache: Path, mode: str = "streamed", **overrides: object) -> Settings:
    values: dict[str, object] = {
        "assets_dir": cache,
        "max_attempts": MAX_ATTEMPTS,
        "retry_backoff": 0.001,
        "retry_backoff_max": BACKOFF_MAX,
        "read_timeout": 0.5,
        "connect_timeout": 0.5,
        "range_part_size": MiB,
        "range_threshold": MiB if mode == "ranged" else 64 * MiB,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


async def _publish(backend: Backend, tmp_path: Path, data: bytes) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    settings = Settings(assets_dir=tmp_path / "publisher", allow_unsafe_publish=True)
    async with AssetsManager(storage=backend.store(direct=True), settings=settings) as am:
        await am.new(source, ASSET)


async def _fetch(backend: Backend, cache: Path, mode: str, **overrides: object) -> Outcome:
    """Fetch ASSET:0.0 through the proxy and check what must hold whatever happened."""
    settings = _settings(cache, mode, **overrides)
    outcome = Outcome(cache)
    store = backend.store(options=settings.store_options())
    tasks_before = len(asyncio.all_tasks())
    started = time.perf_counter()
    try:
        async with AssetsManager(
            storage=store, settings=settings, on_event=outcome.events.append
        ) as am:
            outcome.fetched = await am.fetch(f"{ASSET}:0.0")
    except ModelkitError as exc:
        outcome.error = exc
    outcome.seconds = time.perf_counter() - started
    assert len(asyncio.all_tasks()) == tasks_before, "a task outlived the fetch"
    assert _staging_left(cache) == []
    if outcome.error is not None:
        assert not (cache / ASSET / "0.0").exists(), "nothing may be published after a failure"
    for retry in outcome.retries:
        assert retry.asset == ASSET
        assert 1 <= retry.attempt < settings.max_attempts
        assert 0 <= retry.delay <= settings.retry_backoff_max
    return outcome


def _staging_left(cache: Path) -> list[Path]:
    if not cache.exists():
        return []
    return [p for p in cache.rglob("*") if ".incomplete-" in p.name or ".replaced-" in p.name]


def _data_gets(proxy: FaultProxy) -> list[str | None]:
    """The Range header of every GET of the data object, in order (None: whole object)."""
    return [r.range for r in proxy.requests if r.method == "GET" and r.key == DATA_KEY]


def _parts(size: int) -> int:
    return -(-size // MiB)


# -- cut bodies: truncated (FIN) or reset (RST) ----------------------------------------------


@pytest.mark.parametrize("mode", ["streamed", "ranged"])
@pytest.mark.parametrize("fault", [Truncate(300_000), ResetConnection(200_000)], ids=repr)
async def test_cut_body_is_retried_then_exact(
    backend: Backend,
    tmp_path: Path,
    mode: str,
    fault: Truncate | ResetConnection,
) -> None:
    data = os.urandom(3 * MiB + 4321)
    await _publish(backend, tmp_path, data)
    rule = backend.proxy.add(ProxyRule(fault, key=DATA, times=2))
    outcome = await _fetch(backend, tmp_path / "cache", mode)
    assert hashlib.sha256(outcome.data()).digest() == hashlib.sha256(data).digest()
    assert backend.proxy.fired(rule) == 2
    assert len(outcome.retries) == 2
    gets = _data_gets(backend.proxy)
    if mode == "streamed":
        assert [r.attempt for r in outcome.retries] == [1, 2]
        assert len(gets) == 3
        # Each retry resumes at most where the cut body ended (from 0 if nothing was kept).
        starts = [0 if g is None else int(g.removeprefix("bytes=").split("-")[0]) for g in gets]
        assert starts[0] == 0
        assert all(0 <= b - a <= fault.after for a, b in itertools.pairwise(starts))
    else:
        assert len(gets) == _parts(len(data)) + 2


# -- 500 / 503 --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["streamed", "ranged"])
async def test_slowdown_is_retried_then_exact(backend: Backend, tmp_path: Path, mode: str) -> None:
    data = os.urandom(2 * MiB + 99)
    await _publish(backend, tmp_path, data)
    rule = backend.proxy.add(ProxyRule(ServerError(503), key=DATA, times=2))
    outcome = await _fetch(backend, tmp_path / "cache", mode)
    assert outcome.data() == data
    assert backend.proxy.fired(rule) == 2
    assert len(outcome.retries) == 2
    expected = "SlowDown" if backend.kind == "s3" else "HTTP 503"
    assert all(expected in r.error for r in outcome.retries)


@pytest.mark.parametrize("target", ["streamed", "ranged", "meta"])
async def test_server_error_storm_fails_after_max_attempts(
    backend: Backend, tmp_path: Path, target: str
) -> None:
    data = os.urandom(2 * MiB + 99)
    await _publish(backend, tmp_path, data)
    key = rf"/{ASSET}/0\.0\.meta$" if target == "meta" else DATA
    backend.proxy.add(ProxyRule(ServerError(500), key=key))
    mode = "ranged" if target == "ranged" else "streamed"
    outcome = await _fetch(backend, tmp_path / "cache", mode)
    assert isinstance(outcome.error, StoreUnavailableError)
    assert "500" in str(outcome.error)
    gets = _data_gets(backend.proxy)
    if target == "streamed":
        assert len(gets) == MAX_ATTEMPTS
        assert [r.attempt for r in outcome.retries] == list(range(1, MAX_ATTEMPTS))
    elif target == "ranged":
        # Each part tries at most MAX_ATTEMPTS times; the first to give up cancels the rest.
        assert MAX_ATTEMPTS <= len(gets) <= _parts(len(data)) * MAX_ATTEMPTS
        assert max(r.attempt for r in outcome.retries) == MAX_ATTEMPTS - 1
    else:
        assert gets == []
        assert 1 <= backend.proxy.count("GET", f"{DATA_KEY}.meta") <= MAX_ATTEMPTS
    assert outcome.error.asset == ASSET, "the error must name the asset"


@pytest.mark.parametrize(
    ("method", "key"), [("GET", rf"/{ASSET}/0\.0\.meta$"), ("HEAD", DATA)], ids=["meta", "head"]
)
async def test_transient_error_on_metadata_is_retried(
    backend: Backend, tmp_path: Path, method: str, key: str
) -> None:
    data = os.urandom(2 * MiB + 1)
    await _publish(backend, tmp_path, data)
    backend.proxy.add(ProxyRule(ServerError(503), method=method, key=key, times=1))
    outcome = await _fetch(backend, tmp_path / "cache", "ranged")
    assert outcome.data() == data


# -- slow responses ---------------------------------------------------------------------------


async def test_first_byte_delay_within_the_timeout_is_waited_for(
    backend: Backend, tmp_path: Path
) -> None:
    data = os.urandom(MiB + 3)
    await _publish(backend, tmp_path, data)
    backend.proxy.add(ProxyRule(DelayFirstByte(0.3), key=DATA))
    outcome = await _fetch(backend, tmp_path / "cache", "streamed", read_timeout=2.0)
    assert outcome.data() == data
    assert outcome.retries == []
    assert outcome.seconds >= 0.3


@pytest.mark.parametrize("mode", ["streamed", "ranged"])
async def test_first_byte_delay_beyond_the_timeout_is_retried(
    backend: Backend, tmp_path: Path, mode: str
) -> None:
    data = os.urandom(2 * MiB + 3)
    await _publish(backend, tmp_path, data)
    # GCS waits connect_timeout + read_timeout for a response to start; S3 read_timeout.
    rule = backend.proxy.add(ProxyRule(DelayFirstByte(3.0), key=DATA, times=1))
    outcome = await _fetch(backend, tmp_path / "cache", mode, connect_timeout=0.25)
    assert outcome.data() == data
    assert backend.proxy.fired(rule) == 1
    assert len(outcome.retries) == 1
    assert outcome.seconds < 3.0, "the client must give up on the slow answer, not wait"


@pytest.mark.parametrize("mode", ["streamed", "ranged"])
async def test_stall_mid_stream_hits_the_idle_timeout_then_resumes(
    backend: Backend, tmp_path: Path, mode: str
) -> None:
    data = os.urandom(2 * MiB + 3)
    await _publish(backend, tmp_path, data)
    rule = backend.proxy.add(ProxyRule(Stall(after=100_000, seconds=5.0), key=DATA, times=1))
    outcome = await _fetch(backend, tmp_path / "cache", mode)
    assert outcome.data() == data
    assert backend.proxy.fired(rule) == 1
    assert len(outcome.retries) == 1
    assert "stalled" in outcome.retries[0].error or "timeout" in outcome.retries[0].error
    assert outcome.seconds < 5.0, "read_timeout is an idle timeout: the stall must not be awaited"


# -- wrong bytes ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["streamed", "ranged"])
async def test_corrupt_bytes_are_refused_and_never_published(
    backend: Backend, tmp_path: Path, mode: str
) -> None:
    data = os.urandom(2 * MiB + 3)
    await _publish(backend, tmp_path, data)
    rule = backend.proxy.add(ProxyRule(CorruptBytes(at=1000, count=3), key=DATA, times=1))
    cache = tmp_path / "cache"
    outcome = await _fetch(backend, cache, mode)
    assert isinstance(outcome.error, IntegrityError)
    assert (outcome.error.asset, outcome.error.key) == (ASSET, f"{ASSET}/0.0")
    assert backend.proxy.fired(rule) == 1
    assert outcome.retries == []  # a checksum mismatch is not transient
    # Nothing bad was kept: the next fetch downloads again and gets the right bytes.
    assert (await _fetch(backend, cache, mode)).data() == data


async def test_object_replaced_between_ranged_requests_is_refused(
    backend: Backend, tmp_path: Path
) -> None:
    data = os.urandom(3 * MiB + 5)
    await _publish(backend, tmp_path, data)
    other = os.urandom(len(data))
    rule = backend.proxy.add(ProxyRule(ReplaceObject(other), key=DATA, ranged=True, times=1))
    cache = tmp_path / "cache"
    outcome = await _fetch(backend, cache, "ranged")
    assert isinstance(outcome.error, IntegrityError)
    assert outcome.error.asset == ASSET
    assert "replaced" in outcome.error.message
    assert backend.proxy.fired(rule) == 1
    # The store now holds other bytes than its meta records: refused again, never mixed.
    again = await _fetch(backend, cache, "ranged")
    assert isinstance(again.error, IntegrityError)


async def test_object_replaced_before_a_streamed_resume_is_refused(
    backend: Backend, tmp_path: Path
) -> None:
    data = os.urandom(MiB + 5)
    await _publish(backend, tmp_path, data)
    other = os.urandom(len(data))
    faults = (Truncate(1000), ReplaceObject(other))
    backend.proxy.add(ProxyRule(faults, key=DATA, times=1))
    outcome = await _fetch(backend, tmp_path / "cache", "streamed")
    assert outcome.error is not None, "must fail: the object changed under the download"
    assert isinstance(outcome.error, IntegrityError), repr(outcome.error)


# -- faults drawn at random, deterministically ---------------------------------------------


async def test_seeded_random_faults_are_reproducible(backend: Backend, tmp_path: Path) -> None:
    files = tmp_path / "many"
    files.mkdir()
    contents = {f"f{i:02d}.bin": os.urandom(1000 + i) for i in range(12)}
    for name, content in contents.items():
        (files / name).write_bytes(content)
    settings = Settings(assets_dir=tmp_path / "publisher", allow_unsafe_publish=True)
    async with AssetsManager(storage=backend.store(direct=True), settings=settings) as am:
        await am.new(files, ASSET)
    probability, seed = 0.3, 11
    # What a random.Random(seed) decides: draws go on until every object got through.
    draws = random.Random(seed)
    expected_faults = passed = 0
    while passed < len(contents):
        if draws.random() < probability:
            expected_faults += 1
        else:
            passed += 1
    attempts = expected_faults + 1  # so that no object can run out of attempts
    fired = []
    for run in range(2):
        rule = backend.proxy.add(
            ProxyRule(ServerError(503), key=rf"/{ASSET}/0\.0/", probability=probability, seed=seed)
        )
        outcome = await _fetch(backend, tmp_path / f"cache{run}", "streamed", max_attempts=attempts)
        assert outcome.fetched is not None
        for name, content in contents.items():
            assert (outcome.fetched.path / name).read_bytes() == content
        assert len(outcome.retries) == backend.proxy.fired(rule)
        fired.append(backend.proxy.fired(rule))
        backend.proxy.remove(rule)
    assert fired == [expected_faults, expected_faults]


# -- the proxy itself ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("http_method", "raw_path", "expected"),
    [
        ("GET", "/bucket/p/models/a%20b/1.0", ("GET", "s3", "bucket", "p/models/a b/1.0")),
        ("HEAD", "/bucket/p/k", ("HEAD", "s3", "bucket", "p/k")),
        ("PUT", "/bucket/p/k?partNumber=2&uploadId=x", ("PUT", "s3", "bucket", "p/k")),
        ("GET", "/bucket?list-type=2&prefix=p%2Fm", ("LIST", "s3", "bucket", "p/m")),
        ("GET", "/bucket?location", ("OTHER", "s3", "bucket", None)),
        ("PUT", "/bucket", ("OTHER", "s3", "bucket", None)),
        ("GET", "/storage/v1/b/bkt/o/p%2Fk%201?alt=media", ("GET", "gcs", "bkt", "p/k 1")),
        ("GET", "/download/storage/v1/b/bkt/o/p%2Fk?alt=media", ("GET", "gcs", "bkt", "p/k")),
        ("GET", "/storage/v1/b/bkt/o/p%2Fk?alt=json", ("HEAD", "gcs", "bkt", "p/k")),
        ("GET", "/storage/v1/b/bkt/o/p%2Fk", ("HEAD", "gcs", "bkt", "p/k")),
        (
            "POST",
            "/upload/storage/v1/b/bkt/o?uploadType=media&name=p%2Fk",
            ("PUT", "gcs", "bkt", "p/k"),
        ),
        ("DELETE", "/storage/v1/b/bkt/o/p%2Fk", ("DELETE", "gcs", "bkt", "p/k")),
        ("GET", "/storage/v1/b/bkt/o?prefix=p%2F&maxResults=10", ("LIST", "gcs", "bkt", "p/")),
        ("POST", "/storage/v1/b?project=test", ("OTHER", "gcs", None, None)),
    ],
)
def test_requests_are_understood_for_both_apis(
    http_method: str, raw_path: str, expected: tuple[str, str, str | None, str | None]
) -> None:
    seen = describe_request(http_method, raw_path, {"Range": "bytes=0-1"}, None)
    assert (seen.method, seen.api, seen.bucket, seen.key) == expected
    assert seen.range == "bytes=0-1"


@pytest.mark.parametrize(
    "upstream",
    ["http://192.0.2.1:9000", "https://127.0.0.1:9000", "http://u:p@127.0.0.1:9000",
     "http://127.0.0.1:9000/prefix", "ftp://127.0.0.1"],
)  # fmt: skip
def test_only_plain_loopback_upstreams_are_accepted(upstream: str) -> None:
    with pytest.raises(ValueError, match="upstream"):
        FaultProxy(upstream)


def test_rules_are_checked_when_made() -> None:
    with pytest.raises(ValueError, match="probability"):
        ProxyRule(ServerError(), probability=1.5)
    with pytest.raises(ValueError, match="exactly one"):
        ReplaceObject()
    with pytest.raises(re.error):
        ProxyRule(ServerError(), key="(")


async def test_proxy_on_the_current_loop_with_nth_and_api_error_bodies(
    gcs_server: FakeGCSServer, moto_server: MotoServer
) -> None:
    gcs_server.reset()
    gcs_server.create_bucket("bucket")
    moto_server.reset()
    moto_server.create_bucket("bucket")
    async with (
        FaultProxy(gcs_server.endpoint_url) as gcs,
        FaultProxy(moto_server.endpoint_url) as s3,
        aiohttp.ClientSession(trust_env=False) as http,
    ):
        rule = gcs.add(ProxyRule(ServerError(503), method="LIST", nth=[2, 3]))
        statuses, bodies = [], []
        for _ in range(4):
            async with http.get(f"{gcs.endpoint_url}/storage/v1/b/bucket/o") as response:
                statuses.append(response.status)
                bodies.append(await response.read())
        assert statuses == [200, 503, 503, 200]
        assert json.loads(bodies[1])["error"]["code"] == 503
        assert (gcs.fired(rule), gcs.count("LIST", "")) == (2, 4)
        # Media downloads also come through /download/storage/v1/ (GCS's mediaLink).
        upload = f"{gcs.endpoint_url}/upload/storage/v1/b/bucket/o"
        async with http.post(upload, params={"uploadType": "media", "name": "a/b"}, data=b"xy"):
            pass
        gcs.add(ProxyRule(CorruptBytes(at=1), key="^a/b$"))
        media = f"{gcs.endpoint_url}/download/storage/v1/b/bucket/o/a%2Fb?alt=media"
        async with http.get(media) as response:
            assert await response.read() == bytes([ord("x"), ord("y") ^ 0xFF])
        assert gcs.count("GET", "a/b") == 1
        assert gcs.count("PUT", "a/b") == 1
        gcs.add(ProxyRule(ServerError(500), method="HEAD", path=r"[?&]alt=json(&|$)"))
        async with http.get(f"{gcs.endpoint_url}/storage/v1/b/bucket/o/a%2Fb?alt=json") as meta:
            assert meta.status == 500

        s3.add(ProxyRule(ServerError(503), method=None, key="^k$"))
        async with http.get(f"{s3.endpoint_url}/bucket/k") as response:
            assert response.status == 503
            assert b"<Code>SlowDown</Code>" in await response.read()
        assert [(r.method, r.key, r.faults) for r in s3.requests] == [
            ("GET", "k", ("ServerError",))
        ]


@pytest.mark.parametrize(
    "key", [DATA, rf"/{ASSET}/0\.0\.meta$", rf"/{ASSET}\.versions$"], ids=["data", "meta", "index"]
)
async def test_a_transient_error_while_publishing_is_retried(
    backend: Backend, tmp_path: Path, key: str
) -> None:
    # A 500 on one PUT (data, meta or index: rclone answered one under load) must not fail
    # a publication: it is retried, and the version comes out whole.
    data = os.urandom(MiB + 7)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    rule = backend.proxy.add(ProxyRule(ServerError(500), method="PUT", key=key, times=1))
    events: list[Event] = []
    settings = Settings(assets_dir=tmp_path / "publisher", allow_unsafe_publish=True)
    async with AssetsManager(
        storage=backend.store(), settings=settings, on_event=events.append
    ) as am:
        assert (await am.new(source, ASSET)).version == "0.0"
    assert backend.proxy.fired(rule) == 1
    assert [type(e).__name__ for e in events].count("Retrying") == 1
    outcome = await _fetch(backend, tmp_path / "cache", "streamed")
    assert outcome.data() == data
