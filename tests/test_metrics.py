"""aiomodelkit.metrics: instruments fed by events, in process, against counts taken by the store.

Each test instruments a registry of its own and stops it, so the process-wide listener list
is empty again afterwards. Scrapes run in a worker thread (they measure the cache on disk).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import anyio
import anyio.to_thread
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from aiomodelkit import AssetsManager, ConfigError, LoadError, Model, ModelLibrary, Settings
from aiomodelkit._events import Emitter, observed
from aiomodelkit._metrics_cache import cache_root, directory_bytes
from aiomodelkit.metrics import exposition, instrument
from aiomodelkit.stores import MemoryStore
from aiomodelkit.stores._lazy import LazyStore, _ObservedRead
from aiomodelkit.testing import Fault, InstrumentedStore, transient

ROOT = Path(__file__).resolve().parents[1]
#: InstrumentedStore's operations, as the metrics name their methods.
METHODS = {"stat": "HEAD", "read": "GET", "list": "LIST", "put": "PUT", "delete": "DELETE"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(registry: CollectorRegistry) -> Samples:
    """Every sample of ``registry``'s exposition, by name and labels."""
    page = await anyio.to_thread.run_sync(exposition, registry)
    assert page.content_type.startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(page.body.decode())
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


def _settings(tmp_path: Path, cache: str = "cache", **values: Any) -> Settings:
    return Settings(assets_dir=tmp_path / cache, retry_backoff=0.001, **values)


def _source(tmp_path: Path, files: dict[str, bytes]) -> Path:
    source = tmp_path / "source"
    for name, data in files.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(data)
    return source


FILES = {"a.bin": b"a" * 1000, "b.bin": b"b" * 2000, "sub/c.bin": b"c" * 3000}


def test_importing_aiomodelkit_leaves_prometheus_alone() -> None:
    code = "import sys, aiomodelkit, aiomodelkit.metrics; print('prometheus_client' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.strip() == "False"


def test_without_prometheus_client_one_error_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # makes its import fail
    monkeypatch.delitem(sys.modules, "aiomodelkit._metrics", raising=False)
    for call in (instrument, exposition):
        with pytest.raises(ConfigError, match=r"pip install 'aiomodelkit\[metrics\]'"):
            call()


def _read_kind(store: LazyStore) -> str:
    """What ``store.read`` hands out (never entered): the inner store's context manager, or
    the wrapper that times and reports it."""
    read: Any = store.read("k")
    return "_ObservedRead" if isinstance(read, _ObservedRead) else str(read.func.__qualname__)


def test_off_costs_nothing_and_stop_turns_it_off() -> None:
    inner = MemoryStore()
    lazy = LazyStore(inner)
    lazy._opened = True  # as after its first request
    assert not observed()
    assert not Emitter().active  # no event is even built
    assert _read_kind(lazy) == "MemoryStore.read"  # no wrapper per request
    registry = CollectorRegistry()
    first, second = instrument(registry), instrument(registry)
    assert observed()
    assert _read_kind(lazy) == "_ObservedRead"
    first.stop()
    first.stop()  # idempotent
    assert observed()  # the second user still counts
    second.stop()
    assert not observed()
    assert not [metric for metric in registry.collect() if "aiomodelkit" in metric.name]
    with instrument(registry):  # registers afresh after the last stop
        assert observed()
    assert not observed()


async def test_fetch_metrics_match_the_requests_the_store_counted(tmp_path: Path) -> None:
    store = InstrumentedStore(MemoryStore())
    source = _source(tmp_path, FILES)
    registry = CollectorRegistry()
    url = store.url
    with instrument(registry), instrument(registry):  # twice: counted once all the same
        async with AssetsManager(storage=store, settings=_settings(tmp_path, "publisher")) as am:
            await am.new(source, "models/clf")
        async with AssetsManager(storage=store, settings=_settings(tmp_path)) as am:
            cold = await am.fetch("models/clf")  # index, meta, three objects
        cold_samples = await scrape(registry)
        async with AssetsManager(storage=store, settings=_settings(tmp_path)) as am:
            await am.fetch("models/clf:0.0")  # pinned and cached: no request
            await am.fetch("models/clf:0.0[sub/c.bin]")
        samples = await scrape(registry)
    assert not cold.from_cache
    assert value(cold_samples, "aiomodelkit_fetch_objects_total", source="store") == 3
    assert value(cold_samples, "aiomodelkit_fetch_bytes_total", store=url) == 6000
    assert value(cold_samples, "aiomodelkit_fetch_seconds_count", source="store") == 1
    for op, method in METHODS.items():  # publishing, then the cold fetch, then nothing
        counted = value(samples, "aiomodelkit_store_requests_total", store=url, method=method)
        assert counted == store.count(op), method
        timed = value(samples, "aiomodelkit_store_request_seconds_count", method=method)
        assert timed == store.count(op), method
    assert value(samples, "aiomodelkit_store_requests_total") == store.requests
    assert value(samples, "aiomodelkit_store_requests_total", outcome="ok") < store.requests
    # Nothing more downloaded; three objects found in the cache, then one more (a sub-part).
    assert value(samples, "aiomodelkit_fetch_objects_total", source="store") == 3
    assert value(samples, "aiomodelkit_fetch_objects_total", source="cache") == 4
    assert value(samples, "aiomodelkit_fetch_seconds_count", source="cache") == 2
    assert value(samples, "aiomodelkit_fetch_bytes_total") == 6000
    cache = tmp_path / "cache"
    measured = value(samples, "aiomodelkit_cache_bytes", assets_dir=str(cache))
    assert measured == await anyio.to_thread.run_sync(directory_bytes, cache) > 6000
    assert value(samples, "aiomodelkit_retries_total") == 0


