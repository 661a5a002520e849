"""The adaptive budget against a real hot prefix: moto behind FaultProxy's Throttle.

What a fleet cares about, per process: fewer refusals than a fixed budget under the same
throttle, every start succeeding, the request count of a cold start reported exactly, and
the start spread by ``start_jitter``.
"""

from __future__ import annotations

import os
import random
import time
from typing import TYPE_CHECKING

import pytest

from aiomodelkit import AssetsManager, Event, Settings, StoreUnavailableError
from aiomodelkit._events import Retrying
from aiomodelkit._outcomes import congestion
from aiomodelkit.stores import S3Store
from aiomodelkit.testing import DelayFirstByte, FaultProxy, MotoServer, ProxyRule, Throttle

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

PREFIX = "assets"
OBJECTS = 48


@pytest.fixture
def proxy(moto_server: MotoServer) -> Iterator[FaultProxy]:
    moto_server.reset()
    moto_server.create_bucket("bucket")
    with FaultProxy(moto_server.endpoint_url) as proxy:
        yield proxy
        assert proxy.errors == []


def _store(url: str) -> S3Store:
    return S3Store(
        "bucket",
        PREFIX,
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


@pytest.fixture
async def published(moto_server: MotoServer, proxy: FaultProxy, tmp_path: Path) -> dict[str, bytes]:
    source = tmp_path / "source"
    source.mkdir()
    files = {f"shard-{i:02}.bin": os.urandom(4096 + i) for i in range(OBJECTS)}
    for name, content in files.items():
        (source / name).write_bytes(content)
    settings = Settings(assets_dir=tmp_path / "publisher", allow_unsafe_publish=True)
    async with AssetsManager(storage=_store(moto_server.endpoint_url), settings=settings) as am:
        await am.new(source, "models/hot")
    return files


def _settings(tmp_path: Path, name: str, **values: object) -> Settings:
    return Settings(
        assets_dir=tmp_path / name,
        max_attempts=12,
        retry_backoff=0.01,
        retry_backoff_max=0.05,
        **values,  # type: ignore[arg-type]
    )


async def _cold_start(
    proxy: FaultProxy, settings: Settings, files: dict[str, bytes]
) -> tuple[int, bool]:
    """Fetch through a hot prefix: the slow-down answers received, and whether it started."""
    rule = proxy.add(ProxyRule(Throttle(concurrency=6), method="GET", key="/models/hot/"))
    # Admitted responses held 50 ms: requests overlap, so 48 at once meet a prefix that
    # takes 6 (the throttle comes first: it sees every request).
    proxy.add(ProxyRule(DelayFirstByte(0.05), method="GET", key="/models/hot/"))
    try:
        async with AssetsManager(storage=_store(proxy.endpoint_url), settings=settings) as am:
            fetched = await am.fetch("models/hot:0.0")
    except StoreUnavailableError as exc:
        if "SlowDown" not in str(exc):
            raise
        return proxy.fired(rule), False
    finally:
        proxy.clear()
    for name, content in files.items():
        assert (fetched.path / name).read_bytes() == content
    return proxy.fired(rule), True


async def test_the_adaptive_budget_draws_far_fewer_refusals_than_a_fixed_one(
    proxy: FaultProxy, published: dict[str, bytes], tmp_path: Path
) -> None:
    fixed, _ = await _cold_start(
        proxy, _settings(tmp_path, "fixed", adaptive_concurrency=False), published
    )
    adaptive, started = await _cold_start(
        proxy, _settings(tmp_path, "adaptive", adaptive_concurrency=True), published
    )
    # A fixed 64 sends all 48 at once and retries into the hot prefix (with these short
    # backoffs it may even run out of attempts: a failed start); the adaptive budget starts
    # at 16 and halves on the first refusals of a round.
    assert fixed >= OBJECTS - 6
    assert started
    assert adaptive < fixed / 2


async def test_the_fetch_reports_the_requests_it_sent(
    proxy: FaultProxy, published: dict[str, bytes], tmp_path: Path
) -> None:
    settings = _settings(tmp_path, "cache")
    async with AssetsManager(storage=_store(proxy.endpoint_url), settings=settings) as am:
        proxy.reset()
        cold = await am.fetch("models/hot:0.0")
        sent = len(proxy.requests)
        warm = await am.fetch("models/hot:0.0")
    assert cold.requests == sent == OBJECTS + 1  # the meta, then every object
    assert warm.requests == 0
    assert len(proxy.requests) == sent


async def test_start_jitter_delays_the_first_request(
    proxy: FaultProxy, published: dict[str, bytes], tmp_path: Path
) -> None:
    random.seed(17)
    expected = random.Random(17).uniform(0, 0.6)
    settings = _settings(tmp_path, "cache", start_jitter=0.6)
    async with AssetsManager(storage=_store(proxy.endpoint_url), settings=settings) as am:
        started = time.monotonic()
        await am.fetch("models/hot:0.0")
        took = time.monotonic() - started
        started = time.monotonic()
        await am.fetch("models/hot", force=True)  # jitter is for the first request only
        again = time.monotonic() - started
    assert took >= expected
    assert again < took or again < expected


async def test_a_retry_waits_at_least_the_stores_retry_after(
    proxy: FaultProxy, published: dict[str, bytes], tmp_path: Path
) -> None:
    # One refusal (of the fetch's meta read), asking for 0.5 s; the backoff is under 50 ms.
    rule = proxy.add(
        ProxyRule(Throttle(rate=0.01, retry_after=0.5), method="GET", key="models/hot", times=1)
    )
    events: list[Event] = []
    settings = _settings(tmp_path, "cache")
    async with AssetsManager(
        storage=_store(proxy.endpoint_url), settings=settings, on_event=events.append
    ) as am:
        await am.versions("models/hot")  # spends the throttle's one admitted request
        started = time.monotonic()
        await am.fetch("models/hot:0.0")
        took = time.monotonic() - started
    retries = [e for e in events if isinstance(e, Retrying)]
    assert proxy.fired(rule) == 1
    assert [r.delay for r in retries] == [0.5]
    assert took >= 0.5


@pytest.mark.parametrize("method", ["HEAD", "GET"])
async def test_a_throttled_request_is_congestion_even_without_a_body(
    proxy: FaultProxy, published: dict[str, bytes], method: str
) -> None:
    # A 503 to a HEAD has no body to say SlowDown in: still a sign to slow down.
    proxy.add(ProxyRule(Throttle(rate=0.01), method=method, key="models/hot"))
    async with _store(proxy.endpoint_url) as store:
        key = "models/hot/0.0/shard-00.bin"

        async def call() -> None:
            if method == "HEAD":
                await store.stat(key)
                return
            async with store.read(key) as chunks:
                async for _ in chunks:
                    pass

        await call()  # the throttle admits its first request
        with pytest.raises(StoreUnavailableError) as info:
            await call()
    assert congestion(info.value)
