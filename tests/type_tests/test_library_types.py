"""Static checks of the library's generic signatures: mypy reads this file, pytest runs nothing.

The functions are never called (their names do not start with ``test``); ``assert_type``
fails the type check, not a test, if a signature loses its precision.
"""

from __future__ import annotations

from typing import Any, ClassVar, assert_type

from aiomodelkit._library import ModelLibrary
from aiomodelkit._model import Model, ModelDependencies
from aiomodelkit._status import ModelStatus


class Tokenizer(Model[str, list[str]]):
    CONFIGURATIONS: ClassVar = {"tok": {}}

    def _predict(self, item: str) -> list[str]:
        return item.split()


class Classifier(Model[str, float]):
    CONFIGURATIONS: ClassVar = {"clf": {"model_dependencies": {"tokenizer": "tok"}}}

    async def _predict_batch(self, items: list[str]) -> list[float]:
        tokenizer = self.model_dependencies.get("tokenizer", Tokenizer)
        assert_type(tokenizer, Tokenizer)
        assert_type(self.model_dependencies.get("tokenizer"), Model[Any, Any])
        assert_type(self.model_dependencies["tokenizer"], Model[Any, Any])
        return [float(len(await tokenizer.predict(item))) for item in items]


async def check_library_get(lib: ModelLibrary) -> None:
    assert_type(lib.get("clf", Classifier), Classifier)
    assert_type(lib.get("clf"), Model[Any, Any])
    assert_type(await lib.aget("clf", Classifier), Classifier)
    assert_type(await lib.aget("clf"), Model[Any, Any])
    assert_type(lib.status()["clf"], ModelStatus)


async def check_predictions(clf: Classifier, tok: Tokenizer) -> None:
    assert_type(await clf.predict("text"), float)
    assert_type(await clf.predict_batch(["a", "b"], batch_size=2), list[float])
    assert_type(await tok.predict("a b"), list[str])
    assert_type(tok.model_dependencies, ModelDependencies)


async def check_context_manager() -> None:
    async with ModelLibrary([Classifier, Tokenizer]) as lib:
        assert_type(lib, ModelLibrary)
