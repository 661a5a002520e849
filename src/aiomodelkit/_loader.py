"""The engine under ``ModelLibrary``: one task per model, single-flight, timeline events.

Each model's task locates its asset (with the ``locate`` function it is given: a verbatim
path, the override dir, or a fetch through the assets manager), then waits for its
dependencies, then awaits ``_load`` (a sync one in a worker thread, under one limiter). A
key is loaded by one task at a time: other callers wait for that attempt's event, and if
the attempt was cancelled, the next caller starts again. Every failure becomes one
:class:`LoadError`, recorded once, in order.

Assets are fetched dependencies first: a model's fetch starts once the assets of the models
it depends on are on disk (fetched, found, or failed), not at once with them. A model can
never load before its dependencies have loaded, so its own fetch still overlaps their
loads, and it leaves the link, the store and the CPU to the assets that can load first:
the leaves of the graph, whose loads start the critical path. On the 20-model W6-wide graph
at 20 ms RTT (``benchmarks``) the first load starts ~0.16 s after entry instead of ~0.39 s.
What it costs: fetches along one chain of dependencies no longer overlap each other, which
matters only where loads are much shorter than fetches.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import anyio

from ._errors import LoadError
from ._events import publish
from ._groups import leaves
from ._model import Model, ModelDependencies
from ._residency import Residency, asset_size
from ._slots import (
    Slot,
    await_dependency_assets,
    close_model,
    initial_status,
    load_error,
    release,
)
from ._status import (
    LibraryEventCallback,
    ModelEvent,
    ModelEvicted,
    ModelFailed,
    ModelFetchFinished,
    ModelFetchStarted,
    ModelLoadFinished,
    ModelLoadStarted,
    ModelState,
)
from ._trace import Traced, span

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Mapping
    from pathlib import Path

    from ._graph import ModelGraph
    from ._overrides import AssetPlan, LocatedAsset

    Locate = Callable[[AssetPlan], Awaitable[LocatedAsset]]

__all__ = ["Loader"]

logger = logging.getLogger("aiomodelkit")


class Loader:
    """Loads the models of one validated graph; used by one library, on one event loop."""

    def __init__(
        self,
        graph: ModelGraph,
        plans: Mapping[str, AssetPlan],
        *,
        locate: Locate,
        load_threads: int,
        allow_partial: bool,
        validate: bool | None,
        on_event: LibraryEventCallback | None,
        max_loaded_models: int | None = None,
        max_loaded_bytes: int | None = None,
        pinned: Iterable[str] = (),
    ) -> None:
        self.graph = graph
        self.slots = {
            key: Slot(key, conf, plans[key], initial_status(key, conf, plans[key]))
            for key, conf in graph.configurations.items()
        }
        self.closed = False
        self._locate_asset = locate
        self._limiter = anyio.CapacityLimiter(load_threads)
        self._allow_partial = allow_partial
        self._validate = validate
        self._on_event = on_event
        self._loaded: list[Slot] = []  # in load order: closed in reverse
        self._failures: list[LoadError] = []
        self._t0 = time.perf_counter()
        self.residency: Residency | None = None
        if max_loaded_models is not None or max_loaded_bytes is not None:
            self.residency = Residency(
                max_models=max_loaded_models,
                max_bytes=max_loaded_bytes,
                pinned=pinned,
                evict=self._evict,
            )

    def touch(self, key: str) -> None:
        """``key`` was handed out: it becomes the most recently used."""
        if self.residency is not None:
            self.residency.touch(key)
        slot = self.slots[key]
        self.update(slot, last_used=self.now())

    async def load(self, keys: Iterable[str]) -> None:
        """Load ``keys`` and their dependencies, one task each.

        Raises:
            LoadError: unless ``allow_partial``, the earliest failure among them; the
                others are cancelled, and concurrent failures are added as notes.
        """
        closure = self.graph.closure(keys)
        gated: list[Slot] = []
        for key in closure:
            # Before any task runs, so that a dependent whose task runs first still waits
            # for its dependencies' assets (see await_dependency_assets).
            # A model loading already has its gate, or its asset located.
            slot = self.slots[key]
            idle = slot.model is None and slot.status.error is None and slot.running is None
            if idle and slot.located is None:
                slot.located = anyio.Event()
                gated.append(slot)

        # Under a budget, a requested model stays pinned until its requester has it.
        books = self.residency
        requested = list(keys) if books is not None else []
        for key in requested:
            books.hold(key)  # type: ignore[union-attr]  # requested is empty without books

        async def run(key: str) -> None:
            try:
                await self._ensure(key)
            except LoadError:
                if not self._allow_partial:
                    raise

        try:
            async with anyio.create_task_group() as tg:
                for key in closure:
                    tg.start_soon(run, key, name=f"aiomodelkit model {key}")
        except BaseExceptionGroup as group:
            errors, rest = group.split(LoadError)
            if errors is None or rest is not None:
                raise
            # Every LoadError is recorded once, when it happens: the earliest is the root.
            found = leaves(errors)
            order = {id(error): index for index, error in enumerate(self._failures)}
            first = min(found, key=lambda error: order.get(id(error), len(order)))
            for other in found:
                if other is not first and not isinstance(other.__cause__, LoadError):
                    first.add_note(f"also failed: {other}")
            raise first from first.__cause__
        finally:
            # Each model's attempt opens its gate; this covers a task cancelled before its
            # first step. A gate whose attempt (another caller's) is in flight stays: that
            # attempt opens it.
            for slot in gated:
                if slot.running is None:
                    release(slot)
            for key in requested:
                books.unhold(key)  # type: ignore[union-attr]

    async def close(self) -> None:
        """Close every loaded model, dependents first; errors are logged, not raised."""
        self.closed = True
        with anyio.CancelScope(shield=True):
            while self._loaded:
                slot = self._loaded.pop()
                assert slot.model is not None
                await close_model(slot.key, slot.model)

    async def _evict(self, key: str) -> None:
        """Detach ``key``'s model now; close it once its running predictions return.

        Called by the :class:`Residency` under a shield: it always completes."""
        slot = self.slots[key]
        model, slot.model = slot.model, None
        assert model is not None
        self._loaded.remove(slot)
        evictions = slot.status.eviction_count + 1
        self.update(slot, state=ModelState.PENDING, eviction_count=evictions)
        logger.debug("evicting model %r to make room", key)
        self.emit(ModelEvicted(model=key, at=self.now(), size_bytes=slot.status.size_bytes))
        try:
            await model._drained()
            await close_model(key, model)
        finally:
            model._loaded = False  # a caller still holding it gets a clear error
            self._unpin_dependencies(slot)

    def _unpin_dependencies(self, slot: Slot) -> None:
        if self.residency is not None:
            for target in slot.conf.model_dependencies.values():
                self.residency.unpin(target)

    # -- one model ------------------------------------------------------------------------

    def emit(self, event: ModelEvent) -> None:
        """Hand ``event`` to the library's callback and the process-wide listeners."""
        if self._on_event is not None:
            self._on_event(event)
        publish(event, None)

    def now(self) -> float:
        """Seconds since the library opened (the timeline's clock)."""
        return time.perf_counter() - self._t0

    def update(self, slot: Slot, **changes: Any) -> None:
        """Replace fields of ``slot``'s status snapshot."""
        slot.status = replace(slot.status, **changes)

    async def _ensure(self, key: str) -> Model[Any, Any]:
        """Single-flight: load ``key`` unless it is loaded, failed or loading elsewhere."""
        slot = self.slots[key]
        while True:
            if slot.model is not None:
                return slot.model
            if slot.status.error is not None:
                # Raised again for each caller: drop the last raise's frames, keep the cause.
                raise slot.status.error.with_traceback(None)
            if slot.running is not None:
                await slot.running.wait()
                continue  # loaded, failed, or cancelled (then this task tries again)
            slot.running = done = anyio.Event()
            try:
                with span("aiomodelkit.model", model=key, spec=slot.plan.spec) as traced:
                    await self._load_one(slot, traced)
            finally:
                slot.running = None
                done.set()

    async def _load_one(self, slot: Slot, traced: Traced) -> None:
        phase = "fetching the asset"
        books = self.residency
        spec = slot.plan.spec
        asset = str(spec) if spec else None
        pinned: list[str] = []  # dependencies this attempt pins (kept once loaded)
        model: Model[Any, Any] | None = None
        size = 0
        try:
            try:
                await await_dependency_assets(slot, self.slots)
                path = await self._locate(slot)
            finally:  # located, or never by this attempt: its dependents go on
                release(slot)
            # From the asset on disk; without one, from the start (as the timeline draws it).
            waited_from = traced.started if path is None else None
            with span("aiomodelkit.model.wait", start=waited_from):
                dependencies = {}
                for local, target in slot.conf.model_dependencies.items():
                    phase = f"dependency {target!r}"
                    dependencies[local] = await self._ensure(target)
                    if books is not None:  # no await since _ensure returned: still loaded
                        books.pin(target)
                        pinned.append(target)
                if books is not None:
                    phase = "making room"
                    known = slot.status.size_bytes
                    size = known if known is not None else await asset_size(path)
                    await books.reserve(slot.key, size, asset=asset)
                phase = "building the model"
                model = self.instance(slot, path, dependencies)
            phase, start = "loading", self.now()
            self.update(slot, state=ModelState.LOADING, load_started=start)
            self.emit(ModelLoadStarted(model=slot.key, at=start))
            with span("aiomodelkit.model.load"):
                await model._load_with(self._limiter)
            if self._stale(slot, dependencies):
                raise _DependencySwappedError
            if books is not None:
                phase = "measuring the model"
                measured = model.memory_bytes()
                size = measured if measured is not None else await asset_size(path)
                self.update(slot, size_bytes=size)
                books.check_alone(slot.key, size, asset=asset)
                await books.settle(slot.key, size)
            if self.closed:  # a lazy load that finished after the library closed
                raise _ClosedError
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                if model is not None and model.loaded:
                    await close_model(slot.key, model)
            if books is not None:
                books.release(slot.key)
                for target in pinned:
                    books.unpin(target)
            if isinstance(exc, _DependencySwappedError):
                # A dependency was swapped while this model loaded: load it again against
                # the new instance (the old one closes once drained).
                self.update(slot, state=ModelState.PENDING, load_started=None)
                await self._load_one(slot, traced)
                return
            if isinstance(exc, (anyio.get_cancelled_exc_class(), _ClosedError)):
                self.update(slot, state=ModelState.PENDING, load_started=None)
                if isinstance(exc, _ClosedError):
                    message = f"the library closed while model {slot.key!r} was loading"
                    raise RuntimeError(message) from None
                raise
            if not isinstance(exc, Exception):
                raise
            error = load_error(exc, slot.key, phase, asset)  # a model that cannot fit: as is
            self._failures.append(error)
            self.update(slot, state=ModelState.FAILED, error=error)
            self.emit(ModelFailed(model=slot.key, at=self.now(), error=error))
            if error is exc:
                raise
            raise error from exc
        end = self.now()
        slot.model = model
        self._loaded.append(slot)
        if books is not None:
            books.admit(slot.key, size)
        self.update(
            slot,
            state=ModelState.LOADED,
            load_finished=end,
            last_used=end,
            size_bytes=size if books is not None else None,
            load_count=slot.status.load_count + 1,
        )
        self.emit(ModelLoadFinished(model=slot.key, at=end, seconds=end - start))

    def instance(
        self, slot: Slot, path: Path | None, dependencies: Mapping[str, Model[Any, Any]]
    ) -> Model[Any, Any]:
        """A new, unloaded instance of ``slot``'s model on ``path`` and ``dependencies``
        (by local name)."""
        return slot.conf.model_type(
            configuration_key=slot.key,
            asset_path=path,
            model_settings=slot.conf.model_settings,
            model_dependencies=ModelDependencies(dict(dependencies), owner=slot.key),
            validate=self._validate,
        )

    async def load_instance(self, model: Model[Any, Any]) -> None:
        """Await ``model``'s ``_load`` under the library's load limit."""
        await model._load_with(self._limiter)

    def _stale(self, slot: Slot, dependencies: Mapping[str, Model[Any, Any]]) -> bool:
        """Whether a dependency this model was built on is no longer the one in service."""
        targets = slot.conf.model_dependencies
        return any(
            self.slots[targets[local]].model is not dep for local, dep in dependencies.items()
        )

    async def _locate(self, slot: Slot) -> Path | None:
        plan = slot.plan
        if plan.spec is None and plan.path is None:
            return None
        start = self.now()
        asset = str(plan.spec or plan.path)
        self.update(slot, state=ModelState.FETCHING, fetch_started=start)
        self.emit(ModelFetchStarted(model=slot.key, at=start, asset=asset))
        with span("aiomodelkit.model.fetch", spec=asset) as fetching:
            found = await self._locate_asset(plan)
            fetching.set(version=found.version, source=found.source)
        end = self.now()
        self.update(
            slot,
            state=ModelState.PENDING,  # until its dependencies are loaded
            fetch_finished=end,
            asset_version=found.version,
            asset_path=found.path,
            asset_source=found.source,
        )
        self.emit(
            ModelFetchFinished(
                model=slot.key,
                at=end,
                asset=asset,
                version=found.version,
                path=found.path,
                source=found.source,
                seconds=end - start,
            )
        )
        return found.path


class _ClosedError(Exception):
    """A lazy load finished after the library closed."""


class _DependencySwappedError(Exception):
    """A dependency was swapped for a new instance while this model loaded."""
