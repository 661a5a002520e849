"""What a ModelLibrary reports: per-model status, timeline events, and the ``describe`` tree.

Times are seconds since the library was entered, from a monotonic clock, so events and
statuses line up on one timeline.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from rich.markup import escape
from rich.tree import Tree

from ._events import Event

if TYPE_CHECKING:
    from pathlib import Path

    from ._model import Model
    from ._overrides import AssetSource
    from ._spec import AssetSpec

__all__ = [
    "LibraryEventCallback",
    "ModelEvent",
    "ModelFailed",
    "ModelFetchFinished",
    "ModelFetchStarted",
    "ModelLoadFinished",
    "ModelLoadStarted",
    "ModelState",
    "ModelStatus",
    "render_tree",
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


LibraryEventCallback: TypeAlias = Callable[[Event | ModelEvent], None]
"""Receives the library's :class:`ModelEvent` s and, when the library builds the
assets manager, its asset :class:`Event` s too. Runs on the event loop: keep it quick."""


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


_STYLES = {
    ModelState.LOADED: "green",
    ModelState.FAILED: "red",
    ModelState.PENDING: "dim",
}


def render_tree(
    statuses: Mapping[str, ModelStatus],
    settings: Mapping[str, Mapping[str, Any]],
    dependencies: Mapping[str, Mapping[str, str]],
    *,
    title: str = "ModelLibrary",
) -> Tree:
    """A rich tree of models: state, timings, asset, dependencies and settings."""
    tree = Tree(f"[bold]{escape(title)}[/] ({len(statuses)} models)")
    for key, status in statuses.items():
        style = _STYLES.get(status.state, "yellow")
        node = tree.add(
            f"[bold]{escape(key)}[/] [dim]{escape(status.model_type.__qualname__)}[/] "
            f"[{style}]{status.state.value}[/]  fetch {_ms(status.fetch_seconds)}, "
            f"load {_ms(status.load_seconds)}"
        )
        if status.asset is not None or status.asset_path is not None:
            version = f" → {status.asset_version}" if status.asset_version else ""
            source = f" ({status.asset_source})" if status.asset_source else ""
            asset = node.add(f"asset {escape(str(status.asset))}{escape(version)}{source}")
            if status.asset_path is not None:
                asset.add(f"[dim]{escape(str(status.asset_path))}[/]")
        for local, target in dependencies.get(key, {}).items():
            alias = f" as {local}" if local != target else ""
            node.add(f"depends on [bold]{escape(target)}[/]{escape(alias)}")
        for name, value in settings.get(key, {}).items():
            text = repr(value)
            text = text if len(text) <= 60 else text[:57] + "..."
            node.add(f"[dim]{escape(name)}[/] = {escape(text)}")
        if status.error is not None:
            node.add(f"[red]{escape(str(status.error))}[/]")
    return tree
