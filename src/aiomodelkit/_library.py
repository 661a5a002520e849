"""``ModelLibrary``: validate the graph, then fetch and load every model concurrently.

Entering the library validates the whole configuration graph before any I/O, then runs one
task per model in one task group: each task locates its asset (override or fetch) once the
assets of its dependencies are located, waits for its dependencies to load, and awaits
``_load``. Independent branches fetch and load concurrently; a shared dependency loads
once. Leaving the library closes every loaded model, dependents before their dependencies.

Failure contract: unless ``allow_partial`` is set, the first model to fail cancels the
others, the loaded ones are closed, and that first failure is raised as a
:class:`LoadError` naming the model and asset, its cause chained. Other failures that
happened concurrently are listed in notes on it and in :meth:`ModelLibrary.status`.
"""

from __future__ import annotations

import enum
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, Self, TypeVar, overload

import anyio
from anyio import AsyncContextManagerMixin
from rich.console import Console

from ._graph import ModelGraph, build_graph
from ._loader import Loader
from ._lookup import checked
from ._manager import AssetsManager
from ._overrides import AssetPlan, locate_asset, plan_asset
from ._render import render_tree
from ._settings import Settings
from ._slots import Slot, initial_status
from ._status import LibraryEventCallback, ModelState, ModelStatus
from ._trace import span
from ._versioning import VersioningSystem, get_versioning
from ._watch import Watcher

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Mapping, Sequence

    from ._graph import ModelConfiguration, ModelSource
    from ._model import Model
    from ._spec import AssetSpec
    from ._status import ModelEvent

__all__ = ["LibraryState", "ModelLibrary"]

ModelT = TypeVar("ModelT", bound="Model[Any, Any]")


class LibraryState(enum.Enum):
    """The lifecycle of a library; it can be entered once."""

    UNOPENED = "unopened"
    OPENING = "opening"
    OPEN = "open"
    CLOSED = "closed"