async def test_outcomes_and_retries(tmp_path: Path) -> None:
    store = InstrumentedStore(MemoryStore())
    registry = CollectorRegistry()
    with instrument(registry):
        async with AssetsManager(storage=store, settings=_settings(tmp_path, "publisher")) as am:
            await am.new(_source(tmp_path, FILES), "models/clf")
        store.inject(Fault(match=lambda key: key.endswith("a.bin"), times=2, fail=transient()))
        reset = transient("connection reset by peer")
        store.inject(Fault(match=lambda key: key.endswith("b.bin"), times=1, fail=reset))
        async with AssetsManager(storage=store, settings=_settings(tmp_path)) as am:
            await am.fetch("models/clf:0.0")
            with pytest.raises(FileNotFoundError):
                await am.fetch("models/absent")
        samples = await scrape(registry)
    assert value(samples, "aiomodelkit_retries_total", reason="throttled") == 2
    assert value(samples, "aiomodelkit_retries_total", reason="connection") == 1
    requests = "aiomodelkit_store_requests_total"
    assert value(samples, requests, method="GET", outcome="throttled") == 2
    assert value(samples, requests, method="GET", outcome="unavailable") == 1
    assert value(samples, requests, outcome="not_found") >= 1
    assert value(samples, "aiomodelkit_fetch_objects_total", source="store") == 3


class Words(Model[str, int]):
    CONFIGURATIONS: ClassVar = {
        "words": {"asset": "models/words:0"},
        "count": {"model_dependencies": ["words"]},
    }

    def _predict(self, item: str) -> int:
        return len(item.split())


class Broken(Model[str, str]):
    CONFIGURATIONS: ClassVar = {"broken": {}}

    def _load(self) -> None:
        raise ValueError("no")

    def _predict(self, item: str) -> str:
        return item


async def test_model_metrics_follow_loads_swaps_and_evictions(tmp_path: Path) -> None:
    store = MemoryStore()
    publisher = _settings(tmp_path, "publisher")
    async with AssetsManager(storage=store, settings=publisher) as am:
        await am.new(_source(tmp_path, {"w.txt": b"one"}), "models/words")
    registry = CollectorRegistry()
    with instrument(registry):
        settings = _settings(tmp_path)
        async with (
            AssetsManager(storage=store, settings=settings) as am,
            ModelLibrary([Words], assets_manager=am, settings=settings) as lib,
        ):
            loaded = await scrape(registry)
            async with AssetsManager(storage=store, settings=publisher) as publishing:
                await publishing.update(_source(tmp_path, {"w.txt": b"two"}), "models/words")
            await lib.reload()
            swapped = await scrape(registry)
        with pytest.raises(LoadError):
            async with ModelLibrary([Broken], settings=settings):
                pass
        samples = await scrape(registry)
    state = "aiomodelkit_model_state"
    for key in ("words", "count"):
        assert value(loaded, state, model=key, state="loaded") == 1
        assert value(loaded, state, model=key) == 1  # the other states are 0
        assert value(loaded, "aiomodelkit_model_load_seconds_count", model=key) == 1
    info = "aiomodelkit_model_version_info"
    assert value(loaded, info, model="words", version="0.0") == 1
    assert value(swapped, info, model="words") == 1  # the old version's series is gone
    assert value(swapped, info, model="words", version="0.1") == 1
    assert value(swapped, "aiomodelkit_model_swaps_total", model="words", outcome="ok") == 1
    assert value(samples, state, model="broken", state="failed") == 1
    assert value(samples, state, model="broken", state="loaded") == 0


class Shard(Model[str, str]):
    CONFIGURATIONS: ClassVar = {"one": {}, "two": {}}

    def _predict(self, item: str) -> str:
        return item


async def test_evictions_are_counted(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    with instrument(registry):
        settings = _settings(tmp_path, max_loaded_models=1)
        async with ModelLibrary([Shard], settings=settings) as lib:
            for key in ("one", "two"):  # one is closed to make room for two
                await lib.aget(key)
            samples = await scrape(registry)
    assert value(samples, "aiomodelkit_model_evictions_total", model="one") == 1
    assert value(samples, "aiomodelkit_model_evictions_total", model="two") == 0
    assert value(samples, "aiomodelkit_model_state", model="one", state="pending") == 1
    assert value(samples, "aiomodelkit_model_state", model="two", state="loaded") == 1


def test_cache_root() -> None:
    path = Path("/srv/cache/models/clf/1.0/models/clf/1.0/x.bin")
    assert cache_root(path, "models/clf", "1.0") == Path("/srv/cache/models/clf/1.0")
    assert cache_root(Path("/srv/cache/models/clf/1.0"), "models/clf", "1.0") == Path("/srv/cache")
    assert cache_root(Path("/elsewhere/x.bin"), "models/clf", "1.0") is None


def test_readme_table_names_every_metric() -> None:
    registry = CollectorRegistry()
    with instrument(registry):
        names = {
            metric.name + ("_total" if metric.type == "counter" else "")
            for metric in registry.collect()
        }
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Metrics") :]
    section = section[: re.search(r"\n##+ ", section).start()]  # type: ignore[union-attr]
    documented = {line.split("`")[1] for line in section.splitlines() if line.startswith("| `")}
    assert documented == names
