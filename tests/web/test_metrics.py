"""``GET /metrics``: scraped with a real HTTP client from real server processes.

* ``aiomodelkit serve`` on moto, behind a :class:`~aiomodelkit.testing.LatencyProxy` (on the
  test's loop, no delay) that counts the requests the server received: a cold start, then a
  warm start on the same cache, each scraped and compared with the proxy's count.
* The FastAPI recipe under ``uvicorn --workers 2`` with ``PROMETHEUS_MULTIPROC_DIR``: one
  scrape shows both workers.
* The route itself, in process: 501 and one line without prometheus-client.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp
import anyio
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from aiomodelkit import AssetsManager, ModelLibrary, Settings
from aiomodelkit._serve import make_app
from aiomodelkit.metrics import instrument
from aiomodelkit.stores import S3Store
from aiomodelkit.testing import LatencyProxy, MotoServer

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

    from .conftest import ServerProcess, StartServer

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

MODELS = """
from typing import ClassVar

from aiomodelkit import Model


class Words(Model[str, int]):
    CONFIGURATIONS: ClassVar = {"words": {"asset": "test/words:0"}}

    def _predict(self, item: str) -> int:
        return len(item.split())
"""
FILES = {"a.txt": b"a" * 1000, "b.txt": b"b" * 20_000, "deep/c.txt": b"c" * 300_000}
BUCKET = "metrics"


def parse(page: str) -> Samples:
    """Every sample of a text exposition, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(page)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


def _ours(samples: Samples) -> Samples:
    return {key: v for key, v in samples.items() if key[0].startswith("aiomodelkit_")}


async def scrape(session: aiohttp.ClientSession, url: str) -> Samples:
    async with session.get(f"{url}/metrics") as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/plain")
        return parse(await response.text())


