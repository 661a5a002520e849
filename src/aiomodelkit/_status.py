"""What a ModelLibrary reports: per-model status and timeline events, as plain values.

Times are seconds since the library was entered, from a monotonic clock, so events and
statuses line up on one timeline. Turning them into text is :mod:`._render`'s job.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from ._events import Event

if TYPE_CHECKING:
    from pathlib import Path

    from ._model import Model
    from ._overrides import AssetSource
    from ._spec import AssetSpec

__all__ = [
    "LibraryEventCallback",
    "ModelEvent",
    "ModelEvicted",
    "ModelFailed",
    "ModelFetchFinished",
    "ModelFetchStarted",
    "ModelLoadFinished",
    "ModelLoadStarted",
    "ModelState",
    "ModelStatus",
    "ModelSwapFailed",
    "ModelSwapped",
]


class ModelState(enum.StrEnum):
    """Where a model is in its life.

    ``pending`` covers "not started" and "asset ready, waiting for dependencies"; a model
    whose loading was cancelled goes back to ``pending``.
    """

    PENDING = "pending"
    FETCHING = "fetching"
    LOADING = "loading"
    LOADED = "loaded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelStatus:
    """A snapshot of one model in a library.

    Attributes:
        key: the configuration key.
        model_type: the model's class.
        state: pending, fetching, loading, loaded or failed.
        dependencies: the configuration keys it depends on.
        asset: the asset spec looked up (after a VERSION override), or None.
        asset_version: the exact version found, when known.
        asset_path: the local path handed to the model.
        asset_source: where the asset came from (``asset_path``, ``env_file``,
            ``override_dir``, ``cache`` or ``store``).
        fetch_started: when locating the asset began (seconds since the library opened).
        fetch_finished: when the asset was ready.
        load_started: when ``_load`` began.
        load_finished: when ``_load`` ended.
        error: why the model failed (a :class:`LoadError`), if it did.
        size_bytes: what the model counts against ``max_loaded_bytes`` (its
            ``memory_bytes()``, else its asset's size on disk), once known.
        last_used: when it was last handed out by ``get`` / ``aget`` or loaded.
        load_count: how many times it loaded (more than once if it was evicted).
        eviction_count: how many times it was closed to make room for another model.
        swap_count: how many times a new instance replaced it while serving (a newer
            version of its asset, or a dependency that was swapped).
        swapped_at: when the last swap took effect.
        failed_version: the newer version whose fetch or load failed last, while
            ``version`` kept serving; None once a swap succeeds.
        swap_error: why that swap failed (a :class:`LoadError`).
    """

    key: str
    model_type: type[Model[Any, Any]]
    state: ModelState
    dependencies: tuple[str, ...] = ()
    asset: AssetSpec | None = None
    asset_version: str | None = None
    asset_path: Path | None = None
    asset_source: AssetSource | None = None
    fetch_started: float | None = None
    fetch_finished: float | None = None
    load_started: float | None = None
    load_finished: float | None = None
    error: BaseException | None = None
    size_bytes: int | None = None
    last_used: float | None = None
    load_count: int = 0
    eviction_count: int = 0
    swap_count: int = 0
    swapped_at: float | None = None
    failed_version: str | None = None
    swap_error: BaseException | None = None

    @property
    def version(self) -> str | None:
        """The version of the asset in service (``asset_version``), when known."""
        return self.asset_version

    @property
    def loaded(self) -> bool:
        """Whether the model is loaded now."""
        return self.state is ModelState.LOADED

    @property
    def fetch_seconds(self) -> float | None:
        """How long locating or fetching the asset took."""
        return _span(self.fetch_started, self.fetch_finished)

    @property
    def load_seconds(self) -> float | None:
        """How long ``_load`` took."""
        return _span(self.load_started, self.load_finished)


def _span(start: float | None, end: float | None) -> float | None:
    return end - start if start is not None and end is not None else None


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelEvent:
    """Base of the library's timeline events.

    Attributes:
        model: the configuration key.
        at: seconds since the library opened.
    """

    model: str
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelFetchStarted(ModelEvent):
    """Locating the model's asset began (an override lookup or a fetch)."""

    asset: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelFetchFinished(ModelEvent):
    """The model's asset is on disk."""

    asset: str
    version: str | None
    path: Path
    source: AssetSource
    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelLoadStarted(ModelEvent):
    """The asset and every dependency are ready: ``_load`` began."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelLoadFinished(ModelEvent):
    """``_load`` completed: the model is ready."""

    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelFailed(ModelEvent):
    """Fetching or loading failed; ``error`` is the :class:`LoadError`."""

    error: BaseException


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelEvicted(ModelEvent):
    """The model was detached to make room under ``max_loaded_models`` /
    ``max_loaded_bytes``; it closes once its running predictions return.

    Attributes:
        size_bytes: what it counted against the budget.
    """

    size_bytes: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSwapped(ModelEvent):
    """A new instance of the model replaced the one in service.

    Attributes:
        old_version: the asset version that served until now.
        new_version: the asset version now in service (the same as ``old_version`` when
            the model was reloaded because ``dependency`` was swapped).
        dependency: the swapped dependency that caused this reload, or None.
        seconds: from the start of the fetch to the swap.
    """

    old_version: str | None
    new_version: str | None
    dependency: str | None = None
    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSwapFailed(ModelEvent):
    """A newer version could not be fetched or loaded: the old instance keeps serving.

    Attributes:
        version: the version in service, still serving.
        failed_version: the version that failed.
        error: the :class:`LoadError`.
    """

    version: str | None
    failed_version: str
    error: BaseException


LibraryEventCallback: TypeAlias = Callable[[Event | ModelEvent], None]
"""Receives the library's :class:`ModelEvent` s and, when the library builds the
assets manager, its asset :class:`Event` s too. Runs on the event loop: keep it quick."""
