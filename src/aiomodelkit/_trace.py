"""OpenTelemetry spans of a startup and its fetches, when the application traces (issue 16).

One startup, as a trace viewer (Jaeger, Tempo) draws it; the model phases line up with the
library's timeline events (:mod:`._status`), so the waterfall is the demo's timeline::

    aiomodelkit.library.start                 entry -> every required model loaded
    ├── aiomodelkit.model                     one per model (a lazy `aget`: under the caller)
    │   ├── aiomodelkit.model.fetch           ModelFetchStarted -> ModelFetchFinished
    │   │   └── aiomodelkit.fetch             AssetsManager.fetch: one asset version
    │   │       ├── aiomodelkit.fetch.resolve     spec -> version (index, meta, lock file)
    │   │       ├── aiomodelkit.fetch.lock        waiting for another process's download
    │   │       ├── aiomodelkit.fetch.download    every object, each verified as it streams
    │   │       └── aiomodelkit.fetch.publish     the atomic rename into the cache
    │   ├── aiomodelkit.model.wait            waiting for its dependencies to load
    │   └── aiomodelkit.model.load            ModelLoadStarted -> ModelLoadFinished
    └── ...
    aiomodelkit.model.swap                    a newer version put in service (watch, reload)
    └── aiomodelkit.fetch                     as above

aiomodelkit never imports ``opentelemetry``: an application that traces has imported it to
install its SDK's provider, and until it has, every span would be a non-recording one. So
spans are recorded once ``opentelemetry.trace`` is in ``sys.modules`` and its global
provider is a real one (set in code, or named by ``OTEL_PYTHON_TRACER_PROVIDER``), through
that provider's tracer ``"aiomodelkit"`` (our version as the scope's). Until then
:func:`span` returns one shared no-op context manager: about 0.5 µs a ``with`` block, where
opening a non-recording span through the API's proxy costs ~9 µs (a warm start of 50 models
opens 250 spans). The attribute names (:data:`ATTRIBUTES`) are documented in one table, in
the README's "Traces" section.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Final, TypeAlias

from ._version import __version__

if TYPE_CHECKING:
    from collections.abc import Iterator

    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = ["ATTRIBUTES", "Traced", "span", "use_tracer_provider"]

#: The span attributes, by the keyword :func:`span` and :meth:`Traced.set` take.
ATTRIBUTES: Final = {
    "model": "aiomodelkit.model",  # the configuration key
    "models": "aiomodelkit.library.models",  # how many models a startup loads
    "required": "aiomodelkit.library.required",  # the required keys, as configured
    "spec": "aiomodelkit.asset.spec",  # as asked: name[:version][[sub/part]]
    "version": "aiomodelkit.asset.version",  # the exact version
    "source": "aiomodelkit.asset.source",  # where the version (or the asset) came from
    "bytes": "aiomodelkit.asset.bytes",  # bytes downloaded (0: nothing was)
    "objects": "aiomodelkit.asset.objects",  # objects downloaded
    "cache_hit": "aiomodelkit.cache.hit",  # nothing downloaded: the cache had it
    "store": "aiomodelkit.store",  # the store's URL (store URLs never hold credentials)
    "cancelled": "aiomodelkit.cancelled",  # the span ended by a cancellation, not an error
}

Value: TypeAlias = str | int | bool | Sequence[str]

_tracer: Tracer | None = None


class Traced:
    """The span a ``with span(...)`` block is in: attributes learned along the way go here.

    Attributes:
        started: when the span started (nanoseconds since the epoch), None when not traced.
    """

    __slots__ = ("_span", "started")

    def __init__(self, otel_span: Span | None = None, started: int | None = None) -> None:
        self._span = otel_span
        self.started = started

    def set(self, **attributes: object) -> None:
        """Set attributes by their keyword in :data:`ATTRIBUTES` (see :func:`span`)."""
        if self._span is not None:
            self._span.set_attributes(_named(attributes))


_OFF: Final = nullcontext(Traced())  # stateless, so one serves every untraced span


def span(
    name: str, /, *, start: int | None = None, **attributes: object
) -> AbstractContextManager[Traced]:
    """A child span of the current one, current itself inside the ``with`` block.

    An exception (not a cancellation) leaving the block is recorded on the span and sets
    its status to ERROR; a cancelled span ends as usual, with ``aiomodelkit.cancelled``.

    Args:
        name: the span's name, ``aiomodelkit.<what>``.
        start: when it started (nanoseconds since the epoch), if earlier than now.
        attributes: by their keyword in :data:`ATTRIBUTES`: a str, int, bool or sequence
            of str, else recorded as its ``str()`` (only when traced: pass an
            :class:`AssetSpec` as is); None values are skipped.

    Example:
        >>> with span("aiomodelkit.fetch", spec="models/clf:1") as traced:
        ...     traced.set(version="1.2", cache_hit=True)
    """
    tracer = _tracer if _tracer is not None else _find_tracer()
    if tracer is None:
        return _OFF
    return _recording(tracer, name, start, attributes)


def use_tracer_provider(provider: TracerProvider | None) -> None:
    """Record spans through ``provider`` rather than the global one (None: back to it).

    OpenTelemetry's global provider can be set once per process; tests give each case a
    provider of its own this way.
    """
    global _tracer  # the one tracer of the process, replaced whole
    _tracer = None if provider is None else provider.get_tracer("aiomodelkit", __version__)


def _find_tracer() -> Tracer | None:
    """The global provider's tracer, once the application has installed one."""
    global _tracer
    if sys.modules.get("opentelemetry.trace") is None:
        return None  # nothing traces: no current span, nothing would record
    from opentelemetry import trace  # imported already: no I/O on the event loop

    provider = trace.get_tracer_provider()
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return None  # no SDK (yet): its spans would not record
    # The global provider can be set once per process: its tracer is kept for good.
    _tracer = provider.get_tracer("aiomodelkit", __version__)
    return _tracer


@contextmanager
def _recording(
    tracer: Tracer, name: str, start: int | None, attributes: dict[str, object]
) -> Iterator[Traced]:
    started = start if start is not None else time.time_ns()
    with tracer.start_as_current_span(
        name,
        attributes=_named(attributes),
        start_time=started,
        # Ours below: older opentelemetry-api releases record a cancellation as an error.
        record_exception=False,
        set_status_on_exception=False,
    ) as otel_span:
        try:
            yield Traced(otel_span, started)
        except Exception as exc:
            from opentelemetry.trace import StatusCode

            otel_span.record_exception(exc)
            otel_span.set_status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}")
            raise
        except BaseException:  # a cancellation (or Ctrl-C): not this span's failure
            otel_span.set_attribute(ATTRIBUTES["cancelled"], True)
            raise


def _named(attributes: dict[str, object]) -> dict[str, Value]:
    return {
        ATTRIBUTES[key]: value if isinstance(value, (str, int, bool, tuple, list)) else str(value)
        for key, value in attributes.items()
        if value is not None
    }
