"""Helpers shared by the ModelLibrary tests: settings, publishing and a few small models."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, ClassVar

from aiomodelkit import AssetNotFoundError, AssetsManager, Settings
from aiomodelkit._model import Model

if TYPE_CHECKING:
    from pathlib import Path

    from aiomodelkit.stores import Store


def _settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(assets_dir=tmp_path / "cache", **values)


async def publish(store: Store, tmp_path: Path, name: str, content: str, **update: Any) -> str:
    """Publish ``content`` as a one-file directory asset (``weights.txt``); return its version.

    The manager closes ``store`` when done: pass a store of its own unless it is a
    MemoryStore. ``update``: keyword arguments of ``AssetsManager.update`` (``major=``...).
    """
    source = tmp_path / "sources" / uuid.uuid4().hex
    source.mkdir(parents=True)
    (source / "weights.txt").write_text(content)
    settings = Settings(assets_dir=tmp_path / "publisher-cache")
    async with AssetsManager(storage=store, settings=settings) as am:
        try:
            return (await am.update(source, name, **update)).version
        except AssetNotFoundError:
            return (await am.new(source, name)).version


class Const(Model[str, str]):
    """A model without an asset: predicts the ``value`` setting."""

    CONFIGURATIONS: ClassVar = {"const": {"model_settings": {"value": "c"}}}

    def _predict(self, item: str) -> str:
        return str(self.model_settings["value"])


class _A(Model[int, int]):
    CONFIGURATIONS: ClassVar = {"a": {"asset": "models/a", "model_dependencies": ["b"]}}

    def _predict(self, item: int) -> int:
        return item


class _B(Model[int, int]):
    CONFIGURATIONS: ClassVar = {"b": {"asset": "models/b", "model_dependencies": ["a"]}}

    def _predict(self, item: int) -> int:
        return item
