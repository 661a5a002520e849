"""The Prometheus instruments and the listener that feeds them (``aiomodelkit.metrics``).

One :class:`Instruments` per registry, shared by every :func:`instrument` call on it (a
second call adds a user, never a second listener: nothing is counted twice); the last user
to stop unsubscribes and unregisters them. The listener dispatches on the event's exact type
through one dict lookup, and keeps the labelled children it uses, so an event costs a few
microseconds (``benchmarks/metrics_overhead.py`` measures the whole on a W3 fetch).

In multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set before ``prometheus_client`` is
imported, as its documentation requires) counters and histograms are summed over the
processes; ``aiomodelkit_model_state`` sums too (how many live processes have the model in
each state) and ``aiomodelkit_model_version_info`` takes the maximum over live processes.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import values as prometheus_values
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from ._events import (
    AssetPublished,
    BytesReceived,
    CacheHit,
    FetchFinished,
    ObjectDownloaded,
    Retrying,
    StoreRequest,
    subscribe,
)
from ._metrics_cache import CacheSizeCollector
from ._status import (
    ModelEvicted,
    ModelFailed,
    ModelFetchFinished,
    ModelFetchStarted,
    ModelLoadFinished,
    ModelLoadStarted,
    ModelState,
    ModelSwapFailed,
    ModelSwapped,
)

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Instruments", "acquire", "exposition", "multiprocess", "release"]

#: Histogram buckets (seconds) of fetches and model loads: a cache hit to a 5-minute download.
SLOW_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
#: Histogram buckets (seconds) of single store requests.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_STATES = tuple(state.value for state in ModelState)


def multiprocess() -> bool:
    """Whether prometheus_client keeps its values in files (``PROMETHEUS_MULTIPROC_DIR`` was
    set when it was imported): asked of the library itself, which decided at import."""
    return prometheus_values.ValueClass is not prometheus_values.MutexValue


class Instruments:
    """The metrics of one registry and the listener that updates them."""

    def __init__(self, registry: CollectorRegistry, *, cache_interval: float = 10.0) -> None:
        self.registry = registry
        self.users = 0
        self.stop: Callable[[], None] = lambda: None
        self.multiprocess = multiprocess()
        self.fetch_bytes = Counter(
            "aiomodelkit_fetch_bytes",
            "Bytes received from the store by fetches (retried bytes included)",
            ["store"],
            registry=registry,
        )
        self.fetch_objects = Counter(
            "aiomodelkit_fetch_objects",
            "Objects fetches delivered: downloaded (source=store, each once), the files a spec "
            "names found in the cache (cache), or taken from the cache because the store was "
            "unreachable (fallback)",
            ["store", "source"],
            registry=registry,
        )
        self.fetch_seconds = Histogram(
            "aiomodelkit_fetch_seconds",
            "Duration of each fetch of one spec, by where its version came from",
            ["store", "source"],
            buckets=SLOW_BUCKETS,
            registry=registry,
        )
        self.requests = Counter(
            "aiomodelkit_store_requests",
            "Store requests by method (GET, HEAD, LIST, PUT, DELETE) and outcome",
            ["store", "method", "outcome"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "aiomodelkit_store_request_seconds",
            "Duration of each store request (a GET until its body's last byte)",
            ["store", "method"],
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self.retries = Counter(
            "aiomodelkit_retries",
            "Transient store failures retried, by reason "
            "(throttled, server_error, timeout, truncated, connection)",
            ["store", "reason"],
            registry=registry,
        )
        self.load_seconds = Histogram(
            "aiomodelkit_model_load_seconds",
            "Duration of each model's _load",
            ["model"],
            buckets=SLOW_BUCKETS,
            registry=registry,
        )
        self.state = Gauge(
            "aiomodelkit_model_state",
            "1 for the state each model is in, 0 for the others "
            "(multiprocess: how many live processes have it in that state)",
            ["model", "state"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.version_info = Gauge(
            "aiomodelkit_model_version_info",
            "1 for the asset version each model serves",
            ["model", "version"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.evictions = Counter(
            "aiomodelkit_model_evictions",
            "Models closed to make room under max_loaded_models / max_loaded_bytes",
            ["model"],
            registry=registry,
        )
        self.swaps = Counter(
            "aiomodelkit_model_swaps",
            "New versions swapped in while serving (outcome ok), or that failed (failed)",
            ["model", "outcome"],
            registry=registry,
        )
        self.cache = CacheSizeCollector(cache_interval)
        registry.register(self.cache)
        self._versions: dict[str, str] = {}
        self._children: dict[tuple[Any, ...], Any] = {}
        self._handlers: dict[type, Callable[[Any, str], None]] = {
            BytesReceived: self._bytes,
            ObjectDownloaded: self._object,
            FetchFinished: self._fetched,
            StoreRequest: self._request,
            Retrying: self._retry,
            CacheHit: self._cache_path,
            AssetPublished: self._cache_path,
            ModelFetchStarted: self._state(ModelState.FETCHING),
            ModelFetchFinished: self._model_fetched,
            ModelLoadStarted: self._state(ModelState.LOADING),
            ModelLoadFinished: self._loaded,
            ModelFailed: self._state(ModelState.FAILED),
            ModelEvicted: self._evicted,
            ModelSwapped: self._swapped,
            ModelSwapFailed: self._swap_failed,
        }

    def collectors(self) -> list[Any]:
        """Everything registered on the registry."""
        return [
            self.fetch_bytes,
            self.fetch_objects,
            self.fetch_seconds,
            self.requests,
            self.request_seconds,
            self.retries,
            self.load_seconds,
            self.state,
            self.version_info,
            self.evictions,
            self.swaps,
            self.cache,
        ]

    def listen(self, event: object, store: str | None) -> None:
        """The process-wide listener: update the metrics ``event`` concerns."""
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event, store or "")

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # -- fetches and stores ----------------------------------------------------------------

    def _bytes(self, event: BytesReceived, store: str) -> None:
        self._child(self.fetch_bytes, store).inc(event.size)

    def _object(self, event: ObjectDownloaded, store: str) -> None:
        self._child(self.fetch_objects, store, "store").inc()

    def _fetched(self, event: FetchFinished, store: str) -> None:
        if event.source != "store":  # downloaded objects are counted one by one, once each
            self._child(self.fetch_objects, store, event.source).inc(event.objects)
        self._child(self.fetch_seconds, store, event.source).observe(event.seconds)

    def _request(self, event: StoreRequest, store: str) -> None:
        self._child(self.requests, store, event.method, event.outcome).inc()
        self._child(self.request_seconds, store, event.method).observe(event.seconds)

    def _retry(self, event: Retrying, store: str) -> None:
        self._child(self.retries, store, event.reason).inc()

    def _cache_path(self, event: CacheHit | AssetPublished, store: str) -> None:
        self.cache.learn(event.path, event.asset, event.version)

    # -- models ----------------------------------------------------------------------------

    def _set_state(self, model: str, state: ModelState) -> None:
        for value in _STATES:
            self._child(self.state, model, value).set(1 if value == state.value else 0)

    def _state(self, state: ModelState) -> Callable[[Any, str], None]:
        return lambda event, store: self._set_state(event.model, state)

    def _set_version(self, model: str, version: str | None) -> None:
        old = self._versions.pop(model, None)
        if old is not None and old != version:
            if self.multiprocess:  # prometheus_client cannot remove a series from its files
                self._child(self.version_info, model, old).set(0)
            else:
                self._children.pop((id(self.version_info), model, old), None)
                self.version_info.remove(model, old)
        if version is not None:
            self._versions[model] = version
            self._child(self.version_info, model, version).set(1)

    def _model_fetched(self, event: ModelFetchFinished, store: str) -> None:
        self._set_state(event.model, ModelState.PENDING)  # until its dependencies are loaded
        self._set_version(event.model, event.version)

    def _loaded(self, event: ModelLoadFinished, store: str) -> None:
        self._set_state(event.model, ModelState.LOADED)
        self._child(self.load_seconds, event.model).observe(event.seconds)

    def _evicted(self, event: ModelEvicted, store: str) -> None:
        self._set_state(event.model, ModelState.PENDING)
        self._child(self.evictions, event.model).inc()

    def _swapped(self, event: ModelSwapped, store: str) -> None:
        self._child(self.swaps, event.model, "ok").inc()
        if event.new_version is not None:
            self._set_version(event.model, event.new_version)

    def _swap_failed(self, event: ModelSwapFailed, store: str) -> None:
        self._child(self.swaps, event.model, "failed").inc()


_lock = threading.Lock()
_active: dict[CollectorRegistry, Instruments] = {}


def acquire(registry: CollectorRegistry | None) -> Instruments:
    """The instruments of ``registry`` (default: prometheus_client's), created and subscribed
    by the first user; each call adds a user."""
    registry = REGISTRY if registry is None else registry
    with _lock:
        instruments = _active.get(registry)
        if instruments is None:
            instruments = _active[registry] = Instruments(registry)
            instruments.stop = subscribe(instruments.listen)
        instruments.users += 1
        return instruments


def release(instruments: Instruments) -> None:
    """Remove one user; the last one unsubscribes and unregisters the instruments."""
    with _lock:
        instruments.users -= 1
        if instruments.users > 0 or _active.get(instruments.registry) is not instruments:
            return
        del _active[instruments.registry]
        instruments.stop()
        for collector in instruments.collectors():
            instruments.registry.unregister(collector)


def exposition(registry: CollectorRegistry | None) -> tuple[bytes, str]:
    """The text exposition of ``registry`` (default: prometheus_client's); in multiprocess
    mode, of every process's files instead, plus this process's cache sizes. Blocking."""
    registry = REGISTRY if registry is None else registry
    if not multiprocess():
        return generate_latest(registry), CONTENT_TYPE_LATEST
    merged = CollectorRegistry()
    MultiProcessCollector(merged)  # type: ignore[no-untyped-call]  # untyped in 0.26
    with _lock:
        instruments = _active.get(registry)
    if instruments is not None:
        merged.register(instruments.cache)
    return generate_latest(merged), CONTENT_TYPE_LATEST