async def _publish(tmp_path: Path, moto: MotoServer) -> None:
    source = tmp_path / "words"
    for name, data in FILES.items():
        await anyio.Path(source / name).parent.mkdir(parents=True, exist_ok=True)
        await anyio.Path(source / name).write_bytes(data)
    store = S3Store(
        BUCKET,
        "team",
        endpoint_url=moto.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    async with AssetsManager(tmp_path / "publisher-cache", store) as am:
        await am.new(source, "test/words")


async def _start(start_server: StartServer, module: Path, env: dict[str, str]) -> ServerProcess:
    server = start_server(["-m", "aiomodelkit", "serve", str(module), "--port", "{port}"], env)
    async with aiohttp.ClientSession() as session:
        await server.wait_ready(session)
    return server


async def test_serve_counts_what_the_store_received(
    tmp_path: Path, moto_server: MotoServer, start_server: StartServer
) -> None:
    moto_server.create_bucket(BUCKET)
    await _publish(tmp_path, moto_server)
    module = tmp_path / "served_models.py"
    await anyio.Path(module).write_text(MODELS)
    moto = urlsplit(moto_server.endpoint_url)
    assert moto.hostname is not None
    assert moto.port is not None
    cache = tmp_path / "cache"
    size = sum(len(data) for data in FILES.values())
    async with LatencyProxy((moto.hostname, moto.port), rtt=0.0) as proxy:
        env = {
            **os.environ,  # noqa: TID251 - the server process inherits the test's (isolated) env
            "AIOMODELKIT_STORAGE": f"s3://{BUCKET}/team",
            "AIOMODELKIT_ASSETS_DIR": str(cache),
            "AWS_ENDPOINT_URL": proxy.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        runs: list[tuple[Samples, dict[str, int]]] = []
        for _ in ("cold", "warm"):
            proxy.reset_stats()
            server = await _start(start_server, module, env)
            async with aiohttp.ClientSession() as session:
                samples = await scrape(session, server.url)
                counted = dict(proxy.stats.requests)
                again = await scrape(session, server.url)
                assert _ours(again) == _ours(samples)  # a scrape changes nothing
            assert server.stop(signal.SIGTERM) == 0, server.output()
            runs.append((samples, counted))
    (cold, cold_server), (warm, warm_server) = runs
    requests = "aiomodelkit_store_requests_total"
    for samples, counted in runs:  # what the server was asked is what the metrics say
        for method in ("GET", "HEAD", "PUT", "DELETE"):
            assert value(samples, requests, method=method) == counted.get(method, 0), method
        assert value(samples, requests) == sum(counted.values())
        seconds = value(samples, "aiomodelkit_store_request_seconds_count")
        assert seconds == sum(counted.values())
        assert value(samples, requests, outcome="ok") == sum(counted.values())
        assert value(samples, "aiomodelkit_model_state", model="words", state="loaded") == 1
        assert value(samples, "aiomodelkit_model_state", model="words") == 1
        assert value(samples, "aiomodelkit_model_load_seconds_count", model="words") == 1
        assert value(samples, "aiomodelkit_model_version_info", model="words", version="0.0") == 1
        assert value(samples, "aiomodelkit_cache_bytes", assets_dir=str(cache)) > size
        assert value(samples, "aiomodelkit_retries_total") == 0
    # Cold: the index, the meta and the three objects; each byte once.
    assert cold_server == {"GET": 5}
    assert value(cold, "aiomodelkit_fetch_objects_total", source="store") == 3
    assert value(cold, "aiomodelkit_fetch_objects_total", source="cache") == 0
    assert value(cold, "aiomodelkit_fetch_bytes_total", store=f"s3://{BUCKET}/team") == size
    assert value(cold, "aiomodelkit_fetch_seconds_count", source="store") == 1
    assert value(cold, "aiomodelkit_fetch_seconds_bucket", source="store", le="+Inf") == 1
    # Warm: the index only (the spec is partial); the three objects come from the cache.
    assert warm_server == {"GET": 1}
    assert value(warm, "aiomodelkit_fetch_objects_total", source="store") == 0
    assert value(warm, "aiomodelkit_fetch_objects_total", source="cache") == 3
    assert value(warm, "aiomodelkit_fetch_bytes_total") == 0
    assert value(warm, "aiomodelkit_fetch_seconds_count", source="cache") == 1


async def _scrape_workers(server: ServerProcess) -> Samples:
    """Scrape until both workers have loaded both models; check that every worker answers
    with the same merged page."""
    state = "aiomodelkit_model_state"
    samples: Samples = {}
    async with aiohttp.ClientSession() as session:
        with anyio.fail_after(60):
            while value(samples, state, state="loaded") < 4:  # two models in two workers
                assert server.process.poll() is None, server.output()
                try:
                    samples = await scrape(session, server.url)
                except aiohttp.ClientConnectionError:
                    pass  # not listening yet
                await anyio.sleep(0.1)
        for _ in range(4):  # whichever worker answers, the page is the same merged view
            again = await scrape(session, server.url)
            assert value(again, state, model="sentiment", state="loaded") == 2
    return samples


async def test_uvicorn_workers_merge_their_metrics(
    example_env: dict[str, str], start_server: StartServer, tmp_path: Path
) -> None:
    directory = tmp_path / "prometheus"
    await anyio.Path(directory).mkdir()
    env = {**example_env, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    app = ["-m", "uvicorn", "examples.fastapi_app:app", "--host", "127.0.0.1"]
    server = start_server([*app, "--port", "{port}", "--workers", "2"], env)
    try:  # the workers stop with the server, whatever the assertions say
        samples = await _scrape_workers(server)
    finally:
        status = server.stop(signal.SIGTERM, timeout=30)
    assert status == 0, server.output()
    state = "aiomodelkit_model_state"
    for model in ("sentiment", "vocabulary"):
        assert value(samples, state, model=model, state="loaded") == 2
        assert value(samples, "aiomodelkit_model_load_seconds_count", model=model) == 2
        assert value(samples, "aiomodelkit_model_version_info", model=model, version="0.0") == 1
    # Each version is downloaded once (a per-version lock: 2 + 1 objects); the other worker
    # finds what its specs name in the cache: the vocabulary's words.txt and the sentiment file.
    objects = "aiomodelkit_fetch_objects_total"
    assert value(samples, objects, source="store") == 3
    assert value(samples, objects, source="cache") == 2
    assert value(samples, "aiomodelkit_fetch_seconds_count") == 4
    assert value(samples, "aiomodelkit_cache_bytes") > 0
    assert list(directory.glob("*.db")), "the workers wrote no metric files"


async def test_metrics_route_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    library = ModelLibrary([], settings=Settings(assets_dir=tmp_path / "cache"))
    runner = web.AppRunner(make_app(library))
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        url = f"http://{host}:{port}/metrics"
        async with aiohttp.ClientSession() as session:
            with instrument():  # prometheus_client's default registry, as serve uses
                async with session.get(url) as response:
                    assert response.status == 200
                    assert "aiomodelkit_store_requests_total" in await response.text()
            monkeypatch.setitem(sys.modules, "prometheus_client", None)
            monkeypatch.delitem(sys.modules, "aiomodelkit._metrics")
            async with session.get(url) as response:
                assert response.status == 501
                text = await response.text()
    finally:
        await runner.cleanup()
    assert text.count("\n") == 1
    assert "pip install 'aiomodelkit[metrics]'" in text
