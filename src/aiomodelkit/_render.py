"""The rich tree behind ``ModelLibrary.describe`` and ``aiomodelkit describe``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.tree import Tree

from ._status import ModelState

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._status import ModelStatus

__all__ = ["render_tree"]


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