class ModelLibrary(AsyncContextManagerMixin):
    """Models from their configurations, loaded concurrently inside ``async with``.

    Args:
        models: model classes, modules or packages (walked for Model subclasses), module
            names, or a list of those.
        required_models: the keys to load (default: all), or a dict of per-model settings
            merged over ``model_settings`` (``{"clf": {"asset_path": "/models/clf"}}``).
        configuration: per-key overrides: a dict replaces the fields it names, a
            :class:`ModelConfiguration` replaces the entry.
        settings: store, cache and override settings (default: ``Settings.load()``, from
            the environment). Given settings, the library reads no environment at all.
        assets_manager: fetch through this manager, which the caller enters and closes;
            by default the library builds one from ``settings`` and owns it.
        lazy_loading: load nothing on entry; :meth:`aget` loads a model and its dependencies
            on first use (default: ``settings.lazy_loading``).
        allow_partial: open even if some models fail, serving the others; failures show in
            :meth:`status` and :meth:`get` raises them.
        validate: force pydantic validation of predictions on or off for every model.
        on_event: receives :class:`ModelEvent` s (and asset events of a manager it builds).

    Example:
        >>> async def main() -> None:
        ...     async with ModelLibrary(models="my_package.models") as lib:
        ...         clf = lib.get("classifier", Classifier)
        ...         print(await clf.predict("some text"))
    """

    def __init__(
        self,
        models: ModelSource,
        *,
        required_models: Sequence[str] | Mapping[str, Mapping[str, Any]] | None = None,
        configuration: Mapping[str, Mapping[str, Any] | ModelConfiguration] | None = None,
        settings: Settings | None = None,
        assets_manager: AssetsManager | None = None,
        lazy_loading: bool | None = None,
        allow_partial: bool = False,
        validate: bool | None = None,
        on_event: LibraryEventCallback | None = None,
    ) -> None:
        self._models = models
        self._required_models = required_models
        self._configuration = configuration
        self._settings = settings
        self._manager = assets_manager
        self._lazy = lazy_loading
        self._allow_partial = allow_partial
        self._validate = validate
        self._on_event = on_event
        self._state = LibraryState.UNOPENED
        self._graph: ModelGraph | None = None
        self._loader: Loader | None = None
        self._watcher: Watcher | None = None

    def __repr__(self) -> str:
        return f"<ModelLibrary {self._state.value}>"

    @property
    def state(self) -> LibraryState:
        """Unopened, opening, open or closed."""
        return self._state

    @property
    def ready(self) -> bool:
        """True once entered and every required model is loaded (or failed, with
        ``allow_partial``): what a readiness endpoint reports."""
        return self._state is LibraryState.OPEN

    @property
    def graph(self) -> ModelGraph:
        """The validated configuration graph (built on first use; imports model modules).

        Raises:
            ConfigError: the configuration is invalid (unknown keys, cycles, bad fields).
        """
        if self._graph is None:
            self._graph = build_graph(
                self._models,
                required_models=self._required_models,
                configuration=self._configuration,
            )
        return self._graph

    # -- lifecycle ------------------------------------------------------------------------

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncGenerator[Self]:
        if self._state is not LibraryState.UNOPENED:
            raise RuntimeError(f"a ModelLibrary can be entered only once (it is {self._state})")
        self._state = LibraryState.OPENING
        try:
            # Validation first: the graph, settings and overrides raise before any I/O.
            settings = self._config()
            versioning = self._versioning()
            plans = self._plans(versioning)
            async with AsyncExitStack() as stack:
                manager = self._manager
                # A manager (and a store) only if some model may have to fetch its asset.
                fetching = any(p.spec is not None and p.path is None for p in plans.values())
                if manager is None and fetching:
                    manager = self._manager = await stack.enter_async_context(
                        AssetsManager(settings=settings, on_event=self._on_event)
                    )
                locate = partial(
                    locate_asset,
                    fetch=manager.fetch if manager is not None else None,
                    override_dir=settings.assets_dir_override,
                    versioning=versioning,
                )
                options = settings.library_options()
                loader = self._loader = Loader(
                    self.graph,
                    plans,
                    locate=locate,
                    load_threads=options.max_load_threads,
                    allow_partial=self._allow_partial,
                    validate=self._validate,
                    on_event=self._on_event,
                    max_loaded_models=options.max_loaded_models,
                    max_loaded_bytes=options.max_loaded_bytes,
                    # listed in required_models: never evicted (the default "all" pins none)
                    pinned=self.graph.required if self._required_models is not None else (),
                )
                if manager is not None:
                    interval = options.watch_interval
                    self._watcher = Watcher(loader, manager, interval=interval)
                try:
                    lazy = self._lazy if self._lazy is not None else options.lazy_loading
                    if not lazy and not options.bounded:  # under a budget: on first use
                        required = self.graph.required
                        models = len(self.graph.closure(required))
                        with span("aiomodelkit.library.start", models=models, required=required):
                            await loader.load(required)
                    async with self._watching():
                        self._state = LibraryState.OPEN
                        yield self
                finally:
                    self._state = LibraryState.CLOSED
                    await loader.close()
        finally:
            self._state = LibraryState.CLOSED

    @asynccontextmanager
    async def _watching(self) -> AsyncGenerator[None]:
        """Run the version watch, if ``watch_interval`` is set, until the body ends."""
        watcher = self._watcher
        if watcher is None or watcher.interval is None:
            yield
            return
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(watcher.run, name="aiomodelkit version watch")
                try:
                    yield
                finally:  # no swap starts once the library is closing
                    tg.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # The watch raises nothing of its own: the one error is the body's, unwrapped.
            if len(group.exceptions) != 1:
                raise
            error = group.exceptions[0]
            error.__suppress_context__ = True
            raise error from error.__cause__

    def _config(self) -> Settings:
        """The settings given, else (the one place) the environment's, read once."""
        if self._settings is None:
            self._settings = Settings.load()
        return self._settings

    def _versioning(self) -> VersioningSystem:
        if self._manager is not None:
            return self._manager.versioning
        return get_versioning(self._config().versioning)

    def _plans(self, versioning: VersioningSystem) -> dict[str, AssetPlan]:
        variables = self._config().asset_overrides
        return {
            key: plan_asset(conf.asset, conf.model_settings, variables, versioning, key=key)
            for key, conf in self.graph.configurations.items()
        }

    # -- access ---------------------------------------------------------------------------

    @overload
    def get(self, key: str) -> Model[Any, Any]: ...
    @overload
    def get(self, key: str, model_type: type[ModelT]) -> ModelT: ...
    def get(self, key: str, model_type: type[Model[Any, Any]] | None = None) -> Model[Any, Any]:
        """A loaded model, checked to be a ``model_type`` when given.

        Raises:
            UnknownModelError: no such key (with a "did you mean" hint).
            ModelTypeError: the model is of another type.
            LoadError: the model failed to load (with ``allow_partial``).
            RuntimeError: the model is not loaded (lazy mode: use :meth:`aget`), or the
                library is closed.
        """
        slot = self._slot(key)
        if slot.status.error is not None:
            raise slot.status.error.with_traceback(None)
        if slot.model is None:
            raise RuntimeError(f"model {key!r} is not loaded; use 'await library.aget({key!r})'")
        if self._loader is not None:  # always, once _slot returned
            self._loader.touch(key)
        if model_type is None:
            return slot.model
        return checked(slot.model, model_type, name=key, owner="model ")

    @overload
    async def aget(self, key: str) -> Model[Any, Any]: ...
    @overload
    async def aget(self, key: str, model_type: type[ModelT]) -> ModelT: ...
    async def aget(
        self, key: str, model_type: type[Model[Any, Any]] | None = None
    ) -> Model[Any, Any]:
        """A model, loading it and its dependencies first if needed (once, however many
        callers ask at the same time). The loading runs in the caller's task: if it is
        cancelled, the next caller starts again. Under ``max_loaded_models`` /
        ``max_loaded_bytes`` it may first close the least recently used models.

        Raises:
            UnknownModelError: no such key.
            ModelTypeError: the model is of another type.
            LoadError: the model or a dependency failed to load, or cannot fit in the
                budget (the message names both).
            RuntimeError: the library is not open.
        """
        self._slot(key)
        if self._state is not LibraryState.OPEN or self._loader is None:
            raise RuntimeError(f"the library is {self._state.value}: use it inside 'async with'")
        await self._loader.load([key])
        return self.get(key) if model_type is None else self.get(key, model_type)

    async def reload(self, key: str | None = None) -> list[ModelEvent]:
        """Check now for newer versions of the partial specs of the loaded models (of
        ``key`` only, if given) and swap them in, as the ``watch_interval`` watch does.

        The index is read unconditionally and a failed version is tried again at once. A
        pinned spec, a lock file, an offline library or a model not loaded: nothing to do.
        What serves is never interrupted: a version that fails to fetch or load is left
        out and reported.

        Returns:
            the :class:`ModelSwapped` and :class:`ModelSwapFailed` events of this check.

        Raises:
            UnknownModelError: no such key.
            RuntimeError: the library is not open.
        """
        if key is not None:
            self._slot(key)
        if self._state is not LibraryState.OPEN:
            raise RuntimeError(f"the library is {self._state.value}: use it inside 'async with'")
        if self._watcher is None:
            return []
        return await self._watcher.check(None if key is None else [key], force=True)

    def _slot(self, key: str) -> Slot:
        if self._state is LibraryState.CLOSED:
            raise RuntimeError("the library is closed")
        self.graph.check(key)
        if self._loader is None:
            raise RuntimeError("enter the library ('async with') before getting models")
        return self._loader.slots[key]

    def status(self) -> dict[str, ModelStatus]:
        """A snapshot of every model that is required or was touched, dependencies first:
        its state (``.loaded``), size, last use, load and eviction counts.

        Empty before the library is entered; still available after it closed.
        """
        if self._loader is None:
            return {}
        graph, slots = self._loader.graph, self._loader.slots
        wanted = set(graph.closure(graph.required))
        return {
            key: slots[key].status
            for key in graph.order
            if key in wanted
            or slots[key].status.state is not ModelState.PENDING
            or slots[key].status.load_count
        }

    def list_assets(self) -> dict[str, AssetSpec]:
        """The specs the required models fetch (after VERSION overrides), by model key.

        Models whose asset bypasses the store (``asset_path``, a FILE variable) are left out.

        Raises:
            ConfigError: the configuration is invalid.
        """
        graph = self.graph
        plans = self._plans(self._versioning())
        return {
            key: spec
            for key in graph.closure(graph.required)
            if (spec := plans[key].spec) is not None and plans[key].path is None
        }

    def describe(self, console: Console | None = None) -> None:
        """Print a rich tree of the models: state, timings, assets, dependencies, settings.

        Before the library is entered, it shows the required models as configured.
        """
        graph = self.graph
        confs = graph.configurations
        statuses = self.status()
        if not statuses:
            plans = self._plans(self._versioning())
            keys = graph.closure(graph.required)
            statuses = {key: initial_status(key, confs[key], plans[key]) for key in keys}
        tree = render_tree(
            statuses,
            {key: confs[key].model_settings for key in statuses},
            {key: confs[key].model_dependencies for key in statuses},
        )
        (console or Console()).print(tree)
