"""Prometheus metrics of fetches, store requests and models: ``aiomodelkit[metrics]``.

:func:`instrument` subscribes one listener to the events every
:class:`~aiomodelkit.AssetsManager` and :class:`~aiomodelkit.ModelLibrary` of the process
emits, and keeps counters, histograms and gauges on a prometheus_client registry (its default
one unless told otherwise); :func:`exposition` renders them for a ``GET /metrics``. Until
:func:`instrument` is called nothing listens: no request is timed, no per-chunk event is
built, and what is left is a check of an empty tuple per request, so metrics cost nothing
when off. ``aiomodelkit serve`` instruments itself and serves ``/metrics``. The
README's "Metrics" section has the table of every metric, its labels and its meaning.

Multiprocess mode (gunicorn or ``uvicorn --workers``): set ``PROMETHEUS_MULTIPROC_DIR`` to an
empty directory before the workers start; each worker calls :func:`instrument`, and
:func:`exposition` then merges every worker's values (see prometheus_client's documentation).

Example, a fetch from a local store, then the samples it left:

    >>> import tempfile
    >>> from pathlib import Path
    >>> import anyio
    >>> from prometheus_client import CollectorRegistry
    >>> from aiomodelkit import AssetsManager
    >>> async def fetch_twice(root: Path) -> None:
    ...     (root / "store").mkdir()
    ...     (root / "weights.bin").write_bytes(b"0" * 1000)
    ...     async with AssetsManager(root / "cache", root / "store") as am:
    ...         await am.new(root / "weights.bin", "models/clf")
    ...         await am.fetch("models/clf:0.0")  # downloads
    ...         await am.fetch("models/clf:0.0")  # from the cache
    >>> registry = CollectorRegistry()
    >>> with instrument(registry), tempfile.TemporaryDirectory() as tmp:
    ...     anyio.run(fetch_twice, Path(tmp))
    ...     page = exposition(registry).body.decode()
    >>> wanted = ("aiomodelkit_fetch_bytes_total", "aiomodelkit_fetch_objects_total")
    >>> for line in page.splitlines():
    ...     if line.startswith(wanted):
    ...         print(line)
    aiomodelkit_fetch_bytes_total{store="file:///.../store"} 1000.0
    aiomodelkit_fetch_objects_total{source="store",store="file:///.../store"} 1.0
    aiomodelkit_fetch_objects_total{source="cache",store="file:///.../store"} 1.0
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._errors import ConfigError

if TYPE_CHECKING:
    from types import TracebackType

    from prometheus_client import CollectorRegistry

__all__ = ["Exposition", "Instrumentation", "exposition", "instrument"]

_MISSING = "metrics need the metrics extra: pip install 'aiomodelkit[metrics]'"


def _implementation() -> Any:
    try:  # prometheus_client is imported here, on first use, never with aiomodelkit
        return importlib.import_module("aiomodelkit._metrics")
    except ImportError as exc:
        raise ConfigError(f"{_MISSING} ({exc})") from exc


class Instrumentation:
    """What :func:`instrument` returns: stop it (or leave its ``with`` block) to stop counting.

    Every call of :func:`instrument` on one registry shares one listener and one set of
    metrics; they stop once the last :class:`Instrumentation` of that registry stops.
    """

    __slots__ = ("_instruments", "registry")

    def __init__(self, instruments: Any) -> None:
        self._instruments = instruments
        self.registry: CollectorRegistry = instruments.registry

    def __repr__(self) -> str:
        state = "stopped" if self._instruments is None else "counting"
        return f"<Instrumentation of {self.registry!r}: {state}>"

    def stop(self) -> None:
        """Stop counting for this caller (idempotent); the metrics leave the registry once
        no caller counts on it any more."""
        instruments, self._instruments = self._instruments, None
        if instruments is not None:
            _implementation().release(instruments)

    def __enter__(self) -> Instrumentation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def instrument(registry: CollectorRegistry | None = None) -> Instrumentation:
    """Count the events of every manager and library of this process into ``registry``
    (default: prometheus_client's ``REGISTRY``).

    Calling it again, for the same registry, counts nothing twice.

    Raises:
        ConfigError: prometheus-client is not installed (``pip install
            'aiomodelkit[metrics]'``).
    """
    return Instrumentation(_implementation().acquire(registry))


@dataclass(frozen=True, slots=True)
class Exposition:
    """A rendered ``/metrics`` page: the body and its ``Content-Type``."""

    body: bytes
    content_type: str


def exposition(registry: CollectorRegistry | None = None) -> Exposition:
    """The Prometheus text exposition of ``registry`` (default: prometheus_client's), or, in
    multiprocess mode, of every process's metrics.

    Blocking (it measures the cache directories): from async code, call it in a worker
    thread, ``await anyio.to_thread.run_sync(exposition)``.

    Raises:
        ConfigError: prometheus-client is not installed.
    """
    body, content_type = _implementation().exposition(registry)
    return Exposition(body, content_type)
